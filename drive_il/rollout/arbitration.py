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
   |lateral deviation| exceeds the threshold, on a collision or leaving the road
   (events of the step before), when the learner is about to run a red light the expert
   stops for, or when it is about to hit a walker or vehicle the expert brakes for
   (:func:`hazard_onset`), the expert drives until the hazard is gone and the car is
   re-centred (:class:`InterventionMonitor`); the step is flagged ``intervention`` and
   the takeover's cause is recorded (``Decision.cause``);
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

__all__ = ["InterventionConfig", "InterventionMonitor", "Drivers", "Decision", "Arbiter", "hazard_onset",
           "hazards_present", "CAUSES"]

#: Intervention causes, in the order they are checked at an onset.
CAUSES = ("lateral_deviation", "collision", "off_road", "red_light", "imminent_collision")

#: Speed below which the car counts as stopped for the hazard rules [m/s].
MOVING_SPEED = 0.5


@dataclass(frozen=True)
class InterventionConfig:
    """DAVE-2-style interventions (evaluation) and the expert-gated HG-DAgger mode.

    The expert takes over (causes, checked in this order):

    * ``"lateral_deviation"``: |lateral deviation| > ``threshold``;
    * ``"collision"``, ``"off_road"``: the event, reported by the step before;
    * ``"red_light"`` (``on_red_light``): the expert stops for a red light
      (``stop_reason == "red_light"``), the car moves (> 0.5 m/s) with its front bumper
      ``gap`` metres before the stop line, the learner "keeps going" (its brake times
      ``brake_decel`` is less than the deceleration ``v^2 / (2 gap)`` that stops the car
      at the line) and either that deceleration reaches ``takeover_decel`` or
      ``gap <= red_light_distance``. ``takeover_decel`` is below the expert's emergency
      deceleration, so the expert taking over still stops before the line;
    * ``"imminent_collision"`` (``on_imminent_collision``): the expert brakes
      (``brake > 0``) for a walker or a vehicle (``stop_reason`` "walker" or
      "vehicle"), the car closes in on it (closing speed ``v_c = v - obstacle speed
      along the route > 0``), the learner keeps going (its brake times ``brake_decel``
      is less than ``v_c^2 / (2 gap)``) and either the time to collision
      ``gap / v_c < ttc_threshold`` or the gap is shorter than the braking distance at
      ``takeover_decel``, ``v_c^2 / (2 takeover_decel)``.

    It keeps control until the hazard is gone (for a "red_light" takeover: the expert
    no longer stops for a red light, i.e. it turned green; for an "imminent_collision"
    one: the expert no longer stops for a walker or vehicle, or the vehicle ahead moves,
    > 0.5 m/s, and no longer closes in: :func:`hazards_present`) and the car is
    re-centred: |lateral deviation| < ``recenter_deviation`` and |heading error| <
    ``recenter_heading`` for ``recenter_steps`` consecutive steps.

    Without lights, walkers and vehicles (or with a learner that brakes like the expert)
    the two hazard rules never fire: the behaviour is the DAVE-2 rule alone.

    Attributes:
        threshold: [m] (DAVE-2: 1.0 m).
        recenter_deviation: [m].
        recenter_heading: [rad].
        recenter_steps: consecutive re-centred steps that end an intervention.
        on_collision: a collision triggers an intervention.
        on_off_road: leaving the road triggers an intervention.
        on_red_light: the "red_light" rule is on.
        on_imminent_collision: the "imminent_collision" rule is on.
        ttc_threshold: [s] critical time to collision, 1.5 s: the threshold that separates
            critical from normal encounters in van der Horst's traffic-conflict studies
            (van der Horst & Hogema, "Time-to-collision and collision avoidance systems",
            ICTCT 1993) and the usual critical TTC of forward-collision warnings.
        takeover_decel: [m/s^2] 4.0: above the 3.4 m/s^2 that most drivers exceed when
            they must stop for an unexpected object (AASHTO Green Book, stopping sight
            distance), i.e. beyond normal braking, and half the embedded car's 8 m/s^2 at
            full brake, leaving the expert margin for its reaction step and the brake's
            build-up.
        red_light_distance: [m] 1.0: a learner still moving (> 0.5 m/s) within this of a
            red stop line is taken over however gently it would need to brake. Below the
            expert's own stop point (``stop_line_margin`` = 1.5 m before the line), where
            the expert is at rest: the expert's own approach (which passes 1.5 m at about
            0.5 m/s with the PID still easing off) never triggers it.
        brake_decel: [m/s^2] deceleration of the car at full brake, to read the learner's
            brake command as a deceleration (the embedded car's
            ``VehicleConfig.max_deceleration``, 8.0).

    Raises:
        ValueError: threshold not > 0, recenter_deviation outside (0, threshold), or a
            hazard threshold not > 0.
    """

    threshold: float = 1.0
    recenter_deviation: float = 0.3
    recenter_heading: float = math.radians(8.0)
    recenter_steps: int = 10
    on_collision: bool = True
    on_off_road: bool = True
    on_red_light: bool = True
    on_imminent_collision: bool = True
    ttc_threshold: float = 1.5
    takeover_decel: float = 4.0
    red_light_distance: float = 1.0
    brake_decel: float = 8.0

    def __post_init__(self) -> None:
        if not self.threshold > 0:
            raise ValueError(f"InterventionConfig.threshold must be > 0 m, got {self.threshold!r}")
        if not 0 < self.recenter_deviation < self.threshold:
            raise ValueError(f"InterventionConfig.recenter_deviation must be in (0, threshold), got {self.recenter_deviation!r}")
        for name in ("ttc_threshold", "takeover_decel", "brake_decel"):
            if not getattr(self, name) > 0:
                raise ValueError(f"InterventionConfig.{name} must be > 0, got {getattr(self, name)!r}")
        if not self.red_light_distance >= 0:
            raise ValueError(f"InterventionConfig.red_light_distance must be >= 0 m, got {self.red_light_distance!r}")


