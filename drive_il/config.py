"""Strict TOML -> dataclass loading.

Every user file (scenario, expert preset, model preset, calibration) is a TOML document
mapped onto a (frozen) dataclass. Loading is strict, in the spirit of robomimic's locked
configs and tyro/CleanRL typed arguments:

* an unknown key is an error (typos never pass silently);
* a value of the wrong type is an error (``int`` is accepted where ``float`` is expected,
  ``bool`` never is accepted for a number);
* a value outside the range given in the field's metadata is an error;
* missing keys take the dataclass default; a field without a default is required.

Field metadata understood (``dataclasses.field(metadata=...)``):

* ``"range": (lo, hi)``: closed interval for numbers; ``None`` for an open end.
* ``"choices": (...)``: allowed values.
* ``"doc"``: one-line description (shown in error messages and docs).
* ``"internal": True``: set by code, never read from a file (an unknown key there).

Every error is a :class:`drive_il.errors.ConfigError` whose message is one line naming
the file, the dotted field path, the value and what was expected, e.g.::

    scenarios/x.toml: field 'traffic.vehicles': expected an integer in [0, 200], got -3

Usage::

    scenario = load_toml(Scenario, "scenarios/default.toml")
    cfg = from_dict(ExpertConfig, {"target_speed": 8.0}, source="<cli>")
"""

from __future__ import annotations

import dataclasses
import enum
import math
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, Literal, Mapping, TypeVar, get_args, get_origin, get_type_hints

from .errors import ConfigError

T = TypeVar("T")

__all__ = ["from_dict", "load_toml", "read_toml", "to_dict"]


