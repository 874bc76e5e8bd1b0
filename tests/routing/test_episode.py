"""Episode set-up: which route and start a scenario and a seed give."""

from __future__ import annotations

import math

import pytest

from drive_il.errors import ScenarioError
from drive_il.maps import load_town
from drive_il.routing import StartPose, plan_episode, route_index
from drive_il.scenario import RouteSpec, Scenario

pytest.importorskip("carla")


@pytest.fixture(scope="module")
def grid():
    return load_town("grid")


def test_random_route_from_the_seed(grid):
    sc = Scenario(town="grid", route_length=150.0)
    a, b, c = (plan_episode(grid, sc, s) for s in (3, 3, 4))
    assert a.route.waypoints == b.route.waypoints and a.route.waypoints != c.route.waypoints
    assert a.route_index is None and a.seed == 3 and a.route.length >= 150.0 - 1e-6
    w = a.route.waypoints[0]
    assert (a.start.x, a.start.y, a.start.yaw, a.start.speed) == (w.x, w.y, w.yaw, 0.0)


def test_scenario_routes_in_turn(grid):
    r0 = plan_episode(grid, Scenario(town="grid", route_length=300.0), 1).route
    spec = RouteSpec(start=(float(r0.xy[0, 0]), float(r0.xy[0, 1])), goal=(float(r0.xy[-1, 0]), float(r0.xy[-1, 1])),
                     start_yaw_deg=math.degrees(float(r0.yaw[0])))
    sc = Scenario(town="grid", routes=(spec, spec), seed=10)
    assert [route_index(sc, s) for s in (10, 11, 12)] == [0, 1, 0]
    assert route_index(Scenario(town="grid"), 5) is None
    setup = plan_episode(grid, sc, 11)
    assert setup.route_index == 1 and math.dist(setup.route.xy[-1], r0.xy[-1]) < 0.05


def test_given_start_and_route(grid):
    r = plan_episode(grid, Scenario(town="grid", route_length=100.0), 2).route
    w = r.waypoints[10]
    start = StartPose(x=w.x, y=w.y, yaw=w.yaw, speed=3.0)
    setup = plan_episode(grid, Scenario(town="grid", route_length=100.0), 7, start=start)
    assert setup.start is start and math.dist(setup.route.xy[0], (w.x, w.y)) < 0.5
    assert plan_episode(grid, Scenario(town="grid"), 7, route=r).route is r
    with pytest.raises(ScenarioError, match="off the road"):
        plan_episode(grid, Scenario(town="grid"), 7, start=StartPose(x=w.x + 500.0, y=w.y, yaw=0.0))
