"""Beta schedules for DAgger: the probability that the expert's control is executed.

DAgger (Ross, Gordon, Bagnell, AISTATS 2011) rolls out pi_i = beta_i pi* + (1 - beta_i)
pi_hat_i. Round 0 is behaviour cloning on expert demonstrations (beta_0 = 1, the
paper's beta_1 = 1). For DAgger rounds i >= 1:

* ``constant``: beta_i = beta.
* ``linear``: beta_i = beta * (1 - (i - 1) / rounds), reaching beta / rounds in the
  last round.
* ``exponential``: beta_i = p^i (the paper's beta_i = p^(i-1) with its first iteration
  being our round 0); ``beta`` is p.
* ``lbc``: Learning by Cheating (Chen et al. 2019): P(student drives) =
  0.5 + 0.5 (1 - 0.95^episode) over the global DAgger episode count, so
  beta = 0.5 * 0.95^episode (per episode, not per round).

A schedule is a callable ``schedule(round, episode) -> beta`` (imitation's
``BetaSchedule`` shape, extended with the episode index LBC needs).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..config import R, one_of, validate_fields
from ..pipeline import SCHEDULES, PipelineConfig

__all__ = ["BetaSchedule", "make_schedule", "SCHEDULES"]


@dataclass(frozen=True)
class BetaSchedule:
    """beta as a function of the DAgger round (and the global episode for LBC).

    Attributes:
        kind: one of :data:`SCHEDULES`.
        beta: constant beta, linear start, or exponential base p; in [0, 1].
        rounds: number of DAgger rounds after round 0 (for ``linear``).

    Raises:
        FieldError: (a ValueError) unknown kind, beta outside [0, 1], rounds < 1.
    """

    kind: str = field(default="exponential", metadata=one_of(*SCHEDULES))
    beta: float = field(default=0.5, metadata=R(0.0, 1.0))
    rounds: int = field(default=4, metadata=R(1, None))

    def __post_init__(self) -> None:
        validate_fields(self)

    @classmethod
    def of(cls, config: PipelineConfig) -> BetaSchedule:
        """The schedule of a pipeline: ``beta_schedule``, ``beta``, ``dagger_rounds``."""
        return cls(kind=config.beta_schedule, beta=config.beta, rounds=config.dagger_rounds)

    def __call__(self, round: int, episode: int = 0) -> float:
        """beta for DAgger ``round`` (0 = behaviour cloning: 1.0) and global DAgger
        ``episode`` index (LBC only)."""
        if round <= 0:
            return 1.0
        if self.kind == "constant":
            return self.beta
        if self.kind == "linear":
            return max(0.0, self.beta * (1.0 - (round - 1) / self.rounds))
        if self.kind == "exponential":
            return self.beta ** round
        return 0.5 * 0.95 ** episode  # lbc


def make_schedule(kind: str, beta: float, rounds: int) -> BetaSchedule:
    """Build a :class:`BetaSchedule` (raises ValueError on bad values)."""
    return BetaSchedule(kind=kind, beta=beta, rounds=rounds)
