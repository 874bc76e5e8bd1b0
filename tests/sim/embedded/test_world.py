"""EmbeddedSimulator: the Simulator protocol, determinism, events, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest

from drive_il.errors import MapError, ScenarioError
from drive_il.geometry import project_onto_polyline, wrap_angle
from drive_il.scenario import CameraConfig, RouteSpec, Scenario, TrafficConfig
from drive_il.sim.base import Simulator, StartPose
from drive_il.sim.embedded.world import EmbeddedSimulator
from drive_il.types import Control, EventKind, RoadOption

SMALL = (CameraConfig(name="center", width=64, height=32),)


def scenario(**kw) -> Scenario:
    base = dict(town="circuit", cameras=SMALL, route_length=150.0)
    base.update(kw)
    return Scenario(**base)


@pytest.fixture(scope="module")
def sim():
    s = EmbeddedSimulator()
    yield s
    s.close()


def follow(step, target_speed=8.0, lookahead=6.0) -> Control:
    """A tiny pure-pursuit driver on the route (test stand-in for the expert)."""
    ws = step.world_state
    ego, route = ws.ego, ws.route
    rx, ry = ego.rear_axle()
    p = project_onto_polyline(route.xy, route.s, rx, ry)
    s_goal = min(p.s + lookahead, route.length)
    j = int(np.searchsorted(route.s, s_goal))
    j = min(j, len(route) - 1)
    gx, gy = route.xy[j]
    alpha = wrap_angle(math.atan2(gy - ry, gx - rx) - ego.yaw)
    ld = max(math.hypot(gx - rx, gy - ry), 1e-3)
    delta = math.atan2(2.0 * ego.wheelbase * math.sin(alpha), ld)
    steer = delta / ego.max_steer_angle
    dv = target_speed - ego.speed
    return Control.clipped(steer, throttle=0.5 * dv, brake=-0.5 * dv if dv < -1 else 0.0)


def test_protocol_and_first_step(sim):
    assert isinstance(sim, Simulator)
    st = sim.reset(scenario(), seed=3)
    assert sim.map is not None and sim.route is st.world_state.route and sim.scenario.town == "circuit"
    assert st.events == ()
    obs, ws = st.observation, st.world_state
    assert set(obs.frames) == {"center"}
    f = obs.frames["center"]
    assert f.shape == (32, 64, 3) and f.dtype == np.uint8
    assert obs.frame == ws.frame == 0 and obs.sim_time == 0.0 and obs.speed == 0.0
    w0 = ws.route.waypoints[0]
    assert (ws.ego.x, ws.ego.y, ws.ego.yaw) == pytest.approx((w0.x, w0.y, w0.yaw))
    assert ws.town == "circuit" and ws.weather == "ClearNoon" and ws.dt == 0.05
    assert ws.route.length == pytest.approx(150.0, abs=1.0)
    st2 = sim.step(Control(throttle=1.0))
    assert st2.observation.frame == 1 and st2.observation.sim_time == pytest.approx(0.05)
    assert st2.world_state.ego.speed > 0.0


def test_follows_route_without_events(sim):
    st = sim.reset(scenario(route_length=300.0), seed=5)
    events = []
    for _ in range(int(40 / 0.05)):
        st = sim.step(follow(st))
        events += st.events
    ws = st.world_state
    p = project_onto_polyline(ws.route.xy, ws.route.s, ws.ego.x, ws.ego.y)
    assert p.s > 200.0  # ~8 m/s for 40 s, minus the start
    assert abs(p.lateral) < 0.5
    assert events == []


def _run(seed, steps=60, traffic=6, render=True):
    s = EmbeddedSimulator(render=render)
    sc = scenario(traffic=TrafficConfig(vehicles=traffic))
    st = s.reset(sc, seed=seed)
    out = [st]
    for _ in range(steps):
        st = s.step(follow(st))
        out.append(st)
    return out


def test_same_seed_bit_identical_frames_and_poses():
    a, b = _run(11), _run(11)
    for sa, sb in zip(a, b):
        assert sa.world_state.ego == sb.world_state.ego
        assert sa.world_state.actors == sb.world_state.actors
        assert sa.events == sb.events
        for k in sa.observation.frames:
            assert np.array_equal(sa.observation.frames[k], sb.observation.frames[k])
    assert len(a[-1].world_state.actors) == 6


def test_other_seed_other_route_and_traffic():
    a, b = _run(11, steps=2), _run(12, steps=2)
    assert not np.array_equal(a[0].world_state.route.xy[:10], b[0].world_state.route.xy[:10])
    assert a[0].world_state.actors != b[0].world_state.actors


def test_scenario_routes_by_seed(sim):
    wps = [w for w in sim.reset(scenario(), seed=0).world_state.route.waypoints]
    a, b = wps[0], wps[60]
    routes = (RouteSpec(start=(a.x, a.y), goal=(b.x, b.y)),
              RouteSpec(start=(b.x, b.y), goal=(wps[120].x, wps[120].y)))
    sc = scenario(routes=routes, seed=100)
    r0 = sim.reset(sc, seed=100).world_state.route
    r1 = sim.reset(sc, seed=101).world_state.route
    r2 = sim.reset(sc, seed=102).world_state.route
    assert r0.xy[0] == pytest.approx((a.x, a.y), abs=0.5)
    assert r1.xy[0] == pytest.approx((b.x, b.y), abs=0.5)
    assert np.array_equal(r0.xy, r2.xy)  # wraps around
    assert sim.setup.route_index == 0


def test_start_override_and_off_road_start(sim):
    st = sim.reset(scenario(), seed=1)
    w = st.world_state.route.waypoints[20]
    st = sim.reset(scenario(), seed=1, start=StartPose(x=w.x, y=w.y, yaw=w.yaw, speed=3.0))
    assert (st.world_state.ego.x, st.world_state.ego.speed) == pytest.approx((w.x, 3.0))
    # the random route begins where the ego starts
    assert st.world_state.route.xy[0] == pytest.approx((w.x, w.y), abs=0.5)
    right = (-math.sin(w.yaw), math.cos(w.yaw))
    with pytest.raises(ScenarioError, match="off the road") as e:
        sim.reset(scenario(), seed=1, start=StartPose(x=w.x + 40 * right[0], y=w.y + 40 * right[1], yaw=w.yaw))
    assert "\n" not in str(e.value)


def test_scenario_route_starting_off_road_is_scenario_error(sim):
    w = sim.reset(scenario(), seed=1).world_state.route.waypoints[0]
    right = (-math.sin(w.yaw), math.cos(w.yaw))
    far = (w.x + 60 * right[0], w.y + 60 * right[1])
    with pytest.raises(ScenarioError) as e:
        sim.reset(scenario(routes=(RouteSpec(start=far, goal=(w.x, w.y)),)), seed=0)
    assert "\n" not in str(e.value)


def test_unknown_town_is_map_error(sim, tmp_path):
    with pytest.raises(MapError) as e:
        EmbeddedSimulator(maps_dir=tmp_path).reset(scenario(town="NoSuchTown"), seed=0)
    assert "NoSuchTown" in str(e.value) and "\n" not in str(e.value)


def test_collision_with_static_lead_vehicle(sim):
    sim.reset(scenario(), seed=2)
    aid = sim.spawn_static_vehicle_on_route(30.0)
    st = sim.current_step()
    assert [a.actor_id for a in st.world_state.actors] == [aid]
    hits = []
    for _ in range(200):
        st = sim.step(follow(st, target_speed=6.0))
        hits += [e for e in st.events if e.kind is EventKind.COLLISION]
    assert [e.other_actor for e in hits] == [aid]
    # the lead stays where it was put
    assert st.world_state.actors[0].speed == 0.0


def test_leaving_the_road_reports_off_road(sim):
    st = sim.reset(scenario(), seed=4)
    kinds = []
    for _ in range(300):  # full lock right at speed: off the road
        st = sim.step(Control(steer=0.6 if st.world_state.ego.speed > 4 else 0.0, throttle=0.6))
        kinds += [e.kind for e in st.events]
    assert EventKind.OFF_ROAD in kinds


def test_render_off_gives_no_frames():
    s = EmbeddedSimulator(render=False)
    st = s.reset(scenario(), seed=0)
    assert dict(st.observation.frames) == {}
    st = s.step(Control(), render=True)
    assert st.observation.frames["center"].shape == (32, 64, 3)


def test_command_on_grid_turns(sim):
    """Walking the route, the observation's command is the route's command there, and the
    tracked projection's arc length (the target point's) is the waypoint's."""
    st = sim.reset(scenario(town="grid", route_length=400.0), seed=7)
    route = st.world_state.route
    seen = []
    for k in range(0, len(route) - 1, 2):
        w = route.waypoints[k]
        st = sim.teleport(w.x, w.y, w.yaw) if k == 0 else sim.step(Control())  # keep frame
        sim.ego.set_pose(w.x, w.y, w.yaw)
        cmd, s_ego = sim._command(w.x, w.y)
        assert s_ego == pytest.approx(route.s[k], abs=1e-6)   # the projection's arc length
        assert cmd == w.command or cmd == route.waypoints[min(k + 1, len(route) - 1)].command
        seen.append(cmd)
    assert {RoadOption.LEFT, RoadOption.RIGHT, RoadOption.STRAIGHT} & set(seen)


def test_render_at_current_pose_equals_the_frame_and_differs_when_shifted(sim):
    st = sim.reset(scenario(), seed=6)
    e = st.world_state.ego
    same = sim.render_at(e.x, e.y, e.yaw)
    assert np.array_equal(same["center"], st.observation.frames["center"])
    right = (-math.sin(e.yaw), math.cos(e.yaw))
    shifted = sim.render_at(e.x + right[0], e.y + right[1], e.yaw)
    assert not np.array_equal(shifted["center"], st.observation.frames["center"])
    assert sim.current_step().world_state.ego == e  # the ego did not move


def test_vehicles_are_drawn_by_the_cameras(sim):
    st = sim.reset(scenario(), seed=8)
    before = st.observation.frames["center"]
    sim.spawn_static_vehicle_on_route(12.0, color=(200, 20, 20))
    after = sim.current_step().observation.frames["center"]
    changed = np.any(before != after, axis=2)
    assert changed.mean() > 0.02  # a car 12 m ahead covers a visible patch
    # ... in the middle of the image, below the horizon
    rows, cols = np.nonzero(changed)
    assert 0.3 * after.shape[1] < cols.mean() < 0.7 * after.shape[1]
