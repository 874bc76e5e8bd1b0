"""Route planning on a town's lane graph: generated maps (always) and CARLA towns (shared)."""

from __future__ import annotations

import math

import numpy as np
import pytest

carla = pytest.importorskip("carla")

from drive_il.errors import ScenarioError
from drive_il.maps import TownMap, opendrive_gen
from drive_il.maps.lane_graph import LaneGraph
from drive_il.routing import junction_turns, plan_episode, plan_route, random_route
from drive_il.types import RoadOption, Route


@pytest.fixture(scope="module")
def circuit():
    return TownMap.from_carla_map(carla.Map("circuit", opendrive_gen.generate("circuit")))


@pytest.fixture(scope="module")
def grid():
    return TownMap.from_carla_map(carla.Map("grid", opendrive_gen.generate("grid")))


@pytest.fixture(scope="module")
def town04(maps_dir):
    return TownMap.from_carla_map(carla.Map("Town04", (maps_dir / "Town04.xodr").read_text()))


@pytest.fixture(scope="module")
def town02(maps_dir):
    return TownMap.from_carla_map(carla.Map("Town02", (maps_dir / "Town02.xodr").read_text()))


@pytest.fixture(scope="module")
def town01(town01_map):
    return TownMap.from_carla_map(town01_map)


def _lane_offset(carla_map, x: float, y: float, z: float) -> float:
    """Lateral distance [m] of (x, y) from the centre of the lane CARLA finds there."""
    wp = carla_map.get_waypoint(carla.Location(x, y, z))
    loc, yaw = wp.transform.location, math.radians(wp.transform.rotation.yaw)
    along = (x - loc.x) * math.cos(yaw) + (y - loc.y) * math.sin(yaw)
    if abs(along) > 0.01:
        nxt = wp.next(along) if along > 0 else wp.previous(-along)
        if nxt:
            wp = min(nxt, key=lambda w: math.hypot(w.transform.location.x - x, w.transform.location.y - y))
    loc, yaw = wp.transform.location, math.radians(wp.transform.rotation.yaw)
    return abs(-(x - loc.x) * math.sin(yaw) + (y - loc.y) * math.cos(yaw))


def _check_dense(route: Route, spacing: float) -> None:
    gaps = np.hypot(*np.diff(route.xy, axis=0).T)
    assert gaps.max() <= spacing * 1.01 + 1e-6, gaps.max()
    assert np.median(gaps) == pytest.approx(spacing, rel=0.01)
    # lane directions agree with the polyline direction (no reversed pieces)
    d = np.diff(route.xy, axis=0)
    heading = np.arctan2(d[:, 1], d[:, 0])
    err = np.abs(np.angle(np.exp(1j * (heading - route.yaw[:-1]))))
    assert np.percentile(err, 99) < math.radians(10.0), np.degrees(err.max())


@pytest.mark.parametrize("name", ["circuit", "grid"])
def test_random_route_on_generated_maps(name, request):
    town = request.getfixturevalue(name)
    r = random_route(town, np.random.default_rng(3), 300.0)
    assert r.length >= 300.0 - 1e-6
    assert r.length <= 301.0 + 1e-6
    _check_dense(r, 1.0)
    for w in r.waypoints[::25]:
        assert _lane_offset(town.map, w.x, w.y, w.z) < 0.05
    assert all(w.speed_limit is not None and w.speed_limit > 0 for w in r.waypoints)


def test_random_route_is_deterministic_and_seed_dependent(circuit, grid):
    for m in (circuit, grid):
        a = random_route(m, np.random.default_rng(7), 250.0)
        b = random_route(m, np.random.default_rng(7), 250.0)
        c = random_route(m, np.random.default_rng(8), 250.0)
        np.testing.assert_array_equal(a.xy, b.xy)
        assert [w.command for w in a.waypoints] == [w.command for w in b.waypoints]
        assert not (a.xy.shape == c.xy.shape and np.allclose(a.xy, c.xy))


def test_random_route_from_a_given_start(grid):
    r0 = random_route(grid, np.random.default_rng(1), 100.0)
    i = next(i for i, w in enumerate(r0.waypoints) if i >= 10 and not w.is_junction)
    x, y, yaw = float(r0.xy[i, 0]), float(r0.xy[i, 1]), float(r0.yaw[i])
    r = random_route(grid, np.random.default_rng(2), 200.0, start_xy=(x + 0.4, y), start_yaw=yaw)
    assert math.hypot(r.xy[0, 0] - x, r.xy[0, 1] - y) < 0.5
    assert abs(math.remainder(r.yaw[0] - yaw, 2 * math.pi)) < 0.2


def test_spacing_is_honoured(grid):
    r = random_route(grid, np.random.default_rng(4), 120.0, spacing=0.5)
    _check_dense(r, 0.5)
    assert r.spacing == 0.5


