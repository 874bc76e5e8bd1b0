"""CarlaSimulator reads the server's traffic lights and runs walkers the
``generate_traffic.py`` way (against the fake server of fake_carla.py)."""

from __future__ import annotations

import math

import carla
import pytest

from drive_il.scenario import TrafficConfig
from drive_il.sim.carla.lights import stop_line_across
from drive_il.types import Control, EventKind, TrafficLightState

try:
    from .fake_carla import SIDEWALK_Y, STRAIGHT_XODR, FakeServer
    from .test_simulator import assert_clean, make, scenario
except ImportError:  # tests/ is not a package
    from fake_carla import SIDEWALK_Y, STRAIGHT_XODR, FakeServer
    from test_simulator import assert_clean, make, scenario


@pytest.fixture
def server() -> FakeServer:
    return FakeServer(port=2000)


# ----------------------------------------------------------------------------- lights

def test_stop_line_spans_the_lanes_right_edge_first():
    m = carla.Map("straight", STRAIGHT_XODR)
    wp = m.get_waypoint(carla.Location(x=50.0, y=1.75, z=0.0))  # lane -1, drives +x
    (x0, y0), (x1, y1) = stop_line_across([wp])
    assert x0 == pytest.approx(50.0) and x1 == pytest.approx(50.0)
    # driving +x in CARLA's left-handed frame, the right is +y
    assert y0 == pytest.approx(3.5) and y1 == pytest.approx(0.0)
    assert stop_line_across([]) == ((0.0, 0.0), (0.0, 0.0))


def test_traffic_lights_in_the_world_state_states_per_tick_geometry_once(server):
    light = server.add_traffic_light(60.0, 5.0, 90.0, stop_x=55.0, lanes=(-1,))
    other = server.add_traffic_light(70.0, -5.0, -90.0, stop_x=75.0, lanes=(1,),
                                     state=carla.TrafficLightState.Green)
    light.group = other.group = [light.id, other.id]
    sim = make(server)
    try:
        step = sim.reset(scenario(), seed=0)
        tl = {t.light_id: t for t in step.world_state.traffic_lights}
        assert set(tl) == {light.id, other.id}
        a, b = tl[light.id], tl[other.id]
        assert a.state is TrafficLightState.RED and b.state is TrafficLightState.GREEN
        assert a.group_id == b.group_id == min(light.id, other.id)
        assert (a.x, a.y) == (60.0, 5.0)
        assert a.yaw == pytest.approx(0.0, abs=1e-6)  # the controlled lane drives +x
        assert b.yaw == pytest.approx(math.pi, abs=1e-6) or b.yaw == pytest.approx(-math.pi, abs=1e-6)
        assert a.lanes == ((0, -1),) and b.lanes == ((0, 1),)
        (x0, y0), (x1, y1) = a.stop_line
        assert (x0, x1) == (pytest.approx(55.0), pytest.approx(55.0))
        assert (y0, y1) == (pytest.approx(3.5), pytest.approx(0.0))
        e0 = a.elapsed
        group_calls = server.rpc_calls.get("get_group_traffic_lights", 0)
        light.state = carla.TrafficLightState.Yellow
        step = sim.step(Control())
        tl = {t.light_id: t for t in step.world_state.traffic_lights}
        assert tl[light.id].state is TrafficLightState.YELLOW
        assert tl[light.id].elapsed == pytest.approx(e0 + 0.05)
        # static geometry is not read again per tick
        assert server.rpc_calls.get("get_group_traffic_lights", 0) == group_calls
        assert server.rpc_calls.get("get_stop_waypoints", 0) == 2
    finally:
        sim.close()


def test_no_lights_no_walkers_is_todays_world_state(server):
    sim = make(server)
    try:
        step = sim.reset(scenario(), seed=0)
        assert step.world_state.traffic_lights == () and step.world_state.walkers == ()
        assert sim.step(Control()).world_state.walkers == ()
        assert server.live("walker.*") == [] and server.cross_factor is None
    finally:
        sim.close()
    assert_clean(server)


def _start(server) -> tuple[float, float, float]:
    """The ego's start (x, y, yaw) of scenario() with seed 0 on a scratch server."""
    sim = make(FakeServer(port=server.port))
    e = sim.reset(scenario(), seed=0).world_state.ego
    sim.close()
    return e.x, e.y, e.yaw


@pytest.mark.parametrize("state, expected", [(carla.TrafficLightState.Red, 1),
                                             (carla.TrafficLightState.Green, 0)])
def test_running_a_red_light_is_an_event_by_the_shared_rule(server, state, expected):
    x, y, yaw = _start(server)
    d = math.cos(yaw)  # the straight road runs along x
    lane = -1 if d > 0 else 1
    light = server.add_traffic_light(x + 6.0 * d, y + 3.0, 90.0, stop_x=x + 6.0 * d, lanes=(lane,), state=state)
    sim = make(server)
    try:
        sim.reset(scenario(), seed=0)
        events = []
        for _ in range(60):
            events += [e for e in sim.step(Control(throttle=1.0)).events if e.kind is EventKind.RED_LIGHT]
        assert sim.step(Control()).world_state.ego.x * d > (x + 12.0 * d) * d  # the car's rear passed the line
        assert [e.other_actor for e in events] == [light.id] * expected
    finally:
        sim.close()


