"""Target points (drive_il.routing.target): the sparse plan of a route against hand-built
routes, the target point against hand-computed geometry, and both worlds' observations."""

from __future__ import annotations

import math

import numpy as np
import pytest

from drive_il.geometry import to_world
from drive_il.routing.target import (
    SPARSE_SPACING,
    TARGET_MIN_DISTANCE,
    SparseRoute,
    sparse_route_indices,
)
from drive_il.types import RoadOption

LF, LEFT, RIGHT = int(RoadOption.LANEFOLLOW), int(RoadOption.LEFT), int(RoadOption.RIGHT)


def test_the_plan_keeps_command_changes_and_at_most_max_spacing():
    s = np.arange(0.0, 161.0)                                          # 161 points, 1 m apart
    c = np.full(161, LF)
    c[120:131] = LEFT                                                  # a junction's command at 120..130 m
    idx = sparse_route_indices(s, c, max_spacing=50.0)
    # 0, then a point before 50 m since the last kept one is exceeded, the command's start
    # (120) and the first point after it (131), the last point
    assert idx.tolist() == [0, 50, 100, 120, 131, 160]
    assert np.diff(s[idx]).max() <= 50.0
    assert sparse_route_indices(s, np.full(161, LF), max_spacing=1000.0).tolist() == [0, 160]
    assert SPARSE_SPACING == 50.0 and TARGET_MIN_DISTANCE == 7.5
    # vertices farther apart than max_spacing: every one kept, none skipped
    assert sparse_route_indices([0.0, 80.0, 160.0, 170.0], [LF] * 4, 50.0).tolist() == [0, 1, 2, 3]
    assert sparse_route_indices([0.0], [LF]).tolist() == [0]


@pytest.mark.parametrize("s, c, spacing", [([0.0, 1.0], [LF], 50.0), ([], [], 50.0), ([0.0, 1.0], [LF, LF], 0.0)])
def test_bad_plans_raise(s, c, spacing):
    with pytest.raises(ValueError, match="sparse_route_indices"):
        sparse_route_indices(s, c, spacing)


def _l_route():
    """40 m along +x, then a right turn (CARLA axes: +y lies right of +x), 30 m along +y."""
    east = [(float(x), 0.0) for x in range(41)]
    south = [(40.0, float(y)) for y in range(1, 31)]
    xy = np.array(east + south)
    s = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(xy, axis=0).T))])
    c = np.full(len(xy), LF)
    c[30:46] = RIGHT                                                   # 10 m before the corner to 5 m after
    return xy, s, c


def test_target_point_by_hand():
    xy, s, c = _l_route()
    plan = SparseRoute(xy, s, c)
    assert plan.indices.tolist() == [0, 30, 46, 70]
    assert np.allclose(plan.points, [[0, 0], [30, 0], [40, 6], [40, 30]])
    # at the start: the first plan point beyond 7.5 m is the command's start (30, 0)
    assert np.allclose(plan.target_point(0.0, 0.0, 0.0, 0.0), (30.0, 0.0))
    # 0.5 m right of the route at s = 10, yawed 0.1 rad right: by hand in that frame
    x, y, yaw = 10.0, 0.5, 0.1
    dx, dy = 30.0 - x, 0.0 - y
    f, r = plan.target_point(x, y, yaw, 10.0)
    assert math.isclose(f, dx * math.cos(yaw) + dy * math.sin(yaw), abs_tol=1e-12)
    assert math.isclose(r, -dx * math.sin(yaw) + dy * math.cos(yaw), abs_tol=1e-12)
    # within 7.5 m of the command's start the target moves on to the junction's exit:
    # ahead and to the right (a right turn), not straight on
    assert np.allclose(plan.target_point(22.4, 0.0, 0.0, 22.4), (7.6, 0.0))
    f, r = plan.target_point(22.6, 0.0, 0.0, 22.6)
    assert math.isclose(f, 40.0 - 22.6) and math.isclose(r, 6.0)
    # past every plan point but the last: the goal; beyond it too
    assert np.allclose(plan.target_point(40.0, 25.0, math.pi / 2, 65.0), (5.0, 0.0), atol=1e-12)
    assert np.allclose(plan.target_point(40.0, 31.0, math.pi / 2, 71.0), (-1.0, 0.0), atol=1e-12)
    # the batch form is the scalar form row by row
    pose = np.array([[0.0, 0.0, 0.0, 0.0], [10.0, 0.5, 0.0, 0.1], [22.6, 0.0, 0.0, 0.0]])
    got = plan.target_points(pose, [0.0, 10.0, 22.6])
    for row, sp, g in zip(pose, [0.0, 10.0, 22.6], got):
        assert np.allclose(g, plan.target_point(row[0], row[1], row[3], sp))
    with pytest.raises(ValueError, match="min_distance"):
        SparseRoute(xy, s, c, min_distance=-1.0)


def test_embedded_world_observation_carries_the_routes_target_point():
    from drive_il.expert import Expert, load_expert_config
    from drive_il.geometry import project_onto_polyline
    from drive_il.scenario import Scenario
    from drive_il.sim.embedded.world import EmbeddedSimulator

    sc = Scenario(town="grid", route_length=150.0)
    sim = EmbeddedSimulator(render=False)
    step = sim.reset(sc, 3)
    route = step.world_state.route
    plan = SparseRoute.of_route(route)
    assert len(plan.indices) >= 3                                     # the route crosses a junction
    expert = Expert(config=load_expert_config("default"), vehicle=sc.vehicle)
    expert.reset(step)
    seen = set()
    for _ in range(400):
        ego = step.world_state.ego
        pr = project_onto_polyline(route.xy, route.s, ego.x, ego.y)
        tp = step.observation.target_point
        assert tp is not None
        assert np.allclose(tp, plan.target_point(ego.x, ego.y, ego.yaw, pr.s), atol=1e-6)
        seen.add(tuple(np.round(to_world(*tp, ego.x, ego.y, ego.yaw), 3)))
        step = sim.step(expert.act(step))
    # the target moved along the plan's points (world frame), not a fixed one
    assert len({p for p in seen if min(np.hypot(*(plan.points - p).T)) < 1e-3}) >= 3