def test_plan_route_reaches_the_goal_by_the_shortest_way(grid):
    r0 = random_route(grid, np.random.default_rng(11), 400.0)
    start, goal = r0.xy[0], r0.xy[-1]
    r = plan_route(grid, start, goal, start_yaw=float(r0.yaw[0]))
    assert math.hypot(*(r.xy[0] - start)) < 0.05
    assert math.hypot(*(r.xy[-1] - goal)) < 0.05
    assert r.length <= r0.length + 1e-6  # A* is never longer than a random walk
    _check_dense(r, 1.0)


def test_plan_route_through_via_points(grid):
    r0 = random_route(grid, np.random.default_rng(12), 500.0)
    via = r0.xy[250]
    r = plan_route(grid, r0.xy[0], r0.xy[-1], via=[via], start_yaw=float(r0.yaw[0]))
    d = np.hypot(r.xy[:, 0] - via[0], r.xy[:, 1] - via[1])
    assert d.min() < 0.6


def test_junction_commands_match_the_turn(grid):
    seen = set()
    for seed in range(6):
        r = random_route(grid, np.random.default_rng(seed), 400.0)
        cmds, junction, yaw, s = r.commands, np.array([w.is_junction for w in r.waypoints]), r.yaw, r.s
        uy = np.unwrap(yaw)
        i = 0
        while i < len(r):
            if not junction[i]:
                i += 1
                continue
            j = i
            while j + 1 < len(r) and junction[j + 1]:
                j += 1
            if i == 0 or j == len(r) - 1:
                i = j + 1
                continue
            turn = math.degrees(uy[j + 1] - uy[i - 1])
            expect = (RoadOption.STRAIGHT if abs(turn) < 30 else
                      RoadOption.RIGHT if turn > 0 else RoadOption.LEFT)
            assert set(cmds[i:j + 1].tolist()) == {int(expect)}, (turn, set(cmds[i:j + 1].tolist()))
            # the command is announced on the 10 m before the junction
            lead = (s >= s[i] - 9.5) & (np.arange(len(r)) < i)
            assert (cmds[lead] == int(expect)).all()
            seen.add(expect)
            i = j + 1
        lanefollow = ~junction & (cmds != int(RoadOption.LANEFOLLOW))
        # outside junctions only the 10 m lead carries a turn command
        for k in np.nonzero(lanefollow)[0]:
            nxt = np.nonzero(junction[k:])[0]
            assert len(nxt) and s[k + nxt[0]] - s[k] <= 10.0 + 1e-3
    assert {RoadOption.LEFT, RoadOption.RIGHT} <= seen


@pytest.mark.parametrize("lead", [0.0, 3.0])
def test_command_lead_is_honoured(grid, lead):
    r10 = random_route(grid, np.random.default_rng(3), 400.0)
    r = random_route(grid, np.random.default_rng(3), 400.0, junction_lead=lead)
    assert np.allclose(r.xy, r10.xy)                      # the lead changes commands only
    junction = np.array([w.is_junction for w in r.waypoints])
    turns = (r.commands != int(RoadOption.LANEFOLLOW)) & ~junction
    for k in np.nonzero(turns)[0]:
        nxt = np.nonzero(junction[k:])[0]
        assert len(nxt) and r.s[k + nxt[0]] - r.s[k] <= lead + 1e-3
    assert (r.commands[junction] == r10.commands[junction]).all()
    assert turns.sum() < ((r10.commands != int(RoadOption.LANEFOLLOW)) & ~junction).sum()


def test_scenario_command_lead_reaches_the_route(grid):
    from drive_il.scenario import Scenario
    r = plan_episode(grid, Scenario(town="grid", route_length=400.0, command_lead=0.0), 3).route
    junction = np.array([w.is_junction for w in r.waypoints])
    assert (r.commands[~junction] == int(RoadOption.LANEFOLLOW)).all()
    assert (r.commands[junction] != int(RoadOption.LANEFOLLOW)).all()


def test_the_lane_graph_is_the_towns(circuit):
    g = circuit.lane_graph
    assert isinstance(g, LaneGraph) and circuit.lane_graph is g  # built once, on the town
    r = random_route(circuit, np.random.default_rng(0), 60.0)
    assert random_route(g, np.random.default_rng(0), 60.0).waypoints == r.waypoints
    with pytest.raises(TypeError, match="TownMap"):  # a bare carla.Map has no lane graph
        random_route(circuit.map, np.random.default_rng(0), 60.0)
    with pytest.raises(TypeError):
        plan_route(circuit.map, r.xy[0], r.xy[-1])


def test_unreachable_goal_is_one_clear_line(circuit):
    # the circuit's two directions are separate loops (no U-turn): the goal on the
    # opposite lane cannot be reached
    r = random_route(circuit, np.random.default_rng(0), 60.0)
    x, y = float(r.xy[30, 0]), float(r.xy[30, 1])
    w = circuit.map.get_waypoint(carla.Location(x, y, 0.0))
    opp = w.get_left_lane()
    assert opp is not None and opp.lane_id * w.lane_id < 0
    gx, gy = opp.transform.location.x, opp.transform.location.y
    with pytest.raises(ScenarioError) as e:
        plan_route(circuit, r.xy[0], (gx, gy), start_yaw=float(r.yaw[0]))
    msg = str(e.value)
    assert "\n" not in msg
    assert "is not reachable from start" in msg and "on circuit" in msg


