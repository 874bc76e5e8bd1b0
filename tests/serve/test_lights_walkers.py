"""Traffic lights and walkers of ``drive-il serve`` through the real ``carla`` 0.9.16
client (127.0.0.1 only): ``traffic.traffic_light`` actors with their state, times,
groups and stop waypoints; a vehicle's traffic-light state at a red stop line; walkers
spawned the way CARLA's ``generate_traffic.py`` spawns them, moved by the client's own
navigation on the served mesh; a collision with a walker; and the CARLA backend
reading both from the server."""

from __future__ import annotations

import math
import struct

import pytest

carla = pytest.importorskip("carla")

from drive_il.maps.signals import signal_layout
from drive_il.maps.towns import load_town
from drive_il.serve.navmesh import (
    AREA_CROSSWALK,
    AREA_ROAD,
    AREA_SIDEWALK,
    build_navmesh,
)
from drive_il.serve.process import ServerProcess, free_port

#: A generated town (no shared maps needed) with signalised junctions and sidewalks.
TOWN = "grid"
DT = 0.05


@pytest.fixture(scope="module")
def grid_server(tmp_path_factory):
    log = tmp_path_factory.mktemp("serve_grid") / "server.log"
    # the client caches the served navigation mesh here, not under ~/carlaCache
    carla.Client("127.0.0.1", 1).set_files_base_folder(str(tmp_path_factory.mktemp("carla_cache")))
    srv = ServerProcess(town=TOWN, log_level="INFO", log_file=log, startup_timeout=90.0)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def world(grid_server):
    """A synchronous world (fixed 0.05 s), put back to asynchronous afterwards."""
    client = carla.Client("127.0.0.1", grid_server.port)
    client.set_timeout(30.0)
    w = client.get_world()
    s = w.get_settings()
    s.synchronous_mode, s.fixed_delta_seconds = True, DT
    w.apply_settings(s)
    w.reset_all_traffic_lights()
    try:
        yield client, w
    finally:
        left = [a.id for a in w.get_actors() if a.type_id.split(".")[0] in ("vehicle", "walker", "controller", "sensor")]
        if left:
            client.apply_batch_sync([carla.command.DestroyActor(i) for i in left], False)
        s.synchronous_mode, s.fixed_delta_seconds = False, None
        w.apply_settings(s)


@pytest.fixture(scope="module")
def layout():
    return signal_layout(load_town(TOWN))


# ----------------------------------------------------------------------------- navmesh (no server)

def test_navmesh_file_layout_and_connectivity():
    nav = build_navmesh(load_town(TOWN))
    data = nav.data
    magic, version, tiles = struct.unpack_from("<iii", data, 0)
    assert magic == (ord("M") << 24) | (ord("S") << 16) | (ord("E") << 8) | ord("T") and version == 1 and tiles == 1
    ref, size = struct.unpack_from("<Ii", data, 40)
    assert ref != 0 and size == len(data) - 48
    hdr = struct.unpack_from("<15i", data, 48)
    assert hdr[0] == (ord("D") << 24) | (ord("N") << 16) | (ord("A") << 8) | ord("V") and hdr[1] == 7
    assert hdr[6] == len(nav.polys) and hdr[7] == len(nav.verts) < 65536
    assert set(nav.areas.tolist()) == {AREA_SIDEWALK, AREA_CROSSWALK, AREA_ROAD}
    # every polygon fans with a positive Detour area (dtTriArea2D on x, z = CARLA y)
    v = nav.verts
    for p in nav.polys[:500]:
        a, b, c = v[p[0]], v[p[1]], v[p[2]]
        assert (c[0] - a[0]) * (b[1] - a[1]) - (b[0] - a[0]) * (c[1] - a[1]) > 0.0
    # neighbouring sidewalk quads share edges (a connected walkway, not loose quads)
    edges = {}
    for p in nav.polys:
        for j in range(len(p)):
            e = tuple(sorted((p[j], p[(j + 1) % len(p)])))
            edges[e] = edges.get(e, 0) + 1
    shared = sum(1 for n in edges.values() if n >= 2)
    assert shared > len(nav.polys) * 0.9


