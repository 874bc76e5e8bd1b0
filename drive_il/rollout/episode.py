"""One episode: the place where simulator, drivers, recorder and overlay meet.

One step::

    step_t ──> Arbiter.decide     expert label (always), learner prediction, who drives
                                  (arbitration.py: mode, DAgger mixture, DAVE-2 interventions,
                                  HG-DAgger gate, noise injection)
          ──> sim.step(executed) ──> step_{t+1}, events
          ──> StepRecord ──> observers.on_step   (recorder, overlay, trace, ...)
                         ──> StepRow             (the per-step schema the metrics read)
          ──> Termination.check                  (termination.py)

At the end the rows become an :class:`~drive_il.metrics.EpisodeTrace` and the
summary metrics (:func:`drive_il.metrics.summarize`); observers' ``on_episode_end``
gets the :class:`~drive_il.types.EpisodeResult`. The observer protocol is in
:mod:`drive_il.rollout.observers`.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..geometry import project_onto_polyline
from ..metrics import EpisodeTrace, summarize
from ..scenario import Scenario
from ..sim.base import Simulator, StartPose
from ..types import EpisodeInfo, EpisodeResult, EventKind, Route, StepRecord, StepRow, step_columns
from .arbitration import Arbiter, Drivers
from .spec import RolloutSpec
from .termination import Termination
from .towns import episode_scenario

__all__ = ["run_episode", "episode_info"]

log = logging.getLogger(__name__)

#: Second entry of the arbitration rng's seed: ``default_rng([seed, ARBITRATION_STREAM])``.
ARBITRATION_STREAM = 7919


def episode_info(sim: Simulator, scenario: Scenario, seed: int, *, episode: int, route: Route | None,
                 driver: str, dagger_round: int | None = None, beta: float | None = None,
                 noise: dict | None = None, town: str | None = None, weather: str | None = None,
                 density: str | None = None) -> EpisodeInfo:
    """The EpisodeInfo (episode metadata) for an episode that is starting (``town``,
    ``weather``, ``density``: those drawn for it when the scenario names several)."""
    from ..config import to_dict
    return EpisodeInfo(
        scenario=scenario.name,
        scenario_source=scenario.source,
        scenario_dict=scenario.to_dict(),
        town=town or scenario.town,
        seed=int(seed),
        episode=int(episode),
        weather=weather or scenario.weather,
        backend=sim.backend,
        dt=scenario.dt,
        cameras=tuple(to_dict(c) for c in scenario.cameras),
        vehicle=to_dict(scenario.vehicle),
        route=route,
        expert_preset=scenario.expert,
        driver=driver,
        dagger_round=dagger_round,
        beta=beta,
        noise=dict(noise or {}),
        density=density or scenario.traffic.density,
    )


def _abort(observers: Sequence[Any], reason: str) -> None:
    for o in observers:
        abort = getattr(o, "on_episode_abort", None) or getattr(o, "discard", None)
        if abort is not None:
            try:
                abort(reason)
            except Exception:  # pragma: no cover - never mask the original error
                log.exception("observer abort failed")


def run_episode(sim: Simulator, scenario: Scenario, seed: int, drivers: Drivers,
                spec: RolloutSpec = RolloutSpec(), *, observers: Sequence[Any] = (), episode: int = 0,
                route: Route | None = None, start: StartPose | None = None) -> EpisodeResult:
    """Drive one episode and return its result (summary metrics included).

    Args:
        sim: the simulator (embedded or CARLA).
        scenario: the scenario; ``seed`` selects the episode (route, traffic, noise, and
            the town when it names several: :mod:`drive_il.rollout.towns`).
        seed: the episode seed; the arbitration's coins come from
            ``numpy.random.default_rng([seed, 7919])``.
        drivers: expert (labels every state), learner, human, gate.
        spec: who drives and how long (:class:`~drive_il.rollout.spec.RolloutSpec`).
        observers: recorder, overlay, ... (see :mod:`drive_il.rollout.observers`).
        episode: episode index (metadata).
        route: use this route instead of the scenario's.
        start: override the start pose.

    Returns:
        EpisodeResult with ``summary`` from :func:`drive_il.metrics.summarize` and
        ``path`` of the recorded file when a recorder observed it.

    Raises:
        ValueError: the spec's mode needs a driver that ``drivers`` lacks, or the
            simulator gave no route.
        KeyboardInterrupt, SimulatorConnectionError: propagated after observers were
            told to abort (``on_episode_abort``).
    """
    rng = np.random.default_rng([int(seed), ARBITRATION_STREAM])
    arbiter = Arbiter(drivers, mode=spec.driver, beta=spec.beta, mixing=spec.mixing, interventions=spec.interventions,
                      noise=spec.noise, rng=rng)
    limit = int(spec.max_steps if spec.max_steps is not None else scenario.max_steps)

    drive = episode_scenario(scenario, seed)   # the town, weather, density of this episode (the lists)
    step = sim.reset(drive, seed, route=route, start=start)
    route = step.world_state.route
    if route is None:
        raise ValueError("the simulator returned no route; the rollout needs one")
    noise_desc = arbiter.begin_episode(step)
    if spec.gated_labels_only:
        noise_desc = {**noise_desc, "gated_labels_only": True}
    info = episode_info(sim, scenario, seed, episode=episode, route=route, driver=spec.driver,
                        dagger_round=spec.dagger_round, beta=spec.beta, noise=noise_desc, town=drive.town,
                        weather=drive.weather, density=drive.traffic.density)
    for o in observers:
        o.on_episode_start(info, step)

    ends = Termination(spec.termination, route=route, dt=scenario.dt, rescuable=spec.interventions is not None,
                       human=spec.driver == "human")
    expert = drivers.expert
    learner = drivers.learner
    xy, s_arr = route.xy, route.s
    junction = np.array([w.is_junction for w in route.waypoints], bool)
    last = len(junction) - 1
    rows: list[StepRow] = []
    hint = 0
    last_events: tuple = ()
    termination = "timeout"
    t0 = time.perf_counter()
    try:
        for _ in range(limit):
            ego = step.world_state.ego
            proj = project_onto_polyline(xy, s_arr, ego.x, ego.y, ego.yaw, hint=hint)
            hint = proj.index
            collided = any(e.kind is EventKind.COLLISION for e in last_events)
            left_road = any(e.kind is EventKind.OFF_ROAD for e in last_events)
            d = arbiter.decide(step, proj.lateral, proj.heading_error, collided, left_road)
            nxt = sim.step(d.control)
            record = StepRecord(
                step=step, executed=d.control, expert=d.expert, learner=d.learner, driver=d.driver,
                intervention=d.intervention, noise=d.noise, lateral_deviation=proj.lateral,
                heading_error=proj.heading_error, route_progress=proj.s, events=nxt.events,
                expert_path=getattr(expert, "intended_path", None), beta=spec.beta,
                dagger_round=spec.dagger_round,
                in_junction=bool(junction[min(proj.index + 1, last)] or junction[proj.index]),
                expert_target_speed=float(getattr(expert, "target_speed", math.nan)),
                learner_target_speed=(float(learner.target_speed) if learner is not None
                                      and getattr(learner, "has_speed_head", False) else math.nan),
                intervention_cause=d.cause,
                expert_stop_reason=getattr(expert, "stop_reason", None),
                **_obstacle_fields(expert),
            )
            for o in observers:
                o.on_step(record)
            rows.append(record.row())
            last_events = nxt.events
            step = nxt
            reason = ends.check(record, proj.index, step.world_state.ego.speed)
            if reason is not None:
                termination = reason
                break
    except BaseException as exc:  # KeyboardInterrupt, lost server, bugs: no half-written episode
        _abort(observers, "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed")
        raise
    wall = time.perf_counter() - t0
    trace = EpisodeTrace.from_columns(step_columns(rows), dt=scenario.dt, route_length=route.length,
                                      intervention_onsets=arbiter.interventions, wall_seconds=wall)
    summary = summarize(trace)
    if termination == "route_completed":
        summary["route_completion"] = 100.0
    result = EpisodeResult(info=info, termination=termination, steps=len(rows), summary=summary)
    path = None
    for o in observers:
        p = o.on_episode_end(result)
        if p is not None and path is None:
            path = str(p)
    if path is not None:
        result = dataclasses.replace(result, path=path)
    return result


def _obstacle_fields(expert: Any) -> dict[str, float]:
    """The expert's :attr:`~drive_il.expert.Expert.obstacle` as the StepRecord fields
    ``expert_obstacle_gap`` [m] and ``expert_obstacle_speed`` [m/s]: +inf and NaN when
    it names none, NaN and NaN for an expert without the attribute (a human driver)."""
    if not hasattr(expert, "obstacle"):
        return {"expert_obstacle_gap": math.nan, "expert_obstacle_speed": math.nan}
    ob = expert.obstacle
    if ob is None:
        return {"expert_obstacle_gap": math.inf, "expert_obstacle_speed": math.nan}
    return {"expert_obstacle_gap": float(ob.gap), "expert_obstacle_speed": float(ob.speed)}
