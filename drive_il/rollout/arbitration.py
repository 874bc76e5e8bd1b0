"""Who drives this step: the arbitration between expert, learner and human.

Every step the expert labels the state (DAgger's "the expert labels every visited
state", Ross, Gordon, Bagnell 2011) and the learner, when there is one, predicts. Then,
in this order:

1. the **mode** picks a driver: ``"expert"``, ``"learner"``, ``"human"``, or the DAgger
   ``"mixture"`` beta_i pi* + (1 - beta_i) pi_hat_i (Ross et al. 2011): the expert with
   probability ``beta``, a coin per step (``mixing="step"``) or one per episode
   (``mixing="episode"``);
2. a **takeover** (DAVE-2 interventions, Bojarski et al. 2016, arXiv:1604.07316; and
   the expert-gated mode of HG-DAgger): when the learner or the mixture drives and
   |lateral deviation| exceeds the threshold, or on a collision or leaving the road
   (events of the step before), the expert drives until the car is re-centred
   (:class:`InterventionMonitor`); the step is flagged ``intervention``;
3. the **human gate** (HG-DAgger, Kelly et al. 2019): while the gate is active the
   human drives, flagged ``intervention``;
4. **noise injection** (CIL, Codevilla et al. 2018; DART, Laskey et al. 2017): in a
   noisy episode the executed control of plain expert steps is perturbed; the label
   stays the expert's clean control.

Random draws come from one ``numpy.random.Generator`` per episode, in a fixed order:
the noise injector's episode coin, the mixture's episode coin, then one mixture coin
per step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..types import Control, Step
from .driver import Driver, Gate, NoiseSource

__all__ = ["InterventionConfig", "InterventionMonitor", "Drivers", "Decision", "Arbiter"]


@dataclass(frozen=True)
class InterventionConfig:
    """DAVE-2-style interventions (evaluation) and the expert-gated HG-DAgger mode.

    The expert takes over when |lateral deviation| > ``threshold`` or on a collision or
    on leaving the road, and keeps control until the car is re-centred:
    |lateral deviation| < ``recenter_deviation`` and |heading error| < ``recenter_heading``
    for ``recenter_steps`` consecutive steps.

    Attributes:
        threshold: [m] (DAVE-2: 1.0 m).
        recenter_deviation: [m].
        recenter_heading: [rad].
        recenter_steps: consecutive re-centred steps that end an intervention.
        on_collision: a collision triggers an intervention.
        on_off_road: leaving the road triggers an intervention.

    Raises:
        ValueError: threshold not > 0, or recenter_deviation outside (0, threshold).
    """

    threshold: float = 1.0
    recenter_deviation: float = 0.3
    recenter_heading: float = math.radians(8.0)
    recenter_steps: int = 10
    on_collision: bool = True
    on_off_road: bool = True

    def __post_init__(self) -> None:
        if not self.threshold > 0:
            raise ValueError(f"InterventionConfig.threshold must be > 0 m, got {self.threshold!r}")
        if not 0 < self.recenter_deviation < self.threshold:
            raise ValueError(f"InterventionConfig.recenter_deviation must be in (0, threshold), got {self.recenter_deviation!r}")


class InterventionMonitor:
    """The takeover state machine of :class:`InterventionConfig`.

    Attributes:
        active: the expert (or human) currently holds control.
        onsets: number of takeovers (interventions) so far.
    """

    def __init__(self, config: InterventionConfig) -> None:
        self.config = config
        self.active = False
        self.onsets = 0
        self._calm = 0

    def update(self, lateral_deviation: float, heading_error: float, collided: bool, left_road: bool) -> bool:
        """Advance one step; returns whether an intervention is active for this step.

        Args:
            lateral_deviation: [m].
            heading_error: [rad].
            collided, left_road: events reported by the step before.
        """
        c = self.config
        if not self.active:
            if (abs(lateral_deviation) > c.threshold or (collided and c.on_collision)
                    or (left_road and c.on_off_road)):
                self.active = True
                self.onsets += 1
                self._calm = 0
        else:
            if abs(lateral_deviation) < c.recenter_deviation and abs(heading_error) < c.recenter_heading:
                self._calm += 1
                if self._calm >= c.recenter_steps:
                    self.active = False
            else:
                self._calm = 0
        return self.active


@dataclass(frozen=True)
class Drivers:
    """The drivers of a rollout.

    Attributes:
        expert: labels every state (its control is computed at every step).
        learner: the policy; its prediction is computed at every step when given.
        human: a human driver (keyboard, wheel) for the "human" mode.
        gate: the HG-DAgger human gate (:class:`~drive_il.rollout.driver.Gate`).
    """

    expert: Driver
    learner: Driver | None = None
    human: Driver | None = None
    gate: Gate | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    """Who drove one step, and with what.

    Attributes:
        driver: "expert", "learner" or "human".
        control: the control to execute.
        expert: the expert's label for the state.
        learner: the learner's prediction (None without a learner).
        intervention: a takeover or the human gate decided it.
        noise: ``control`` was perturbed by noise injection.
    """

    driver: str
    control: Control
    expert: Control
    learner: Control | None
    intervention: bool
    noise: bool


class Arbiter:
    """Decides who drives each step of one episode (see the module docstring).

    Args:
        drivers: expert, learner, human, gate.
        mode: "expert", "learner", "mixture" or "human".
        beta: DAgger mixing probability in [0, 1] (mixture).
        mixing: "step" or "episode" (mixture).
        interventions: DAVE-2 takeover settings, or None (applies to "learner" and "mixture").
        noise: noise injector, or None.
        rng: the episode's generator for the coins.

    Raises:
        ValueError: the mode needs a driver that is missing.
    """

    def __init__(self, drivers: Drivers, *, mode: str, beta: float | None = None, mixing: str = "step",
                 interventions: InterventionConfig | None = None, noise: NoiseSource | None = None,
                 rng: np.random.Generator) -> None:
        if mode in ("learner", "mixture") and drivers.learner is None:
            raise ValueError(f"driver={mode!r} needs a learner")
        if mode == "human" and drivers.human is None:
            raise ValueError("driver='human' needs a human driver")
        self.drivers = drivers
        self.mode = mode
        self.beta = beta
        self.mixing = mixing
        self.noise = noise
        self.rng = rng
        self.monitor = (InterventionMonitor(interventions)
                        if interventions is not None and mode in ("learner", "mixture") else None)
        self._has_interventions = interventions is not None
        self.noisy_episode = False
        self._episode_expert: bool | None = None

    @property
    def interventions(self) -> int | None:
        """Intervention onsets so far (None without an intervention rule)."""
        if not self._has_interventions:
            return None
        return self.monitor.onsets if self.monitor is not None else 0

    def begin_episode(self, first: Step) -> dict[str, Any]:
        """Reset the drivers with the first Step, draw the noise injector's episode
        coin, then the mixture's episode coin (``mixing="episode"``).

        Returns:
            The noise settings as episode metadata (``{}`` without noise), with
            ``active`` telling whether this episode is noisy.
        """
        d = self.drivers
        d.expert.reset(first)
        if d.learner is not None:
            d.learner.reset(first)
        if d.human is not None:
            d.human.reset(first)
        desc: dict[str, Any] = {}
        self.noisy_episode = False
        if self.noise is not None:
            self.noisy_episode = bool(self.noise.begin_episode(self.rng))
            desc = dict(getattr(self.noise, "describe", lambda: {})())
            desc["active"] = self.noisy_episode
        self._episode_expert = None
        if self.mode == "mixture" and self.mixing == "episode":
            self._episode_expert = bool(self.rng.random() < self.beta)
        return desc

    def decide(self, step: Step, lateral_deviation: float, heading_error: float, collided: bool,
               left_road: bool) -> Decision:
        """Query the drivers and decide who drives ``step``.

        Args:
            step: the current state.
            lateral_deviation: [m] at ``step``.
            heading_error: [rad] at ``step``.
            collided, left_road: events reported by the step before.
        """
        d = self.drivers
        e_ctl = d.expert.act(step)
        l_ctl = d.learner.act(step) if d.learner is not None else None
        intervention = False
        mode = self.mode
        if mode == "expert":
            who, ctl = "expert", e_ctl
        elif mode == "human":
            who, ctl = "human", d.human.act(step)
        elif mode == "learner":
            who, ctl = "learner", l_ctl
        else:
            use_expert = (self._episode_expert if self._episode_expert is not None
                          else bool(self.rng.random() < self.beta))
            who, ctl = ("expert", e_ctl) if use_expert else ("learner", l_ctl)
        if self.monitor is not None and self.monitor.update(lateral_deviation, heading_error, collided, left_road):
            who, ctl, intervention = "expert", e_ctl, True
        if d.gate is not None and d.gate.active(step):
            who, ctl, intervention = "human", d.gate.control(step), True
        noisy = False
        if self.noisy_episode and who == "expert" and not intervention:
            ctl, noisy = self.noise.perturb(ctl, step.world_state.sim_time)
        return Decision(driver=who, control=ctl, expert=e_ctl, learner=l_ctl, intervention=intervention,
                        noise=noisy)
