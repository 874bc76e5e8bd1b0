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

The rows go into the evaluation report (``EvalReport.interventions``, the JSON) and are
printed by ``drive-il eval --trace``.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

import numpy as np

from ..types import StepRecord

__all__ = ["InterventionTrace", "classify", "format_trace", "TRACE_COLUMNS"]

#: Columns printed by :func:`format_trace` (keys of a trace row).
TRACE_COLUMNS = ("episode", "s", "cause", "kind", "command", "junction", "speed", "lateral_deviation", "heading_deg",
                 "learner_steer", "expert_steer", "steer_diff")

#: |mean expert steer| below which the expert counts as going straight [steer units].
STRAIGHT_STEER = 0.1


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


class InterventionTrace:
    """Observer recording one row per intervention onset (see module docstring).

    Args:
        threshold: the intervention threshold of |lateral deviation| [m] (to tell a deviation onset from an
            event onset).
        window: seconds of history summarised before each onset (default 1.5 s).

    Attributes:
        rows: the rows recorded so far (dicts with :data:`TRACE_COLUMNS` and
            ``seed``, ``commands``, ``learner_steers``, ``expert_steers``).
    """

    def __init__(self, threshold: float = 1.0, window: float = 1.5) -> None:
        if not threshold > 0 or not window > 0:
            raise ValueError(f"threshold and window must be > 0, got {threshold!r}, {window!r}")
        self.threshold = float(threshold)
        self.window = float(window)
        self.rows: list[dict[str, Any]] = []
        self._hist: deque[StepRecord] = deque()
        self._prev_inter = False
        self._episode = 0
        self._seed: int | None = None

    def on_episode_start(self, info, first) -> None:
        self._hist = deque()
        self._prev_inter = False
        self._episode = int(getattr(info, "episode", 0) or 0)
        self._seed = getattr(info, "seed", None)

    def on_step(self, record: StepRecord) -> None:
        dt = record.step.world_state.dt or 0.05
        n = max(1, int(round(self.window / dt)))
        prev = self._hist[-1] if self._hist else None
        if record.intervention and not self._prev_inter:
            self.rows.append(self._row(record, prev, list(self._hist)[-n:]))
        self._prev_inter = record.intervention
        self._hist.append(record)
        while len(self._hist) > n:
            self._hist.popleft()

    def on_episode_end(self, result) -> None:
        return None

    def _row(self, record: StepRecord, prev: StepRecord | None, window: list[StepRecord]) -> dict[str, Any]:
        if getattr(record, "intervention_cause", ""):
            cause = record.intervention_cause
        elif abs(record.lateral_deviation) > self.threshold:
            cause = "lateral_deviation"
        elif prev is not None and prev.collision:
            cause = "collision"
        elif prev is not None and prev.off_road:
            cause = "off_road"
        else:
            cause = "lateral_deviation"
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
        }


def format_trace(rows: list[dict[str, Any]]) -> str:
    """The rows as an aligned text table (one line per intervention), followed by
    counts per cause, kind and command; ``"no interventions"`` when empty."""
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
    widths = [max(len(h), *(len(x[i]) for x in lines)) for i, h in enumerate(head)]
    out = ["  ".join(h.rjust(w) for h, w in zip(head, widths))]
    out += ["  ".join(x.rjust(w) for x, w in zip(line, widths)) for line in lines]
    for key in ("cause", "kind", "command"):
        counts: dict[str, int] = {}
        for r in rows:
            counts[r[key]] = counts.get(r[key], 0) + 1
        out.append(f"by {key}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1])))
    return "\n".join(out)
