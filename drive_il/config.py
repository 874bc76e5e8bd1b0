"""Strict TOML -> dataclass loading.

Every user file (scenario, expert preset, model preset, calibration) is a TOML document
mapped onto a (frozen) dataclass. Loading is strict, in the spirit of robomimic's locked
configs and tyro/CleanRL typed arguments:

* an unknown key is an error (typos never pass silently);
* a value of the wrong type is an error (``int`` is accepted where ``float`` is expected,
  ``bool`` never is accepted for a number);
* a value outside the range given in the field's metadata is an error;
* missing keys take the dataclass default; a field without a default is required.

Field metadata understood (``dataclasses.field(metadata=...)``, built with :func:`R`,
:func:`one_of`, :func:`doc`):

* ``"range": (lo, hi)``: closed interval for numbers; ``None`` for an open end.
* ``"choices": (...)``: allowed values.
* ``"doc"``: one-line description (error messages, ``--help``, the DAgger report).
* ``"internal": True``: set by code, never read from a file (an unknown key there).
* ``"aliases": ("--old-flag", ...)``: extra command-line spellings (:func:`add_config_flags`).

**One check for every construction path.** Each config dataclass calls
:func:`validate_fields` first in its ``__post_init__``; it checks ``range`` and
``choices`` (and that a ranged field holds a finite number) and raises
:class:`~drive_il.errors.FieldError`. So TOML, the command line and Python code get the
same words, with their own prefix::

    scenarios/x.toml: field 'traffic.vehicles': expected an integer in [0, 500], got -3
    --vehicles: field 'vehicles': expected an integer in [0, 500], got -3
    TrafficConfig: field 'vehicles': expected an integer in [0, 500], got -3

Every error is a :class:`drive_il.errors.ConfigError` (a ``ValueError``) whose message is
one line naming the file (or flag), the dotted field path, the value and what was expected.

Usage::

    scenario = load_toml(Scenario, "scenarios/default.toml")
    cfg = from_dict(ExpertConfig, {"target_speed": 8.0}, source="<cli>")

    add_config_flags(parser, PipelineConfig)             # --dagger-rounds (--rounds), ...
    cfg = config_from_args(PipelineConfig, scenario.pipeline, parser.parse_args())
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import functools
import math
import numbers
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, Callable, Literal, Mapping, TypeVar, get_args, get_origin, get_type_hints

from .errors import ConfigError, FieldError

T = TypeVar("T")

__all__ = ["R", "add_config_flags", "config_from_args", "doc", "from_dict", "load_toml", "one_of",
           "read_toml", "to_dict", "validate_fields"]


def R(lo: float | None, hi: float | None, doc: str = "") -> dict[str, Any]:
    """Field metadata: closed range [lo, hi] (``None``: open end) and a doc line."""
    return {"range": (lo, hi), "doc": doc}


def one_of(*choices: Any, doc: str = "") -> dict[str, Any]:
    """Field metadata: the allowed values and a doc line."""
    return {"choices": tuple(choices), "doc": doc}


def doc(text: str) -> dict[str, Any]:
    """Field metadata: a doc line only."""
    return {"doc": text}


def read_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML file into a dict.

    Raises:
        ConfigError: the file is missing, unreadable or not valid TOML (the message
            names the file and the parser's line/column).
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")  # a leading UTF-8 BOM is dropped
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


def check_value(value: Any, meta: Mapping[str, Any], kind: str = "a number") -> str | None:
    """What is wrong with ``value`` for a field with metadata ``meta`` (its ``range``
    and ``choices``), as ``"expected ..., got ..."``; None when it is fine.

    Args:
        kind: "an integer" or "a number" (the field's type, for ranged fields).
    """
    choices = meta.get("choices")
    if choices and value not in choices:
        return f"expected one of {list(choices)}, got {_describe(value)}"
    rng = meta.get("range")
    if not rng:
        return None
    integral = kind == "an integer"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral if integral else numbers.Real):
        return f"expected {kind}{_range_text(rng)}, got {_describe(value)}"
    if not integral and not math.isfinite(value):
        return f"expected a finite number, got {value!r}"
    lo, hi = rng
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        return f"expected {kind}{_range_text(rng)}, got {value!r}"
    return None


@functools.lru_cache(maxsize=None)
def _checked_fields(cls: type) -> tuple[tuple[str, Mapping[str, Any], str], ...]:
    """(name, metadata, kind) of the fields of ``cls`` that carry a range or choices."""
    hints = get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        if "range" in f.metadata or "choices" in f.metadata:
            out.append((f.name, f.metadata, "an integer" if _base_type(hints[f.name]) is int else "a number"))
    return tuple(out)


def _base_type(tp: Any) -> Any:
    """int for ``int``, ``int | None``, ``tuple[int, ...]``; the type itself otherwise."""
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        non_none = [a for a in get_args(tp) if a is not type(None)]
        return _base_type(non_none[0]) if len(non_none) == 1 else tp
    if origin in (tuple, list):
        args = [a for a in get_args(tp) if a is not Ellipsis]
        return _base_type(args[0]) if args and all(a == args[0] for a in args) else tp
    return tp


def validate_fields(obj: Any) -> None:
    """Check every field of config dataclass ``obj`` against its ``range`` and
    ``choices`` metadata (items one by one for tuples; ``None`` passes). Call it first in
    ``__post_init__``: then TOML, the command line and Python code share this one check.

    Raises:
        FieldError: ``"<Class>: field '<name>': expected ..., got ..."`` (one line).
    """
    cls = type(obj)
    for name, meta, kind in _checked_fields(cls):
        value = getattr(obj, name)
        for v in (value if isinstance(value, (tuple, list)) else (value,)):
            if v is None:
                continue
            problem = check_value(v, meta, kind)
            if problem:
                raise FieldError(cls.__name__, name, problem)


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
                errors.append(e)
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
        _check(value, meta, source=source, path=path, kind="an integer")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _fail(source, path, f"expected a number{_range_text(rng)}, got {_describe(value)}")
        value = float(value)
        _check(value, meta, source=source, path=path, kind="a number")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise _fail(source, path, f"expected a string, got {_describe(value)}")
        _check(value, meta, source=source, path=path)
        return value
    if tp is Path:
        if not isinstance(value, str):
            raise _fail(source, path, f"expected a path string, got {_describe(value)}")
        return Path(value)
    raise TypeError(f"config: unsupported field type {tp!r} at {path}")


def _check(value: Any, meta: Mapping[str, Any], *, source: str, path: str, kind: str = "a number") -> None:
    problem = check_value(value, meta, kind)
    if problem:
        raise _fail(source, path, problem)


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
    except FieldError as e:  # the dataclass's own check: put the file and the dotted path in front
        raise _fail(source, prefix + e.field, e.detail) from None
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
        ConfigError: unknown key, wrong type, out-of-range value, or an error from the
            dataclass's own ``__post_init__`` (:func:`validate_fields`, cross-field checks).
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


# -- command line -----------------------------------------------------------------------------


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _flags(cls: type, name: str) -> str:
    """``--dagger-rounds/--rounds``: a field's flag and its aliases, for error messages."""
    f = {f.name: f for f in dataclasses.fields(cls)}.get(name)
    return "/".join((_flag(name), *f.metadata.get("aliases", ()))) if f else "command line"


def _arg_type(tp: Any, optional: bool) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        if optional and text.lower() == "none":
            return None
        return tp(text)
    parse.__name__ = tp.__name__  # argparse names it in "invalid int value"
    return parse


def add_config_flags(parser: argparse.ArgumentParser, cls: type, *, title: str | None = None,
                     defaults_from: str = "") -> None:
    """Add one command-line flag per field of config dataclass ``cls``, generated from
    the field's name, type and metadata: ``--field-name`` plus the ``aliases`` spellings;
    ``--x/--no-x`` for booleans; ``none`` accepted for optional fields; the choices
    listed in the metavar (checked by the dataclass, so a bad one is one line); the
    ``doc`` line as the help. A flag not given leaves the attribute unset, so
    :func:`config_from_args` keeps the base value. Nested dataclass fields get no flag.

    Args:
        title: an argument group for the flags (None: the parser itself).
        defaults_from: where the defaults come from, for the help (e.g. "[pipeline]").
    """
    group = parser.add_argument_group(title) if title else parser
    hints = get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if not f.init or f.metadata.get("internal"):
            continue
        tp = hints[f.name]
        optional = False
        if get_origin(tp) in (typing.Union, types.UnionType):
            non_none = [a for a in get_args(tp) if a is not type(None)]
            optional, tp = len(non_none) < len(get_args(tp)), non_none[0]
        if dataclasses.is_dataclass(tp):
            continue  # a nested table: no flag
        text = f.metadata.get("doc", "")
        default = f.default if f.default is not dataclasses.MISSING else None
        where = f"{defaults_from} {f.name}" if defaults_from else ""
        where += "" if default is None else f", else {default}" if where else f"{default}"
        help_text = f"{text} (default: {where})".lstrip() if where else text
        kw: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS, "help": help_text.replace("%", "%%")}
        if tp is bool:
            kw["action"] = argparse.BooleanOptionalAction
        elif get_origin(tp) is tuple:
            item = get_args(tp)[0]
            kw.update(nargs="*", type=_arg_type(item, False), metavar=item.__name__.upper())
        else:
            kw["type"] = _arg_type(tp, optional)
            choices = f.metadata.get("choices")
            kw["metavar"] = ("{" + ",".join(map(str, choices)) + "}" if choices else
                             {int: "N", float: "X"}.get(tp, "NAME"))
        group.add_argument(_flag(f.name), *f.metadata.get("aliases", ()), **kw)


def config_from_args(cls: type[T], base: T | None, args: argparse.Namespace) -> T:
    """``base`` (default: ``cls()``) with the flags of :func:`add_config_flags` that were
    given on the command line.

    Raises:
        ConfigError: a bad value, one line naming the flag(s), the field, the value and
            what was expected (the dataclass's own check, as for TOML and Python).
    """
    base = cls() if base is None else base
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls)
             if f.init and hasattr(args, f.name)}
    given = {k: tuple(v) if isinstance(v, list) else v for k, v in given.items()}
    try:
        return dataclasses.replace(base, **given)
    except FieldError as e:
        raise ConfigError(f"{_flags(cls, e.field)}: field '{e.field}': {e.detail}") from None
    except ConfigError:
        raise
    except ValueError as e:
        raise ConfigError(f"command line: {e}") from None
