"""Walkers of the embedded world: sidewalks, crossing with gap acceptance and lights,
collisions (onset once), NPCs yielding, determinism, world wiring."""

from __future__ import annotations

import math

import numpy as np
import pytest

from drive_il.maps import load_town
from drive_il.maps.sidewalks import Crossing, sidewalk_network
from drive_il.scenario import CameraConfig, Scenario, TrafficConfig
from drive_il.sim.embedded import walkers as W
from drive_il.sim.embedded.traffic import Traffic
from drive_il.sim.embedded.walkers import WalkerCollisionDetector, Walkers
from drive_il.sim.embedded.world import EmbeddedSimulator
from drive_il.types import (
    Control,
    EventKind,
    TrafficLight,
    TrafficLightState,
    WalkerState,
)


class Car:
    """A vehicle stand-in (ego or NPC) for the walkers' gap check."""

    def __init__(self, x=1e4, y=1e4, yaw=0.0, speed=0.0, length=4.5, width=1.9):
        self.x, self.y, self.yaw, self.speed = x, y, yaw, speed
        self.length, self.width = length, width


@pytest.fixture(scope="module")
def grid():
    return load_town("grid")


def _walkers(town, n=1, seed=0, **cfg) -> Walkers:
    w = Walkers(town, TrafficConfig(walkers=n, **cfg), 0.05, np.random.default_rng([seed, 3]))
    w.spawn(n)
    return w


def _on_driving(carla_map, x, y) -> bool:
    import carla
    return carla_map.get_waypoint(carla.Location(float(x), float(y), 0.0), False,
                                  carla.LaneType.Driving) is not None


# --------------------------------------------------------------------------- walking
def test_walkers_stay_off_driving_lanes_unless_crossing(grid):
    w = _walkers(grid, 60, junction_crossing=0.8, midblock_crossing=2.0)
    ego = Car()
    seen_on_road = 0
    for k in range(1200):
        w.step(ego, ())
        if k % 10 == 0:
            for i in range(w.count):
                if w.on_road[i]:
                    seen_on_road += 1
                else:
                    assert not _on_driving(grid.map, w.x[i], w.y[i]), (k, i, int(w.mode[i]))
    assert w.crossings_started > 10 and seen_on_road > 0
    # they keep walking at their speeds: no NaN, all on the town
    assert np.isfinite(w.x).all() and np.isfinite(w.y).all()


def test_spawn_avoids_the_ego_start_and_bad_input(grid):
    w = Walkers(grid, TrafficConfig(walkers=50, min_spawn_distance=30.0), 0.05, np.random.default_rng(1))
    assert w.spawn(50, avoid=[(45.0, 45.0)]) == 50
    assert (np.hypot(w.x - 45.0, w.y - 45.0) >= 30.0 - 0.6).all()
    with pytest.raises(ValueError, match="spawned already"):
        w.spawn(3)
    with pytest.raises(ValueError, match="walker count"):
        Walkers(grid, TrafficConfig(), 0.05, np.random.default_rng(1)).spawn(-1)
    with pytest.raises(ValueError, match="dt"):
        Walkers(grid, TrafficConfig(), 0.0, np.random.default_rng(1))
    speeds = w.speed
    assert (speeds >= 1.4 * 0.8 - 1e-9).all() and (speeds <= 1.4 * 1.2 + 1e-9).all()


def test_states_ids_and_near_filter(grid):
    w = _walkers(grid, 40)
    st = w.states()
    assert len(st) == 40 and all(isinstance(s, WalkerState) for s in st)
    assert [s.actor_id for s in st] == list(range(100000, 100040))
    near = w.states((float(w.x[0]), float(w.y[0])), 20.0)
    assert st[0] in near and all(math.hypot(s.x - w.x[0], s.y - w.y[0]) <= 20.0 for s in near)


