"""Where and why the expert took over: one row per intervention of an evaluation.

Aggregate metrics (autonomy, interventions per km) say how often the learner failed;
this trace says where and how, which is what a user needs to decide between more data,
another camera or another model. At every intervention onset (the first step of a
DAVE-2 interventions, :class:`drive_il.rollout.arbitration.InterventionMonitor`) the observer records:

* where: episode, route progress ``s`` [m], whether the route's waypoint there is in a
  junction, the navigation command at the onset and the commands of the window before;
* why: ``cause`` = the takeover's cause recorded by the arbitration
  (``StepRecord.intervention_cause``: ``"lateral_deviation"``, ``"collision"``,
  ``"off_road"``, ``"red_light"`` or ``"imminent_collision"``); for records without one,
  ``"lateral_deviation"`` (|lateral deviation| > threshold), ``"collision"`` or
  ``"off_road"`` (events of the step before, as the takeover rule reads them);
* how: speed [m/s], lateral deviation [m] (+ = right), heading error [deg], and the
  learner's against the expert's steer over the ``window`` seconds before the onset
  (means, and the signed mean difference learner - expert, in steer units [-1, 1]).
  ``kind`` reads that difference against the expert's own turning: ``"under-steer"``
  (the learner turns the same way as the expert but less), ``"over-steer"`` (more),
  ``"early-turn"`` (the expert is still going straight, |mean expert steer| < 0.1, and
  the learner turns), ``"late-turn"`` (the expert turns and the learner still goes
  straight), ``"wrong-way"`` (opposite signs) or ``"other"``.

With ``collisions=True`` (a protocol where the learner drives alone, such as NoCrash:
:func:`drive_il.evaluation.nocrash.run_nocrash`) a row is also recorded at the first step
of every collision, ``cause`` ``"vehicle"``, ``"walker"`` or ``"layout"`` (the NoCrash
infraction kinds of :func:`drive_il.metrics.count_infractions`), with the same window.
Every row whose step hit a vehicle or a walker also says what was hit: ``other`` (its
centre in the ego frame before the contact, ``forward`` and ``right`` [m], its heading
relative to the ego's ``rel_yaw_deg`` [deg] and its ``speed`` [m/s]) and ``geometry``
(:func:`collision_geometry`): ``"rear-end"`` (it stands or drives ahead of us, heading our
way), ``"head-on"`` (ahead, heading towards us), ``"crossing"`` (ahead, across our
path), ``"side"``, ``"from-behind"`` (it hit us from behind); walkers ``"walker-ahead"``,
``"walker-side"``, ``"walker-behind"``; ``"-"`` for other rows. Rows also carry the
learner's and the expert's target speed [m/s] (means over the window; None without a
speed head), which tells a collision at the learner's own speed from one the expert would
have slowed for; ``speed_kind`` names that (:func:`classify_speed`): ``"no-stop"`` (the
expert was stopping over the whole window, the learner was not: a red light, a walker or a
queue the learner drove on into), ``"faster"`` / ``"slower"`` (targets more than
:data:`SPEED_MARGIN` apart), ``"same"``, or ``"-"`` without a speed head. ``expert_stop``
is the expert's most frequent stop reason over the window (as a timeout row's, below;
``"-"`` where not recorded). ``kind`` reads the steering alone: a rear-end into a queue at
a small steer difference can be an ``"under-steer"`` and a ``"no-stop"``; the second is
what failed.

With ``collisions=True`` an episode that ends with neither a collision nor the goal (a
NoCrash timeout: the time limit ran out, or the car was stuck) gets one row too, ``cause``
``"timeout"``, for the episode's longest standstill (speed below
:data:`~drive_il.data.tools.STAND_SPEED`): where it began (``s``, command, junction,
lateral deviation), ``stood_s`` [s] how long it lasted, the learner's and the expert's
target speed [m/s] averaged over it, ``expert_moving`` [%] the share of it in which the
expert would have driven (its target speed at least ``STAND_SPEED``), ``expert_stop`` the
expert's most frequent stop reason over it (:data:`~drive_il.types.STOP_REASON_NAMES`:
``"none"`` = nothing made the expert slow), and ``ahead`` the nearest vehicle or walker
in the lane corridor ahead when it began (:data:`AHEAD_CORRIDOR`; ``forward``, ``right``
[m], ``speed`` [m/s], ``walker``) or None. ``kind`` is ``"standstill"`` (it stood for at least
:data:`STANDSTILL_S`) or ``"slow"`` (it drove, too slowly to make the time limit). A
standstill through which the expert would have driven (``expert_moving`` near 100 %,
``expert_stop`` "none", nothing ahead) is the learner stopping for nothing; one at a red
light that the expert would have left at green (``expert_moving`` well above 0) is the
learner standing through the greens.

The rows go into the evaluation report (``EvalReport.interventions``, the JSON;
``NoCrashReport.collisions`` and ``NoCrashReport.timeouts``) and are printed by
``drive-il eval --trace``.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

import numpy as np

from ..data.tools import STAND_SPEED
from ..geometry import to_local, wrap_angle
from ..metrics import count_infractions
from ..types import EventKind, StepRecord, stop_reason_code, stop_reason_name

__all__ = ["AHEAD_CORRIDOR", "SPEED_MARGIN", "STANDSTILL_S", "TRACE_COLUMNS", "InterventionTrace", "classify",
           "classify_speed", "collision_counts", "collision_geometry", "format_collisions", "format_timeouts",
           "format_trace", "timeout_counts"]

#: Columns printed by :func:`format_trace` (keys of a trace row).
TRACE_COLUMNS = ("episode", "s", "cause", "kind", "command", "junction", "speed", "lateral_deviation", "heading_deg",
                 "learner_steer", "expert_steer", "steer_diff")

#: |mean expert steer| below which the expert counts as going straight [steer units].
STRAIGHT_STEER = 0.1
#: Learner's and expert's mean target speeds [m/s] further apart than this are ``"faster"``
#: or ``"slower"`` (:func:`classify_speed`).
SPEED_MARGIN = 1.0
#: A timeout row's longest standstill lasting at least this long [s] is a ``"standstill"``.
STANDSTILL_S = 5.0
#: (length [m], half width [m]) of the corridor ahead of the ego, in its frame, searched
#: for what a timeout's standstill stood behind (a lane and a half across).
AHEAD_CORRIDOR = (30.0, 2.5)


def classify(learner_steer: float, expert_steer: float, *, tolerance: float = 0.05) -> str:
    """Name the learner's steering error over the window before an onset.

    Args:
        learner_steer, expert_steer: mean steer over the window, in [-1, 1].
        tolerance: differences below this are not called under/over-steer.

    Returns:
        ``"early-turn"``, ``"late-turn"``, ``"wrong-way"``, ``"under-steer"``,
        ``"over-steer"`` or ``"other"`` (see the module docstring).
    """
    diff = learner_steer - expert_steer
    if abs(expert_steer) < STRAIGHT_STEER:
        return "early-turn" if abs(learner_steer) >= STRAIGHT_STEER else "other"
    if abs(learner_steer) < STRAIGHT_STEER:
        return "late-turn"
    if learner_steer * expert_steer < 0 and abs(learner_steer) >= STRAIGHT_STEER:
        return "wrong-way"
    if abs(diff) < tolerance:
        return "other"
    return "under-steer" if abs(learner_steer) < abs(expert_steer) else "over-steer"


def classify_speed(learner_target: float | None, expert_target: float | None, *,
                   margin: float = SPEED_MARGIN) -> str:
    """Name the learner's speed error over the window before a row's onset.

    Args:
        learner_target, expert_target: mean target speeds [m/s] over the window (the
            row's ``learner_target_speed`` and ``expert_target_speed``); None when not
            recorded (a learner without a speed head).
        margin: [m/s], >= 0.

    Returns:
        ``"no-stop"`` (the expert's mean below :data:`~drive_il.data.tools.STAND_SPEED`:
        it was stopping; the learner's at or above it), ``"faster"`` / ``"slower"`` (the
        learner's more than ``margin`` above / below the expert's), ``"same"``, or ``"-"``
        when either is None.

    Raises:
        ValueError: ``margin`` negative or not finite.
    """
    if not (math.isfinite(margin) and margin >= 0.0):
        raise ValueError(f"classify_speed: margin must be a finite number >= 0 [m/s], got {margin!r}")
    if learner_target is None or expert_target is None:
        return "-"
    if expert_target < STAND_SPEED <= learner_target:
        return "no-stop"
    if learner_target > expert_target + margin:
        return "faster"
    if learner_target < expert_target - margin:
        return "slower"
    return "same"


#: Bearing of the other actor's centre [deg] within which it counts as ahead (and beyond
#: 180 minus it, behind); relative heading [deg] within which it drives our way (beyond
#: 180 minus it, towards us).
AHEAD_DEG = 45.0


def collision_geometry(forward: float, right: float, rel_yaw_deg: float | None) -> str:
    """Name the geometry of a contact from the other actor's centre in the ego frame.

    Args:
        forward, right: the other actor's centre relative to the ego's [m] (ego frame:
            x forward, y right).
        rel_yaw_deg: its heading minus the ego's [deg], wrapped or not; None for a walker.

    Returns:
        ``"rear-end"``, ``"head-on"``, ``"crossing"``, ``"side"``, ``"from-behind"``, or
        for a walker ``"walker-ahead"``, ``"walker-side"``, ``"walker-behind"`` (module
        docstring; bearings within :data:`AHEAD_DEG` of straight ahead count as ahead).
    """
    bearing = abs(math.degrees(math.atan2(right, forward)))
    where = "ahead" if bearing <= AHEAD_DEG else ("behind" if bearing >= 180.0 - AHEAD_DEG else "side")
    if rel_yaw_deg is None:
        return f"walker-{where}"
    if where == "behind":
        return "from-behind"
    if where == "side":
        return "side"
    d = abs((rel_yaw_deg + 180.0) % 360.0 - 180.0)
    if d <= AHEAD_DEG:
        return "rear-end"
    return "head-on" if d >= 180.0 - AHEAD_DEG else "crossing"


def _collision_cause(events) -> str | None:
    """The NoCrash infraction kind of a step's events ("walker", "vehicle", "layout"),
    or None: :func:`drive_il.metrics.count_infractions` pairs a walker contact reported
    as both kinds, :attr:`~drive_il.metrics.Infractions.collision_kind` names it."""
    return count_infractions((events,)).collision_kind


def _other(record: StepRecord) -> dict[str, Any] | None:
    """What the step's first walker contact, else its first vehicle contact, hit, in the
    ego frame (module docstring); None: no such contact, or the actor is not in the world
    state."""
    ws = record.step.world_state
    contacts = [(e, ws.walkers, True) for e in record.events if e.kind is EventKind.WALKER_COLLISION]
    contacts += [(e, ws.actors, False) for e in record.events if e.kind is EventKind.COLLISION]
    for e, pool, walker in contacts:
        hit = next((a for a in pool if a.actor_id == e.other_actor), None)
        if hit is None:
            continue
        ego = ws.ego
        fwd, right = to_local(hit.x, hit.y, ego.x, ego.y, ego.yaw)
        rel = None if walker else math.degrees(wrap_angle(hit.yaw - ego.yaw))
        return {"actor": e.other_actor, "forward": round(fwd, 2), "right": round(right, 2),
                "rel_yaw_deg": None if rel is None else round(rel, 1), "speed": round(float(hit.speed), 2),
                "geometry": collision_geometry(fwd, right, rel)}
    return None


class InterventionTrace:
    """Observer recording one row per intervention onset (see module docstring).

    Args:
        threshold: the intervention threshold of |lateral deviation| [m] (to tell a deviation onset from an
            event onset).
        window: seconds of history summarised before each onset (default 1.5 s).
        collisions: also record a row at the first step of every collision (the learner
            drives alone: no interventions; module docstring).

    Attributes:
        rows: the rows recorded so far (dicts with :data:`TRACE_COLUMNS` and
            ``seed``, ``commands``, ``learner_steers``, ``expert_steers``).
    """

    def __init__(self, threshold: float = 1.0, window: float = 1.5, *, collisions: bool = False) -> None:
        if not threshold > 0 or not window > 0:
            raise ValueError(f"threshold and window must be > 0, got {threshold!r}, {window!r}")
        self.threshold = float(threshold)
        self.window = float(window)
        self.collisions = bool(collisions)
        self.rows: list[dict[str, Any]] = []
        self._hist: deque[StepRecord] = deque()
        self._prev_inter = False
        self._episode = 0
        self._seed: int | None = None
        self._collided = False
        self._stand: _Standstill | None = None      # the standstill going on
        self._longest: _Standstill | None = None    # the episode's longest so far

    def on_episode_start(self, info, first) -> None:
        self._hist = deque()
        self._prev_inter = False
        self._episode = int(getattr(info, "episode", 0) or 0)
        self._seed = getattr(info, "seed", None)
        self._collided = False
        self._stand = self._longest = None

    def on_step(self, record: StepRecord) -> None:
        dt = record.step.world_state.dt or 0.05
        n = max(1, round(self.window / dt))
        prev = self._hist[-1] if self._hist else None
        if record.intervention and not self._prev_inter:
            self.rows.append(self._row(record, prev, list(self._hist)[-n:]))
        elif self.collisions and not record.intervention and (cause := _collision_cause(record.events)):
            self.rows.append(self._row(record, prev, list(self._hist)[-n:], cause=cause, contact=record))
            self._collided = True
        if self.collisions:
            self._track_standstill(record, dt)
        self._prev_inter = record.intervention
        self._hist.append(record)
        while len(self._hist) > n:
            self._hist.popleft()

    def on_episode_end(self, result) -> None:
        termination = getattr(result, "termination", None)
        if self.collisions and not self._collided and termination not in (None, "route_completed", "off_route"):
            self.rows.append(self._timeout_row(result))
        self._hist = deque()     # the frames of the window need not travel back from a worker
        self._stand = self._longest = None

    def _track_standstill(self, record: StepRecord, dt: float) -> None:
        """Follow the standstills (speed below STAND_SPEED) of the episode; keep the longest."""
        if record.step.observation.speed >= STAND_SPEED:
            self._stand = None
            return
        st = self._stand
        if st is None:
            st = self._stand = _Standstill(record)
        st.add(record, dt)
        if self._longest is None or st.seconds > self._longest.seconds:
            self._longest = st

    def _timeout_row(self, result) -> dict[str, Any]:
        """The row of an episode that timed out (module docstring)."""
        st = self._longest
        row: dict[str, Any] = {"episode": self._episode, "seed": self._seed, "cause": "timeout",
                               "termination": result.termination, "geometry": "-", "other": None}
        if st is None:  # it never stood: too slow
            return {**row, "kind": "slow", "s": None, "command": "-", "commands": [], "junction": False,
                    "speed": None, "lateral_deviation": None, "heading_deg": None, "stood_s": 0.0,
                    "learner_target_speed": None, "expert_target_speed": None, "expert_moving": None,
                    "expert_stop": "-", "ahead": None}
        return {**row, "kind": "standstill" if st.seconds >= STANDSTILL_S else "slow", **st.summary()}

    def _cause(self, record: StepRecord, prev: StepRecord | None) -> str:
        """The cause of an intervention onset (module docstring)."""
        if getattr(record, "intervention_cause", ""):
            return record.intervention_cause
        if abs(record.lateral_deviation) > self.threshold:
            return "lateral_deviation"
        if prev is not None and prev.collision:
            return "collision"
        if prev is not None and prev.off_road:
            return "off_road"
        return "lateral_deviation"

    def _row(self, record: StepRecord, prev: StepRecord | None, window: list[StepRecord], *,
             cause: str = "", contact: StepRecord | None = None) -> dict[str, Any]:
        if contact is None and prev is not None and prev.events:
            contact = prev                     # a takeover follows the step of its event
        cause = cause or self._cause(record, prev)
        hist = [r for r in window if r.learner is not None] or [record]
        ls = np.array([r.learner.steer if r.learner is not None else np.nan for r in hist], float)
        es = np.array([r.expert.steer for r in hist], float)
        l_mean = float(np.nanmean(ls)) if np.isfinite(ls).any() else float("nan")
        e_mean = float(es.mean())
        route = record.step.world_state.route
        junction = False
        if route is not None and getattr(route, "waypoints", None):
            i = min(int(record.route_progress / max(route.spacing, 1e-6)), len(route.waypoints) - 1)
            junction = bool(route.waypoints[max(i, 0)].is_junction)
        commands = []
        for r in [*window, record]:
            name = r.step.observation.command.name
            if not commands or commands[-1] != name:
                commands.append(name)
        l_target = _mean_speed([*window, record], "learner_target_speed")
        e_target = _mean_speed([*window, record], "expert_target_speed")
        reasons: dict[str, int] = {}
        for r in (*window, record):
            name = _stop_name(r)
            if name is not None:
                reasons[name] = reasons.get(name, 0) + 1
        return {
            "episode": self._episode, "seed": self._seed, "s": round(float(record.route_progress), 1),
            "cause": cause,
            "kind": classify(l_mean, e_mean) if math.isfinite(l_mean) else "other",
            "command": record.step.observation.command.name, "commands": commands, "junction": junction,
            "speed": round(float(record.step.observation.speed), 2),
            "lateral_deviation": round(float(record.lateral_deviation), 3),
            "heading_deg": round(math.degrees(record.heading_error), 1),
            "learner_steer": round(l_mean, 3), "expert_steer": round(e_mean, 3),
            "steer_diff": round(l_mean - e_mean, 3),
            "learner_steers": [round(float(v), 3) for v in ls[:: max(1, len(ls) // 6)]],
            "expert_steers": [round(float(v), 3) for v in es[:: max(1, len(es) // 6)]],
            "learner_target_speed": l_target, "expert_target_speed": e_target,
            "speed_kind": classify_speed(l_target, e_target), "expert_stop": _most_frequent(reasons),
            **_contact(contact),
        }


class _Standstill:
    """One standstill of an episode: where it began, how long it lasted, and the running
    sums of the learner's and the expert's target speeds and the expert's stop reasons."""

    def __init__(self, first: StepRecord) -> None:
        self.first = {"s": round(float(first.route_progress), 1),
                      "command": first.step.observation.command.name,
                      "junction": bool(first.in_junction),
                      "speed": round(float(first.step.observation.speed), 2),
                      "lateral_deviation": round(float(first.lateral_deviation), 3),
                      "heading_deg": round(math.degrees(first.heading_error), 1),
                      "ahead": _ahead(first)}
        self.seconds = 0.0
        self._sums = {"learner_target_speed": [0.0, 0], "expert_target_speed": [0.0, 0]}
        self._expert_moving = 0
        self._reasons: dict[str, int] = {}

    def add(self, record: StepRecord, dt: float) -> None:
        self.seconds += dt
        for key, acc in self._sums.items():
            v = float(getattr(record, key, math.nan))
            if math.isfinite(v):
                acc[0] += v
                acc[1] += 1
                if key == "expert_target_speed" and v >= STAND_SPEED:
                    self._expert_moving += 1
        name = _stop_name(record)
        if name is not None:
            self._reasons[name] = self._reasons.get(name, 0) + 1

    def summary(self) -> dict[str, Any]:
        means = {k: (round(a / n, 2) if n else None) for k, (a, n) in self._sums.items()}
        stop = _most_frequent(self._reasons)
        n = self._sums["expert_target_speed"][1]
        return {**self.first, "commands": [self.first["command"]], "stood_s": round(self.seconds, 2),
                **means, "expert_moving": round(100.0 * self._expert_moving / n, 1) if n else None,
                "expert_stop": stop}


def _stop_name(record: StepRecord) -> str | None:
    """The expert's stop reason of a record by name (``"none"``, ``"red_light"``, ...),
    None where not recorded."""
    r = record.expert_stop_reason
    return None if r is None else stop_reason_name(stop_reason_code(r))


def _most_frequent(counts: dict[str, int]) -> str:
    """The most frequent name of ``counts`` (the first seen of a tie); ``"-"`` if empty."""
    return max(counts.items(), key=lambda kv: kv[1])[0] if counts else "-"


def _ahead(record: StepRecord) -> dict[str, Any] | None:
    """The nearest vehicle or walker centre in the corridor :data:`AHEAD_CORRIDOR` ahead
    of the ego (its frame): ``forward``, ``right`` [m], ``speed`` [m/s], ``walker``; None."""
    ws = record.step.world_state
    ego = ws.ego
    length, half = AHEAD_CORRIDOR
    best = None
    for pool, walker in ((ws.actors, False), (ws.walkers, True)):
        for a in pool or ():
            fwd, right = to_local(a.x, a.y, ego.x, ego.y, ego.yaw)
            if 0.0 < fwd <= length and abs(right) <= half and (best is None or fwd < best["forward"]):
                best = {"forward": round(fwd, 2), "right": round(right, 2), "speed": round(float(a.speed), 2),
                        "walker": walker}
    return best


def _mean_speed(records: list[StepRecord], key: str) -> float | None:
    """The mean of the finite ``key`` values [m/s], None when there is none (JSON null; a
    NaN would make equal rows compare unequal)."""
    v = np.array([getattr(r, key, math.nan) for r in records], float)
    v = v[np.isfinite(v)]
    return round(float(v.mean()), 2) if len(v) else None


def _contact(record: StepRecord | None) -> dict[str, Any]:
    other = _other(record) if record is not None else None
    if other is None:
        return {"geometry": "-", "other": None}
    return {"geometry": other.pop("geometry"), "other": other}


def format_trace(rows: list[dict[str, Any]]) -> str:
    """The rows as an aligned text table (one line per intervention), followed by
    counts per cause, kind and command; ``"no interventions"`` when empty. Timeout rows
    (``collisions=True``) are left out: :func:`format_timeouts` prints them."""
    rows = [r for r in rows if r["cause"] != "timeout"]
    if not rows:
        return "no interventions"
    head = ("ep", "s [m]", "cause", "kind", "command", "junc", "v [m/s]", "lat. dev. [m]", "head [deg]",
            "learner", "expert", "diff")
    lines = []
    for r in rows:
        lines.append((str(r["episode"]), f"{r['s']:.1f}", r["cause"], r["kind"], r["command"],
                      "yes" if r["junction"] else "no", f"{r['speed']:.1f}", f"{r['lateral_deviation']:+.2f}",
                      f"{r['heading_deg']:+.1f}", f"{r['learner_steer']:+.2f}", f"{r['expert_steer']:+.2f}",
                      f"{r['steer_diff']:+.2f}"))
    out = _aligned(head, lines)
    out += _counts(rows, ("cause", "kind", "command"))
    return "\n".join(out)


def _aligned(head: tuple[str, ...], lines: list[tuple[str, ...]]) -> list[str]:
    """The header and the lines as right-aligned columns, two spaces apart."""
    widths = [max(len(h), *(len(x[i]) for x in lines)) for i, h in enumerate(head)]
    return ["  ".join(x.rjust(w) for x, w in zip(line, widths)) for line in (head, *lines)]


def _f(v: Any, fmt: str) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    text = fmt.format(v)
    return fmt.format(0.0) if not text.strip("+-0.") else text     # no "-0"


def format_collisions(rows: list[dict[str, Any]]) -> str:
    """Collision rows (``collisions=True``; NoCrash adds ``town``, ``density`` and
    ``weather``) as an aligned text table, one line per collision, followed by counts per
    cause, geometry, kind, speed kind, the expert's stop reason and command; ``"no
    collisions"`` when empty."""
    if not rows:
        return "no collisions"
    head = ("town", "traffic", "weather", "route", "s [m]", "cause", "geometry", "kind", "speed kind", "command",
            "junc", "v [m/s]", "lat. dev. [m]", "other fwd/right [m]", "other yaw [deg]", "other v [m/s]",
            "learner v* [m/s]", "expert v* [m/s]", "expert stops for")
    lines = []
    for r in rows:
        o = r.get("other") or {}
        lines.append((str(r.get("town", "-")), str(r.get("density", "-")), str(r.get("weather", "-")),
                      str(r.get("seed", "-")), f"{r['s']:.1f}", r["cause"], r.get("geometry", "-"), r["kind"],
                      r.get("speed_kind", "-"), r["command"], "yes" if r["junction"] else "no", f"{r['speed']:.1f}",
                      f"{r['lateral_deviation']:+.2f}",
                      f"{o['forward']:+.1f}/{o['right']:+.1f}" if o else "-", _f(o.get("rel_yaw_deg"), "{:+.0f}"),
                      _f(o.get("speed"), "{:.1f}"), _f(r.get("learner_target_speed"), "{:.1f}"),
                      _f(r.get("expert_target_speed"), "{:.1f}"), str(r.get("expert_stop", "-"))))
    out = _aligned(head, lines)
    out += collision_counts(rows)
    return "\n".join(out)


def format_timeouts(rows: list[dict[str, Any]]) -> str:
    """Timeout rows (``collisions=True``; NoCrash adds ``town``, ``density`` and
    ``weather``) as an aligned text table, one line per episode (its longest standstill),
    followed by counts per kind, the expert's stop reason and command; ``"no timeouts"``
    when empty."""
    if not rows:
        return "no timeouts"
    head = ("town", "traffic", "weather", "route", "s [m]", "kind", "stood [s]", "command", "junc",
            "learner v* [m/s]", "expert v* [m/s]", "expert moving [%]", "expert stops for", "ahead fwd/right [m]",
            "ahead v [m/s]")
    lines = []
    for r in rows:
        a = r.get("ahead") or {}
        lines.append((str(r.get("town", "-")), str(r.get("density", "-")), str(r.get("weather", "-")),
                      str(r.get("seed", "-")), _f(r.get("s"), "{:.1f}"), r["kind"], _f(r.get("stood_s"), "{:.1f}"),
                      r.get("command", "-"), "yes" if r.get("junction") else "no",
                      _f(r.get("learner_target_speed"), "{:.1f}"), _f(r.get("expert_target_speed"), "{:.1f}"),
                      _f(r.get("expert_moving"), "{:.0f}"), str(r.get("expert_stop", "-")),
                      (f"{a['forward']:+.1f}/{a['right']:+.1f}" + (" walker" if a.get("walker") else "")) if a else "-",
                      _f(a.get("speed"), "{:.1f}")))
    out = _aligned(head, lines)
    out += timeout_counts(rows)
    return "\n".join(out)


def timeout_counts(rows: list[dict[str, Any]]) -> list[str]:
    """Lines ``by kind: ...``, ``by expert_stop: ...``, ``by command: ...`` of timeout rows
    (most frequent first); [] when there are none."""
    return _counts(rows, ("kind", "expert_stop", "command")) if rows else []


def collision_counts(rows: list[dict[str, Any]]) -> list[str]:
    """Lines ``by cause: ...``, ``by geometry: ...``, ``by kind: ...``, ``by speed_kind: ...``,
    ``by expert_stop: ...``, ``by command: ...``
    of collision rows (most frequent first); [] when there are none. The geometry line
    also says how many rear-ends hit a vehicle that stood (its speed below
    :data:`~drive_il.data.tools.STAND_SPEED`, 0.3 m/s): the learner creeping into a queue."""
    if not rows:
        return []
    standing = sum(1 for r in rows if r.get("geometry") == "rear-end" and _other_speed(r) < STAND_SPEED)
    notes = {("geometry", "rear-end"): f"({standing} into a standing vehicle, < {STAND_SPEED:g} m/s)"} \
        if standing else {}
    return _counts(rows, ("cause", "geometry", "kind", "speed_kind", "expert_stop", "command"), notes)


def _other_speed(row: dict[str, Any]) -> float:
    """The hit actor's speed [m/s] of a collision row (inf when unknown)."""
    v = (row.get("other") or {}).get("speed")
    return math.inf if v is None else float(v)


def _counts(rows: list[dict[str, Any]], keys: tuple[str, ...],
            notes: dict[tuple[str, str], str] | None = None) -> list[str]:
    """Lines ``by KEY: value count, ...`` per key (most frequent first); ``notes`` adds a
    text after the count of a (key, value)."""
    notes = notes or {}
    out = []
    for key in keys:
        counts: dict[str, int] = {}
        for r in rows:
            counts[r.get(key, "-")] = counts.get(r.get(key, "-"), 0) + 1
        out.append(f"by {key}: " + ", ".join(
            f"{k} {v}" + (f" {notes[key, k]}" if (key, k) in notes else "")
            for k, v in sorted(counts.items(), key=lambda kv: -kv[1])))
    return out
