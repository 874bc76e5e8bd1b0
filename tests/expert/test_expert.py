"""The expert in a test double of the world (the project's kinematic bicycle on a route,
scripted actors): tracking, recovery from perturbed states, lead vehicles, determinism.
The acceptance figures on the real embedded world are in test_acceptance.py."""

from __future__ import annotations

import math

import numpy as np
import pytest

from drive_il.rollout.driver import Driver
from drive_il.expert import Expert, load_expert_config
from drive_il.geometry import project_onto_polyline, wrap_angle
from drive_il.scenario import VehicleConfig
from drive_il.types import ActorState, Control, Route, RouteWaypoint

from .bicycle_world import BicycleWorld

carla = pytest.importorskip("carla")

from drive_il.routing import random_route
from drive_il.maps import TownMap, opendrive_gen

VEH = VehicleConfig()


@pytest.fixture(scope="module")
def grid_map():
    return TownMap.from_carla_map(carla.Map("grid", opendrive_gen.generate("grid")))


@pytest.fixture(scope="module")
def circuit_map():
    return TownMap.from_carla_map(carla.Map("circuit", opendrive_gen.generate("circuit")))


def straight_route(length: float = 400.0, speed_limit: float | None = None) -> Route:
    return Route(waypoints=tuple(RouteWaypoint(x=float(i), y=0.0, yaw=0.0, lane_width=3.5,
                                               speed_limit=speed_limit)
                                 for i in range(int(length) + 1)))


def drive(world: BicycleWorld, expert: Expert, *, max_steps: int = 6000, stop_at_end: bool = True,
          callback=None):
    """reset, act, step; returns per-step (s, lateral, heading error, speed, control)."""
    step = world.reset()
    expert.reset(step)
    r = world.route
    hint = int(project_onto_polyline(r.xy, r.s, world.car.x, world.car.y).index)
    out = []
    for _ in range(max_steps):
        c = expert.act(step)
        step = world.step(c)
        e = step.world_state.ego
        p = project_onto_polyline(r.xy, r.s, e.x, e.y, e.yaw, hint=hint)
        hint = p.index
        out.append((p.s, p.lateral, p.heading_error, e.speed, c))
        if callback is not None and callback(step, p):
            break
        if stop_at_end and p.s >= r.length - 0.5:
            break
    return out


def test_expert_is_a_driver():
    ex = Expert(config=load_expert_config("default"), vehicle=VEH)
    assert isinstance(ex, Driver) and ex.name == "expert"


@pytest.mark.parametrize("name,seed", [("grid", 0), ("grid", 1), ("circuit", 2)])
def test_tracks_a_route(name, seed, request):
    carla_map = request.getfixturevalue(f"{name}_map")
    route = random_route(carla_map, np.random.default_rng(seed), 400.0)
    out = drive(BicycleWorld(route), Expert(config=load_expert_config("default"), vehicle=VEH))
    lat = np.abs([o[1] for o in out])
    assert out[-1][0] >= route.length - 0.5          # route completed
    assert lat.mean() <= 0.15 and np.percentile(lat, 99) <= 0.5
    speeds = np.array([o[3] for o in out])
    assert speeds.max() <= route.waypoints[0].speed_limit * 1.03


def _perturbed_starts(route: Route, rng: np.random.Generator, n: int):
    """(x, y, yaw, speed, offset, dheading) at route points outside junctions with 60 m
    of junction-free road ahead."""
    junction = np.array([w.is_junction for w in route.waypoints])
    ok = [i for i in range(5, len(route) - 80) if not junction[i - 5:i + 60].any()]
    assert ok, "route has no straight stretch"
    starts = []
    for _ in range(n):
        i = ok[int(rng.integers(len(ok)))]
        off = float(rng.uniform(-1.5, 1.5))
        dh = math.radians(float(rng.uniform(-25.0, 25.0)))
        speed = float(rng.choice([0.0, 4.0, 7.0]))
        w = route.waypoints[i]
        x = w.x - off * math.sin(w.yaw)
        y = w.y + off * math.cos(w.yaw)
        starts.append((x, y, w.yaw + dh, speed, off, dh))
    return starts


def _recovery_distance(out, start_s: float) -> tuple[float, float]:
    """Travel [m] after which |lateral| stays <= 0.3 m, and the worst |lateral|."""
    lat = np.abs([o[1] for o in out])
    s = np.array([o[0] for o in out])
    bad = np.nonzero(lat > 0.3)[0]
    settle = s[bad[-1] + 1] - start_s if len(bad) else 0.0
    return float(settle), float(lat.max())