def test_same_seed_same_walkers_other_seed_other(grid):
    def run(seed):
        w = _walkers(grid, 30, seed=seed, junction_crossing=0.7, midblock_crossing=1.0)
        ego = Car(x=45.0, y=-2.0, speed=5.0)
        out = []
        for _ in range(300):
            w.step(ego, ())
            out.append(np.stack([w.x, w.y, w.yaw]).copy())
        return np.array(out)
    a, b, c = run(5), run(5), run(6)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


# --------------------------------------------------------------------------- crossing
def _crossing_case(grid):
    w = _walkers(grid, 1)
    c = sidewalk_network(grid).crossings[0]
    w.start_crossing(0, c)
    ux, uy = (c.b[0] - c.a[0]) / c.length, (c.b[1] - c.a[1]) / c.length
    nx, ny = -uy, ux  # along the road
    mx, my = 0.5 * (c.a[0] + c.b[0]), 0.5 * (c.a[1] + c.b[1])
    return w, c, (mx, my), (nx, ny)


def test_walker_crosses_a_clear_road(grid):
    w, c, _, _ = _crossing_case(grid)
    ego = Car()
    assert not w.on_road[0] and (w.x[0], w.y[0]) != pytest.approx(c.b)
    on_road = []
    for _ in range(int((c.length / w.speed[0] + 2.0) / 0.05)):
        w.step(ego, ())
        on_road.append(bool(w.on_road[0]))
    assert any(on_road) and not on_road[0]
    assert w.mode[0] == 0  # walking again, from the other side
    x, y, _ = sidewalk_network(grid).point_at(int(w.edge[0]), float(w.s[0]))
    assert math.hypot(x - c.b[0], y - c.b[1]) < 3.0


def test_walker_waits_while_a_vehicle_is_within_its_gap_then_never_stops_mid_road(grid):
    w, _c, (mx, my), (nx, ny) = _crossing_case(grid)
    car = Car(x=mx - 30.0 * nx, y=my - 30.0 * ny, yaw=math.atan2(ny, nx), speed=10.0)
    for _ in range(200):  # 10 s: the car keeps coming (held in place)
        w.step(car, ())
        assert w.mode[0] == 1 and not w.on_road[0]
    car.speed = 0.0  # it stopped: the walker goes
    for _ in range(W.GAP_CHECK_STEPS + 1):
        w.step(car, ())
    assert w.mode[0] == 2
    car.speed, car.x, car.y = 12.0, mx - 15.0 * nx, my - 15.0 * ny
    while w.mode[0] == 2:  # on the road it keeps walking whatever comes
        before = float(w.cs[0])
        w.step(car, ())
        assert w.mode[0] != 2 or w.cs[0] > before


def test_walker_holds_at_a_car_body_on_its_crossing_then_turns_back(grid):
    """A car standing across the crossing (moved there after the walker set off):
    the walker never comes within its radius + BODY_CLEARANCE of the body, and after
    TURN_BACK s walks back to the kerb it came from and on along the sidewalk."""
    w, c, (mx, my), (nx, ny) = _crossing_case(grid)
    far = Car()
    for _ in range(W.GAP_CHECK_STEPS + 1):
        w.step(far, ())
    assert w.mode[0] == 2
    ux, uy = (c.b[0] - c.a[0]) / c.length, (c.b[1] - c.a[1]) / c.length
    # a car along the road, its body over the middle of the crossing
    car = Car(x=mx + 0.5 * ux, y=my + 0.5 * uy, yaw=math.atan2(ny, nx), speed=0.0)
    held_at, turned = None, False
    for k in range(int(30.0 / 0.05)):
        w.step(car, ())
        dx, dy = w.x[0] - car.x, w.y[0] - car.y
        lon = abs(dx * math.cos(car.yaw) + dy * math.sin(car.yaw)) - 0.5 * car.length
        lat = abs(dy * math.cos(car.yaw) - dx * math.sin(car.yaw)) - 0.5 * car.width
        clear = math.hypot(max(lon, 0.0), max(lat, 0.0)) if lon > 0 and lat > 0 else max(lon, lat)
        assert clear >= W.WALKER_RADIUS  # never into the car
        if w.held[0] > 0 and held_at is None:
            held_at = k
        turned = turned or bool(w.returning[0])
        if w.mode[0] == 0:
            break
        last = (float(w.x[0]), float(w.y[0]))
    assert held_at is not None and turned
    assert w.mode[0] == 0  # walking on the sidewalk again (from where it was before crossing)
    # its last step on the crossing ended at the kerb it came from (a), not the far one
    assert math.hypot(last[0] - c.a[0], last[1] - c.a[1]) < 1.5