def test_start_off_the_road_is_one_clear_line(circuit):
    r = random_route(circuit, np.random.default_rng(0), 60.0)
    with pytest.raises(ScenarioError) as e:
        plan_route(circuit, (r.xy[0, 0] + 500.0, r.xy[0, 1] + 500.0), r.xy[-1])
    assert "\n" not in str(e.value) and "start" in str(e.value) and "off the road" in str(e.value)
    with pytest.raises(ScenarioError, match="goal .* off the road"):
        plan_route(circuit, r.xy[0], (r.xy[-1, 0] + 500.0, r.xy[-1, 1]))
    with pytest.raises(ScenarioError, match="off the road"):
        random_route(circuit, np.random.default_rng(0), 50.0, start_xy=(1e5, 1e5))


def test_bad_arguments(circuit):
    with pytest.raises(ValueError):
        random_route(circuit, np.random.default_rng(0), 0.0)
    with pytest.raises(ValueError):
        plan_route(circuit, (0, 0), (1, 1), spacing=0.0)


# ------------------------------------------------------------------ CARLA towns


def test_town01_routes_lie_on_lane_centres(town01):
    for seed in range(3):
        r = random_route(town01, np.random.default_rng(seed), 500.0)
        assert r.length >= 500.0 - 1e-6
        _check_dense(r, 1.0)
        off = [_lane_offset(town01.map, w.x, w.y, w.z) for w in r.waypoints[::3] if not w.is_junction]
        assert max(off) < 0.02
        # Town01 roads carry 25 mph
        assert {round(w.speed_limit, 3) for w in r.waypoints} == {round(25 * 0.44704, 3)}


def test_town02_plan_route(town02):
    r0 = random_route(town02, np.random.default_rng(5), 400.0)
    r = plan_route(town02, r0.xy[0], r0.xy[-1], start_yaw=float(r0.yaw[0]))
    assert r.length <= r0.length + 1e-6
    assert math.hypot(*(r.xy[-1] - r0.xy[-1])) < 0.05


def test_town04_plans_lane_changes(town04):
    g = town04.lane_graph
    k = next(k for k, sg in enumerate(g.segments) if g.left[k] >= 0 and sg.length > 150)
    sg, nb = g.segments[k], g.segments[g.left[k]]
    start = sg.xy[3]
    goal = nb.xy[int(np.searchsorted(nb.s, 120.0))]
    r = plan_route(town04, start, goal, start_yaw=float(sg.yaw[3]))
    cmds = set(r.commands.tolist())
    assert int(RoadOption.CHANGELANELEFT) in cmds
    assert r.waypoints[0].lane_id == sg.lane_id and r.waypoints[-1].lane_id == nb.lane_id
    gaps = np.hypot(*np.diff(r.xy, axis=0).T)
    assert gaps.max() < 1.05
    # the highway's limit is read from the OpenDRIVE <type><speed> records
    assert r.waypoints[0].speed_limit is not None and r.waypoints[0].speed_limit > 20.0


def test_junction_turns_on_a_hand_built_route():
    from drive_il.types import RouteWaypoint

    # 20 m straight, a junction: 3 m straight then a quarter circle of radius 6 m (right
    # turn in CARLA's frame, +y), then 20 m straight out of it
    pts = [(float(x), 0.0, False) for x in range(20)]
    pts += [(20.0 + d, 0.0, True) for d in (0.0, 1.0, 2.0, 3.0)]
    r = 6.0
    for a in np.linspace(0.0, math.pi / 2, 10)[1:]:
        pts.append((23.0 + r * math.sin(a), r - r * math.cos(a), True))
    pts += [(29.0, 6.0 + d, False) for d in range(1, 21)]
    wps = tuple(RouteWaypoint(x=x, y=y, yaw=0.0, is_junction=j,
                              command=RoadOption.RIGHT if j else RoadOption.LANEFOLLOW) for x, y, j in pts)
    (t,) = junction_turns(Route(wps, spacing=1.0))
    assert t["command"] == "RIGHT" and (t["x"], t["y"]) == (20.0, 0.0)
    assert t["length"] == pytest.approx(4.0 + r * math.pi / 2, abs=0.3)  # entry to the first point after it
    assert t["arc_start"] == pytest.approx(3.0)
    assert t["min_radius"] == pytest.approx(r, rel=0.25)
    # going straight through the junction: no arc
    flat = tuple(RouteWaypoint(x=float(x), y=0.0, yaw=0.0, is_junction=20 <= x < 30) for x in range(50))
    (s,) = junction_turns(Route(flat, spacing=1.0))
    assert s["arc_start"] is None and s["min_radius"] is None and s["length"] == pytest.approx(10.0)
    # a junction cut by the route's end is left out
    assert junction_turns(Route(flat[:25], spacing=1.0)) == []
