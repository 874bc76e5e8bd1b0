"""The expert's lateral law (``drive_il.expert.controllers.tracking_curvature``) and the
learner's optional path follower that applies it to a predicted path
(``drive_il.policies.path.PathFollower``, ``PolicyDriver(path_follower="expert")``):
by hand on circles, the remembered curvature at a turn's onset against pure pursuit's
anticipation, the memory's reset, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest

from drive_il.control import curvature_to_steer, pure_pursuit_curvature
from drive_il.expert.controllers import rear_curvature, tracking_curvature
from drive_il.policies.path import (
    PathFollower,
    PursuitParams,
    lookahead_distance,
    menger_curvature,
    path_point_at,
    path_steer,
)

DIST = tuple(float(d) for d in range(1, 11))
L = 2.9
MAX_ANGLE = math.radians(35.0)


def _curve_pose(s: float, straight: float, radius: float) -> tuple[float, float, float]:
    """(x, y, yaw) at arc length s of a road: straight along +x for ``straight`` m, then a
    right turn (+y, CARLA axes) of radius ``radius``."""
    if s <= straight:
        return s, 0.0, 0.0
    a = (s - straight) / radius
    return straight + radius * math.sin(a), radius * (1.0 - math.cos(a)), a


def _ego_path(s_car: float, straight: float, radius: float) -> np.ndarray:
    """(K, 2) points of that road at s_car + d_k, in the frame of a car on the road at s_car."""
    x0, y0, yaw = _curve_pose(s_car, straight, radius)
    c, sn = math.cos(yaw), math.sin(yaw)
    out = []
    for d in DIST:
        x, y, _ = _curve_pose(s_car + d, straight, radius)
        dx, dy = x - x0, y - y0
        out.append((dx * c + dy * sn, -dx * sn + dy * c))
    return np.array(out)


def test_tracking_curvature_by_hand():
    h = 0.5 * L
    k = 0.1
    # on the path with the steady-state heading: the pure-pursuit terms cancel, the
    # feed-forward alone remains
    yi = -math.atan(h * rear_curvature(k, h))
    got = tracking_curvature(-h * math.cos(yi), -h * math.sin(yi), yi, proj_x=0.0, proj_y=0.0, path_yaw=0.0,
                             target_x=5.0, target_y=1.0, path_curvature=k, preview_curvature=k, half_wheelbase=h,
                             speed=5.0, recovery_lateral_accel=4.0)
    assert got == pytest.approx(rear_curvature(k, h))
    # off the path: the feed-forward plus the difference of the two pure-pursuit terms
    k_act = pure_pursuit_curvature(-h, 0.5, 0.0, 5.0, 1.0)
    k_ideal = pure_pursuit_curvature(-h * math.cos(yi), -h * math.sin(yi), yi, 5.0, 1.0)
    got = tracking_curvature(-h, 0.5, 0.0, proj_x=0.0, proj_y=0.0, path_yaw=0.0, target_x=5.0, target_y=1.0,
                             path_curvature=k, preview_curvature=0.05, half_wheelbase=h, speed=0.5,
                             recovery_lateral_accel=4.0)
    assert got == pytest.approx(rear_curvature(0.05, h) + k_act - k_ideal)
    # above 1 m/s the correcting part is capped at a_rec / v^2
    got = tracking_curvature(-h, 3.0, 0.0, proj_x=0.0, proj_y=0.0, path_yaw=0.0, target_x=5.0, target_y=0.0,
                             path_curvature=0.0, preview_curvature=0.0, half_wheelbase=h, speed=10.0,
                             recovery_lateral_accel=4.0)
    assert got == pytest.approx(-0.04)


def test_menger_curvature():
    r = 8.0
    pts = [(r * math.sin(a), r * (1 - math.cos(a))) for a in (0.1, 0.4, 0.7)]   # a right turn
    assert menger_curvature(*pts) == pytest.approx(1.0 / r)
    assert menger_curvature(*[(x, -y) for x, y in pts]) == pytest.approx(-1.0 / r)
    assert menger_curvature((0, 0), (1, 0), (2, 0)) == 0.0
    assert menger_curvature((1, 1), (1, 1), (1, 1)) == 0.0


def test_the_remembered_curvature_follows_the_road_under_the_car():
    """A car on a straight road that turns right (R = 6 m) 12 m ahead: the follower's
    feed-forward curvature is the road's under the car, within the window it reads, while
    pure pursuit steers into the turn metres before it."""
    straight, radius, v, dt = 12.0, 6.0, 4.0, 0.05
    pursuit = PursuitParams()
    f = PathFollower(DIST, wheelbase=L, max_steer_angle=MAX_ANGLE, pursuit=pursuit)
    s = 0.0
    rows = []
    while s < straight + 8.0:
        pts = _ego_path(s, straight, radius)
        st = f.steer(pts, v, v * dt if s > 0 else 0.0, command=4)
        pp = path_steer(pts, DIST, v, wheelbase=L, max_steer_angle=MAX_ANGLE, pursuit=pursuit)
        rows.append((s, f.curvature, st, pp))
        s += v * dt
    rows = np.array(rows)
    # on the straight the car reads the straight under it, up to the window's reach (the
    # circle through the path at d_1, d_1 + span and d_1 + 2 span, stored for d_1 + span:
    # span metres before the turn)
    before = rows[:, 0] < straight - f.span
    assert np.abs(rows[before, 1]).max() < 1e-9
    # pure pursuit already turns there (its target, 5.3 m ahead, is in the arc); the
    # follower, on the road, does not
    pre = (rows[:, 0] > straight - f.span - 2.0) & (rows[:, 0] < straight - f.span)
    assert rows[pre, 3].max() > 0.07 and np.abs(rows[pre, 2]).max() < 0.01
    # in the arc: the feed-forward holds 1/R, and the steer is the expert's law with the
    # true projection (the car's centre), direction (its heading) and curvature
    arc = rows[:, 0] > straight + 3.0
    np.testing.assert_allclose(rows[arc, 1], 1.0 / radius, rtol=1e-2)
    pts = _ego_path(straight + 5.0, straight, radius)
    tx, ty = path_point_at(pts, DIST, lookahead_distance(v, pursuit))
    h = 0.5 * L
    k = tracking_curvature(-h, 0.0, 0.0, proj_x=0.0, proj_y=0.0, path_yaw=0.0, target_x=tx, target_y=ty,
                           path_curvature=1.0 / radius, preview_curvature=1.0 / radius, half_wheelbase=h, speed=v,
                           recovery_lateral_accel=pursuit.recovery_lateral_accel)
    np.testing.assert_allclose(rows[arc, 2], curvature_to_steer(k, L, MAX_ANGLE), atol=0.01)


def test_a_new_command_clears_the_memory_and_bad_input():
    pursuit = PursuitParams()
    f = PathFollower(DIST, wheelbase=L, max_steer_angle=MAX_ANGLE, pursuit=pursuit)
    straight = _ego_path(0.0, 100.0, 6.0)
    for _ in range(10):
        f.steer(straight, 4.0, 0.2, command=4)
    assert f.curvature == pytest.approx(0.0, abs=1e-9)
    # the RIGHT branch's path turns from the car on: remembered from now on, not after 3 m
    turn = _ego_path(20.0, 0.0, 6.0)
    f.steer(turn, 4.0, 0.2, command=2)
    assert f.curvature == pytest.approx(1.0 / 6.0, rel=1e-2)
    # without a new command the straight would still be remembered under the car
    g = PathFollower(DIST, wheelbase=L, max_steer_angle=MAX_ANGLE, pursuit=pursuit)
    for _ in range(10):
        g.steer(straight, 4.0, 0.2, command=4)
    g.steer(turn, 4.0, 0.2, command=4)
    assert abs(g.curvature) < 1e-6
    # standing still: one entry per place, however many steps
    n = len(f._memory)
    for _ in range(50):
        f.steer(turn, 0.0, 0.0, command=2)
    assert len(f._memory) == n
    bad = turn.copy()
    bad[3, 1] = math.nan
    assert f.steer(bad, 4.0, 0.2, command=2) == 0.0
    f.reset()
    assert f.curvature == 0.0
    with pytest.raises(ValueError, match="two path distances"):
        PathFollower((1.0,), wheelbase=L, max_steer_angle=MAX_ANGLE, pursuit=pursuit)
    with pytest.raises(ValueError, match="span"):
        PathFollower(DIST, wheelbase=L, max_steer_angle=MAX_ANGLE, pursuit=pursuit, span=0.0)


def test_policy_driver_option(path_checkpoint, worker_learner_kwargs):
    from drive_il.policies.driver import PolicyDriver
    from drive_il.types import Observation, Step

    ck = path_checkpoint
    plain = PolicyDriver(ck)
    assert plain.path_follower == "pursuit" and plain.follower is None
    d = PolicyDriver(ck, path_follower="expert")
    assert isinstance(d.follower, PathFollower)
    frame = np.random.default_rng(0).integers(0, 256, (66, 200, 3), dtype=np.uint8)
    d.reset(None)
    for t in range(3):
        d.act(Step(observation=Observation(frames={"center": frame}, speed=4.0, sim_time=0.05 * t), world_state=None))
    # the odometry advanced by speed x sim time: two steps of 0.2 m
    assert d.follower._odo == pytest.approx(0.4)
    with pytest.raises(ValueError, match="path_follower"):
        PolicyDriver(ck, path_follower="stanley")
    # a rollout worker rebuilds the learner with the same follower
    assert worker_learner_kwargs(d)["path_follower"] == "expert"


def _true_path_drive(follower: str, town: str, seed: int) -> float:
    """Drive a route of the urban scenario (empty traffic) with the learner's lateral law on
    the route's true path labels and the expert's throttle and brake; the largest |lateral
    deviation| [m] while the command is a turn."""
    import dataclasses

    from drive_il.data.dataset import route_path_labels
    from drive_il.expert.expert import Expert
    from drive_il.scenario import load_scenario
    from drive_il.sim.embedded.world import EmbeddedSimulator
    from drive_il.types import Control, RoadOption

    sc0 = load_scenario("nocrash_town01_procedural")
    sc = sc0.replace(town=town, towns=(), traffic=dataclasses.replace(sc0.traffic, density="empty"))
    sim = EmbeddedSimulator(render=False)
    step = sim.reset(sc, seed)
    ex = Expert.for_scenario(sc)
    ex.reset(step)
    pursuit = PursuitParams.from_expert(ex.config)
    vh = sc.vehicle
    f = PathFollower(DIST, wheelbase=vh.wheelbase, max_steer_angle=vh.max_steer_angle, pursuit=pursuit)
    r = step.world_state.route
    worst = 0.0
    for _ in range(sc.max_steps):
        if ex.route_progress > r.s[-1] - 3.0:
            break
        e = step.world_state.ego
        c = ex.act(step)
        pts = route_path_labels(r.xy, r.s, r.yaw, np.array([[e.x, e.y, e.yaw]]), np.array([ex.route_progress]),
                                DIST)[0]
        v = float(e.speed)
        st = (f.steer(pts, v, v * sc.dt, None) if follower == "expert" else
              path_steer(pts, DIST, v, wheelbase=vh.wheelbase, max_steer_angle=vh.max_steer_angle, pursuit=pursuit))
        step = sim.step(Control.clipped(st, c.throttle, c.brake))
        if step.observation.command in (RoadOption.LEFT, RoadOption.RIGHT):
            worst = max(worst, abs(ex.lateral_deviation))
    return worst


def test_on_the_true_path_the_expert_law_does_not_cut_the_corner():
    """A tight right turn of a procedural town (README, "The learner's path follower"):
    pure pursuit on the true path leaves the lane centre by ~0.8 m, the expert's law by
    less than 0.35 m."""
    pursuit = _true_path_drive("pursuit", "procedural:913", 30000)
    expert = _true_path_drive("expert", "procedural:913", 30000)
    print(f"largest |lateral deviation| in the turns: pure pursuit {pursuit:.2f} m, the expert's law {expert:.2f} m")
    assert pursuit > 0.6 and expert < 0.35
