"""Who can act in a rollout: small Protocols, implemented structurally.

The expert reads ``step.world_state`` (privileged); a learner reads only
``step.observation`` (pixels, speed, command); a human reads the keyboard or a wheel.
A small Protocol in the spirit of stable-baselines3's ``PolicyPredictor``: the expert
need not pretend to be an ``nn.Module``. :mod:`drive_il.expert` and
:mod:`drive_il.policies` sit below the rollout and never import this module; they
satisfy :class:`Driver` by having ``name``, ``reset`` and ``act``.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

from ..types import Control, Step

__all__ = ["Driver", "Gate", "NoiseSource"]


@runtime_checkable
class Driver(Protocol):
    """A driver.

    Attributes:
        name: "expert", "learner", "human", ... (recorded with each step).
    """

    name: str

    def reset(self, step: Step) -> None:
        """Called with the first Step of an episode (clears controller state)."""
        ...

    def act(self, step: Step) -> Control:
        """The control for this step."""
        ...


@runtime_checkable
class Gate(Protocol):
    """The human gate of HG-DAgger (Kelly et al. 2019): while ``active`` a human drives
    and the step is flagged as an intervention (e.g. :class:`drive_il.viz.human.HumanGate`)."""

    def active(self, step: Step) -> bool:
        """Whether the human drives ``step`` (called once per step)."""
        ...

    def control(self, step: Step) -> Control:
        """The human's control for ``step`` (called only while active)."""
        ...


@runtime_checkable
class NoiseSource(Protocol):
    """Noise injection into the executed control (CIL / DART; e.g.
    :class:`drive_il.data.noise.NoiseInjector`); the stored expert label stays clean."""

    def begin_episode(self, rng: np.random.Generator) -> bool:
        """Start an episode; returns whether this episode is noisy."""
        ...

    def perturb(self, control: Control, sim_time: float) -> tuple[Control, bool]:
        """The perturbed control at ``sim_time`` [s] and whether it was perturbed."""
        ...

    def describe(self) -> dict[str, Any]:
        """The settings as plain values (episode metadata)."""
        ...
