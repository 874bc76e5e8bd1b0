"""The DAgger pipeline's settings: one frozen dataclass, :class:`PipelineConfig`.

It is at once

* the scenario's ``[pipeline]`` table (``scenarios/*.toml``, loaded strictly);
* the flags of ``drive-il dagger`` and ``drive-il run`` (generated from the fields by
  :func:`drive_il.config.add_config_flags`; a flag overrides the scenario's value);
* the ``"dagger"`` record of a run's ``dagger.json`` (a re-run must match it) and the
  configuration table of its report (:mod:`drive_il.evaluation.report`).

The beta schedule is built from it by ``drive_il.dagger.schedules.BetaSchedule.of``.

Example (``[pipeline]`` of a scenario; every key is optional)::

    [pipeline]
    model = "dave2"
    bc_episodes = 6
    dagger_rounds = 4          # --dagger-rounds, alias --rounds
    dagger_episodes = 3        # --dagger-episodes, alias --episodes-per-round
    beta_schedule = "exponential"
    beta = 0.5
    mode = "gated"             # HG-DAgger with the expert as the gate
    gate_threshold = 0.6
    sampling = "disagreement"  # DA-RB's critical states: the top share of each round's frames
    critical_share = 0.5
    replay_buffer_frames = 4000
    eval_ensemble = true       # also evaluate the mean of the rounds' policies

Command-line spellings kept from before (aliases): ``--rounds``, ``--episodes-per-round``,
``--schedule``, ``--threshold`` (= ``--intervention-threshold``), ``--no-warm-start``,
``--no-bc-matched``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from .config import R, doc, from_dict, one_of, validate_fields

__all__ = ["MIXINGS", "MODES", "PipelineConfig", "SAMPLINGS", "SCHEDULES", "pipeline_from_record"]

#: beta schedules (see :mod:`drive_il.dagger.schedules`).
SCHEDULES: tuple[str, ...] = ("constant", "linear", "exponential", "lbc")
#: how the expert and the learner share control in a DAgger rollout.
MIXINGS: tuple[str, ...] = ("step", "episode")
#: "mixture": DAgger's beta mixture; "gated": HG-DAgger with the expert as the gate.
MODES: tuple[str, ...] = ("mixture", "gated")
#: which DAgger-round frames the aggregate trains on (see :mod:`drive_il.dagger.sampling`):
#: "uniform": all of them; "disagreement": the ``critical_share`` of each round's frames
#: where the learner disagreed most with the expert (DA-RB's critical states).
SAMPLINGS: tuple[str, ...] = ("uniform", "disagreement")


def _aka(meta: dict[str, Any], *flags: str) -> dict[str, Any]:
    return {**meta, "aliases": flags}


@dataclass(frozen=True)
class PipelineConfig:
    """What a DAgger run does: behaviour cloning (round 0), then DAgger rounds, each
    evaluated on the test scenario, then BC with as many expert labels (see
    :mod:`drive_il.dagger.loop`).

    Attributes:
        model: model preset (name in ``models/`` or a path).
        expert: expert preset (name in ``experts/`` or a path); None = the scenario's.
        bc_episodes: expert demonstration episodes of round 0 (behaviour cloning).
        dagger_rounds: DAgger rounds after round 0.
        dagger_episodes: learner rollouts per DAgger round.
        beta_schedule: one of :data:`SCHEDULES`.
        beta: beta_1 / constant beta / exponential base p.
        mixing: "step" or "episode" mixing of expert and learner control.
        mode: "mixture" (DAgger) or "gated" (HG-DAgger, the expert as the gate).
        gate_threshold: gated mode: |lateral deviation| at which the expert takes over [m].
        warm_start: continue from the previous round's weights (else retrain).
        epochs: training epochs of round 0, of BC with as many labels as DAgger and of
            DAgger rounds trained from scratch (None = the model preset's).
        dagger_epochs: training epochs of warm-started DAgger rounds (None = ``epochs``).
        eval_seeds: evaluation seeds per round.
        eval_episodes: episodes per evaluation seed (None = the test scenario's
            ``test.episodes``).
        intervention_threshold: evaluation: |lateral deviation| at which an
            intervention is counted [m] (DAVE-2: 1.0).
        bc_matched: also train BC on as many expert frames as DAgger's final dataset.
        seed: the run's seed: expert episodes (seed + k), DAgger rollouts and training;
            the test routes keep the test scenario's seeds (None = the scenario's seed).
        max_train_frames: cap on frames per training epoch (None = all).
        sampling: one of :data:`SAMPLINGS`: "uniform" (every frame of the aggregate,
            today's DAgger) or "disagreement" (DA-RB's critical states, Prakash et al.
            CVPR 2020: of each DAgger round, only the ``critical_share`` of its frames
            with the largest |learner steer - expert steer| as recorded when it was
            driven; round 0's demonstrations are all kept).
        critical_share: "disagreement" sampling: share of each DAgger round's frames
            kept (ceil(share * n), at least one).
        replay_buffer_frames: a fixed-size aggregate of at most this many time steps
            (None = unbounded, today's DAgger): round 0's demonstrations are always
            kept; then the oldest DAgger rounds' frames are evicted first, the lowest
            disagreement first within a round (:func:`drive_il.dagger.sampling.replay_buffer`).
        eval_ensemble: also evaluate, from round 1 on, the ensemble of rounds 0..i's
            policies (the mean of their outputs, :class:`drive_il.policies.ensemble.EnsembleDriver`)
            into ``round_NNN/eval_ensemble/``.
    """

    model: str = field(default="dave2", metadata=doc("model preset: a name in models/ or a TOML path"))
    expert: str | None = field(default=None, metadata=doc(
        "expert preset: a name in experts/ or a TOML path (none: the scenario's expert)"))
    bc_episodes: int = field(default=8, metadata=R(1, 100_000, "expert episodes of round 0 (behaviour cloning)"))
    dagger_rounds: int = field(default=4, metadata=_aka(R(1, 100, "DAgger rounds after round 0"), "--rounds"))
    dagger_episodes: int = field(default=4, metadata=_aka(
        R(1, 100_000, "learner rollouts per DAgger round"), "--episodes-per-round"))
    beta_schedule: str = field(default="exponential", metadata=_aka(one_of(*SCHEDULES, doc="beta schedule"),
                                                                    "--schedule"))
    beta: float = field(default=0.5, metadata=R(0.0, 1.0, "beta (constant, linear start, exponential base p)"))
    mixing: str = field(default="step", metadata=one_of(*MIXINGS, doc="mix expert and learner per step or episode"))
    mode: str = field(default="mixture", metadata=one_of(
        *MODES, doc="mixture (DAgger) or gated (HG-DAgger with the expert as the gate)"))
    gate_threshold: float = field(default=0.6, metadata=R(0.5, 50.0, "gated mode: |lateral deviation| at which the expert takes over [m]"))
    warm_start: bool = field(default=True, metadata=doc("start each round from the previous round's weights"))
    epochs: int | None = field(default=6, metadata=R(
        1, 10_000, "training epochs of round 0, matched BC and rounds trained from scratch"))
    dagger_epochs: int | None = field(default=None, metadata=R(
        1, 10_000, "training epochs of warm-started DAgger rounds (none: epochs)"))
    eval_seeds: int = field(default=3, metadata=R(1, 100, "evaluation seeds per round"))
    eval_episodes: int | None = field(default=None, metadata=R(
        1, 10_000, "episodes per evaluation seed (none: the test scenario's)"))
    intervention_threshold: float = field(default=1.0, metadata=_aka(
        R(0.5, 50.0, "evaluation intervention threshold [m] (DAVE-2: 1.0)"), "--threshold"))
    bc_matched: bool = field(default=True, metadata=doc("also train BC on DAgger's number of expert labels"))
    seed: int | None = field(default=None, metadata=R(
        0, 2**30 - 1, "the run's seed: expert episodes (seed + k), DAgger rollouts and training; the test routes "
                      "keep the test scenario's seeds; give seeds >= 1000 apart for independent runs "
                      "(none: the scenario's seed)"))
    max_train_frames: int | None = field(default=None, metadata=R(
        1, 10**9, "cap on frames per training epoch (none: all)"))
    sampling: str = field(default="uniform", metadata=one_of(
        *SAMPLINGS, doc="DAgger rounds' frames trained on: uniform (all) or disagreement (DA-RB's critical states: "
                        "the critical_share of each round's frames with the largest |learner - expert steer|; "
                        "round 0 kept)"))
    critical_share: float = field(default=0.5, metadata=R(
        0.01, 1.0, "disagreement sampling: share of each DAgger round's frames kept, largest disagreement first"))
    replay_buffer_frames: int | None = field(default=None, metadata=R(
        1, 10**9, "fixed-size aggregate [time steps]: round 0 always kept, then the oldest rounds' lowest-"
                  "disagreement frames are evicted first (none: keep everything)"))
    eval_ensemble: bool = field(default=False, metadata=doc(
        "also evaluate the ensemble (mean output) of rounds 0..i's policies"))

    def __post_init__(self) -> None:
        validate_fields(self)


#: ``dagger.json`` of runs made before issue 15 recorded ``DaggerConfig``: other names.
_LEGACY_NAMES = {"rounds": "dagger_rounds", "episodes_per_round": "dagger_episodes"}


def pipeline_from_record(record: Mapping[str, Any], *, source: str = "dagger.json") -> PipelineConfig:
    """The :class:`PipelineConfig` of a run's ``dagger.json`` ``"dagger"`` record; also
    reads the record of runs made before issue 15 (``rounds``, ``episodes_per_round``,
    ``schedule = {kind, beta, rounds}``, ``eval_weathers``).

    Raises:
        ConfigError: a malformed record (one line).
    """
    d = {_LEGACY_NAMES.get(k, k): v for k, v in record.items() if k != "eval_weathers"}
    sched = d.pop("schedule", None)
    if isinstance(sched, Mapping):
        d.setdefault("beta_schedule", sched.get("kind"))
        d.setdefault("beta", sched.get("beta"))
    return from_dict(PipelineConfig, d, source=source)