def test_recovers_from_perturbed_starts(grid_map):
    route = random_route(grid_map, np.random.default_rng(21), 700.0)
    rng = np.random.default_rng(5)
    cfg = load_expert_config("default")
    for x, y, yaw, speed, off, dh in _perturbed_starts(route, rng, 10):
        world = BicycleWorld(route, x=x, y=y, yaw=yaw, speed=speed)
        ex = Expert(config=cfg, vehicle=VEH)
        s0 = project_onto_polyline(route.xy, route.s, x, y).s
        out = drive(world, ex, callback=lambda st, p, s0=s0: p.s > s0 + 60.0)
        settle, worst = _recovery_distance(out, s0)
        assert settle <= 40.0, (off, math.degrees(dh), speed, settle)
        # never swings far out beyond the start offset (no cut across the road edge)
        assert worst <= abs(off) + 0.5, (off, math.degrees(dh), speed, worst)
        # the labels are smooth: steer changes at most max_steer_rate * dt per step
        steer = np.array([o[4].steer for o in out])
        assert np.abs(np.diff(steer)).max() <= cfg.max_steer_rate * 0.05 + 0.05


def test_recovers_from_the_neighbouring_lane(grid_map):
    route = random_route(grid_map, np.random.default_rng(22), 400.0)
    (x, y, _yaw, *_), = _perturbed_starts(route, np.random.default_rng(0), 1)
    # the opposite lane of a two-way road: one lane width to the left, same heading
    i = int(project_onto_polyline(route.xy, route.s, x, y).index)
    w = route.waypoints[i]
    x, y = w.x + w.lane_width * math.sin(w.yaw), w.y - w.lane_width * math.cos(w.yaw)
    for speed in (0.0, 6.0):
        world = BicycleWorld(route, x=x, y=y, yaw=w.yaw, speed=speed)
        out = drive(world, Expert(config=load_expert_config("default"), vehicle=VEH),
                    callback=lambda st, p: p.s > route.s[i] + 70.0)
        settle, worst = _recovery_distance(out, float(route.s[i]))
        assert settle <= 60.0 and worst <= w.lane_width + 0.3


def test_recovery_label_points_back_to_the_lane():
    route = straight_route()
    ex = Expert(config=load_expert_config("default"), vehicle=VEH)
    for off, dh in [(1.5, 0.0), (-1.5, 0.0), (0.0, math.radians(25)), (0.0, -math.radians(25)),
                    (1.5, math.radians(25)), (-1.5, -math.radians(25))]:
        world = BicycleWorld(route, x=50.0, y=off, yaw=dh, speed=5.0)
        st = world.reset()
        ex.reset(st)
        c = ex.act(st)
        # + offset (right of the lane) or heading to the right -> steer left, and vice versa
        assert c.steer * (off + 10 * dh) < 0.0
        assert abs(c.steer) <= 1.0


def test_stops_behind_a_stopped_vehicle():
    route = straight_route(300.0)
    lead = ActorState(actor_id=7, x=80.0, y=0.0, yaw=0.0, speed=0.0, length=4.5)
    world = BicycleWorld(route, speed=0.0, actors=(lead,))
    out = drive(world, Expert(config=load_expert_config("default"), vehicle=VEH), max_steps=800)
    speeds = np.array([o[3] for o in out])
    assert speeds.max() > 5.0 and speeds[-1] == 0.0
    front = world.car.x + 0.5 * VEH.length
    gap = (lead.x - 0.5 * lead.length) - front
    assert 2.0 <= gap <= 6.0


def test_follows_a_slower_vehicle_with_a_time_gap():
    route = straight_route(900.0)
    cfg = load_expert_config("default")
    lead = ActorState(actor_id=3, x=40.0, y=0.0, yaw=0.0, speed=4.0, length=4.5)
    world = BicycleWorld(route, speed=0.0, actors=(lead,))
    out = drive(world, Expert(config=cfg, vehicle=VEH), max_steps=1600)
    a = world.actors[0]
    gap = (a.x - 0.5 * a.length) - (world.car.x + 0.5 * VEH.length)
    assert world.car.speed == pytest.approx(4.0, abs=0.3)
    assert gap == pytest.approx(cfg.stop_gap + cfg.time_gap * 4.0, abs=2.0)
    assert min(o[3] for o in out[200:]) > 2.0      # follows, does not stop and go


def test_ignores_vehicles_in_the_opposite_lane():
    route = straight_route(300.0)
    oncoming = ActorState(actor_id=1, x=120.0, y=-3.5, yaw=math.pi, speed=8.0)
    world = BicycleWorld(route, actors=(oncoming,))
    out = drive(world, Expert(config=load_expert_config("default"), vehicle=VEH), max_steps=300)
    speeds = [o[3] for o in out]
    assert all(b >= a - 0.05 for a, b in zip(speeds[:150], speeds[1:150]))  # never brakes


