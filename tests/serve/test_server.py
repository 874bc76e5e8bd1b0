"""``drive-il serve`` driven by the real, unmodified ``carla`` 0.9.16 client."""

from __future__ import annotations

import queue
import re
import subprocess
import sys
import threading
import time

import pytest

from .conftest import PLAIN_CLIENT, run_plain_client, server_log

carla = pytest.importorskip("carla")


def test_plain_client_script(server, tm_port):
    """Connect, synchronous mode, ego + RGB camera + collision sensor, Traffic Manager
    traffic, 200 ticks with every image's frame equal to its tick, clean-up."""
    out = run_plain_client(server, tm_port, "--ticks", "200", "--npcs", "3")
    assert out["version"] == "0.9.16"
    assert out["map"] == "Carla/Maps/circuit"
    assert out["ticks"] == 200
    assert out["mismatches"] == []  # every image: frame == tick, 200x88 BGRA
    assert out["last_image_std"] > 5.0  # a rendered scene, not a blank buffer
    # the ego drove (throttle 0.6) into the vehicle parked 14 m ahead: one collision event
    assert [other for _frame, other in out["collisions"]] == [out["parked_id"]]
    assert out["ego_moved"] > 20.0
    # the client's Traffic Manager drove its 3 vehicles along their lanes
    assert out["npcs"] == 3
    assert all(d > 10.0 for d in out["npc_moved"]), out["npc_moved"]
    assert out["actors_during"] >= 1 + 2 + 3 + 3  # spectator, ego, parked, 3 sensors, 3 npcs
    assert out["destroy_errors"] == []
    assert out["settings_restored"]
    assert out["actors_after"] == ["spectator"]


def _wait_line(proc: subprocess.Popen, text: str, timeout: float) -> bool:
    """True once ``proc`` printed a line containing ``text`` (bounded by ``timeout``)."""
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for line in proc.stdout:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if text in lines.get(timeout=0.2):
                return True
        except queue.Empty:
            if proc.poll() is not None:
                return False
    return False


def test_client_killed_mid_episode_leaves_server_healthy(server, tm_port):
    from drive_il.serve.process import free_port

    proc = subprocess.Popen([sys.executable, str(PLAIN_CLIENT), str(server.port), "--tm-port", str(tm_port),
                             "--hang-after", "40", "--spawn-index", "20"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert _wait_line(proc, "HANGING", 60.0), "the client did not reach the middle of its episode"
    finally:
        proc.kill()  # by its pid, in the middle of a synchronous episode
        proc.wait(10)
    assert server.alive()
    # a new client (another Traffic Manager port, other spawn points) runs a full episode
    out = run_plain_client(server, free_port(avoid={server.port, server.stream_port, tm_port}),
                           "--ticks", "60", "--npcs", "1", "--spawn-index", "60")
    assert out["ticks"] == 60 and out["mismatches"] == []
    assert out["settings_restored"]
    log = server_log(server)
    assert "back to asynchronous" in log  # the dead client's synchronous mode was undone
    assert "forgetting its Traffic Manager" in log
    # the dead client's actors went with its connection (no other connection from its
    # address was open): its ego, parked vehicle, sensors and Traffic Manager vehicles
    assert re.search(r"destroyed the \d+ actors it spawned", log), log[-3000:]
    client = carla.Client("127.0.0.1", server.port)
    client.set_timeout(10.0)
    world = client.get_world()
    assert [a.type_id for a in world.get_actors()] == ["spectator"]


def test_unsupported_and_unknown_calls_fail_like_carla(server):
    client = carla.Client("127.0.0.1", server.port)
    client.set_timeout(10.0)
    world = client.get_world()
    lib = world.get_blueprint_library()
    v = world.spawn_actor(lib.find("vehicle.audi.a2"), world.get_map().get_spawn_points()[5])
    try:
        with pytest.raises(RuntimeError, match="not supported"):
            v.get_physics_control()  # a known call, a feature the server does not model
        with pytest.raises(RuntimeError, match="rpc_error during call in function "
                                               "get_actor_component_world_transform"):
            v.get_component_world_transform("wheel")  # a call the server does not know
        v.open_door(carla.VehicleDoor.FL)  # asynchronous: the client ignores the answer
        with pytest.raises(RuntimeError, match="not found"):
            client.load_world("NoSuchTown")
        with pytest.raises(RuntimeError):
            world.spawn_actor(lib.find("vehicle.audi.a2"), world.get_map().get_spawn_points()[5])  # occupied
        assert v.bounding_box.extent.x == pytest.approx(3.83 / 2, abs=1e-3)
    finally:
        client.apply_batch_sync([carla.command.DestroyActor(v.id)], False)
    log = server_log(server)
    for asked in ("get_physics_control", "get_actor_component_world_transform", "open_vehicle_door"):
        assert asked in log  # logged what was asked


def test_load_world_weather_and_async_ticking(server):
    client = carla.Client("127.0.0.1", server.port)
    client.set_timeout(60.0)
    assert "/Game/Carla/Maps/grid" in client.get_available_maps()
    first = client.get_world()
    world = client.load_world("grid")
    try:
        assert world.id != first.id
        assert world.get_map().name == "Carla/Maps/grid"
        # asynchronous mode: the server ticks on its own (~20 Hz)
        a = world.wait_for_tick(5.0).frame
        b = world.wait_for_tick(5.0).frame
        assert b > a
        w = carla.WeatherParameters.HardRainSunset
        world.set_weather(w)
        got = world.get_weather()
        assert got.precipitation == pytest.approx(w.precipitation)
        assert got.sun_altitude_angle == pytest.approx(w.sun_altitude_angle)
        assert "geoReference" in world.get_map().to_opendrive()
        # a town the server does not have, sent by the client (copy_opendrive_to_file +
        # load_world("OpenDriveMap"))
        from drive_il.maps import town_text
        text = town_text("circuit")[1]
        gen = client.generate_opendrive_world(text, carla.OpendriveGenerationParameters())
        assert gen.get_map().name == "Carla/Maps/OpenDriveMap"
        assert len(gen.get_map().get_topology()) == len(carla.Map("c", text).get_topology())
    finally:
        client.load_world("circuit")