def hazard_onset(config: InterventionConfig, expert: Any, expert_control: Control, learner: Control | None,
                 speed: float) -> str:
    """The hazard cause that starts a takeover at this step (:class:`InterventionConfig`:
    "red_light" or "imminent_collision"), or "".

    Args:
        config: the rules and thresholds.
        expert: the expert after its ``act`` for this step; read through its
            ``stop_reason`` and ``obstacle`` (``gap`` [m], ``speed`` [m/s]) attributes
            (:class:`drive_il.expert.Expert`); an expert without them never starts one.
        expert_control: the expert's control this step.
        learner: the learner's control this step (None: "".)
        speed: the ego's speed [m/s].
    """
    reason = getattr(expert, "stop_reason", "")
    if not reason or learner is None:
        return ""
    ob = getattr(expert, "obstacle", None)
    if ob is None:
        return ""
    v = max(0.0, float(speed))
    gap = max(float(ob.gap), 0.01)
    learner_decel = learner.brake * config.brake_decel
    if reason == "red_light":
        if not config.on_red_light or v <= MOVING_SPEED or ob.gap < 0.0:
            return ""
        need = v * v / (2.0 * gap)
        if learner_decel < need and (need >= config.takeover_decel or ob.gap <= config.red_light_distance):
            return "red_light"
        return ""
    if reason in ("walker", "vehicle"):
        if not config.on_imminent_collision or not expert_control.brake > 0.0:
            return ""
        vc = v - max(0.0, float(ob.speed))
        if vc <= 0.0:
            return ""
        need = vc * vc / (2.0 * gap)
        if learner_decel < need and (gap / vc < config.ttc_threshold or need >= config.takeover_decel):
            return "imminent_collision"
    return ""


