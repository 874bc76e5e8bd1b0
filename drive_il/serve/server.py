"""A CARLA-compatible server backed by the embedded world.

:class:`CarlaServer` answers the RPCs of the pip ``carla==0.9.16`` client
(``carla.Client``, ``carla.World``, the client-side Traffic Manager) and pushes world
snapshots and sensor data on the stream server, so unmodified CARLA client scripts
drive the embedded world (wire facts: ``../shared/docs/CARLA_WIRE_0.9.16.md``).

The server-side world (:class:`ServerWorld`) is lower level than the Simulator
protocol -- any number of vehicles, sensors attached to any actor, a control per
vehicle -- and is built from the embedded world's parts:

* each vehicle is a :class:`~drive_il.sim.embedded.dynamics.BicycleModel` driven by
  its last ``carla.VehicleControl`` (from the client, the client's Traffic Manager, or
  the server-side autopilot lane follower :class:`LaneFollower`);
* each ``sensor.camera.rgb`` is a :class:`~drive_il.sim.embedded.camera.Camera` over
  the town's :class:`~drive_il.sim.embedded.raster.MapRaster`, under a
  :class:`~drive_il.sim.embedded.weather.WeatherLook` derived from the
  ``carla.WeatherParameters`` the client set; images are sent as BGRA;
* each ``sensor.other.collision`` is a
  :class:`~drive_il.sim.embedded.events.CollisionDetector` on its parent vehicle;
  ``sensor.other.lane_invasion`` is computed by the client itself (no stream).

One tick (``tick_cue`` in synchronous mode, or the server's own 20 Hz timer in
asynchronous mode): vehicles' controls (autopilot where no client control arrived
recently), dynamics for ``dt``, frame + 1, collisions, then the world snapshot on the
episode's broadcast stream, then sensor data -- all before ``tick_cue`` answers, so the
client finds frame F's snapshot and images once the tick returns F.

Robustness: a client connection that ends takes its Traffic Manager registrations
with it, and if it had put the world into synchronous mode the world goes back to
asynchronous mode (the next client is not left facing a frozen world). Its actors stay
(as on a real CARLA server). Calls the server does not serve are logged and answered
as a real server answers them: an unknown function with an rpclib error, a known but
unsupported feature with a CARLA ``Response`` error naming it.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..scenario import CameraConfig, VehicleConfig
from ..types import ActorState, VehicleState
from . import encoding as E
from .rpc import Connection, RpcServer, UnknownFunction
from .streams import StreamServer

__all__ = [
    "ASYNC_TICK_HZ",
    "SERVER_VERSION",
    "VEHICLE_BLUEPRINTS",
    "CarlaServer",
    "LaneFollower",
    "ServerWorld",
]

log = logging.getLogger(__name__)

#: The client version this server speaks (the client warns on a mismatch).
SERVER_VERSION = "0.9.16"
#: Tick rate of the world in asynchronous mode [Hz].
ASYNC_TICK_HZ = 20.0
#: Speed limit reported for every vehicle [km/h] (CARLA's default urban limit); the
#: Traffic Manager drives at a percentage of it.
SPEED_LIMIT_KMH = 30.0
#: An autopilot vehicle without a client control for this long [s] is driven by the
#: server's lane follower (the client's Traffic Manager sends one every tick).
AUTOPILOT_HANDOVER_S = 0.5
#: [s] a tick waits this long for a sensor stream whose token a client just asked for
#: (``sensor.listen`` subscribes asynchronously; its first frame would otherwise be lost).
SUBSCRIBE_WAIT_S = 1.0
#: The level a client loads after sending OpenDRIVE text (``generate_opendrive_world``).
OPENDRIVE_MAP = "OpenDriveMap"
#: Largest camera image side [px].
MAX_IMAGE_SIDE = 4096
_DEG = math.pi / 180.0
_RAD = 180.0 / math.pi

# (id, length, width, height, wheelbase [m], generation) -- overall dimensions of the
# production cars the CARLA blueprints are named after (manufacturers' data, rounded).
VEHICLE_BLUEPRINTS: tuple[tuple[str, float, float, float, float, int], ...] = (
    ("vehicle.tesla.model3", 4.69, 1.85, 1.44, 2.88, 2),
    ("vehicle.audi.a2", 3.83, 1.67, 1.55, 2.41, 1),
    ("vehicle.audi.tt", 4.18, 1.83, 1.36, 2.51, 1),
    ("vehicle.bmw.grandtourer", 4.56, 1.80, 1.61, 2.78, 1),
    ("vehicle.citroen.c3", 4.00, 1.75, 1.47, 2.54, 1),
    ("vehicle.dodge.charger_2020", 5.04, 1.91, 1.48, 3.05, 2),
    ("vehicle.ford.mustang", 4.79, 1.92, 1.38, 2.72, 1),
    ("vehicle.lincoln.mkz_2020", 4.93, 1.86, 1.48, 2.85, 2),
    ("vehicle.mercedes.coupe_2020", 4.84, 1.82, 1.43, 2.87, 2),
    ("vehicle.mini.cooper_s", 3.85, 1.73, 1.43, 2.50, 1),
    ("vehicle.nissan.micra", 3.83, 1.67, 1.52, 2.43, 1),
    ("vehicle.toyota.prius", 4.54, 1.76, 1.49, 2.70, 1),
)
_COLORS = ("255,255,255", "20,20,20", "160,30,30", "30,60,150", "120,120,125",
           "200,160,40", "40,110,60", "180,90,30")
_CAMERA_ATTRS_FLOAT = {
    "fov": "90", "sensor_tick": "0.0", "gamma": "2.2", "bloom_intensity": "0.675",
    "fstop": "1.4", "iso": "100", "lens_flare_intensity": "0.1", "motion_blur_intensity": "0.45",
    "motion_blur_max_distortion": "0.35", "motion_blur_min_object_screen_size": "0.1",
    "shutter_speed": "200", "lens_circle_falloff": "5.0", "lens_circle_multiplier": "0.0",
    "lens_k": "-1.0", "lens_kcube": "0.0", "lens_x_size": "0.08", "lens_y_size": "0.08",
    "chromatic_aberration_intensity": "0.0", "chromatic_aberration_offset": "0.0",
    "exposure_compensation": "0.0", "exposure_min_bright": "10.0", "exposure_max_bright": "12.0",
    "exposure_speed_up": "3.0", "exposure_speed_down": "1.0", "calibration_constant": "16.0",
    "focal_distance": "1000.0", "blur_amount": "1.0", "blur_radius": "0.0", "slope": "0.88",
    "toe": "0.55", "shoulder": "0.26", "black_clip": "0.0", "white_clip": "0.04",
    "temp": "6500.0", "tint": "0.0", "min_fstop": "1.2", "blade_count": "5",
}
#: CARLA semantic tags (0.9.14+ CityScapes palette indices) for the actors' records.
_TAG_CAR = 14


# ============================================================================ actors
@dataclass(eq=False)
class Actor:
    """Any actor of the server world.

    Attributes:
        id: CARLA actor id.
        type_id: blueprint id ("vehicle.tesla.model3", "sensor.camera.rgb", "spectator").
        attrs: the description's attribute values {id: value} (strings).
        types: the attributes' types {id: type} (:data:`encoding.ATTR_BOOL`, ...).
        uid: blueprint uid from the description.
        parent: parent actor id (0: none).
        rel: transform relative to the parent (x, y, z, pitch, yaw, roll) [m, deg], or
            the world transform when there is no parent.
        owner: id of the RPC connection that spawned it (0: the server).
    """

    id: int
    type_id: str
    attrs: dict[str, str] = field(default_factory=dict)
    types: dict[str, int] = field(default_factory=dict)
    uid: int = 0
    parent: int = 0
    rel: tuple[float, float, float, float, float, float] = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    owner: int = 0
    tags: bytes = b""
    children: list[int] = field(default_factory=list)

    def description(self) -> list:
        return [self.uid, self.type_id,
                [[k, self.types.get(k, E.ATTR_STRING), v] for k, v in self.attrs.items()]]

    def extent(self) -> tuple[float, float, float]:
        return (0.0, 0.0, 0.0)

    def bbox(self) -> list:
        return E.bounding_box(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, self.id)


@dataclass(eq=False)
class Vehicle(Actor):
    """A vehicle: a bicycle model and its current control."""

    model: Any = None
    control: tuple = (0.0, 0.0, 0.0, False, False, False, 0)
    color: tuple[int, int, int] = (160, 30, 30)
    autopilot: bool = False
    last_control_time: float = -1e9
    simulate_physics: bool = True
    light_state: int = 0
    follower: Any = None

    def extent(self) -> tuple[float, float, float]:
        m = self.model
        return (0.5 * m.length, 0.5 * m.width, 0.5 * m.height)

    def bbox(self) -> list:
        ex, ey, ez = self.extent()
        return E.bounding_box(0.0, 0.0, ez, ex, ey, ez, self.id)


@dataclass(eq=False)
class Sensor(Actor):
    """A sensor: a camera, a collision detector, or a client-side sensor."""

    kind: str = ""  # "camera", "collision", "lane_invasion"
    stream: int = 0  # 0: no server stream (client-side sensor)
    spec: CameraConfig | None = None
    tick: float = 0.0
    next_time: float = 0.0
    detector: Any = None


# ============================================================================ autopilot
class LaneFollower:
    """The server-side autopilot: pure pursuit on the lane centre, a speed P-controller
    and a stop behind vehicles ahead (for ``SetAutopilot`` vehicles that the client's
    Traffic Manager does not drive).

    Pure pursuit (Coulter, "Implementation of the Pure Pursuit Path Tracking
    Algorithm", CMU-RI-TR-92-01, 1992): road-wheel angle ``atan(2 L sin(alpha) / ld)``
    toward the lane-centre point ``ld`` ahead; branches at junctions drawn with the
    given rng.
    """

    def __init__(self, carla_map: Any, rng: np.random.Generator, target_speed: float) -> None:
        import carla
        self.map = carla_map
        self.rng = rng
        self.target_speed = float(target_speed)
        self._loc = carla.Location
        self._driving = carla.LaneType.Driving
        self._plan: list[Any] = []

    def control(self, v: Vehicle, others: list[Vehicle]) -> tuple:
        m = v.model
        x, y, yaw, speed = m.x, m.y, m.yaw, m.speed
        ld = max(4.0, 1.2 * abs(speed) + 2.0)
        target = self._target(x, y, yaw, ld)
        if target is None:
            return (0.0, 0.0, 1.0, False, False, False, 0)
        tx, ty = target
        alpha = math.atan2(ty - y, tx - x) - yaw
        alpha = (alpha + math.pi) % (2.0 * math.pi) - math.pi
        delta = math.atan2(2.0 * m.wheelbase * math.sin(alpha), ld)
        steer = max(-1.0, min(1.0, delta / m.max_steer_angle))
        # leader: a vehicle within a narrow cone ahead
        want = self.target_speed
        c, s = math.cos(yaw), math.sin(yaw)
        for o in others:
            if o is v:
                continue
            dx, dy = o.model.x - x, o.model.y - y
            fwd = dx * c + dy * s
            if 0.0 < fwd < 25.0 and abs(-dx * s + dy * c) < 2.0:
                gap = fwd - 0.5 * (m.length + o.model.length)
                want = min(want, max(0.0, 0.5 * (gap - 3.0)))
        err = want - speed
        if err >= 0.0:
            return (min(1.0, 0.3 + 0.5 * err), steer, 0.0, False, False, False, 0)
        return (0.0, steer, min(1.0, -0.4 * err), False, False, False, 0)

    def _target(self, x: float, y: float, yaw: float, ld: float) -> tuple[float, float] | None:
        plan = self._plan
        # drop plan points behind the car; re-plan when empty or far from the car
        c, s = math.cos(yaw), math.sin(yaw)
        while plan:
            px, py = plan[0].transform.location.x, plan[0].transform.location.y
            if (px - x) * c + (py - y) * s < 0.5:
                plan.pop(0)
            else:
                break
        if not plan or math.hypot(plan[0].transform.location.x - x, plan[0].transform.location.y - y) > ld + 6.0:
            wp = self.map.get_waypoint(self._loc(x, y, 0.0), True, self._driving)
            if wp is None:
                return None
            self._plan = plan = [wp]
        while len(plan) < 12:
            nxt = plan[-1].next(2.0)
            if not nxt:
                break
            plan.append(nxt[0] if len(nxt) == 1 else nxt[int(self.rng.integers(len(nxt)))])
        for wp in plan:
            loc = wp.transform.location
            if math.hypot(loc.x - x, loc.y - y) >= ld:
                return loc.x, loc.y
        loc = plan[-1].transform.location
        return loc.x, loc.y


# ============================================================================ world
class ServerWorld:
    """The simulation state of one episode (not thread-safe: the server locks it).

    Args:
        town: the :class:`~drive_il.sim.maps.TownMap`.
        episode_id: this episode's id.
        streams: the stream server (snapshots and sensor data are published on it).
        first_frame: frame number of the episode's initial state.
        seed: seed of the episode's rendering (rain animation).
    """

    def __init__(self, town: Any, *, episode_id: int, streams: StreamServer,
                 first_frame: int = 0, seed: int = 0,
                 raster_cache: dict | None = None) -> None:
        self.town = town
        self.episode_id = int(episode_id)
        self.streams = streams
        self.broadcast = streams.new_stream()
        self.frame = int(first_frame)
        self.elapsed = 0.0
        self.delta = 1.0 / ASYNC_TICK_HZ
        self.t0 = time.monotonic()
        self.actors: dict[int, Actor] = {}
        self.vehicles: list[Vehicle] = []
        self.sensors: list[Sensor] = []
        self.weather: dict[str, float] = _default_weather()
        self._look: Any = None
        self._raster_cache = raster_cache if raster_cache is not None else {}
        self._cameras: dict[tuple, Any] = {}
        self.seed = int(seed)
        self._spawn_tfs: list | None = None
        self._next_id = 1
        self.spectator = self._add(Actor(id=0, type_id="spectator", rel=(0.0, 0.0, 50.0, -90.0, 0.0, 0.0)))

    def spawn_transforms(self) -> list:
        """The town's spawn points (:func:`drive_il.sim.maps.spawn_points`) as CARLA
        transforms, 0.5 m above the road as CARLA's (degrees)."""
        if self._spawn_tfs is None:
            self._spawn_tfs = [E.transform(p.x, p.y, p.z + 0.5, 0.0, math.degrees(p.yaw), 0.0)
                               for p in self.town.spawn_points]
        return self._spawn_tfs

    # ------------------------------------------------------------------ actors
    def _add(self, a: Actor) -> Actor:
        a.id = self._next_id
        self._next_id += 1
        self.actors[a.id] = a
        if isinstance(a, Vehicle):
            self.vehicles.append(a)
        elif isinstance(a, Sensor):
            self.sensors.append(a)
        if a.parent:
            self.actors[a.parent].children.append(a.id)
        return a

    def spawn_vehicle(self, bp_id: str, uid: int, attrs: dict[str, str], tf: list, owner: int) -> Vehicle:
        """Raises:
            ValueError: unknown blueprint or a collision at the spawn position.
        """
        spec = _VEHICLES.get(bp_id)
        if spec is None:
            raise ValueError(f"unknown vehicle blueprint {bp_id!r}")
        (x, y, z), (_p, yaw_deg, _r) = tf
        _, length, width, height, wheelbase, _gen = spec
        cfg = dataclasses.replace(VehicleConfig(), blueprint=bp_id, length=length, width=width,
                                  height=height, wheelbase=wheelbase)
        yaw = math.radians(float(yaw_deg))
        yaw = (yaw + math.pi) % (2.0 * math.pi) - math.pi
        from ..sim.embedded.events import obb_overlap
        for o in self.vehicles:
            m = o.model
            if obb_overlap(float(x), float(y), yaw, length, width, m.x, m.y, m.yaw, m.length, m.width):
                raise ValueError("Spawn failed because of collision at spawn position")
        from ..sim.embedded.dynamics import BicycleModel
        model = BicycleModel(cfg, x=float(x), y=float(y), yaw=yaw, z=self._ground_z(x, y, z))
        attrs = dict(attrs)
        color = _parse_color(attrs.get("color", ""), default=(160, 30, 30))
        v = Vehicle(id=0, type_id=bp_id, attrs=attrs, uid=uid, owner=owner, model=model,
                    color=color, tags=bytes([_TAG_CAR]))
        return self._add(v)  # type: ignore[return-value]

    def _ground_z(self, x: float, y: float, z: float) -> float:
        import carla
        try:
            wp = self.town.map.get_waypoint(carla.Location(float(x), float(y), float(z)), True,
                                            carla.LaneType.Any)
        except RuntimeError:
            wp = None
        if wp is not None:
            loc = wp.transform.location
            if math.hypot(loc.x - x, loc.y - y) < 10.0:
                return float(loc.z)
        return max(0.0, float(z) - 0.5)

    def spawn_sensor(self, bp_id: str, uid: int, attrs: dict[str, str], tf: list, parent: int,
                     owner: int) -> Sensor:
        """Raises:
            ValueError: unknown blueprint, bad attribute, or unknown parent.
        """
        if parent and parent not in self.actors:
            raise ValueError(f"parent actor {parent} not found")
        (x, y, z), (p, yw, r) = tf
        rel = (float(x), float(y), float(z), float(p), float(yw), float(r))
        if bp_id == "sensor.camera.rgb":
            w = int(float(attrs.get("image_size_x", "800")))
            h = int(float(attrs.get("image_size_y", "600")))
            fov = float(attrs.get("fov", "90"))
            if not (1 <= w <= MAX_IMAGE_SIDE and 1 <= h <= MAX_IMAGE_SIDE):
                raise ValueError(f"image size {w}x{h} outside 1..{MAX_IMAGE_SIDE}")
            if not 1.0 <= fov <= 170.0:
                raise ValueError(f"fov {fov} outside 1..170 degrees")
            spec = CameraConfig(name=f"cam{uid}", width=w, height=h, fov_deg=fov, x=rel[0], y=rel[1],
                                z=rel[2] if parent else 0.0, pitch_deg=rel[3],
                                yaw_deg=0.0 if not parent else rel[4])
            s = Sensor(id=0, type_id=bp_id, attrs=dict(attrs), uid=uid, parent=parent, rel=rel,
                       owner=owner, kind="camera", stream=self.streams.new_stream(), spec=spec,
                       tick=float(attrs.get("sensor_tick", "0") or 0.0))
        elif bp_id == "sensor.other.collision":
            pa = self.actors.get(parent)
            det = None
            if isinstance(pa, Vehicle):
                from ..sim.embedded.events import CollisionDetector
                det = CollisionDetector(length=pa.model.length, width=pa.model.width)
            s = Sensor(id=0, type_id=bp_id, attrs=dict(attrs), uid=uid, parent=parent, rel=rel,
                       owner=owner, kind="collision", stream=self.streams.new_stream(), detector=det)
        elif bp_id == "sensor.other.lane_invasion":
            s = Sensor(id=0, type_id=bp_id, attrs=dict(attrs), uid=uid, parent=parent, rel=rel,
                       owner=owner, kind="lane_invasion")
        else:
            raise ValueError(f"unknown sensor blueprint {bp_id!r}")
        s = self._add(s)  # type: ignore[assignment]
        if s.detector is not None:
            pa = self.actors[parent]
            s.detector.contacts = s.detector.touching(pa.model.x, pa.model.y, pa.model.yaw,
                                                      self._views(exclude=pa))
        return s

    def destroy(self, actor_id: int) -> bool:
        """Destroy an actor; False if unknown. Actors attached to it stay where they are,
        detached (clients destroy vehicles and their sensors in one batch)."""
        a = self.actors.get(actor_id)
        if a is None or a is self.spectator:
            return False
        for cid in a.children:
            c = self.actors.get(cid)
            if c is not None:
                c.rel = self.world_transform(c)
                c.parent = 0
                if isinstance(c, Sensor) and c.kind == "camera" and c.spec is not None:
                    c.spec = dataclasses.replace(c.spec, x=0.0, y=0.0, z=max(c.rel[2], 0.2), yaw_deg=0.0)
        a.children = []
        del self.actors[actor_id]
        if isinstance(a, Vehicle):
            self.vehicles.remove(a)
        elif isinstance(a, Sensor):
            self.sensors.remove(a)
            if a.stream:
                self.streams.close_stream(a.stream)
        if a.parent and a.parent in self.actors:
            kids = self.actors[a.parent].children
            if actor_id in kids:
                kids.remove(actor_id)
        return True

    def destroy_all(self) -> None:
        for aid in [a for a in self.actors if self.actors[a] is not self.spectator]:
            if aid in self.actors:
                self.destroy(aid)
        self.streams.close_stream(self.broadcast)

    # ------------------------------------------------------------------ transforms
    def world_transform(self, a: Actor) -> tuple[float, float, float, float, float, float]:
        """(x, y, z, pitch, yaw, roll) [m, deg] in the world."""
        if isinstance(a, Vehicle):
            m = a.model
            return (m.x, m.y, m.z, 0.0, m.yaw * _RAD, 0.0)
        if a.parent:
            p = self.actors.get(a.parent)
            if p is not None:
                px, py, pz, _pp, pyaw, _pr = self.world_transform(p)
                x, y, z, pitch, yaw, roll = a.rel
                c, s = math.cos(pyaw * _DEG), math.sin(pyaw * _DEG)
                return (px + x * c - y * s, py + x * s + y * c, pz + z, pitch, pyaw + yaw, roll)
        return a.rel

    def set_transform(self, a: Actor, tf: list) -> None:
        (x, y, z), (p, yw, r) = tf
        if isinstance(a, Vehicle):
            a.model.set_pose(float(x), float(y), float(yw) * _DEG, 0.0)
            a.model.z = self._ground_z(float(x), float(y), float(z))
        else:
            a.rel = (float(x), float(y), float(z), float(p), float(yw), float(r))

    # ------------------------------------------------------------------ records
    def record(self, a: Actor) -> list:
        token = self.streams.token(a.stream) if isinstance(a, Sensor) and a.stream else b""
        return E.actor_record(a.id, a.parent, a.description(), a.bbox(), a.tags, token)

    # ------------------------------------------------------------------ weather
    def set_weather(self, w: dict[str, float]) -> None:
        self.weather = dict(w)
        self._look = None

    def look(self) -> Any:
        if self._look is None:
            from ..sim.embedded.weather import WeatherLook
            w = self.weather
            self._look = WeatherLook.from_carla_numbers(
                "server", cloudiness=w["cloudiness"], precipitation=w["precipitation"],
                precipitation_deposits=w["precipitation_deposits"],
                wind_intensity=w["wind_intensity"], sun_azimuth_angle=w["sun_azimuth_angle"],
                sun_altitude_angle=w["sun_altitude_angle"], fog_density=w["fog_density"],
                fog_distance=w["fog_distance"], fog_falloff=w["fog_falloff"], wetness=w["wetness"])
            self._cameras.clear()
        return self._look

    def raster(self) -> Any:
        r = self._raster_cache.get(self.town.digest)
        if r is None:
            from ..sim.embedded.raster import MapRaster
            t = time.perf_counter()
            r = MapRaster.for_town(self.town)
            self._raster_cache[self.town.digest] = r
            log.info("raster of %s built in %.1f s", self.town.name, time.perf_counter() - t)
        return r

    def camera(self, spec: CameraConfig) -> Any:
        look = self.look()
        key = dataclasses.replace(spec, name="")
        cam = self._cameras.get(key)
        if cam is None:
            from ..sim.embedded.camera import Camera
            cam = Camera(spec, self.raster(), look)
            self._cameras[key] = cam
        return cam

    # ------------------------------------------------------------------ stepping
    def _views(self, exclude: Vehicle | None = None) -> list[ActorState]:
        out = []
        for v in self.vehicles:
            if v is exclude:
                continue
            m = v.model
            out.append(ActorState(actor_id=v.id, x=m.x, y=m.y, yaw=m.yaw, speed=m.speed, z=m.z,
                                  length=m.length, width=m.width, height=m.height, color=v.color))
        return out

    def step(self, dt: float, *, followers: Callable[[Vehicle], LaneFollower]) -> None:
        """Advance every vehicle by ``dt`` [s] and publish the new frame."""
        self.delta = float(dt)
        now = self.elapsed
        vehicles = self.vehicles
        for v in vehicles:
            if v.autopilot and now - v.last_control_time > AUTOPILOT_HANDOVER_S:
                if v.follower is None:
                    v.follower = followers(v)
                v.control = v.follower.control(v, vehicles)
            if v.simulate_physics:
                t, s, b, hb, rev, _mgs, _g = v.control
                v.model.step_raw(s, t, b, hb, rev, dt)
        self.frame += 1
        self.elapsed += dt
        self.publish()

    def publish(self) -> None:
        """Push the snapshot of the current frame, then the sensors' data."""
        frame, elapsed, streams = self.frame, self.elapsed, self.streams
        if streams.has_subscribers(self.broadcast):
            parts = [E.SENSOR_HEADER.pack(E.WORLD_OBSERVER, frame, elapsed, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0),
                     E.EPISODE_HEADER.pack(self.episode_id, time.monotonic() - self.t0, self.delta,
                                           0, 0, 0, 0)]
            pack = E.ACTOR_STATE.pack
            for a in self.actors.values():
                if isinstance(a, Vehicle):
                    m = a.model
                    yaw = m.yaw
                    c, s = math.cos(yaw), math.sin(yaw)
                    sp, ac = m.speed, m.acceleration
                    parts.append(pack(a.id, 1, m.x, m.y, m.z, 0.0, yaw * _RAD, 0.0,
                                      sp * c, sp * s, 0.0, 0.0, 0.0, m.yaw_rate * _RAD,
                                      ac * c, ac * s, 0.0, *a.control, SPEED_LIMIT_KMH,
                                      4, False, 0, 0))
                else:
                    parts.append(pack(a.id, 1, *self.world_transform(a), 0.0, 0.0, 0.0,
                                      0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
                                      0.0, 0.0, 0.0, False, False, False, 0, 0.0, 4, False, 0, 0))
            streams.publish(self.broadcast, parts)
        if self.sensors:
            self._sensors(frame, elapsed)

    def _sensors(self, frame: int, elapsed: float) -> None:
        streams = self.streams
        views: list[ActorState] | None = None
        for s in self.sensors:
            if s.kind == "camera":
                if not streams.has_subscribers(s.stream) and \
                        not streams.wait_expected(s.stream, SUBSCRIBE_WAIT_S):
                    continue
                if s.tick > 0.0:
                    if elapsed + 1e-9 < s.next_time:
                        continue
                    s.next_time = elapsed + s.tick
                parent = self.actors.get(s.parent)
                if isinstance(parent, Vehicle):
                    ego = parent.model
                    exclude = parent
                else:  # a free camera: its own world pose, mounted at (0, 0, z)
                    x, y, z, _p, yaw, _r = self.world_transform(s)
                    ego = VehicleState(x=x, y=y, yaw=yaw * _DEG, z=0.0)
                    mount = (0.0, 0.0, max(z, 0.2), 0.0)
                    if (s.spec.x, s.spec.y, s.spec.z, s.spec.yaw_deg) != mount:
                        s.spec = dataclasses.replace(s.spec, x=0.0, y=0.0, z=mount[2], yaw_deg=0.0)
                    exclude = None
                if exclude is None:
                    if views is None:
                        views = self._views()
                    others = views
                else:
                    others = self._views(exclude)
                img = self.camera(s.spec).render(ego, others, frame=frame, seed=self.seed)
                import cv2
                bgra = cv2.cvtColor(img, cv2.COLOR_RGB2BGRA)
                tf = self.world_transform(s)
                n = streams.publish(s.stream, (E.SENSOR_HEADER.pack(E.RGB_CAMERA, frame, elapsed, *tf),
                                               E.IMAGE_HEADER.pack(s.spec.width, s.spec.height, s.spec.fov_deg),
                                               bgra.data))
                log.debug("camera %d frame %d -> %d subscribers", s.id, frame, n)
            elif s.kind == "collision" and s.detector is not None:
                parent = self.actors.get(s.parent)
                if not isinstance(parent, Vehicle):
                    continue
                m = parent.model
                others = self._views(exclude=parent)
                events = s.detector.detect(m.x, m.y, m.yaw, others, frame, elapsed)
                if not events or not streams.has_subscribers(s.stream):
                    continue
                import msgpack
                tf = self.world_transform(s)
                for ev in events:
                    other = self.actors.get(ev.other_actor)
                    if other is None:
                        continue
                    imp = self._impulse(parent, other)
                    body = msgpack.packb([self.record(parent), self.record(other), list(imp)],
                                         use_bin_type=True)
                    streams.publish(s.stream, (E.SENSOR_HEADER.pack(E.COLLISION_SENSOR, frame, elapsed, *tf),
                                               body))

    @staticmethod
    def _impulse(a: Vehicle, b: Actor) -> tuple[float, float, float]:
        """A normal impulse [N s] for a contact: reduced mass (1500 kg cars) times the
        closing speed, along the line of centres."""
        if not isinstance(b, Vehicle):
            return (0.0, 0.0, 0.0)
        ma, mb = a.model, b.model
        dx, dy = ma.x - mb.x, ma.y - mb.y
        d = math.hypot(dx, dy) or 1.0
        nx, ny = dx / d, dy / d
        va = (ma.speed * math.cos(ma.yaw), ma.speed * math.sin(ma.yaw))
        vb = (mb.speed * math.cos(mb.yaw), mb.speed * math.sin(mb.yaw))
        closing = abs((va[0] - vb[0]) * nx + (va[1] - vb[1]) * ny)
        j = 750.0 * max(closing, 0.1)
        return (j * nx, j * ny, 0.0)


# ============================================================================ server
_VEHICLES = {v[0]: v for v in VEHICLE_BLUEPRINTS}


def _default_weather() -> dict[str, float]:
    from ..sim.embedded.weather import CARLA_WEATHER
    w = dict(zip(E.WEATHER_FIELDS, CARLA_WEATHER["ClearNoon"]))
    w.update(scattering_intensity=1.0, mie_scattering_scale=0.03,
             rayleigh_scattering_scale=0.0331, dust_storm=0.0)
    return {k: float(w.get(k, 0.0)) for k in E.WEATHER_FIELDS}


def _parse_color(text: str, default: tuple[int, int, int]) -> tuple[int, int, int]:
    try:
        r, g, b = (int(float(c)) for c in text.split(","))
        return (min(max(r, 0), 255), min(max(g, 0), 255), min(max(b, 0), 255))
    except ValueError:
        return default


def _blueprint_definitions() -> list:
    A = E.attribute_definition
    defs = []
    uid = 1
    for bp_id, _l, _w, _h, _wb, gen in VEHICLE_BLUEPRINTS:
        make = bp_id.split(".")[1]
        attrs = [
            A("role_name", E.ATTR_STRING, "autopilot"),
            A("color", E.ATTR_RGB, _COLORS[uid % len(_COLORS)], _COLORS),
            A("number_of_wheels", E.ATTR_INT, "4", ("4",), False),
            A("generation", E.ATTR_INT, str(gen), (), False),
            A("base_type", E.ATTR_STRING, "car", (), False),
            A("special_type", E.ATTR_STRING, "", (), False),
            A("object_type", E.ATTR_STRING, "", (), False),
            A("has_dynamic_doors", E.ATTR_BOOL, "false", (), False),
            A("has_lights", E.ATTR_BOOL, "true", (), False),
            A("sticky_control", E.ATTR_BOOL, "true"),
            A("terramechanics", E.ATTR_BOOL, "false"),
        ]
        defs.append(E.actor_definition(uid, bp_id, f"vehicle,{make},car", attrs))
        uid += 1
    cam = [A("role_name", E.ATTR_STRING, "front"),
           A("image_size_x", E.ATTR_INT, "800"), A("image_size_y", E.ATTR_INT, "600"),
           A("enable_postprocess_effects", E.ATTR_BOOL, "true"),
           A("exposure_mode", E.ATTR_STRING, "histogram", ("manual", "histogram"))]
    cam += [A(k, E.ATTR_FLOAT, v) for k, v in _CAMERA_ATTRS_FLOAT.items() if k != "blade_count"]
    cam.append(A("blade_count", E.ATTR_INT, "5"))
    defs.append(E.actor_definition(uid, "sensor.camera.rgb", "sensor,camera,rgb", cam))
    uid += 1
    defs.append(E.actor_definition(uid, "sensor.other.collision", "sensor,other,collision",
                                   [A("role_name", E.ATTR_STRING, "front")]))
    uid += 1
    defs.append(E.actor_definition(uid, "sensor.other.lane_invasion", "sensor,other,lane_invasion",
                                   [A("role_name", E.ATTR_STRING, "front")]))
    return defs


#: Calls the server knows and answers with a Response error (feature not modelled).
_UNSUPPORTED = {
    "get_physics_control": "vehicle physics control",
    "apply_physics_control": "vehicle physics control",
    "get_navigation_mesh": "pedestrian navigation",
    "get_ackermann_controller_settings": "Ackermann control",
    "apply_ackermann_control_to_vehicle": "Ackermann control",
    "apply_ackermann_controller_settings": "Ackermann control",
    "apply_control_to_walker": "walkers",
    "start_recorder": "the recorder",
    "replay_file": "the replayer",
    "show_recorder_file_info": "the recorder",
    "show_recorder_collisions": "the recorder",
    "show_recorder_actors_blocked": "the recorder",
    "cast_ray": "ray casting",
    "project_point": "ray casting",
    "get_telemetry_data": "vehicle telemetry",
    "get_wheel_steer_angle": "wheel angles",
    "enable_chrono_physics": "Chrono physics",
    "enable_carsim": "CarSim",
    "get_group_traffic_lights": "traffic lights",
    "set_traffic_light_state": "traffic lights",
}


class CarlaServer:
    """The server: RPC and stream endpoints over a :class:`ServerWorld`.

    Args:
        host: address to listen on (loopback by default).
        port: RPC port (0: a free one; see :attr:`port`).
        stream_port: stream port (0: a free one).
        maps_dir: folder of OpenDRIVE towns (default as :func:`drive_il.sim.maps.load_town`).
        town: the town of the first episode (default Town01 when the maps folder has
            it, else the generated "circuit").
        seed: seed of the server-side randomness.
    """

    def __init__(self, *, host: str = "127.0.0.1", port: int = 2000, stream_port: int = 0,
                 maps_dir: str | Path | None = None, town: str | None = None, seed: int = 0) -> None:
        from ..sim.maps import available_towns
        self.maps_dir = maps_dir
        self.seed = int(seed)
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self.streams = StreamServer(host, stream_port)
        self.stream_port = self.streams.port
        self.settings = E.EpisodeSettings()
        self._sync_owner = 0
        self._tm: dict[int, tuple[str, str, int]] = {}
        self._definitions = _blueprint_definitions()
        self._rasters: dict[str, Any] = {}
        self._episodes = 0
        self._opendrive_path: Path | None = None
        if town is None:
            names = available_towns(maps_dir)
            town = "Town01" if "Town01" in names else "circuit"
        self.world = self._new_world(town)
        # listen only once the first world (and its raster) is ready
        self.rpc = RpcServer(host, port, self._dispatch, on_close=self._on_close)
        self.host, self.port = self.rpc.host, self.rpc.port
        self._timer: threading.Thread | None = None
        self._methods: dict[str, Callable[[Connection, list], Any]] = {
            n[5:]: getattr(self, n) for n in dir(self) if n.startswith("_rpc_")}
        self.calls: dict[str, int] = {}

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self.streams.start()
        self.rpc.start()
        self._timer = threading.Thread(target=self._async_loop, name="async-tick", daemon=True)
        self._timer.start()
        log.info("serving CARLA %s on %s:%d (streams on port %d), town %s",
                 SERVER_VERSION, self.host, self.port, self.stream_port, self.world.town.name)

    def stop(self) -> None:
        self._stop.set()
        self.rpc.stop()
        self.streams.stop()

    def serve_forever(self) -> None:
        self.start()
        try:
            while not self._stop.wait(1.0):
                pass
        finally:
            self.stop()

    def _new_world(self, name: str) -> ServerWorld:
        """Raises:
            MapError: unknown or corrupt town.
        """
        from ..sim.maps import load_town
        town = load_town(name, self.maps_dir)
        self._episodes += 1
        first = self.world.frame + 1 if getattr(self, "world", None) is not None else 0
        episode_id = (self.seed * 1_000_003 + self._episodes) & 0xFFFFFFFFFFFF or 1
        world = ServerWorld(town, episode_id=episode_id, streams=self.streams, first_frame=first,
                            seed=self.seed + self._episodes, raster_cache=self._rasters)
        world.raster()  # built now, not inside the first tick with a camera (client time-out)
        return world

    def _follower(self, v: Vehicle) -> LaneFollower:
        return LaneFollower(self.world.town.map,
                            np.random.default_rng([self.seed, v.id, self._episodes]),
                            target_speed=SPEED_LIMIT_KMH / 3.6 * 0.7)

    def tick(self) -> int:
        """Advance the world one step; returns the new frame."""
        with self._lock:
            w = self.world
            dt = self.settings.fixed_delta_seconds or 1.0 / ASYNC_TICK_HZ
            w.step(dt, followers=self._follower)
            return w.frame

    def _async_loop(self) -> None:
        period = 1.0 / ASYNC_TICK_HZ
        nxt = time.monotonic()
        while not self._stop.is_set():
            nxt += period
            if not self.settings.synchronous_mode:
                try:
                    self.tick()
                except Exception:
                    log.exception("asynchronous tick failed")
            delay = nxt - time.monotonic()
            if delay < -1.0:
                nxt = time.monotonic()
            elif delay > 0:
                self._stop.wait(delay)

    # ------------------------------------------------------------------ dispatch
    def _dispatch(self, conn: Connection, method: str, params: list) -> Any:
        fn = self._methods.get(method)
        self.calls[method] = self.calls.get(method, 0) + 1
        args = params[1:]  # params[0] is the call's metadata [is_async]
        if fn is None:
            if method in _UNSUPPORTED:
                log.warning("client %d asked for %s (%s): not supported by this server",
                            conn.id, method, _UNSUPPORTED[method])
                return E.err(f"{method}: {_UNSUPPORTED[method]} is not supported by the "
                             f"drive-il embedded server")
            raise UnknownFunction(method)
        log.debug("client %d: %s%r", conn.id, method, tuple(args) if len(repr(args)) < 200 else "(...)")
        with self._lock:
            return fn(conn, *args)

    def _on_close(self, conn: Connection) -> None:
        with self._lock:
            for port in [p for p, (_ip, _ps, cid) in self._tm.items() if cid == conn.id]:
                log.info("client %d gone: forgetting its Traffic Manager on port %d", conn.id, port)
                del self._tm[port]
            if self._sync_owner == conn.id and self.settings.synchronous_mode:
                log.warning("client %d left the world in synchronous mode: back to asynchronous",
                            conn.id)
                self.settings = dataclasses.replace(self.settings, synchronous_mode=False)
                self._sync_owner = 0

    # ------------------------------------------------------------------ episode
    def _rpc_version(self, conn):
        return E.ok(SERVER_VERSION)

    def _rpc_get_episode_info(self, conn):
        w = self.world
        return E.ok([w.episode_id, [self.streams.token(w.broadcast)]])

    def _rpc_get_episode_settings(self, conn):
        return E.ok(self.settings.to_msgpack())

    def _rpc_set_episode_settings(self, conn, settings):
        try:
            s = E.EpisodeSettings.from_msgpack(settings)
        except (ValueError, TypeError, IndexError) as e:
            return E.err(f"set_episode_settings: {e}")
        if s.fixed_delta_seconds is not None and not 0.0 < s.fixed_delta_seconds <= 1.0:
            return E.err(f"fixed_delta_seconds {s.fixed_delta_seconds} outside (0, 1] s")
        if s.synchronous_mode and not self.settings.synchronous_mode:
            self._sync_owner = conn.id
        elif not s.synchronous_mode:
            self._sync_owner = 0
        self.settings = s
        log.info("client %d: settings synchronous=%s fixed_delta_seconds=%s", conn.id,
                 s.synchronous_mode, s.fixed_delta_seconds)
        return E.ok(self.world.frame)

    def _rpc_tick_cue(self, conn):
        return E.ok(self.tick())

    def _rpc_get_weather_parameters(self, conn):
        return E.ok(E.weather_to_list(self.world.weather))

    def _rpc_set_weather_parameters(self, conn, weather):
        try:
            self.world.set_weather(E.weather_from_list(weather))
        except (ValueError, TypeError) as e:
            return E.err_void(f"set_weather_parameters: {e}")
        return E.ok_void()

    def _rpc_get_map_info(self, conn):
        w = self.world
        return E.ok([f"Carla/Maps/{w.town.name}", w.spawn_transforms()])

    def _rpc_get_map_data(self, conn):
        return E.ok(_with_geo_reference(self.world.town.xodr))

    def _rpc_get_required_files(self, conn, *args):
        return E.ok([])

    def _rpc_request_file(self, conn, *args):
        return E.ok(b"")

    def _rpc_get_available_maps(self, conn):
        from ..sim.maps import available_towns
        return E.ok([f"/Game/Carla/Maps/{t}" for t in available_towns(self.maps_dir)])

    def _rpc_load_new_episode(self, conn, map_name, reset_settings=True, *layers):
        from ..errors import DriveILError
        name = str(map_name).rsplit("/", 1)[-1]
        if name == OPENDRIVE_MAP and self._opendrive_path is not None:
            name = str(self._opendrive_path)
        try:
            world = self._new_world(name)
        except DriveILError as e:
            log.warning("client %d: load_world(%r) failed: %s", conn.id, map_name, e)
            return E.err_void(f"map '{map_name}' not found")
        self._switch(world, bool(reset_settings))
        log.info("client %d: loaded %s (episode %d)", conn.id, name, world.episode_id)
        return E.ok_void()

    def _rpc_copy_opendrive_to_file(self, conn, xodr, params=None):
        """Keep the OpenDRIVE text for the ``OpenDriveMap`` level the client loads next
        (``client.generate_opendrive_world`` = this call, then ``load_world("OpenDriveMap")``;
        the mesh generation parameters do not apply to the embedded world)."""
        import hashlib
        import tempfile
        text = str(xodr)
        d = Path(tempfile.gettempdir()) / "drive_il_serve" / hashlib.sha1(text.encode()).hexdigest()[:16]
        d.mkdir(parents=True, exist_ok=True)
        path = d / f"{OPENDRIVE_MAP}.xodr"
        path.write_text(text, encoding="utf-8")
        self._opendrive_path = path
        log.info("client %d: OpenDRIVE text received (%d bytes)", conn.id, len(text))
        return E.ok_void()

    def _switch(self, world: ServerWorld, reset_settings: bool) -> None:
        old = self.world
        world.set_weather(old.weather)
        old.destroy_all()
        self.world = world
        if reset_settings:
            self.settings = E.EpisodeSettings()
            self._sync_owner = 0

    # ------------------------------------------------------------------ blueprints / actors
    def _rpc_get_actor_definitions(self, conn):
        return E.ok(self._definitions)

    def _rpc_get_spectator(self, conn):
        return E.ok(self.world.record(self.world.spectator))

    def _spawn(self, conn, description, transform, parent=0) -> Any:
        """The new actor's record, or raises ValueError."""
        uid, bp_id, typed = E.parse_description(description)
        attrs = {k: v for k, (_t, v) in typed.items()}
        types = {k: t for k, (t, _v) in typed.items()}
        w = self.world
        if bp_id.startswith("vehicle."):
            if parent:
                raise ValueError("vehicles cannot be attached to a parent")
            a = w.spawn_vehicle(bp_id, uid, attrs, transform, conn.id)
        elif bp_id.startswith("sensor."):
            a = w.spawn_sensor(bp_id, uid, attrs, transform, int(parent or 0), conn.id)
        else:
            raise ValueError(f"unknown blueprint {bp_id!r}")
        a.types = types
        log.info("client %d: spawned %s id %d%s", conn.id, bp_id, a.id,
                 f" on {parent}" if parent else "")
        return a

    def _rpc_spawn_actor(self, conn, description, transform):
        try:
            return E.ok(self.world.record(self._spawn(conn, description, transform)))
        except (ValueError, TypeError, IndexError) as e:
            return E.err(str(e))

    def _rpc_spawn_actor_with_parent(self, conn, description, transform, parent, *rest):
        try:
            return E.ok(self.world.record(self._spawn(conn, description, transform, parent)))
        except (ValueError, TypeError, IndexError) as e:
            return E.err(str(e))

    def _rpc_destroy_actor(self, conn, actor_id):
        ok = self.world.destroy(int(actor_id))
        if not ok:
            return E.err(f"destroy_actor: actor {actor_id} not found")
        return E.ok(True)

    def _rpc_set_actor_dead(self, conn, actor_id):
        self.world.destroy(int(actor_id))
        return E.ok_void()

    def _rpc_get_actors_by_id(self, conn, ids):
        w = self.world
        return E.ok([w.record(w.actors[i]) for i in ids if i in w.actors])

    def _rpc_get_actor_bounding_box(self, conn, actor_id):
        a = self.world.actors.get(int(actor_id))
        if a is None:
            return E.ok(E.bounding_box(0, 0, 0, 0, 0, 0, 0))
        return E.ok(a.bbox())

    def _vehicle(self, actor_id) -> Vehicle | None:
        a = self.world.actors.get(int(actor_id))
        return a if isinstance(a, Vehicle) else None

    def _apply_control(self, v: Vehicle, control) -> None:
        v.control = E.vehicle_control(control)
        v.last_control_time = self.world.elapsed

    def _rpc_apply_control_to_vehicle(self, conn, actor_id, control):
        v = self._vehicle(actor_id)
        if v is None:
            return E.err_void(f"apply_control_to_vehicle: actor {actor_id} is not a vehicle")
        self._apply_control(v, control)
        return E.ok_void()

    def _rpc_set_actor_transform(self, conn, actor_id, transform):
        a = self.world.actors.get(int(actor_id))
        if a is None:
            return E.err_void(f"set_actor_transform: actor {actor_id} not found")
        self.world.set_transform(a, transform)
        return E.ok_void()

    def _rpc_set_actor_location(self, conn, actor_id, loc):
        a = self.world.actors.get(int(actor_id))
        if a is None:
            return E.err_void(f"set_actor_location: actor {actor_id} not found")
        _x, _y, _z, p, yaw, r = self.world.world_transform(a) if not a.parent else a.rel
        self.world.set_transform(a, [loc, [p, yaw, r]])
        return E.ok_void()

    def _rpc_set_actor_target_velocity(self, conn, actor_id, vec):
        v = self._vehicle(actor_id)
        if v is None:
            return E.err_void(f"set_actor_target_velocity: actor {actor_id} is not a vehicle")
        m = v.model
        vx, vy = float(vec[0]), float(vec[1])
        m.speed = vx * math.cos(m.yaw) + vy * math.sin(m.yaw)
        return E.ok_void()

    def _rpc_set_actor_target_angular_velocity(self, conn, actor_id, vec):
        return E.ok_void()

    def _rpc_set_actor_simulate_physics(self, conn, actor_id, enabled):
        v = self._vehicle(actor_id)
        if v is not None:
            v.simulate_physics = bool(enabled)
        return E.ok_void()

    def _rpc_set_actor_enable_gravity(self, conn, actor_id, enabled):
        return E.ok_void()

    def _rpc_set_actor_collisions(self, conn, actor_id, enabled):
        return E.ok_void()

    def _rpc_set_actor_autopilot(self, conn, actor_id, enabled):
        v = self._vehicle(actor_id)
        if v is None:
            return E.err_void(f"set_actor_autopilot: actor {actor_id} is not a vehicle")
        v.autopilot = bool(enabled)
        return E.ok_void()

    def _rpc_get_vehicle_light_states(self, conn):
        return E.ok([[v.id, v.light_state] for v in self.world.vehicles])

    def _rpc_get_vehicle_light_state(self, conn, actor_id):
        v = self._vehicle(actor_id)
        return E.ok(v.light_state if v is not None else 0)

    def _rpc_set_vehicle_light_state(self, conn, actor_id, state):
        v = self._vehicle(actor_id)
        if v is not None:
            v.light_state = int(state)
        return E.ok_void()

    def _rpc_query_lights_state(self, conn, *args):
        return E.ok([])

    def _rpc_update_lights_state(self, conn, *args):
        return E.ok_void()

    def _rpc_update_day_night_cycle(self, conn, *args):
        return E.ok_void()

    def _rpc_get_level_BBs(self, conn, *args):
        return E.ok([])

    def _rpc_get_environment_objects(self, conn, *args):
        return E.ok([])

    def _rpc_get_names_of_all_objects(self, conn):
        return E.ok([])

    def _rpc_freeze_all_traffic_lights(self, conn, *args):
        return E.ok_void()

    def _rpc_reset_all_traffic_lights(self, conn):
        return E.ok_void()

    def _rpc_get_imui_gravity(self, conn):
        return E.ok(9.81)

    def _rpc_set_imui_gravity(self, conn, g):
        return E.ok_void()

    def _rpc_stop_recorder(self, conn):
        return E.ok_void()

    def _rpc_get_sensor_token(self, conn, stream_id):
        """The token of a stream, by its id (the client asks before subscribing)."""
        w = self.world
        sid = int(stream_id)
        if sid == w.broadcast or any(s.stream == sid for s in w.sensors):
            self.streams.expect(sid)
            return E.ok([self.streams.token(sid)])
        return E.err(f"get_sensor_token: no stream {sid}")

    def _rpc_is_sensor_enabled_for_ros(self, conn, *args):
        return E.ok(False)

    def _rpc_enable_sensor_for_ros(self, conn, *args):
        return E.ok_void()

    def _rpc_disable_sensor_for_ros(self, conn, *args):
        return E.ok_void()

    # ------------------------------------------------------------------ Traffic Manager
    def _rpc_is_traffic_manager_running(self, conn, port):
        return E.ok(int(port) in self._tm)

    def _rpc_add_traffic_manager_running(self, conn, ip_port):
        ip, port = str(ip_port[0]), int(ip_port[1])
        if port in self._tm:
            return E.ok(False)
        self._tm[port] = (ip, str(port), conn.id)
        log.info("client %d: Traffic Manager on %s:%d", conn.id, ip, port)
        return E.ok(True)

    def _rpc_get_traffic_manager_running(self, conn, port):
        ip, ps, _cid = self._tm.get(int(port), ("", "", 0))
        return E.ok([ip, ps])

    def _rpc_destroy_traffic_manager(self, conn, port):
        return E.ok(self._tm.pop(int(port), None) is not None)

    # ------------------------------------------------------------------ batches
    def _rpc_apply_batch(self, conn, commands, do_tick_cue=False):
        out = [self._command(conn, c) for c in commands]
        if do_tick_cue:
            self.tick()
        return out

    def _command(self, conn, cmd) -> list:
        """One ``carla::rpc::Command``; returns its ``Response<ActorId>``."""
        try:
            index, fields = cmd[0]
        except (TypeError, ValueError, IndexError):
            return E.err(f"malformed command {cmd!r}")
        w = self.world
        try:
            if index == E.CMD_SPAWN:
                desc, tf, parent, *rest = fields
                pid = int(parent[1]) if isinstance(parent, (list, tuple)) and parent and parent[0] else 0
                a = self._spawn(conn, desc, tf, pid)
                for sub in (rest[2] if len(rest) >= 3 else ()) or ():
                    sub_idx, sub_fields = sub[0]
                    sub_fields = list(sub_fields)
                    if sub_fields and sub_fields[0] == 0:  # FutureActor
                        sub_fields[0] = a.id
                    r = self._command(conn, [[sub_idx, sub_fields]])
                    if r[0][0] == 0:
                        w.destroy(a.id)
                        return r
                return E.ok(a.id)
            aid = int(fields[0])
            if index == E.CMD_DESTROY:
                if not w.destroy(aid):
                    return E.err(f"DestroyActor: actor {aid} not found")
                return E.ok(aid)
            a = w.actors.get(aid)
            if a is None:
                return E.err(f"{E.COMMAND_NAMES[index] if index < len(E.COMMAND_NAMES) else index}: "
                             f"actor {aid} not found")
            if index == E.CMD_VEHICLE_CONTROL:
                if not isinstance(a, Vehicle):
                    return E.err(f"ApplyVehicleControl: actor {aid} is not a vehicle")
                self._apply_control(a, fields[1])
            elif index == E.CMD_AUTOPILOT:
                if not isinstance(a, Vehicle):
                    return E.err(f"SetAutopilot: actor {aid} is not a vehicle")
                a.autopilot = bool(fields[1])
            elif index == E.CMD_TRANSFORM:
                w.set_transform(a, fields[1])
            elif index == E.CMD_LOCATION:
                _x, _y, _z, p, yaw, r = w.world_transform(a) if not a.parent else a.rel
                w.set_transform(a, [fields[1], [p, yaw, r]])
            elif index == E.CMD_TARGET_VELOCITY:
                self._rpc_set_actor_target_velocity(conn, aid, fields[1])
            elif index == E.CMD_SIMULATE_PHYSICS:
                if isinstance(a, Vehicle):
                    a.simulate_physics = bool(fields[1])
            elif index == E.CMD_LIGHT_STATE:
                if isinstance(a, Vehicle):
                    a.light_state = int(fields[1])
            elif index in (E.CMD_ENABLE_GRAVITY, 9, 10, 11, 12, 13, 17):
                pass  # forces, impulses, gravity, telemetry: no effect on the kinematic model
            else:
                name = E.COMMAND_NAMES[index] if 0 <= index < len(E.COMMAND_NAMES) else str(index)
                log.warning("client %d: batch command %s is not supported", conn.id, name)
                return E.err(f"{name} is not supported by the drive-il embedded server")
            return E.ok(aid)
        except (ValueError, TypeError, IndexError, KeyError) as e:
            return E.err(str(e))


def _with_geo_reference(xodr: str) -> str:
    """The OpenDRIVE text with a ``<geoReference>`` in its header (the client warns
    without one)."""
    if "geoReference" in xodr:
        return xodr
    geo = "<geoReference><![CDATA[+lat_0=0 +lon_0=0]]></geoReference>"
    i = xodr.find("<header")
    if i < 0:
        return xodr
    j = xodr.find(">", i)
    if xodr[j - 1] == "/":
        return xodr[:j - 1] + ">" + geo + "</header>" + xodr[j + 1:]
    return xodr[:j + 1] + geo + xodr[j + 1:]
