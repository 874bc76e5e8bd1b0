"""Noise injection into the executed control, with clean expert labels.

Two published recipes:

* **triangular** steering spikes (CIL, Codevilla et al. 2018, "End-to-end Driving via
  Conditional Imitation Learning"): in a share of the episodes (20% in CIL and Roach) a
  perturbation that rises linearly to a peak and falls back linearly over ``duration``
  seconds is added to the steering; spikes start at random, on average every
  ``interval`` seconds. The car drifts off the lane and the expert's corrections are
  recorded: recovery data that pure demonstrations lack.
* **gaussian** (DART, Laskey et al. 2017, "DART: Noise Injection for Robust Imitation
  Learning"): Gaussian noise of standard deviation ``magnitude`` is added to the
  executed steering at every step of a noisy episode, optionally temporally correlated
  (a first-order autoregressive process with time constant ``correlation_time``).

In both, the **label stays the expert's clean control for the state actually visited**:
the rollout stores ``expert`` = the expert's output and ``executed`` = the perturbed
control (``StepRecord.noise`` = True where they differ). The injector only perturbs;
it never changes what the expert says.

Usage (in the rollout)::

    inj = NoiseInjector(scenario.noise, rng)     # NoiseConfig: the scenario's [noise] table
    noisy_episode = inj.begin_episode(np.random.default_rng(episode_seed))
    ...
    label = expert.act(step)
    executed, noisy = inj.perturb(label, step.observation.sim_time)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..scenario import NOISE_KINDS, NoiseConfig
from ..types import Control

__all__ = ["NoiseConfig", "NoiseInjector", "NOISE_KINDS"]  # NoiseConfig lives with the scenario


class NoiseInjector:
    """Perturbs the executed control of noisy episodes (see module docstring).

    Args:
        config: the settings.
        rng: random generator (spike times, signs, Gaussian draws, and the per-episode
            choice unless :meth:`begin_episode` is given another).

    Attributes:
        active: the current episode is noisy.
    """

    def __init__(self, config: NoiseConfig, rng: np.random.Generator) -> None:
        self.config = config
        self.rng = rng
        self.active = False
        self._reset_state()

    def _reset_state(self) -> None:
        self._next_start: float | None = None
        self._spike: tuple[float, float, float] | None = None  # (start, steer sign, throttle sign)
        self._ar: float = 0.0
        self._last_t: float | None = None

    def begin_episode(self, rng: np.random.Generator | None = None) -> bool:
        """Start an episode; decide with ``rng`` (or the injector's) whether it is noisy
        (probability ``episode_share``). ``rng``, when given, is used for the rest of the
        episode too (seed it from the episode seed for reproducible episodes).

        Returns:
            Whether this episode is noisy.
        """
        if rng is not None:
            self.rng = rng
        self._reset_state()
        share = self.config.episode_share
        self.active = bool(share > 0.0 and (share >= 1.0 or self.rng.random() < share))
        return self.active

    def describe(self) -> dict[str, Any]:
        """The settings as a plain dict (``NoiseConfig.to_dict``)."""
        return self.config.to_dict()

    def settings(self) -> dict[str, Any]:
        """The settings plus whether the current episode is noisy (for EpisodeInfo.noise)."""
        d = self.config.to_dict()
        d["episode_noisy"] = self.active
        return d

    def offset(self, sim_time: float) -> tuple[float, float]:
        """(steer offset, throttle offset) at ``sim_time`` [s]; advances the state.
        Call once per control step with increasing times."""
        if not self.active:
            return 0.0, 0.0
        c = self.config
        t = float(sim_time)
        if c.kind == "gaussian":
            if c.magnitude == 0.0:
                return 0.0, 0.0
            dt = None if self._last_t is None else t - self._last_t
            self._last_t = t
            e = float(self.rng.standard_normal())
            if c.correlation_time > 0.0 and dt is not None and dt > 0.0:
                a = math.exp(-dt / c.correlation_time)
                self._ar = a * self._ar + math.sqrt(1.0 - a * a) * c.magnitude * e
            else:
                self._ar = c.magnitude * e
            return self._ar, 0.0
        # triangular spikes
        if self._next_start is None:
            self._next_start = t + self._gap()
        if self._spike is not None and t >= self._spike[0] + c.duration:
            self._next_start = self._spike[0] + c.duration + self._gap()
            self._spike = None
        if self._spike is None and t >= self._next_start:
            self._spike = (t, 1.0 if self.rng.random() < 0.5 else -1.0,
                           1.0 if self.rng.random() < 0.5 else -1.0)
        if self._spike is None:
            return 0.0, 0.0
        start, s_sign, t_sign = self._spike
        phase = (t - start) / c.duration  # [0, 1)
        envelope = 1.0 - abs(2.0 * phase - 1.0)  # 0 -> 1 at mid-spike -> 0
        return s_sign * c.magnitude * envelope, t_sign * c.throttle_magnitude * envelope

    def _gap(self) -> float:
        iv = self.config.interval
        return float(self.rng.exponential(iv)) if iv > 0.0 else 0.0

    def perturb(self, control: Control, sim_time: float) -> tuple[Control, bool]:
        """The control to execute and whether it differs from ``control``.

        Args:
            control: the expert's clean control (the label).
            sim_time: simulation time of the step [s].

        Returns:
            (executed, noisy): ``executed`` is ``control`` plus the noise, clipped into
            the valid ranges; ``noisy`` is True when it differs from ``control``.
        """
        ds, dth = self.offset(sim_time)
        if ds == 0.0 and dth == 0.0:
            return control, False
        throttle, brake = control.throttle, control.brake
        if dth != 0.0:
            # the throttle offset moves the signed longitudinal command throttle - brake: a
            # push releases the brake first (a car held at a stop creeps forward), a negative
            # offset brakes once the throttle is gone
            a = control.throttle - control.brake + dth
            throttle, brake = max(a, 0.0), max(-a, 0.0)
        executed = Control.clipped(control.steer + ds, throttle, brake, control.hand_brake, control.reverse)
        noisy = (executed.steer != control.steer or executed.throttle != control.throttle
                 or executed.brake != control.brake)
        return (executed, True) if noisy else (control, False)
