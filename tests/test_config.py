import re
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


# -- one check for every construction path (issue 15) ------------------------------------------

import argparse  # noqa: E402
import dataclasses  # noqa: E402

from drive_il.config import R, add_config_flags, config_from_args, one_of, validate_fields  # noqa: E402
from drive_il.errors import FieldError  # noqa: E402


@dataclass(frozen=True)
class Checked:
    rounds: int = field(default=4, metadata={**R(1, 100, "rounds"), "aliases": ("--n",)})
    beta: float = field(default=0.5, metadata=R(0.0, 1.0, "beta"))
    kind: str = field(default="a", metadata=one_of("a", "b", doc="kind"))
    warm: bool = True
    cap: int | None = field(default=None, metadata=R(1, None, "cap"))
    names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        validate_fields(self)


def _cli(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    add_config_flags(p, Checked)
    return p.parse_args(list(argv))


def test_generated_flags_cover_every_field_and_alias():
    base = Checked(rounds=7)
    assert config_from_args(Checked, base, _cli()) == base  # nothing given: the base
    got = config_from_args(Checked, base, _cli("--n", "2", "--beta", "0.25", "--kind", "b", "--no-warm",
                                               "--cap", "5", "--names", "x", "y"))
    assert got == Checked(rounds=2, beta=0.25, kind="b", warm=False, cap=5, names=("x", "y"))
    assert config_from_args(Checked, got, _cli("--rounds", "3", "--warm", "--cap", "none")) == \
        dataclasses.replace(got, rounds=3, warm=True, cap=None)


@pytest.mark.parametrize("field_name, value, cli, detail", [
    ("rounds", 0, ("--rounds", "0"), "expected an integer in [1, 100], got 0"),
    ("beta", 1.5, ("--beta", "1.5"), "expected a number in [0.0, 1.0], got 1.5"),
    ("kind", "c", ("--kind", "c"), "expected one of ['a', 'b'], got 'c'"),
    ("cap", 0, ("--cap", "0"), "expected an integer >= 1, got 0"),
])
def test_toml_cli_and_python_give_the_same_one_line_error(field_name, value, cli, detail):
    with pytest.raises(ConfigError) as toml:
        from_dict(Checked, {field_name: value}, source="f.toml")
    with pytest.raises(ConfigError) as cmd:
        config_from_args(Checked, None, _cli(*cli))
    with pytest.raises(FieldError) as py:
        Checked(**{field_name: value})
    flags = "--rounds/--n" if field_name == "rounds" else f"--{field_name}"
    assert str(toml.value) == f"f.toml: field '{field_name}': {detail}"
    assert str(cmd.value) == f"{flags}: field '{field_name}': {detail}"
    assert str(py.value) == f"Checked: field '{field_name}': {detail}"
    assert isinstance(py.value, ValueError) and py.value.field == field_name


@pytest.mark.parametrize("value, fragment", [
    (float("nan"), "expected a finite number, got nan"),
    (True, "expected a number in [0.0, 1.0], got True"),
    ("0.5", "expected a number in [0.0, 1.0], got '0.5'"),
])
def test_python_construction_checks_types_of_ranged_fields(value, fragment):
    with pytest.raises(FieldError, match=re.escape(fragment)):
        Checked(beta=value)


def test_field_error_pickles():
    import pickle
    e = pickle.loads(pickle.dumps(FieldError("C", "x", "expected 1, got 2")))
    assert str(e) == "C: field 'x': expected 1, got 2" and e.field == "x"


def _config_classes():
    from drive_il.dagger.schedules import BetaSchedule
    from drive_il.expert.config import ExpertConfig
    from drive_il.pipeline import PipelineConfig
    from drive_il.policies.alvinn import AlvinnConfig
    from drive_il.policies.dave2 import Dave2BranchedConfig, Dave2Config
    from drive_il.policies.preprocessing import PreprocessConfig
    from drive_il.policies.presets import AugmentConfig, TrainConfig
    from drive_il.scenario import (CameraConfig, NoiseConfig, RouteSpec, Scenario, TestConfig, TrafficConfig,
                                   VehicleConfig)
    return (Scenario, CameraConfig, VehicleConfig, TrafficConfig, RouteSpec, TestConfig, NoiseConfig,
            PipelineConfig, BetaSchedule, ExpertConfig, AlvinnConfig, Dave2Config, Dave2BranchedConfig,
            PreprocessConfig, AugmentConfig, TrainConfig)


def test_every_config_class_validates_when_built_in_python():
    for cls in _config_classes():
        assert "__post_init__" in vars(cls), cls
        for f in dataclasses.fields(cls):
            rng = f.metadata.get("range")
            if rng and rng[1] is not None:
                bad = rng[1] + 1
            elif f.metadata.get("choices"):
                bad = "no-such-choice"
            else:
                continue
            kwargs = {"start": (0.0, 0.0), "goal": (1.0, 1.0)} if cls.__name__ == "RouteSpec" else {}
            with pytest.raises(FieldError) as e:
                cls(**kwargs, **{f.name: bad})
            assert e.value.field == f.name and "\n" not in str(e.value), (cls, f.name)


def test_dave2_dropout_out_of_range_is_one_line():
    from drive_il.policies.dave2 import Dave2Config
    with pytest.raises(ConfigError) as e:
        Dave2Config(dropout=5.0)
    assert str(e.value) == "Dave2Config: field 'dropout': expected a number in [0.0, 0.9], got 5.0"


def test_utf8_bom_is_accepted(tmp_path):
    """Editors on Windows write a byte-order mark; TOML itself does not allow one."""
    p = tmp_path / "bom.toml"
    p.write_bytes(b"\xef\xbb\xbf" + 'name = "x"\ncount = 2\n'.encode())
    assert load_toml(Outer, p) == Outer(name="x", count=2)
