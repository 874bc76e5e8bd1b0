"""Closed-loop evaluation of a learner with the expert shadowing it.

The learner drives; the expert computes its label at every step (steering
disagreement); DAVE-2 interventions (Bojarski et al. 2016): when |lateral deviation| >
threshold (1.0 m), or on a collision or leaving the road, the expert takes over until the
car is re-centred, and the episode goes on. Metrics are the pure functions of
:mod:`drive_il.metrics`; this module only drives (:func:`drive_il.rollout.run_episode`
with the learner driving and a :class:`~drive_il.rollout.InterventionConfig`) and aggregates.

Protocols: by default the DAVE-2 interventions above; a caller may give its own
:class:`~drive_il.rollout.RolloutSpec` instead (``spec=``: the NoCrash protocol of
:mod:`drive_il.evaluation.nocrash` lets the policy drive alone and ends an episode at its
first collision) and extra per-episode observers (``extra_observers=``) whose ``row``
dicts join the episode rows.

Seeds: evaluation seed k (0 <= k < seeds) drives ``scenario.test.episodes`` episodes
with episode seeds ``base + 1000 k + j``, where base is the (test) scenario's seed; the
report gives the aggregate over all episodes and the mean and spread (standard
deviation) of the per-seed aggregates.
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from ..metrics import METRIC_KEYS, aggregate
from ..rollout import Drivers, InterventionConfig, RolloutSpec
from ..scenario import Scenario
from ..types import StepRecord
from .trace import InterventionTrace

__all__ = ["EvalReport", "evaluate", "DeviationProfile"]

log = logging.getLogger(__name__)


class DeviationProfile:
    """Observer keeping lateral deviation against distance along the route (1 m bins)
    for the report's lateral-deviation-versus-distance plot."""

    def __init__(self) -> None:
        self.profiles: list[dict[str, list[float]]] = []
        self._s: list[float] = []
        self._d: list[float] = []
        self._i: list[bool] = []

    def on_episode_start(self, info, first) -> None:
        self._s, self._d, self._i = [], [], []

    def on_step(self, record: StepRecord) -> None:
        self._s.append(record.route_progress)
        self._d.append(record.lateral_deviation)
        self._i.append(record.intervention)

    def on_episode_end(self, result) -> None:
        s = np.asarray(self._s)
        if s.size == 0:
            return None
        keep = np.concatenate([[True], np.diff(np.floor(s)) != 0])
        self.profiles.append({"s": s[keep].round(2).tolist(),
                              "lateral": np.asarray(self._d)[keep].round(3).tolist(),
                              "intervention": np.asarray(self._i)[keep].tolist()})
        return None


