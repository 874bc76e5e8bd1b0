"""The embedded world: an in-process :class:`~drive_il.sim.base.Simulator`.

Road geometry is a real ``carla.Map`` parsed offline from OpenDRIVE
(:mod:`drive_il.maps`); the ego moves with a kinematic bicycle model
(:mod:`.dynamics`), NPCs follow lanes with IDM (:mod:`.traffic`), events are detected
each step (:mod:`.events`) and RGB cameras are rendered from a map raster
(:mod:`.raster`, :mod:`.camera`, :mod:`.weather`).

One step (``dt`` fixed by the scenario, default 0.05 s, as CARLA's synchronous mode):

1. the ego's control is applied for ``dt`` (steering lag, engine, brakes, drag);
2. traffic lights advance (``[lights] enabled``: :mod:`.lights`, the town's
   :func:`~drive_il.maps.signals.signal_layout`); NPCs advance (IDM on the vehicle
   ahead, the ego included; they stop at red lights and yield to walkers on the road);
   walkers advance (:mod:`.walkers`: sidewalks, crossings with gap acceptance);
3. events of the new state: collisions, leaving the road, lane invasions, running a red
   light (:class:`~drive_il.sim.infractions.RedLightRule`), hitting a walker
   (:class:`~.walkers.WalkerCollisionDetector`);
4. cameras render the new state (skipped with ``render=False``);
5. a frozen :class:`~drive_il.types.Step` is returned.

Episode set-up (route and start for a scenario and seed) is shared with the CARLA
backend: see :mod:`drive_il.routing.episode` (scenario route
``routes[(seed - scenario.seed) % len(routes)]``, else a random route from
``numpy.random.default_rng(seed)``).

Determinism: the world is a pure function of the scenario and the seed (traffic draws
from ``numpy.random.default_rng([seed, 1])``, walkers from ``default_rng([seed, 3])``;
cameras get the seed and frame number), so the same scenario and seed give bit-identical
frames and poses.

Traffic counts: ``[traffic] density`` "custom" spawns ``vehicles`` and ``walkers``; a
NoCrash condition ("empty", "regular", "dense") spawns
:func:`drive_il.sim.density.traffic_counts`. Walkers are spawned at reset (at least
``min_spawn_distance`` from the ego's start) only when there are some: with none the
world is the one of before, bit for bit. ``WorldState.walkers`` holds the walkers within
:data:`~.walkers.WALKER_STATE_RADIUS` of the ego (what the cameras draw and the expert
needs; ``sim.walkers.states()`` gives all).

The cameras see a flat ground plane; ``VehicleState.z`` is the road height under the ego
(of the lane found by the event detector each step), so ``carla.Map`` queries with the
ego's location pick the right level where roads cross over (Town04). NPCs keep z = 0.

Appearance (:mod:`.appearance`): a town named ``procedural:<seed>`` is drawn with
``Appearance.from_seed(seed)`` (ground colours and texture, paint wear, roadside
objects); a scenario with an ``appearance_seed`` attribute that is not None uses
``Appearance.from_seed(appearance_seed)`` on any town; every other town keeps the
default look (identical frames).

Caches: the town (:class:`~drive_il.maps.towns.TownMap`) holds its lane graph, spawn
points and raster; the simulator keeps its towns by name and the cameras of a rig under a
weather preset -- a new episode on the same town and rig costs only the route planning.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ...errors import ScenarioError
from ...geometry import project_onto_polyline
from ...scenario import CameraConfig, Scenario
from ...types import (ActorState, Control, Event, Observation, RoadOption, Route, Step,
                      VehicleState, WorldState)
from ..base import StartPose
from ...routing.episode import EpisodeSetup, plan_episode
from ...routing.target import SparseRoute
from .dynamics import BicycleModel
from .events import EventDetector
from .lights import LightController
from .traffic import Traffic
from .walkers import WALKER_STATE_RADIUS, WALKER_STREAM, WalkerCollisionDetector, Walkers

__all__ = ["EmbeddedSimulator", "TRAFFIC_STREAM", "LIGHTS_STREAM"]

log = logging.getLogger(__name__)

#: Second entry of the traffic rng's seed: ``default_rng([seed, TRAFFIC_STREAM])``
#: (the route uses ``default_rng(seed)``; the two streams are independent).
TRAFFIC_STREAM = 1
#: Second entry of the traffic lights' rng seed: ``default_rng([seed, LIGHTS_STREAM])``
#: (the groups' starting phases; independent of the route and traffic streams).
LIGHTS_STREAM = 2

_COMMANDS = {int(o): o for o in RoadOption}


class EmbeddedSimulator:
    """The embedded world (no server, no GPU).

    Args:
        maps_dir: folder of OpenDRIVE towns (default: ``$DRIVE_IL_MAPS_DIR``, then the
            user default; generated towns need none).
        render: render the cameras at each step (False: physics, traffic and events
            only; ``Observation.frames`` is then empty). Can be changed at any time.

    Attributes:
        backend: "embedded".
        render: see above.
        ego: the ego's :class:`BicycleModel` (mutable internal state; read-only use).
        traffic: the episode's :class:`Traffic`.
        walkers: the episode's :class:`~.walkers.Walkers`, or None without pedestrians.
        lights: the episode's :class:`~drive_il.sim.embedded.lights.LightController`
            (None when the scenario's ``[lights]`` are disabled: no lights, the world of
            before bit for bit); its heads are ``WorldState.traffic_lights`` of every Step,
            the groups' starting phases drawn from ``default_rng([seed, LIGHTS_STREAM])``.
        frame: frame number of the current state (0 after reset).
        setup: the :class:`~drive_il.routing.episode.EpisodeSetup` of the episode.

    Beyond the protocol: :meth:`spawn_static_vehicle` / :meth:`spawn_static_vehicle_on_route`
    (a stopped lead vehicle), :meth:`teleport`, :meth:`current_step` (the Step of the
    current state, e.g. after adding vehicles), :meth:`render_frames`, :meth:`render_at`
    (views from another pose), and
    ``step(control, render=False)`` to skip the cameras for one step.

    Raises (``reset``): MapError (unknown town, missing or corrupt .xodr) and
    ScenarioError (start off the road, goal unreachable), each one line.
    """

    backend = "embedded"

    def __init__(self, *, maps_dir: str | Path | None = None, render: bool = True) -> None:
        self.maps_dir = maps_dir
        self.render = bool(render)
        self._towns: dict[str, Any] = {}
        self._rigs: dict[tuple, tuple] = {}
        self._town: Any = None
        self._scenario: Scenario | None = None
        self._route: Route | None = None
        self.setup: EpisodeSetup | None = None
        self.ego: BicycleModel | None = None
        self.traffic: Traffic | None = None
        self.events: EventDetector | None = None
        self._cameras: tuple = ()
        self._raster: Any = None
        self.frame = 0
        self.seed = 0
        self.dt = 0.05
        self._route_i = 0
        self._route_search_frame = 0
        self._route_lists: tuple[list, list, list] = ([], [], [])
        self._route_s: list[float] = []
        self._sparse_route: SparseRoute | None = None
        self._actors: tuple[ActorState, ...] = ()
        self._appearance: Any = None
        self.lights: LightController | None = None
        self._light_states: tuple = ()
        self.walkers: Walkers | None = None
        self._walker_hits: WalkerCollisionDetector | None = None
        self._walker_states: tuple = ()

    # ------------------------------------------------------------------ protocol
    @property
    def map(self) -> "Any":
        """The current town's ``carla.Map`` (None before the first reset)."""
        return None if self._town is None else self._town.map

    @property
    def raster(self) -> Any:
        """The current town's :class:`~drive_il.sim.embedded.raster.MapRaster` (the
        drivable surface the cameras render and the events read); None before reset."""
        return self._raster

    @property
    def town(self) -> Any:
        """The current :class:`~drive_il.maps.towns.TownMap` (None before reset)."""
        return self._town

    @property
    def scenario(self) -> Scenario | None:
        return self._scenario

    @property
    def route(self) -> Route | None:
        return self._route

    @property
    def sim_time(self) -> float:
        """[s] since reset."""
        return self.frame * self.dt

    def reset(self, scenario: Scenario, seed: int, *, route: Route | None = None,
              start: StartPose | None = None) -> Step:
        """Start an episode (see :meth:`drive_il.sim.base.Simulator.reset`).

        Raises:
            MapError: the town cannot be loaded (unknown, missing or corrupt .xodr).
            ScenarioError: the start is off the road or the goal unreachable.
        """
        town = self._load_town(scenario.town)
        carla_map = town.map
        setup = plan_episode(town, scenario, seed, route=route, start=start)
        # nothing has changed until here: a failed reset leaves the last episode intact
        self._town = town
        self._scenario = scenario
        self.setup = setup
        self._route = setup.route
        self.seed = int(seed)
        self.dt = float(scenario.dt)
        self.frame = 0
        self._set_route_lists()
        st = setup.start
        self.ego = BicycleModel(scenario.vehicle, x=st.x, y=st.y, yaw=st.yaw, speed=st.speed)
        self._appearance = self._get_appearance(scenario)
        self._raster = self._get_raster()
        self._cameras = self._get_cameras(scenario.cameras, scenario.weather)
        self.traffic = Traffic(carla_map, scenario.traffic, dt=self.dt,
                               rng=np.random.default_rng([self.seed, TRAFFIC_STREAM]))
        n_vehicles, n_walkers = self._traffic_counts(town, scenario)
        if n_vehicles > 0:
            self.traffic.spawn(n_vehicles, self._spawn_points(),
                               avoid=[(st.x, st.y)])
        self.walkers, self._walker_hits, self._walker_states = None, None, ()
        if n_walkers > 0:  # pedestrians (none: the world of before, bit for bit)
            self.walkers = Walkers(town, scenario.traffic, self.dt,
                                   np.random.default_rng([self.seed, WALKER_STREAM]))
            self.walkers.spawn(n_walkers, avoid=[(st.x, st.y)])
            self._walker_hits = WalkerCollisionDetector(length=self.ego.length, width=self.ego.width)
            self._walker_hits.prime(st.x, st.y, st.yaw, self.walkers)
            self._walker_states = self.walkers.states((st.x, st.y), WALKER_STATE_RADIUS)
        self.lights, self._light_states = None, ()
        if scenario.lights.enabled:
            from ...maps.signals import signal_layout
            lc = scenario.lights
            layout = signal_layout(town, lc.min_roads)
            # the heads per phase step, kept on the town for later episodes
            cache = town.memo(("light_states", lc.min_roads, lc.green_s, lc.yellow_s, lc.red_s,
                               self.dt), dict)
            self.lights = LightController(layout, lc, dt=self.dt, cache=cache,
                                          rng=np.random.default_rng([self.seed, LIGHTS_STREAM]))
            self._light_states = self.lights.states()
        self.events = EventDetector(carla_map, length=self.ego.length, width=self.ego.width,
                                    is_drivable=self._raster.is_drivable)
        self._actors = self.traffic.actor_states()
        self.events.reset(st.x, st.y, st.yaw, self.traffic.vehicles,
                          z=float(setup.route.waypoints[0].z), lights=self._light_states)
        self.ego.z = self.events.road_z
        return self._make_step(())

    def step(self, control: Control, *, render: bool | None = None) -> Step:
        """Apply ``control`` for one ``dt`` and return the next Step.

        Args:
            control: the ego's command.
            render: override :attr:`render` for this step.
        """
        ego = self.ego
        if ego is None:
            raise RuntimeError("EmbeddedSimulator.step: call reset() first")
        ego.step_raw(control.steer, control.throttle, control.brake, control.hand_brake,
                     control.reverse, self.dt)
        lights = self.lights
        if lights is not None:
            lights.step(self.dt)
            self._light_states = lights.states()
        traffic = self.traffic
        walkers = self.walkers
        if traffic.vehicles or self._actors:
            traffic.step(ego, lights=self._light_states,
                         walkers=walkers.obstacles() if walkers is not None else ())
            self._actors = traffic.actor_states()
        if walkers is not None:
            walkers.step(ego, traffic.vehicles, self._light_states)
        self.frame += 1
        x, y = ego.x, ego.y
        events = self.events.detect(x, y, ego.yaw, traffic.vehicles, self.frame, self.frame * self.dt,
                                    lights=self._light_states)
        if walkers is not None:
            hits = self._walker_hits.detect(x, y, ego.yaw, walkers, self.frame, self.frame * self.dt)
            if hits:
                events = events + tuple(hits)
            self._walker_states = walkers.states((x, y), WALKER_STATE_RADIUS)
        ego.z = self.events.road_z
        return self._make_step(events, render)

    def close(self) -> None:
        """Drop the episode (caches are kept for the next reset)."""
        self.ego = None
        self.traffic = None
        self.events = None
        self.lights, self._light_states = None, ()
        self.walkers, self._walker_hits, self._walker_states = None, None, ()

    # ------------------------------------------------------------------ extras
    def spawn_static_vehicle(self, x: float, y: float, yaw: float, *, length: float = 4.5,
                             width: float = 1.9, height: float = 1.5,
                             color: tuple[int, int, int] = (120, 120, 125)) -> int:
        """Place a vehicle that never moves (after reset); returns its actor id.

        It is drawn by the cameras, collides with the ego, and NPCs stop behind it.
        """
        if self.traffic is None:
            raise RuntimeError("spawn_static_vehicle: call reset() first")
        aid = self.traffic.add_static(x, y, yaw, length=length, width=width, height=height,
                                      color=color)
        self._actors = self.traffic.actor_states()
        return aid

    def spawn_static_vehicle_on_route(self, distance: float, **kwargs: Any) -> int:
        """Place a stopped vehicle on the route, its centre ``distance`` [m] of route
        arc length ahead of the route's start (a stopped lead vehicle).

        Raises:
            ScenarioError: ``distance`` beyond the route's end.
        """
        route = self._route
        if route is None:
            raise RuntimeError("spawn_static_vehicle_on_route: call reset() first")
        if not 0.0 <= distance <= route.length:
            raise ScenarioError(f"static vehicle at {distance:.1f} m: outside the route "
                                f"(0 .. {route.length:.1f} m)")
        i = int(np.searchsorted(route.s, distance, side="right")) - 1
        i = min(max(i, 0), len(route) - 2)
        seg = float(route.s[i + 1] - route.s[i])
        t = (distance - float(route.s[i])) / seg if seg > 1e-9 else 0.0
        x = float(route.xy[i, 0] + t * (route.xy[i + 1, 0] - route.xy[i, 0]))
        y = float(route.xy[i, 1] + t * (route.xy[i + 1, 1] - route.xy[i, 1]))
        yaw = math.atan2(route.xy[i + 1, 1] - route.xy[i, 1], route.xy[i + 1, 0] - route.xy[i, 0])
        return self.spawn_static_vehicle(x, y, yaw, **kwargs)

    def teleport(self, x: float, y: float, yaw: float, speed: float = 0.0) -> Step:
        """Move the ego to a pose (same frame; event state taken at the new pose, no
        events reported) and return the Step there."""
        if self.ego is None:
            raise RuntimeError("teleport: call reset() first")
        self.ego.set_pose(x, y, yaw, speed)
        self.events.reset(x, y, yaw, self.traffic.vehicles, z=self.ego.z, lights=self._light_states)
        if self.walkers is not None:
            self._walker_hits.prime(x, y, yaw, self.walkers)
            self._walker_states = self.walkers.states((x, y), WALKER_STATE_RADIUS)
        self.ego.z = self.events.road_z
        self._route_i = 0
        self._route_search_frame = 0
        return self._make_step(())

    def render_frames(self) -> dict[str, np.ndarray]:
        """Render every camera at the current state."""
        return self._render(self.ego.state())

    def render_at(self, x: float, y: float, yaw: float) -> dict[str, np.ndarray]:
        """Render every camera as if the ego stood at (x, y) [m] with heading ``yaw``
        [rad] (same frame, same other vehicles; the ego does not move) -- e.g. the
        shifted and rotated views of DAVE-2-style augmentation."""
        st = self.ego.state()
        return self._render(VehicleState(x=float(x), y=float(y), yaw=float(yaw), speed=st.speed,
                                         z=st.z, length=st.length, width=st.width,
                                         height=st.height, wheelbase=st.wheelbase,
                                         max_steer_angle=st.max_steer_angle))

    def current_step(self) -> Step:
        """The Step of the current state (rendered), without advancing."""
        return self._make_step(())

    # ------------------------------------------------------------------ internals
    def _set_route_lists(self) -> None:
        r = self._route
        self._route_lists = (r.xy[:, 0].tolist(), r.xy[:, 1].tolist(),
                             [_COMMANDS[int(c)] for c in r.commands])
        self._route_s = r.s.tolist()
        self._sparse_route = SparseRoute.of_route(r)
        self._route_i = 0
        self._route_search_frame = 0

    #: Towns (with their rasters and cameras) a simulator keeps; a scenario drawing from
    #: many towns (``towns = ["procedural:0-499"]``) would otherwise keep every raster.
    MAX_TOWNS = 4

    def _load_town(self, name: str) -> Any:
        town = self._towns.pop(name, None)
        if town is None:
            from ...maps.towns import load_town
            town = load_town(name, self.maps_dir)  # MapError on unknown/corrupt towns
        self._towns[name] = town  # most recently used last
        while len(self._towns) > self.MAX_TOWNS:
            old = self._towns.pop(next(iter(self._towns)))
            if old is not self._town and all(t is not old for t in self._towns.values()):
                self._rigs = {k: v for k, v in self._rigs.items() if k[0] != old.digest}
        return town

    @staticmethod
    def _traffic_counts(town: Any, scenario: Scenario) -> tuple[int, int]:
        """(vehicles, walkers) of the scenario's ``[traffic]`` on ``town``: its counts
        for density "custom", NoCrash's otherwise (:func:`drive_il.sim.density.traffic_counts`)."""
        tc = scenario.traffic
        if tc.density == "custom":
            return tc.vehicles, tc.walkers
        from ..density import driving_lane_length, traffic_counts
        return traffic_counts(tc, town.name, driving_lane_length(town))

    def _spawn_points(self) -> tuple:
        return self._town.spawn_points

    @property
    def appearance(self) -> Any:
        """The current town's :class:`~drive_il.sim.embedded.appearance.Appearance`
        (None before reset)."""
        return self._appearance

    @staticmethod
    def _get_appearance(scenario: Scenario) -> Any:
        from .appearance import appearance_for
        seed = getattr(scenario, "appearance_seed", None)
        return appearance_for(scenario.town, seed)

    def _get_raster(self) -> Any:
        from .raster import MapRaster
        # kept on the town: the same object each reset
        return MapRaster.for_town(self._town, appearance=self._appearance)

    def _get_scenery(self) -> Any:
        app = self._appearance
        if app is None or not app.has_objects:
            return None
        from .appearance import Scenery
        town = self._town
        return town.memo(("scenery", app.key), lambda: Scenery.build(town.map_geometry, app))

    def _get_cameras(self, rig: tuple[CameraConfig, ...], weather: str) -> tuple:
        app = self._appearance
        key = (self._town.digest, tuple(rig), weather, "" if app is None else app.key)
        cams = self._rigs.get(key)
        if cams is None:
            from .camera import Camera
            from .weather import WeatherLook
            look = WeatherLook.from_preset(weather)
            scenery = self._get_scenery()
            cams = tuple((c.name, Camera(c, self._raster, look, scenery=scenery)) for c in rig)
            self._rigs[key] = cams
        return cams

    def _render(self, ego: VehicleState) -> dict[str, np.ndarray]:
        frame, seed, actors = self.frame, self.seed, self._actors
        # traffic lights (with their stop lines) and walkers are drawn too; none: the
        # frames of a world without them
        lights, walkers = self._light_states, self._walker_states
        return {name: cam.render(ego, actors, frame=frame, seed=seed, lights=lights, walkers=walkers)
                for name, cam in self._cameras}

    def _command(self, x: float, y: float) -> tuple[RoadOption, float]:
        """Route command at the ego's projected route position, and that position's
        arc length [m] (the projection onto the tracked segment, clamped to it).

        The projection is tracked: from the previous segment the index walks forward or
        backward (O(1) per step on plain floats); farther than 20 m from the route (a
        teleport, or the car far off it) a full search
        (:func:`~drive_il.geometry.project_onto_polyline`) runs, at most every 20 frames.
        The command is that of the nearer vertex of the segment.
        """
        rx, ry, cmds = self._route_lists
        n = len(rx)
        i = self._route_i
        for _ in range(64):
            ax, ay = rx[i], ry[i]
            dx, dy = rx[i + 1] - ax, ry[i + 1] - ay
            L2 = dx * dx + dy * dy
            t = ((x - ax) * dx + (y - ay) * dy) / L2 if L2 > 1e-12 else 0.0
            if t > 1.0 and i + 2 < n:
                i += 1
            elif t < 0.0 and i > 0:
                i -= 1
            else:
                break
        ax, ay = rx[i], ry[i]
        bx, by = rx[i + 1], ry[i + 1]
        da = (x - ax) ** 2 + (y - ay) ** 2
        db = (x - bx) ** 2 + (y - by) ** 2
        if da > 400.0 and db > 400.0 and self.frame >= self._route_search_frame:
            route = self._route
            i = min(project_onto_polyline(route.xy, route.s, x, y).index, n - 2)
            self._route_search_frame = self.frame + 20
            ax, ay = rx[i], ry[i]
            bx, by = rx[i + 1], ry[i + 1]
            da = (x - ax) ** 2 + (y - ay) ** 2
            db = (x - bx) ** 2 + (y - by) ** 2
        self._route_i = i
        rs = self._route_s
        seg = rs[i + 1] - rs[i]
        u = ((x - ax) * (bx - ax) + (y - ay) * (by - ay)) / (seg * seg) if seg > 1e-6 else 0.0
        s_ego = rs[i] + seg * min(1.0, max(0.0, u))
        return (cmds[i + 1] if db < da else cmds[i]), s_ego

    def _make_step(self, events: tuple[Event, ...], render: bool | None = None) -> Step:
        ego = self.ego.state()
        frame = self.frame
        t = frame * self.dt
        sc = self._scenario
        do_render = self.render if render is None else render
        frames: Mapping[str, np.ndarray] = self._render(ego) if do_render else {}
        command, s_ego = self._command(ego.x, ego.y)
        obs = Observation(frames=frames, speed=ego.speed, command=command, frame=frame, sim_time=t,
                          target_point=self._sparse_route.target_point(ego.x, ego.y, ego.yaw, s_ego))
        ws = WorldState(ego=ego, actors=self._actors, route=self._route, frame=frame,
                        sim_time=t, dt=self.dt, town=self._town.name, weather=sc.weather,
                        traffic_lights=self._light_states, walkers=self._walker_states)
        return Step(observation=obs, world_state=ws, events=events)

