"""Expert presets: shipped presets load, bad input is one clear line."""

from __future__ import annotations

import dataclasses

import pytest

from drive_il.errors import ConfigError
from drive_il.expert import ExpertConfig, load_expert_config
from drive_il.expert.config import EXPERTS_DIR


@pytest.mark.parametrize("name", ["default", "cautious", "urban"])
def test_shipped_presets_load(name):
    cfg = load_expert_config(name)
    assert isinstance(cfg, ExpertConfig)
    assert cfg.name == name
    # every field of the dataclass is spelled out in the shipped file (documented preset)
    import tomllib
    data = tomllib.loads((EXPERTS_DIR / f"{name}.toml").read_text())
    missing = {f.name for f in dataclasses.fields(ExpertConfig)} - set(data) - {"name"}
    assert not missing


def test_cautious_is_slower_and_keeps_larger_gaps():
    d, c = load_expert_config("default"), load_expert_config("cautious")
    assert c.target_speed < d.target_speed
    assert c.lateral_accel_limit < d.lateral_accel_limit
    assert c.stop_gap > d.stop_gap and c.time_gap > d.time_gap


def test_urban_is_the_default_expert_stopping_farther_before_the_line():
    d, u = load_expert_config("default"), load_expert_config("urban")
    assert u.stop_line_margin == 4.0 and d.stop_line_margin == 1.5
    assert dataclasses.replace(u, name="default", stop_line_margin=d.stop_line_margin) == d


def test_default_when_none_and_path(tmp_path):
    assert load_expert_config(None).name == "default"
    p = tmp_path / "mine.toml"
    p.write_text("target_speed = 5.5\n")
    cfg = load_expert_config(p)
    assert cfg.target_speed == 5.5 and cfg.name == "mine"


def _one_line(e: pytest.ExceptionInfo) -> str:
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def test_unknown_key_is_one_line(tmp_path):
    p = tmp_path / "typo.toml"
    p.write_text("target_sped = 5.0\n")
    with pytest.raises(ConfigError) as e:
        load_expert_config(p)
    msg = _one_line(e)
    assert "typo.toml" in msg and "target_sped" in msg and "unknown key" in msg


def test_bad_value_is_one_line(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text("max_steer = 3.0\n")
    with pytest.raises(ConfigError) as e:
        load_expert_config(p)
    assert "max_steer" in _one_line(e)
    p.write_text("min_lookahead = 10.0\nmax_lookahead = 5.0\n")
    with pytest.raises(ConfigError) as e:
        load_expert_config(p)
    assert "max_lookahead" in _one_line(e)


def test_unknown_preset_name_is_one_line():
    with pytest.raises(ConfigError) as e:
        load_expert_config("no_such_preset")
    msg = _one_line(e)
    assert "no_such_preset" in msg and "default" in msg
