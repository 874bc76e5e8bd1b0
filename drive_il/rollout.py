"""The one place where simulator, drivers, labeller, recorder and overlay meet.

One episode, step by step::

    step_t ──> expert.act   (label, always: DAgger's "the expert labels every visited state")
          ──> learner.act   (prediction, when a learner runs)
          ──> human.act     (when a human drives or holds the gate)
          ──> arbitration   who executes: expert | learner | human | DAgger mixture
                            (beta_i pi* + (1 - beta_i) pi_hat_i, Ross et al. 2011),
                            DAVE-2 interventions / HG-DAgger gate (takeover until
                            re-centred), noise injection (CIL / DART)
          ──> sim.step(executed) ──> step_{t+1}, events
          ──> observers.on_step(StepRecord)   (recorder, overlay, TensorBoard ...)

Observers are composed, not subclassed (imitation's ``TrajectoryAccumulator``): any
object with ``on_episode_start(info, first_step)``, ``on_step(record)`` and
``on_episode_end(result)`` (which may return the path of a file it wrote), and
optionally ``on_episode_abort(reason)`` or ``discard()`` (called instead of
``on_episode_end`` when the episode is interrupted or the backend is lost: a recorder
discards its partial file).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from dataclasses import dataclass
from typing import Any, Protocol, Sequence

import numpy as np

from .driver import Driver
from .evaluation.metrics import EpisodeTrace, summarize
from .geometry import project_onto_polyline
from .scenario import Scenario
from .sim.base import Simulator, StartPose
from .types import EpisodeInfo, EpisodeResult, EventKind, Route, Step, StepRecord

__all__ = [
    "Observer",
    "TakeoverConfig",
    "Takeover",
    "run_episode",
    "episode_info",
    "TERMINATIONS",
]

log = logging.getLogger(__name__)

#: Why an episode can end.
TERMINATIONS = ("route_completed", "timeout", "collision", "off_road", "off_route", "stuck",
                "interrupted", "failed")


class Observer(Protocol):
    """Receives the episode as it happens."""

    def on_episode_start(self, info: EpisodeInfo, first: Step) -> None: ...

    def on_step(self, record: StepRecord) -> None: ...

    def on_episode_end(self, result: EpisodeResult) -> Any: ...


@dataclass(frozen=True)
class TakeoverConfig:
    """DAVE-2-style interventions (evaluation) and the expert-gated HG-DAgger mode.

    The expert takes over when |lateral deviation| > ``threshold`` or on a collision or
    on leaving the road, and keeps control until the car is re-centred:
    |lateral deviation| < ``recenter_drift`` and |heading error| < ``recenter_heading``
    for ``recenter_steps`` consecutive steps.

    Attributes:
        threshold: [m] (DAVE-2: 1.0 m).
        recenter_drift: [m].
        recenter_heading: [rad].
        recenter_steps: consecutive re-centred steps that end a takeover.
        on_collision: a collision triggers a takeover.
        on_off_road: leaving the road triggers a takeover.
    """

    threshold: float = 1.0
    recenter_drift: float = 0.3
    recenter_heading: float = math.radians(8.0)
    recenter_steps: int = 10
    on_collision: bool = True
    on_off_road: bool = True

    def __post_init__(self) -> None:
        if not self.threshold > 0:
            raise ValueError(f"TakeoverConfig.threshold must be > 0 m, got {self.threshold!r}")
        if not 0 < self.recenter_drift < self.threshold:
            raise ValueError(f"TakeoverConfig.recenter_drift must be in (0, threshold), got {self.recenter_drift!r}")


class Takeover:
    """The takeover state machine of :class:`TakeoverConfig`.

    Attributes:
        active: the expert (or human) currently holds control.
        onsets: number of takeovers (interventions) so far.
    """

    def __init__(self, config: TakeoverConfig) -> None:
        self.config = config
        self.active = False
        self.onsets = 0
        self._calm = 0

    def update(self, drift: float, heading_error: float, collided: bool, left_road: bool) -> bool:
        """Advance one step; returns whether the takeover is active for this step."""
        c = self.config
        if not self.active:
            if (abs(drift) > c.threshold or (collided and c.on_collision)
                    or (left_road and c.on_off_road)):
                self.active = True
                self.onsets += 1
                self._calm = 0
        else:
            if abs(drift) < c.recenter_drift and abs(heading_error) < c.recenter_heading:
                self._calm += 1
                if self._calm >= c.recenter_steps:
                    self.active = False
            else:
                self._calm = 0
        return self.active


def episode_info(sim: Simulator, scenario: Scenario, seed: int, *, episode: int, route: Route | None,
                 driver: str, dagger_round: int | None = None, beta: float | None = None,
                 noise: dict | None = None) -> EpisodeInfo:
    """The EpisodeInfo (episode metadata) for an episode that is starting."""
    from .config import to_dict
    return EpisodeInfo(
        scenario=scenario.name,
        scenario_source=scenario.source,
        scenario_dict=scenario.to_dict(),
        town=scenario.town,
        seed=int(seed),
        episode=int(episode),
        weather=scenario.weather,
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
    )


def run_episode(
    sim: Simulator,
    scenario: Scenario,
    seed: int,
    *,
    expert: Driver,
    driver: str = "expert",
    learner: Driver | None = None,
    human: Driver | None = None,
    beta: float | None = None,
    mixing: str = "step",
    rng: np.random.Generator | None = None,
    takeover: TakeoverConfig | None = None,
    human_gate: Any = None,
    noise: Any = None,
    observers: Sequence[Any] = (),
    episode: int = 0,
    route: Route | None = None,
    start: StartPose | None = None,
    max_steps: int | None = None,
    dagger_round: int | None = None,
    gated_labels_only: bool = False,
    stuck_seconds: float = 20.0,
    off_route_distance: float = 8.0,
) -> EpisodeResult:
    """Drive one episode and return its result (summary metrics included).

    Args:
        sim: the simulator (embedded or CARLA).
        scenario: the scenario; ``seed`` selects the episode (route, traffic, noise).
        expert: labels every state (its control is computed at every step).
        driver: who executes: "expert", "learner" (needs ``learner``), "mixture" (DAgger:
            the expert with probability ``beta``, else the learner; needs ``learner`` and
            ``beta``) or "human" (needs ``human``).
        learner: the policy; its prediction is computed at every step when given.
        human: a human driver (keyboard, wheel), for driver="human" or the human gate.
        beta: DAgger mixing probability in [0, 1].
        mixing: "step" (a coin per step) or "episode" (one coin per episode).
        rng: generator for the mixing coins (default: from ``seed``).
        takeover: DAVE-2 interventions / expert-gated HG-DAgger: when the learner drifts
            past the threshold the expert takes over until re-centred, flagged
            ``intervention``. The episode goes on (no termination on collision or
            off-road while a takeover can rescue it).
        human_gate: an object with ``active(step) -> bool`` and ``control(step) ->
            Control``: while active the human drives and the step is flagged as an
            intervention (human-gated DAgger, Kelly et al. 2019).
        noise: a noise injector with ``begin_episode(rng) -> bool`` and
            ``perturb(control, sim_time) -> (Control, bool)`` applied to the executed
            control (the stored expert label stays clean).
        observers: recorder, overlay, ... (see module docstring).
        episode: episode index (metadata).
        route: use this route instead of the scenario's.
        start: override the start pose.
        max_steps: step limit (default ``scenario.max_steps``).
        dagger_round: DAgger round (metadata).
        gated_labels_only: metadata flag for gated DAgger (only takeover segments are
            labelled; the dataset filters on the intervention flag).
        stuck_seconds: end the episode ("stuck") after this long below 0.1 m/s.
        off_route_distance: without takeover, end the episode ("off_route") when
            |lateral deviation| exceeds this [m].

    Returns:
        EpisodeResult with ``summary`` from :func:`drive_il.evaluation.metrics.summarize`
        and ``path`` of the recorded file when a recorder observed it.

    Raises:
        ValueError: inconsistent arguments (driver without its policy, beta outside
            [0, 1]).
        KeyboardInterrupt, SimulatorConnectionError: propagated after observers were
            told to abort (``on_episode_abort``).
    """
    if driver not in ("expert", "learner", "mixture", "human"):
        raise ValueError(f"driver must be expert, learner, mixture or human, got {driver!r}")
    if driver in ("learner", "mixture") and learner is None:
        raise ValueError(f"driver={driver!r} needs a learner")
    if driver == "human" and human is None:
        raise ValueError("driver='human' needs a human driver")
    if driver == "mixture":
        if beta is None or not (0.0 <= beta <= 1.0):
            raise ValueError(f"beta must be in [0, 1], got {beta!r}")
        if mixing not in ("step", "episode"):
            raise ValueError(f"mixing must be 'step' or 'episode', got {mixing!r}")
    rng = rng if rng is not None else np.random.default_rng([int(seed), 7919])
    limit = int(max_steps if max_steps is not None else scenario.max_steps)

    step = sim.reset(scenario, seed, route=route, start=start)
    route = step.world_state.route
    if route is None:
        raise ValueError("the simulator returned no route; the rollout needs one")
    expert.reset(step)
    if learner is not None:
        learner.reset(step)
    if human is not None:
        human.reset(step)
    noise_on = bool(noise.begin_episode(rng)) if noise is not None else False
    noise_desc = dict(getattr(noise, "describe", lambda: {})()) if noise is not None else {}
    if noise is not None:
        noise_desc["active"] = noise_on
    info = episode_info(sim, scenario, seed, episode=episode, route=route, driver=driver,
                        dagger_round=dagger_round, beta=beta, noise=noise_desc)
    if gated_labels_only:
        info = dataclasses.replace(info, noise={**info.noise, "gated_labels_only": True})
    for o in observers:
        o.on_episode_start(info, step)

    episode_expert = bool(rng.random() < beta) if (driver == "mixture" and mixing == "episode") else None
    tk = Takeover(takeover) if takeover is not None else None
    xy, s_arr = route.xy, route.s
    junction = np.array([w.is_junction for w in route.waypoints], bool)
    hint = 0
    T = limit
    buf = {k: np.zeros(T) for k in ("x", "y", "lat", "head", "prog", "es", "ls", "xs", "speed")}
    flags = {k: np.zeros(T, bool) for k in ("inter", "coll", "off", "lane", "junc")}
    last_events: tuple = ()
    slow_steps = 0
    termination = "timeout"
    n = 0
    t0 = time.perf_counter()
    try:
        for n in range(limit):
            ego = step.world_state.ego
            proj = project_onto_polyline(xy, s_arr, ego.x, ego.y, ego.yaw, hint=hint)
            hint = proj.index
            e_ctl = expert.act(step)
            l_ctl = learner.act(step) if learner is not None else None
            collided = any(e.kind is EventKind.COLLISION for e in last_events)
            left_road = any(e.kind is EventKind.OFF_ROAD for e in last_events)
            intervention = False
            # who drives
            if driver == "expert":
                who, ctl = "expert", e_ctl
            elif driver == "human":
                who, ctl = "human", human.act(step)
            elif driver == "learner":
                who, ctl = "learner", l_ctl
            else:  # mixture
                use_expert = episode_expert if episode_expert is not None else bool(rng.random() < beta)
                who, ctl = ("expert", e_ctl) if use_expert else ("learner", l_ctl)
            if tk is not None and driver in ("learner", "mixture") and tk.update(
                    proj.lateral, proj.heading_error, collided, left_road):
                who, ctl, intervention = "expert", e_ctl, True
            if human_gate is not None and human_gate.active(step):
                who, ctl, intervention = "human", human_gate.control(step), True
            noisy = False
            if noise_on and who == "expert" and not intervention:
                ctl, noisy = noise.perturb(ctl, step.world_state.sim_time)
            nxt = sim.step(ctl)
            record = StepRecord(
                step=step, executed=ctl, expert=e_ctl, learner=l_ctl, driver=who,
                intervention=intervention, noise=noisy, lateral_deviation=proj.lateral,
                heading_error=proj.heading_error, route_progress=proj.s, events=nxt.events,
                expert_path=getattr(expert, "intended_path", None), beta=beta,
                dagger_round=dagger_round,
            )
            for o in observers:
                o.on_step(record)
            # per-step trace
            buf["x"][n], buf["y"][n] = ego.x, ego.y
            buf["lat"][n], buf["head"][n], buf["prog"][n] = proj.lateral, proj.heading_error, proj.s
            buf["es"][n] = e_ctl.steer
            buf["ls"][n] = l_ctl.steer if l_ctl is not None else np.nan
            buf["xs"][n] = ctl.steer
            buf["speed"][n] = ego.speed
            flags["inter"][n] = intervention
            flags["junc"][n] = junction[min(proj.index + 1, len(junction) - 1)] or junction[proj.index]
            for e in nxt.events:
                if e.kind is EventKind.COLLISION:
                    flags["coll"][n] = True
                elif e.kind is EventKind.OFF_ROAD:
                    flags["off"][n] = True
                elif e.kind is EventKind.LANE_INVASION:
                    flags["lane"][n] = True
            last_events = nxt.events
            step = nxt
            # termination
            if proj.s >= route.length - 1.5 and proj.index >= len(xy) - 3:
                termination = "route_completed"
                n += 1
                break
            if tk is None:
                if flags["coll"][n] and driver != "human":
                    termination = "collision"
                    n += 1
                    break
                if flags["off"][n] and driver != "human":
                    termination = "off_road"
                    n += 1
                    break
                if abs(proj.lateral) > off_route_distance:
                    termination = "off_route"
                    n += 1
                    break
            slow_steps = slow_steps + 1 if abs(step.world_state.ego.speed) < 0.1 else 0
            if slow_steps * scenario.dt >= stuck_seconds:
                termination = "stuck"
                n += 1
                break
        else:
            n = limit
    except BaseException as exc:  # KeyboardInterrupt, lost server, bugs: no half-written episode
        reason = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
        for o in observers:
            abort = getattr(o, "on_episode_abort", None) or getattr(o, "discard", None)
            if abort is not None:
                try:
                    abort(reason)
                except Exception:  # pragma: no cover - never mask the original error
                    log.exception("observer abort failed")
        raise
    wall = time.perf_counter() - t0
    trace = EpisodeTrace(
        dt=scenario.dt, route_length=route.length,
        x=buf["x"][:n], y=buf["y"][:n], lateral_deviation=buf["lat"][:n],
        heading_error=buf["head"][:n], route_progress=buf["prog"][:n],
        expert_steer=buf["es"][:n], learner_steer=buf["ls"][:n], executed_steer=buf["xs"][:n],
        intervention=flags["inter"][:n], collision=flags["coll"][:n], off_road=flags["off"][:n],
        lane_invasion=flags["lane"][:n], in_junction=flags["junc"][:n], speed=buf["speed"][:n],
        intervention_onsets=(tk.onsets if tk is not None else None), wall_seconds=wall,
    )
    summary = summarize(trace)
    if termination == "route_completed":
        summary["route_completion"] = 100.0
    result = EpisodeResult(info=info, termination=termination, steps=n, summary=summary)
    path = None
    for o in observers:
        p = o.on_episode_end(result)
        if p is not None and path is None:
            path = str(p)
    if path is not None:
        result = dataclasses.replace(result, path=path)
    return result
