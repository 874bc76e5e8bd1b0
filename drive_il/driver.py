"""The Driver protocol: anything that turns a Step into a Control.

The expert reads ``step.world_state`` (privileged); a learner reads only
``step.observation`` (pixels, speed, command); a human reads the keyboard or a wheel.
A small Protocol in the spirit of stable-baselines3's ``PolicyPredictor``: the expert
need not pretend to be an ``nn.Module``.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from .types import Control, Step

__all__ = ["Driver"]


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
