"""The CARLA server backend: the same scenarios on a real CARLA 0.9.x server.

:class:`CarlaSimulator` implements :class:`drive_il.sim.base.Simulator` on top of the
``carla`` Python client (0.9.16). Every part written against the embedded world (the
expert, the learners, the recorder, the metrics, the overlay) sees the same value types:
SI units, yaw in radians, RGB ``uint8`` frames, the ego's reference point at the centre
of its bounding box at ground level, and a ``carla.Map`` (here ``world.get_map()``).

Session, per :meth:`CarlaSimulator.reset` (CARLA Python API 0.9.16):

1. connect (``carla.Client(host, port)``, ``set_timeout``, ``get_server_version``) with
   retries and exponential back-off inside the overall time-out; reconnect when the
   connection was lost;
2. load the scenario's town (``client.load_world``), keep the current world when its
   map already is that town, or build an OpenDRIVE-only world
   (``client.generate_opendrive_world``) for a town the server does not have (the
   project's generated towns, an ``.xodr`` of the maps directory);
3. synchronous mode with the scenario's fixed ``dt`` (``carla.WorldSettings``; never
   above 0.1 s, CARLA's limit for stable physics substepping), one ticking client;
4. weather preset by name (``carla.WeatherParameters.<Name>``);
5. the route and start by the rule the embedded world uses
   (:func:`drive_il.routing.episode.plan_episode` on the server's town: a
   :class:`~drive_il.maps.towns.TownMap` wrapping ``world.get_map()``), the ego
   vehicle (blueprint from the scenario, ``role_name = "hero"``) with its bounding-box
   centre on the start, lifted 0.5 m, yaw in degrees at the boundary, then the camera
   rig (``sensor.camera.rgb``, mounts relative to the bounding-box centre at ground), a
   ``sensor.other.collision`` and a ``sensor.other.lane_invasion`` sensor;
6. NPC traffic through the Traffic Manager (synchronous, seeded with
   ``set_random_device_seed``), spawned with ``apply_batch_sync`` (SpawnActor then
   SetAutopilot).

Frame synchronisation: every sensor's callback only puts its data into its own queue.
After ``world.tick()`` returns frame F, each camera's queue is read until the image of
frame F (older ones are dropped); a camera that has none within the time-out raises
:class:`~drive_il.errors.SensorTimeoutError`. Collision and lane-invasion events of
frames <= F are reported with the step (a collision once per contact onset with each
actor, as the embedded world); off-road has no CARLA sensor and is detected with
``map.get_waypoint(location, project_to_road=False, lane_type=Driving)`` returning None,
reported when the ego leaves the road. Frames and times count from 0 at ``reset``
(:attr:`CarlaSimulator.server_frame` is CARLA's own frame number).

Robustness: a time-out or a lost server in the middle of an episode raises
:class:`~drive_il.errors.SimulatorLostError` from :meth:`CarlaSimulator.step`; the caller
fails the episode and calls :meth:`CarlaSimulator.reset`, which reconnects. On
:meth:`CarlaSimulator.close` (idempotent; also run at interpreter exit, on Ctrl-C in a
step or reset, and on unexpected errors) the sensors are stopped and destroyed, the
vehicles destroyed through ``apply_batch`` (``DestroyActor``: ``vehicle.destroy()`` on a
Traffic-Manager vehicle can abort the client), the Traffic Manager leaves synchronous
mode and the world goes back to asynchronous mode (a synchronous server without its
ticking client waits forever).

Ports: RPC 2000 and Traffic Manager 8000 by default; several servers on one machine need
distinct ``--port`` and ``--tm-port`` each (the Traffic Manager binds its port in the
client's process).

The ``carla`` module is imported lazily, in the constructor, so ``drive_il`` imports
without the CARLA client; tests inject a double through ``carla_module=``.
"""

from __future__ import annotations

import atexit
import logging
import math
import queue
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from ..errors import (
    DriveILError,
    MapError,
    ScenarioError,
    SensorTimeoutError,
    SimulatorConnectionError,
    SimulatorLostError,
)
from ..geometry import project_onto_polyline
from ..scenario import CameraConfig, Scenario
from ..types import (
    ActorState,
    Control,
    Event,
    EventKind,
    Observation,
    RoadOption,
    Route,
    Step,
    VehicleState,
    WorldState,
)
from ..maps.towns import TownMap
from .base import StartPose

if TYPE_CHECKING:  # pragma: no cover
    import carla

__all__ = [
    "CarlaSimulator",
    "SimulatorLostError",
    "SensorTimeoutError",
    "connect_schedule",
    "image_to_rgb",
    "SERVER_VERSION",
]

log = logging.getLogger(__name__)

#: The CARLA version this backend is written and tested against (client and server).
SERVER_VERSION = "0.9.16"

#: Largest fixed step CARLA allows for stable physics substepping [s].
MAX_DT = 0.1

#: Height the ego and the NPCs are lifted above the road when spawned [m] (CARLA's
#: spawn points use the same margin so a vehicle never spawns inside the ground).
SPAWN_LIFT = 0.5

_CHECK_LINE = ("is CarlaUE4.sh/CarlaUnreal.sh {v} running there, and are --host/--port right "
               "(each server needs its own --port and --tm-port)?")

RoutePlanner = Callable[..., Any]  # drive_il.routing.episode.plan_episode's signature


# ----------------------------------------------------------------------------- helpers

