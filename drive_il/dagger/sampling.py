"""Which frames of the DAgger aggregate a round trains on: DA-RB's critical states and a
fixed-size replay buffer.

Prakash, Behl, Ohn-Bar, Chitta, Geiger, "Exploring Data Aggregation in Policy Learning
for Vision-based Urban Autonomous Driving", CVPR 2020 (DA-RB) found that plain DAgger's
ever-growing aggregate is dominated by easy states, and that training on the states
where the learner fails ("critical states"), with a fixed-size replay buffer, recovers
part of the gap. The rules here are this project's, in that spirit, and are stated
exactly so that they can be tested:

**Disagreement** of a recorded frame: ``|learner steer - expert steer|`` from the
episode file's ``learner`` and ``expert`` step columns, i.e. of the learner that drove
(or shadowed) that round, as recorded then (it is not recomputed with later policies).
The ``learner`` column is NaN where no learner ran (round 0's demonstrations): such
frames have no disagreement and rank below every frame that has one.

**Candidates** of a round: every frame; in gated mode (HG-DAgger) a DAgger round's
candidates are only its takeover frames (``intervention``), as without these options.

**Critical states** (``sampling = "disagreement"``): of each DAgger round (rounds >= 1)
keep the ``k = ceil(critical_share * n)`` (at least 1) of its ``n`` candidate frames
with the largest disagreement; ties (and NaN) are broken by position (episode file
order, then step). Round 0's expert demonstrations are all kept.

**Replay buffer** (``replay_buffer_frames = N``): the aggregate holds at most N time
steps. Round 0's demonstrations are always kept (if they alone exceed N the buffer holds
them only, with a warning); the room left, ``N - n_0``, goes to the DAgger rounds'
(selected) frames, newest round first and, within a round, largest disagreement first.
Equivalently: when the buffer is full, the **oldest** round's **lowest-disagreement**
frames are evicted first. The buffer of round i+1 is thus always a subset of round i's
buffer plus round i+1's frames (a frame once evicted never comes back), so computing it
afresh from the files each round (what a resumed run does) gives the incremental buffer.

Sizes are in time steps: every camera of a kept step is kept. The selection is made
before the training/validation split by episode, so validation sees the same rule.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..pipeline import PipelineConfig

__all__ = ["AggregateSelection", "critical_states", "disagreement", "replay_buffer", "select_aggregate",
           "selection_active"]

log = logging.getLogger(__name__)


def disagreement(expert_steer: np.ndarray, learner_steer: np.ndarray) -> np.ndarray:
    """(T,) ``|learner - expert|`` steer; NaN where the learner did not run."""
    e = np.asarray(expert_steer, dtype=np.float64).reshape(-1)
    le = np.asarray(learner_steer, dtype=np.float64).reshape(-1)
    return np.abs(le - e)


def _rank(values: np.ndarray) -> np.ndarray:
    """Positions of ``values`` from the largest to the smallest, NaN last, ties by position."""
    key = np.where(np.isnan(values), -np.inf, values)
    return np.argsort(-key, kind="stable")


def critical_states(dis: Sequence[np.ndarray], share: float,
                    candidates: Sequence[np.ndarray] | None = None) -> list[np.ndarray]:
    """One round's keep masks under the critical-state rule (module docstring).

    Args:
        dis: per episode, (T_e,) disagreement.
        share: the share kept, in (0, 1].
        candidates: per episode, (T_e,) bool: the frames that may be kept (default all).

    Returns:
        Per episode, a (T_e,) bool mask: the ``ceil(share * n)`` (at least 1 when n > 0)
        candidates with the largest disagreement.
    """
    if not 0.0 < share <= 1.0:
        raise ValueError(f"critical share must be in (0, 1], got {share!r}")
    cands = [np.ones(len(d), bool) if candidates is None else np.asarray(c, bool)
             for d, c in zip(dis, candidates if candidates is not None else dis)]
    flat = np.concatenate([np.asarray(d, np.float64) for d in dis]) if dis else np.zeros(0)
    cand = np.concatenate(cands) if cands else np.zeros(0, bool)
    idx = np.flatnonzero(cand)
    n = len(idx)
    keep = np.zeros(len(flat), bool)
    if n:
        k = min(n, max(1, math.ceil(share * n - 1e-9)))
        keep[idx[_rank(flat[idx])[:k]]] = True
    return _split(keep, [len(d) for d in dis])


def replay_buffer(rounds: Sequence[Sequence[np.ndarray]], masks: Sequence[Sequence[np.ndarray]],
                  capacity: int) -> list[list[np.ndarray]]:
    """The replay buffer's keep masks (module docstring).

    Args:
        rounds: per round (0 first), per episode, (T_e,) disagreement.
        masks: the same shape, bool: the frames offered to the buffer (after critical
            sampling and the gated mode's candidates).
        capacity: N, the most time steps held.

    Returns:
        ``masks`` with the evicted frames cleared.
    """
    if capacity < 1:
        raise ValueError(f"replay buffer capacity must be >= 1 frame, got {capacity!r}")
    out = [[np.asarray(m, bool).copy() for m in r] for r in masks]
    if not out:
        return out
    n0 = int(sum(m.sum() for m in out[0]))
    room = capacity - n0
    if room < 0:
        log.warning("replay buffer: round 0's %d demonstration frames exceed its %d frames; it holds them only",
                    n0, capacity)
        room = 0
    for r in range(len(out) - 1, 0, -1):                      # newest round first
        dis = np.concatenate([np.asarray(d, np.float64) for d in rounds[r]]) if rounds[r] else np.zeros(0)
        m = np.concatenate(out[r]) if out[r] else np.zeros(0, bool)
        idx = np.flatnonzero(m)
        order = idx[_rank(dis[idx])]                          # largest disagreement first
        take = min(room, len(order))
        m[:] = False
        m[order[:take]] = True
        room -= take
        out[r] = _split(m, [len(d) for d in rounds[r]])
    return out


def _split(flat: np.ndarray, lengths: Sequence[int]) -> list[np.ndarray]:
    return [a.copy() for a in np.split(flat, np.cumsum(lengths)[:-1])] if lengths else []


def selection_active(config: PipelineConfig) -> bool:
    """Whether the pipeline trains on a selection of the aggregate (else: every frame,
    the gated mode's filter aside, exactly as before these options)."""
    return config.sampling != "uniform" or config.replay_buffer_frames is not None


def _mean(a: np.ndarray) -> float | None:
    a = a[np.isfinite(a)]
    return float(a.mean()) if a.size else None


@dataclass
class AggregateSelection:
    """The frames of the aggregate a round trains on.

    Attributes:
        paths: per round, the episode files.
        disagreement: per round, per episode, (T,) disagreement (NaN: no learner).
        candidates: per round, per episode, (T,) bool: the mode's labelled frames.
        keep: per round, per episode, (T,) bool: the frames trained on.
    """

    paths: list[list[Path]]
    disagreement: list[list[np.ndarray]]
    candidates: list[list[np.ndarray]]
    keep: list[list[np.ndarray]]
    _by_path: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for ps, ms in zip(self.paths, self.keep):
            for p, m in zip(ps, ms):
                self._by_path[os.path.realpath(p)] = m

    def mask(self, path: str | Path) -> np.ndarray | None:
        """The keep mask of an episode file (None: not in the aggregate)."""
        key = str(path)
        m = self._by_path.get(key)
        if m is None:
            m = self._by_path.get(os.path.realpath(key))
            if m is not None:
                self._by_path[key] = m
        return m

    def sample_filter(self) -> Callable[[Mapping[str, Any]], bool]:
        """A ``train_policy(sample_filter=...)``: True for the kept frames."""
        def keep(meta: Mapping[str, Any]) -> bool:
            m = self.mask(meta["episode_path"])
            t = int(meta["frame"])
            return bool(m is not None and 0 <= t < len(m) and m[t])
        return keep

    @property
    def kept_frames(self) -> int:
        return int(sum(m.sum() for r in self.keep for m in r))

    def summary(self, config: PipelineConfig) -> dict[str, Any]:
        """What ``round.json`` records under ``"aggregate"``."""
        rows = []
        for i, (dis, cand, keep) in enumerate(zip(self.disagreement, self.candidates, self.keep)):
            d = np.concatenate(dis) if dis else np.zeros(0)
            c = np.concatenate(cand) if cand else np.zeros(0, bool)
            k = np.concatenate(keep) if keep else np.zeros(0, bool)
            rows.append({"round": i, "frames": int(c.sum()), "kept": int(k.sum()),
                         "disagreement_mean": _mean(d[c]), "kept_disagreement_mean": _mean(d[k])})
        return {"sampling": config.sampling, "critical_share": config.critical_share,
                "replay_buffer_frames": config.replay_buffer_frames,
                "frames": int(sum(r["frames"] for r in rows)), "kept_frames": self.kept_frames, "rounds": rows}


def select_aggregate(data_dirs: Sequence[str | Path], config: PipelineConfig) -> AggregateSelection:
    """Read the rounds' step columns (no frame) and apply the pipeline's rules.

    Args:
        data_dirs: the rounds' data directories, round 0 first.
        config: ``sampling``, ``critical_share``, ``replay_buffer_frames``, ``mode``.
    """
    from ..data.storage import EpisodeReader, list_episodes

    gated = config.mode == "gated"
    paths, dis, cands = [], [], []
    for i, d in enumerate(data_dirs):
        ps, ds, cs = [], [], []
        for p in list_episodes(d):
            with EpisodeReader(p) as r:
                steps = r.steps
                e = np.asarray(steps["expert"], np.float64)[:, 0]
                le = np.asarray(steps["learner"], np.float64)[:, 0]
                inter = np.asarray(steps["intervention"], bool)
            ps.append(p)
            ds.append(disagreement(e, le))
            cs.append(inter.copy() if gated and i > 0 else np.ones(len(e), bool))
        paths.append(ps)
        dis.append(ds)
        cands.append(cs)
    keep = [[c.copy() for c in cs] for cs in cands]
    if config.sampling == "disagreement":
        for i in range(1, len(keep)):
            keep[i] = critical_states(dis[i], config.critical_share, cands[i])
    if config.replay_buffer_frames is not None:
        keep = replay_buffer(dis, keep, config.replay_buffer_frames)
    return AggregateSelection(paths=paths, disagreement=dis, candidates=cands, keep=keep)