def test_walker_held_again_on_its_way_back_turns_once_more_and_crosses(grid):
    """Turned back by one car, then held by another that moved up behind it (between it
    and the kerb it came from): after TURN_BACK s it turns once more and finishes the
    crossing at the far kerb, so a car waiting beside it is never deadlocked with it."""
    w, c, (mx, my), (nx, ny) = _crossing_case(grid)
    far = Car()
    for _ in range(W.GAP_CHECK_STEPS + 1):
        w.step(far, ())
    ux, uy = (c.b[0] - c.a[0]) / c.length, (c.b[1] - c.a[1]) / c.length
    car = Car(x=mx + 0.5 * ux, y=my + 0.5 * uy, yaw=math.atan2(ny, nx), speed=0.0)
    for _ in range(int(10.0 / 0.05)):
        w.step(car, ())
        if w.returning[0]:
            break
    assert w.returning[0] and w.mode[0] == 2
    # the first car leaves; a second one stands across the way back, its side 0.2 m
    # beyond the walker's clearance
    d = W.WALKER_RADIUS + W.BODY_CLEARANCE + 0.5 * 1.9 + 0.2
    back = Car(x=float(w.x[0]) - d * ux, y=float(w.y[0]) - d * uy, yaw=math.atan2(ny, nx), speed=0.0)
    turned_again = False
    last = (float(w.x[0]), float(w.y[0]))
    for _ in range(int(30.0 / 0.05)):
        w.step(back, ())
        turned_again = turned_again or not bool(w.returning[0])
        if w.mode[0] == 0:
            break
        last = (float(w.x[0]), float(w.y[0]))
    assert turned_again and w.mode[0] == 0
    assert math.hypot(last[0] - c.b[0], last[1] - c.b[1]) < 1.5  # crossed after all
    assert math.hypot(last[0] - c.a[0], last[1] - c.a[1]) > 3.0


def test_vehicle_moving_away_or_far_does_not_block(grid):
    w, _c, (mx, my), (nx, ny) = _crossing_case(grid)
    away = Car(x=mx + 10.0 * nx, y=my + 10.0 * ny, yaw=math.atan2(ny, nx), speed=10.0)
    far = Car(x=mx - 120.0 * nx, y=my - 120.0 * ny, yaw=math.atan2(ny, nx), speed=10.0)
    for _ in range(W.GAP_CHECK_STEPS + 1):
        w.step(away, [far])
    assert w.mode[0] == 2


def test_walker_crosses_a_signalised_approach_only_on_red(grid):
    w, c, _, _ = _crossing_case(grid)
    head = TrafficLight(light_id=1, x=0.0, y=0.0, yaw=0.0, state=TrafficLightState.GREEN,
                        junction_id=c.junction_id, lanes=((c.road_id, -1), (c.road_id, 1)))
    other = TrafficLight(light_id=2, x=0.0, y=0.0, yaw=0.0, state=TrafficLightState.GREEN,
                         junction_id=c.junction_id, lanes=((c.road_id + 1000, -1),))
    for _ in range(40):
        w.step(Car(), (), (head, other))
    assert w.mode[0] == 1
    red = TrafficLight(light_id=1, x=0.0, y=0.0, yaw=0.0, state=TrafficLightState.RED,
                       junction_id=c.junction_id, lanes=head.lanes)
    for _ in range(W.GAP_CHECK_STEPS + 1):
        w.step(Car(), (), (red, other))
    assert w.mode[0] == 2