def read_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML file into a dict.

    Raises:
        ConfigError: the file is missing, unreadable or not valid TOML (the message
            names the file and the parser's line/column).
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{p}: file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{p}: cannot read: {e}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{p}: not valid TOML: {e}") from None


def load_toml(cls: type[T], path: str | Path, *, overrides: Mapping[str, Any] | None = None) -> T:
    """Load a TOML file into dataclass ``cls`` strictly (see module docstring).

    Args:
        cls: a dataclass type.
        path: the TOML file.
        overrides: top-level keys that replace the file's values.

    Raises:
        ConfigError: one line naming the file and field.
    """
    data = read_toml(path)
    if overrides:
        data.update(overrides)
    return from_dict(cls, data, source=str(path))


def _fail(source: str, path: str, msg: str) -> ConfigError:
    where = f"field '{path}'" if path else "top level"
    return ConfigError(f"{source}: {where}: {msg}")


def _describe(v: Any) -> str:
    if isinstance(v, str):
        return repr(v)
    if isinstance(v, dict):
        return "a table"
    if isinstance(v, list):
        return "an array"
    return repr(v)


def _range_text(rng: tuple[Any, Any] | None) -> str:
    if not rng:
        return ""
    lo, hi = rng
    if lo is not None and hi is not None:
        return f" in [{lo}, {hi}]"
    if lo is not None:
        return f" >= {lo}"
    return f" <= {hi}"


def _convert(tp: Any, value: Any, *, source: str, path: str, meta: Mapping[str, Any]) -> Any:
    origin = get_origin(tp)
    args = get_args(tp)
    rng = meta.get("range")
    # Optional / Union
    if origin in (typing.Union, types.UnionType):
        non_none = [a for a in args if a is not type(None)]
        if value is None and len(non_none) < len(args):
            return None
        errors = []
        for a in non_none:
            try:
                return _convert(a, value, source=source, path=path, meta=meta)
            except ConfigError as e:
                errors.append(str(e))
        raise errors[0] if len(errors) == 1 else _fail(
            source, path, f"got {_describe(value)}, which matches none of {tp}")
    if tp is Any:
        return value
    if origin is Literal:
        if value not in args:
            raise _fail(source, path, f"expected one of {list(args)}, got {_describe(value)}")
        return value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise _fail(source, path, f"expected a table, got {_describe(value)}")
        return _build(tp, value, source=source, prefix=path + ".")
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        names = [m.name for m in tp]
        if isinstance(value, str) and value in names:
            return tp[value]
        try:
            return tp(value)
        except ValueError:
            raise _fail(source, path, f"expected one of {names}, got {_describe(value)}") from None
    if origin in (list, tuple) or tp in (list, tuple):
        if not isinstance(value, list):
            raise _fail(source, path, f"expected an array, got {_describe(value)}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise _fail(source, path, f"expected an array of {len(args)} values, got {len(value)}")
            items = [_convert(a, v, source=source, path=f"{path}[{i}]", meta=meta)
                     for i, (a, v) in enumerate(zip(args, value))]
        else:
            item_tp = args[0] if args else Any
            items = [_convert(item_tp, v, source=source, path=f"{path}[{i}]", meta=meta)
                     for i, v in enumerate(value)]
        return tuple(items) if (origin is tuple or tp is tuple) else items
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise _fail(source, path, f"expected a table, got {_describe(value)}")
        vt = args[1] if len(args) == 2 else Any
        return {k: _convert(vt, v, source=source, path=f"{path}.{k}", meta={}) for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise _fail(source, path, f"expected true or false, got {_describe(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _fail(source, path, f"expected an integer{_range_text(rng)}, got {_describe(value)}")
        _check_range(value, rng, source=source, path=path, kind="an integer")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _fail(source, path, f"expected a number{_range_text(rng)}, got {_describe(value)}")
        value = float(value)
        if not math.isfinite(value):
            raise _fail(source, path, f"expected a finite number, got {value!r}")
        _check_range(value, rng, source=source, path=path, kind="a number")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise _fail(source, path, f"expected a string, got {_describe(value)}")
        choices = meta.get("choices")
        if choices and value not in choices:
            raise _fail(source, path, f"expected one of {list(choices)}, got {value!r}")
        return value
    if tp is Path:
        if not isinstance(value, str):
            raise _fail(source, path, f"expected a path string, got {_describe(value)}")
        return Path(value)
    raise TypeError(f"config: unsupported field type {tp!r} at {path}")


def _check_range(value: float, rng: Any, *, source: str, path: str, kind: str) -> None:
    if not rng:
        return
    lo, hi = rng
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise _fail(source, path, f"expected {kind}{_range_text(rng)}, got {value!r}")


def _build(cls: type[T], data: Mapping[str, Any], *, source: str, prefix: str) -> T:
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init and not f.metadata.get("internal")}
    unknown = [k for k in data if k not in fields]
    if unknown:
        k = unknown[0]
        known = ", ".join(sorted(fields))
        raise _fail(source, prefix + k, f"unknown key (known keys: {known})")
    kwargs = {}
    for name, f in fields.items():
        path = prefix + name
        if name in data:
            kwargs[name] = _convert(hints[name], data[name], source=source, path=path, meta=f.metadata)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise _fail(source, path, "required key is missing")
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (ValueError, TypeError) as e:
        raise _fail(source, prefix.rstrip("."), str(e)) from None


def from_dict(cls: type[T], data: Mapping[str, Any], *, source: str = "<config>", prefix: str = "") -> T:
    """Build dataclass ``cls`` from a mapping, strictly (see module docstring).

    Args:
        cls: a dataclass type (nested dataclasses, lists, tuples, enums, Optional and
            Literal fields are supported).
        data: the parsed TOML.
        source: the file name (or another label) used in error messages.
        prefix: dotted path prefix for error messages.

    Raises:
        ConfigError: unknown key, wrong type, out-of-range value, or a ValueError from
            the dataclass's own ``__post_init__`` cross-field validation.
    """
    if not isinstance(data, Mapping):
        raise _fail(source, prefix.rstrip("."), f"expected a table, got {_describe(data)}")
    return _build(cls, data, source=source, prefix=prefix)


def to_dict(obj: Any) -> Any:
    """Convert a config dataclass back to plain TOML/JSON-able values (enums by name,
    paths as strings, tuples as lists)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj) if f.init}
    if isinstance(obj, enum.Enum):
        return obj.name
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj
