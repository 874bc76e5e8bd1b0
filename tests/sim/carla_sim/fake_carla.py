"""A test double of the ``carla`` client API, backed by an in-memory fake server.

Only the boundary :mod:`drive_il.sim.carla` uses is faked: ``Client``,
``World``, ``BlueprintLibrary``, actors and sensors with ``listen`` callbacks, the
Traffic Manager and ``carla.command``. Value classes that work offline are the REAL
``carla`` ones (``Location``, ``Rotation``, ``Transform``, ``Vector3D``,
``BoundingBox``, ``WorldSettings``, ``WeatherParameters``, ``VehicleControl``,
``LaneType``, ``LaneMarkingType``) and so is the map: a real ``carla.Map`` parsed
offline from a small OpenDRIVE road (:data:`STRAIGHT_XODR`).

The fake server keeps what a test checks afterwards (settings history, live actors,
destroy calls, connection attempts) and takes faults through flags:

* ``fail_next_tick = "crash"``: the next ``world.tick`` raises CARLA's time-out
  ``RuntimeError`` and the server is down until :meth:`FakeServer.restart`;
  ``"hiccup"``: it raises once and the server keeps its actors;
* ``drop_images = {"left"}``: the named cameras send nothing for the next tick;
* ``stale_images = {"center"}``: the named cameras first send an older frame again;
* ``interrupt_next_tick``: the next tick raises ``KeyboardInterrupt`` (Ctrl-C);
* ``collide_next_tick = (other_id, (ix, iy, iz))``, ``invade_next_tick = ["Broken"]``.

Traffic lights (:meth:`FakeServer.add_traffic_light`: a ``traffic.traffic_light`` actor
with its state, elapsed time, group and stop waypoints on the real map) and walkers
(``walker.pedestrian.*`` blueprints, ``controller.ai.walker`` with start / stop /
go_to_location / set_max_speed, a navigation that gives random sidewalk locations beside
the road, ``set_pedestrians_seed`` and ``set_pedestrians_cross_factor``) are faked too;
a started walker walks straight to its target at its maximum speed.

Usage::

    server = FakeServer()
    carla_double = server.module()
    sim = CarlaSimulator(port=server.port, carla_module=carla_double)
"""

from __future__ import annotations

import fnmatch
import math
import threading
import types
from dataclasses import dataclass, field
from typing import Any, Callable

import carla  # the real client module: its value types work without a server

__all__ = ["FakeServer", "STRAIGHT_XODR", "straight_map", "EGO_BBOX", "WHEELBASE", "MAX_STEER_DEG",
           "SIDEWALK_Y", "WALKER_BBOX"]

#: Ego bounding box of the fake vehicles: the centre 0.2 m ahead of the actor origin.
EGO_BBOX = ((0.2, 0.0, 0.75), (2.4, 1.0, 0.75))
#: Wheel layout of the fake vehicles: front axle 1.5 m ahead, rear 1.375 m behind.
WHEELBASE = 2.875
MAX_STEER_DEG = 70.0


def _lane(lane_id: int, mark: str) -> str:
    return (f'<lane id="{lane_id}" type="driving" level="false"><link/>'
            f'<width sOffset="0" a="3.5" b="0" c="0" d="0"/>'
            f'<roadMark sOffset="0" type="{mark}" weight="standard" color="white" width="0.15" laneChange="none"/>'
            f'</lane>')


#: A straight two-lane road, 400 m along +x, one lane each way, a broken centre line.
STRAIGHT_XODR = f"""<?xml version="1.0" standalone="yes"?>
<OpenDRIVE>
  <header revMajor="1" revMinor="4" name="straight" version="1" north="0" south="0" east="0" west="0">
    <geoReference><![CDATA[+proj=tmerc +lat_0=0 +lon_0=0 +k=1 +x_0=0 +y_0=0 +datum=WGS84 +units=m +no_defs]]></geoReference>
  </header>
  <road name="r0" length="400.0" id="0" junction="-1">
    <link/>
    <type s="0" type="town"/>
    <planView>
      <geometry s="0" x="0" y="0" hdg="0" length="400.0"><line/></geometry>
    </planView>
    <elevationProfile><elevation s="0" a="0" b="0" c="0" d="0"/></elevationProfile>
    <lateralProfile/>
    <lanes>
      <laneSection s="0">
        <left>{_lane(1, "solid")}</left>
        <center><lane id="0" type="none" level="false"><link/>
          <roadMark sOffset="0" type="broken" weight="standard" color="white" width="0.15" laneChange="both"/></lane></center>
        <right>{_lane(-1, "solid")}</right>
      </laneSection>
    </lanes>
  </road>
</OpenDRIVE>
"""


def straight_map(name: str = "Carla/Maps/Town01") -> "carla.Map":
    """A real ``carla.Map`` of :data:`STRAIGHT_XODR` (parsed offline)."""
    return carla.Map(name, STRAIGHT_XODR)


# ---------------------------------------------------------------------------- blueprints

@dataclass
class FakeAttribute:
    value: str
    recommended_values: list[str] = field(default_factory=list)

    def as_int(self) -> int:
        return int(self.value)

    def as_float(self) -> float:
        return float(self.value)

    def __str__(self) -> str:
        return self.value


class FakeBlueprint:
    def __init__(self, bp_id: str, attrs: dict[str, FakeAttribute]) -> None:
        self.id = bp_id
        self.tags = bp_id.split(".")
        self._attrs = {k: FakeAttribute(v.value, list(v.recommended_values)) for k, v in attrs.items()}

    def has_attribute(self, name: str) -> bool:
        return name in self._attrs

    def get_attribute(self, name: str) -> FakeAttribute:
        if name not in self._attrs:
            raise IndexError(f"blueprint '{self.id}': no attribute '{name}'")
        return self._attrs[name]

    def set_attribute(self, name: str, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError(f"set_attribute({name!r}) takes a str, got {type(value).__name__}")
        self.get_attribute(name).value = value

    def copy(self) -> "FakeBlueprint":
        return FakeBlueprint(self.id, self._attrs)


def _default_blueprints() -> list[FakeBlueprint]:
    A = FakeAttribute

    def vehicle(bp_id: str, wheels: int) -> FakeBlueprint:
        return FakeBlueprint(bp_id, {"role_name": A("autopilot"), "number_of_wheels": A(str(wheels)),
                                     "color": A("200,10,10", ["200,10,10", "10,10,200", "240,240,240"])})
    cam = FakeBlueprint("sensor.camera.rgb", {"image_size_x": A("800"), "image_size_y": A("600"),
                                              "fov": A("90"), "sensor_tick": A("0.0"), "role_name": A("front")})
    return [vehicle("vehicle.tesla.model3", 4), vehicle("vehicle.audi.a2", 4),
            vehicle("vehicle.lincoln.mkz_2020", 4), vehicle("vehicle.bh.crossbike", 2), cam,
            FakeBlueprint("sensor.other.collision", {"role_name": A("front")}),
            FakeBlueprint("sensor.other.lane_invasion", {"role_name": A("front")}),
            FakeBlueprint("walker.pedestrian.0001", {"role_name": A("pedestrian"), "is_invincible": A("true"),
                                                     "speed": A("1.4", ["0.0", "1.4", "2.5"])}),
            FakeBlueprint("walker.pedestrian.0002", {"role_name": A("pedestrian"), "is_invincible": A("true"),
                                                     "speed": A("1.2", ["0.0", "1.2", "2.2"])}),
            FakeBlueprint("controller.ai.walker", {"role_name": A("")})]


class FakeBlueprintLibrary:
    def __init__(self, server: "FakeServer") -> None:
        self._server = server

    def find(self, bp_id: str) -> FakeBlueprint:
        self._server._rpc("find")
        for bp in self._server.blueprints:
            if bp.id == bp_id:
                return bp.copy()
        raise IndexError(f"blueprint '{bp_id}' not found")

    def filter(self, pattern: str) -> list[FakeBlueprint]:
        return [bp.copy() for bp in self._server.blueprints if fnmatch.fnmatch(bp.id, pattern)]


# ---------------------------------------------------------------------------- actors

class FakeActor:
    """A vehicle (or the base of a sensor) on the fake server."""

    def __init__(self, server: "FakeServer", actor_id: int, bp: FakeBlueprint, tf: "carla.Transform",
                 parent: "FakeActor | None" = None) -> None:
        self._server = server
        self.id = actor_id
        self.type_id = bp.id
        self.attributes = {k: v.value for k, v in bp._attrs.items()}
        self.parent = parent
        self.relative = tf if parent is not None else None
        self.transform = carla.Transform(carla.Location(x=tf.location.x, y=tf.location.y, z=tf.location.z),
                                         carla.Rotation(pitch=tf.rotation.pitch, yaw=tf.rotation.yaw,
                                                        roll=tf.rotation.roll))
        (bx, by, bz), (ex, ey, ez) = EGO_BBOX
        self.bounding_box = carla.BoundingBox(carla.Location(x=bx, y=by, z=bz), carla.Vector3D(x=ex, y=ey, z=ez))
        self.speed = 0.0  # signed, along the heading [m/s]
        self.accel = 0.0
        self.yaw_rate_deg = 0.0
        self.control = carla.VehicleControl()
        self.alive = True
        self.born = server.frame  # the frame it was spawned in
        self.autopilot = False
        self.landed = False

    # reads (from the snapshot in the real client: no RPC, but dead actors are errors)
    def get_transform(self) -> "carla.Transform":
        return self.transform

    def get_location(self) -> "carla.Location":
        return self.transform.location

    def get_velocity(self) -> "carla.Vector3D":
        yaw = math.radians(self.transform.rotation.yaw)
        return carla.Vector3D(x=self.speed * math.cos(yaw), y=self.speed * math.sin(yaw), z=0.0)

    def get_acceleration(self) -> "carla.Vector3D":
        yaw = math.radians(self.transform.rotation.yaw)
        return carla.Vector3D(x=self.accel * math.cos(yaw), y=self.accel * math.sin(yaw), z=0.0)

    def get_angular_velocity(self) -> "carla.Vector3D":
        return carla.Vector3D(x=0.0, y=0.0, z=self.yaw_rate_deg)

    def get_control(self) -> "carla.VehicleControl":
        return self.control

    @property
    def is_alive(self) -> bool:
        return self.alive

    # calls
    def apply_control(self, control: "carla.VehicleControl") -> None:
        self._server._rpc("apply_control")
        self.control = control

    def set_transform(self, tf: "carla.Transform") -> None:
        self._server._rpc("set_transform")
        self.transform = tf

    def set_target_velocity(self, v: "carla.Vector3D") -> None:
        self._server._rpc("set_target_velocity")
        yaw = math.radians(self.transform.rotation.yaw)
        self.speed = v.x * math.cos(yaw) + v.y * math.sin(yaw)

    def get_physics_control(self) -> Any:
        self._server._rpc("get_physics_control")
        yaw = math.radians(self.transform.rotation.yaw)
        c, s = math.cos(yaw), math.sin(yaw)
        loc = self.transform.location
        wheels = []
        for fwd, right, steer in ((1.5, -0.8, MAX_STEER_DEG), (1.5, 0.8, MAX_STEER_DEG),
                                  (-1.375, -0.8, 0.0), (-1.375, 0.8, 0.0)):
            x = loc.x + fwd * c - right * s
            y = loc.y + fwd * s + right * c
            wheels.append(types.SimpleNamespace(  # world coordinates in centimetres, as CARLA
                position=carla.Vector3D(x=100 * x, y=100 * y, z=100 * loc.z), max_steer_angle=steer))
        return types.SimpleNamespace(wheels=wheels)

    def destroy(self) -> bool:
        self._server._rpc("destroy")
        if self.autopilot:
            self._server.unsafe_destroys.append(self.id)  # aborts the real client
        if isinstance(self, FakeSensor) and self.is_listening:
            self._server.destroyed_listening.append(self.id)
        return self._server._destroy(self.id)


#: Bounding box of the fake walkers: a 0.5 m x 0.5 m x 1.8 m box about the actor origin.
WALKER_BBOX = ((0.0, 0.0, 0.0), (0.25, 0.25, 0.9))
#: Distance of the fake navigation's sidewalk locations from the road's centre line [m].
SIDEWALK_Y = 5.5


class FakeTrafficLight(FakeActor):
    """A ``traffic.traffic_light`` actor: state and elapsed time from the snapshot."""

    def __init__(self, *a: Any, **k: Any) -> None:
        super().__init__(*a, **k)
        self.state = carla.TrafficLightState.Red
        self.elapsed_time = 0.0
        self.group: list[int] = []
        self.stop_waypoints: list[Any] = []
        self.state_reads = 0

    def get_state(self) -> Any:
        self.state_reads += 1  # the real client reads it from the snapshot: no RPC
        return self.state

    def get_elapsed_time(self) -> float:
        return self.elapsed_time

    def get_group_traffic_lights(self) -> list["FakeTrafficLight"]:
        self._server._rpc("get_group_traffic_lights")
        return [self._server.actors[i] for i in self.group]

    def get_stop_waypoints(self) -> list[Any]:
        self._server._rpc("get_stop_waypoints")
        return list(self.stop_waypoints)


class FakeWalker(FakeActor):
    def __init__(self, *a: Any, **k: Any) -> None:
        super().__init__(*a, **k)
        (bx, by, bz), (ex, ey, ez) = WALKER_BBOX
        self.bounding_box = carla.BoundingBox(carla.Location(x=bx, y=by, z=bz), carla.Vector3D(x=ex, y=ey, z=ez))
        self.velocity = carla.Vector3D(x=0.0, y=0.0, z=0.0)

    def get_velocity(self) -> "carla.Vector3D":
        return self.velocity


class FakeWalkerController(FakeActor):
    def __init__(self, *a: Any, **k: Any) -> None:
        super().__init__(*a, **k)
        self.started = False
        self.target: Any = None
        self.max_speed = 1.4

    def start(self) -> None:
        self._server._rpc("start")
        self.started = True

    def stop(self) -> None:
        self._server._rpc("stop")
        self.started = False

    def go_to_location(self, loc: Any) -> None:
        self.target = loc

    def set_max_speed(self, speed: float) -> None:
        self.max_speed = float(speed)


class FakeSensor(FakeActor):
    def __init__(self, *a: Any, **k: Any) -> None:
        super().__init__(*a, **k)
        self.callback: Callable[[Any], None] | None = None

    def listen(self, callback: Callable[[Any], None]) -> None:
        self._server._rpc("listen")
        self.callback = callback

    def stop(self) -> None:
        self._server._rpc("stop")
        self.callback = None

    @property
    def is_listening(self) -> bool:
        return self.callback is not None


class FakeActorList(list):
    def filter(self, pattern: str) -> "FakeActorList":
        return FakeActorList(a for a in self if fnmatch.fnmatch(a.type_id, pattern))


@dataclass
class FakeImage:
    frame: int
    timestamp: float
    width: int
    height: int
    fov: float
    raw_data: bytes


@dataclass
class FakeCollisionEvent:
    frame: int
    timestamp: float
    actor: Any
    other_actor: Any
    normal_impulse: "carla.Vector3D"


@dataclass
class FakeLaneInvasionEvent:
    frame: int
    timestamp: float
    actor: Any
    crossed_lane_markings: list


def bgra_image(frame: int, width: int, height: int) -> bytes:
    """The fake camera's picture: B = 10, G = 20 + frame % 200, R = row % 256, A = 255."""
    import numpy as np
    a = np.empty((height, width, 4), np.uint8)
    a[..., 0] = 10
    a[..., 1] = 20 + frame % 200
    a[..., 2] = (np.arange(height) % 256)[:, None]
    a[..., 3] = 255
    return a.tobytes()


# ---------------------------------------------------------------------------- world

class FakeWorld:
    def __init__(self, server: "FakeServer") -> None:
        self._server = server
        self.id = server.world_id

    def get_settings(self) -> "carla.WorldSettings":
        self._server._rpc("get_settings")
        return self._server._settings_copy()

    def apply_settings(self, s: "carla.WorldSettings") -> int:
        srv = self._server
        srv._rpc("apply_settings")
        srv.settings = srv._copy_settings(s)
        srv.settings_history.append((bool(s.synchronous_mode), s.fixed_delta_seconds))
        return srv.frame

    def get_map(self) -> "carla.Map":
        self._server._rpc("get_map")
        self._server.get_map_calls += 1
        return self._server.maps[self._server.current]

    def set_weather(self, w: Any) -> None:
        self._server._rpc("set_weather")
        self._server.weather = w

    def get_blueprint_library(self) -> FakeBlueprintLibrary:
        self._server._rpc("get_blueprint_library")
        return FakeBlueprintLibrary(self._server)

    def spawn_actor(self, bp: FakeBlueprint, tf: "carla.Transform", attach_to: Any = None) -> FakeActor:
        self._server._rpc("spawn_actor")
        return self._server._spawn(bp, tf, attach_to)

    def try_spawn_actor(self, bp: FakeBlueprint, tf: "carla.Transform", attach_to: Any = None) -> FakeActor | None:
        if self._server.block_spawn:
            return None
        return self.spawn_actor(bp, tf, attach_to)

    def get_actors(self, ids: list[int] | None = None) -> FakeActorList:
        # as the real client: an actor spawned since the last tick is not in a snapshot yet
        acts = [a for a in self._server.actors.values() if a.alive and a.born < self._server.frame]
        if ids is not None:
            acts = [a for a in acts if a.id in set(ids)]
        return FakeActorList(acts)

    def tick(self, seconds: float = 0.0) -> int:
        return self._server._tick()

    def set_pedestrians_seed(self, seed: int) -> None:
        import numpy as np
        self._server.nav_rng = np.random.default_rng(int(seed))
        self._server.pedestrians_seed = int(seed)

    def set_pedestrians_cross_factor(self, p: float) -> None:
        self._server.cross_factor = float(p)

    def get_random_location_from_navigation(self) -> "carla.Location | None":
        srv = self._server
        if not srv.navigation:
            return None
        x = float(srv.nav_rng.uniform(5.0, 395.0))
        y = SIDEWALK_Y if srv.nav_rng.random() < 0.5 else -SIDEWALK_Y
        return carla.Location(x=x, y=y, z=1.0)


# ---------------------------------------------------------------------------- commands

class _Cmd:
    def __init__(self) -> None:
        self.then_cmds: list[Any] = []

    def then(self, cmd: Any) -> "_Cmd":
        self.then_cmds.append(cmd)
        return self


class SpawnActor(_Cmd):
    def __init__(self, bp: FakeBlueprint, tf: "carla.Transform", parent: int | None = None) -> None:
        super().__init__()
        self.bp, self.tf, self.parent = bp, tf, parent


class SetAutopilot(_Cmd):
    def __init__(self, actor: Any, enabled: bool = True, tm_port: int = 8000) -> None:
        super().__init__()
        self.actor, self.enabled, self.tm_port = actor, enabled, tm_port


class DestroyActor(_Cmd):
    def __init__(self, actor: Any) -> None:
        super().__init__()
        self.actor_id = actor if isinstance(actor, int) else actor.id


FutureActor = object()


@dataclass
class Response:
    actor_id: int = 0
    error: str = ""

    def has_error(self) -> bool:
        return bool(self.error)


class FakeTrafficManager:
    def __init__(self, server: "FakeServer", port: int) -> None:
        self._server = server
        self.port = port
        self.synchronous = False
        self.seed: int | None = None
        self.desired_speed: dict[int, float] = {}
        self.distance: float | None = None

    def get_port(self) -> int:
        return self.port

    def set_synchronous_mode(self, on: bool) -> None:
        self._server._rpc("tm.set_synchronous_mode")
        self.synchronous = bool(on)

    def set_random_device_seed(self, seed: int) -> None:
        self.seed = int(seed)

    def set_global_distance_to_leading_vehicle(self, d: float) -> None:
        self.distance = float(d)

    def set_desired_speed(self, actor: Any, kmh: float) -> None:
        self.desired_speed[actor.id] = float(kmh)


# ---------------------------------------------------------------------------- client

class FakeServer:
    """The state of one fake CARLA server (see the module docstring)."""

    def __init__(self, *, host: str = "localhost", port: int = 2000, version: str = "0.9.16",
                 maps: dict[str, "carla.Map"] | None = None, current: str = "Town01") -> None:
        self.host, self.port, self.version = host, port, version
        self.maps = maps if maps is not None else {"Town01": straight_map("Carla/Maps/Town01"),
                                                   "Town02": straight_map("Carla/Maps/Town02")}
        self.current = current
        self.up = True
        self.world_id = 1
        self.frame = 5000
        self.elapsed = 0.0
        self.settings = carla.WorldSettings()
        self.settings_history: list[tuple[bool, float | None]] = []
        self.weather: Any = None
        self.actors: dict[int, FakeActor] = {}
        self.next_id = 100
        self.blueprints = _default_blueprints()
        self.tms: dict[int, FakeTrafficManager] = {}
        self.connect_attempts: list[tuple[str, int]] = []
        self.attempt_timeouts: list[float] = []
        self.destroyed: list[int] = []
        self.unsafe_destroys: list[int] = []
        self.destroyed_listening: list[int] = []  # sensor.destroy() without stop()
        self.loads: list[str] = []
        self.generated: list[str] = []
        self.get_map_calls = 0
        self.ticks = 0
        self.gil_deadlocks = 0  # apply_batch_sync(..., True) while a sensor listened
        self.block_spawn = False
        # faults
        self.fail_next_tick: str | None = None
        self.drop_images: set[str] = set()
        self.stale_images: set[str] = set()
        self.interrupt_next_tick = False
        self.collide_next_tick: tuple[int, tuple[float, float, float]] | None = None
        self.invade_next_tick: list[str] | None = None
        self.image_delay = 0.0  # deliver images from another thread after this delay [s]
        self.busy_ports: set[int] = set()  # Traffic Manager ports another process holds
        self.refuse_connects = 0  # the next N connection attempts time out (server starting)
        self.tick_hook: Callable[["FakeServer"], None] | None = None  # runs first in each tick
        self.ego_ground_z = 0.0
        # walkers
        import numpy as np
        self.rpc_calls: dict[str, int] = {}  # RPC name -> calls
        self.navigation = True  # the town has a navigation mesh
        self.nav_rng = np.random.default_rng(0)
        self.pedestrians_seed: int | None = None
        self.cross_factor: float | None = None

    # ---- the module handed to the backend
    def module(self) -> types.SimpleNamespace:
        server = self

        class Client:
            def __init__(self, host: str, port: int, worker_threads: int = 0) -> None:
                self.host, self.port = host, port
                self._timeout = 5.0
                server.connect_attempts.append((host, port))

            def _srv(self) -> FakeServer:
                if self.host.endswith(".invalid"):
                    raise RuntimeError("resolve: Host not found (authoritative)")
                if self.host != server.host or self.port != server.port or not server.up:
                    raise RuntimeError(f"time-out of {int(self._timeout * 1000)}ms while waiting for the "
                                       f"simulator, make sure the simulator is ready and connected to "
                                       f"{self.host}:{self.port}")
                return server

            def set_timeout(self, s: float) -> None:
                self._timeout = float(s)
                server.attempt_timeouts.append(float(s))

            def get_server_version(self) -> str:
                if server.refuse_connects > 0:
                    server.refuse_connects -= 1
                    raise RuntimeError(f"time-out of {int(self._timeout * 1000)}ms while waiting for the "
                                       f"simulator, make sure the simulator is ready and connected to "
                                       f"{self.host}:{self.port}")
                return self._srv().version

            def get_client_version(self) -> str:
                return "0.9.16"

            def get_world(self) -> FakeWorld:
                return FakeWorld(self._srv())

            def get_available_maps(self) -> list[str]:
                return [f"/Game/Carla/Maps/{m}" for m in self._srv().maps if not m.startswith("OpenDrive")]

            def load_world(self, name: str) -> FakeWorld:
                srv = self._srv()
                if name not in srv.maps:
                    raise RuntimeError(f"map '{name}' not found")
                srv._new_world(name)
                srv.loads.append(name)
                return FakeWorld(srv)

            def generate_opendrive_world(self, xodr: str, params: Any = None) -> FakeWorld:
                srv = self._srv()
                srv.maps["OpenDriveMap"] = carla.Map("Carla/Maps/OpenDriveMap", xodr)
                srv._new_world("OpenDriveMap")
                srv.generated.append(xodr)
                return FakeWorld(srv)

            def get_trafficmanager(self, port: int = 8000) -> FakeTrafficManager:
                srv = self._srv()
                if port in srv.busy_ports:
                    raise RuntimeError("trying to create rpc server for traffic manager; but the system "
                                       "failed to create because of bind error.")
                return srv.tms.setdefault(port, FakeTrafficManager(srv, port))

            def apply_batch_sync(self, cmds: list[Any], do_tick: bool = False) -> list[Response]:
                srv = self._srv()
                if do_tick:
                    # the 0.9.16 client keeps the GIL through this tick: a sensor callback
                    # arriving meanwhile deadlocks it until the time-out (see
                    # drive_il.sim.carla.walkers); the fake makes that certain
                    listening = [a.id for a in srv.actors.values()
                                 if isinstance(a, FakeSensor) and a.alive and a.is_listening]
                    if listening:
                        srv.gil_deadlocks += 1
                        raise RuntimeError(f"time-out of {self._timeout * 1000:.0f}ms while waiting for the "
                                           f"simulator (apply_batch_sync with do_tick while sensors "
                                           f"{listening} listen)")
                    out = srv._batch(cmds)
                    srv._tick()
                    return out
                return srv._batch(cmds)

            def apply_batch(self, cmds: list[Any]) -> None:
                self._srv()._batch(cmds)

        command = types.SimpleNamespace(SpawnActor=SpawnActor, SetAutopilot=SetAutopilot,
                                        DestroyActor=DestroyActor, FutureActor=FutureActor)
        return types.SimpleNamespace(
            Client=Client, command=command,
            Location=carla.Location, Rotation=carla.Rotation, Transform=carla.Transform,
            Vector3D=carla.Vector3D, BoundingBox=carla.BoundingBox, WorldSettings=carla.WorldSettings,
            WeatherParameters=carla.WeatherParameters, VehicleControl=carla.VehicleControl,
            LaneType=carla.LaneType, LaneMarkingType=carla.LaneMarkingType, Map=carla.Map,
            TrafficLightState=carla.TrafficLightState,
            OpendriveGenerationParameters=carla.OpendriveGenerationParameters)

    # ---- helpers used by the doubles
    def _rpc(self, name: str) -> None:
        self.rpc_calls[name] = self.rpc_calls.get(name, 0) + 1
        if not self.up:
            raise RuntimeError(f"time-out of 10000ms while waiting for the simulator ({name})")

    def _copy_settings(self, s: "carla.WorldSettings") -> "carla.WorldSettings":
        c = carla.WorldSettings()
        for k in ("synchronous_mode", "no_rendering_mode", "fixed_delta_seconds"):
            setattr(c, k, getattr(s, k))
        return c

    def _settings_copy(self) -> "carla.WorldSettings":
        return self._copy_settings(self.settings)

    def _new_world(self, name: str) -> None:
        for a in list(self.actors.values()):
            a.alive = False
        self.actors.clear()
        self.current = name
        self.world_id += 1

    def _spawn(self, bp: FakeBlueprint, tf: "carla.Transform", parent: Any = None) -> FakeActor:
        self.next_id += 1
        if bp.id.startswith("sensor."):
            cls = FakeSensor
        elif bp.id.startswith("walker."):
            cls = FakeWalker
        elif bp.id == "controller.ai.walker":
            cls = FakeWalkerController
        elif bp.id == "traffic.traffic_light":
            cls = FakeTrafficLight
        else:
            cls = FakeActor
        a = cls(self, self.next_id, bp, tf, parent)
        self.actors[a.id] = a
        return a

    def _destroy(self, actor_id: int) -> bool:
        a = self.actors.pop(actor_id, None)
        if a is None:
            return False
        a.alive = False
        self.destroyed.append(actor_id)
        return True

    def _batch(self, cmds: list[Any]) -> list[Response]:
        out = []
        for cmd in cmds:
            if isinstance(cmd, SpawnActor):
                parent = self.actors.get(cmd.parent) if cmd.parent is not None else None
                a = self._spawn(cmd.bp, cmd.tf, parent)
                for then in cmd.then_cmds:
                    if isinstance(then, SetAutopilot):
                        assert then.actor is FutureActor
                        a.autopilot = bool(then.enabled)
                        a.tm_port = then.tm_port
                        a.speed = 5.0
                out.append(Response(actor_id=a.id))
            elif isinstance(cmd, DestroyActor):
                ok = self._destroy(cmd.actor_id)
                out.append(Response(actor_id=cmd.actor_id, error="" if ok else "actor not found"))
            else:  # pragma: no cover
                raise TypeError(f"unexpected command {cmd!r}")
        return out

    def restart(self) -> None:
        """The server came back after a crash: no actors, asynchronous, a new world."""
        self.up = True
        for a in list(self.actors.values()):
            a.alive = False
        self.actors.clear()
        self.settings = carla.WorldSettings()
        self.tms.clear()
        self.world_id += 1
        self.frame = 1

    def live(self, pattern: str = "*") -> list[FakeActor]:
        return [a for a in self.actors.values() if a.alive and fnmatch.fnmatch(a.type_id, pattern)]

    # ---- the simulation
    def _tick(self) -> int:
        if not self.up:
            raise RuntimeError("time-out of 10000ms while waiting for the simulator, make sure the "
                               f"simulator is ready and connected to {self.host}:{self.port}")
        if self.tick_hook is not None:
            self.tick_hook(self)
        if self.fail_next_tick:
            kind, self.fail_next_tick = self.fail_next_tick, None
            if kind == "crash":
                self.up = False
            raise RuntimeError("time-out of 10000ms while waiting for the simulator, make sure the "
                               f"simulator is ready and connected to {self.host}:{self.port}")
        if self.interrupt_next_tick:
            self.interrupt_next_tick = False
            raise KeyboardInterrupt
        self.ticks += 1
        dt = self.settings.fixed_delta_seconds or 0.05
        self.frame += 1
        self.elapsed += dt
        for a in self.actors.values():
            if a.type_id.startswith("vehicle."):
                self._move(a, dt)
            elif isinstance(a, FakeWalkerController):
                self._walk(a, dt)
            elif isinstance(a, FakeTrafficLight):
                a.elapsed_time += dt
        self._deliver()
        return self.frame

    def _move(self, a: FakeActor, dt: float) -> None:
        """A kinematic bicycle about the rear axle (enough for sign and unit checks)."""
        tf = a.transform
        z = tf.location.z
        if not a.landed:
            z, a.landed = self.ego_ground_z, True
        c = a.control
        if not a.autopilot:
            sign = -1.0 if c.reverse else 1.0
            acc = 4.0 * c.throttle * sign
            if c.brake > 0 or c.hand_brake:
                acc -= math.copysign(8.0 * max(c.brake, 1.0 if c.hand_brake else 0.0), a.speed) if a.speed else 0.0
            new = a.speed + acc * dt
            if a.speed and new * a.speed < 0 and not c.throttle:
                new = 0.0
            a.accel = (new - a.speed) / dt
            a.speed = new
        yaw = math.radians(tf.rotation.yaw)
        rate = a.speed / WHEELBASE * math.tan(c.steer * math.radians(MAX_STEER_DEG)) if not a.autopilot else 0.0
        a.yaw_rate_deg = math.degrees(rate)
        yaw2 = yaw + rate * dt
        a.transform = carla.Transform(
            carla.Location(x=tf.location.x + a.speed * math.cos(yaw) * dt,
                           y=tf.location.y + a.speed * math.sin(yaw) * dt, z=z),
            carla.Rotation(pitch=0.0, yaw=math.degrees(yaw2), roll=0.0))

    def _walk(self, c: "FakeWalkerController", dt: float) -> None:
        """A started controller walks its walker straight to its target."""
        w = c.parent
        if not isinstance(w, FakeWalker) or not w.alive:
            return
        w.velocity = carla.Vector3D(x=0.0, y=0.0, z=0.0)
        if not c.started or c.target is None:
            return
        loc = w.transform.location
        dx, dy = c.target.x - loc.x, c.target.y - loc.y
        d = math.hypot(dx, dy)
        if d < 1e-6:
            return
        step = min(d, c.max_speed * dt)
        yaw = math.degrees(math.atan2(dy, dx))
        w.transform = carla.Transform(carla.Location(x=loc.x + dx / d * step, y=loc.y + dy / d * step, z=loc.z),
                                      carla.Rotation(pitch=0.0, yaw=yaw, roll=0.0))
        w.velocity = carla.Vector3D(x=dx / d * step / dt, y=dy / d * step / dt, z=0.0)

    def add_traffic_light(self, x: float, y: float, yaw_deg: float, stop_x: float, lanes: tuple[int, ...] = (-1,),
                          state: Any = None) -> FakeTrafficLight:
        """A traffic light (a map actor: it lives from before the first tick) with its
        pole at (x, y) and its stop waypoints at ``stop_x`` on the given lanes of the
        straight road (lane -1 drives +x, lane 1 drives -x)."""
        bp = FakeBlueprint("traffic.traffic_light", {})
        a = self._spawn(bp, carla.Transform(carla.Location(x=x, y=y, z=0.0), carla.Rotation(yaw=yaw_deg)))
        a.born = -1
        if state is not None:
            a.state = state
        m = self.maps[self.current]
        for lane in lanes:
            wp = m.get_waypoint(carla.Location(x=stop_x, y=1.75 if lane < 0 else -1.75, z=0.0))
            a.stop_waypoints.append(wp)
        a.group = [a.id]
        return a

    def _deliver(self) -> None:
        f, t = self.frame, self.elapsed
        jobs: list[tuple[Callable[[Any], None], Any]] = []
        for s in list(self.actors.values()):
            if not isinstance(s, FakeSensor) or s.callback is None:
                continue
            if s.type_id == "sensor.camera.rgb":
                name = s.attributes.get("role_name", "")
                w, h = int(s.attributes["image_size_x"]), int(s.attributes["image_size_y"])
                fov = float(s.attributes["fov"])
                if name in self.stale_images:
                    jobs.append((s.callback, FakeImage(f - 1, t, w, h, fov, bgra_image(f - 1, w, h))))
                if name not in self.drop_images:
                    jobs.append((s.callback, FakeImage(f, t, w, h, fov, bgra_image(f, w, h))))
            elif s.type_id == "sensor.other.collision" and self.collide_next_tick is not None:
                other_id, (ix, iy, iz) = self.collide_next_tick
                jobs.append((s.callback, FakeCollisionEvent(
                    f, t, s.parent, self.actors.get(other_id), carla.Vector3D(x=ix, y=iy, z=iz))))
            elif s.type_id == "sensor.other.lane_invasion" and self.invade_next_tick is not None:
                marks = [types.SimpleNamespace(type=getattr(carla.LaneMarkingType, n)) for n in self.invade_next_tick]
                jobs.append((s.callback, FakeLaneInvasionEvent(f, t, s.parent, marks)))
        self.drop_images, self.stale_images = set(), set()
        self.collide_next_tick = self.invade_next_tick = None
        if self.image_delay > 0:
            def later(jobs=jobs) -> None:
                for cb, data in jobs:
                    cb(data)
            threading.Timer(self.image_delay, later).start()
        else:
            for cb, data in jobs:
                cb(data)
