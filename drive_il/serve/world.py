"""The served world: one episode's town, weather, actors, tick and sensor output.

:class:`ServerWorld` is lower level than the Simulator protocol -- any number of
vehicles, sensors attached to any actor, a control per vehicle -- and is built from
the embedded world's parts:

* each vehicle is a :class:`~drive_il.sim.embedded.dynamics.BicycleModel` driven by
  its last ``carla.VehicleControl`` (from the client, the client's Traffic Manager, or
  the server-side lane follower :class:`~drive_il.serve.autopilot.LaneFollower`);
* each ``sensor.camera.rgb`` is a :class:`~drive_il.sim.embedded.camera.Camera` over
  the town's :class:`~drive_il.sim.embedded.raster.MapRaster`, under a
  :class:`~drive_il.sim.embedded.weather.WeatherLook` derived from the
  ``carla.WeatherParameters`` the client set; images are sent as BGRA;
* each ``sensor.other.collision`` is a
  :class:`~drive_il.sim.embedded.events.CollisionDetector` on its parent vehicle;
  ``sensor.other.lane_invasion`` is computed by the client itself (no stream);
* the town's traffic lights are ``traffic.traffic_light`` map actors run by
  :class:`~drive_il.serve.lights.ServedLights` (the embedded world's phase controller);
* each ``walker.pedestrian.*`` is a :class:`~drive_il.serve.actors.Walker` whose pose the
  client's navigation sets every tick (``ApplyWalkerState``; the mesh is
  :mod:`drive_il.serve.navmesh`) or a ``carla.WalkerControl`` walks; walkers are obstacles
  of the collision sensors and are drawn by the cameras.

One tick (:meth:`ServerWorld.step`): vehicles' controls (autopilot where no client
control arrived recently), dynamics for ``dt``, walkers under a WalkerControl, the
traffic lights' phases, frame + 1, collisions, then the world snapshot on the episode's
broadcast stream, then sensor data.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable
from typing import Any

from ..scenario import CameraConfig, VehicleConfig
from ..types import ActorState, VehicleState
from . import encoding as E
from .actors import TAG_CAR, TAG_PEDESTRIAN, Actor, Light, Sensor, Vehicle, Walker
from .autopilot import AUTOPILOT_HANDOVER_S, SPEED_LIMIT_KMH, LaneFollower
from .blueprints import VEHICLE_KINDS, parse_color, vehicle_spec
from .sensors import (
    GNSS_ID,
    IMU_ID,
    LIDAR_ID,
    LIDAR_REFUSED,
    UNMODELLED_SENSORS,
    GnssModel,
    ImuModel,
    unmodelled_refusal,
)
from .streams import StreamServer

__all__ = ["ASYNC_TICK_HZ", "MAX_IMAGE_SIDE", "ServerWorld", "default_weather"]

log = logging.getLogger(__name__)

#: Tick rate of the world in asynchronous mode [Hz] (also the delta of a new world).
ASYNC_TICK_HZ = 20.0
#: [s] a tick waits this long for a sensor stream whose token a client just asked for
#: (``sensor.listen`` subscribes asynchronously; its first frame would otherwise be lost).
SUBSCRIBE_WAIT_S = 1.0
#: Largest camera image side [px].
MAX_IMAGE_SIDE = 4096
_DEG = math.pi / 180.0
_RAD = 180.0 / math.pi
#: camera blueprint -> Sensor.kind (rendered by the embedded camera)
_CAMERA_KINDS = {"sensor.camera.rgb": "camera", "sensor.camera.depth": "depth",
                 "sensor.camera.semantic_segmentation": "semantic"}
_CAMERA_KIND_SET = frozenset(_CAMERA_KINDS.values())
#: a vehicle blueprint's base_type -> CARLA semantic tag (0.9.16 CityObjectLabel)
_BASE_TYPE_TAGS = {"car": 14, "van": 14, "truck": 15, "bus": 16, "motorcycle": 18, "bicycle": 19}


def _sensor_tick(attrs: dict[str, str]) -> float:
    """The ``sensor_tick`` attribute [s] (0: every tick).

    Raises:
        ValueError: not a finite number >= 0.
    """
    try:
        t = float(attrs.get("sensor_tick", "0") or 0.0)
    except ValueError:
        raise ValueError(f"sensor_tick {attrs.get('sensor_tick')!r} is not a number") from None
    if not (math.isfinite(t) and t >= 0.0):
        raise ValueError(f"sensor_tick {t} must be a finite number >= 0")
    return t


def _due(s: Sensor, elapsed: float) -> bool:
    """Whether sensor ``s`` measures at world time ``elapsed`` (its ``sensor_tick``);
    advances its next time when it does."""
    if s.tick > 0.0:
        if elapsed + 1e-9 < s.next_time:
            return False
        s.next_time = elapsed + s.tick
    return True


def default_weather() -> dict[str, float]:
    """CARLA's ``ClearNoon`` as the ``carla.WeatherParameters`` fields {name: value}."""
    from ..sim.embedded.weather import CARLA_WEATHER
    w = dict(zip(E.WEATHER_FIELDS, CARLA_WEATHER["ClearNoon"]))
    w.update(scattering_intensity=1.0, mie_scattering_scale=0.03,
             rayleigh_scattering_scale=0.0331, dust_storm=0.0)
    return {k: float(w.get(k, 0.0)) for k in E.WEATHER_FIELDS}


