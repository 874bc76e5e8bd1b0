"""The speed head (``[output] speed = true``): shapes per architecture and branch,
presets, checkpoints, and the PolicyDriver tracking (or stopping at) the predicted
target speed."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from drive_il.errors import ConfigError
from drive_il.policies.checkpoint import VehicleParams, load_checkpoint, save_checkpoint
from drive_il.policies.driver import PolicyDriver
from drive_il.policies.ensemble import EnsembleDriver
from drive_il.policies.presets import OutputConfig
from drive_il.policies.registry import build_policy, load_model_preset, model_preset_from_dict
from drive_il.scenario import CameraConfig, Scenario
from drive_il.types import Observation, RoadOption, Step

CAM = CameraConfig(name="center", width=200, height=66, fov_deg=60.0, x=1.4, z=1.5, pitch_deg=-8.0)
RIG = [dict(name="center", width=200, height=66, fov_deg=60.0, x=1.4, y=0.0, z=1.5, pitch_deg=-8.0, yaw_deg=0.0)]


def _with_speed(preset, **kw):
    return preset.replace(output=dataclasses.replace(preset.output, speed=True, **kw))


@pytest.mark.parametrize("name", ["dave2", "dave2_command", "dave2_path", "alvinn"])
def test_head_shapes_and_the_lateral_output_unchanged(name):
    base = load_model_preset(name)
    torch.manual_seed(0)
    plain = build_policy(base)
    torch.manual_seed(0)
    m = build_policy(_with_speed(base))
    assert m.has_speed_head and m.uses_speed and not getattr(plain, "has_speed_head", False)
    # the speed head is built last: every other layer starts as without it
    sd = plain.state_dict()
    assert all(torch.equal(sd[k], m.state_dict()[k]) for k in sd)
    assert any(k.startswith("speed_head.") for k in m.state_dict())
    x = torch.rand(5, *base.preprocessing.shape) * 255
    cmd = torch.tensor([4, 1, 2, 3, -1])
    sp = torch.tensor([0.0, 2.0, 4.0, 6.0, 8.0])
    lat, v = m(x, cmd, sp, with_speed=True)
    assert torch.equal(lat, m(x, cmd, sp)) and torch.allclose(lat, plain(x, cmd, sp))
    assert v.shape == (5,) and v.dtype == torch.float32
    # the measured speed is an input of the speed head
    _, v2 = m(x, cmd, sp + 5.0, with_speed=True)
    assert not torch.allclose(v, v2)
    assert plain(x, cmd, sp, with_speed=True)[1] is None


def test_one_speed_branch_per_command():
    m = build_policy(_with_speed(load_model_preset("dave2_path")))
    assert len(m.speed_head.branches) == len(m.heads) == 4
    with torch.no_grad():
        for i, br in enumerate(m.speed_head.branches):
            br[-1].weight.zero_()
            br[-1].bias.fill_(0.1 * (i + 1))            # branch i predicts (i + 1) m/s
    x = torch.rand(4, 3, 66, 200) * 255
    cmd = torch.tensor([int(RoadOption.LANEFOLLOW), int(RoadOption.LEFT), int(RoadOption.RIGHT),
                        int(RoadOption.STRAIGHT)])
    _, v = m(x, cmd, torch.zeros(4), with_speed=True)
    np.testing.assert_allclose(v.detach().numpy(), [1.0, 2.0, 3.0, 4.0], rtol=1e-6)


def test_shipped_speed_presets_and_unchanged_old_ones():
    p = load_model_preset("dave2_path_speed")
    # the speed reaches the speed head only (its own input); the path heads see the image alone
    assert p.output.is_path and p.output.speed and not p.model.speed_input and p.architecture == "dave2_branched"
    assert p.output.speed_loss_weight == 0.1 and p.output.speed_scale == 10.0
    q = load_model_preset("dave2_command_speed")
    assert q.output.kind == "native" and q.output.speed and not q.model.speed_input
    # apart from the speed keys, the speed presets are their base presets
    base = load_model_preset("dave2_path")
    assert p.replace(name=base.name, source=base.source, output=base.output) == base
    for name in ("dave2", "dave2_command", "dave2_path", "dave2_command_wide", "alvinn", "alvinn_1991"):
        old = load_model_preset(name)
        assert not old.output.speed
        out = old.to_dict().get("output", {})
        assert not {"speed", "speed_measured_input", "speed_loss_weight", "speed_loss", "speed_quantile",
                    "speed_scale"} & set(out)   # as before
    assert p.to_dict()["output"]["speed"] is True
    with pytest.raises(ConfigError, match="output.speed_loss_weight"):
        model_preset_from_dict({"architecture": "dave2", "output": {"speed": True, "speed_loss_weight": -1.0}})
    with pytest.raises(ConfigError, match="output.speed_loss"):
        model_preset_from_dict({"architecture": "dave2", "output": {"speed": True, "speed_loss": "l2"}})
    with pytest.raises(ConfigError, match="output.speed_quantile"):
        model_preset_from_dict({"architecture": "dave2", "output": {"speed": True, "speed_loss": "quantile",
                                                                    "speed_quantile": 1.0}})
    with pytest.raises(ConfigError, match="output.speed_quantile.*expected 0.5 with speed_loss = 'l1'"):
        model_preset_from_dict({"architecture": "dave2", "output": {"speed": True, "speed_quantile": 0.25}})


def _speed_ckpt(tmp_path, name="dave2", *, speed_bias=0.8, head_bias=0.0, tag="a"):
    preset = _with_speed(load_model_preset(name))
    torch.manual_seed(0)
    m = build_policy(preset)
    with torch.no_grad():
        last = m.head[-1] if hasattr(m, "head") else m.heads[0][-1]
        last.weight.zero_()
        last.bias.fill_(head_bias)                     # 1/r = 0: straight, no curve governor
        for br in m.speed_head.branches:
            br[-1].weight.zero_()
            br[-1].bias.fill_(speed_bias)              # v = speed_bias * 10 m/s
    return save_checkpoint(tmp_path / tag / "best", m, preset, vehicle=VehicleParams(2.9, math.radians(35)),
                           cameras=RIG)


def test_checkpoint_round_trip(tmp_path):
    ck = _speed_ckpt(tmp_path, "dave2_path", speed_bias=0.3)
    cfg = json.loads((ck / "config.json").read_text())
    assert cfg["preset"]["output"]["speed"] is True
    m, info = load_checkpoint(ck)
    assert m.has_speed_head and info.preset.output.speed
    x = torch.rand(2, 3, 66, 200) * 255
    _, v = m(x, torch.tensor([4, 1]), torch.tensor([3.0, 0.0]), with_speed=True)
    np.testing.assert_allclose(v.detach().numpy(), [3.0, 3.0], rtol=1e-5)


def _step(speed, t=0.0):
    frame = np.random.default_rng(1).integers(0, 256, (66, 200, 3), dtype=np.uint8)
    return Step(observation=Observation(frames={"center": frame}, speed=speed, sim_time=t), world_state=None)


def test_driver_follows_the_predicted_speed(tmp_path):
    sc = Scenario(cameras=(CAM,), target_speed=4.0)       # the cruise speed is NOT what it tracks
    d = PolicyDriver(_speed_ckpt(tmp_path, speed_bias=0.8), scenario=sc)
    assert d.has_speed_head and d.cruise_speed == 4.0
    d.reset(_step(0.0))
    assert math.isnan(d.predicted_speed)
    ctl = d.act(_step(5.0))
    assert d.predicted_speed == pytest.approx(8.0, rel=1e-5) and d.target_speed == pytest.approx(8.0, rel=1e-5)
    assert ctl.throttle > 0 and ctl.brake == 0            # 5 m/s < 8 m/s predicted
    ctl = d.act(_step(10.0, t=0.05))
    assert ctl.brake > 0 and ctl.throttle == 0            # 10 m/s > 8 m/s predicted
    # the curve governor stays a cap on the prediction
    d2 = PolicyDriver(_speed_ckpt(tmp_path, speed_bias=0.8, head_bias=1.0, tag="b"), scenario=sc,
                      lateral_accel_limit=2.0)
    d2.reset(_step(0.0))
    d2.act(_step(5.0))
    assert d2.predicted_speed == pytest.approx(8.0, rel=1e-5) and d2.target_speed < 8.0


@pytest.mark.parametrize("bias", [0.0, 0.02, -0.5])
def test_driver_stops_when_the_head_predicts_stop(tmp_path, bias):
    d = PolicyDriver(_speed_ckpt(tmp_path, speed_bias=bias), scenario=Scenario(cameras=(CAM,), target_speed=8.0))
    d.reset(_step(0.0))
    ctl = d.act(_step(6.0))                               # moving: brake towards 0
    assert d.target_speed == 0.0 and ctl.brake > 0 and ctl.throttle == 0
    ctl = d.act(_step(0.0, t=0.05))                       # at rest: held with full brake
    assert ctl.throttle == 0 and ctl.brake == pytest.approx(d.expert_config.max_brake)


def test_ensemble_of_speed_heads_averages_the_speed(tmp_path):
    a = _speed_ckpt(tmp_path, speed_bias=0.2, tag="a")
    b = _speed_ckpt(tmp_path, speed_bias=0.6, tag="b")
    d = EnsembleDriver([a, b], scenario=Scenario(cameras=(CAM,)))
    assert d.has_speed_head
    d.reset(_step(0.0))
    d.act(_step(3.0))
    assert d.predicted_speed == pytest.approx(4.0, rel=1e-5)


def test_without_a_speed_head_the_driver_cruises_as_before(tmp_path):
    preset = load_model_preset("dave2")
    torch.manual_seed(0)
    m = build_policy(preset)
    ck = save_checkpoint(tmp_path / "p" / "best", m, preset, vehicle=VehicleParams(2.9, math.radians(35)),
                         cameras=RIG)
    d = PolicyDriver(ck, scenario=Scenario(cameras=(CAM,), target_speed=6.0), lateral_accel_limit=math.inf)
    assert not d.has_speed_head and d.target_speed == 6.0
    d.reset(_step(0.0))
    d.act(_step(3.0))
    assert math.isnan(d.predicted_speed) and d.target_speed == 6.0
    # a rollout worker rebuilds the learner from its attributes (DriverRecipe): still the
    # cruise speed when the governor asked for less
    g = PolicyDriver(ck, scenario=Scenario(cameras=(CAM,), target_speed=6.0), lateral_accel_limit=1e-4,
                     min_speed=0.5)
    g.reset(_step(0.0))
    g.act(_step(3.0))
    assert g.last_target_speed < 6.0 and g.target_speed == 6.0
    assert OutputConfig().speed is False


@pytest.mark.parametrize("name", ["dave2_path", "alvinn"])
def test_speed_head_without_the_measured_speed(name):
    """speed_measured_input = false: the head reads the image alone (no CILRS inertia)."""
    m = build_policy(_with_speed(load_model_preset(name), speed_measured_input=False))
    assert m.has_speed_head and not m.uses_speed and m.speed_head.speed_in is None
    assert not any(k.startswith("speed_head.speed_in") for k in m.state_dict())
    x = torch.rand(3, *load_model_preset(name).preprocessing.shape) * 255
    cmd = torch.tensor([4, 1, 2])
    _, v0 = m(x, cmd, torch.zeros(3), with_speed=True)
    _, v1 = m(x, cmd, torch.full((3,), 8.0), with_speed=True)
    _, v2 = m(x, cmd, None, with_speed=True)
    assert torch.equal(v0, v1) and torch.equal(v0, v2)
    _, v3 = m(torch.rand(3, *load_model_preset(name).preprocessing.shape) * 255, cmd, None, with_speed=True)
    assert not torch.allclose(v0, v3)                     # it does read the image


def test_shipped_urban_path_preset_reads_no_speed(tmp_path):
    p = load_model_preset("dave2_path_wide_speed")
    wide = load_model_preset("dave2_path_wide")
    assert p.output.speed and not p.output.speed_measured_input and p.output.is_path
    assert p.preprocessing.crop_top == 0.0                # the lights stand in the sky rows
    # apart from the speed keys, the kept sky and the standing balance, it is dave2_path_wide
    assert p.training.balance_standing and not wide.training.balance_standing
    assert p.replace(name=wide.name, source=wide.source, output=wide.output,
                     preprocessing=wide.preprocessing, training=wide.training) == wide
    assert dataclasses.replace(p.training, balance_standing=False) == wide.training
    assert dataclasses.replace(p.preprocessing, crop_top=wide.preprocessing.crop_top) == wide.preprocessing
    m = build_policy(p)
    ck = save_checkpoint(tmp_path / "u" / "best", m, p, vehicle=VehicleParams(2.9, math.radians(35)), cameras=RIG)
    m2, info = load_checkpoint(ck)
    assert not info.preset.output.speed_measured_input and m2.speed_head.speed_in is None
