"""PolicyDriver: reads only the observation, steer from the policy, cruise control."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from drive_il.rollout.driver import Driver
from drive_il.errors import CheckpointError
from drive_il.policies.checkpoint import VehicleParams, save_checkpoint
from drive_il.policies.driver import PolicyDriver
from drive_il.control import curvature_to_steer
from drive_il.policies.preprocessing import preprocess
from drive_il.policies.registry import build_policy, load_model_preset
from drive_il.scenario import CameraConfig, Scenario, VehicleConfig
from drive_il.types import Observation, RoadOption, Step

CAM = CameraConfig(name="center", width=200, height=66, fov_deg=60.0, x=1.4, z=1.5, pitch_deg=-8.0)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    d = tmp_path_factory.mktemp("ck")
    preset = load_model_preset("dave2")
    torch.manual_seed(0)
    m = build_policy(preset)
    with torch.no_grad():  # make the output clearly non-zero
        m.head[-1].bias.fill_(0.5)
    rig = [dict(name="center", width=200, height=66, fov_deg=60.0, x=1.4, y=0.0, z=1.5, pitch_deg=-8.0, yaw_deg=0.0)]
    return save_checkpoint(d / "run" / "best", m, preset, vehicle=VehicleParams(2.9, math.radians(35)), cameras=rig)


def _step(speed=5.0, command=RoadOption.LANEFOLLOW, t=0.0, cams=("center",)):
    frame = np.random.default_rng(1).integers(0, 256, (66, 200, 3), dtype=np.uint8)
    obs = Observation(frames={c: frame for c in cams}, speed=speed, command=command, sim_time=t)
    return Step(observation=obs, world_state=None)  # a learner never reads the world state


def test_drives_from_the_observation_only(ckpt):
    sc = Scenario(cameras=(CAM,), vehicle=VehicleConfig(wheelbase=2.5, max_steer_deg=40.0), target_speed=8.0)
    d = PolicyDriver.from_checkpoint(ckpt.parent, scenario=sc)
    assert isinstance(d, Driver) and d.name == "learner"
    step = _step()
    d.reset(step)
    threads = torch.get_num_threads()
    ctl = d.act(step)
    assert torch.get_num_threads() == threads
    # steer = atan(L / r) / max_steer with the DRIVEN vehicle's geometry
    x = torch.from_numpy(preprocess(step.observation.frames["center"], d.preprocessing))[None]
    with torch.no_grad():
        inv_r = float(d.policy(x))
    expected = curvature_to_steer(inv_r, 2.5, math.radians(40.0))
    assert abs(expected) > 0.05
    assert math.isclose(ctl.steer, expected, rel_tol=1e-5)
    assert math.isclose(d.predict_steer(step.observation), expected, rel_tol=1e-5)
    assert ctl.throttle > 0 and ctl.brake == 0       # 5 m/s < 8 m/s target
    fast = d.act(_step(speed=12.0, t=0.05))
    assert fast.brake > 0 and fast.throttle == 0


def test_slows_for_junction_turns(ckpt):
    sc = Scenario(cameras=(CAM,), target_speed=8.0)
    d = PolicyDriver(ckpt, scenario=sc, turn_speed=4.0)
    assert d.turn_speed == 4.0
    d.reset(_step())
    ctl = d.act(_step(speed=6.0, command=RoadOption.LEFT))
    assert ctl.brake > 0                              # above the 4 m/s turn speed
    d.reset(_step())
    assert d.act(_step(speed=6.0, command=RoadOption.LANEFOLLOW)).throttle > 0


def test_rig_mismatch_and_missing_camera(ckpt):
    with pytest.raises(CheckpointError, match="lacks"):
        PolicyDriver(ckpt, scenario=Scenario(cameras=(CameraConfig(name="front"),)))
    with pytest.raises(CheckpointError, match="fov_deg"):
        PolicyDriver(ckpt, scenario=Scenario(cameras=(CameraConfig(name="center", fov_deg=90.0, pitch_deg=-8.0),)))
    d = PolicyDriver(ckpt, scenario=Scenario(cameras=(CAM,)))
    with pytest.raises(CheckpointError, match="observation has left"):
        d.predict_steer(_step(cams=("left",)).observation)


def test_curve_governor_caps_speed_by_the_learners_own_curvature(ckpt):
    sc = Scenario(cameras=(CAM,), vehicle=VehicleConfig(wheelbase=2.5, max_steer_deg=40.0), target_speed=8.0)
    d = PolicyDriver(ckpt, scenario=sc, lateral_accel_limit=2.0, curve_hold=1.0, min_speed=1.0)
    d.reset(_step())
    steer = 0.5
    k = math.tan(0.5 * math.radians(40.0)) / 2.5                  # kinematic bicycle 1/r
    assert math.isclose(d.curve_speed(steer, 8.0, 0.05), math.sqrt(2.0 / k), rel_tol=1e-9)
    # straight again: the peak decays with the 1 s time constant, the cap rises
    v1 = d.curve_speed(0.0, 8.0, 1.0)
    assert math.isclose(v1, math.sqrt(2.0 / (k * math.exp(-1.0))), rel_tol=1e-9)
    assert d.curve_speed(0.0, 8.0, 30.0) == 8.0                   # never above the cruise speed
    assert d.curve_speed(1.0, 0.5, 0.05) == 0.5                   # nor above a lower target
    d.reset(_step())
    assert d.curve_speed(1.0, 8.0, 0.05) >= 1.0                   # never below min_speed
    off = PolicyDriver(ckpt, scenario=sc, lateral_accel_limit=math.inf)
    assert off.curve_speed(1.0, 8.0, 0.05) == 8.0
    # in act(): the learner's own steer brakes a car that is too fast for it
    d.reset(_step())
    ctl = d.act(_step(speed=7.9))
    k_own = abs(math.tan(ctl.steer * math.radians(40.0)) / 2.5)
    assert math.isclose(d.last_target_speed, min(8.0, math.sqrt(2.0 / k_own)), rel_tol=1e-6)
    assert d.last_target_speed < 7.0 and ctl.brake > 0           # 1/r = 0.05 -> 6.3 m/s
    with pytest.raises(ValueError, match="lateral_accel_limit"):
        PolicyDriver(ckpt, scenario=sc, lateral_accel_limit=0.0)
