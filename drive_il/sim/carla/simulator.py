"""``CarlaSimulator``: the episode on a CARLA server behind the Simulator protocol.

It runs the session (see :mod:`drive_il.sim.carla`): :meth:`CarlaSimulator.reset`
sets up an episode from the parts in :mod:`.connection` (server, town, synchronous mode,
Traffic Manager), :mod:`.actors` (ego and traffic) and :mod:`.sensors` (camera rig and
event sensors); :meth:`CarlaSimulator.step` ticks the world and assembles the
:class:`~drive_il.types.Step` in drive_il's units (:mod:`.convert`); failures become
:class:`~drive_il.errors.SimulatorLostError` and :meth:`CarlaSimulator.close` leaves the
server as it was found.
"""

from __future__ import annotations

import atexit
import dataclasses
import logging
import math
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from ...errors import (
    DriveILError,
    ScenarioError,
    SensorTimeoutError,
    SimulatorConnectionError,
    SimulatorLostError,
)
from ...geometry import project_onto_polyline
from ...maps.towns import TownMap
from ...routing.target import SparseRoute
from ...scenario import Scenario
from ...types import (
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
from ..base import StartPose
from ..infractions import RedLightRule
from . import actors
from . import walkers as walker_mod
from .connection import MAX_DT, SERVER_VERSION, Connection
from .convert import Physics, actor_state, one_line, read_physics, vehicle_state
from .lights import ServerLights
from .sensors import SensorRig

if TYPE_CHECKING:  # pragma: no cover
    import carla

__all__ = ["CarlaSimulator"]

log = logging.getLogger(__name__)

RoutePlanner = Callable[..., Any]  # drive_il.routing.episode.plan_episode's signature


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
        self._conn = Connection(carla_module, host=self.host, port=self.port, timeout=self.timeout,
                                attempts=self.connect_attempts, maps_dir=self.maps_dir,
                                load_timeout=self.load_timeout)
        self._rig = SensorRig(carla_module, timeout=self.timeout, where=self._conn.where)
        self._town: TownMap | None = None  # wraps the connection's map (see the town property)

        # episode
        self._scenario: Scenario | None = None
        self._route: Route | None = None
        self._ego: Any = None
        self._npc_ids: list[int] = []
        self._npc_speeds: dict[int, float] = {}  # NPC id -> desired speed [m/s], set after a tick
        self._walkers: walker_mod.WalkerCrowd | None = None
        self._lights: ServerLights | None = None
        self._red_light: RedLightRule | None = None  # the shared rule, per episode with lights
        self._ego_z = 0.0  # [m], the ego's height at the last state (the rule's lane lookups)
        self._physics: Physics | None = None
        self._frame0 = 0
        self._frame = 0
        self._dt = 0.05
        self._hint: int | None = None
        self._sparse_route: SparseRoute | None = None
        self._off_road = False
        self._episode_ok = False
        self._closed = False
        self._atexit_fn: Callable[[], None] | None = None  # registered while not None

        if connect:
            self._conn.connect()

    # ------------------------------------------------------------------ protocol props
    @property
    def map(self) -> "carla.Map":
        """The current town, ``world.get_map()``: the scenario's town after ``reset``;
        before it, the server's current town (None when not connected)."""
        return self._conn.map

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
        return self._conn.connected

    @property
    def server_version(self) -> str | None:
        """The server's version string (None before the first connection)."""
        return self._conn.server_version

    @property
    def atexit_registered(self) -> bool:
        """:meth:`close` is registered to run at interpreter exit: from the first
        ``reset`` until ``close``."""
        return self._atexit_fn is not None

    # ------------------------------------------------------------------ connection
    def _ensure_connected(self) -> None:
        """Reconnect when the connection is gone or does not answer."""
        if self._conn.connected and not self._conn.answers():
            self._mark_lost()
        if not self._conn.connected:
            self._conn.connect()

    def _mark_lost(self) -> None:
        """Forget the connection without calling it (each call would wait the time-out);
        the episode's actors are destroyed after the reconnection if they survived."""
        self._episode_ok = False
        ids = self._rig.actor_ids()
        if self._ego is not None:
            ids.append(self._ego.id)
        ids.extend(self._npc_ids)
        if self._walkers is not None:
            ids.extend(self._walkers.all_ids())
        self._rig.forget()
        self._ego, self._npc_ids, self._walkers, self._lights = None, [], None, None
        self._conn.lose(ids)

    # ------------------------------------------------------------------ reset
    def reset(self, scenario: Scenario, seed: int, *, route: Route | None = None,
              start: StartPose | None = None) -> Step:
        """Start an episode on the server (see :mod:`drive_il.sim.carla` for the steps).

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
                f"CARLA server at {self._conn.where} stopped answering while setting up the episode: "
                f"{one_line(e)}") from e
        except DriveILError:
            self._episode_ok = False
            raise
        except BaseException:
            self.close()
            raise

    def _reset(self, scenario: Scenario, seed: int, route: Route | None,
               start: StartPose | None) -> Step:
        carla, conn = self._carla, self._conn
        self._episode_ok = False
        self._ensure_connected()
        self._destroy_episode()
        self._closed = False

        world = conn.load_town(scenario.town)
        self._dt = float(scenario.dt)
        conn.set_synchronous(self._dt)  # from here on, close() must put the server back

        try:
            weather = getattr(carla.WeatherParameters, scenario.weather)
        except AttributeError:
            raise ScenarioError(f"{scenario.source or scenario.name}: weather {scenario.weather!r} "
                                f"is not a carla.WeatherParameters preset") from None
        world.set_weather(weather)

        route, start = self._plan(scenario, seed, route, start)
        self._scenario, self._route = scenario, route
        self._hint = None
        self._sparse_route = SparseRoute.of_route(route) if route is not None else None

        pose = actors.start_pose(carla, conn.map, route, start)
        ego = actors.spawn_ego(carla, world, scenario, pose)
        self._ego = ego
        self._physics = read_physics(ego, scenario.vehicle)
        actors.place_ego(carla, ego, self._physics, pose)
        self._rig.attach(world, ego, scenario, self._physics)
        n_vehicles, n_walkers = self._traffic_counts(scenario)
        if n_vehicles != scenario.traffic.vehicles:
            scenario = dataclasses.replace(
                scenario, traffic=dataclasses.replace(scenario.traffic, vehicles=n_vehicles))
        if n_vehicles > 0:
            tm = conn.traffic_manager(self.tm_port)
            points = actors.spawn_points(carla, conn.map, self.town)
            self._npc_ids, self._npc_speeds = actors.spawn_traffic(
                carla, conn.client, world, tm, self.tm_port, scenario, seed, points, pose[0], pose[1])
        if n_walkers > 0:
            tr = scenario.traffic
            self._walkers = walker_mod.spawn_walkers(
                carla, conn.client, world, n_walkers, seed=seed,
                rng=np.random.default_rng([seed, walker_mod.WALKER_STREAM]),
                speed=tr.walker_speed, cross_factor=tr.junction_crossing)
        self._lights = ServerLights.from_world(world)
        self._red_light = (RedLightRule(length=self._physics.length, lane_at=self._lane_at)
                           if len(self._lights) else None)

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
        frames = self._rig.read_cameras(frame)
        self._rig.begin(frame, self._dt)  # spawn-time contacts and markings are not the episode's
        ws = self._world_state(frame)
        self._off_road = self._is_off_road(ws.ego)
        if self._red_light is not None:
            self._red_light.reset(ws.ego.x, ws.ego.y, ws.ego.yaw, ws.traffic_lights)
        self._episode_ok = True
        log.info("CARLA episode: %s seed %d, %d NPCs, %d walkers, %d traffic lights, start frame %d",
                 scenario.town, seed, len(self._npc_ids),
                 len(self._walkers.walker_ids) if self._walkers is not None else 0,
                 len(self._lights) if self._lights is not None else 0, frame)
        return Step(observation=self._observation(frames, ws), world_state=ws, events=())

    def _plan(self, scenario: Scenario, seed: int, route: Route | None,
              start: StartPose | None) -> tuple[Route, StartPose]:
        """Route and start from the rule shared with the embedded world
        (:func:`drive_il.routing.episode.plan_episode`) on the server's town."""
        planner = self._route_planner
        if planner is None:
            from ...routing.episode import plan_episode  # noqa: PLC0415
            planner = plan_episode
        setup = planner(self.town, scenario, seed, route=route, start=start)
        return setup.route, setup.start

    def _set_npc_speeds(self) -> None:
        """Desired NPC speeds, once the NPCs are in the world's snapshot (after a tick)."""
        speeds, self._npc_speeds = self._npc_speeds, {}
        if speeds:
            actors.set_npc_speeds(self._conn.world, self._conn.traffic_manager(self.tm_port), speeds)

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
                f"lost the CARLA server at {self._conn.where} in the middle of an episode "
                f"(frame {self._frame}): {one_line(e)}; the episode is failed, reset() reconnects") from e
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
        frame = int(self._conn.world.tick(self.timeout))
        frames = self._rig.read_cameras(frame)
        events = self._rig.events(frame)
        self._frame = frame - self._frame0
        ws = self._world_state(frame)
        off = self._is_off_road(ws.ego)
        if off and not self._off_road:
            events.append(Event(kind=EventKind.OFF_ROAD, frame=self._frame, sim_time=ws.sim_time))
        self._off_road = off
        if self._red_light is not None:
            e = ws.ego
            events.extend(self._red_light.update(e.x, e.y, e.yaw, ws.traffic_lights, ws.frame, ws.sim_time))
        events.sort(key=lambda e: e.frame)
        return Step(observation=self._observation(frames, ws), world_state=ws, events=tuple(events))

    # ------------------------------------------------------------------ state
    def _world_state(self, frame: int) -> WorldState:
        ego = vehicle_state(self._ego, self._physics)
        self._ego_z = ego.z
        ego_id = self._ego.id
        others = tuple(actor_state(a) for a in self._conn.world.get_actors().filter("vehicle.*")
                       if a.id != ego_id)
        f = int(frame) - self._frame0
        sc = self._scenario
        lights = self._lights.states() if self._lights else ()
        walkers = (self._walkers.states(self._conn.world, self._conn.map, self._carla)
                   if self._walkers is not None else ())
        return WorldState(ego=ego, actors=others, route=self._route, frame=f, sim_time=f * self._dt,
                          dt=self._dt, town=sc.town, weather=sc.weather,
                          traffic_lights=lights, walkers=walkers)

    def _lane_at(self, x: float, y: float) -> tuple[int, int] | None:
        """(road_id, lane_id) of the driving lane at (x, y) [m], None off the lanes (the
        red-light rule's lane test, ``carla.Map.get_waypoint``)."""
        carla = self._carla
        wp = self._conn.map.get_waypoint(carla.Location(x=x, y=y, z=self._ego_z), project_to_road=False,
                                         lane_type=carla.LaneType.Driving)
        return None if wp is None else (int(wp.road_id), int(wp.lane_id))

    def _traffic_counts(self, scenario: Scenario) -> tuple[int, int]:
        """(vehicles, walkers) for the scenario's traffic density on this town
        (:func:`drive_il.sim.density.traffic_counts`)."""
        tr = scenario.traffic
        if tr.density == "custom":
            return int(tr.vehicles), int(tr.walkers)
        from ..density import driving_lane_length  # noqa: PLC0415
        return walker_mod.walker_count(tr, scenario.town, driving_lane_length(self.town))

    def _observation(self, frames: dict[str, np.ndarray], ws: WorldState) -> Observation:
        cmd = RoadOption.LANEFOLLOW
        target = None
        r = self._route
        if r is not None:
            pr = project_onto_polyline(r.xy, r.s, ws.ego.x, ws.ego.y, hint=self._hint)
            i = self._hint = pr.index
            if i + 1 < len(r.s) and r.s[i + 1] - pr.s < pr.s - r.s[i]:
                i += 1  # the nearer waypoint's command, as the embedded world
            cmd = RoadOption(int(r.commands[i]))
            if self._sparse_route is not None:
                target = self._sparse_route.target_point(ws.ego.x, ws.ego.y, ws.ego.yaw, pr.s)
        return Observation(frames=frames, speed=ws.ego.speed, command=cmd,
                           frame=ws.frame, sim_time=ws.sim_time, target_point=target)

    def _is_off_road(self, ego: VehicleState) -> bool:
        """Off-road has no CARLA sensor: no driving lane under the reference point."""
        carla = self._carla
        loc = carla.Location(x=ego.x, y=ego.y, z=ego.z)
        wp = self._conn.map.get_waypoint(loc, project_to_road=False, lane_type=carla.LaneType.Driving)
        return wp is None

    # ------------------------------------------------------------------ clean-up
    def _destroy_episode(self) -> None:
        """Stop and destroy the sensors, then destroy the vehicles in one batch. Each
        part runs even when another fails."""
        self._rig.destroy()
        try:
            walker_mod.destroy_walkers(self._carla, self._conn.client, self._conn.world, self._walkers)
        finally:
            self._walkers, self._lights = None, None
            ids = ([self._ego.id] if self._ego is not None else []) + list(self._npc_ids)
            self._ego, self._npc_ids = None, []
            actors.destroy_vehicles(self._carla, self._conn.client, ids)
        self._episode_ok = False

    def close(self) -> None:
        """Destroy every spawned actor, put the Traffic Manager and the world back in
        asynchronous mode. Idempotent; safe after a lost connection (then it tries one
        short reconnection to clean up, and gives up quietly).

        This is also what runs at interpreter exit while :attr:`atexit_registered`
        (from the first ``reset``); ``close`` unregisters it."""
        if self._closed:
            return
        self._closed = True
        self._episode_ok = False
        conn = self._conn
        try:
            if not conn.connected:
                if not conn.needs_cleanup:
                    return
                try:
                    conn.connect(budget=min(self.timeout, 2.0), attempts=1)
                except SimulatorConnectionError as e:
                    log.warning("could not clean up on the CARLA server: %s", e)
                    return
            try:
                self._destroy_episode()
            finally:
                conn.release()
        finally:
            self._unregister_atexit()

    def __enter__(self) -> "CarlaSimulator":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _register_atexit(self) -> None:
        if self._atexit_fn is None:
            ref = weakref.ref(self)
            self._atexit_fn = lambda: (lambda s: s.close() if s is not None else None)(ref())
            atexit.register(self._atexit_fn)

    def _unregister_atexit(self) -> None:
        if self._atexit_fn is not None:
            atexit.unregister(self._atexit_fn)
            self._atexit_fn = None
