"""Scenarios: where and in what conditions we drive (``scenarios/*.toml``).

A scenario names a town (a generated road network or an OpenDRIVE file), the routes or
how to generate them, the weather, the traffic, the camera rig, the vehicle, the fixed
time step and the episode length, and a seed. Loading is strict (see
:mod:`drive_il.config`): an unknown key, a wrong type or an out-of-range value is a
:class:`~drive_il.errors.ConfigError` naming the file and field.

Example (``scenarios/default.toml``)::

    name = "default"
    town = "circuit"
    weather = "ClearNoon"
    dt = 0.05
    episode_seconds = 60.0
    seed = 0
    route_length = 400.0

    [[cameras]]
    name = "center"
    width = 200
    height = 66
    fov_deg = 60.0
    x = 1.4
    z = 1.5
    pitch_deg = -8.0

Every config dataclass here checks its own fields in ``__post_init__``
(:func:`drive_il.config.validate_fields`), so a scenario built in Python is held to the
same ranges as one loaded from TOML.

Units: metres, seconds, m/s; angles in TOML are in degrees where the key says so
(``fov_deg``, ``pitch_deg``, ``yaw_deg``, ``max_steer_deg``) and in radians inside.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from .config import R, ConfigError, from_dict, one_of, read_toml, to_dict, validate_fields
from .errors import FieldError
from .pipeline import PipelineConfig

__all__ = [
    "WEATHER_PRESETS",
    "TOWN_DRAWS",
    "CameraConfig",
    "VehicleConfig",
    "TrafficConfig",
    "LightsConfig",
    "RouteSpec",
    "TestConfig",
    "NoiseConfig",
    "NOISE_KINDS",
    "PipelineConfig",
    "Scenario",
    "load_scenario",
    "default_scenario_path",
    "SCENARIOS_DIR",
]

#: Weather presets, named as ``carla.WeatherParameters`` attributes.
WEATHER_PRESETS: tuple[str, ...] = (
    "ClearNoon", "CloudyNoon", "WetNoon", "WetCloudyNoon", "MidRainyNoon", "HardRainNoon",
    "SoftRainNoon", "ClearSunset", "CloudySunset", "WetSunset", "WetCloudySunset",
    "MidRainSunset", "HardRainSunset", "SoftRainSunset",
)

#: Repository folder with the shipped scenarios (next to the package in a checkout).
SCENARIOS_DIR = Path(__file__).resolve().parent.parent / "scenarios"


@dataclass(frozen=True)
class CameraConfig:
    """One RGB camera of the rig, mounted in CARLA's vehicle frame (relative to the
    vehicle's reference point, the bounding-box centre at ground level: x forward,
    y right, z up), as ``carla.Transform`` + ``sensor.camera.rgb`` attributes.

    Attributes:
        name: unique within the rig ("center", "left", "right", ...).
        width, height: image size [px] (``image_size_x``/``image_size_y``).
        fov_deg: horizontal field of view [deg] (``fov``).
        x, y, z: mount position [m].
        pitch_deg, yaw_deg: mount rotation [deg]; pitch + = up, yaw + = right.
    """

    name: str = "center"
    width: int = field(default=200, metadata=R(1, 8192))
    height: int = field(default=66, metadata=R(1, 8192))
    fov_deg: float = field(default=60.0, metadata=R(1.0, 170.0))
    x: float = field(default=1.4, metadata=R(-100.0, 100.0))
    y: float = field(default=0.0, metadata=R(-100.0, 100.0))
    z: float = field(default=1.5, metadata=R(0.2, 1000.0))
    pitch_deg: float = field(default=-8.0, metadata=R(-90.0, 90.0))
    yaw_deg: float = field(default=0.0, metadata=R(-180.0, 180.0))

    def __post_init__(self) -> None:
        validate_fields(self)

    @property
    def fov(self) -> float:
        """Horizontal field of view [rad]."""
        return math.radians(self.fov_deg)

    @property
    def pitch(self) -> float:
        """[rad]"""
        return math.radians(self.pitch_deg)

    @property
    def yaw(self) -> float:
        """[rad]"""
        return math.radians(self.yaw_deg)

    @property
    def focal_px(self) -> float:
        """Pinhole focal length [px]: width / (2 tan(fov/2)) (CARLA's convention)."""
        return self.width / (2.0 * math.tan(self.fov / 2.0))


@dataclass(frozen=True)
class VehicleConfig:
    """The ego vehicle: a mid-size car (defaults close to CARLA's Tesla Model 3).

    Attributes:
        blueprint: CARLA blueprint id (used by the CARLA backend).
        wheelbase: [m].
        length, width, height: bounding box [m].
        max_steer_deg: road-wheel angle at |steer| = 1 [deg].
        steer_time_constant: first-order lag of the road-wheel angle [s].
        max_steer_rate_deg: road-wheel angle rate limit [deg/s].
        max_acceleration: at full throttle from standstill [m/s^2].
        max_power_per_mass: engine power over mass [W/kg] (limits acceleration at speed).
        max_deceleration: at full brake [m/s^2].
        drag_coefficient: aerodynamic 0.5 rho Cd A / m [1/m].
        rolling_resistance: rolling resistance coefficient [-].
        max_speed: top speed [m/s].
    """

    blueprint: str = "vehicle.tesla.model3"
    wheelbase: float = field(default=2.9, metadata=R(1.0, 10.0))
    length: float = field(default=4.8, metadata=R(1.0, 20.0))
    width: float = field(default=1.9, metadata=R(0.5, 4.0))
    height: float = field(default=1.5, metadata=R(0.5, 5.0))
    max_steer_deg: float = field(default=35.0, metadata=R(5.0, 80.0))
    steer_time_constant: float = field(default=0.1, metadata=R(0.0, 2.0))
    max_steer_rate_deg: float = field(default=120.0, metadata=R(1.0, 2000.0))
    max_acceleration: float = field(default=3.5, metadata=R(0.1, 20.0))
    max_power_per_mass: float = field(default=60.0, metadata=R(1.0, 1000.0))
    max_deceleration: float = field(default=8.0, metadata=R(0.5, 30.0))
    drag_coefficient: float = field(default=0.00035, metadata=R(0.0, 0.1))
    rolling_resistance: float = field(default=0.015, metadata=R(0.0, 0.5))
    max_speed: float = field(default=50.0, metadata=R(1.0, 120.0))

    def __post_init__(self) -> None:
        validate_fields(self)

    @property
    def max_steer_angle(self) -> float:
        """[rad]"""
        return math.radians(self.max_steer_deg)


@dataclass(frozen=True)
class TrafficConfig:
    """NPC vehicles and pedestrians.

    Attributes:
        density: "custom" (the counts below) or a NoCrash traffic condition
            (Codevilla et al., ICCV 2019): "empty", "regular" or "dense", whose vehicle
            and walker counts per town replace ``vehicles`` and ``walkers``
            (:func:`drive_il.sim.density.traffic_counts`: NoCrash's counts for Town01/Town02,
            scaled by driving-lane length for other towns).
        vehicles: number of NPC vehicles spawned at reset.
        walkers: number of pedestrians spawned at reset (on sidewalks).
        walker_speed: pedestrians' mean walking speed [m/s] (CARLA's walker blueprints
            walk at 1.0-2.0 m/s).
        junction_crossing: probability that a walker reaching a junction corner
            crosses the road there (on the crossing) rather than turning along the
            sidewalk.
        midblock_crossing: probability per walker and minute of walking that it crosses
            the road away from any junction (jaywalking); 0 = never.
        target_speed: NPC desired speed [m/s] (IDM v0).
        speed_spread: NPC desired speeds are drawn uniformly in
            target_speed * [1 - spread, 1 + spread].
        min_gap: IDM standstill gap s0 [m].
        time_headway: IDM time headway T [s].
        acceleration: IDM maximum acceleration a [m/s^2].
        lateral_acceleration: NPCs slow down ahead of curves and junction turns to keep
            their lateral acceleration v^2 / r below this [m/s^2].

            The IDM defaults (s0 = 2 m and T = 1.0 s, the "city traffic" set of Treiber &
            Kesting, "Traffic Flow Dynamics", 2013, Table 11.2; a = 2.5 m/s^2; 3 m/s^2 in
            turns) are calibrated so that queues leave a green light near the Highway
            Capacity Manual's saturation flow (base saturation headway 1.9 s per through
            lane, turns slower): measured on Town01 with NoCrash dense traffic, 2.35 s per
            car through and 2.65-2.7 s turning, 3.9-4.1 cars per green + yellow from a
            queue of 4 or more (the older 2.5 m, 1.2 s, 1.5 m/s^2 and 2.5 m/s^2:
            3.15 / 3.3 s, 3.0 cars). The README's "Urban driving" has the figures.
            These four drive the embedded world's NPCs; on a CARLA server the Traffic
            Manager drives its own model, and only ``min_gap`` is passed on
            (``set_global_distance_to_leading_vehicle``).
        min_spawn_distance: NPCs spawn at least this far from the ego and each other [m].
        hybrid_radius: [m] 0 = every NPC moves every step; > 0 = NPCs farther than this
            from the ego move every 4th step (CARLA Traffic Manager's hybrid physics mode,
            ``set_hybrid_physics_radius``, default 50 m there): dense traffic costs a
            fraction of the time, and nothing changes near the ego.
        densities: several NoCrash conditions for training: each episode draws one
            uniformly from its seed (:func:`drive_il.rollout.towns.episode_scenario`, a
            stream of its own) and drives it as its ``density``; its file records the
            drawn one (``EpisodeMeta.density``). CARLA100, NoCrash's training set
            (Codevilla et al., ICCV 2019, Sec. 6), varies the vehicles and pedestrians
            per episode the same way. Empty = ``density`` for every episode; the test
            variant (:meth:`Scenario.test_scenario`) and NoCrash's cells clear it.
    """

    density: str = field(default="custom", metadata=one_of("custom", "empty", "regular", "dense",
                                                           doc="custom or a NoCrash condition"))
    vehicles: int = field(default=0, metadata=R(0, 500))
    walkers: int = field(default=0, metadata=R(0, 2000))
    walker_speed: float = field(default=1.4, metadata=R(0.3, 3.0))
    junction_crossing: float = field(default=0.5, metadata=R(0.0, 1.0))
    midblock_crossing: float = field(default=0.0, metadata=R(0.0, 60.0))
    target_speed: float = field(default=7.0, metadata=R(0.0, 40.0))
    speed_spread: float = field(default=0.2, metadata=R(0.0, 0.9))
    min_gap: float = field(default=2.0, metadata=R(0.5, 20.0))
    time_headway: float = field(default=1.0, metadata=R(0.1, 5.0))
    acceleration: float = field(default=2.5, metadata=R(0.3, 8.0))
    lateral_acceleration: float = field(default=3.0, metadata=R(0.5, 10.0))
    min_spawn_distance: float = field(default=12.0, metadata=R(5.0, 200.0))
    hybrid_radius: float = field(default=0.0, metadata=R(0.0, 10_000.0))
    densities: tuple[str, ...] = field(default=(), metadata=one_of("empty", "regular", "dense",
                                                                   doc="NoCrash conditions drawn per episode"))

    def __post_init__(self) -> None:
        validate_fields(self)   # each entry of densities a NoCrash condition (choices)
        check_unique("TrafficConfig", "densities", self.densities)


@dataclass(frozen=True)
class LightsConfig:
    """Traffic lights of the embedded world (a CARLA server runs its own).

    Where the town's OpenDRIVE has signals (type 1000001 with ``controller``s) those are
    used; otherwise every junction where at least three roads meet is signalised as
    CARLA places lights: one group per junction, one head per incoming road at its
    stop line, the heads taking turns (:mod:`drive_il.sim.embedded.lights`).

    Attributes:
        enabled: place and run traffic lights.
        green_s, yellow_s: [s] per head's turn (CARLA's defaults: 10 s, 3 s).
        red_s: all-red clearance after each head's yellow before the next head's green
            [s] (CARLA's default red time: 2 s); a head is red for the rest of the cycle.
        min_roads: the fewest roads meeting at a junction for it to be signalised when the
            OpenDRIVE has no signals (3: T, X and 5-way junctions; L junctions stay
            unsignalised).
        random_offset: start each junction's cycle at a phase drawn from the episode seed
            (False: every group starts with its first head green, as CARLA at load).
    """

    enabled: bool = False
    green_s: float = field(default=10.0, metadata=R(0.5, 600.0))
    yellow_s: float = field(default=3.0, metadata=R(0.0, 60.0))
    red_s: float = field(default=2.0, metadata=R(0.0, 60.0))
    min_roads: int = field(default=3, metadata=R(2, 8))
    random_offset: bool = True

    def __post_init__(self) -> None:
        validate_fields(self)


@dataclass(frozen=True)
class RouteSpec:
    """One explicit route: from ``start`` through ``via`` to ``goal`` (world x, y [m]).

    The start is projected onto the nearest driving lane (an error if farther than the
    lane's half width + 2 m from it: "spawn off the road"); the route is planned with A*
    over the lane graph (``drive_il.expert.route_planner``).

    Attributes:
        start: [x, y] [m].
        goal: [x, y] [m].
        via: intermediate [x, y] points, in order.
        start_yaw_deg: optional heading hint [deg] to choose the lane direction at start.
    """

    start: tuple[float, float]
    goal: tuple[float, float]
    via: tuple[tuple[float, float], ...] = ()
    start_yaw_deg: float | None = None

    def __post_init__(self) -> None:
        validate_fields(self)


@dataclass(frozen=True)
class TestConfig:
    """Where the learner is evaluated: overrides applied to the training scenario.

    Attributes:
        town: test town (None = the training town).
        towns: several test towns (same syntax as ``Scenario.towns``); each test episode
            draws one from its seed; evaluation reports per town and overall. Empty =
            ``town``.
        routes: explicit test routes (empty = random routes from ``seed``).
        route_length: random test route length [m] (None = the scenario's).
        seed: base seed of the test episodes (distinct from training by default).
        episodes: test episodes per evaluation seed.
        weathers: weather presets the learner is evaluated in ("train" weather first).
        unseen_weathers: presets never used for training, reported separately.
        traffic_vehicles: NPCs in test episodes (None = the scenario's).
    """

    town: str | None = None
    towns: tuple[str, ...] = ()
    routes: tuple[RouteSpec, ...] = ()
    route_length: float | None = field(default=None, metadata=R(20.0, 100_000.0))
    seed: int = field(default=10_000, metadata=R(0, 2**31 - 1))
    episodes: int = field(default=3, metadata=R(1, 10_000))
    weathers: tuple[str, ...] = ()
    unseen_weathers: tuple[str, ...] = ()
    traffic_vehicles: int | None = field(default=None, metadata=R(0, 500))

    def __post_init__(self) -> None:
        validate_fields(self)
        check_town_specs("TestConfig", "towns", self.towns)
        if self.towns and self.routes:
            raise FieldError("TestConfig", "towns", "explicit routes belong to one town: give routes or towns, not both")


#: Noise-injection recipes (see :mod:`drive_il.data.noise`, which applies them).
NOISE_KINDS: tuple[str, ...] = ("triangular", "gaussian")


@dataclass(frozen=True)
class NoiseConfig:
    """Noise injection into the expert's executed control while collecting (the
    ``[noise]`` table; the injector is :class:`drive_il.data.noise.NoiseInjector`).

    Attributes:
        episode_share: share of episodes with noise, in [0, 1] (0.2 in CIL and Roach).
        kind: "triangular" (CIL spikes) or "gaussian" (DART).
        magnitude: triangular: peak steering offset; gaussian: standard deviation of
            the steering offset (``Control.steer`` units, 1 = full lock). Default 0.2:
            on the default circuit (35 deg max steer, 8 m/s) it makes the expert
            recover from ~0.1-0.3 m mean lateral deviation and still complete its routes; 0.3
            drove it off the road.
        duration: length of one triangular spike [s].
        interval: mean time between the end of a spike and the start of the next [s]
            (exponentially distributed gaps).
        correlation_time: gaussian: time constant of the AR(1) correlation [s]
            (0 = independent noise at every step).
        throttle_magnitude: triangular: peak offset of the longitudinal command
            (throttle - brake) with the same envelope, its sign drawn per spike (0 =
            steering only): a push releases the brake first, so a car the expert holds at
            a stop creeps forward, and a negative offset brakes once the throttle is gone.
            The labels stay the expert's (its target speed too): the longitudinal
            counterpart of the steering spikes' recovery data.
    """

    episode_share: float = field(default=0.2, metadata=R(0.0, 1.0, "share of noisy episodes"))
    kind: str = field(default="triangular", metadata=one_of(*NOISE_KINDS, doc="triangular or gaussian"))
    magnitude: float = field(default=0.2, metadata=R(0.0, 2.0, "peak (triangular) or std (gaussian) steer offset"))
    duration: float = field(default=1.0, metadata=R(0.01, 60.0, "spike length [s]"))
    interval: float = field(default=5.0, metadata=R(0.0, 3600.0, "mean gap between spikes [s]"))
    correlation_time: float = field(default=0.0, metadata=R(0.0, 60.0, "gaussian AR(1) time constant [s]"))
    throttle_magnitude: float = field(default=0.0, metadata=R(0.0, 1.0, "peak throttle offset"))

    def __post_init__(self) -> None:
        validate_fields(self)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (for ``EpisodeInfo.noise`` and the episode file)."""
        return to_dict(self)


def _default_cameras() -> tuple[CameraConfig, ...]:
    return (CameraConfig(),)


def _no_noise() -> NoiseConfig:
    return NoiseConfig(episode_share=0.0)


#: Longest scenario name; the names are used in output paths, so only a safe set of
#: characters is allowed (no '/', no leading '.'); the test variant adds "-test".
def towns_label(town: str, towns: Sequence[str] = ()) -> str:
    """Where a scenario drives, for messages and reports: its ``towns`` joined by ", ",
    else its ``town`` (also for a scenario stored as a dict in a run's JSON)."""
    return ", ".join(towns) if towns else town


#: How an episode picks its entry of ``Scenario.towns`` (see ``Scenario.town_draw``).
TOWN_DRAWS: tuple[str, ...] = ("uniform", "cycle")

#: A town entry of ``towns``: a name, or a procedural seed or seed range.
_TOWN_SPEC = re.compile(r"procedural:(\d+)(?:-(\d+))?")


def check_unique(cls: str, name: str, values: tuple) -> None:
    """Raise ``FieldError`` (one line, ``"<cls>: field '<name>': 'x' is listed twice"``)
    for the first entry of ``values`` that repeats an earlier one."""
    seen = set()
    for v in values:
        if v in seen:
            raise FieldError(cls, name, f"{v!r} is listed twice")
        seen.add(v)


def check_town_specs(cls: str, name: str, specs: tuple[str, ...]) -> None:
    """Check the syntax of a towns list (names exist or not: checked when loaded).

    Raises:
        FieldError: an empty entry, ``procedural:`` without a seed or with a bad or empty
            range (``procedural:abc``, ``procedural:5-2``), or a duplicate entry (one line).
    """
    for spec in specs:
        if not isinstance(spec, str) or not spec.strip():
            raise FieldError(cls, name, f"expected town names, got {spec!r}")
        if spec.startswith("procedural:"):
            m = _TOWN_SPEC.fullmatch(spec)
            if m is None:
                raise FieldError(cls, name, f"{spec!r}: expected procedural:SEED or procedural:FIRST-LAST "
                                            "(non-negative integers)")
            if m.group(2) is not None and int(m.group(2)) < int(m.group(1)):
                raise FieldError(cls, name, f"{spec!r}: an empty range (FIRST must be <= LAST)")
    check_unique(cls, name, specs)


NAME_MAX = 64
_SAFE_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,%d}" % (NAME_MAX + len("-test") - 1))


@dataclass(frozen=True)
class Scenario:
    """Where and in what conditions we drive.

    Attributes:
        name: scenario name (used for run directories and file names): at most
            :data:`NAME_MAX` of ``A-Z a-z 0-9 _ . -``, not starting with '.'.
        town: a generated town ("circuit", "grid", "procedural:<seed>") or an OpenDRIVE
            town name resolved in the maps directory (e.g. "Town01"); see
            :func:`drive_il.maps.load_town`.
        towns: several training towns: each episode draws one from its seed
            (:func:`drive_il.rollout.towns.episode_scenario`: an entry as ``town_draw``
            says, then a town of a range uniformly), e.g. ``["Town01", "procedural:0-499"]``; an entry
            is a town name or a range ``procedural:A-B`` (A <= B). Empty = ``town``.
        town_draw: how an episode picks its entry of ``towns``: "uniform" (each entry
            with probability 1/len(towns), drawn from the episode seed) or "cycle" (the
            entry ``seed mod len(towns)``: consecutive episode seeds take the entries in
            turn, so every DAgger round of n episodes holds each entry n/len(towns)
            times, up to one); a range's town is drawn from the seed either way.
        weather: a preset of :data:`WEATHER_PRESETS`.
        weathers: several training weathers (presets): each episode draws one uniformly
            from its seed (:func:`drive_il.rollout.towns.episode_scenario`, a stream of its
            own, so the town draw is the same with or without it), e.g. NoCrash's four
            training weathers (Codevilla et al., ICCV 2019: ClearNoon, WetNoon,
            HardRainNoon, ClearSunset). Empty = ``weather``. The test variant
            (:meth:`test_scenario`) drives its own weathers.
        dt: fixed simulation step [s] (CARLA: never above 0.1 s).
        episode_seconds: episode time limit [s] (the episode also ends when the route
            is completed).
        seed: base seed; episode i uses seed + i.
        routes: explicit routes; episode i uses routes[i % len(routes)]. Empty = random
            routes of ``route_length`` metres drawn from the episode seed.
        route_length: random route length [m].
        target_speed: cruise speed for learners and the default expert speed [m/s].
        command_lead: metres before a junction on which the route's turn command
            (LEFT/RIGHT/STRAIGHT) is already set; 0 = on the junction only, as CARLA's
            agents set it (see :mod:`drive_il.expert.route_planner`).
        cameras: the camera rig.
        vehicle: the ego vehicle.
        traffic: NPC vehicles and pedestrians.
        lights: traffic lights (embedded world).
        expert: expert preset (name in ``experts/`` or a path).
        noise: noise injection into the expert's executed control while collecting
            demonstrations (CIL triangular spikes or DART Gaussian noise; the stored label
            stays the expert's clean control); ``episode_share = 0`` (the default) turns
            it off.
        test: where learners are evaluated.
        pipeline: the DAgger pipeline ``drive-il run``/``dagger`` runs
            (:class:`~drive_il.pipeline.PipelineConfig`).
        source: the file this scenario came from ("" if built in code).
    """

    name: str = "default"
    town: str = "circuit"
    towns: tuple[str, ...] = ()
    town_draw: str = field(default="uniform", metadata={"choices": TOWN_DRAWS})
    weather: str = field(default="ClearNoon", metadata={"choices": WEATHER_PRESETS})
    weathers: tuple[str, ...] = field(default=(), metadata={"choices": WEATHER_PRESETS})
    dt: float = field(default=0.05, metadata=R(0.001, 0.1))
    episode_seconds: float = field(default=60.0, metadata=R(0.1, 36_000.0))
    seed: int = field(default=0, metadata=R(0, 2**31 - 1))
    routes: tuple[RouteSpec, ...] = ()
    route_length: float = field(default=400.0, metadata=R(20.0, 100_000.0))
    target_speed: float = field(default=8.0, metadata=R(0.5, 40.0))
    command_lead: float = field(default=10.0, metadata=R(0.0, 100.0))
    cameras: tuple[CameraConfig, ...] = field(default_factory=_default_cameras)
    vehicle: VehicleConfig = field(default_factory=VehicleConfig)
    traffic: TrafficConfig = field(default_factory=TrafficConfig)
    lights: LightsConfig = field(default_factory=LightsConfig)
    expert: str = "default"
    noise: NoiseConfig = field(default_factory=_no_noise)
    test: TestConfig = field(default_factory=TestConfig)
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)
    source: str = field(default="", metadata={"internal": True})

    def __post_init__(self) -> None:
        validate_fields(self)
        if (not _SAFE_NAME.fullmatch(self.name)  # it names files and folders
                or len(self.name.removesuffix("-test")) > NAME_MAX):
            raise FieldError("Scenario", "name",
                             f"expected 1 to {NAME_MAX} of the characters A-Z a-z 0-9 _ . - "
                             f"(not starting with '.'), got {self.name!r}")
        if not self.cameras:
            raise FieldError("Scenario", "cameras", "at least one camera is required")
        names = [c.name for c in self.cameras]
        if len(set(names)) != len(names):
            raise FieldError("Scenario", "cameras", f"camera names must be unique, got {names}")
        check_town_specs("Scenario", "towns", self.towns)
        if self.towns and self.routes:
            raise FieldError("Scenario", "towns", "explicit routes belong to one town: give routes or towns, not both")
        check_unique("Scenario", "weathers", self.weathers)   # each one a preset: validate_fields (choices)
        for w in (*self.test.weathers, *self.test.unseen_weathers):
            if w not in WEATHER_PRESETS:
                raise FieldError("Scenario", "test.weathers",
                                 f"unknown weather preset {w!r} (known: {', '.join(WEATHER_PRESETS)})")

    @property
    def where(self) -> str:
        """Where episodes drive, for messages (:func:`towns_label`)."""
        return towns_label(self.town, self.towns)

    @property
    def max_steps(self) -> int:
        """Episode step limit: ceil(episode_seconds / dt)."""
        return int(math.ceil(self.episode_seconds / self.dt - 1e-9))

    def replace(self, **changes: Any) -> "Scenario":
        """A copy with fields replaced (dataclasses.replace)."""
        return dataclasses.replace(self, **changes)

    def test_scenario(self, weather: str | None = None) -> "Scenario":
        """The evaluation variant: the test town, routes and seed applied.

        Args:
            weather: override the weather (default: first of ``test.weathers`` or the
                scenario's own ``weather``; a training ``weathers`` list is cleared, so
                every test episode drives that one weather; so is ``traffic.densities``:
                the test drives ``traffic.density``).
        """
        t = self.test
        w = weather or (t.weathers[0] if t.weathers else self.weather)
        traffic = dataclasses.replace(self.traffic, densities=()) if self.traffic.densities else self.traffic
        if t.traffic_vehicles is not None:
            traffic = dataclasses.replace(traffic, vehicles=t.traffic_vehicles)
        return dataclasses.replace(
            self,
            name=f"{self.name}-test",
            town=t.town or (t.towns[0] if t.towns else self.town),
            towns=t.towns if t.towns else (() if t.town else self.towns),
            routes=t.routes if (t.routes or t.town or t.towns) else self.routes,
            route_length=t.route_length or self.route_length,
            seed=t.seed,
            weather=w,
            weathers=(),
            traffic=traffic,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (TOML/JSON-able) of this scenario."""
        d = to_dict(self)
        d.pop("source", None)
        return d


def scenario_from_dict(data: dict[str, Any], *, source: str = "<scenario>") -> Scenario:
    """Build a Scenario from a parsed TOML mapping (strict)."""
    sc = from_dict(Scenario, data, source=source)
    return dataclasses.replace(sc, source=source)


def default_scenario_path() -> Path:
    """``scenarios/default.toml`` of the checkout."""
    return SCENARIOS_DIR / "default.toml"


def load_scenario(path: str | Path | None = None) -> Scenario:
    """Load a scenario TOML file strictly; ``None`` loads the default scenario.

    A bare name (no ``.toml`` suffix, no directory) is looked up in ``scenarios/``.

    Raises:
        ConfigError: file missing, empty (no key at all), invalid TOML, unknown key,
            bad value (one line naming the file and field).
    """
    if path is None:
        p = default_scenario_path()
        if not p.exists():
            return Scenario(source="<built-in default>")
    else:
        p = Path(path)
        if not p.exists() and p.suffix == "" and len(p.parts) == 1:
            cand = SCENARIOS_DIR / f"{p}.toml"
            if cand.exists():
                p = cand
        if not p.exists():
            raise ConfigError(f"{p}: scenario file not found")
    data = read_toml(p)
    if not data:  # built-in defaults are not default.toml's: say so rather than drive them
        raise ConfigError(f"{p}: empty scenario file; copy scenarios/default.toml and change what "
                          f"differs (or give no scenario for the default one)")
    return scenario_from_dict(data, source=str(p))