def test_start_crossing_bad_index(grid):
    w = _walkers(grid, 1)
    with pytest.raises(IndexError, match="walker index 3"):
        w.start_crossing(3, sidewalk_network(grid).crossings[0])


# --------------------------------------------------------------------------- collisions
class _Pos:
    def __init__(self, xs, ys):
        self.x, self.y = np.asarray(xs, float), np.asarray(ys, float)
        self.count = len(self.x)


def test_collision_box_against_circle_onset_once():
    det = WalkerCollisionDetector(length=4.0, width=2.0)
    # front face at x = 2; walker radius 0.3
    assert det.touching(0.0, 0.0, 0.0, np.array([2.25, 2.35, 0.0, 1.5]),
                        np.array([0.0, 0.0, 1.25, 1.2])).tolist() == [0, 2, 3]
    # a corner: (2, 1) -> walker at distance 0.28 touches, 0.32 does not
    d = 0.28 / math.sqrt(2)
    assert len(det.touching(0.0, 0.0, 0.0, np.array([2 + d]), np.array([1 + d]))) == 1
    d = 0.32 / math.sqrt(2)
    assert len(det.touching(0.0, 0.0, 0.0, np.array([2 + d]), np.array([1 + d]))) == 0
    # rotated ego: yaw 90 deg, front towards +y
    assert len(det.touching(0.0, 0.0, math.pi / 2, np.array([0.0]), np.array([2.2]))) == 1
    far, hit = _Pos([10.0], [0.0]), _Pos([2.2], [0.0])
    det.prime(0.0, 0.0, 0.0, far)
    kinds = []
    for pos in (far, hit, hit, hit, far, hit):
        kinds.append([(e.kind, e.other_actor) for e in det.detect(0.0, 0.0, 0.0, pos, 1, 0.05)])
    wid = W.WALKER_ID_BASE
    assert kinds == [[], [(EventKind.WALKER_COLLISION, wid)], [], [], [],
                     [(EventKind.WALKER_COLLISION, wid)]]


# --------------------------------------------------------------------------- NPCs yield
def _npc_and_walker(grid):
    tr = Traffic(grid.map, TrafficConfig(vehicles=1, speed_spread=0.0), dt=0.05,
                 rng=np.random.default_rng(0))
    pts = [p for p in grid.spawn_points]
    assert tr.spawn(1, pts[:1]) == 1
    npc = tr.vehicles[0]
    npc.speed = 7.0
    tr._extend(npc, 80.0)
    j = next(k for k, s in enumerate(npc.ps) if s >= 40.0)
    px, py, yaw = npc.px[j], npc.py[j], npc.pyaw[j]
    lx, ly = math.sin(yaw), -math.cos(yaw)  # left of the lane direction (y is south)
    a, b = (px + 3.0 * lx, py + 3.0 * ly), (px - 6.0 * lx, py - 6.0 * ly)
    w = _walkers(grid, 1)
    w.gap[0] = 0.5
    w.speed[0] = 0.7  # a slow walker: the NPC must brake hard
    c = Crossing(a, b, -1, -1, -1, -1, 1.0, 1.0, 9.0, to_edge=int(w.edge[0]), to_s=0.0)
    w.start_crossing(0, c)
    return tr, npc, w


@pytest.mark.parametrize("yield_to_walkers", [True, False])
def test_npc_stops_for_a_crossing_walker(grid, yield_to_walkers):
    tr, npc, w = _npc_and_walker(grid)
    ego = Car()
    det = WalkerCollisionDetector(length=npc.length, width=npc.width)
    hit, min_speed, crossed = False, math.inf, False
    for _ in range(400):
        obstacles = w.obstacles() if yield_to_walkers else ()
        tr.step(ego, walkers=obstacles)
        w.step(ego, tr.vehicles)
        crossed |= bool(w.on_road[0])
        hit |= len(det.touching(npc.x, npc.y, npc.yaw, w.x, w.y)) > 0
        if w.mode[0] == 2:
            min_speed = min(min_speed, npc.speed)
    assert crossed
    if yield_to_walkers:
        assert not hit and min_speed < 2.5  # it braked (from 7 m/s) and let the walker pass
        assert npc.speed > 3.0  # and drove on after
    else:
        assert hit  # the same situation without yielding: the NPC runs the walker over