# ----------------------------------------------------------------------------- traffic lights

def test_traffic_lights_are_actors_with_state_times_group_and_stop_waypoints(world, layout):
    _client, w = world
    lights = sorted(w.get_actors().filter("traffic.traffic_light"), key=lambda a: a.id)
    assert len(lights) == len(layout.heads) > 0
    states = {str(tl.get_state()) for tl in lights}
    assert states <= {"Red", "Yellow", "Green"} and "Green" in states and "Red" in states
    tl = lights[0]
    assert (tl.get_green_time(), tl.get_yellow_time(), tl.get_red_time()) == (10.0, 3.0, 2.0)
    group = tl.get_group_traffic_lights()
    assert tl.id in {g.id for g in group} and len(group) >= 2
    assert sum(str(g.get_state()) == "Green" for g in group) <= 1  # one head's turn at a time
    # stop waypoints (the client walks the trigger volume): on a controlled lane, at the line
    by_pos = {}
    for h in layout.heads:
        by_pos[(round(h.x, 1), round(h.y, 1))] = h
    for a in lights[:6]:
        loc = a.get_transform().location
        h = by_pos[(round(loc.x, 1), round(loc.y, 1))]
        wps = a.get_stop_waypoints()
        assert wps and {(w_.road_id, w_.lane_id) for w_ in wps} <= set(h.lanes)
        (x0, y0), (x1, y1) = h.stop_line
        for wp in wps:
            p = wp.transform.location
            # distance from the stop line segment [m]
            dx, dy = x1 - x0, y1 - y0
            t = max(0.0, min(1.0, ((p.x - x0) * dx + (p.y - y0) * dy) / (dx * dx + dy * dy)))
            assert math.hypot(p.x - (x0 + t * dx), p.y - (y0 + t * dy)) < 3.0
    assert len(tl.get_light_boxes()) == 1


def test_set_state_freeze_and_reset(world):
    _client, w = world
    tl = min(w.get_actors().filter("traffic.traffic_light"), key=lambda a: a.id)
    w.tick()
    tl.set_state(carla.TrafficLightState.Yellow)
    w.tick()
    assert tl.get_state() == carla.TrafficLightState.Yellow and tl.get_elapsed_time() <= 2 * DT + 1e-6
    tl.freeze(True)
    for _ in range(400):  # 20 s: longer than a turn (15 s)
        w.tick()
    assert tl.is_frozen() and tl.get_state() == carla.TrafficLightState.Yellow
    assert tl.get_elapsed_time() > 19.0
    w.reset_all_traffic_lights()
    w.tick()
    assert not tl.is_frozen()
    group = tl.get_group_traffic_lights()
    assert str(min(group, key=lambda a: a.get_pole_index()).get_state()) == "Green"


def test_cycle_runs_green_yellow_red(world):
    _client, w = world
    tl = next(a for a in w.get_actors().filter("traffic.traffic_light") if a.get_state() == carla.TrafficLightState.Green)
    seen = []
    for _ in range(int(16.0 / DT)):
        w.tick()
        s = str(tl.get_state())
        if not seen or seen[-1] != s:
            seen.append(s)
    assert seen[:3] == ["Green", "Yellow", "Red"]


