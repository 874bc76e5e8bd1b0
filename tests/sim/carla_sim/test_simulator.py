"""CarlaSimulator against a test double of the ``carla`` API (tests/sim/carla_sim/fake_carla.py).

No CARLA server is needed: the double fakes Client/World/actors/sensors/Traffic
Manager; locations, rotations, settings, weather, controls and the map are the real
``carla`` classes (a real ``carla.Map`` parsed offline). Tests that need a real server
are marked ``carla_server`` and skipped unless ``CARLA_HOST`` is set.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import threading

import numpy as np
import pytest

import carla
from drive_il.errors import (
    FieldError,
    MapError,
    ScenarioError,
    SensorTimeoutError,
    SimulatorConnectionError,
    SimulatorLostError,
)
from drive_il.scenario import CameraConfig, Scenario, TrafficConfig
from drive_il.sim.base import Simulator, StartPose
from drive_il.sim.carla import CarlaSimulator, connect_schedule, image_to_rgb
from drive_il.types import Control, EventKind

try:
    from .fake_carla import EGO_BBOX, MAX_STEER_DEG, WHEELBASE, FakeImage, FakeServer, bgra_image
except ImportError:  # tests/ is not a package
    from fake_carla import EGO_BBOX, MAX_STEER_DEG, WHEELBASE, FakeImage, FakeServer, bgra_image

TM_PORT = 8123


def scenario(**kw) -> Scenario:
    kw.setdefault("town", "Town01")
    kw.setdefault("cameras", (CameraConfig(name="center", width=40, height=20),))
    kw.setdefault("route_length", 100.0)
    return Scenario(**kw)


def make(server: FakeServer, *, timeout: float = 1.0, **kw) -> CarlaSimulator:
    module = kw.pop("carla_module", None) or server.module()
    return CarlaSimulator(host="localhost", port=server.port, tm_port=TM_PORT, timeout=timeout,
                          carla_module=module, settle_seconds=kw.pop("settle_seconds", 0.1), **kw)


@pytest.fixture
def server() -> FakeServer:
    return FakeServer(port=2000)


@pytest.fixture
def sim(server):
    s = make(server)
    yield s
    s.close()


def ego_actor(server: FakeServer):
    (ego,) = [a for a in server.live("vehicle.*") if a.attributes.get("role_name") == "hero"]
    return ego


# ----------------------------------------------------------------------------- connect

def test_connect_schedule_spends_the_budget_with_doubling_pauses():
    sched = connect_schedule(9.0, attempts=3)
    assert len(sched) == 3
    assert sum(a + p for a, p in sched) == pytest.approx(9.0)
    pauses = [p for _, p in sched]
    assert pauses[1] == pytest.approx(2 * pauses[0]) and pauses[2] == 0.0
    short = connect_schedule(0.3, attempts=3)  # pauses never take more than a third
    assert sum(p for _, p in short) <= 0.1 + 1e-9 and all(a > 0 for a, _ in short)


def test_unreachable_server_is_one_line_naming_host_port_and_what_to_check(server):
    server.up = False
    with pytest.raises(SimulatorConnectionError) as ei:
        make(server, timeout=0.3)
    msg = str(ei.value)
    assert "\n" not in msg
    assert "localhost:2000" in msg and "within 0.3 s" in msg and "CarlaUE4.sh" in msg and "--port" in msg
    assert len(server.connect_attempts) == 3  # retried
    assert sum(server.attempt_timeouts) <= 0.3 + 1e-9  # the attempts share the 0.3 s budget


def test_an_unknown_host_fails_at_once_naming_it(server):
    with pytest.raises(SimulatorConnectionError, match="cannot resolve the CARLA host 'carla.invalid'"):
        CarlaSimulator(host="carla.invalid", port=server.port, timeout=5.0, carla_module=server.module())
    assert len(server.connect_attempts) == 1  # a name that does not resolve is not retried


def test_retries_until_the_server_answers(server):
    server.refuse_connects = 2
    sim = make(server, timeout=0.6)
    assert sim.connected and len(server.connect_attempts) == 3
    sim.close()


def test_version_mismatch_is_a_warning(server, caplog):
    server.version = "0.9.15"
    with caplog.at_level(logging.WARNING, logger="drive_il.sim.carla"):
        sim = make(server)
    assert "0.9.15" in caplog.text and "0.9.16" in caplog.text
    sim.close()


def returns(fn, hang_guard_s: float = 120.0):
    """``fn()``'s result (or its exception, re-raised) -- failing if it has not returned
    after ``hang_guard_s`` [s]: a guard against a hang, not a speed requirement."""
    box: dict = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as e:  # noqa: BLE001 -- handed to the caller
            box["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(hang_guard_s)
    assert not t.is_alive(), f"still running after {hang_guard_s} s"
    if "error" in box:
        raise box["error"]
    return box.get("value")


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_real_client_against_a_closed_port_fails_within_its_timeout():
    port = _closed_port()
    with pytest.raises(SimulatorConnectionError) as ei:
        returns(lambda: CarlaSimulator(host="localhost", port=port, timeout=1.0))
    msg = str(ei.value)
    assert f"localhost:{port}" in msg and "\n" not in msg and "within 1 s" in msg
    assert "Connection refused" in msg  # the version probe's word, before any carla.Client


def test_cli_command_without_a_server_fails_with_one_line():
    import subprocess
    import sys
    port = _closed_port()
    p = subprocess.run([sys.executable, "-m", "drive_il", "drive", "--backend", "carla", "--port", str(port),
                        "--timeout", "1"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and f"localhost:{port}" in lines[0] and "within 1 s" in lines[0], p.stderr


def test_before_reset_the_map_is_the_servers_and_close_changes_nothing(server):
    server.settings.synchronous_mode = True  # e.g. another client ticks this server
    sim = make(server)
    assert sim.map is server.maps["Town01"]
    sim.close()
    assert server.settings.synchronous_mode and server.settings_history == []


# ----------------------------------------------------------------------------- reset

def test_reset_sets_up_a_synchronous_session(server, sim):
    assert isinstance(sim, Simulator) and sim.backend == "carla"
    sc = scenario(weather="WetNoon", dt=0.05)
    step = sim.reset(sc, seed=0)
    assert server.settings.synchronous_mode and server.settings.fixed_delta_seconds == pytest.approx(0.05)
    assert server.weather == carla.WeatherParameters.WetNoon
    ego = ego_actor(server)
    assert ego.type_id == sc.vehicle.blueprint
    sensors = {a.type_id: a for a in server.live("sensor.*")}
    assert set(sensors) == {"sensor.camera.rgb", "sensor.other.collision", "sensor.other.lane_invasion"}
    assert all(s.parent is ego and s.is_listening for s in sensors.values())
    cam = sensors["sensor.camera.rgb"]
    assert (cam.attributes["image_size_x"], cam.attributes["image_size_y"], cam.attributes["fov"]) == ("40", "20", "60")
    # mount relative to the reference point (bbox centre at ground) -> actor origin
    (bx, by, bz), (_, _, ez) = EGO_BBOX
    c = sc.cameras[0]
    rel = cam.relative
    assert (rel.location.x, rel.location.y, rel.location.z) == pytest.approx((c.x + bx, c.y + by, c.z + bz - ez))
    assert (rel.rotation.pitch, rel.rotation.yaw) == pytest.approx((c.pitch_deg, c.yaw_deg))
    # first step
    assert step.events == () and step.observation.frame == 0 and step.observation.sim_time == 0.0
    assert step.observation.frames["center"].shape == (20, 40, 3)
    assert step.observation.frames["center"].dtype == np.uint8
    assert sim.server_frame == server.frame
    w0 = sim.route.waypoints[0]
    ws = step.world_state
    assert (ws.ego.x, ws.ego.y) == pytest.approx((w0.x, w0.y), abs=1e-4)
    assert ws.town == "Town01" and ws.weather == "WetNoon" and ws.dt == 0.05 and ws.route is sim.route
    assert sim.map is server.maps["Town01"]


def test_reset_loads_the_town_once_and_asynchronously(server, sim):
    sim.reset(scenario(town="Town01"), seed=0)  # the current town: kept, synchronous
    assert server.loads == [] and server.settings.synchronous_mode
    sim.reset(scenario(town="Town02"), seed=0)
    assert server.loads == ["Town02"]
    i = server.settings_history.index((False, None))  # asynchronous before loading
    assert server.settings_history[i + 1][0] is True
    calls = server.get_map_calls
    sim.reset(scenario(town="Town02"), seed=1)
    assert server.loads == ["Town02"] and server.get_map_calls == calls  # map cached
    assert server.settings.synchronous_mode


def test_a_town_the_server_lacks_is_built_from_opendrive(server, sim):
    from drive_il.maps import town_text
    step = sim.reset(scenario(town="circuit"), seed=0)  # a town the project generates
    sim.reset(scenario(town="circuit"), seed=1)
    assert server.generated == [town_text("circuit")[1]] and server.current == "OpenDriveMap"
    assert step.world_state.town == "circuit" and sim.map is server.maps["OpenDriveMap"]
    assert server.settings.synchronous_mode


def test_unknown_town_is_a_map_error(server, sim):
    with pytest.raises(MapError, match="'NoSuchTown'.*Town01"):
        sim.reset(scenario(town="NoSuchTown"), seed=0)


def test_bad_scenario_values_are_scenario_errors(server, sim):
    # a dt above CARLA's synchronous-mode limit (0.1 s) never reaches the backend: the
    # Scenario itself refuses it
    with pytest.raises(FieldError, match=r"'dt'.*0\.1\].*0\.2"):
        scenario(dt=0.2)
    with pytest.raises(ScenarioError, match="vehicle.nope"):
        sim.reset(scenario().replace(vehicle=scenario().vehicle.__class__(blueprint="vehicle.nope")), seed=0)
    server.block_spawn = True
    with pytest.raises(ScenarioError, match="cannot spawn the ego"):
        sim.reset(scenario(), seed=0)


def test_each_reset_replaces_the_previous_episode(server, sim):
    sim.reset(scenario(traffic=TrafficConfig(vehicles=3)), seed=0)
    first = {a.id for a in server.live()}
    sim.reset(scenario(traffic=TrafficConfig(vehicles=3)), seed=1)
    assert not first & {a.id for a in server.live()}
    assert len(server.live("vehicle.*")) == 4 and len(server.live("sensor.*")) == 3


# ----------------------------------------------------------------------------- units

def test_pose_units_and_reference_point(server, sim):
    # the fake road's topology holds the lane running along -x (y = -1.75): start on it, 30 deg off
    yaw = math.radians(-150.0)
    step = sim.reset(scenario(), seed=0, start=StartPose(x=350.0, y=-1.75, yaw=yaw))
    ego = ego_actor(server)
    assert ego.get_transform().rotation.yaw == pytest.approx(-150.0)  # degrees at the boundary
    e = step.world_state.ego
    assert e.yaw == pytest.approx(yaw) and (e.x, e.y) == pytest.approx((350.0, -1.75), abs=1e-4)
    loc = ego.get_transform().location  # the actor origin is 0.2 m behind the bbox centre
    assert (loc.x, loc.y) == pytest.approx((350.0 - 0.2 * math.cos(yaw), -1.75 - 0.2 * math.sin(yaw)), abs=1e-4)
    assert e.z == pytest.approx(0.0)  # ground, not the spawn lift
    assert e.wheelbase == pytest.approx(WHEELBASE, abs=1e-3) and e.max_steer_angle == pytest.approx(math.radians(MAX_STEER_DEG))
    assert (e.length, e.width, e.height) == pytest.approx((4.8, 2.0, 1.5))


def test_start_pose_with_speed(server, sim):
    step = sim.reset(scenario(), seed=0, start=StartPose(x=340.0, y=-1.75, yaw=math.pi, speed=5.0))
    assert step.world_state.ego.speed == pytest.approx(5.0, abs=0.01)


def test_given_route_and_its_command_at_the_ego(server, sim):
    from drive_il.types import RoadOption, Route, RouteWaypoint
    wps = tuple(RouteWaypoint(x=float(x), y=1.75, yaw=0.0,
                              command=RoadOption.LEFT if x >= 30 else RoadOption.LANEFOLLOW)
                for x in range(10, 61))
    route = Route(waypoints=wps)
    step = sim.reset(scenario(), seed=0, route=route)
    assert sim.route is route and step.observation.command is RoadOption.LANEFOLLOW
    # the target point: the plan's points are x = 10, 30 (the command's start) and 60;
    # from x = 10 the first beyond 7.5 m is x = 30, 20 m straight ahead
    assert step.observation.target_point == pytest.approx((20.0, 0.0), abs=1e-6)
    step = sim.reset(scenario(), seed=0, route=route, start=StartPose(x=29.8, y=1.75, yaw=0.0))
    assert step.observation.command is RoadOption.LEFT  # the nearer waypoint (x = 30)
    assert step.observation.target_point == pytest.approx((30.2, 0.0), abs=1e-6)   # on to x = 60


def test_speed_sign_and_yaw_rate(server, sim):
    sim.reset(scenario(), seed=0)
    for _ in range(10):
        step = sim.step(Control(throttle=1.0, steer=0.2))
    ego = ego_actor(server)
    e = step.world_state.ego
    assert e.speed == pytest.approx(ego.speed) and e.speed > 1.0
    assert step.observation.speed == e.speed
    assert e.yaw_rate == pytest.approx(math.radians(ego.yaw_rate_deg)) and e.yaw_rate > 0  # right turn
    assert e.steer_angle == pytest.approx(0.2 * math.radians(MAX_STEER_DEG))
    assert e.acceleration > 0
    sim.reset(scenario(), seed=0)
    for _ in range(10):
        step = sim.step(Control(throttle=1.0, reverse=True))
    assert step.world_state.ego.speed < -1.0
    assert step.observation.frame == 10 and step.observation.sim_time == pytest.approx(0.5)


def test_bgra_to_rgb():
    img = FakeImage(7, 0.0, 5, 3, 90.0, bgra_image(7, 5, 3))
    rgb = image_to_rgb(img)
    assert rgb.shape == (3, 5, 3) and rgb.dtype == np.uint8 and rgb.flags.c_contiguous
    assert (rgb[..., 0] == np.arange(3)[:, None]).all()  # R = row
    assert (rgb[..., 1] == 27).all() and (rgb[..., 2] == 10).all()
    with pytest.raises(SimulatorConnectionError, match="BGRA"):
        image_to_rgb(FakeImage(7, 0.0, 5, 4, 90.0, bgra_image(7, 5, 3)))


def test_frames_are_the_ticked_frame_in_rgb(server, sim):
    sim.reset(scenario(), seed=0)
    server.stale_images = {"center"}  # an older image arrives first: dropped
    step = sim.step(Control())
    img = step.observation.frames["center"]
    assert (img[..., 1] == 20 + server.frame % 200).all()
    assert (img[..., 0] == np.arange(20)[:, None]).all() and (img[..., 2] == 10).all()


def test_images_delivered_late_are_waited_for(server, sim):
    sim.reset(scenario(), seed=0)
    server.image_delay = 0.05
    step = sim.step(Control())
    assert (step.observation.frames["center"][..., 1] == 20 + server.frame % 200).all()


# ----------------------------------------------------------------------------- events

def test_collision_lane_invasion_and_off_road_events(server, sim):
    sim.reset(scenario(traffic=TrafficConfig(vehicles=2)), seed=0)
    npc = server.live("vehicle.audi.*") + server.live("vehicle.lincoln.*") + server.live("vehicle.tesla.*")
    other = next(a for a in npc if a.attributes["role_name"] != "hero")
    server.collide_next_tick = (other.id, (3.0, 4.0, 0.0))
    server.invade_next_tick = ["Broken", "Solid"]
    step = sim.step(Control())
    kinds = {e.kind: e for e in step.events}
    col, lane = kinds[EventKind.COLLISION], kinds[EventKind.LANE_INVASION]
    assert col.other_actor == other.id and col.impulse == pytest.approx(5.0) and col.frame == 1
    assert col.sim_time == pytest.approx(0.05)
    assert lane.marking == ("Broken", "Solid")
    assert EventKind.OFF_ROAD not in kinds
    # off-road: no CARLA sensor, detected on the map, reported when the ego leaves the road
    ego = ego_actor(server)
    tf = ego.get_transform()
    ego.transform = carla.Transform(carla.Location(x=tf.location.x, y=20.0, z=0.0), tf.rotation)
    assert [e.kind for e in sim.step(Control()).events] == [EventKind.OFF_ROAD]
    assert sim.step(Control()).events == ()  # still off the road: one event per excursion
    ego.transform = carla.Transform(carla.Location(x=tf.location.x, y=1.75, z=0.0), tf.rotation)
    assert sim.step(Control()).events == ()
    ego.transform = carla.Transform(carla.Location(x=tf.location.x, y=-20.0, z=0.0), tf.rotation)
    assert [e.kind for e in sim.step(Control()).events] == [EventKind.OFF_ROAD]


def test_spawn_time_events_are_not_reported(server, sim):
    server.collide_next_tick = (1, (0.0, 0.0, 1.0))  # delivered during the settle ticks
    step = sim.reset(scenario(), seed=0)
    assert step.events == () and sim.step(Control()).events == ()


def test_a_lasting_contact_is_one_collision(server, sim):
    sim.reset(scenario(traffic=TrafficConfig(vehicles=1)), seed=0)
    (npc,) = [a for a in server.live("vehicle.*") if a.attributes["role_name"] == "autopilot"]
    counts = []
    for k in range(6):
        if k in (0, 1, 2, 4):  # contact for three frames, a frame apart, contact again
            server.collide_next_tick = (npc.id, (0.0, 100.0 * (k + 1), 0.0))
        counts.append([e.impulse for e in sim.step(Control()).events if e.kind is EventKind.COLLISION])
    assert counts == [[100.0], [], [], [], [500.0], []]


# ----------------------------------------------------------------------------- traffic

def test_traffic_through_a_synchronous_seeded_traffic_manager(server, sim):
    sc = scenario(traffic=TrafficConfig(vehicles=5, min_spawn_distance=15.0))
    step = sim.reset(sc, seed=4)
    tm = server.tms[TM_PORT]
    assert tm.synchronous and tm.seed == 4 and tm.distance == sc.traffic.min_gap
    npcs = [a for a in server.live("vehicle.*") if a.attributes["role_name"] == "autopilot"]
    assert len(npcs) == 5 and all(a.autopilot and a.tm_port == TM_PORT for a in npcs)
    assert all(a.type_id != "vehicle.bh.crossbike" for a in npcs)
    e = step.world_state.ego
    for a in npcs:
        assert math.hypot(a.transform.location.x - e.x, a.transform.location.y - e.y) >= 15.0 - 0.3
        assert 7.0 * 0.8 * 3.6 - 1e-6 <= tm.desired_speed[a.id] <= 7.0 * 1.2 * 3.6 + 1e-6  # km/h
    assert {s.actor_id for s in step.world_state.actors} == {a.id for a in npcs}
    # the same seed chooses the same places on a fresh server
    other = FakeServer(port=2001)
    sim2 = make(other)
    sim2.reset(sc, seed=4)
    pos = lambda srv: sorted((round(a.transform.location.x, 3), round(a.transform.location.y, 3), a.type_id)
                             for a in srv.live("vehicle.*") if a.attributes["role_name"] == "autopilot")
    assert pos(server) == pos(other)
    sim2.close()


def test_a_busy_traffic_manager_port_is_a_clear_error(server, sim):
    server.busy_ports = {TM_PORT}
    with pytest.raises(SimulatorConnectionError, match=f"Traffic Manager on port {TM_PORT}.*--tm-port") as ei:
        sim.reset(scenario(traffic=TrafficConfig(vehicles=2)), seed=0)
    assert not isinstance(ei.value, SimulatorLostError)  # not retried: the run stops with one line


# ----------------------------------------------------------------------------- robustness

def assert_clean(server: FakeServer) -> None:
    assert server.live() == []
    assert not server.settings.synchronous_mode
    assert all(not tm.synchronous for tm in server.tms.values())
    assert server.unsafe_destroys == []  # TM vehicles destroyed through apply_batch only
    assert server.destroyed_listening == []  # sensors stopped before being destroyed


def test_close_restores_asynchronous_mode_and_destroys_everything(server):
    sim = make(server)
    sim.reset(scenario(traffic=TrafficConfig(vehicles=4)), seed=0)
    for _ in range(3):
        sim.step(Control(throttle=0.5))
    sim.close()
    assert_clean(server)
    n = len(server.settings_history)
    sim.close()  # idempotent
    assert len(server.settings_history) == n


def test_ctrl_c_in_the_middle_of_an_episode_cleans_up(server):
    sim = make(server)
    sim.reset(scenario(traffic=TrafficConfig(vehicles=3)), seed=0)
    sim.step(Control(throttle=0.5))
    server.interrupt_next_tick = True
    with pytest.raises(KeyboardInterrupt):
        sim.step(Control(throttle=0.5))
    assert_clean(server)
    sim.close()


def test_unexpected_error_in_a_step_cleans_up(server):
    sim = make(server)
    sim.reset(scenario(), seed=0)
    server.tick_hook = lambda srv: 1 / 0  # not a CARLA error: escapes the step
    with pytest.raises(ZeroDivisionError):
        sim.step(Control())
    assert_clean(server)


def test_atexit_hook_cleans_up(server, monkeypatch):
    import atexit
    hooks: list = []
    monkeypatch.setattr(atexit, "register", hooks.append)  # keep what the interpreter would run
    sim = make(server)
    assert not sim.atexit_registered
    sim.reset(scenario(), seed=0)
    assert sim.atexit_registered and len(hooks) == 1
    hooks[0]()  # what the interpreter runs at exit
    assert_clean(server)
    assert not sim.atexit_registered


def test_missing_frame_from_one_sensor_is_detected(server):
    sim = make(server, timeout=0.2)
    cams = (CameraConfig(name="center", width=40, height=20), CameraConfig(name="left", width=40, height=20, yaw_deg=-30))
    sim.reset(scenario(cameras=cams), seed=0)
    sim.step(Control())
    server.drop_images = {"left"}
    with pytest.raises(SensorTimeoutError) as ei:
        returns(lambda: sim.step(Control()))
    assert f"camera 'left' produced no image for frame {server.frame} within 0.2 s" in str(ei.value)
    assert isinstance(ei.value, SimulatorLostError)  # the rollout fails the episode and resets
    with pytest.raises(SimulatorLostError, match="call reset"):
        sim.step(Control())
    step = sim.reset(scenario(cameras=cams), seed=1)
    assert set(step.observation.frames) == {"center", "left"}
    assert set(sim.step(Control()).observation.frames) == {"center", "left"}
    sim.close()
    assert_clean(server)


def run_episodes(sim: CarlaSimulator, server: FakeServer, n: int, steps: int, fault: dict[int, str]) -> list[str]:
    """What the collector does: a lost episode is failed, the next reset reconnects."""
    results = []
    for ep in range(n):
        try:
            sim.reset(scenario(traffic=TrafficConfig(vehicles=2)), seed=ep)
            for k in range(steps):
                if k == 3 and ep in fault:
                    server.fail_next_tick = fault[ep]
                sim.step(Control(throttle=0.5))
            results.append("ok")
        except SimulatorLostError:
            results.append("failed")
            if not server.up:
                server.restart()  # the user's supervisor brings the server back
                server.refuse_connects = 1  # and it is not ready at the first attempt
    return results


def test_lost_server_fails_the_episode_and_the_run_continues(server):
    sim = make(server, timeout=0.5)
    attempts = len(server.connect_attempts)
    assert run_episodes(sim, server, 3, 6, {1: "crash"}) == ["ok", "failed", "ok"]
    assert len(server.connect_attempts) >= attempts + 2  # reconnected, with a retry
    assert server.settings.synchronous_mode  # the third episode runs synchronously again
    assert server.tms[TM_PORT].synchronous
    assert len(server.live("vehicle.*")) == 3
    sim.close()
    assert_clean(server)


def test_a_time_out_with_the_server_alive_destroys_the_lost_episodes_actors(server):
    sim = make(server, timeout=0.5)
    assert run_episodes(sim, server, 2, 6, {0: "hiccup"}) == ["failed", "ok"]
    assert len(server.live("vehicle.*")) == 3 and len(server.live("sensor.*")) == 3
    sim.close()
    assert_clean(server)


def test_close_after_a_lost_server_does_not_hang(server, caplog):
    sim = make(server, timeout=5.0)
    sim.reset(scenario(), seed=0)
    server.fail_next_tick = "crash"
    with pytest.raises(SimulatorLostError):
        sim.step(Control())
    attempts = len(server.connect_attempts)
    with caplog.at_level(logging.WARNING, logger="drive_il.sim.carla"):
        returns(sim.close)  # one short reconnection attempt, then gives up
    assert len(server.connect_attempts) == attempts + 1  # one attempt, not the full schedule
    assert server.attempt_timeouts[-1] <= 2.0  # short: not the 5 s time-out of the session
    assert "could not clean up" in caplog.text
    sim.close()  # idempotent: no further attempt
    assert len(server.connect_attempts) == attempts + 1
    server.restart()


def test_reset_when_the_server_is_gone_for_good_is_a_connection_error(server):
    sim = make(server, timeout=0.3)
    sim.reset(scenario(), seed=0)
    server.fail_next_tick = "crash"
    with pytest.raises(SimulatorLostError):
        sim.step(Control())
    with pytest.raises(SimulatorConnectionError) as ei:
        sim.reset(scenario(), seed=1)
    assert not isinstance(ei.value, SimulatorLostError) and "localhost:2000" in str(ei.value)


# ----------------------------------------------------------------------------- real server

@pytest.mark.carla_server
@pytest.mark.skipif("CARLA_HOST" not in os.environ, reason="needs a CARLA server: set CARLA_HOST (and CARLA_PORT)")
def test_real_server_episode():
    host, port = os.environ["CARLA_HOST"], int(os.environ.get("CARLA_PORT", "2000"))
    tm_port = int(os.environ.get("CARLA_TM_PORT", "8000"))
    sim = CarlaSimulator(host=host, port=port, tm_port=tm_port, timeout=20.0)
    try:
        sc = scenario(town=os.environ.get("CARLA_TOWN", "Town01"), traffic=TrafficConfig(vehicles=5))
        step = sim.reset(sc, seed=0)
        assert step.observation.frames["center"].shape == (20, 40, 3)
        for _ in range(40):
            step = sim.step(Control(throttle=0.5))
        assert step.world_state.ego.speed > 0.5 and step.observation.frame == 40
        assert len(step.world_state.actors) >= 1
    finally:
        sim.close()
    client = carla.Client(host, port)
    client.set_timeout(20.0)
    assert not client.get_world().get_settings().synchronous_mode


# ----------------------------------------------------------------------------- integration

def test_the_expert_and_the_rollout_drive_on_the_carla_backend_unchanged(server, sim):
    """The expert and the rollout, written for the embedded world, complete a route on
    the backend (the project's generated circuit, sent to the fake server as OpenDRIVE;
    the fake's vehicle is a kinematic bicycle with a 70 deg steering lock)."""
    from drive_il.expert.config import load_expert_config
    from drive_il.expert.expert import Expert
    from drive_il.rollout import Drivers, run_episode

    sc = scenario(town="circuit", route_length=150.0, episode_seconds=20.0)
    expert = Expert(config=load_expert_config(None), vehicle=sc.vehicle)
    result = run_episode(sim, sc, 0, Drivers(expert=expert))
    assert result.info.backend == "carla" and result.termination == "route_completed"
    s = result.summary
    assert s["route_completion"] == pytest.approx(100.0, abs=1.0)
    assert s["lateral_deviation_max"] < 0.6 and s["off_road"] == 0 and s["collisions"] == 0


def test_collect_on_a_lost_server_records_no_partial_episode_and_goes_on(server, tmp_path):
    """drive_il.collect with the backend: the server dies in the middle of episode 1 and
    comes back; episode 1 is failed and not written, episodes 0 and 2 are recorded."""
    from drive_il.data.storage import finished_episode_indices
    from drive_il.expert.config import load_expert_config
    from drive_il.expert.expert import Expert
    from drive_il.rollout import CollectSpec, Drivers, collect

    sc = scenario(episode_seconds=1.0)
    module = server.module()
    sim = make(server, carla_module=module)
    resets, steps = [], [0]
    real_reset, real_step = sim.reset, sim.step

    def reset(*a, **k):
        resets.append(1)
        steps[0] = 0
        return real_reset(*a, **k)

    def step(*a, **k):
        steps[0] += 1
        return real_step(*a, **k)

    sim.reset, sim.step = reset, step

    def hook(srv: FakeServer) -> None:  # in the tick of episode 1's sixth step (frame 5 -> 6)
        if len(resets) == 2 and steps[0] == 6 and srv.fail_next_tick is None and srv.up:
            srv.fail_next_tick = "crash"
            srv.refuse_connects = 1

    server.tick_hook = hook
    orig_module_client = module.Client

    def client(host, port, *a):  # the server is back by the time drive_il reconnects
        if not server.up:
            server.restart()
        return orig_module_client(host, port, *a)

    module.Client = client
    res = collect(sim, sc, tmp_path / "demos", CollectSpec(episodes=3),
                  Drivers(expert=Expert(config=load_expert_config(None), vehicle=sc.vehicle)), progress=False)
    assert res.failed == [1] and [r.info.episode for r in res.results] == [0, 2]
    assert sorted(finished_episode_indices(tmp_path / "demos")) == [0, 2]
    assert not (tmp_path / "demos" / "episode_000001.h5").exists()  # at most a *.partial, ignored by readers
    sim.close()