def connect_schedule(timeout: float, attempts: int = 3, first_backoff: float = 0.5
                     ) -> list[tuple[float, float]]:
    """Split a connection time-out into attempts with exponential back-off.

    Each attempt creates a fresh ``carla.Client`` whose ``set_timeout`` is the attempt's
    share; the pauses between attempts double (0.5 s, 1 s, 2 s, ...) but never take more
    than a third of the budget. The sum of attempt time-outs and pauses is ``timeout``.

    Args:
        timeout: the overall budget [s] (> 0).
        attempts: number of attempts (>= 1).
        first_backoff: first pause [s].

    Returns:
        ``[(attempt_timeout_s, pause_after_s), ...]``; the last pause is 0.
    """
    attempts = max(1, int(attempts))
    timeout = float(timeout)
    pauses = [first_backoff * 2 ** i for i in range(attempts - 1)]
    total = sum(pauses)
    if total > timeout / 3.0 and total > 0:
        pauses = [p * (timeout / 3.0) / total for p in pauses]
    per = (timeout - sum(pauses)) / attempts
    return [(per, pauses[i] if i < attempts - 1 else 0.0) for i in range(attempts)]


def image_to_rgb(image: Any) -> np.ndarray:
    """A ``carla.Image`` (BGRA, 8 bits per channel) to an (H, W, 3) uint8 RGB array.

    Args:
        image: has ``width``, ``height`` and ``raw_data`` (H*W*4 bytes, B G R A).

    Returns:
        A new C-contiguous (H, W, 3) uint8 array (R, G, B), independent of the image.

    Raises:
        SimulatorConnectionError: the buffer size does not match width x height x 4.
    """
    h, w = int(image.height), int(image.width)
    buf = np.frombuffer(image.raw_data, dtype=np.uint8)
    if buf.size != h * w * 4:
        raise SimulatorConnectionError(
            f"camera image of frame {getattr(image, 'frame', '?')} has {buf.size} bytes, "
            f"expected {h}x{w}x4 = {h * w * 4} (BGRA)")
    return np.ascontiguousarray(buf.reshape(h, w, 4)[:, :, 2::-1])


def _yaw_rad(rotation: Any) -> float:
    return math.radians(float(rotation.yaw))


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


@dataclass
class _Sensor:
    """One spawned sensor and its queue (the callback only enqueues)."""

    name: str
    kind: str  # "camera", "collision", "lane_invasion"
    actor: Any
    queue: "queue.Queue[Any]"
    config: CameraConfig | None = None


@dataclass(frozen=True)
class _Physics:
    """What the backend reads once per episode from the ego's blueprint and physics."""

    length: float
    width: float
    height: float
    wheelbase: float
    max_steer_angle: float  # [rad]
    offset_x: float  # bounding-box centre in the actor frame [m]
    offset_y: float
    ground_dz: float  # bbox.location.z - bbox.extent.z [m]


# ----------------------------------------------------------------------------- simulator

