"""Controllers without a scene: the speed PID on the project's bicycle model, and the
rear-axle curvature (pure pursuit and steer <-> curvature: tests/test_control.py)."""

from __future__ import annotations

import math

import pytest

from drive_il.expert import LongitudinalController, load_expert_config
from drive_il.expert.controllers import rear_curvature
from drive_il.scenario import VehicleConfig
from drive_il.sim.embedded.dynamics import BicycleModel


def _run(target, seconds, speed0=0.0, dt=0.05):
    car = BicycleModel(VehicleConfig(), x=0.0, y=0.0, yaw=0.0, speed=speed0)
    lon = LongitudinalController(load_expert_config("default"))
    lon.reset()
    trace = []
    for _ in range(int(seconds / dt)):
        th, br = lon.control(car.speed, target, dt)
        assert 0.0 <= th <= 1.0 and 0.0 <= br <= 1.0 and (th == 0.0 or br == 0.0)
        car.step_raw(0.0, th, br, False, False, dt)
        trace.append(car.speed)
    return trace


@pytest.mark.parametrize("target", [3.0, 8.0, 20.0])
def test_speed_pid_reaches_and_holds_the_target(target):
    tr = _run(target, 30.0)
    assert max(tr) < target + 0.5               # little overshoot
    assert abs(tr[-1] - target) < 0.1           # no steady-state error (integral term)


def test_speed_pid_slows_down_and_stops():
    tr = _run(2.0, 20.0, speed0=12.0)
    assert abs(tr[-1] - 2.0) < 0.1
    tr = _run(0.0, 20.0, speed0=8.0)
    assert tr[-1] == 0.0


def test_reset_clears_the_integral():
    lon = LongitudinalController(load_expert_config("default"))
    for _ in range(200):
        lon.control(0.0, 10.0, 0.05)
    wound = lon.control(10.0, 10.0, 0.05)
    lon.reset()
    fresh = lon.control(10.0, 10.0, 0.05)
    assert wound[0] > fresh[0] == 0.0


def test_rear_curvature_puts_the_centre_on_the_circle():
    R, h = 12.0, 1.45
    kr = rear_curvature(1.0 / R, h)
    assert math.hypot(1.0 / kr, h) == pytest.approx(R)
    assert rear_curvature(0.0, h) == 0.0