def test_obeys_the_speed_limit_and_slows_for_curves(circuit_map):
    cfg = load_expert_config("default")
    route = straight_route(400.0, speed_limit=6.0)
    out = drive(BicycleWorld(route), Expert(config=cfg, vehicle=VEH))
    sp = np.array([o[3] for o in out])
    assert sp.max() <= 6.0 * 1.03 and sp[len(sp) // 2] == pytest.approx(6.0, abs=0.15)
    # on the circuit the lateral acceleration v^2 kappa stays near the limit
    route = random_route(circuit_map, np.random.default_rng(0), 600.0)
    ex = Expert(config=cfg, vehicle=VEH)
    out = drive(BicycleWorld(route), ex)
    kappa = np.interp([o[0] for o in out], ex._tracker.s, np.abs(ex._tracker.kappa))
    alat = np.array([o[3] for o in out]) ** 2 * kappa
    assert alat.max() <= cfg.lateral_accel_limit * 1.15


def test_deterministic():
    route = straight_route(200.0)
    cfg = load_expert_config("default")
    runs = []
    for _ in range(2):
        world = BicycleWorld(route, x=0.0, y=1.2, yaw=0.3, speed=3.0)
        runs.append([o[4] for o in drive(world, Expert(config=cfg, vehicle=VEH), max_steps=300)])
    assert runs[0] == runs[1]


def test_intended_path_and_target_speed():
    route = straight_route(200.0)
    ex = Expert(config=load_expert_config("default"), vehicle=VEH)
    world = BicycleWorld(route, x=20.0, y=1.0, yaw=0.0, speed=5.0)
    st = world.reset()
    ex.reset(st)
    assert ex.intended_path.shape[1] == 2
    ex.act(st)
    path = ex.intended_path
    assert path.ndim == 2 and path.shape[1] == 2 and len(path) > 10
    assert np.hypot(*(path[0] - (20.0, 1.0))) < 1e-6      # starts at the ego
    assert abs(path[-1, 1]) < 1e-6 and path[-1, 0] > 30.0  # ends on the route, ahead
    assert ex.target_speed > 0.0
    assert ex.lateral_deviation == pytest.approx(1.0)


def test_without_a_route_it_brakes():
    route = straight_route(50.0)
    world = BicycleWorld(route, speed=3.0)
    st = world.reset()
    from dataclasses import replace
    st = replace(st, world_state=replace(st.world_state, route=None))
    ex = Expert(config=load_expert_config("default"), vehicle=VEH)
    ex.reset(st)
    c = ex.act(st)
    assert isinstance(c, Control) and c.throttle == 0.0 and c.brake > 0.0


def test_heading_error_sign_convention():
    # sanity of the shared geometry used above: a car turned right of the lane has a
    # positive heading error, and right of the lane a positive lateral offset
    p = project_onto_polyline(np.array([[0.0, 0.0], [10.0, 0.0]]), np.array([0.0, 10.0]), 5.0, 1.0, 0.2)
    assert p.lateral > 0 and wrap_angle(p.heading_error) > 0


def test_teleport_relocates_on_the_route(grid_map):
    # DAgger and interventions may move the car anywhere on its route between steps
    route = random_route(grid_map, np.random.default_rng(30), 500.0)
    world = BicycleWorld(route)
    ex = Expert(config=load_expert_config("default"), vehicle=VEH)
    st = world.reset()
    ex.reset(st)
    ex.act(st)
    w = route.waypoints[350]
    world.car.set_pose(w.x, w.y, w.yaw, 5.0)
    ex.act(world._step())
    assert ex.route_progress == pytest.approx(route.s[350], abs=0.5)
    assert abs(ex.lateral_deviation) < 0.05


@pytest.fixture(scope="module")
def town04_map(maps_dir):
    return TownMap.from_carla_map(carla.Map("Town04", (maps_dir / "Town04.xodr").read_text()))


@pytest.mark.parametrize("side", ["left", "right"])
def test_changes_lane_where_the_route_asks(town04_map, side):
    from drive_il.routing import plan_route
    from drive_il.types import RoadOption
    m = town04_map
    g = m.lane_graph
    nbl = getattr(g, side)
    k = next(k for k, sg in enumerate(g.segments)
             if nbl[k] >= 0 and sg.length > 150 and np.nanmin(sg.limit) < 20)
    sg, nb = g.segments[k], g.segments[nbl[k]]
    r = plan_route(m, sg.xy[3], nb.xy[int(np.searchsorted(nb.s, 140.0))], start_yaw=float(sg.yaw[3]))
    want = RoadOption.CHANGELANELEFT if side == "left" else RoadOption.CHANGELANERIGHT
    assert int(want) in set(r.commands.tolist())
    out = drive(BicycleWorld(r, speed=8.0), Expert(config=load_expert_config("default"), vehicle=VEH))
    lat = np.abs([o[1] for o in out])
    assert out[-1][0] >= r.length - 0.5 and lat.max() < 0.3
