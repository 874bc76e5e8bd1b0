"""The path curve governor: the expert's speed profile on a predicted path
(``drive_il.policies.path.path_curve_speed``, ``PolicyDriver(curve_governor="path")``)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from drive_il.policies.path import path_curve_speed

DIST = tuple(float(d) for d in range(1, 11))
A, B = 2.5, 2.0          # the expert's lateral_accel_limit and comfort_decel


def _road(straight: float, radius: float) -> np.ndarray:
    """(K, 2) ego-frame points at DIST along a road: straight for ``straight`` m, then a
    right turn of ``radius`` m (CARLA axes: +y right)."""
    out = []
    for d in DIST:
        if d <= straight:
            out.append((d, 0.0))
        else:
            a = (d - straight) / radius
            out.append((straight + radius * math.sin(a), radius * (1.0 - math.cos(a))))
    return np.array(out)


@pytest.mark.parametrize("radius", [4.5, 10.0, 30.0])
def test_in_the_bend_the_cap_is_the_curve_speed_reached_from_the_first_point(radius):
    # every circle of span 3 m has the bend's radius; the nearest begins at d_1 = 1 m
    cap = path_curve_speed(_road(0.0, radius), DIST, lateral_accel_limit=A, deceleration=B)
    assert cap == pytest.approx(math.sqrt(A * radius + 2.0 * B * 1.0), rel=1e-9)
    # the same bend mirrored (a left turn) is as slow
    left = _road(0.0, radius) * (1.0, -1.0)
    assert path_curve_speed(left, DIST, lateral_accel_limit=A, deceleration=B) == pytest.approx(cap, rel=1e-12)


def test_a_bend_farther_ahead_allows_more_and_a_straight_road_no_cap():
    caps = [path_curve_speed(_road(s, 4.5), DIST, lateral_accel_limit=A, deceleration=B) for s in (0.0, 2.0, 5.0)]
    assert caps[0] < caps[1] < caps[2] < math.inf
    # the bend that begins at 5 m: a circle reaching into it counts from its first point, at most a
    # span (3 m) before the bend; and it is no slower than the bend's own curve speed reached from there
    assert math.sqrt(A * 4.5 + 2.0 * B * (5.0 - 3.0)) - 1e-9 <= caps[2] < math.sqrt(A * 4.5 + 2.0 * B * 5.0)
    assert path_curve_speed(_road(20.0, 4.5), DIST, lateral_accel_limit=A, deceleration=B) == math.inf
    # a path too short for one circle, and a non-finite one: no cap
    assert path_curve_speed(_road(0.0, 4.5)[:6], DIST[:6], lateral_accel_limit=A, deceleration=B) == math.inf
    bad = _road(0.0, 4.5)
    bad[3, 1] = math.nan
    assert path_curve_speed(bad, DIST, lateral_accel_limit=A, deceleration=B) == math.inf
    with pytest.raises(ValueError, match="deceleration"):
        path_curve_speed(bad, DIST, lateral_accel_limit=A, deceleration=0.0)


def test_policy_driver_option(path_checkpoint, worker_learner_kwargs):
    from drive_il.policies.driver import PolicyDriver
    from drive_il.types import Observation, Step

    ck = path_checkpoint
    plain = PolicyDriver(ck)
    d = PolicyDriver(ck, curve_governor="path")
    assert plain.curve_governor == "steer" and d.curve_governor == "path"
    assert d.lateral_accel_limit == A and d.expert_config.comfort_decel == B      # the default expert preset's
    for drv in (plain, d):
        drv.last_path = _road(0.0, 4.5)
    assert plain.path_speed(8.0) == 8.0
    assert d.path_speed(8.0) == pytest.approx(math.sqrt(A * 4.5 + 2.0 * B))
    assert d.path_speed(3.0) == 3.0                          # a cap, never a floor
    d.min_speed = 4.0                                        # never below min_speed
    assert d.path_speed(8.0) == 4.0
    # act() drives with the cap: the random network's own path decides it here
    frame = np.random.default_rng(0).integers(0, 256, (66, 200, 3), dtype=np.uint8)
    d.reset(None)
    d.act(Step(observation=Observation(frames={"center": frame}, speed=4.0, sim_time=0.0), world_state=None))
    assert d.last_target_speed <= d.path_speed(d.cruise_speed) + 1e-12
    with pytest.raises(ValueError, match="curve_governor"):
        PolicyDriver(ck, curve_governor="route")
    assert worker_learner_kwargs(d)["curve_governor"] == "path"     # a rollout worker drives the same