# --------------------------------------------------------------------------- world
SMALL = (CameraConfig(name="center", width=64, height=32),)


def test_world_with_walkers_is_deterministic_and_fills_world_state():
    def run(seed):
        sim = EmbeddedSimulator()
        sc = Scenario(town="grid", cameras=SMALL, route_length=150.0,
                      traffic=TrafficConfig(vehicles=4, walkers=40, midblock_crossing=1.0))
        st = sim.reset(sc, seed=seed)
        out = [st.world_state.walkers]
        for _ in range(60):
            st = sim.step(Control(throttle=0.3), render=False)
            out.append(st.world_state.walkers)
        frame = sim.render_frames()["center"]
        return sim, out, frame
    sim, a, fa = run(4)
    _, b, fb = run(4)
    assert a == b and np.array_equal(fa, fb)
    assert sim.walkers.count == 40 and len(a[-1]) > 0
    assert all(s.actor_id >= 100000 for s in a[-1])
    _, c, _ = run(5)
    assert c != a


def test_world_without_walkers_has_none():
    sim = EmbeddedSimulator(render=False)
    st = sim.reset(Scenario(town="grid", cameras=SMALL, route_length=100.0), seed=1)
    assert sim.walkers is None and st.world_state.walkers == ()
    st = sim.step(Control(throttle=0.5))
    assert st.world_state.walkers == ()


def test_world_reports_walker_collision_once():
    sim = EmbeddedSimulator(render=False)
    sc = Scenario(town="grid", cameras=SMALL, route_length=100.0,
                  traffic=TrafficConfig(walkers=30, junction_crossing=0.0))
    sim.reset(sc, seed=2)
    w = sim.walkers
    i = next(k for k in range(w.count) if 12.0 < w.s[k] < w.elen[k] - 20.0 and w.mode[k] == 0)
    yaw = float(w.yaw[i])
    sim.teleport(float(w.x[i]) - 6.0 * math.cos(yaw), float(w.y[i]) - 6.0 * math.sin(yaw), yaw,
                 speed=6.0)
    hits = []
    for _ in range(40):
        st = sim.step(Control(throttle=0.6))
        hits += [e.other_actor for e in st.events if e.kind is EventKind.WALKER_COLLISION]
    assert hits == [W.WALKER_ID_BASE + i]


def test_zero_walkers_bit_identical_whatever_the_walker_settings():
    """No walkers: the walker settings draw nothing and change nothing (frames, poses,
    NPCs); walkers draw from their own stream, so the NPCs spawn where they did."""
    def run(**walker_cfg):
        sim = EmbeddedSimulator()
        sc = Scenario(town="grid", cameras=SMALL, route_length=150.0,
                      traffic=TrafficConfig(vehicles=5, **walker_cfg))
        steps = [sim.reset(sc, seed=7)]
        for _ in range(40):
            steps.append(sim.step(Control(steer=0.05, throttle=0.4)))
        return steps
    a = run()
    b = run(walker_speed=2.5, junction_crossing=1.0, midblock_crossing=30.0)
    for sa, sb in zip(a, b):
        assert sa.world_state == sb.world_state and sa.events == sb.events
        assert np.array_equal(sa.observation.frames["center"], sb.observation.frames["center"])
    with_walkers = run(walkers=30)
    assert with_walkers[0].world_state.actors == a[0].world_state.actors
    assert with_walkers[0].world_state.walkers != ()