class CarlaSimulator:
    """A CARLA 0.9.x server as a :class:`~drive_il.sim.base.Simulator`.

    Example::

        sim = CarlaSimulator(host="localhost", port=2000, tm_port=8000, timeout=10.0)
        try:
            step = sim.reset(scenario, seed=0)
            while ...:
                step = sim.step(control)
        finally:
            sim.close()

    Args:
        host, port: the server's RPC endpoint (default localhost:2000).
        tm_port: the Traffic Manager port (default 8000); unique per server.
        timeout: client time-out [s] for every RPC, for a sensor's frame, and the
            budget of one (re)connection including its retries.
        maps_dir: folder of OpenDRIVE towns, used for towns the server does not have
            (sent with ``generate_opendrive_world``).
        connect: connect in the constructor (default) so a wrong host or port fails
            at once; else at the first ``reset``.
        connect_attempts: attempts per (re)connection, with exponential back-off.
        settle_seconds: simulated time after spawning, under full brake, for the ego
            to land on the road (it is spawned 0.5 m up) before the first Step [s].
        load_timeout: client time-out while the server loads or builds a town [s].
        route_planner: ``(town, scenario, seed, *, route, start) -> EpisodeSetup``
            (``town``: the :attr:`town`); default
            :func:`drive_il.routing.episode.plan_episode`, as the embedded world,
            so both worlds choose the same route and start from a scenario and seed.
        carla_module: the ``carla`` module (default: ``import carla``); tests pass a
            double here.

    Raises:
        SimulatorConnectionError: no server answered within ``timeout`` (one line naming
            host, port and what to check).
    """

    backend = "carla"

    def __init__(self, *, host: str = "localhost", port: int = 2000, tm_port: int = 8000,
                 timeout: float = 10.0, maps_dir: str | Path | None = None,
                 connect: bool = True, connect_attempts: int = 3,
                 settle_seconds: float = 0.5, load_timeout: float = 120.0,
                 route_planner: RoutePlanner | None = None,
                 carla_module: Any = None) -> None:
        if timeout <= 0:
            raise SimulatorConnectionError(f"--timeout must be > 0 s, got {timeout!r}")
        self.host, self.port, self.tm_port = str(host), int(port), int(tm_port)
        self.timeout = float(timeout)
        self.maps_dir = Path(maps_dir) if maps_dir is not None else None
        self.connect_attempts = int(connect_attempts)
        self.settle_seconds = float(settle_seconds)
        self.load_timeout = float(load_timeout)
        self._route_planner = route_planner
        if carla_module is None:
            try:
                import carla as carla_module  # noqa: PLC0415 (lazy: only this backend)
            except ImportError as e:  # pragma: no cover - carla is a dependency
                raise SimulatorConnectionError(
                    f"the CARLA client is not installed ({e}): pip install carla=={SERVER_VERSION}") from e
        self._carla = carla_module

        # connection
        self._client: Any = None
        self._world: Any = None
        self._lost = False
        self.server_version: str | None = None
        self._restore_settings: Any = None  # settings to put back on close
        self._tm: Any = None
        self._map: Any = None
        self._town: TownMap | None = None  # wraps self._map (see the town property)
        self._map_key: tuple[Any, str] | None = None
        self._generated_town: tuple[Any, str] | None = None  # (world id, town) we built

        # episode
        self._scenario: Scenario | None = None
        self._route: Route | None = None
        self._ego: Any = None
        self._sensors: list[_Sensor] = []
        self._npc_ids: list[int] = []
        self._npc_speeds: dict[int, float] = {}  # NPC id -> desired speed [m/s], set after a tick
        self._stale_ids: list[int] = []  # actors of a lost connection, destroyed on reconnect
        self._physics: _Physics | None = None
        self._frame0 = 0
        self._frame = 0
        self._dt = 0.05
        self._hint: int | None = None
        self._pending: list[Event] = []
        self._contacts: dict[int, int] = {}  # other actor id -> last frame with a hit
        self._off_road = False
        self._episode_ok = False
        self._closed = False
        self._touched = False  # we put the server into synchronous mode
        self._atexit_registered = False

        if connect:
            self._connect()

    # ------------------------------------------------------------------ protocol props
    @property
    def map(self) -> "carla.Map":
        """The current town, ``world.get_map()``: the scenario's town after ``reset``;
        before it, the server's current town (None when not connected)."""
        if self._map is None and self.connected:
            try:
                self._map = self._world.get_map()
                self._map_key = (self._world.id, str(self._map.name).rsplit("/", 1)[-1])
            except RuntimeError as e:
                raise SimulatorConnectionError(
                    f"CARLA server at {self._where()} does not answer: {_one_line(e)}") from e
        return self._map

    @property
    def town(self) -> TownMap | None:
        """The current town as a :class:`~drive_il.maps.towns.TownMap` wrapping
        :attr:`map` (its lane graph, lane geometry and spawn points are built once per
        server map); None when not connected."""
        m = self.map
        if m is None:
            return None
        if self._town is None or self._town.map is not m:
            self._town = TownMap.from_carla_map(m)
        return self._town

    @property
    def scenario(self) -> Scenario | None:
        return self._scenario

    @property
    def route(self) -> Route | None:
        return self._route

    @property
    def server_frame(self) -> int:
        """CARLA's absolute frame number of the last tick (Step frames count from 0 at
        reset)."""
        return self._frame0 + self._frame

    @property
    def connected(self) -> bool:
        """A client is connected and no loss has been detected."""
        return self._client is not None and not self._lost

    # ------------------------------------------------------------------ connection
    def _where(self) -> str:
        return f"{self.host}:{self.port}"

    def _connect(self, budget: float | None = None, attempts: int | None = None) -> None:
        """Connect with retries and back-off; sets ``_client`` and ``_world``.

        Raises:
            SimulatorConnectionError: no server answered within the budget.
        """
        carla = self._carla
        budget = self.timeout if budget is None else budget
        attempts = self.connect_attempts if attempts is None else attempts
        t0 = time.monotonic()
        last: BaseException | None = None
        for i, (attempt_s, pause_s) in enumerate(connect_schedule(budget, attempts)):
            try:
                client = carla.Client(self.host, self.port)
                client.set_timeout(max(0.05, attempt_s))
                server = str(client.get_server_version())
                client.set_timeout(self.timeout)
                world = client.get_world()
            except RuntimeError as e:  # time-out, refused, host not found
                last = e
                log.info("CARLA connect attempt %d to %s failed: %s", i + 1, self._where(), _one_line(e))
                if "resolve" in str(e).lower():  # an unknown host name will not appear later
                    break
                if pause_s > 0:
                    time.sleep(pause_s)
                continue
            self._client, self._world, self._lost = client, world, False
            self.server_version = server
            client_v = str(getattr(client, "get_client_version", lambda: SERVER_VERSION)())
            if server.split("-")[0] != client_v.split("-")[0]:
                log.warning("CARLA server %s and client %s differ: the wire format changes between "
                            "versions; use the client of the server's version (pip install carla==%s)",
                            server, client_v, server)
            log.info("connected to CARLA %s at %s in %.2f s", server, self._where(), time.monotonic() - t0)
            if self._restore_settings is None:
                self._remember_settings(world)
            self._destroy_stale()
            return
        if last is not None and "resolve" in str(last).lower():
            raise SimulatorConnectionError(
                f"cannot resolve the CARLA host {self.host!r} (port {self.port}): check --host "
                f"({_one_line(last)})")
        n = i + 1
        raise SimulatorConnectionError(
            f"cannot reach a CARLA server at {self._where()} within {budget:g} s: "
            + _CHECK_LINE.format(v=SERVER_VERSION)
            + (f" (last of {n} attempt{'s' if n > 1 else ''}: {_one_line(last)})" if last is not None else ""))

    def _remember_settings(self, world: Any) -> None:
        """Keep the settings to restore on close, always asynchronous: a server left in
        synchronous mode by a crashed client must not be put back into it."""
        s = world.get_settings()
        s.synchronous_mode = False
        if not getattr(s, "fixed_delta_seconds", None):
            s.fixed_delta_seconds = None
        self._restore_settings = s

    def _ensure_connected(self) -> None:
        """Reconnect when the connection is gone or does not answer."""
        if self._client is not None and not self._lost:
            try:
                self._client.get_server_version()
                return
            except RuntimeError as e:
                log.warning("CARLA server at %s does not answer (%s): reconnecting", self._where(), _one_line(e))
                self._mark_lost()
        self._connect()

    def _mark_lost(self) -> None:
        """Forget the connection without calling it (each call would wait the time-out);
        the episode's actors are destroyed after the reconnection if they survived."""
        self._lost = True
        self._episode_ok = False
        ids = [s.actor.id for s in self._sensors if s.actor is not None]
        if self._ego is not None:
            ids.append(self._ego.id)
        ids.extend(self._npc_ids)
        self._stale_ids.extend(int(i) for i in ids)
        self._sensors, self._ego, self._npc_ids = [], None, []
        self._client = self._world = self._tm = None
        self._map_key = None

    def _destroy_stale(self) -> None:
        if not self._stale_ids or self._client is None:
            return
        cmds = [self._carla.command.DestroyActor(i) for i in self._stale_ids]
        try:
            self._client.apply_batch(cmds)
        except RuntimeError as e:
            log.warning("could not destroy %d actors of the lost session: %s", len(cmds), _one_line(e))
        self._stale_ids = []

    # ------------------------------------------------------------------ reset
    def reset(self, scenario: Scenario, seed: int, *, route: Route | None = None,
              start: StartPose | None = None) -> Step:
        """Start an episode on the server (see the module docstring for the steps).

        Args:
            scenario: town, weather, ``dt``, camera rig, vehicle, traffic.
            seed: episode seed (route choice, Traffic Manager, NPC spawn points).
            route: drive this route instead of planning one.
            start: override the ego's start pose.

        Returns:
            The first Step (frame 0, no events).

        Raises:
            SimulatorConnectionError: the server cannot be reached within the time-out.
            SimulatorLostError: the server stopped answering during the set-up.
            MapError: the town is neither on the server nor resolvable to OpenDRIVE.
            ScenarioError: ``dt`` above 0.1 s, an unknown blueprint or weather, the ego
                cannot be spawned.
        """
        if scenario.dt > MAX_DT + 1e-12:
            raise ScenarioError(f"{scenario.source or scenario.name}: dt = {scenario.dt} s; CARLA's "
                                f"synchronous mode needs a fixed dt <= {MAX_DT} s")
        self._register_atexit()
        try:
            return self._reset(scenario, int(seed), route, start)
        except RuntimeError as e:
            self._mark_lost()
            raise SimulatorLostError(
                f"CARLA server at {self._where()} stopped answering while setting up the episode: "
                f"{_one_line(e)}") from e
        except DriveILError:
            self._episode_ok = False
            raise
        except BaseException:
            self.close()
            raise

    def _reset(self, scenario: Scenario, seed: int, route: Route | None,
               start: StartPose | None) -> Step:
        carla = self._carla
        self._episode_ok = False
        self._ensure_connected()
        self._destroy_episode()
        self._closed = False

        world = self._load_town(scenario.town)
        self._dt = float(scenario.dt)
        settings = world.get_settings()
        settings.synchronous_mode = True
        settings.fixed_delta_seconds = self._dt
        self._touched = True  # from here on, close() must put the server back
        world.apply_settings(settings)

        try:
            weather = getattr(carla.WeatherParameters, scenario.weather)
        except AttributeError:
            raise ScenarioError(f"{scenario.source or scenario.name}: weather {scenario.weather!r} "
                                f"is not a carla.WeatherParameters preset") from None
        world.set_weather(weather)

        route, start = self._plan(scenario, seed, route, start)
        self._scenario, self._route = scenario, route
        self._hint = None

        ego = self._spawn_ego(world, scenario, route, start)
        self._ego = ego
        self._physics = self._read_physics(ego, scenario)
        self._place_ego(ego, route, start)
        self._attach_sensors(world, ego, scenario)
        if scenario.traffic.vehicles > 0:
            self._spawn_traffic(world, scenario, seed, route, start)

        # let the ego land (spawned SPAWN_LIFT up) under full brake, then read frame F
        settle = max(1, int(math.ceil(self.settle_seconds / self._dt - 1e-9)))
        hold = carla.VehicleControl(throttle=0.0, steer=0.0, brake=1.0)
        frame = 0
        for i in range(settle):
            ego.apply_control(hold)
            if start.speed > 0 and i == settle - 1:
                yaw = start.yaw
                ego.set_target_velocity(carla.Vector3D(x=start.speed * math.cos(yaw),
                                                       y=start.speed * math.sin(yaw), z=0.0))
                ego.apply_control(carla.VehicleControl())
            frame = int(world.tick(self.timeout))
            if i == 0:
                self._set_npc_speeds()
        self._frame0, self._frame = frame, 0
        frames = self._read_cameras(frame)
        for s in self._sensors:  # spawn-time contacts and markings are not the episode's
            if s.kind != "camera":
                self._drain(s.queue, frame)
        self._pending = []
        self._contacts = {}
        ws = self._world_state(frame)
        self._off_road = self._is_off_road(ws.ego)
        self._episode_ok = True
        log.info("CARLA episode: %s seed %d, %d NPCs, start frame %d", scenario.town, seed,
                 len(self._npc_ids), frame)
        return Step(observation=self._observation(frames, ws), world_state=ws, events=())

    def _plan(self, scenario: Scenario, seed: int, route: Route | None,
              start: StartPose | None) -> tuple[Route, StartPose]:
        """Route and start from the rule shared with the embedded world
        (:func:`drive_il.routing.episode.plan_episode`) on the server's town."""
        planner = self._route_planner
        if planner is None:
            from ..routing.episode import plan_episode  # noqa: PLC0415
            planner = plan_episode
        setup = planner(self.town, scenario, seed, route=route, start=start)
        return setup.route, setup.start

    # ------------------------------------------------------------------ town
    def _load_town(self, town: str) -> Any:
        """Make ``town`` the server's world (or keep it) and cache its ``carla.Map``."""
        client = self._client
        world = client.get_world()
        key = (world.id, town)
        if self._map_key == key:
            self._world = world
            return world
        current = world.get_map()
        if _same_town(current.name, town) or self._generated_town == key:
            self._world, self._map, self._map_key = world, current, key
            return world
        available = [str(m) for m in client.get_available_maps()]
        match = next((m for m in available if _same_town(m, town)), None)
        self._set_async(world)  # loading in synchronous mode would wait for a tick
        old = self.timeout
        client.set_timeout(max(old, self.load_timeout))  # loading takes longer than one RPC
        try:
            if match is not None:
                log.info("loading %s on the CARLA server", match)
                world = client.load_world(town)
                generated = False
            else:
                xodr = self._xodr_text(town, available)
                log.info("building an OpenDRIVE world for %s on the CARLA server", town)
                params = self._carla.OpendriveGenerationParameters(
                    vertex_distance=2.0, max_road_length=50.0, wall_height=0.0,
                    additional_width=0.6, smooth_junctions=True, enable_mesh_visibility=True)
                world = client.generate_opendrive_world(xodr, params)
                generated = True
        finally:
            client.set_timeout(old)
        key = (world.id, town)
        self._generated_town = key if generated else None
        self._world, self._map, self._map_key = world, world.get_map(), key
        return world

    def _xodr_text(self, town: str, available: list[str]) -> str:
        """OpenDRIVE text of a town the server lacks: a generated town or an ``.xodr``
        of the maps directory (:func:`drive_il.maps.towns.town_text`)."""
        from ..maps.towns import town_text  # noqa: PLC0415
        try:
            return town_text(town, self.maps_dir)[1]
        except MapError as e:
            names = ", ".join(sorted({m.rsplit("/", 1)[-1] for m in available})) or "none"
            raise MapError(f"town {town!r} is not on the CARLA server at {self._where()} (it has: "
                           f"{names}) and has no OpenDRIVE file here: {_one_line(e)}") from None

    # ------------------------------------------------------------------ spawning
    def _spawn_ego(self, world: Any, scenario: Scenario, route: Route,
                   start: StartPose | None) -> Any:
        carla = self._carla
        lib = world.get_blueprint_library()
        try:
            bp = lib.find(scenario.vehicle.blueprint)
        except (IndexError, RuntimeError, KeyError):
            raise ScenarioError(f"{scenario.source or scenario.name}: vehicle.blueprint "
                                f"{scenario.vehicle.blueprint!r} is not a blueprint of the CARLA server") from None
        if bp.has_attribute("role_name"):
            bp.set_attribute("role_name", "hero")
        x, y, z, yaw = self._start_pose(route, start)
        tf = carla.Transform(carla.Location(x=x, y=y, z=z + SPAWN_LIFT),
                             carla.Rotation(pitch=0.0, yaw=math.degrees(yaw), roll=0.0))
        ego = world.try_spawn_actor(bp, tf)
        if ego is None:
            raise ScenarioError(f"cannot spawn the ego {scenario.vehicle.blueprint} at x={x:.2f} y={y:.2f} "
                                f"yaw={math.degrees(yaw):.1f} deg on {scenario.town}: the place is occupied "
                                f"(another client's actor?) or off the map")
        return ego

    def _start_pose(self, route: Route, start: StartPose | None) -> tuple[float, float, float, float]:
        w0 = route.waypoints[0]
        if start is None:
            return w0.x, w0.y, w0.z, w0.yaw
        z = w0.z
        try:
            wp = self._map.get_waypoint(self._carla.Location(x=start.x, y=start.y, z=w0.z))
            if wp is not None:
                z = float(wp.transform.location.z)
        except RuntimeError:
            pass
        return start.x, start.y, z, start.yaw

    def _read_physics(self, ego: Any, scenario: Scenario) -> _Physics:
        bb = ego.bounding_box
        v = scenario.vehicle
        wheelbase, max_steer = v.wheelbase, v.max_steer_angle
        try:
            pc = ego.get_physics_control()
            wheels = list(pc.wheels)
            if len(wheels) >= 4:
                # WheelPhysicsControl.position is in world coordinates and centimetres
                fx = 0.5 * (wheels[0].position.x + wheels[1].position.x)
                fy = 0.5 * (wheels[0].position.y + wheels[1].position.y)
                rx = 0.5 * (wheels[2].position.x + wheels[3].position.x)
                ry = 0.5 * (wheels[2].position.y + wheels[3].position.y)
                wb = math.hypot(fx - rx, fy - ry) / 100.0
                if 0.5 < wb < 20.0:
                    wheelbase = wb
                ms = max(float(wheels[0].max_steer_angle), float(wheels[1].max_steer_angle))
                if 1.0 < ms < 89.0:
                    max_steer = math.radians(ms)
        except (RuntimeError, AttributeError) as e:
            log.warning("no physics control for %s (%s): using the scenario's wheelbase and max steer",
                        v.blueprint, _one_line(e))
        return _Physics(length=2.0 * bb.extent.x, width=2.0 * bb.extent.y, height=2.0 * bb.extent.z,
                        wheelbase=float(wheelbase), max_steer_angle=float(max_steer),
                        offset_x=float(bb.location.x), offset_y=float(bb.location.y),
                        ground_dz=float(bb.location.z - bb.extent.z))

    def _place_ego(self, ego: Any, route: Route, start: StartPose | None) -> None:
        """Move the ego so its reference point (bounding-box centre) is on the start."""
        p = self._physics
        if abs(p.offset_x) < 1e-3 and abs(p.offset_y) < 1e-3:
            return
        carla = self._carla
        x, y, z, yaw = self._start_pose(route, start)
        c, s = math.cos(yaw), math.sin(yaw)
        ox, oy = p.offset_x * c - p.offset_y * s, p.offset_x * s + p.offset_y * c
        ego.set_transform(carla.Transform(carla.Location(x=x - ox, y=y - oy, z=z + SPAWN_LIFT),
                                          carla.Rotation(pitch=0.0, yaw=math.degrees(yaw), roll=0.0)))

    def _attach_sensors(self, world: Any, ego: Any, scenario: Scenario) -> None:
        carla = self._carla
        lib = world.get_blueprint_library()
        p = self._physics
        for cam in scenario.cameras:
            bp = lib.find("sensor.camera.rgb")
            bp.set_attribute("image_size_x", str(int(cam.width)))
            bp.set_attribute("image_size_y", str(int(cam.height)))
            bp.set_attribute("fov", f"{float(cam.fov_deg):g}")
            if bp.has_attribute("sensor_tick"):
                bp.set_attribute("sensor_tick", "0.0")
            if bp.has_attribute("role_name"):
                bp.set_attribute("role_name", cam.name)
            # mounts are relative to the reference point; CARLA attaches to the actor origin
            tf = carla.Transform(
                carla.Location(x=cam.x + p.offset_x, y=cam.y + p.offset_y, z=cam.z + p.ground_dz),
                carla.Rotation(pitch=float(cam.pitch_deg), yaw=float(cam.yaw_deg), roll=0.0))
            self._add_sensor(world.spawn_actor(bp, tf, attach_to=ego), cam.name, "camera", cam)
        for kind, bp_id in (("collision", "sensor.other.collision"),
                            ("lane_invasion", "sensor.other.lane_invasion")):
            bp = lib.find(bp_id)
            self._add_sensor(world.spawn_actor(bp, carla.Transform(), attach_to=ego), kind, kind, None)

    def _add_sensor(self, actor: Any, name: str, kind: str, cfg: CameraConfig | None) -> None:
        q: queue.Queue[Any] = queue.Queue()
        self._sensors.append(_Sensor(name=name, kind=kind, actor=actor, queue=q, config=cfg))
        actor.listen(q.put)  # the callback runs in the client's thread: enqueue only

    def _spawn_points(self) -> list[Any]:
        pts = list(self._map.get_spawn_points())
        if pts:
            return pts
        carla = self._carla  # an OpenDRIVE-only world has none: the town's generated ones
        return [carla.Transform(carla.Location(x=p.x, y=p.y, z=p.z + SPAWN_LIFT),
                                carla.Rotation(pitch=0.0, yaw=math.degrees(p.yaw), roll=0.0))
                for p in self.town.spawn_points]

    def _spawn_traffic(self, world: Any, scenario: Scenario, seed: int, route: Route,
                       start: StartPose | None) -> None:
        """NPC vehicles on the Traffic Manager's autopilot (synchronous, seeded)."""
        carla = self._carla
        tr = scenario.traffic
        rng = np.random.default_rng([seed, 0x7E4F])
        tm = self._tm
        if tm is None:
            try:
                tm = self._client.get_trafficmanager(self.tm_port)
            except RuntimeError as e:
                if "bind" not in str(e).lower():
                    raise
                raise SimulatorConnectionError(
                    f"cannot start the Traffic Manager on port {self.tm_port} ({_one_line(e)}): another "
                    f"process holds it; give each drive_il process its own --tm-port") from None
            self._tm = tm
        tm.set_synchronous_mode(True)
        tm.set_random_device_seed(int(seed))
        if hasattr(tm, "set_global_distance_to_leading_vehicle"):
            tm.set_global_distance_to_leading_vehicle(float(tr.min_gap))
        x0, y0, _, _ = self._start_pose(route, start)
        cands = [t for t in self._spawn_points()
                 if math.hypot(t.location.x - x0, t.location.y - y0) >= tr.min_spawn_distance]
        cands.sort(key=lambda t: (round(t.location.x, 2), round(t.location.y, 2)))
        chosen: list[Any] = []
        for i in rng.permutation(len(cands)):  # keep NPCs apart from each other too
            t = cands[int(i)]
            if all(math.hypot(t.location.x - c.location.x, t.location.y - c.location.y)
                   >= tr.min_spawn_distance for c in chosen):
                chosen.append(t)
            if len(chosen) == tr.vehicles:
                break
        if len(chosen) < tr.vehicles:
            log.warning("only %d of %d NPC spawn points are free on %s", len(chosen), tr.vehicles, scenario.town)
        bps = [b for b in world.get_blueprint_library().filter("vehicle.*")
               if not b.has_attribute("number_of_wheels")
               or int(b.get_attribute("number_of_wheels").as_int()) == 4]
        bps.sort(key=lambda b: b.id)
        if not bps:
            raise ScenarioError("the CARLA server has no four-wheeled vehicle blueprints for traffic")
        SpawnActor, SetAutopilot = carla.command.SpawnActor, carla.command.SetAutopilot
        FutureActor = carla.command.FutureActor
        batch = []
        for t in chosen:
            bp = bps[int(rng.integers(len(bps)))]
            if bp.has_attribute("role_name"):
                bp.set_attribute("role_name", "autopilot")
            if bp.has_attribute("color"):
                colors = list(bp.get_attribute("color").recommended_values)
                if colors:
                    bp.set_attribute("color", colors[int(rng.integers(len(colors)))])
            batch.append(SpawnActor(bp, t).then(SetAutopilot(FutureActor, True, self.tm_port)))
        responses = self._client.apply_batch_sync(batch, False)
        errors = [r.error for r in responses if r.error]
        self._npc_ids = [int(r.actor_id) for r in responses if not r.error]
        if errors:
            log.warning("%d of %d NPCs failed to spawn: %s", len(errors), len(batch), errors[0])
        lo, hi = tr.target_speed * (1 - tr.speed_spread), tr.target_speed * (1 + tr.speed_spread)
        self._npc_speeds = {i: float(rng.uniform(lo, hi)) for i in self._npc_ids}  # [m/s]

    def _set_npc_speeds(self) -> None:
        """Desired NPC speeds, once the NPCs are in the world's snapshot (after a tick)."""
        speeds, self._npc_speeds = self._npc_speeds, {}
        if not speeds or not hasattr(self._tm, "set_desired_speed"):
            return
        for actor in self._world.get_actors(list(speeds)):
            self._tm.set_desired_speed(actor, speeds[actor.id] * 3.6)  # km/h at the boundary

    # ------------------------------------------------------------------ step
    def step(self, control: Control) -> Step:
        """Apply ``control`` for one ``dt`` (one synchronous tick) and return the Step.

        Raises:
            SimulatorLostError: the server timed out or went away (the episode is failed;
                call ``reset`` to reconnect and start the next one).
            SensorTimeoutError: a camera had no image of this frame within the time-out.
        """
        if not self._episode_ok:
            raise SimulatorLostError("no CARLA episode in progress (lost or not started): call reset()")
        try:
            return self._step(control)
        except SensorTimeoutError:
            self._episode_ok = False
            raise
        except RuntimeError as e:
            self._mark_lost()
            raise SimulatorLostError(
                f"lost the CARLA server at {self._where()} in the middle of an episode "
                f"(frame {self._frame}): {_one_line(e)}; the episode is failed, reset() reconnects") from e
        except DriveILError:
            self._episode_ok = False
            raise
        except BaseException:  # Ctrl-C or a bug: leave the server as we found it
            self.close()
            raise

    def _step(self, control: Control) -> Step:
        carla = self._carla
        self._ego.apply_control(carla.VehicleControl(
            throttle=float(control.throttle), steer=float(control.steer), brake=float(control.brake),
            hand_brake=bool(control.hand_brake), reverse=bool(control.reverse)))
        frame = int(self._world.tick(self.timeout))
        frames = self._read_cameras(frame)
        events = list(self._pending)
        self._pending = []
        for s in self._sensors:
            if s.kind == "collision":
                events.extend(self._collision_events(self._drain(s.queue, frame)))
            elif s.kind == "lane_invasion":
                events.extend(self._lane_event(ev) for ev in self._drain(s.queue, frame))
        self._frame = frame - self._frame0
        ws = self._world_state(frame)
        off = self._is_off_road(ws.ego)
        if off and not self._off_road:
            events.append(Event(kind=EventKind.OFF_ROAD, frame=self._frame, sim_time=ws.sim_time))
        self._off_road = off
        events.sort(key=lambda e: e.frame)
        return Step(observation=self._observation(frames, ws), world_state=ws, events=tuple(events))

    # ------------------------------------------------------------------ sensors
    def _read_cameras(self, frame: int) -> dict[str, np.ndarray]:
        """The image of ``frame`` from every camera, as RGB (older images dropped)."""
        deadline = time.monotonic() + self.timeout
        out: dict[str, np.ndarray] = {}
        for s in self._sensors:
            if s.kind != "camera":
                continue
            while True:
                try:
                    img = s.queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    raise SensorTimeoutError(
                        f"camera {s.name!r} produced no image for frame {frame} within {self.timeout:g} s "
                        f"(CARLA server at {self._where()}; a GPU too slow for the rig, or a lost "
                        f"connection?)") from None
                f = int(img.frame)
                if f < frame:
                    continue
                if f > frame:
                    raise SensorTimeoutError(
                        f"camera {s.name!r} skipped frame {frame} (its next image is frame {f}): "
                        f"is another client ticking the CARLA server at {self._where()}?")
                rgb = image_to_rgb(img)
                cfg = s.config
                if cfg is not None and rgb.shape[:2] != (cfg.height, cfg.width):
                    raise SimulatorConnectionError(
                        f"camera {s.name!r} gave a {rgb.shape[0]}x{rgb.shape[1]} image, the rig asks "
                        f"for {cfg.height}x{cfg.width}")
                out[s.name] = rgb
                break
        return out

    def _drain(self, q: "queue.Queue[Any]", frame: int) -> list[Any]:
        """Events of frames <= ``frame`` (later ones stay queued)."""
        out, later = [], []
        while True:
            try:
                ev = q.get_nowait()
            except queue.Empty:
                break
            (out if int(ev.frame) <= frame else later).append(ev)
        for ev in later:
            q.put(ev)
        return out

    def _rel(self, frame: int) -> tuple[int, float]:
        f = int(frame) - self._frame0
        return f, f * self._dt

    def _collision_events(self, raw: list[Any]) -> list[Event]:
        """One Event per contact onset with each other actor, as the embedded world
        reports them: CARLA's sensor fires at every physics hit, i.e. on every frame of
        a lasting contact and possibly several times within one frame (the strongest
        impulse of the frame is kept). A contact that resumes after at least one frame
        without hits is a new one."""
        hits: dict[tuple[int, int], float] = {}  # (frame, other id) -> impulse [N s]
        for ev in raw:
            other = getattr(ev, "other_actor", None)
            imp = getattr(ev, "normal_impulse", None)
            mag = math.sqrt(imp.x ** 2 + imp.y ** 2 + imp.z ** 2) if imp is not None else 0.0
            key = (int(ev.frame), int(other.id) if other is not None else -1)
            hits[key] = max(hits.get(key, 0.0), float(mag))
        out: list[Event] = []
        for (frame, oid), mag in sorted(hits.items()):
            last = self._contacts.get(oid)
            self._contacts[oid] = frame
            if last is not None and frame - last <= 1:
                continue
            f, t = self._rel(frame)
            out.append(Event(kind=EventKind.COLLISION, frame=f, sim_time=t, other_actor=oid, impulse=mag))
        return out

    def _lane_event(self, ev: Any) -> Event:
        f, t = self._rel(ev.frame)
        names = tuple(_enum_name(m.type) for m in ev.crossed_lane_markings)
        return Event(kind=EventKind.LANE_INVASION, frame=f, sim_time=t, marking=names)

    # ------------------------------------------------------------------ state
    def _vehicle_state(self, actor: Any) -> VehicleState:
        p = self._physics
        tf = actor.get_transform()
        yaw = _yaw_rad(tf.rotation)
        c, s = math.cos(yaw), math.sin(yaw)
        loc = tf.location
        x = loc.x + p.offset_x * c - p.offset_y * s
        y = loc.y + p.offset_x * s + p.offset_y * c
        vel = actor.get_velocity()
        acc = actor.get_acceleration()
        ang = actor.get_angular_velocity()
        ctrl = actor.get_control()
        return VehicleState(
            x=float(x), y=float(y), z=float(loc.z + p.ground_dz), yaw=yaw,
            speed=float(vel.x * c + vel.y * s),
            steer_angle=float(ctrl.steer) * p.max_steer_angle,
            yaw_rate=math.radians(float(ang.z)),
            acceleration=float(acc.x * c + acc.y * s),
            length=p.length, width=p.width, height=p.height,
            wheelbase=p.wheelbase, max_steer_angle=p.max_steer_angle)

    def _actor_state(self, actor: Any) -> ActorState:
        tf = actor.get_transform()
        bb = actor.bounding_box
        yaw = _yaw_rad(tf.rotation)
        c, s = math.cos(yaw), math.sin(yaw)
        vel = actor.get_velocity()
        loc = tf.location
        color = (160, 30, 30)
        try:
            rgb = actor.attributes.get("color", "")
            if rgb:
                r, g, b = (int(v) for v in str(rgb).split(","))
                color = (r, g, b)
        except (ValueError, AttributeError):
            pass
        return ActorState(
            actor_id=int(actor.id),
            x=float(loc.x + bb.location.x * c - bb.location.y * s),
            y=float(loc.y + bb.location.x * s + bb.location.y * c),
            z=float(loc.z + bb.location.z - bb.extent.z), yaw=yaw,
            speed=float(vel.x * c + vel.y * s),
            length=2.0 * float(bb.extent.x), width=2.0 * float(bb.extent.y),
            height=2.0 * float(bb.extent.z), color=color)

    def _world_state(self, frame: int) -> WorldState:
        ego = self._vehicle_state(self._ego)
        ego_id = self._ego.id
        actors = tuple(self._actor_state(a) for a in self._world.get_actors().filter("vehicle.*")
                       if a.id != ego_id)
        f, t = self._rel(frame)
        sc = self._scenario
        return WorldState(ego=ego, actors=actors, route=self._route, frame=f, sim_time=t,
                          dt=self._dt, town=sc.town, weather=sc.weather)

    def _observation(self, frames: dict[str, np.ndarray], ws: WorldState) -> Observation:
        cmd = RoadOption.LANEFOLLOW
        r = self._route
        if r is not None:
            pr = project_onto_polyline(r.xy, r.s, ws.ego.x, ws.ego.y, hint=self._hint)
            i = self._hint = pr.index
            if i + 1 < len(r.s) and r.s[i + 1] - pr.s < pr.s - r.s[i]:
                i += 1  # the nearer waypoint's command, as the embedded world
            cmd = RoadOption(int(r.commands[i]))
        return Observation(frames=frames, speed=ws.ego.speed, command=cmd,
                           frame=ws.frame, sim_time=ws.sim_time)

    def _is_off_road(self, ego: VehicleState) -> bool:
        carla = self._carla
        loc = carla.Location(x=ego.x, y=ego.y, z=ego.z)
        wp = self._map.get_waypoint(loc, project_to_road=False, lane_type=carla.LaneType.Driving)
        return wp is None

    # ------------------------------------------------------------------ clean-up
    def _set_async(self, world: Any) -> None:
        s = world.get_settings()
        if s.synchronous_mode:
            s.synchronous_mode = False
            s.fixed_delta_seconds = None
            world.apply_settings(s)

    def _destroy_episode(self) -> None:
        """Stop and destroy the sensors, then destroy the vehicles in one batch. Each
        part runs even when another fails."""
        carla = self._carla
        sensors, self._sensors = self._sensors, []
        for s in sensors:
            try:
                s.actor.stop()
            except RuntimeError as e:
                log.warning("stopping sensor %s: %s", s.name, _one_line(e))
        for s in sensors:
            try:
                s.actor.destroy()
            except RuntimeError as e:
                log.warning("destroying sensor %s: %s", s.name, _one_line(e))
        ids = ([self._ego.id] if self._ego is not None else []) + list(self._npc_ids)
        self._ego, self._npc_ids = None, []
        if ids:
            try:
                self._client.apply_batch_sync([carla.command.DestroyActor(i) for i in ids], False)
            except RuntimeError as e:
                log.warning("destroying %d vehicles: %s", len(ids), _one_line(e))
        self._episode_ok = False

    def close(self) -> None:
        """Destroy every spawned actor, put the Traffic Manager and the world back in
        asynchronous mode. Idempotent; safe after a lost connection (then it tries one
        short reconnection to clean up, and gives up quietly)."""
        if self._closed:
            return
        self._closed = True
        self._episode_ok = False
        try:
            if self._lost or self._client is None:
                if not self._stale_ids and self._restore_settings is None:
                    return
                try:
                    self._connect(budget=min(self.timeout, 2.0), attempts=1)
                except SimulatorConnectionError as e:
                    log.warning("could not clean up on the CARLA server: %s", e)
                    return
            try:
                self._destroy_episode()
            finally:
                try:
                    if self._tm is not None:
                        self._tm.set_synchronous_mode(False)
                except RuntimeError as e:
                    log.warning("Traffic Manager: %s", _one_line(e))
                finally:
                    self._restore_world()
        finally:
            self._unregister_atexit()

    def _restore_world(self) -> None:
        if self._world is None or not self._touched:
            return
        try:
            s = self._restore_settings
            if s is None:
                self._set_async(self._world)
            else:
                self._world.apply_settings(s)
        except RuntimeError as e:
            log.warning("could not restore asynchronous mode on %s: %s", self._where(), _one_line(e))

    def __enter__(self) -> "CarlaSimulator":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _register_atexit(self) -> None:
        if not self._atexit_registered:
            ref = weakref.ref(self)
            self._atexit_fn = lambda: (lambda s: s.close() if s is not None else None)(ref())
            atexit.register(self._atexit_fn)
            self._atexit_registered = True

    def _unregister_atexit(self) -> None:
        if self._atexit_registered:
            atexit.unregister(self._atexit_fn)
            self._atexit_registered = False


def _same_town(map_name: str, town: str) -> bool:
    """'Carla/Maps/Town01' and '/Game/Carla/Maps/Town01_Opt' are both 'Town01'."""
    base = str(map_name).rsplit("/", 1)[-1]
    return base == town or base == f"{town}_Opt"


def _enum_name(v: Any) -> str:
    name = getattr(v, "name", None)
    return str(name) if name is not None else str(v).rsplit(".", 1)[-1]
