"""Metrics as pure functions over a recorded episode (no I/O, no simulator).

Definitions (DESIGN.md, "Definitions used by metrics, overlay and TensorBoard"):

* **Lateral deviation** [m]: signed distance from the vehicle's reference point
  to the centre line of the lane the route asks for; + = right of centre.
* **Expert disagreement**: |learner steer - expert steer| at the same state.
* **Intervention** (DAVE-2, Bojarski et al. 2016, arXiv:1604.07316): the expert takes
  over when |lateral deviation| > threshold (1.0 m by default), on a collision or on leaving the
  road, until the car is re-centred; each one counts as 6 s of non-autonomous driving.
* **Autonomy** [%] = (1 - interventions * 6 s / elapsed s) * 100, clipped at 0.
* **Per km** rates divide by max(distance driven [km], 0.001) (CARLA leaderboard's
  guard against division by zero).
* **Driving score** (CARLA leaderboard, ``statistics_manager.py``'s penalty table):
  route completion [%] x the product of one penalty factor per infraction: 0.50 per
  collision with a pedestrian, 0.60 with a vehicle, 0.65 with static geometry (layout),
  0.70 per red light run (:func:`driving_score`). :func:`summarize` charges vehicle and
  walker collisions and red lights (off-road is reported separately there); the NoCrash
  report (:mod:`drive_il.evaluation.nocrash`) also charges leaving the road as a layout
  collision. Infractions per km of the leaderboard: count / max(route completion / 100 x
  route length [km], 0.001) (:func:`infractions_per_km`).
* **Infractions from events** (:func:`count_infractions`): the simulator's per-step
  :class:`~drive_il.types.Event` s counted by kind (vehicle, walker, layout collisions, red
  lights), as the live rollout hands them over in ``StepRecord.events``.

An episode is given as an :class:`EpisodeTrace` of per-step arrays, built from the
per-step record schema (:class:`drive_il.types.StepRow`) by the rollout loop while
driving, or read back from an episode file (:meth:`EpisodeTrace.from_columns` over
:func:`drive_il.types.columns_from_file_arrays`).

Core layer: imports only numpy and :mod:`drive_il.types`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from .types import Event, EventKind

__all__ = ["EpisodeTrace", "INTERVENTION_SECONDS", "METRIC_KEYS", "summarize", "count_onsets",
           "autonomy", "per_km", "aggregate", "upgrade_keys", "PENALTIES", "driving_score", "infractions_per_km",
           "Infractions", "count_infractions"]

#: The metrics shown in evaluation reports, logged under ``eval/`` in TensorBoard and
#: kept per DAgger round (keys of :func:`summarize` and :func:`aggregate`).
METRIC_KEYS: tuple[str, ...] = (
    "autonomy", "interventions_per_km", "lateral_deviation_mean", "lateral_deviation_p95", "lateral_deviation_max",
    "heading_error_mean", "route_completion", "collisions_per_km", "lane_invasions_per_km",
    "disagreement_mean", "distance_to_first_intervention")

#: Metric keys written by drive_il before "lateral deviation" became the one name of the
#: concept (run directories and evaluation JSON from then still load: :func:`upgrade_keys`).
_OLD_KEYS = {"drift_mean": "lateral_deviation_mean", "drift_p95": "lateral_deviation_p95",
             "drift_p99": "lateral_deviation_p99", "drift_max": "lateral_deviation_max",
             "drift": "lateral_deviation"}


def upgrade_keys(obj: Any) -> Any:
    """A copy of a JSON value (dicts, lists) read from an older run, with the old metric
    names (``drift_mean``, ..., an intervention row's ``drift`` and its cause ``"drift"``)
    renamed to today's (``lateral_deviation_mean``, ...). New data passes unchanged."""
    if isinstance(obj, dict):
        out = {_OLD_KEYS.get(k, k): upgrade_keys(v) for k, v in obj.items()}
        if out.get("cause") == "drift":
            out["cause"] = "lateral_deviation"
        return out
    if isinstance(obj, list):
        return [upgrade_keys(v) for v in obj]
    return obj


#: Seconds of non-autonomous driving charged per intervention (DAVE-2).
INTERVENTION_SECONDS = 6.0
#: CARLA leaderboard penalty per collision with a vehicle.
VEHICLE_COLLISION_PENALTY = 0.60
#: CARLA leaderboard penalty per collision with a pedestrian.
WALKER_COLLISION_PENALTY = 0.50
#: CARLA leaderboard penalty per collision with static geometry (the layout).
LAYOUT_COLLISION_PENALTY = 0.65
#: CARLA leaderboard penalty per red light run.
RED_LIGHT_PENALTY = 0.70
#: The CARLA leaderboard's infraction penalty factors (REFERENCES.md), by infraction.
PENALTIES: dict[str, float] = {"walker": WALKER_COLLISION_PENALTY, "vehicle": VEHICLE_COLLISION_PENALTY,
                               "layout": LAYOUT_COLLISION_PENALTY, "red_light": RED_LIGHT_PENALTY}


def driving_score(route_completion: float, *, vehicle: int = 0, walker: int = 0, layout: int = 0,
                  red_light: int = 0) -> float:
    """The CARLA leaderboard's driving score of one route [%]: route completion x the
    product of the infraction penalties, one factor per infraction (pedestrian 0.50,
    vehicle 0.60, static/layout 0.65, red light 0.70; ``PENALTIES``).

    Args:
        route_completion: [%] in [0, 100].
        vehicle, walker, layout, red_light: infraction counts (>= 0).

    Raises:
        ValueError: a negative count (one line naming it).
    """
    for name, n in (("vehicle", vehicle), ("walker", walker), ("layout", layout), ("red_light", red_light)):
        if n < 0:
            raise ValueError(f"driving_score: {name} must be a count >= 0, got {n!r}")
    # left to right, so that without walker/layout/red-light infractions the value is
    # bit-identical to route_completion * 0.6 ** vehicle (the score before them)
    return (route_completion * (VEHICLE_COLLISION_PENALTY ** vehicle) * (WALKER_COLLISION_PENALTY ** walker)
            * (LAYOUT_COLLISION_PENALTY ** layout) * (RED_LIGHT_PENALTY ** red_light))


def infractions_per_km(count: float, route_completion: float, route_length_m: float) -> float:
    """The leaderboard's infractions per km: count / max(route completion / 100 x route
    length [km], 0.001) (the distance of the route completed, not the distance driven).

    Args:
        count: infractions.
        route_completion: [%].
        route_length_m: [m].
    """
    return float(count) / max(route_completion / 100.0 * route_length_m / 1000.0, 0.001)


@dataclass(frozen=True)
class Infractions:
    """Infractions of one episode counted from the simulator's events.

    Attributes:
        vehicle: collisions with vehicles (``EventKind.COLLISION`` events, each one a
            contact; a contact whose other actor is a walker hit in the same step is
            counted as a walker collision only).
        walker: collisions with pedestrians (``EventKind.WALKER_COLLISION``).
        layout: leaving the road (``EventKind.OFF_ROAD``: the embedded world's contact
            with the layout; CARLA reports kerbs and walls as collisions).
        red_light: red lights run (``EventKind.RED_LIGHT``: the stop line of the ego's
            lane crossed while red, the leaderboard's rule).
    """

    vehicle: int = 0
    walker: int = 0
    layout: int = 0
    red_light: int = 0

    @property
    def collisions(self) -> int:
        """All collisions (vehicle + walker + layout)."""
        return self.vehicle + self.walker + self.layout

    @property
    def collision_kind(self) -> str | None:
        """The kind that names these collisions: "walker" before "vehicle" before
        "layout" (NoCrash's order when one step had several), None without a collision."""
        if self.walker:
            return "walker"
        if self.vehicle:
            return "vehicle"
        return "layout" if self.layout else None

    def __add__(self, other: "Infractions") -> "Infractions":
        return Infractions(self.vehicle + other.vehicle, self.walker + other.walker, self.layout + other.layout,
                           self.red_light + other.red_light)


def count_infractions(events: Any) -> Infractions:
    """Count the infractions in an iterable of per-step event sequences (e.g. each
    ``StepRecord.events`` of an episode) or in one flat sequence of
    :class:`~drive_il.types.Event` s.

    Args:
        events: per-step sequences of Events, or Events (a flat sequence: each event
            is its own step, so a vehicle and a walker contact with the same actor are
            not paired).

    Returns:
        the :class:`Infractions`.
    """
    veh = walk = lay = red = 0
    for item in events:
        step = (item,) if isinstance(item, Event) else tuple(item)
        walkers = {e.other_actor for e in step if e.kind is EventKind.WALKER_COLLISION}
        for e in step:
            k = e.kind
            if k is EventKind.COLLISION and not (e.other_actor >= 0 and e.other_actor in walkers):
                veh += 1
            elif k is EventKind.WALKER_COLLISION:
                walk += 1
            elif k is EventKind.OFF_ROAD:
                lay += 1
            elif k is EventKind.RED_LIGHT:
                red += 1
    return Infractions(vehicle=veh, walker=walk, layout=lay, red_light=red)


@dataclass(frozen=True)
class EpisodeTrace:
    """Per-step arrays of one episode; all arrays have length T (control steps).

    Attributes:
        dt: fixed step [s].
        route_length: length of the route [m].
        x, y: (T,) ego position [m].
        lateral_deviation: (T,) signed [m], + = right.
        heading_error: (T,) [rad].
        route_progress: (T,) arc length along the route [m].
        expert_steer: (T,) the expert's label.
        learner_steer: (T,) the learner's prediction, NaN where none ran.
        executed_steer: (T,) what was executed.
        intervention: (T,) bool, the expert/human was driving because of an intervention.
        intervention_onsets: number of interventions (takeover starts). If None, it is
            counted from rising edges of ``intervention``.
        collision: (T,) bool, a collision began at this step.
        off_road: (T,) bool, leaving the road began at this step.
        lane_invasion: (T,) bool, a marking was crossed at this step.
        in_junction: (T,) bool, the route point is inside a junction.
        speed: (T,) [m/s].
        red_light: (T,) bool, a red light was run at this step (empty: none).
        walker_collision: (T,) bool, a collision with a pedestrian began at this step
            (empty: none).
        wall_seconds: wall-clock duration of the episode [s] (for steps/s), or 0.
    """

    dt: float
    route_length: float
    x: np.ndarray
    y: np.ndarray
    lateral_deviation: np.ndarray
    heading_error: np.ndarray
    route_progress: np.ndarray
    expert_steer: np.ndarray
    learner_steer: np.ndarray
    executed_steer: np.ndarray
    intervention: np.ndarray
    collision: np.ndarray
    off_road: np.ndarray
    lane_invasion: np.ndarray
    in_junction: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    speed: np.ndarray = field(default_factory=lambda: np.zeros(0))
    red_light: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    walker_collision: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    intervention_onsets: int | None = None
    wall_seconds: float = 0.0

    def __post_init__(self) -> None:
        n = len(self.x)
        for name in ("y", "lateral_deviation", "heading_error", "route_progress", "expert_steer",
                     "learner_steer", "executed_steer", "intervention", "collision", "off_road",
                     "lane_invasion"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"EpisodeTrace.{name} has length {len(getattr(self, name))}, expected {n}")
        if len(self.in_junction) == 0:
            object.__setattr__(self, "in_junction", np.zeros(n, bool))
        if len(self.speed) == 0:
            object.__setattr__(self, "speed", np.zeros(n))
        for name in ("red_light", "walker_collision"):
            a = getattr(self, name)
            if len(a) == 0:
                object.__setattr__(self, name, np.zeros(n, bool))
            elif len(a) != n:
                raise ValueError(f"EpisodeTrace.{name} has length {len(a)}, expected {n}")

    @property
    def steps(self) -> int:
        return len(self.x)

    @classmethod
    def from_columns(cls, columns: Mapping[str, np.ndarray], *, dt: float, route_length: float,
                     intervention_onsets: int | None = None, wall_seconds: float = 0.0) -> "EpisodeTrace":
        """The trace of an episode given as per-step columns named after the fields of
        :class:`drive_il.types.StepRow` (``drive_il.types.step_columns`` of the rows, or
        ``columns_from_file_arrays`` of an episode file's arrays; ``in_junction``,
        ``red_light`` and ``walker_collision`` may be absent and then count as False).

        Args:
            columns: StepRow field name -> (T,) array.
            dt: fixed step [s].
            route_length: [m].
            intervention_onsets: takeover starts counted while driving (None: from the
                rising edges of ``intervention``).
            wall_seconds: wall-clock duration [s] (0 if unknown).

        Raises:
            KeyError: a required column is missing.
            ValueError: columns of different lengths.
        """
        c = columns
        n = len(c["x"])
        return cls(
            dt=dt, route_length=route_length, x=c["x"], y=c["y"],
            lateral_deviation=c["lateral_deviation"], heading_error=c["heading_error"],
            route_progress=c["route_progress"], expert_steer=c["expert_steer"],
            learner_steer=c["learner_steer"], executed_steer=c["executed_steer"],
            intervention=c["intervention"], collision=c["collision"], off_road=c["off_road"],
            lane_invasion=c["lane_invasion"],
            in_junction=c["in_junction"] if "in_junction" in c else np.zeros(n, bool),
            speed=c["speed"], intervention_onsets=intervention_onsets, wall_seconds=wall_seconds,
            red_light=c["red_light"] if "red_light" in c else np.zeros(n, bool),
            walker_collision=c["walker_collision"] if "walker_collision" in c else np.zeros(n, bool),
        )


def count_onsets(flags: np.ndarray) -> int:
    """Number of rising edges (False -> True) in a boolean array, counting a True at
    index 0 as an onset."""
    f = np.asarray(flags, dtype=bool)
    if f.size == 0:
        return 0
    return int(f[0]) + int(np.count_nonzero(f[1:] & ~f[:-1]))


def autonomy(interventions: int, elapsed_s: float) -> float:
    """DAVE-2 autonomy [%] = (1 - interventions * 6 s / elapsed s) * 100, clipped to
    [0, 100]; 100 for an empty episode."""
    if elapsed_s <= 0:
        return 100.0
    return float(min(100.0, max(0.0, (1.0 - interventions * INTERVENTION_SECONDS / elapsed_s) * 100.0)))


def per_km(count: float, distance_m: float) -> float:
    """count / max(distance [km], 0.001)."""
    return float(count) / max(distance_m / 1000.0, 0.001)


def _pct(a: np.ndarray, q: float) -> float:
    return float(np.percentile(a, q)) if a.size else 0.0


def summarize(tr: EpisodeTrace) -> dict[str, float]:
    """All episode metrics, keyed by DESIGN.md names.

    Returns:
        dict with: steps, elapsed_s, distance [m], route_completion [%],
        lateral_deviation_mean, lateral_deviation_p95, lateral_deviation_p99, lateral_deviation_max [m] (of |lateral deviation|),
        heading_error_mean, heading_error_max [rad] (absolute), collisions, off_road,
        lane_invasions, lane_invasions_outside_junctions, collisions_per_km,
        lane_invasions_per_km, interventions, interventions_per_km, autonomy [%],
        distance_to_first_intervention [m] (the whole distance if none),
        disagreement_mean, disagreement_p95 (NaN without a learner), red_lights,
        walker_collisions, red_lights_per_km, driving_score [%] (:func:`driving_score` of
        the vehicle and walker collisions and red lights), mean_speed [m/s], steps_per_s
        (0 if unknown).
    """
    n = tr.steps
    elapsed = n * tr.dt
    if n >= 2:
        seg = np.hypot(np.diff(tr.x), np.diff(tr.y))
        cum = np.concatenate([[0.0], np.cumsum(seg)])
    else:
        cum = np.zeros(n)
    distance = float(cum[-1]) if n else 0.0
    ad = np.abs(np.asarray(tr.lateral_deviation, dtype=np.float64))
    ah = np.abs(np.asarray(tr.heading_error, dtype=np.float64))
    completion = 0.0
    if tr.route_length > 0 and n:
        completion = float(min(100.0, 100.0 * float(np.max(tr.route_progress)) / tr.route_length))
    interventions = tr.intervention_onsets if tr.intervention_onsets is not None else count_onsets(tr.intervention)
    inter = np.asarray(tr.intervention, bool)
    first = distance
    if inter.any():
        first = float(cum[int(np.argmax(inter))])
    ls = np.asarray(tr.learner_steer, dtype=np.float64)
    has_l = ~np.isnan(ls)
    if has_l.any():
        dis = np.abs(ls[has_l] - np.asarray(tr.expert_steer, np.float64)[has_l])
        dis_mean, dis_p95 = float(dis.mean()), _pct(dis, 95)
    else:
        dis_mean = dis_p95 = float("nan")
    collisions = int(np.count_nonzero(tr.collision))
    off_road = int(np.count_nonzero(tr.off_road))
    lane_inv = int(np.count_nonzero(tr.lane_invasion))
    lane_inv_out = int(np.count_nonzero(np.asarray(tr.lane_invasion, bool) & ~np.asarray(tr.in_junction, bool)))
    red = int(np.count_nonzero(tr.red_light))
    walker = int(np.count_nonzero(tr.walker_collision))
    return {
        "steps": float(n),
        "elapsed_s": float(elapsed),
        "distance": distance,
        "route_completion": completion,
        "lateral_deviation_mean": float(ad.mean()) if n else 0.0,
        "lateral_deviation_p95": _pct(ad, 95),
        "lateral_deviation_p99": _pct(ad, 99),
        "lateral_deviation_max": float(ad.max()) if n else 0.0,
        "heading_error_mean": float(ah.mean()) if n else 0.0,
        "heading_error_max": float(ah.max()) if n else 0.0,
        "collisions": float(collisions),
        "off_road": float(off_road),
        "lane_invasions": float(lane_inv),
        "lane_invasions_outside_junctions": float(lane_inv_out),
        "collisions_per_km": per_km(collisions, distance),
        "lane_invasions_per_km": per_km(lane_inv, distance),
        "interventions": float(interventions),
        "interventions_per_km": per_km(interventions, distance),
        "autonomy": autonomy(interventions, elapsed),
        "distance_to_first_intervention": first,
        "disagreement_mean": dis_mean,
        "disagreement_p95": dis_p95,
        "red_lights": float(red),
        "walker_collisions": float(walker),
        "red_lights_per_km": per_km(red, distance),
        "driving_score": driving_score(completion, vehicle=collisions, walker=walker, red_light=red),
        "mean_speed": float(np.mean(tr.speed)) if n else 0.0,
        "steps_per_s": float(n / tr.wall_seconds) if tr.wall_seconds > 0 else 0.0,
    }


def aggregate(summaries: list[dict[str, float]]) -> dict[str, float]:
    """Combine per-episode summaries into one: sums for counts and distance, rates
    recomputed from the sums (per km, autonomy over total elapsed time), means of the
    lateral deviation statistics weighted by steps, max of maxima.

    Returns:
        the same keys as :func:`summarize` plus ``episodes``.
    """
    if not summaries:
        return {"episodes": 0.0}
    w = np.array([s["steps"] for s in summaries], float)

    def wmean(k: str) -> float:
        v = np.array([s[k] for s in summaries], float)
        ok = ~np.isnan(v)
        if not ok.any():
            return float("nan")
        return float((v[ok] * w[ok]).sum() / max(w[ok].sum(), 1.0))

    tot = {k: float(sum(s[k] for s in summaries)) for k in
           ("steps", "elapsed_s", "distance", "collisions", "off_road", "lane_invasions",
            "lane_invasions_outside_junctions", "interventions")}
    for k in ("red_lights", "walker_collisions"):  # absent from summaries written before them
        tot[k] = float(sum(s.get(k, 0.0) for s in summaries))
    out = dict(tot)
    out["episodes"] = float(len(summaries))
    out["route_completion"] = float(np.mean([s["route_completion"] for s in summaries]))
    for k in ("lateral_deviation_mean", "lateral_deviation_p95", "lateral_deviation_p99", "heading_error_mean", "disagreement_mean",
              "disagreement_p95", "mean_speed"):
        out[k] = wmean(k)
    out["lateral_deviation_max"] = float(max(s["lateral_deviation_max"] for s in summaries))
    out["heading_error_max"] = float(max(s["heading_error_max"] for s in summaries))
    out["collisions_per_km"] = per_km(tot["collisions"], tot["distance"])
    out["lane_invasions_per_km"] = per_km(tot["lane_invasions"], tot["distance"])
    out["interventions_per_km"] = per_km(tot["interventions"], tot["distance"])
    out["red_lights_per_km"] = per_km(tot["red_lights"], tot["distance"])
    out["autonomy"] = autonomy(int(tot["interventions"]), tot["elapsed_s"])
    out["distance_to_first_intervention"] = float(np.mean([s["distance_to_first_intervention"] for s in summaries]))
    out["driving_score"] = float(np.mean([s["driving_score"] for s in summaries]))
    sps = [s["steps_per_s"] for s in summaries if s["steps_per_s"] > 0]
    out["steps_per_s"] = float(np.mean(sps)) if sps else 0.0
    return out
