"""The server-side world model (no network): spawning, autopilot, attachment, collisions."""

from __future__ import annotations

import math

import pytest

pytest.importorskip("carla")

from drive_il.maps import load_town
from drive_il.serve import encoding as E
from drive_il.serve.autopilot import make_follower
from drive_il.serve.streams import StreamServer
from drive_il.serve.world import ServerWorld


@pytest.fixture(scope="module")
def town():
    return load_town("circuit")


@pytest.fixture
def world(town):
    streams = StreamServer("127.0.0.1", 0)
    w = ServerWorld(town, episode_id=1, streams=streams)
    yield w
    streams.stop()


def _tf(p, ahead=0.0):
    return E.transform(p.x + ahead * math.cos(p.yaw), p.y + ahead * math.sin(p.yaw), p.z,
                       0.0, math.degrees(p.yaw), 0.0)


def test_spawn_rejects_overlaps_and_unknown_blueprints(world, town):
    p = town.spawn_points[0]
    world.spawn_vehicle("vehicle.tesla.model3", 1, {}, _tf(p), owner=1)
    with pytest.raises(ValueError, match="collision"):
        world.spawn_vehicle("vehicle.audi.a2", 2, {}, _tf(p, 2.0), owner=1)
    with pytest.raises(ValueError, match="unknown vehicle"):
        world.spawn_vehicle("vehicle.nope", 3, {}, _tf(p, 30.0), owner=1)
    world.spawn_vehicle("vehicle.audi.a2", 2, {}, _tf(p, 8.0), owner=1)  # clear of the first
    assert len(world.vehicles) == 2


def test_autopilot_follows_its_lane(world, town):
    import carla
    p = town.spawn_points[3]
    v = world.spawn_vehicle("vehicle.toyota.prius", 1, {}, _tf(p), owner=1)
    v.autopilot = True
    worst = 0.0
    for _ in range(300):  # 15 s
        world.step(0.05, followers=lambda v: make_follower(town.map, seed=0, vehicle_id=v.id, episode=1))
        m = v.model
        wp = town.map.get_waypoint(carla.Location(m.x, m.y, 0.0))
        loc = wp.transform.location
        worst = max(worst, math.hypot(loc.x - m.x, loc.y - m.y))
    assert v.model.odometer > 50.0  # it drove (target ~5.8 m/s)
    assert worst < 1.0  # and stayed near its lane centre


def test_sensor_follows_parent_and_is_detached_when_the_parent_goes(world, town):
    p = town.spawn_points[5]
    v = world.spawn_vehicle("vehicle.tesla.model3", 1, {}, _tf(p), owner=1)
    cam = world.spawn_sensor("sensor.camera.rgb", 9, {"image_size_x": "64", "image_size_y": "32"},
                             E.transform(1.5, 0.0, 2.0), v.id, owner=1)
    x, y, z, _pitch, yaw, _roll = world.world_transform(cam)
    assert x == pytest.approx(v.model.x + 1.5 * math.cos(v.model.yaw), abs=1e-6)
    assert y == pytest.approx(v.model.y + 1.5 * math.sin(v.model.yaw), abs=1e-6)
    assert z == pytest.approx(v.model.z + 2.0) and yaw == pytest.approx(math.degrees(v.model.yaw))
    assert cam.stream and len(world.record(cam)[5]) == 24  # a sensor record carries its token
    assert world.destroy(v.id) and not world.destroy(v.id)
    assert cam.parent == 0 and world.world_transform(cam)[:2] == pytest.approx((x, y))
    with pytest.raises(ValueError, match="parent"):
        world.spawn_sensor("sensor.other.collision", 10, {}, E.transform(0, 0, 0), 12345, owner=1)


def test_collision_events_on_the_sensor_stream(world, town):
    import socket
    import struct
    import time

    import msgpack
    world.streams.start()
    p = town.spawn_points[7]
    ego = world.spawn_vehicle("vehicle.tesla.model3", 1, {}, _tf(p), owner=1)
    other = world.spawn_vehicle("vehicle.audi.a2", 2, {}, _tf(p, 10.0), owner=1)
    col = world.spawn_sensor("sensor.other.collision", 3, {}, E.transform(0, 0, 0), ego.id, owner=1)
    with socket.create_connection(("127.0.0.1", world.streams.port), timeout=5) as c:
        c.sendall(struct.pack("<I", col.stream))
        deadline = time.monotonic() + 5
        while not world.streams.has_subscribers(col.stream) and time.monotonic() < deadline:
            time.sleep(0.01)
        ego.control = (1.0, 0.0, 0.0, False, False, False, 0)
        for _ in range(80):  # drive into the other car (and through it: kinematic bodies)
            world.step(0.05, followers=lambda v: None)
        c.settimeout(0.5)
        msgs = []
        try:
            while True:
                (n,) = struct.unpack("<I", c.recv(4, socket.MSG_WAITALL))
                msgs.append(c.recv(n, socket.MSG_WAITALL))
        except (TimeoutError, struct.error):
            pass
    assert len(msgs) == 1  # one contact onset
    kind, frame, t = struct.unpack_from("<QQd", msgs[0])
    assert kind == E.COLLISION_SENSOR and 0 < frame <= world.frame and t == pytest.approx(frame * 0.05)
    me, them, impulse = msgpack.unpackb(msgs[0][48:], raw=False)
    assert me[0] == ego.id and them[0] == other.id and them[2][1] == "vehicle.audi.a2"
    assert len(impulse) == 3 and math.hypot(*impulse) > 0.0