def hazards_present(expert: Any, speed: float) -> frozenset[str]:
    """The hazard causes whose hazard persists at this step (they hold a takeover of
    that cause): "red_light" while the expert stops for a red light; "imminent_collision"
    while it stops for a walker or a vehicle that stands (<= 0.5 m/s) or closes in
    (the ego faster by more than 0.5 m/s)."""
    reason = getattr(expert, "stop_reason", "")
    if reason == "red_light":
        return _RED
    if reason in ("walker", "vehicle"):
        ob = getattr(expert, "obstacle", None)
        if ob is None or ob.speed <= MOVING_SPEED or max(0.0, float(speed)) > ob.speed + MOVING_SPEED:
            return _OBSTACLE
    return _NONE


_RED = frozenset({"red_light"})
_OBSTACLE = frozenset({"imminent_collision"})
_NONE: frozenset[str] = frozenset()


class InterventionMonitor:
    """The takeover state machine of :class:`InterventionConfig`.

    Attributes:
        active: the expert (or human) currently holds control.
        onsets: number of takeovers (interventions) so far.
        cause: the cause of the current takeover (one of :data:`CAUSES`; "" when none).
        causes: onsets so far per cause.
    """

    def __init__(self, config: InterventionConfig) -> None:
        self.config = config
        self.active = False
        self.onsets = 0
        self.cause = ""
        self.causes: dict[str, int] = {}
        self._calm = 0

    def update(self, lateral_deviation: float, heading_error: float, collided: bool, left_road: bool, *,
               hazard: str = "", present: frozenset[str] | tuple[str, ...] = ()) -> bool:
        """Advance one step; returns whether an intervention is active for this step.

        Args:
            lateral_deviation: [m].
            heading_error: [rad].
            collided, left_road: events reported by the step before.
            hazard: a hazard cause starting now (:func:`hazard_onset`), or "".
            present: hazard causes whose hazard persists (:func:`hazards_present`); a
                takeover of such a cause is not ended while it does.
        """
        c = self.config
        if not self.active:
            cause = ""
            if abs(lateral_deviation) > c.threshold:
                cause = "lateral_deviation"
            elif collided and c.on_collision:
                cause = "collision"
            elif left_road and c.on_off_road:
                cause = "off_road"
            elif hazard:
                cause = hazard
            if cause:
                self.active = True
                self.onsets += 1
                self.cause = cause
                self.causes[cause] = self.causes.get(cause, 0) + 1
                self._calm = 0
        else:
            if self.cause in present:
                self._calm = 0
            elif abs(lateral_deviation) < c.recenter_deviation and abs(heading_error) < c.recenter_heading:
                self._calm += 1
                if self._calm >= c.recenter_steps:
                    self.active = False
                    self.cause = ""
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
        cause: the takeover's cause (one of :data:`CAUSES`) while a takeover holds
            control, else "" (also for the human gate).
    """

    driver: str
    control: Control
    expert: Control
    learner: Control | None
    intervention: bool
    noise: bool
    cause: str = ""


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
        cause = ""
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
        mon = self.monitor
        if mon is not None:
            speed = step.world_state.ego.speed
            hazard = "" if mon.active else hazard_onset(mon.config, d.expert, e_ctl, l_ctl, speed)
            present = hazards_present(d.expert, speed) if mon.active else _NONE
            if mon.update(lateral_deviation, heading_error, collided, left_road, hazard=hazard, present=present):
                who, ctl, intervention, cause = "expert", e_ctl, True, mon.cause
        if d.gate is not None and d.gate.active(step):
            who, ctl, intervention, cause = "human", d.gate.control(step), True, ""
        noisy = False
        if self.noisy_episode and who == "expert" and not intervention:
            ctl, noisy = self.noise.perturb(ctl, step.world_state.sim_time)
        return Decision(driver=who, control=ctl, expert=e_ctl, learner=l_ctl, intervention=intervention,
                        noise=noisy, cause=cause)