def test_nocrash_density_sets_the_counts(server, caplog):
    from drive_il.sim.density import NOCRASH_COUNTS
    sim = make(server)
    try:
        sim.reset(scenario(traffic=TrafficConfig(density="regular")), seed=0)
        v, w = NOCRASH_COUNTS[("Town01", "regular")]
        assert len(server.live("walker.pedestrian.*")) == w
        # the fake's 400 m road has fewer free spawn points than NoCrash's vehicles
        assert f"of {v} NPC spawn points are free" in caplog.text
    finally:
        sim.close()


# ----------------------------------------------------------------------------- walkers

def test_walkers_spawn_the_generate_traffic_way_move_and_are_destroyed(server):
    sc = scenario(traffic=TrafficConfig(walkers=6, walker_speed=1.5, junction_crossing=0.3))
    sim = make(server)
    step = sim.reset(sc, seed=3)
    walkers = server.live("walker.pedestrian.*")
    ctrls = server.live("controller.ai.walker")
    assert len(walkers) == 6 and len(ctrls) == 6
    assert {c.parent.id for c in ctrls} == {w.id for w in walkers}
    assert all(c.started and c.target is not None for c in ctrls)
    assert all(0.3 <= c.max_speed <= 3.0 and abs(c.max_speed - 1.5) <= 1.5 * 0.15 + 1e-9 for c in ctrls)
    assert server.cross_factor == pytest.approx(0.3) and server.pedestrians_seed == 3
    assert all(w.attributes["is_invincible"] == "false" for w in walkers)
    ws = step.world_state.walkers
    assert sorted(w.actor_id for w in ws) == sorted(w.id for w in walkers)
    assert all(abs(abs(w.y) - SIDEWALK_Y) < 1.0 and not w.on_road for w in ws)
    assert all(w.z == pytest.approx(1.0 - 0.9) and w.height == pytest.approx(1.8) for w in ws)
    before = {w.actor_id: (w.x, w.y) for w in ws}
    for _ in range(10):
        step = sim.step(Control())
    moved = [math.hypot(w.x - before[w.actor_id][0], w.y - before[w.actor_id][1]) for w in step.world_state.walkers]
    assert all(d > 0.3 for d in moved)
    assert all(0.5 < w.speed <= 3.0 for w in step.world_state.walkers)
    sim.close()
    assert_clean(server)  # controllers stopped, walkers and controllers destroyed
    stopped = [c for c in ctrls if c.started]
    assert stopped == []


def test_walker_batches_tick_with_the_gil_released(server):
    """The walkers are spawned while the ego's camera listens: their batches must not
    tick inside ``apply_batch_sync`` (the 0.9.16 client keeps the GIL there and a camera
    callback deadlocks it; the fake raises), but through ``world.tick()``."""
    sim = make(server)
    ticks = server.ticks
    sim.reset(scenario(traffic=TrafficConfig(walkers=3)), seed=4)
    assert server.gil_deadlocks == 0
    assert len(server.live("controller.ai.walker")) == 3 and all(c.started for c in server.live("controller.ai.walker"))
    assert server.ticks > ticks
    sim.close()


def test_walkers_are_reproducible_from_the_seed(server):
    sc = scenario(traffic=TrafficConfig(walkers=4))
    pos = []
    for port in (2000, 2001):
        srv = server if port == 2000 else FakeServer(port=port)
        sim = make(srv)
        step = sim.reset(sc, seed=11)
        pos.append(sorted((round(w.x, 6), round(w.y, 6)) for w in step.world_state.walkers))
        sim.close()
    assert pos[0] == pos[1] and len(pos[0]) == 4


def test_a_town_without_navigation_spawns_no_walkers(server, caplog):
    server.navigation = False
    sim = make(server)
    step = sim.reset(scenario(traffic=TrafficConfig(walkers=3)), seed=0)
    assert step.world_state.walkers == () and server.live("walker.*") == []
    assert "gave 0 of 3 walker locations" in caplog.text
    sim.close()


def test_a_collision_with_a_walker_is_a_walker_collision(server):
    sim = make(server)
    sim.reset(scenario(traffic=TrafficConfig(walkers=2, vehicles=1)), seed=0)
    walker = server.live("walker.pedestrian.*")[0]
    npc = [a for a in server.live("vehicle.*") if a.attributes["role_name"] == "autopilot"][0]
    server.collide_next_tick = (walker.id, (0.0, 30.0, 0.0))
    kinds = [(e.kind, e.other_actor) for e in sim.step(Control()).events]
    assert kinds == [(EventKind.WALKER_COLLISION, walker.id)]
    server.collide_next_tick = (npc.id, (0.0, 30.0, 0.0))
    kinds = [(e.kind, e.other_actor) for e in sim.step(Control()).events]
    assert kinds == [(EventKind.COLLISION, npc.id)]
    sim.close()
    assert_clean(server)