def test_a_vehicle_at_a_red_stop_line_reads_its_light(world, layout):
    _client, w = world
    lights = {(round(a.get_transform().location.x, 1), round(a.get_transform().location.y, 1)): a
              for a in w.get_actors().filter("traffic.traffic_light")}
    h = layout.heads[0]
    tl = lights[(round(h.x, 1), round(h.y, 1))]
    (x0, y0), (x1, y1) = h.stop_line
    c, s = math.cos(h.yaw), math.sin(h.yaw)
    mx, my = 0.5 * (x0 + x1), 0.5 * (y0 + y1)
    tf = carla.Transform(carla.Location(x=mx - 5.0 * c, y=my - 5.0 * s, z=0.5), carla.Rotation(yaw=math.degrees(h.yaw)))
    v = w.spawn_actor(w.get_blueprint_library().find("vehicle.tesla.model3"), tf)
    far = carla.Transform(carla.Location(x=mx - 40.0 * c, y=my - 40.0 * s, z=0.5), carla.Rotation(yaw=math.degrees(h.yaw)))
    tl.set_state(carla.TrafficLightState.Red)
    tl.freeze(True)
    w.tick()
    assert v.is_at_traffic_light()
    assert v.get_traffic_light_state() == carla.TrafficLightState.Red
    assert v.get_traffic_light().id == tl.id
    tl.set_state(carla.TrafficLightState.Green)
    w.tick()
    assert v.get_traffic_light_state() == carla.TrafficLightState.Green
    v.set_transform(far)
    w.tick()
    assert not v.is_at_traffic_light() and v.get_traffic_light() is None
    tl.freeze(False)


# ----------------------------------------------------------------------------- walkers

def test_generate_traffic_walkers_spawn_move_and_are_destroyed(world):
    """CARLA's generate_traffic.py walker path: random navigation locations, a batch of
    walkers, a batch of controllers attached to them, a tick, the cross factor, then
    start / go_to_location / set_max_speed; destroyed with controllers stopped first."""
    client, w = world
    w.set_pedestrians_seed(3)
    spawn = [carla.Transform(loc) for loc in (w.get_random_location_from_navigation() for _ in range(10)) if loc is not None]
    assert len(spawn) == 10
    m = w.get_map()
    for t in spawn:  # random locations are on the sidewalks
        assert m.get_waypoint(t.location, project_to_road=False, lane_type=carla.LaneType.Sidewalk) is not None
    bps = [bp for bp in w.get_blueprint_library().filter("walker.pedestrian.*") if int(bp.get_attribute("generation")) == 2]
    SpawnActor = carla.command.SpawnActor
    batch = []
    for i, t in enumerate(spawn):
        bp = bps[i % len(bps)]
        bp.set_attribute("is_invincible", "false")
        batch.append(SpawnActor(bp, t))
    res = client.apply_batch_sync(batch, True)
    assert [r.error for r in res] == [""] * 10
    walkers = [r.actor_id for r in res]
    ctrl_bp = w.get_blueprint_library().find("controller.ai.walker")
    res = client.apply_batch_sync([SpawnActor(ctrl_bp, carla.Transform(), i) for i in walkers], True)
    assert [r.error for r in res] == [""] * 10
    ctrls = [r.actor_id for r in res]
    all_id = [x for pair in zip(ctrls, walkers) for x in pair]
    all_actors = w.get_actors(all_id)
    assert [a.id for a in all_actors] == all_id  # generate_traffic.py relies on the order
    w.tick()
    w.set_pedestrians_cross_factor(0.0)
    for i in range(0, len(all_id), 2):
        all_actors[i].start()
        all_actors[i].go_to_location(w.get_random_location_from_navigation())
        all_actors[i].set_max_speed(1.4)
    assert all(all_actors[i].parent.id == all_actors[i + 1].id for i in range(0, len(all_id), 2))
    start = {a.id: a.get_location() for a in w.get_actors(walkers)}
    for _ in range(40):  # 2 s
        w.tick()
    moved = []
    for a in w.get_actors(walkers):
        loc = start[a.id]
        now = a.get_location()
        moved.append(math.hypot(now.x - loc.x, now.y - loc.y))
        assert now.z == pytest.approx(loc.z, abs=0.5)  # on the ground, not flying or sinking
    assert all(1.0 < d <= 1.4 * 2.0 + 0.2 for d in moved), moved
    speeds = [math.hypot(a.get_velocity().x, a.get_velocity().y) for a in w.get_actors(walkers)]
    assert max(speeds) > 0.5
    for i in range(0, len(all_id), 2):
        all_actors[i].stop()
    client.apply_batch_sync([carla.command.DestroyActor(x) for x in all_id], True)
    assert len(w.get_actors().filter("walker.*")) == 0 and len(w.get_actors().filter("controller.*")) == 0