class ServerWorld:
    """The simulation state of one episode (not thread-safe: the server locks it).

    Args:
        town: the :class:`~drive_il.maps.TownMap`.
        episode_id: this episode's id.
        streams: the stream server (snapshots and sensor data are published on it).
        first_frame: frame number of the episode's initial state.
        seed: seed of the episode's rendering (rain animation).
        lights: serve the town's traffic lights (:mod:`.lights`).
    """

    def __init__(self, town: Any, *, episode_id: int, streams: StreamServer,
                 first_frame: int = 0, seed: int = 0,
                 raster_cache: dict | None = None, lights: bool = True) -> None:
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
        self.walkers: list[Walker] = []
        self.lights: Any = None  # .lights.ServedLights, when the town has traffic lights
        self.weather: dict[str, float] = default_weather()
        self._look: Any = None
        self._raster_cache = raster_cache if raster_cache is not None else {}
        self._cameras: dict[tuple, Any] = {}
        self.seed = int(seed)
        self._spawn_tfs: list | None = None
        self._next_id = 1
        self.spectator = self._add(Actor(id=0, type_id="spectator", rel=(0.0, 0.0, 50.0, -90.0, 0.0, 0.0)))
        if lights:
            self._spawn_lights()

    def _spawn_lights(self) -> None:
        """The town's traffic lights as map actors (:mod:`.lights`), none where the
        town has no signalised junction."""
        from ..errors import DriveILError
        from .lights import ServedLights
        try:
            served = ServedLights(self.town)
        except (DriveILError, ValueError) as e:
            log.warning("no traffic lights on %s: %s", self.town.name, e)
            return
        if len(served):
            served.spawn(self._add)
            self.lights = served
            log.info("%s: %d traffic lights in %d groups", self.town.name, len(served),
                     len(served.layout.groups))

    def light_states(self) -> tuple:
        """The traffic lights now (:class:`~drive_il.types.TrafficLight`), () without."""
        return self.lights.states() if self.lights is not None else ()

    def walker_states(self) -> tuple:
        """The walkers now as :class:`~drive_il.types.WalkerState` (feet on the ground)."""
        from ..types import WalkerState
        return tuple(WalkerState(actor_id=w.id, x=w.x, y=w.y, yaw=w.yaw, speed=w.speed,
                                 z=w.z - w.half_extent[2], radius=max(w.half_extent[:2]),
                                 height=2.0 * w.half_extent[2]) for w in self.walkers)

    def spawn_transforms(self) -> list:
        """The town's spawn points (:func:`drive_il.maps.spawn_points`) as CARLA
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
        elif isinstance(a, Walker):
            self.walkers.append(a)
        if a.parent:
            self.actors[a.parent].children.append(a.id)
        return a

    def spawn_vehicle(self, bp_id: str, uid: int, attrs: dict[str, str], tf: list, owner: int) -> Vehicle:
        """Raises:
            ValueError: unknown blueprint or a collision at the spawn position.
        """
        spec = vehicle_spec(bp_id)
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
        color = parse_color(attrs.get("color", ""), default=(160, 30, 30))
        v = Vehicle(id=0, type_id=bp_id, attrs=attrs, uid=uid, owner=owner, model=model,
                    color=color, tags=bytes([TAG_CAR]))
        return self._add(v)  # type: ignore[return-value]

    def spawn_walker(self, bp_id: str, uid: int, attrs: dict[str, str], tf: list, owner: int) -> Walker:
        """A pedestrian standing at ``tf`` (its capsule centre half its height above
        the ground under the given location, as CARLA's walkers stand)."""
        (x, y, z), (_p, yaw_deg, _r) = tf
        w = Walker(id=0, type_id=bp_id, attrs=dict(attrs), uid=uid, owner=owner,
                   tags=bytes([TAG_PEDESTRIAN]))
        w.x, w.y, w.yaw = float(x), float(y), math.radians(float(yaw_deg))
        w.z = self._ground_z(float(x), float(y), float(z)) + w.half_extent[2]
        return self._add(w)  # type: ignore[return-value]

    def spawn_controller(self, bp_id: str, uid: int, attrs: dict[str, str], parent: int,
                         owner: int) -> Actor:
        """A ``controller.ai.walker`` attached to walker ``parent`` (the client's
        navigation drives the walker; the controller is a record the client needs).

        Raises:
            ValueError: ``parent`` is not a walker.
        """
        if not isinstance(self.actors.get(parent), Walker):
            raise ValueError(f"{bp_id} must be attached to a walker, not to actor {parent}")
        return self._add(Actor(id=0, type_id=bp_id, attrs=dict(attrs), uid=uid, parent=parent,
                               owner=owner))

    def walker_state(self, w: Walker, tf: list, speed: float) -> None:
        """``ApplyWalkerState``: the pose and speed the client's navigation computed
        (its location is on the mesh, the feet: the capsule centre is half the walker's
        height above it, as the CARLA server places it)."""
        (x, y, z), (_p, yaw_deg, _r) = tf
        w.x, w.y, w.z = float(x), float(y), float(z) + w.half_extent[2]
        w.yaw = math.radians(float(yaw_deg))
        w.speed = max(0.0, float(speed))
        w.controlled = False

    def walker_control(self, w: Walker, control: Any) -> None:
        """``ApplyWalkerControl`` ``[[dx, dy, dz], speed, jump]``: walk along the
        direction at the speed from the next tick on."""
        (dx, dy, _dz), speed, jump = control[0], control[1], control[2]
        n = math.hypot(float(dx), float(dy))
        w.direction = (float(dx) / n, float(dy) / n, 0.0) if n > 0 else (0.0, 0.0, 0.0)
        w.speed = max(0.0, float(speed)) if n > 0 else 0.0
        w.jump = bool(jump)
        w.controlled = True
        if n > 0:
            w.yaw = math.atan2(w.direction[1], w.direction[0])

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
        kind = _CAMERA_KINDS.get(bp_id)
        if kind is not None:
            w = int(float(attrs.get("image_size_x", "800")))
            h = int(float(attrs.get("image_size_y", "600")))
            fov = float(attrs.get("fov", "90"))
            if not (1 <= w <= MAX_IMAGE_SIDE and 1 <= h <= MAX_IMAGE_SIDE):
                raise ValueError(f"image size {w}x{h} outside 1..{MAX_IMAGE_SIDE}")
            if not 1.0 <= fov <= 170.0:
                raise ValueError(f"fov {fov} outside 1..170 degrees")
            # a free camera renders from its own world pose, mounted at (0, 0, z) (see tick)
            spec = CameraConfig(name=f"cam{uid}", width=w, height=h, fov_deg=fov,
                                x=rel[0] if parent else 0.0, y=rel[1] if parent else 0.0,
                                z=max(rel[2], 0.2), pitch_deg=max(-90.0, min(90.0, rel[3])),
                                yaw_deg=0.0 if not parent else rel[4])
            s = Sensor(id=0, type_id=bp_id, attrs=dict(attrs), uid=uid, parent=parent, rel=rel,
                       owner=owner, kind=kind, stream=self.streams.new_stream(), spec=spec,
                       tick=_sensor_tick(attrs))
        elif bp_id in (GNSS_ID, IMU_ID):
            model = GnssModel(attrs) if bp_id == GNSS_ID else ImuModel(attrs)
            s = Sensor(id=0, type_id=bp_id, attrs=dict(attrs), uid=uid, parent=parent, rel=rel,
                       owner=owner, kind="gnss" if bp_id == GNSS_ID else "imu",
                       stream=self.streams.new_stream(), tick=_sensor_tick(attrs), detector=model)
        elif bp_id == LIDAR_ID:
            raise ValueError(LIDAR_REFUSED)
        elif bp_id in UNMODELLED_SENSORS:
            raise ValueError(unmodelled_refusal(bp_id))
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
        if s.kind == "collision" and s.detector is not None:
            pa = self.actors[parent]
            s.detector.prime(pa.model.x, pa.model.y, pa.model.yaw,
                             self._views(exclude=pa) + self._walker_views())
        return s

    def destroy(self, actor_id: int) -> bool:
        """Destroy an actor; False if unknown. Actors attached to it stay where they are,
        detached (clients destroy vehicles and their sensors in one batch)."""
        a = self.actors.get(actor_id)
        if a is None or a is self.spectator or isinstance(a, Light):  # lights belong to the map
            return False
        for cid in a.children:
            c = self.actors.get(cid)
            if c is not None:
                c.rel = self.world_transform(c)
                c.parent = 0
                if isinstance(c, Sensor) and c.kind in _CAMERA_KIND_SET and c.spec is not None:
                    c.spec = dataclasses.replace(c.spec, x=0.0, y=0.0, z=max(c.rel[2], 0.2), yaw_deg=0.0)
        a.children = []
        del self.actors[actor_id]
        if isinstance(a, Vehicle):
            self.vehicles.remove(a)
        elif isinstance(a, Walker):
            self.walkers.remove(a)
        elif isinstance(a, Sensor):
            self.sensors.remove(a)
            if a.stream:
                self.streams.close_stream(a.stream)
        if a.parent and a.parent in self.actors:
            kids = self.actors[a.parent].children
            if actor_id in kids:
                kids.remove(actor_id)
        return True

    def destroy_owned(self, owners: set[int] | frozenset[int]) -> list[int]:
        """Destroy every actor spawned by one of the connections ``owners`` (their
        client is gone); returns the destroyed ids. Sensors of other owners attached to
        them are detached, as with :meth:`destroy`."""
        ids = [aid for aid, a in self.actors.items() if a.owner in owners and a.owner
               and a is not self.spectator]
        # sensors first: their streams close before their parent vehicle goes
        ids.sort(key=lambda aid: not isinstance(self.actors[aid], Sensor))
        return [aid for aid in ids if self.destroy(aid)]

    def destroy_all(self) -> None:
        for aid in [a for a in self.actors if self.actors[a] is not self.spectator
                    and not isinstance(self.actors[a], Light)]:
            if aid in self.actors:
                self.destroy(aid)
        self.streams.close_stream(self.broadcast)

    # ------------------------------------------------------------------ transforms
    def world_transform(self, a: Actor) -> tuple[float, float, float, float, float, float]:
        """(x, y, z, pitch, yaw, roll) [m, deg] in the world."""
        if isinstance(a, Vehicle):
            m = a.model
            return (m.x, m.y, m.z, 0.0, m.yaw * _RAD, 0.0)
        if isinstance(a, Walker):
            return (a.x, a.y, a.z, 0.0, a.yaw * _RAD, 0.0)
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
            a.model.teleport(float(x), float(y), float(yw) * _DEG,
                             z=self._ground_z(float(x), float(y), float(z)))
        elif isinstance(a, Walker):
            a.x, a.y, a.z, a.yaw = float(x), float(y), float(z), float(yw) * _DEG
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

    def _walker_views(self) -> list[ActorState]:
        """The walkers as small boxes for the collision detectors (not drawn by the
        cameras: the embedded world's walkers draw themselves)."""
        return [ActorState(actor_id=w.id, x=w.x, y=w.y, yaw=w.yaw, speed=w.speed,
                           z=w.z - w.half_extent[2], length=2.0 * w.half_extent[0],
                           width=2.0 * w.half_extent[1], height=2.0 * w.half_extent[2])
                for w in self.walkers]

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
        for w in self.walkers:
            if w.controlled and w.speed > 0.0:
                w.x += w.direction[0] * w.speed * dt
                w.y += w.direction[1] * w.speed * dt
        if self.lights is not None:
            self.lights.step(self, dt)
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
            lights = self.lights
            for a in self.actors.values():
                if isinstance(a, Vehicle):
                    m = a.model
                    yaw = m.yaw
                    c, s = math.cos(yaw), math.sin(yaw)
                    sp, ac = m.speed, m.acceleration
                    tl_state, tl_id = lights.of_vehicle(a) if lights is not None else (4, 0)
                    parts.append(pack(a.id, 1, m.x, m.y, m.z, 0.0, yaw * _RAD, 0.0,
                                      sp * c, sp * s, 0.0, 0.0, 0.0, m.yaw_rate * _RAD,
                                      ac * c, ac * s, 0.0, *a.control, SPEED_LIMIT_KMH,
                                      tl_state, tl_id != 0, tl_id, 0))
                elif isinstance(a, Walker):
                    c, s = math.cos(a.yaw), math.sin(a.yaw)
                    sp = a.speed
                    parts.append(E.WALKER_STATE.pack(
                        a.id, 1, a.x, a.y, a.z, 0.0, a.yaw * _RAD, 0.0, sp * c, sp * s, 0.0,
                        0.0, 0.0, 0.0, 0.0, 0.0, 0.0, *a.direction, sp, a.jump))
                elif isinstance(a, Light) and lights is not None:
                    parts.append(lights.pack_state(a, self.world_transform(a)))
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
        rendered: dict[tuple, tuple] = {}
        for s in self.sensors:
            if s.kind in ("gnss", "imu"):
                if not streams.has_subscribers(s.stream) and \
                        not streams.wait_expected(s.stream, SUBSCRIBE_WAIT_S):
                    continue
                if not _due(s, elapsed):
                    continue
                streams.publish(s.stream, (E.SENSOR_HEADER.pack(
                    E.GNSS_SENSOR if s.kind == "gnss" else E.IMU_SENSOR, frame, elapsed,
                    *self.world_transform(s)), self._measure(s)))
            elif s.kind in _CAMERA_KIND_SET:
                if not streams.has_subscribers(s.stream) and \
                        not streams.wait_expected(s.stream, SUBSCRIBE_WAIT_S):
                    continue
                if not _due(s, elapsed):
                    continue
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
                if s.kind == "camera":
                    img = self.camera(s.spec).render(ego, others, frame=frame, seed=self.seed,
                                                     lights=self.light_states(),
                                                     walkers=self.walker_states())
                    import cv2
                    bgra = cv2.cvtColor(img, cv2.COLOR_RGB2BGRA)
                    stype = E.RGB_CAMERA
                else:
                    # a depth and a semantic camera on the same mount share one render
                    key = (s.parent or -s.id, dataclasses.replace(s.spec, name=""))
                    got = rendered.get(key)
                    if got is None:
                        got = rendered[key] = self.camera(s.spec).render_depth_labels(
                            ego, others, tags=self._vehicle_tags(), lights=self.light_states(),
                            walkers=self.walker_states())
                    depth, labels = got
                    if s.kind == "depth":
                        bgra, stype = E.depth_bgra(depth), E.DEPTH_CAMERA
                    else:
                        bgra, stype = E.labels_bgra(labels), E.SEMANTIC_CAMERA
                tf = self.world_transform(s)
                n = streams.publish(s.stream, (E.SENSOR_HEADER.pack(stype, frame, elapsed, *tf),
                                               E.IMAGE_HEADER.pack(s.spec.width, s.spec.height, s.spec.fov_deg),
                                               bgra.data))
                log.debug("camera %d frame %d -> %d subscribers", s.id, frame, n)
            elif s.kind == "collision" and s.detector is not None:
                parent = self.actors.get(s.parent)
                if not isinstance(parent, Vehicle):
                    continue
                m = parent.model
                others = self._views(exclude=parent) + self._walker_views()
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

    def _vehicle_tags(self) -> dict[int, int]:
        """CARLA semantic tag of each vehicle (car, truck, bus, motorcycle, bicycle)."""
        return {v.id: _BASE_TYPE_TAGS.get(VEHICLE_KINDS.get(v.type_id, ("car",))[0], TAG_CAR)
                for v in self.vehicles}

    def _measure(self, s: Sensor) -> bytes:
        """The GNSS or IMU payload of sensor ``s`` now."""
        x, y, z, pitch, yaw, roll = self.world_transform(s)
        if s.kind == "gnss":
            parent = self.actors.get(s.parent)
            if isinstance(parent, Vehicle):
                z = parent.model.z + s.rel[2]
            return E.gnss_payload(*s.detector.measure(self.town.map, x, y, z))
        parent = self.actors.get(s.parent)
        if isinstance(parent, Vehicle):
            m = parent.model
            acc, gyro, compass = s.detector.measure((pitch, yaw, roll), yaw=m.yaw, speed=m.speed,
                                                    accel=m.acceleration, yaw_rate=m.yaw_rate)
        else:
            acc, gyro, compass = s.detector.measure((pitch, yaw, roll))
        return E.imu_payload(acc, gyro, compass)

    @staticmethod
    def _impulse(a: Vehicle, b: Actor) -> tuple[float, float, float]:
        """A normal impulse [N s] for a contact: reduced mass (1500 kg cars, 80 kg
        pedestrians) times the closing speed, along the line of centres."""
        ma = a.model
        if isinstance(b, Vehicle):
            bx, by, bspeed, byaw, mu = b.model.x, b.model.y, b.model.speed, b.model.yaw, 750.0
        elif isinstance(b, Walker):  # an 80 kg pedestrian: reduced mass ~ 76 kg
            bx, by, bspeed, byaw, mu = b.x, b.y, b.speed, b.yaw, 76.0
        else:
            return (0.0, 0.0, 0.0)
        dx, dy = ma.x - bx, ma.y - by
        d = math.hypot(dx, dy) or 1.0
        nx, ny = dx / d, dy / d
        va = (ma.speed * math.cos(ma.yaw), ma.speed * math.sin(ma.yaw))
        vb = (bspeed * math.cos(byaw), bspeed * math.sin(byaw))
        closing = abs((va[0] - vb[0]) * nx + (va[1] - vb[1]) * ny)
        j = mu * max(closing, 0.1)
        return (j * nx, j * ny, 0.0)

