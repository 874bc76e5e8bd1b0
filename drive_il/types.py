"""Frozen value types shared by every part of drive_il.

Conventions (see DESIGN.md):

* SI units everywhere: metres [m], seconds [s], metres per second [m/s], radians [rad].
* CARLA's world frame: x forward/east, y right/south, z up (left-handed). Yaw is measured
  from +x towards +y (clockwise seen from above), in radians inside drive_il; degrees
  appear only at the CARLA boundary.
* ``Control.steer`` in [-1, 1], +1 = full right, as ``carla.VehicleControl``.

The types are plain frozen dataclasses (``slots=True`` for speed, they are built at
every simulation step). Validation that is cheap happens in ``__post_init__`` and raises
``ValueError`` quoting the offending value.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, NamedTuple, Sequence

import numpy as np

__all__ = [
    "Control",
    "VehicleState",
    "ActorState",
    "RoadOption",
    "RouteWaypoint",
    "Route",
    "EventKind",
    "Event",
    "TrafficLightState",
    "TrafficLight",
    "CARLA_YELLOW_TIME",
    "WalkerState",
    "Observation",
    "WorldState",
    "Step",
]


@dataclass(frozen=True, slots=True)
class Control:
    """A vehicle command with ``carla.VehicleControl`` semantics.

    Attributes:
        steer: [-1, 1], +1 = full right; multiplied by the vehicle's maximum road-wheel
            angle to give the commanded steering angle.
        throttle: [0, 1].
        brake: [0, 1].
        hand_brake: locks the rear wheels (strong deceleration).
        reverse: drive backwards.

    Raises:
        ValueError: a value outside its range or not finite.
    """

    steer: float = 0.0
    throttle: float = 0.0
    brake: float = 0.0
    hand_brake: bool = False
    reverse: bool = False

    def __post_init__(self) -> None:
        s, t, b = self.steer, self.throttle, self.brake
        if not (-1.0 <= s <= 1.0):
            raise ValueError(f"Control.steer must be in [-1, 1], got {s!r}")
        if not (0.0 <= t <= 1.0):
            raise ValueError(f"Control.throttle must be in [0, 1], got {t!r}")
        if not (0.0 <= b <= 1.0):
            raise ValueError(f"Control.brake must be in [0, 1], got {b!r}")

    @staticmethod
    def clipped(steer: float, throttle: float = 0.0, brake: float = 0.0,
                hand_brake: bool = False, reverse: bool = False) -> "Control":
        """Build a Control with each value clipped into its range (NaN -> 0)."""
        def clip(v: float, lo: float, hi: float) -> float:
            v = float(v)
            if v != v:  # NaN
                return 0.0
            return lo if v < lo else hi if v > hi else v
        return Control(clip(steer, -1.0, 1.0), clip(throttle, 0.0, 1.0),
                       clip(brake, 0.0, 1.0), bool(hand_brake), bool(reverse))


@dataclass(frozen=True, slots=True)
class VehicleState:
    """Pose and motion of a vehicle.

    The reference point is the centre of the bounding box at ground level, as CARLA's
    ``actor.get_location()``; the lateral deviation and camera mounts are relative to it. The rear axle
    lies ``wheelbase / 2`` behind it (see :meth:`rear_axle`).

    Attributes:
        x, y, z: reference point [m] in CARLA's world frame.
        yaw: heading [rad], from +x towards +y (CARLA's yaw in radians).
        speed: signed longitudinal speed [m/s] (negative when reversing).
        steer_angle: current road-wheel angle [rad], + = right.
        yaw_rate: [rad/s].
        acceleration: longitudinal acceleration [m/s^2].
        length, width, height: bounding box [m].
        wheelbase: [m].
        max_steer_angle: road-wheel angle at |steer| = 1 [rad].
    """

    x: float
    y: float
    yaw: float
    speed: float = 0.0
    z: float = 0.0
    steer_angle: float = 0.0
    yaw_rate: float = 0.0
    acceleration: float = 0.0
    length: float = 4.8
    width: float = 1.9
    height: float = 1.5
    wheelbase: float = 2.9
    max_steer_angle: float = math.radians(70.0)

    def rear_axle(self) -> tuple[float, float]:
        """Centre of the rear axle (x, y) [m]."""
        h = 0.5 * self.wheelbase
        return (self.x - h * math.cos(self.yaw), self.y - h * math.sin(self.yaw))

    @property
    def velocity(self) -> tuple[float, float]:
        """World-frame velocity (vx, vy) [m/s]."""
        return (self.speed * math.cos(self.yaw), self.speed * math.sin(self.yaw))


@dataclass(frozen=True, slots=True)
class ActorState:
    """Another vehicle in the world (privileged information for the expert).

    Attributes:
        actor_id: unique id within the episode.
        x, y, z: centre of the bounding box at ground level [m], world frame.
        yaw: heading [rad].
        speed: [m/s].
        length, width, height: bounding box [m].
        color: RGB uint8 triple used by the embedded camera.
    """

    actor_id: int
    x: float
    y: float
    yaw: float
    speed: float = 0.0
    z: float = 0.0
    length: float = 4.5
    width: float = 1.9
    height: float = 1.5
    color: tuple[int, int, int] = (160, 30, 30)


class TrafficLightState(enum.IntEnum):
    """State of a traffic-light head, numbered as ``carla.TrafficLightState``
    (Red = 0, Yellow = 1, Green = 2, Off = 3, Unknown = 4)."""

    RED = 0
    YELLOW = 1
    GREEN = 2
    OFF = 3
    UNKNOWN = 4


#: CARLA's default yellow time of a traffic light [s] (``carla.TrafficLight.get_yellow_time``).
CARLA_YELLOW_TIME = 3.0


@dataclass(frozen=True, slots=True)
class TrafficLight:
    """One traffic-light head and the stop line it controls (as a CARLA
    ``traffic.traffic_light`` actor with its ``get_stop_waypoints()``).

    Attributes:
        light_id: unique id within the episode (>= 1; in the embedded world the id of the
            head in its town's signal layout).
        x, y, z: foot of the pole [m], world frame (beside the road, at the stop line).
        yaw: direction the controlled traffic drives [rad] (the lamps face against it).
        state: the lamp lit now.
        junction_id: OpenDRIVE id of the junction the head guards (-1 if unknown).
        group_id: id of the light group (one per signalised junction; heads of a group
            take turns: CARLA's ``get_group_traffic_lights``).
        stop_line: ((x0, y0), (x1, y1)) [m], the stop line across the controlled lanes
            (right edge first, seen in the driving direction).
        lanes: (road_id, lane_id) of each controlled lane at the stop line.
        elapsed: time spent in ``state`` [s] (CARLA's ``get_elapsed_time``).
        height: height of the lamp housing's centre above the pole's foot [m].
        yellow_time: how long the head stays yellow [s] (CARLA's ``get_yellow_time``;
            3 s is CARLA's default): with ``elapsed``, the yellow time left.
    """

    light_id: int
    x: float
    y: float
    yaw: float
    state: TrafficLightState = TrafficLightState.RED
    z: float = 0.0
    junction_id: int = -1
    group_id: int = -1
    stop_line: tuple[tuple[float, float], tuple[float, float]] = ((0.0, 0.0), (0.0, 0.0))
    lanes: tuple[tuple[int, int], ...] = ()
    elapsed: float = 0.0
    height: float = 3.0
    yellow_time: float = CARLA_YELLOW_TIME


@dataclass(frozen=True, slots=True)
class WalkerState:
    """A pedestrian (CARLA ``walker.pedestrian.*`` with its ``controller.ai.walker``).

    Attributes:
        actor_id: unique id within the episode (walkers' ids do not clash with
            vehicles'; the embedded world numbers them from 100000).
        x, y, z: centre of the walker's footprint at ground level [m].
        yaw: walking direction [rad].
        speed: [m/s] (CARLA's walkers: 1.0-2.0 m/s).
        radius: footprint radius [m] (collision circle).
        height: [m].
        on_road: the walker is on a driving lane or junction now (crossing).
        color: RGB uint8 of the clothes (embedded camera).
    """

    actor_id: int
    x: float
    y: float
    yaw: float
    speed: float = 0.0
    z: float = 0.0
    radius: float = 0.3
    height: float = 1.75
    on_road: bool = False
    color: tuple[int, int, int] = (60, 60, 140)


class RoadOption(enum.IntEnum):
    """Navigation command, numbered as CARLA's ``agents.navigation.local_planner.RoadOption``."""

    VOID = -1
    LEFT = 1
    RIGHT = 2
    STRAIGHT = 3
    LANEFOLLOW = 4
    CHANGELANELEFT = 5
    CHANGELANERIGHT = 6


@dataclass(frozen=True, slots=True)
class RouteWaypoint:
    """One point of a dense route on a lane centre line.

    Attributes:
        x, y, z: [m] world frame.
        yaw: lane direction [rad].
        command: the RoadOption in force at this point.
        road_id, section_id, lane_id: OpenDRIVE identifiers of the lane.
        lane_width: [m].
        is_junction: inside a junction.
        speed_limit: [m/s], or None where the map gives none.
    """

    x: float
    y: float
    yaw: float
    command: RoadOption = RoadOption.LANEFOLLOW
    z: float = 0.0
    road_id: int = 0
    section_id: int = 0
    lane_id: int = 0
    lane_width: float = 3.5
    is_junction: bool = False
    speed_limit: float | None = None


@dataclass(frozen=True, slots=True)
class Route:
    """A dense route: waypoints every ``spacing`` metres along lane centres.

    Attributes:
        waypoints: the route, in driving order (at least 2).
        spacing: nominal distance between consecutive waypoints [m].
        xy: (N, 2) float64 array of waypoint positions [m] (derived).
        yaw: (N,) float64 lane directions [rad] (derived).
        s: (N,) float64 cumulative arc length [m] (derived).
        commands: (N,) int8 RoadOption values (derived).

    Raises:
        ValueError: fewer than 2 waypoints.
    """

    waypoints: tuple[RouteWaypoint, ...]
    spacing: float = 1.0
    xy: np.ndarray = field(init=False, repr=False, compare=False)
    yaw: np.ndarray = field(init=False, repr=False, compare=False)
    s: np.ndarray = field(init=False, repr=False, compare=False)
    commands: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.waypoints) < 2:
            raise ValueError(f"Route needs at least 2 waypoints, got {len(self.waypoints)}")
        xy = np.array([(w.x, w.y) for w in self.waypoints], dtype=np.float64)
        yaw = np.array([w.yaw for w in self.waypoints], dtype=np.float64)
        seg = np.hypot(*np.diff(xy, axis=0).T)
        s = np.concatenate([[0.0], np.cumsum(seg)])
        cmds = np.array([int(w.command) for w in self.waypoints], dtype=np.int8)
        for a in (xy, yaw, s, cmds):
            a.setflags(write=False)
        object.__setattr__(self, "xy", xy)
        object.__setattr__(self, "yaw", yaw)
        object.__setattr__(self, "s", s)
        object.__setattr__(self, "commands", cmds)

    @property
    def length(self) -> float:
        """Total arc length [m]."""
        return float(self.s[-1])

    def __len__(self) -> int:
        return len(self.waypoints)


class EventKind(enum.Enum):
    """What can happen to the ego vehicle during a step."""

    COLLISION = "collision"          # with another vehicle (or a static object in CARLA)
    OFF_ROAD = "off_road"            # the vehicle left the drivable surface
    LANE_INVASION = "lane_invasion"  # crossed a lane marking
    WALKER_COLLISION = "walker_collision"  # hit a pedestrian (``other_actor`` its id)
    RED_LIGHT = "red_light"          # crossed its lane's stop line while red (leaderboard rule;
    #                                  ``other_actor`` is the light's id)


@dataclass(frozen=True, slots=True)
class Event:
    """An event reported by the simulator during one step.

    Attributes:
        kind: the EventKind.
        frame: simulation frame number.
        sim_time: [s].
        other_actor: id of the other actor (collisions), else -1.
        marking: lane-marking types crossed, e.g. ("Broken",) or ("Solid", "Solid")
            (lane invasions, CARLA's ``carla.LaneMarkingType`` names), else ().
        impulse: collision impulse magnitude [N s] where known, else 0.
    """

    kind: EventKind
    frame: int
    sim_time: float
    other_actor: int = -1
    marking: tuple[str, ...] = ()
    impulse: float = 0.0


@dataclass(frozen=True, slots=True)
class Observation:
    """What a learner may see.

    Attributes:
        frames: camera name -> (H, W, 3) uint8 RGB image.
        speed: ego speed [m/s].
        command: the navigation command in force at the ego's position.
        frame: simulation frame number.
        sim_time: [s].
        target_point: the route's next sparse plan point, (forward, right) [m] in the
            ego frame (CARLA leaderboard's sparse global plan, TransFuser's target
            point; :class:`drive_il.routing.target.SparseRoute`); None without a route.
    """

    frames: Mapping[str, np.ndarray]
    speed: float
    command: RoadOption = RoadOption.LANEFOLLOW
    frame: int = 0
    sim_time: float = 0.0
    target_point: tuple[float, float] | None = None


@dataclass(frozen=True, slots=True)
class WorldState:
    """Privileged world state read by the expert, the metrics and the overlay.

    Attributes:
        ego: the ego vehicle.
        actors: other vehicles.
        route: the route the ego is asked to follow (None if none).
        frame: simulation frame number.
        sim_time: [s].
        dt: fixed step [s].
        town: map name.
        weather: weather preset name.
        traffic_lights: every traffic-light head of the town with its state now
            (empty where the scenario has no lights).
        walkers: pedestrians.
    """

    ego: VehicleState
    actors: tuple[ActorState, ...] = ()
    route: Route | None = None
    frame: int = 0
    sim_time: float = 0.0
    dt: float = 0.05
    town: str = ""
    weather: str = "ClearNoon"
    traffic_lights: tuple[TrafficLight, ...] = ()
    walkers: tuple[WalkerState, ...] = ()


@dataclass(frozen=True, slots=True)
class Step:
    """The result of ``Simulator.reset`` or ``Simulator.step``.

    Attributes:
        observation: what the learner sees.
        world_state: what the expert sees.
        events: events during the step (empty after reset).
    """

    observation: Observation
    world_state: WorldState
    events: tuple[Event, ...] = ()


#: What can lower the expert's target speed below the route's speed profile
#: (:attr:`drive_il.expert.Expert.stop_reason`), in the order of their codes in episode
#: files (``steps/stop_reason``): "" = nothing (cruise, curve, junction or route end
#: speed), then a red light, a yellow light it can stop for, a walker, a vehicle ahead.
STOP_REASONS: tuple[str, ...] = ("", "red_light", "yellow_light", "walker", "vehicle")
#: The names of :data:`STOP_REASONS` as reports and configs spell them ("none" for "").
STOP_REASON_NAMES: tuple[str, ...] = tuple(r or "none" for r in STOP_REASONS)
#: ``stop_reason`` code of a step whose reason is unknown (no such attribute on the
#: expert, or an episode file of schema version 1 or 2).
STOP_REASON_UNKNOWN = 255


def stop_reason_code(reason: str | None) -> int:
    """The episode-file code of an expert's ``stop_reason`` (None: unknown).

    Raises:
        ValueError: a reason outside :data:`STOP_REASONS`.
    """
    if reason is None:
        return STOP_REASON_UNKNOWN
    try:
        return STOP_REASONS.index(reason)
    except ValueError:
        raise ValueError(f"stop reason {reason!r}: expected one of {STOP_REASONS}") from None


def stop_reason_name(code: int) -> str:
    """The inverse of :func:`stop_reason_code`: "none" for "", "unknown" for
    :data:`STOP_REASON_UNKNOWN` (and any code outside the table)."""
    c = int(code)
    if 0 <= c < len(STOP_REASON_NAMES):
        return STOP_REASON_NAMES[c]
    return "unknown"


@dataclass(frozen=True, slots=True)
class StepRecord:
    """Everything known about one control step, as the rollout loop hands it to the
    recorder, the metrics and the overlay (composition, not subclassing).

    ``step`` is the state *at which* the control was decided (observation + world
    state); ``executed`` is what was sent to the simulator for the next step; ``events``
    are those reported while executing it. :meth:`row` flattens it into the per-step
    schema :class:`StepRow` that episode files and metrics share.

    Attributes:
        step: the Step the drivers saw.
        executed: the control sent to the simulator.
        expert: the expert's label for this state (always present).
        learner: the learner's prediction (None when no learner runs).
        driver: who produced ``executed``: "expert", "learner" or "human".
        intervention: the expert (or a human) took over at this step (gated mode or
            evaluation interventions).
        noise: the executed control was perturbed by noise injection.
        lateral_deviation: [m], signed, + = right of the route's lane centre.
        heading_error: [rad], vehicle yaw minus lane direction.
        route_progress: arc length along the route [m].
        events: events reported while executing the control.
        expert_path: (K, 2) the expert's intended path [m] (world x, y), or None.
        beta: DAgger mixing probability in force (None outside DAgger).
        dagger_round: DAgger round (None outside DAgger).
        in_junction: the route point the ego is projected on lies in a junction.
        expert_target_speed: the expert's target speed at this state [m/s] (its
            ``target_speed`` after acting: 0 when it stops), NaN when unknown; the speed
            label of a learner's speed head.
        learner_target_speed: the speed a learner with a speed head asked for at this
            state [m/s] (:attr:`drive_il.policies.driver.PolicyDriver.target_speed`),
            NaN without one.
        intervention_cause: why the expert holds control at this step (a takeover's
            cause: "lateral_deviation", "collision", "off_road", "red_light",
            "imminent_collision"; :class:`drive_il.rollout.arbitration.InterventionConfig`),
            "" when no takeover does.
        expert_stop_reason: what lowered the expert's target speed below the route's
            speed profile at this state (:attr:`drive_il.expert.Expert.stop_reason`: one of
            :data:`STOP_REASONS`, "" = nothing did), None when unknown (an expert without
            the attribute).
        expert_obstacle_gap, expert_obstacle_speed: what ``expert_stop_reason`` names
            (:attr:`drive_il.expert.Expert.obstacle`): its gap from the front bumper
            along the route [m] and its speed along the route [m/s]; +inf and NaN when
            nothing lowers the target speed; NaN when unknown.
    """

    step: Step
    executed: Control
    expert: Control
    learner: Control | None = None
    driver: str = "expert"
    intervention: bool = False
    noise: bool = False
    lateral_deviation: float = 0.0
    heading_error: float = 0.0
    route_progress: float = 0.0
    events: tuple[Event, ...] = ()
    expert_path: np.ndarray | None = None
    beta: float | None = None
    dagger_round: int | None = None
    in_junction: bool = False
    expert_target_speed: float = math.nan
    learner_target_speed: float = math.nan
    intervention_cause: str = ""
    expert_stop_reason: str | None = None
    expert_obstacle_gap: float = math.nan
    expert_obstacle_speed: float = math.nan

    def _happened(self, kind: EventKind) -> bool:
        return any(e.kind is kind for e in self.events)

    @property
    def collision(self) -> bool:
        """A collision was reported while executing the control."""
        return self._happened(EventKind.COLLISION)

    @property
    def off_road(self) -> bool:
        """The vehicle left the road while executing the control."""
        return self._happened(EventKind.OFF_ROAD)

    @property
    def lane_invasion(self) -> bool:
        """A lane marking was crossed while executing the control."""
        return self._happened(EventKind.LANE_INVASION)

    def row(self) -> "StepRow":
        """This step as the flat, named :class:`StepRow` (learner fields NaN when no
        learner ran)."""
        obs = self.step.observation
        ego = self.step.world_state.ego
        ex, e, ln = self.executed, self.expert, self.learner
        nan = math.nan
        col = off = lane = red = walker = False
        for ev in self.events:
            k = ev.kind
            if k is EventKind.COLLISION:
                col = True
            elif k is EventKind.OFF_ROAD:
                off = True
            elif k is EventKind.LANE_INVASION:
                lane = True
            elif k is EventKind.RED_LIGHT:
                red = True
            elif k is EventKind.WALKER_COLLISION:
                walker = True
        return StepRow(
            frame=obs.frame, sim_time=obs.sim_time, speed=ego.speed,
            x=ego.x, y=ego.y, z=ego.z, yaw=ego.yaw, command=int(obs.command),
            executed_steer=ex.steer, executed_throttle=ex.throttle, executed_brake=ex.brake,
            expert_steer=e.steer, expert_throttle=e.throttle, expert_brake=e.brake,
            learner_steer=ln.steer if ln is not None else nan,
            learner_throttle=ln.throttle if ln is not None else nan,
            learner_brake=ln.brake if ln is not None else nan,
            intervention=self.intervention, noise=self.noise, driver=self.driver,
            lateral_deviation=self.lateral_deviation, heading_error=self.heading_error,
            route_progress=self.route_progress,
            collision=col, off_road=off, lane_invasion=lane, in_junction=self.in_junction,
            target_speed=self.expert_target_speed, learner_target_speed=self.learner_target_speed,
            red_light=red, walker_collision=walker, stop_reason=stop_reason_code(self.expert_stop_reason),
            obstacle_gap=self.expert_obstacle_gap, obstacle_speed=self.expert_obstacle_speed,
        )


class StepRow(NamedTuple):
    """The per-step record schema: one control step as flat, named scalars.

    The single definition of the per-step fields. The episode recorder
    (:mod:`drive_il.data.recorder`) stores them grouped as :data:`STEP_FILE_COLUMNS`
    says, the metrics (:class:`drive_il.metrics.EpisodeTrace`) read them by the same
    names from :func:`step_columns` (while driving) or :func:`columns_from_file_arrays`
    (from an episode file). Built by :meth:`StepRecord.row`.

    Attributes:
        frame: simulation frame number of the state the control was decided at.
        sim_time: [s].
        speed: ego speed [m/s].
        x, y, z: ego position [m], CARLA world frame.
        yaw: ego heading [rad].
        command: :class:`RoadOption` value in force.
        executed_steer, executed_throttle, executed_brake: control sent to the simulator.
        expert_steer, expert_throttle, expert_brake: the expert's label (always).
        learner_steer, learner_throttle, learner_brake: the learner's prediction, NaN
            when none ran.
        intervention: the expert/human drove because of an intervention.
        noise: the executed control was perturbed by noise injection.
        driver: who drove: "expert", "learner", "human".
        lateral_deviation: [m], + = right of the lane centre.
        heading_error: [rad].
        route_progress: arc length along the route [m].
        collision, off_road, lane_invasion: the event was reported while executing the
            control.
        in_junction: the route point is in a junction (not stored in episode files).
        target_speed: the expert's target speed at this state [m/s] (the speed label),
            NaN when unknown (and in episode files of schema version 1).
        learner_target_speed: the target speed of a learner's speed head [m/s], NaN
            when none ran.
        red_light, walker_collision: the event was reported while executing the
            control (:attr:`EventKind.RED_LIGHT`, :attr:`EventKind.WALKER_COLLISION`).
        stop_reason: why the expert's target speed is below the route's speed profile:
            an index into :data:`STOP_REASONS`, :data:`STOP_REASON_UNKNOWN` when unknown
            (and in episode files of schema versions 1 and 2).
        obstacle_gap, obstacle_speed: what ``stop_reason`` names: gap from the front
            bumper along the route [m], speed along the route [m/s]; +inf and NaN when
            nothing lowers the target speed; NaN when unknown (and in episode files of
            schema versions 1 to 3).
    """

    frame: int
    sim_time: float
    speed: float
    x: float
    y: float
    z: float
    yaw: float
    command: int
    executed_steer: float
    executed_throttle: float
    executed_brake: float
    expert_steer: float
    expert_throttle: float
    expert_brake: float
    learner_steer: float
    learner_throttle: float
    learner_brake: float
    intervention: bool
    noise: bool
    driver: str
    lateral_deviation: float
    heading_error: float
    route_progress: float
    collision: bool
    off_road: bool
    lane_invasion: bool
    in_junction: bool
    target_speed: float = math.nan
    learner_target_speed: float = math.nan
    red_light: bool = False
    walker_collision: bool = False
    stop_reason: int = STOP_REASON_UNKNOWN
    obstacle_gap: float = math.nan
    obstacle_speed: float = math.nan


_INT_FIELDS = ("frame", "command", "stop_reason")
_FLAG_FIELDS = ("intervention", "noise", "collision", "off_road", "lane_invasion", "in_junction", "red_light",
                "walker_collision")

#: numpy dtype of each :class:`StepRow` field as a column (:func:`step_columns`):
#: int64 for counters, bool for flags, str for ``driver``, float64 for the rest.
STEP_ROW_DTYPES: dict[str, type] = {
    name: np.int64 if name in _INT_FIELDS else bool if name in _FLAG_FIELDS else np.str_ if name == "driver"
    else np.float64
    for name in StepRow._fields
}

#: Arrays of an episode file (``drive_il.data.storage.STEP_FIELDS``) -> the
#: :class:`StepRow` fields each holds, in column order. ``in_junction`` is not stored;
#: ``driver`` is stored as a code into the file's driver names.
STEP_FILE_COLUMNS: dict[str, tuple[str, ...]] = {
    "frame": ("frame",),
    "sim_time": ("sim_time",),
    "speed": ("speed",),
    "pose": ("x", "y", "z", "yaw"),
    "command": ("command",),
    "executed": ("executed_steer", "executed_throttle", "executed_brake"),
    "expert": ("expert_steer", "expert_throttle", "expert_brake"),
    "learner": ("learner_steer", "learner_throttle", "learner_brake"),
    "intervention": ("intervention",),
    "noise": ("noise",),
    "driver": ("driver",),
    "lateral_deviation": ("lateral_deviation",),
    "heading_error": ("heading_error",),
    "route_progress": ("route_progress",),
    "collision": ("collision",),
    "off_road": ("off_road",),
    "lane_invasion": ("lane_invasion",),
    "target_speed": ("target_speed",),
    "learner_target_speed": ("learner_target_speed",),
    "red_light": ("red_light",),
    "walker_collision": ("walker_collision",),
    "stop_reason": ("stop_reason",),
    "obstacle": ("obstacle_gap", "obstacle_speed"),
}


def step_columns(rows: Sequence[StepRow]) -> dict[str, np.ndarray]:
    """The rows as columns: :class:`StepRow` field name -> (T,) array of
    :data:`STEP_ROW_DTYPES` (``driver`` as strings)."""
    cols = list(zip(*rows)) if rows else [()] * len(StepRow._fields)
    return {name: np.asarray(col, dtype=STEP_ROW_DTYPES[name]) for name, col in zip(StepRow._fields, cols)}


def file_arrays_from_columns(columns: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Group :func:`step_columns` into the arrays of an episode file
    (:data:`STEP_FILE_COLUMNS`): one field -> (T,), several -> (T, k) in order. The
    ``driver`` column is passed through as given (the recorder turns names into codes)."""
    out = {}
    for key, names in STEP_FILE_COLUMNS.items():
        out[key] = columns[names[0]] if len(names) == 1 else np.column_stack([columns[n] for n in names])
    return out


def columns_from_file_arrays(arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The inverse of :func:`file_arrays_from_columns`: :class:`StepRow` field name ->
    (T,) array, for every stored field (``driver`` stays as stored, codes in a file)."""
    out = {}
    for key, names in STEP_FILE_COLUMNS.items():
        a = np.asarray(arrays[key])
        if len(names) == 1:
            out[names[0]] = a
        else:
            for i, n in enumerate(names):
                out[n] = a[:, i]
    return out


__all__ += ["STOP_REASONS", "STOP_REASON_NAMES", "STOP_REASON_UNKNOWN", "stop_reason_code", "stop_reason_name", "StepRecord", "StepRow", "STEP_ROW_DTYPES", "STEP_FILE_COLUMNS", "step_columns",
            "file_arrays_from_columns", "columns_from_file_arrays"]


@dataclass(frozen=True, slots=True)
class EpisodeInfo:
    """What is known when an episode starts (stored as episode metadata).

    Attributes:
        scenario: scenario name.
        scenario_source: the scenario file ("" if built in code).
        scenario_dict: the full scenario as plain values (JSON-able).
        town: map name.
        seed: episode seed.
        episode: episode index within the run.
        weather: weather preset.
        backend: "embedded" or "carla".
        dt: fixed step [s].
        cameras: camera rig, as plain dicts (name, width, height, fov_deg, x, y, z,
            pitch_deg, yaw_deg).
        vehicle: vehicle parameters as a plain dict (wheelbase, max_steer_deg, ...).
        route: the route of the episode.
        expert_preset: name or path of the expert preset.
        driver: who drives ("expert", "learner", "mixture", "human").
        dagger_round: DAgger round (None outside DAgger).
        beta: DAgger beta (None outside DAgger).
        noise: noise-injection settings as a plain dict ({} when off).
        density: the traffic condition driven (``TrafficConfig.density``: "custom",
            "empty", "regular" or "dense"; the drawn one of ``densities``).
    """

    scenario: str
    town: str
    seed: int
    episode: int = 0
    weather: str = "ClearNoon"
    backend: str = "embedded"
    dt: float = 0.05
    cameras: tuple[dict, ...] = ()
    vehicle: dict = field(default_factory=dict)
    route: Route | None = None
    expert_preset: str = "default"
    driver: str = "expert"
    dagger_round: int | None = None
    beta: float | None = None
    noise: dict = field(default_factory=dict)
    scenario_source: str = ""
    scenario_dict: dict = field(default_factory=dict)
    density: str = "custom"


@dataclass(frozen=True, slots=True)
class EpisodeResult:
    """How an episode ended.

    Attributes:
        info: the EpisodeInfo it started with.
        termination: "route_completed", "timeout", "collision", "off_road",
            "stuck", "interrupted", "failed" (backend lost).
        steps: number of control steps.
        summary: metric name -> value (DESIGN.md names: route_completion [%],
            distance [m], lateral_deviation_mean, lateral_deviation_p95, lateral_deviation_max [m], collisions, off_road,
            lane_invasions, interventions, autonomy [%], steps_per_s, ...).
        path: the episode file, when recorded.
    """

    info: EpisodeInfo
    termination: str
    steps: int
    summary: dict = field(default_factory=dict)
    path: str | None = None


__all__ += ["EpisodeInfo", "EpisodeResult"]


def slot_setters(cls: type, names: Sequence[str]) -> tuple[Callable[[Any, Any], None], ...]:
    """The slot setters of a frozen, slotted dataclass, in the order of ``names``.

    A frozen dataclass's ``__init__`` runs ``object.__setattr__`` once per field (0.15-0.25
    us each). The embedded world builds many of some types every step (NPC
    :class:`ActorState`, near :class:`WalkerState`, every :class:`TrafficLight`), so it
    builds them as ``object.__new__(cls)`` followed by these setters (the slots' member
    descriptors): the same object, equal, hashing and printing alike, in about half the
    time. The caller sets every field (no defaults and no ``__post_init__`` run; these
    types have none that checks).

    Args:
        cls: a ``@dataclass(frozen=True, slots=True)`` type.
        names: its field names, each once, in the order the caller sets them.

    Raises:
        TypeError: ``names`` is not exactly the set of the fields of ``cls`` (one line
            naming both).
    """
    fields = [f.name for f in dataclasses.fields(cls)]
    if len(names) != len(fields) or set(names) != set(fields):
        raise TypeError(f"slot_setters({cls.__name__}): expected every field once {fields}, got {list(names)}")
    return tuple(getattr(cls, name).__set__ for name in names)


__all__ += ["slot_setters"]