def test_walker_control_and_a_collision_with_a_walker(world):
    client, w = world
    lib = w.get_blueprint_library()
    sp = w.get_map().get_spawn_points()[0]
    v = w.spawn_actor(lib.find("vehicle.tesla.model3"), sp)
    events = []
    col = w.spawn_actor(lib.find("sensor.other.collision"), carla.Transform(), attach_to=v)
    col.listen(events.append)
    yaw = math.radians(sp.rotation.yaw)
    ahead = carla.Location(x=sp.location.x + 12.0 * math.cos(yaw), y=sp.location.y + 12.0 * math.sin(yaw), z=1.0)
    walker = w.spawn_actor(lib.find("walker.pedestrian.0001"), carla.Transform(ahead))
    w.tick()
    # a WalkerControl walks it (direction, speed)
    walker.apply_control(carla.WalkerControl(direction=carla.Vector3D(x=0.0, y=0.0, z=0.0), speed=0.0))
    v.apply_control(carla.VehicleControl(throttle=1.0))
    for _ in range(80):
        w.tick()
        if events:
            break
    assert events and events[0].other_actor.type_id.startswith("walker.pedestrian.")
    assert events[0].other_actor.id == walker.id
    col.stop()
    client.apply_batch_sync([carla.command.DestroyActor(x) for x in (col.id, walker.id, v.id)], True)


def test_walker_control_moves_a_walker(world):
    client, w = world
    loc = w.get_random_location_from_navigation()
    walker = w.spawn_actor(w.get_blueprint_library().find("walker.pedestrian.0002"), carla.Transform(loc))
    w.tick()
    a = walker.get_location()
    walker.apply_control(carla.WalkerControl(direction=carla.Vector3D(x=1.0, y=0.0, z=0.0), speed=1.5))
    for _ in range(20):  # 1 s
        w.tick()
    b = walker.get_location()
    assert b.x - a.x == pytest.approx(1.5, abs=0.1) and b.y == pytest.approx(a.y, abs=1e-3)
    assert walker.get_control().speed == pytest.approx(1.5)
    client.apply_batch_sync([carla.command.DestroyActor(walker.id)], True)


# ----------------------------------------------------------------------------- the CARLA backend on serve

def test_carla_backend_reads_served_lights_and_runs_walkers(grid_server):
    from drive_il.scenario import CameraConfig, LightsConfig, Scenario, TrafficConfig
    from drive_il.sim.carla import CarlaSimulator
    from drive_il.types import Control
    sc = Scenario(town=TOWN, route_length=60.0, cameras=(CameraConfig(name="center", width=40, height=20),),
                  traffic=TrafficConfig(walkers=8, walker_speed=1.4), lights=LightsConfig(enabled=False))
    sim = CarlaSimulator(host="127.0.0.1", port=grid_server.port,
                         tm_port=free_port(avoid={grid_server.port, grid_server.stream_port}), timeout=60.0)
    try:
        step = sim.reset(sc, seed=5)
        ws = step.world_state
        assert len(ws.traffic_lights) == len(signal_layout(load_town(TOWN)).heads)
        assert all(t.lanes and t.stop_line != ((0.0, 0.0), (0.0, 0.0)) for t in ws.traffic_lights)
        assert len(ws.walkers) == 8
        start = {p.actor_id: (p.x, p.y) for p in ws.walkers}
        for _ in range(40):
            step = sim.step(Control(brake=1.0))
        moved = [math.hypot(p.x - start[p.actor_id][0], p.y - start[p.actor_id][1]) for p in step.world_state.walkers]
        assert len(moved) == 8 and min(moved) > 1.0
        assert all(abs(p.z) < 0.5 and p.height == pytest.approx(1.8) for p in step.world_state.walkers)
        assert {t.state.name for t in step.world_state.traffic_lights} >= {"RED", "GREEN"}
    finally:
        sim.close()
    client = carla.Client("127.0.0.1", grid_server.port)
    client.set_timeout(20.0)
    assert len(client.get_world().get_actors().filter("walker.*")) == 0
