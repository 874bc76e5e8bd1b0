"""What a rollout does: one typed, validated spec instead of a score of keywords.

A :class:`RolloutSpec` says who drives (mode, DAgger beta and mixing, DAVE-2 interventions,
noise injection), how long (step limit, termination rules) and what DAgger metadata the
episodes carry. The simulator, the scenario, the seed, the drivers
(:class:`~drive_il.rollout.arbitration.Drivers`) and the observers are given beside it
to :func:`drive_il.rollout.run_episode`; one spec serves every episode of a
collection (:class:`CollectSpec`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .arbitration import InterventionConfig
from .driver import NoiseSource
from .termination import TerminationRules

__all__ = ["DRIVER_MODES", "MIXING_MODES", "RolloutSpec", "CollectSpec"]

#: Who executes: see :mod:`drive_il.rollout.arbitration`.
DRIVER_MODES = ("expert", "learner", "mixture", "human")
#: DAgger mixture coins: one per step or one per episode.
MIXING_MODES = ("step", "episode")


@dataclass(frozen=True)
class RolloutSpec:
    """How to drive an episode.

    Attributes:
        driver: "expert", "learner" (needs a learner), "mixture" (DAgger: the expert
            with probability ``beta``, else the learner; needs a learner and ``beta``)
            or "human" (needs a human driver).
        beta: DAgger mixing probability in [0, 1] (recorded with each step).
        mixing: "step" (a coin per step) or "episode" (one coin per episode).
        interventions: DAVE-2 interventions / expert-gated HG-DAgger: when the learner
            drifts past the threshold the expert takes over until re-centred. With
            interventions, collisions, off-road and off-route do not end the episode.
        noise: a noise injector applied to the executed control of expert steps (the
            stored label stays clean); it keeps its state across episodes.
        max_steps: step limit (None: ``scenario.max_steps``).
        termination: the termination rules' settings.
        dagger_round: DAgger round (metadata).
        gated_labels_only: metadata flag for gated DAgger (only takeover segments are
            labels; the dataset filters on the intervention flag).

    Raises:
        ValueError: an unknown driver or mixing mode, a mixture without beta, beta
            outside [0, 1], max_steps < 1 or dagger_round < 0 (one line each).
    """

    driver: str = "expert"
    beta: float | None = None
    mixing: str = "step"
    interventions: InterventionConfig | None = None
    noise: NoiseSource | None = None
    max_steps: int | None = None
    termination: TerminationRules = field(default_factory=TerminationRules)
    dagger_round: int | None = None
    gated_labels_only: bool = False

    def __post_init__(self) -> None:
        if self.driver not in DRIVER_MODES:
            raise ValueError(f"RolloutSpec.driver must be expert, learner, mixture or human, got {self.driver!r}")
        if self.mixing not in MIXING_MODES:
            raise ValueError(f"RolloutSpec.mixing must be 'step' or 'episode', got {self.mixing!r}")
        if self.beta is not None and not 0.0 <= self.beta <= 1.0:
            raise ValueError(f"RolloutSpec.beta must be in [0, 1], got {self.beta!r}")
        if self.driver == "mixture" and self.beta is None:
            raise ValueError("RolloutSpec.driver='mixture' needs beta in [0, 1], got None")
        if self.max_steps is not None and not self.max_steps >= 1:
            raise ValueError(f"RolloutSpec.max_steps must be >= 1, got {self.max_steps!r}")
        if self.dagger_round is not None and not self.dagger_round >= 0:
            raise ValueError(f"RolloutSpec.dagger_round must be >= 0, got {self.dagger_round!r}")


@dataclass(frozen=True)
class CollectSpec:
    """What to collect into a demonstration directory.

    Attributes:
        episodes: number of episodes the directory should hold (episode ``j`` is
            driven with seed ``first_seed + j``).
        first_seed: seed of episode 0 (None: ``scenario.seed``).
        rollout: how each episode is driven.
        max_failures: give up after this many consecutive lost-backend failures.

    Raises:
        ValueError: episodes or max_failures < 0.
    """

    episodes: int
    first_seed: int | None = None
    rollout: RolloutSpec = field(default_factory=RolloutSpec)
    max_failures: int = 3

    def __post_init__(self) -> None:
        if not self.episodes >= 0:
            raise ValueError(f"CollectSpec.episodes must be >= 0, got {self.episodes!r}")
        if not self.max_failures >= 0:
            raise ValueError(f"CollectSpec.max_failures must be >= 0, got {self.max_failures!r}")
