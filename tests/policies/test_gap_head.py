"""The obstacle-gap head (``[output] obstacle_gap = true``): the preset's checks, the cap
by hand, shapes and branches per architecture, checkpoints, the ensemble, and the
PolicyDriver capping the speed head's target at the braking curve of the predicted gap."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from drive_il.errors import ConfigError
from drive_il.policies.checkpoint import VehicleParams, load_checkpoint, save_checkpoint
from drive_il.policies.driver import PolicyDriver
from drive_il.policies.ensemble import EnsembleDriver
from drive_il.policies.registry import (
    build_policy,
    load_model_preset,
    model_preset_from_dict,
)
from drive_il.policies.speed import gap_speed_cap, gap_target
from drive_il.scenario import CameraConfig, Scenario
from drive_il.types import Observation, RoadOption, Step

CAM = CameraConfig(name="center", width=200, height=66, fov_deg=60.0, x=1.4, z=1.5, pitch_deg=-8.0)
RIG = [{"name": "center", "width": 200, "height": 66, "fov_deg": 60.0, "x": 1.4, "y": 0.0, "z": 1.5,
        "pitch_deg": -8.0, "yaw_deg": 0.0}]


def _with_gap(preset, **kw):
    return preset.replace(output=dataclasses.replace(preset.output, speed=True, obstacle_gap=True, **kw))


def test_the_cap_by_hand():
    # sqrt(2 b (g - d0)): 0 up to the standing gap, then the braking curve
    assert gap_speed_cap(4.5, stop_distance=4.0, deceleration=2.0) == pytest.approx(math.sqrt(2.0))
    assert gap_speed_cap(9.0, stop_distance=4.0, deceleration=2.0) == pytest.approx(math.sqrt(20.0))
    assert gap_speed_cap(3.0, stop_distance=4.0, deceleration=2.0) == 0.0
    assert gap_speed_cap(-1.0, stop_distance=4.0, deceleration=2.0) == 0.0
    assert gap_speed_cap(math.inf, stop_distance=4.0, deceleration=2.0) == math.inf
    v = gap_speed_cap(np.array([0.0, 6.0, 14.0]), stop_distance=2.0, deceleration=1.0)
    np.testing.assert_allclose(v, [0.0, math.sqrt(8.0), math.sqrt(24.0)])
    assert isinstance(gap_speed_cap(5.0, stop_distance=4.0, deceleration=2.0), float)
    assert math.isnan(gap_speed_cap(math.nan, stop_distance=4.0, deceleration=2.0))
    # the scalar branch (the driver's per-step call) gives the array branch's floats
    gaps = [-1.0, 0.0, 3.9, 4.0, 4.37, 7.5, 29.99, math.inf]
    arr = gap_speed_cap(np.array(gaps), stop_distance=4.0, deceleration=2.0)
    assert [gap_speed_cap(g, stop_distance=4.0, deceleration=2.0) for g in gaps] == arr.tolist()


def test_gap_target_clips_the_labels_the_same_in_numpy_and_torch():
    labels = np.array([-1.0, 0.0, 4.5, 30.0, 45.0, math.inf, math.nan])
    want = [0.0, 0.0, 4.5, 30.0, 30.0, 30.0, 0.0]
    t, known = gap_target(labels, 30.0)
    assert t.tolist() == want and known.tolist() == [True] * 6 + [False]
    tt, tk = gap_target(torch.tensor(labels, dtype=torch.float32), 30.0)
    assert tt.tolist() == want and tk.tolist() == known.tolist()


def test_preset_checks():
    with pytest.raises(ConfigError, match="obstacle_gap.*speed = true"):
        model_preset_from_dict({"architecture": "dave2", "output": {"obstacle_gap": True}})
    with pytest.raises(ConfigError, match="gap_stop_distance"):
        model_preset_from_dict({"architecture": "dave2", "output": {"speed": True, "obstacle_gap": True,
                                                                    "gap_range": 10.0, "gap_stop_distance": 12.0}})
    with pytest.raises(ConfigError, match="gap_range"):
        model_preset_from_dict({"architecture": "dave2", "output": {"speed": True, "obstacle_gap": True,
                                                                    "gap_range": 0.5}})


def test_shipped_gap_preset_is_the_speed_preset_plus_the_head():
    p = load_model_preset("dave2_path_wide_speed_gap")
    base = load_model_preset("dave2_path_wide_speed")
    o = p.output
    assert o.obstacle_gap and o.speed and o.gap_range == 30.0 and o.gap_loss_weight == 0.05
    # the predicted standing gap in unseen towns, and the expert's comfort deceleration
    assert (o.gap_stop_distance, o.gap_deceleration) == (6.0, 2.0)
    # the gap head learns vehicles and walkers; the speed head alone stops for lights
    assert o.gap_lights is False
    assert p.replace(name=base.name, source=base.source, output=base.output) == base
    assert dataclasses.replace(o, obstacle_gap=False, gap_lights=True) == base.output


@pytest.mark.parametrize("name", ["dave2", "dave2_path", "alvinn"])
def test_head_shapes_and_the_other_outputs_unchanged(name):
    base = load_model_preset(name)
    speed_only = base.replace(output=dataclasses.replace(base.output, speed=True))
    torch.manual_seed(0)
    plain = build_policy(speed_only)
    torch.manual_seed(0)
    m = build_policy(_with_gap(base))
    assert m.has_gap_head and not plain.has_gap_head
    # the gap head is built last: every other layer starts as without it
    sd = plain.state_dict()
    assert all(torch.equal(sd[k], m.state_dict()[k]) for k in sd)
    assert any(k.startswith("gap_head.") for k in m.state_dict())
    x = torch.rand(5, *base.preprocessing.shape) * 255
    cmd = torch.tensor([4, 1, 2, 3, -1])
    sp = torch.tensor([0.0, 2.0, 4.0, 6.0, 8.0])
    lat, v, g = m(x, cmd, sp, with_speed=True, with_gap=True)
    lat2, v2 = m(x, cmd, sp, with_speed=True)
    assert torch.equal(lat, lat2) and torch.equal(v, v2) and torch.equal(lat, m(x, cmd, sp))
    assert g.shape == (5,) and g.dtype == torch.float32
    # the gap head reads the image alone
    _, _, g2 = m(x, cmd, sp + 5.0, with_speed=True, with_gap=True)
    assert torch.equal(g, g2)
    assert plain(x, cmd, sp, with_speed=True, with_gap=True)[2] is None


def test_one_gap_branch_per_command():
    m = build_policy(_with_gap(load_model_preset("dave2_path")))
    assert len(m.gap_head.branches) == len(m.heads) == 4
    with torch.no_grad():
        for i, br in enumerate(m.gap_head.branches):
            br[-1].weight.zero_()
            br[-1].bias.fill_(0.1 * (i + 1))            # branch i predicts 3 (i + 1) m
    x = torch.rand(4, 3, 66, 200) * 255
    cmd = torch.tensor([int(RoadOption.LANEFOLLOW), int(RoadOption.LEFT), int(RoadOption.RIGHT),
                        int(RoadOption.STRAIGHT)])
    _, _, g = m(x, cmd, torch.zeros(4), with_speed=True, with_gap=True)
    np.testing.assert_allclose(g.detach().numpy(), [3.0, 6.0, 9.0, 12.0], rtol=1e-6)


def _gap_ckpt(tmp_path, *, speed_bias=0.8, gap_bias=1.0, tag="a", name="dave2"):
    preset = _with_gap(load_model_preset(name))
    torch.manual_seed(0)
    m = build_policy(preset)
    with torch.no_grad():
        last = m.head[-1] if hasattr(m, "head") else m.heads[0][-1]
        last.weight.zero_()
        last.bias.zero_()                               # 1/r = 0: straight, no curve governor
        for br in m.speed_head.branches:
            br[-1].weight.zero_()
            br[-1].bias.fill_(speed_bias)               # v = speed_bias * 10 m/s
        for br in m.gap_head.branches:
            br[-1].weight.zero_()
            br[-1].bias.fill_(gap_bias)                 # g = gap_bias * 30 m
    return save_checkpoint(tmp_path / tag / "best", m, preset, vehicle=VehicleParams(2.9, math.radians(35)),
                           cameras=RIG)


def _step(speed, t=0.0):
    frame = np.random.default_rng(1).integers(0, 256, (66, 200, 3), dtype=np.uint8)
    return Step(observation=Observation(frames={"center": frame}, speed=speed, sim_time=t), world_state=None)


def test_checkpoint_round_trip(tmp_path):
    ck = _gap_ckpt(tmp_path, gap_bias=0.5)
    m, info = load_checkpoint(ck)
    assert m.has_gap_head and info.preset.output.obstacle_gap
    _, _, g = m(torch.rand(2, 3, 66, 200) * 255, None, None, with_speed=True, with_gap=True)
    np.testing.assert_allclose(g.detach().numpy(), [15.0, 15.0], rtol=1e-5)


@pytest.mark.parametrize("gap_bias, expected", [
    (1.0, 8.0),                       # 30 m ahead: the cap (9.8 m/s) leaves the speed head's 8 m/s
    (0.25, math.sqrt(6.0)),           # 7.5 m: sqrt(2 x 2 x 1.5)
    (0.3, math.sqrt(12.0)),           # 9 m: sqrt(2 x 2 x 3)
])
def test_driver_caps_the_speed_at_the_braking_curve_of_the_gap(tmp_path, gap_bias, expected):
    d = PolicyDriver(_gap_ckpt(tmp_path, speed_bias=0.8, gap_bias=gap_bias),
                     scenario=Scenario(cameras=(CAM,), target_speed=8.0), lateral_accel_limit=math.inf)
    assert d.has_speed_head and d.has_gap_head
    d.reset(_step(0.0))
    assert math.isnan(d.predicted_gap)
    d.act(_step(3.0))
    assert d.predicted_speed == pytest.approx(8.0, rel=1e-5)
    assert d.predicted_gap == pytest.approx(30.0 * gap_bias, rel=1e-5)
    assert d.target_speed == pytest.approx(expected, rel=1e-5)


def test_driver_stops_inside_the_standing_gap(tmp_path):
    d = PolicyDriver(_gap_ckpt(tmp_path, speed_bias=0.8, gap_bias=0.19),     # 5.7 m < 6 m
                     scenario=Scenario(cameras=(CAM,), target_speed=8.0))
    d.reset(_step(0.0))
    ctl = d.act(_step(5.0))
    assert d.target_speed == 0.0 and ctl.brake > 0 and ctl.throttle == 0
    ctl = d.act(_step(0.0, t=0.05))                                          # at rest: held
    assert ctl.throttle == 0 and ctl.brake == pytest.approx(d.expert_config.max_brake)


def test_ensemble_averages_the_gap(tmp_path):
    a = _gap_ckpt(tmp_path, gap_bias=0.2, tag="a")
    b = _gap_ckpt(tmp_path, gap_bias=0.4, tag="b")             # mean 9 m: sqrt(2 x 2 x 3)
    d = EnsembleDriver([a, b], scenario=Scenario(cameras=(CAM,)), lateral_accel_limit=math.inf)
    assert d.has_gap_head
    d.reset(_step(0.0))
    d.act(_step(3.0))
    assert d.predicted_gap == pytest.approx(9.0, rel=1e-5)
    assert d.target_speed == pytest.approx(math.sqrt(12.0), rel=1e-5)
