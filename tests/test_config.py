from dataclasses import dataclass, field

import pytest

from drive_il.config import from_dict, load_toml, to_dict
from drive_il.errors import ConfigError


@dataclass(frozen=True)
class Inner:
    gain: float = field(default=1.0, metadata={"range": (0.0, 10.0)})


@dataclass(frozen=True)
class Outer:
    name: str
    count: int = field(default=1, metadata={"range": (1, 5)})
    flag: bool = False
    inner: Inner = field(default_factory=Inner)
    items: tuple[Inner, ...] = ()
    opt: float | None = None
    mode: str = field(default="a", metadata={"choices": ("a", "b")})


def test_round_trip_and_defaults():
    o = from_dict(Outer, {"name": "x", "count": 3, "inner": {"gain": 2}, "items": [{"gain": 0.5}]})
    assert o.count == 3 and o.inner.gain == 2.0 and isinstance(o.inner.gain, float)
    assert o.items == (Inner(0.5),)
    assert from_dict(Outer, to_dict(o)) == o


@pytest.mark.parametrize("data, fragment", [
    ({"name": "x", "cuont": 3}, "field 'cuont': unknown key"),
    ({"name": "x", "count": 9}, "field 'count': expected an integer in [1, 5], got 9"),
    ({"name": "x", "count": 2.5}, "field 'count': expected an integer"),
    ({"name": "x", "flag": 1}, "field 'flag': expected true or false"),
    ({"name": "x", "inner": {"gain": -1}}, "field 'inner.gain': expected a number in [0.0, 10.0]"),
    ({"name": "x", "inner": {"gian": 1}}, "field 'inner.gian': unknown key"),
    ({"name": "x", "items": [{"gain": "hi"}]}, "field 'items[0].gain': expected a number"),
    ({"name": "x", "mode": "c"}, "field 'mode': expected one of ['a', 'b']"),
    ({}, "field 'name': required key is missing"),
    ({"name": "x", "count": True}, "field 'count': expected an integer"),
])
def test_strict_errors_name_file_and_field(data, fragment):
    with pytest.raises(ConfigError) as ei:
        from_dict(Outer, data, source="f.toml")
    msg = str(ei.value)
    assert msg.startswith("f.toml: ") and fragment in msg and "\n" not in msg


def test_bad_toml_file(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text("name = [unclosed\n")
    with pytest.raises(ConfigError, match="bad.toml: not valid TOML"):
        load_toml(Outer, p)
    with pytest.raises(ConfigError, match="missing.toml: file not found"):
        load_toml(Outer, tmp_path / "missing.toml")
