"""Kinematic bicycle model: physics checked without a scene (HighwayEnv tests/vehicle style)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from drive_il.scenario import VehicleConfig
from drive_il.sim.embedded.dynamics import HAND_BRAKE_DECELERATION, REVERSE_MAX_SPEED, BicycleModel
from drive_il.types import Control

DT = 0.05
#: no drag, no rolling resistance: speed stays constant without throttle/brake
FRICTIONLESS = VehicleConfig(drag_coefficient=0.0, rolling_resistance=0.0)


def _circle_fit(pts: np.ndarray) -> tuple[float, float, float]:
    """Algebraic least-squares circle fit (Kasa): centre (cx, cy) and radius."""
    x, y = pts[:, 0], pts[:, 1]
    a = np.column_stack([x, y, np.ones_like(x)])
    b = x * x + y * y
    c = np.linalg.lstsq(a, b, rcond=None)[0]
    cx, cy = c[0] / 2, c[1] / 2
    return cx, cy, math.sqrt(c[2] + cx * cx + cy * cy)


@pytest.mark.parametrize("steer", [0.1, 0.3, -0.5, 1.0])
def test_constant_steering_drives_circle_of_bicycle_radius(steer):
    car = BicycleModel(FRICTIONLESS, x=10.0, y=-5.0, yaw=0.3, speed=6.0)
    for _ in range(40):  # let the steering lag settle
        car.step(Control(steer=steer), DT)
    delta = steer * math.radians(FRICTIONLESS.max_steer_deg)
    assert car.steer_angle == pytest.approx(delta, rel=1e-6)
    rear, centre = [], []
    for _ in range(400):
        car.step(Control(steer=steer), DT)
        rear.append((car.rx, car.ry))
        centre.append((car.x, car.y))
    L = FRICTIONLESS.wheelbase
    radius = L / math.tan(abs(delta))
    *_, r_rear = _circle_fit(np.array(rear))
    assert r_rear == pytest.approx(radius, rel=0.02)
    # the bounding-box centre runs on the circle through the rear-axle circle's centre
    # at distance sqrt(R^2 + (L/2)^2)
    *_, r_c = _circle_fit(np.array(centre))
    assert r_c == pytest.approx(math.hypot(radius, L / 2), rel=0.02)


def test_positive_steer_turns_right_in_carla_frame():
    car = BicycleModel(FRICTIONLESS, x=0.0, y=0.0, yaw=0.0, speed=5.0)
    for _ in range(20):
        car.step(Control(steer=0.5), DT)
    # right of +x is +y in CARLA's left-handed frame; yaw grows
    assert car.yaw > 0.1 and car.y > 0.1 and car.yaw_rate > 0


@pytest.mark.parametrize("v", [2.0, 8.0, 25.0])
def test_constant_speed_covers_v_t(v):
    car = BicycleModel(FRICTIONLESS, x=0.0, y=0.0, yaw=math.radians(30), speed=v)
    steps = 200
    for _ in range(steps):
        car.step(Control(), DT)
    t = steps * DT
    dist = math.hypot(car.x, car.y)  # started at the origin
    assert car.speed == v
    assert dist == pytest.approx(v * t, rel=0.01)
    assert car.odometer == pytest.approx(v * t, rel=0.01)
    assert car.yaw == pytest.approx(math.radians(30))


def test_throttle_balancing_drag_and_rolling_holds_speed():
    cfg = VehicleConfig()
    v = 12.0
    resist = cfg.drag_coefficient * v * v + cfg.rolling_resistance * 9.81
    throttle = resist / min(cfg.max_acceleration, cfg.max_power_per_mass / v)
    car = BicycleModel(cfg, x=0.0, y=0.0, yaw=0.0, speed=v)
    for _ in range(200):
        car.step(Control(throttle=throttle), DT)
    assert car.speed == pytest.approx(v, rel=1e-9)
    assert car.x == pytest.approx(v * 200 * DT, rel=0.01)


def test_reference_point_is_bbox_centre_half_wheelbase_ahead_of_rear_axle():
    cfg = VehicleConfig(wheelbase=3.0)
    car = BicycleModel(cfg, x=1.0, y=2.0, yaw=math.pi / 2)
    st = car.state()
    assert (st.x, st.y) == pytest.approx((1.0, 2.0))
    assert (car.rx, car.ry) == pytest.approx((1.0, 0.5))
    assert st.rear_axle() == pytest.approx((car.rx, car.ry))
    assert st.wheelbase == 3.0 and st.max_steer_angle == pytest.approx(math.radians(cfg.max_steer_deg))


def test_steering_lag_and_rate_limit():
    cfg = VehicleConfig(steer_time_constant=0.1, max_steer_rate_deg=60.0)
    car = BicycleModel(cfg, x=0, y=0, yaw=0, speed=5.0)
    car.step(Control(steer=1.0), DT)
    # rate limit: at most 60 deg/s * 0.05 s = 3 deg in one step
    assert car.steer_angle == pytest.approx(math.radians(3.0))
    fast = BicycleModel(dataclasses.replace(cfg, max_steer_rate_deg=2000.0), x=0, y=0, yaw=0)
    fast.step(Control(steer=1.0), DT)
    # first-order lag: (1 - exp(-dt/tau)) of the way
    assert fast.steer_angle == pytest.approx(math.radians(cfg.max_steer_deg) * (1 - math.exp(-0.5)))
    for _ in range(100):
        car.step(Control(steer=-0.2), DT)
    assert car.steer_angle == pytest.approx(-0.2 * math.radians(cfg.max_steer_deg), rel=1e-6)


def test_throttle_accelerates_power_limited_to_top_speed():
    cfg = VehicleConfig(max_speed=20.0)
    car = BicycleModel(cfg, x=0, y=0, yaw=0)
    car.step(Control(throttle=1.0), DT)
    a0 = car.acceleration
    # traction limited at standstill, minus rolling resistance
    assert a0 == pytest.approx(cfg.max_acceleration - cfg.rolling_resistance * 9.81, rel=1e-6)
    speeds = []
    for _ in range(600):
        car.step(Control(throttle=1.0), DT)
        speeds.append(car.speed)
    assert max(speeds) == pytest.approx(20.0)  # top speed
    assert all(b >= a - 1e-12 for a, b in zip(speeds, speeds[1:]))
    # power-limited: acceleration at 15 m/s at most P/m / v
    car2 = BicycleModel(cfg, x=0, y=0, yaw=0, speed=15.0)
    car2.step(Control(throttle=1.0), DT)
    assert car2.acceleration < cfg.max_power_per_mass / 15.0
    assert car2.acceleration < a0


def test_coasting_slows_down_from_drag_and_rolling():
    car = BicycleModel(VehicleConfig(), x=0, y=0, yaw=0, speed=20.0)
    car.step(Control(), DT)
    cfg = VehicleConfig()
    expected = cfg.drag_coefficient * 400.0 + cfg.rolling_resistance * 9.81
    assert -car.acceleration == pytest.approx(expected, rel=1e-6)


def test_braking_stops_and_never_rolls_backwards():
    car = BicycleModel(VehicleConfig(), x=0, y=0, yaw=0, speed=10.0)
    n = 0
    while car.speed > 0:
        car.step(Control(brake=1.0), DT)
        n += 1
        assert car.speed >= 0.0
    # ~10 / 8 s of braking at 8 m/s^2 (+ resistances)
    assert n * DT == pytest.approx(10.0 / 8.0, abs=0.15)
    x_stop = car.x
    for _ in range(20):
        car.step(Control(brake=1.0), DT)
        car.step(Control(throttle=0.3, brake=1.0), DT)  # brake holds against throttle
    assert car.speed == 0.0 and car.x == x_stop


def test_throttle_and_brake_together_while_moving_do_not_reverse():
    car = BicycleModel(VehicleConfig(), x=0, y=0, yaw=0, speed=0.2)
    car.step(Control(throttle=0.2, brake=1.0), DT)
    assert car.speed == 0.0


def test_hand_brake_decelerates():
    cfg = VehicleConfig(drag_coefficient=0.0, rolling_resistance=0.0)
    car = BicycleModel(cfg, x=0, y=0, yaw=0, speed=10.0)
    car.step(Control(hand_brake=True), DT)
    assert -car.acceleration == pytest.approx(HAND_BRAKE_DECELERATION)


def test_reverse_drives_backwards_with_capped_speed():
    car = BicycleModel(VehicleConfig(), x=0, y=0, yaw=0)
    for _ in range(400):
        car.step(Control(throttle=1.0, reverse=True), DT)
    assert car.speed == pytest.approx(-REVERSE_MAX_SPEED)
    assert car.x < -50.0
    # braking while reversing stops at rest
    for _ in range(100):
        car.step(Control(brake=1.0), DT)
    assert car.speed == 0.0


def test_reverse_throttle_while_rolling_forward_first_slows_then_reverses():
    car = BicycleModel(VehicleConfig(), x=0, y=0, yaw=0, speed=3.0)
    sp = []
    for _ in range(60):
        car.step(Control(throttle=1.0, reverse=True), DT)
        sp.append(car.speed)
    assert sp[0] < 3.0 and sp[-1] < 0.0


def test_deterministic_and_pure_floats():
    def run():
        car = BicycleModel(VehicleConfig(), x=1.0, y=2.0, yaw=0.1)
        rng = np.random.default_rng(0)
        for s, t in rng.uniform([-1, 0], [1, 1], size=(300, 2)):
            car.step(Control(steer=float(s), throttle=float(t)), DT)
        return car.state()
    a, b = run(), run()
    assert a == b
    assert type(a.x) is float and type(a.speed) is float
