"""The NoCrash benchmark protocol (Codevilla et al., "Exploring the Limitations of Behavior
Cloning for Autonomous Driving", ICCV 2019) on our worlds, scored with the CARLA
leaderboard's driving score.

The grid: for every test town of the scenario, ``routes`` routes (NoCrash: 25) x the
traffic conditions {empty, regular, dense} (``TrafficConfig.density``, resolved to vehicle
and walker counts by the simulator) x the weather sets {training weathers, new weathers};
every weather of a set drives every route.

* **Weathers.** NoCrash uses the CARLA 0.8 weather ids of the CoRL2017 / "CARLA100"
  suite (``driving-benchmarks``, ``version084/driving_benchmarks/carla100/carla100.py``):
  training 1, 3, 6, 8 and new 10, 14. In CARLA 0.8's numbering those are ClearNoon,
  WetNoon, HardRainNoon, ClearSunset and WetSunset, SoftRainSunset; the CARLA 0.9 port of
  NoCrash (``version09x/benchmarks/nocrash.py``) names the same presets. All six are
  ``carla.WeatherParameters`` presets, and ours (:data:`drive_il.scenario.WEATHER_PRESETS`)
  carry the same names, so the mapping is one to one: :data:`TRAIN_WEATHERS`,
  :data:`NEW_WEATHERS`.
* **Routes.** NoCrash drives CoRL2017's 25 navigation routes per town (start and goal
  spawn points of the CARLA 0.8 towns). Ours: a scenario's explicit test routes when it
  has them (route r = ``test.routes[r % len]``), else random routes of the test scenario's
  ``route_length`` (the shipped NoCrash scenarios use 400 m) drawn from the fixed seeds
  ``test.seed + r``, r = 0 .. routes - 1 (:func:`drive_il.routing.episode.plan_episode`).
  The route depends on the seed and the town only, so every policy, traffic condition and
  weather drives the same routes.
* **Time limit** (:func:`time_limit`): the CARLA 0.8 benchmark's NoCrash suite
  (``CARLA100.calculate_time_out``): route length [km] / 5 km/h x 3600 s/h + 20 s ("this
  timeout is increased since stop for traffic lights is expected"; CoRL2017 used 10 km/h
  + 10 s). The benchmark measures the route as the planner's shortest path from start to
  goal; ours is the planned route's length.
* **Success** (:func:`outcome`): the goal reached (within 2 m, the 0.8 runner's
  ``distance_for_success``) before the time limit, with no collision. NoCrash ends an
  episode at its first collision (``collision_as_failure``) with a vehicle, a pedestrian
  or static geometry; red lights do not end it (``traffic_light_as_failure = False``) but
  are counted. The policy drives alone: no expert interventions. Leaving the road is the
  embedded world's collision with the layout (static geometry) and ends the episode too;
  leaving the route by more than 8 m (``off_route``) ends it as a failure of its own.
  Standing still is allowed until the time limit (waiting at a red light or behind a
  vehicle), so the stuck rule is off.
* **Scores**: success rate per condition (town x traffic x weather set), timeouts,
  collisions by kind (vehicle, pedestrian, layout), red lights run per km and the CARLA
  leaderboard's driving score (:func:`drive_il.metrics.driving_score`: route completion x
  0.50 per pedestrian, 0.60 per vehicle, 0.65 per layout collision, 0.70 per red light),
  infractions per km = count / max(route completion / 100 x route km, 0.001).

Everything runs through :func:`drive_il.evaluation.evaluate.evaluate` (one call per town,
traffic condition and weather, with its pool), with a :class:`~drive_il.rollout.RolloutSpec`
that says the NoCrash rules and a :class:`NoCrashObserver` per episode.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Sequence

from ..metrics import Infractions, count_infractions, driving_score, infractions_per_km
from ..rollout import RolloutSpec, TerminationRules
from ..scenario import Scenario
from ..types import EventKind, StepRecord

__all__ = ["TRAIN_WEATHERS", "NEW_WEATHERS", "WEATHER_SETS", "DENSITIES", "ROUTES", "OUTCOMES",
           "AVERAGE_SPEED_KMH", "TIME_LIMIT_MARGIN_S", "SUCCESS_DISTANCE", "time_limit", "outcome",
           "NoCrashStop", "NoCrashObserver", "nocrash_spec", "Condition", "conditions", "condition_summary",
           "NoCrashReport", "run_nocrash", "format_table", "markdown_table"]

#: NoCrash's training weathers: CARLA 0.8 ids 1, 3, 6, 8.
TRAIN_WEATHERS: tuple[str, ...] = ("ClearNoon", "WetNoon", "HardRainNoon", "ClearSunset")
#: NoCrash's new (test) weathers: CARLA 0.8 ids 10, 14.
NEW_WEATHERS: tuple[str, ...] = ("WetSunset", "SoftRainSunset")
#: Weather set name -> presets ("train": the training weathers, "new": the new weathers).
WEATHER_SETS: dict[str, tuple[str, ...]] = {"train": TRAIN_WEATHERS, "new": NEW_WEATHERS}
#: NoCrash's traffic conditions (``TrafficConfig.density``).
DENSITIES: tuple[str, ...] = ("empty", "regular", "dense")
#: Routes per town, traffic condition and weather in NoCrash.
ROUTES = 25
#: Average speed of the time limit [km/h] (CARLA 0.8 ``CARLA100.calculate_time_out``).
AVERAGE_SPEED_KMH = 5.0
#: Constant of the time limit [s] (same source).
TIME_LIMIT_MARGIN_S = 20.0
#: Distance to the goal that counts as arrived [m] (CARLA 0.8 benchmark runner's
#: ``distance_for_success``).
SUCCESS_DISTANCE = 2.0
#: How a NoCrash episode ends, in the order :func:`outcome` decides: "success", a
#: collision ("walker", "vehicle", "layout"), "off_route", "timeout".
OUTCOMES: tuple[str, ...] = ("success", "walker", "vehicle", "layout", "off_route", "timeout")


def time_limit(route_length_m: float) -> float:
    """NoCrash's time limit of a route [s]: length [km] / 5 km/h x 3600 s/h + 20 s, i.e.
    0.72 s per metre + 20 s (CARLA 0.8 benchmark, ``CARLA100.calculate_time_out``).

    Raises:
        ValueError: a negative or non-finite length.
    """
    if not (math.isfinite(route_length_m) and route_length_m >= 0):
        raise ValueError(f"time_limit: route_length_m must be a length >= 0 m, got {route_length_m!r}")
    return route_length_m / 1000.0 / AVERAGE_SPEED_KMH * 3600.0 + TIME_LIMIT_MARGIN_S


def outcome(termination: str, infractions: Infractions) -> str:
    """How a NoCrash episode ended (one of :data:`OUTCOMES`).

    Success is the goal reached with no collision; otherwise the first collision's kind
    (a pedestrian before a vehicle before the layout when one step had several), then
    ``off_route``, else ``timeout`` (the time limit ran out, or the step limit).

    Args:
        termination: the rollout's termination reason (:data:`drive_il.rollout.TERMINATIONS`).
        infractions: the episode's infractions (red lights do not decide it).
    """
    if termination == "route_completed" and infractions.collisions == 0:
        return "success"
    if infractions.collision_kind is not None:
        return infractions.collision_kind
    if termination == "off_route":
        return "off_route"
    return "timeout"


class NoCrashStop:
    """The NoCrash stop rule for :class:`~drive_il.rollout.TerminationRules` ``stop``:
    True (the episode ends, termination "stopped") at a collision with a pedestrian (a
    vehicle collision and leaving the road end it by the rollout's own rules) or when the
    route's time limit (:func:`time_limit` of ``world_state.route.length``) has run out
    after the step. Stateless and picklable, so rollout workers run it."""

    def __call__(self, record: StepRecord) -> bool:
        if any(e.kind is EventKind.WALKER_COLLISION for e in record.events):
            return True
        ws = record.step.world_state
        if ws.route is None:
            return False
        return ws.sim_time + ws.dt >= time_limit(ws.route.length) - 1e-9

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NoCrashStop)

    def __hash__(self) -> int:
        return hash(NoCrashStop)


def nocrash_spec(driver: str, scenario: Scenario) -> RolloutSpec:
    """The rollout spec of a NoCrash episode: ``driver`` ("learner" or "expert") drives
    alone (no interventions), the first collision or leaving the road ends it, the
    :class:`NoCrashStop` rule ends it at a pedestrian collision or the time limit, the goal
    counts within :data:`SUCCESS_DISTANCE`, standing still is allowed. The step limit is a
    backstop only: the time limit of a route four times the scenario's route length (at
    least 5 km).

    Raises:
        ValueError: a driver other than "learner" or "expert".
    """
    if driver not in ("learner", "expert"):
        raise ValueError(f"nocrash_spec: driver must be 'learner' or 'expert', got {driver!r}")
    backstop = time_limit(max(4.0 * scenario.route_length, 5000.0))
    rules = TerminationRules(completion_margin=SUCCESS_DISTANCE, stuck_seconds=math.inf, stop=NoCrashStop())
    return RolloutSpec(driver=driver, interventions=None, max_steps=math.ceil(backstop / scenario.dt),
                       termination=rules)


class NoCrashObserver:
    """Per-episode NoCrash bookkeeping from ``StepRecord.events`` (so it needs no episode
    file): infractions by kind, the route's length and time limit, the outcome and the
    leaderboard's driving score. After the episode, ``row`` holds ``{"nocrash": {...}}``
    (merged into the evaluation's episode row): outcome, success, route_length [m],
    time_limit [s], elapsed_s, route_completion [%], vehicle, walker, layout (collision
    counts), red_lights, red_lights_per_km (leaderboard), driving_score [%]."""

    def __init__(self) -> None:
        self.row: dict[str, Any] = {}
        self._events: list[tuple] = []
        self._steps = 0
        self._dt = 0.0
        self._length = 0.0

    def on_episode_start(self, info, first) -> None:
        self.row, self._events, self._steps = {}, [], 0
        self._dt = float(first.world_state.dt)
        route = first.world_state.route
        self._length = float(route.length) if route is not None else 0.0

    def on_step(self, record: StepRecord) -> None:
        self._steps += 1
        if record.events:
            self._events.append(record.events)

    def on_episode_end(self, result) -> None:
        inf = count_infractions(self._events)
        completion = float(result.summary.get("route_completion", 0.0))
        how = outcome(result.termination, inf)
        self.row = {"nocrash": {
            "outcome": how, "success": how == "success", "route_length": self._length,
            "time_limit": time_limit(self._length), "elapsed_s": self._steps * self._dt,
            "route_completion": completion, "vehicle": inf.vehicle, "walker": inf.walker, "layout": inf.layout,
            "red_lights": inf.red_light,
            "red_lights_per_km": infractions_per_km(inf.red_light, completion, self._length),
            "driving_score": driving_score(completion, vehicle=inf.vehicle, walker=inf.walker, layout=inf.layout,
                                           red_light=inf.red_light),
        }}


@dataclass(frozen=True)
class Condition:
    """One cell of the NoCrash grid.

    Attributes:
        town: the test town (a name, or a ``procedural:A-B`` range entry of ``towns``).
        density: "empty", "regular" or "dense".
        weather_set: "train" or "new".
        weather: the preset driven.
        scenario: the scenario of this cell (test town, seed, routes, density, weather).
    """

    town: str
    density: str
    weather_set: str
    weather: str
    scenario: Scenario = field(repr=False)


def conditions(test: Scenario, *, densities: Sequence[str] = DENSITIES,
               weather_sets: Sequence[str] = tuple(WEATHER_SETS)) -> list[Condition]:
    """The NoCrash grid of a test scenario (``Scenario.test_scenario()``): town x density x
    weather set x weather, in that order.

    Args:
        test: the test scenario: its ``towns`` (else ``town``), ``seed`` (route r is driven
            with seed ``seed + r``), routes or ``route_length``, traffic.
        densities: subset of :data:`DENSITIES`.
        weather_sets: subset of :data:`WEATHER_SETS` ("train", "new").

    Raises:
        ValueError: an unknown density or weather set, or an empty or repeated selection
            (one line naming it).
    """
    for name, got, known in (("density", densities, DENSITIES), ("weather set", weather_sets, tuple(WEATHER_SETS))):
        if not got:
            raise ValueError(f"NoCrash: no {name} selected (known: {', '.join(known)})")
        for v in got:
            if v not in known:
                raise ValueError(f"NoCrash: unknown {name} {v!r} (known: {', '.join(known)})")
        if len(set(got)) != len(got):
            raise ValueError(f"NoCrash: a {name} is listed twice in {list(got)}")
    towns = test.towns or (test.town,)
    out = []
    for town in towns:
        where = test.replace(towns=(town,)) if town.startswith("procedural:") and "-" in town else \
            test.replace(town=town, towns=())
        for d in densities:
            traffic = dataclasses.replace(where.traffic, density=d)
            for ws in weather_sets:
                for w in WEATHER_SETS[ws]:
                    out.append(Condition(town=town, density=d, weather_set=ws, weather=w,
                                         scenario=where.replace(traffic=traffic, weather=w)))
    return out


def condition_summary(episodes: Sequence[dict]) -> dict[str, float]:
    """The NoCrash figures of a set of episode rows (each with a ``nocrash`` dict as
    :class:`NoCrashObserver` writes it).

    Returns:
        episodes, successes, success_rate [%], timeouts, off_route, vehicle, walker, layout
        (collisions by kind, at most one per episode since the first ends it),
        red_lights, completed_km (route completion / 100 x route km, summed),
        red_lights_per_km (leaderboard: red lights / max(completed km, 0.001)),
        route_completion [%] and driving_score [%] (means over the episodes; NaN without
        episodes).
    """
    rows = [e["nocrash"] for e in episodes]
    n = len(rows)
    count = {k: sum(1 for r in rows if r["outcome"] == k) for k in OUTCOMES}
    km = float(sum(r["route_completion"] / 100.0 * r["route_length"] / 1000.0 for r in rows))
    red = int(sum(r["red_lights"] for r in rows))
    nan = float("nan")
    return {
        "episodes": float(n), "successes": float(count["success"]),
        "success_rate": 100.0 * count["success"] / n if n else nan,
        "timeouts": float(count["timeout"]), "off_route": float(count["off_route"]),
        "vehicle": float(sum(r["vehicle"] for r in rows)), "walker": float(sum(r["walker"] for r in rows)),
        "layout": float(sum(r["layout"] for r in rows)), "red_lights": float(red), "completed_km": km,
        "red_lights_per_km": red / max(km, 0.001),
        "route_completion": float(sum(r["route_completion"] for r in rows) / n) if n else nan,
        "driving_score": float(sum(r["driving_score"] for r in rows) / n) if n else nan,
    }


@dataclass(frozen=True)
class NoCrashReport:
    """Result of :func:`run_nocrash` (stored as JSON beside the evaluation reports).

    Attributes:
        scenario: the scenario's name.
        policy: what drove: a checkpoint path, or "expert".
        routes: routes per town, traffic condition and weather.
        route_length: random test route length [m] (explicit routes: their own).
        seed: seed of route 0 (route r: seed + r).
        densities: traffic conditions driven.
        weather_sets: weather set -> presets driven.
        conditions: one dict per (town, density, weather set): town, density,
            weather_set, weathers and :func:`condition_summary`'s figures.
        episodes: one dict per episode: town, density, weather_set, weather, seed,
            termination, the ``nocrash`` dict of :class:`NoCrashObserver` and the rollout's
            summary metrics.
        collisions: one dict per collision (vehicle, walker or layout; an episode ends at
            its first): the row of :class:`~drive_il.evaluation.trace.InterventionTrace`
            (where, what was hit and from where, the learner's steer and target speed
            against the expert's over the 1.5 s before) with town, density, weather_set
            and weather; ``drive-il eval --protocol nocrash --trace`` prints them.
        timeouts: one dict per episode that timed out (no collision, goal not reached):
            the trace's ``"timeout"`` row (its longest standstill: where, how long, the
            learner's and the expert's target speed, what the expert stops for, what
            stood ahead) with town, density, weather_set and weather; printed by
            ``--trace`` too.
    """

    scenario: str
    policy: str
    routes: int
    route_length: float
    seed: int
    densities: tuple[str, ...]
    weather_sets: dict[str, tuple[str, ...]]
    conditions: tuple[dict, ...]
    episodes: tuple[dict, ...] = field(default=(), repr=False)
    collisions: tuple[dict, ...] = field(default=(), repr=False)
    timeouts: tuple[dict, ...] = field(default=(), repr=False)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["protocol"] = "nocrash"
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "NoCrashReport":
        """The report of a dict written by :meth:`to_dict` (read back from JSON).

        Raises:
            ValueError: not a NoCrash report (no ``protocol = "nocrash"``) or a missing key.
        """
        if d.get("protocol") != "nocrash":
            raise ValueError(f"not a NoCrash report: protocol is {d.get('protocol')!r}")
        try:
            return cls(scenario=d["scenario"], policy=d["policy"], routes=int(d["routes"]),
                       route_length=float(d["route_length"]), seed=int(d["seed"]),
                       densities=tuple(d["densities"]),
                       weather_sets={k: tuple(v) for k, v in d["weather_sets"].items()},
                       conditions=tuple(_nan(c) for c in d["conditions"]), episodes=tuple(d.get("episodes", ())),
                       collisions=tuple(d.get("collisions", ())), timeouts=tuple(d.get("timeouts", ())))
        except KeyError as e:
            raise ValueError(f"NoCrash report: missing key {e.args[0]!r}") from None


def _nan(c: dict) -> dict:
    # JSON stores NaN as null (drive_il.rollout.jsonable)
    return {k: (float("nan") if v is None else v) for k, v in c.items()}


def run_nocrash(sim, test: Scenario, *, learner, expert, driver: str = "learner", routes: int = ROUTES,
                densities: Sequence[str] = DENSITIES, weather_sets: Sequence[str] = tuple(WEATHER_SETS),
                pool: Any = None, policy: str = "", progress: bool = False) -> NoCrashReport:
    """Drive the NoCrash grid of a test scenario and score it.

    Args:
        sim: the simulator (unused with a ``pool``).
        test: the test scenario (``Scenario.test_scenario()``).
        learner: the learner Driver (None with ``driver="expert"``).
        expert: the expert Driver (it drives with ``driver="expert"``; it labels otherwise).
        driver: "learner" or "expert".
        routes: routes per town, traffic condition and weather (NoCrash: 25).
        densities, weather_sets: the part of the grid to drive (default: all of it).
        pool: a rollout pool (``--workers``), as :func:`~drive_il.evaluation.evaluate.evaluate`.
        policy: label for the report (default: "expert" or "learner").
        progress: a progress bar per condition.

    Raises:
        ValueError: routes < 1, an unknown density or weather set, a bad driver.
    """
    from .evaluate import evaluate

    if routes < 1:
        raise ValueError(f"NoCrash: routes must be >= 1, got {routes}")
    grid = conditions(test, densities=densities, weather_sets=weather_sets)
    spec = nocrash_spec(driver, test)
    episodes: list[dict] = []
    collisions: list[dict] = []
    timeouts: list[dict] = []
    for c in grid:
        rep = evaluate(sim, c.scenario, learner=learner if driver == "learner" else None, expert=expert, seeds=1,
                       episodes=routes, spec=spec, extra_observers=lambda: (NoCrashObserver(),), pool=pool,
                       progress=progress, checkpoint=policy)
        meta = {"town": c.town, "density": c.density, "weather_set": c.weather_set, "weather": c.weather}
        episodes.extend({**e, **meta, "drawn_town": e["town"]} for e in rep.episodes)
        for row in rep.interventions:
            (timeouts if row["cause"] == "timeout" else collisions).append({**meta, **row})
    cells: list[dict] = []
    for town in dict.fromkeys(c.town for c in grid):
        for d in densities:
            for ws in weather_sets:
                eps = [e for e in episodes if e["town"] == town and e["density"] == d and e["weather_set"] == ws]
                cells.append({"town": town, "density": d, "weather_set": ws, "weathers": list(WEATHER_SETS[ws]),
                              **condition_summary(eps)})
    return NoCrashReport(scenario=test.name, policy=policy or driver, routes=int(routes),
                         route_length=float(test.route_length), seed=int(test.seed), densities=tuple(densities),
                         weather_sets={ws: WEATHER_SETS[ws] for ws in weather_sets}, conditions=tuple(cells),
                         episodes=tuple(episodes), collisions=tuple(collisions), timeouts=tuple(timeouts))


#: Table columns: (header, condition key, format).
_COLUMNS = (("success [%]", "success_rate", "{:.1f}"), ("episodes", "episodes", "{:.0f}"),
            ("timeouts", "timeouts", "{:.0f}"), ("vehicle coll.", "vehicle", "{:.0f}"),
            ("pedestrian coll.", "walker", "{:.0f}"), ("layout coll.", "layout", "{:.0f}"),
            ("off route", "off_route", "{:.0f}"),
            ("red lights/km", "red_lights_per_km", "{:.2f}"), ("route compl. [%]", "route_completion", "{:.1f}"),
            ("driving score", "driving_score", "{:.1f}"))


def _cells(rep: NoCrashReport) -> tuple[list[str], list[list[str]]]:
    head = ["town", "traffic", "weathers", *(h for h, _, _ in _COLUMNS)]
    body = []
    for c in rep.conditions:
        vals = []
        for _, key, fmt in _COLUMNS:
            v = c.get(key)
            vals.append("-" if v is None or (isinstance(v, float) and math.isnan(v)) else fmt.format(v))
        body.append([str(c["town"]), str(c["density"]), str(c["weather_set"]), *vals])
    return head, body


def _intro(rep: NoCrashReport) -> str:
    sets = "; ".join(f"{k}: {', '.join(v)}" for k, v in rep.weather_sets.items())
    return (f"NoCrash ({rep.policy}) on {rep.scenario}: {rep.routes} route(s) per town, traffic and weather "
            f"(seeds {rep.seed}..{rep.seed + rep.routes - 1}, {rep.route_length:.0f} m); weathers {sets}")


def format_table(rep: NoCrashReport) -> str:
    """The report as a plain-text table: one line per condition (town x traffic x weather
    set): success rate, episodes, timeouts, collisions by kind (vehicle, pedestrian,
    layout), off-route failures, red lights per km, route completion, driving score."""
    head, body = _cells(rep)
    width = [max(len(r[i]) for r in [head, *body]) for i in range(len(head))]

    def line(r: list[str]) -> str:  # text columns left-aligned, figures right-aligned
        return "  ".join(s.ljust(w) if i < 3 else s.rjust(w) for i, (s, w) in enumerate(zip(r, width)))

    out = [_intro(rep), line(head), "  ".join("-" * w for w in width), *(line(r) for r in body)]
    out.append("success: goal reached within the time limit (route km / 5 km/h + 20 s) without a collision; "
               "collisions end the episode; driving score: CARLA leaderboard (route completion x 0.50 pedestrian, "
               "0.60 vehicle, 0.65 layout, 0.70 red light)")
    return "\n".join(out)


def markdown_table(rep: NoCrashReport) -> list[str]:
    """The report as Markdown lines (a heading, the intro and the table), for report.md."""
    head, body = _cells(rep)
    out = ["", f"## NoCrash: {rep.policy}", "", _intro(rep) + ".", "",
           "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(r) + " |" for r in body]
    out += ["", ("Success: the goal reached within the time limit (route km / 5 km/h x 3600 + 20 s, CARLA 0.8 "
                 "NoCrash suite) with no collision; an episode ends at its first collision (vehicle, pedestrian, "
                 "layout = static geometry or leaving the road); red lights are counted, per km of route completed. "
                 "Driving score: CARLA leaderboard, route completion x 0.50 per pedestrian, 0.60 per vehicle, 0.65 "
                 "per layout collision, 0.70 per red light; mean over episodes.")]
    return out