@dataclass(frozen=True)
class EvalReport:
    """Result of :func:`evaluate`.

    Attributes:
        scenario: scenario name; town, weather: where.
        checkpoint: what was evaluated.
        threshold: intervention threshold [m].
        episodes: per-episode summaries (+ seed, eval_seed, termination).
        aggregate: over all episodes (see :func:`drive_il.metrics.aggregate`).
        seed_mean, seed_std: mean and standard deviation over evaluation seeds of the
            per-seed aggregates, for :data:`drive_il.metrics.METRIC_KEYS`.
        profiles: lateral deviation against route distance per episode.
        interventions: one row per intervention onset: where, why and how the learner
            failed (:mod:`drive_il.evaluation.trace`); with a spec without interventions
            (the learner drives alone, NoCrash), one row per collision instead.
        per_town: the aggregate of each town's episodes, for a scenario that names
            several test towns (``towns``); empty for one town.
    """

    scenario: str
    town: str
    weather: str
    checkpoint: str
    threshold: float
    episodes: tuple[dict, ...]
    aggregate: dict[str, float]
    seed_mean: dict[str, float]
    seed_std: dict[str, float]
    profiles: tuple[dict, ...] = field(default=(), repr=False)
    interventions: tuple[dict, ...] = field(default=(), repr=False)
    per_town: dict[str, dict[str, float]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def evaluate(sim, scenario: Scenario, *, learner, expert, seeds: int = 3, episodes: int | None = None,
             interventions: InterventionConfig | None = None, observers: Sequence[Any] = (),
             checkpoint: str = "", progress: bool = False, pool: Any = None, spec: RolloutSpec | None = None,
             extra_observers: Callable[[], Sequence[Any]] | None = None) -> EvalReport:
    """Drive the learner on ``scenario`` (use ``scenario.test_scenario()`` for the test
    routes) with DAVE-2 interventions and the expert shadowing.

    Args:
        sim: the simulator (unused with a ``pool``).
        scenario: where to drive (its seed is the base seed).
        learner: a Driver (e.g. PolicyDriver).
        expert: the expert Driver.
        seeds: number of evaluation seeds (>= 1).
        episodes: episodes per seed (default ``scenario.test.episodes``).
        interventions: intervention rule (default InterventionConfig(): 1.0 m).
        observers: extra observers (overlay, recorder; in-process only).
        checkpoint: label for the report.
        progress: show a tqdm progress bar.
        pool: a :class:`~drive_il.rollout.parallel.RolloutPool` (None: this process
            drives). Every episode keeps its seed, so the report is the same for any
            number of workers.
        spec: how every episode is driven (default: the learner drives with
            ``interventions``); ``interventions`` is ignored when a spec is given.
        extra_observers: called once per episode, returns fresh picklable observers
            driven with it (in a worker with a pool); after the episode each one's
            ``row`` dict (if it has one) is merged into the episode's row.

    Raises:
        ValueError: seeds < 1 or episodes < 1; observers with a pool; a spec whose
            driver is not "learner" or "expert".
    """
    from ..rollout.parallel import DriverRecipe, EpisodeJob, InlinePool

    if seeds < 1:
        raise ValueError(f"seeds must be >= 1, got {seeds}")
    n_ep = scenario.test.episodes if episodes is None else episodes
    if n_ep < 1:
        raise ValueError(f"episodes must be >= 1, got {n_ep}")
    if spec is None:
        interventions = interventions or InterventionConfig()
        spec = RolloutSpec(driver="learner", interventions=interventions)
    elif spec.driver not in ("learner", "expert"):
        raise ValueError(f"evaluate: spec.driver must be 'learner' or 'expert', got {spec.driver!r}")
    # no interventions (a protocol where the policy drives alone): the report's threshold is NaN
    threshold = spec.interventions.threshold if spec.interventions is not None else math.nan
    trace_threshold = threshold if spec.interventions is not None else InterventionConfig().threshold
    drivers = Drivers(expert=expert, learner=learner if spec.driver == "learner" else None)
    if pool is None:
        runner, recipe = InlinePool(sim, drivers, observers), None
    else:
        if observers:
            raise ValueError("observers (the overlay) need --workers 1: they run in this process")
        runner, recipe = pool, DriverRecipe.of(drivers)
    jobs = []
    for k in range(seeds):
        for j in range(n_ep):
            i = len(jobs)
            jobs.append(EpisodeJob(index=i, scenario=scenario, seed=scenario.seed + 1000 * k + j, episode=i,
                                   spec=spec, drivers=recipe,
                                   observers=(DeviationProfile(),
                                              InterventionTrace(threshold=trace_threshold,
                                                                collisions=spec.interventions is None),
                                              *(extra_observers() if extra_observers is not None else ()))))
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=len(jobs), desc=f"eval {scenario.where}/{scenario.weather}", unit="ep", leave=False)

    def on_outcome(o) -> None:
        if o.error is not None:
            raise o.error
        if bar is not None:
            bar.update(1)

    try:
        outcomes = runner.run(jobs, on_outcome)
    finally:
        if bar is not None:
            bar.close()
    prof = DeviationProfile()
    trace_rows: list[dict] = []
    rows: list[dict] = []
    per_seed: list[dict[str, float]] = []
    for k in range(seeds):
        sums = []
        for job, o in zip(jobs[k * n_ep:(k + 1) * n_ep], outcomes[k * n_ep:(k + 1) * n_ep]):
            res = o.result
            p, t, *extra = o.observers
            prof.profiles.extend(p.profiles)
            trace_rows.extend(t.rows)
            sums.append(res.summary)
            more: dict = {}
            for x in extra:
                more.update(getattr(x, "row", None) or {})
            rows.append({"seed": job.seed, "eval_seed": k, "termination": res.termination, "town": res.info.town,
                         **res.summary, **more})
        per_seed.append(aggregate(sums))
    meta = ("seed", "eval_seed", "termination", "town")
    agg = aggregate([{k: v for k, v in r.items() if k not in meta} for r in rows])
    per_town: dict[str, dict[str, float]] = {}
    if scenario.towns:
        for town in dict.fromkeys(r["town"] for r in rows):
            per_town[town] = aggregate([{k: v for k, v in r.items() if k not in meta} for r in rows
                                        if r["town"] == town])
    with warnings.catch_warnings():  # a metric that is NaN for every seed (no learner ran) stays NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = {k: float(np.nanmean([a[k] for a in per_seed])) for k in METRIC_KEYS}
        std = {k: float(np.nanstd([a[k] for a in per_seed])) for k in METRIC_KEYS}
    return EvalReport(scenario=scenario.name, town=scenario.where, weather=scenario.weather,
                      checkpoint=str(checkpoint), threshold=threshold, episodes=tuple(rows),
                      aggregate=agg, seed_mean=mean, seed_std=std, profiles=tuple(prof.profiles),
                      interventions=tuple(trace_rows), per_town=per_town)
