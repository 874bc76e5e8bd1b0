"""Collect episodes into a demonstration directory: resumable, crash-safe.

Episode ``j`` of a directory is driven with seed ``first_seed + j`` and written as
``episode_{j:06d}.h5`` (see :mod:`drive_il.data.storage`). Re-running the same
collection skips every finished episode (listed in the directory), so a crash or a
Ctrl-C loses at most the episode in progress: Ctrl-C discards the partial file cleanly
and stops; a lost CARLA server marks the episode failed (nothing half-written), the
simulator reconnects at the next reset and the collection goes on.

Used by ``drive-il collect``, the DAgger rounds and the main job.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from .errors import SimulatorConnectionError
from .rollout import TakeoverConfig, run_episode
from .scenario import Scenario
from .types import EpisodeResult

__all__ = ["CollectResult", "collect"]

log = logging.getLogger(__name__)


@dataclass
class CollectResult:
    """What a collection did.

    Attributes:
        out_dir: the demonstration directory.
        results: EpisodeResults of the episodes driven now.
        skipped: episode indices already finished before (resume).
        failed: episode indices that failed (backend lost) and were not written.
        frames: frames (control steps) written now.
    """

    out_dir: Path
    results: list[EpisodeResult] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    frames: int = 0


def collect(
    sim,
    scenario: Scenario,
    out_dir: str | Path,
    *,
    episodes: int,
    expert,
    first_seed: int | None = None,
    driver: str = "expert",
    learner=None,
    beta: float | None = None,
    mixing: str = "step",
    takeover: TakeoverConfig | None = None,
    noise=None,
    dagger_round: int | None = None,
    gated_labels_only: bool = False,
    observers: Sequence[Any] = (),
    progress: bool = True,
    max_failures: int = 3,
) -> CollectResult:
    """Drive ``episodes`` episodes into ``out_dir``, skipping finished ones.

    Args:
        sim, scenario, expert, driver, learner, beta, mixing, takeover, noise,
        dagger_round, gated_labels_only: see :func:`drive_il.rollout.run_episode`.
        out_dir: demonstration directory (created).
        episodes: total number of episodes the directory should hold.
        first_seed: seed of episode 0 (default ``scenario.seed``).
        observers: extra observers (overlay).
        progress: tqdm progress bar over episodes.
        max_failures: give up after this many consecutive lost-backend failures.

    Raises:
        KeyboardInterrupt: after discarding the partial episode.
        SimulatorConnectionError: more than ``max_failures`` consecutive failures.
    """
    from .data.recorder import EpisodeRecorder
    from .data.storage import finished_episode_indices

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    base = scenario.seed if first_seed is None else int(first_seed)
    done = set(finished_episode_indices(out))
    res = CollectResult(out_dir=out, skipped=sorted(i for i in done if i < episodes))
    todo = [j for j in range(episodes) if j not in done]
    bar = None
    if progress and todo:
        from tqdm import tqdm
        bar = tqdm(total=episodes, initial=episodes - len(todo), unit="ep", desc=f"collect {out.name}",
                   dynamic_ncols=True)
    fails = 0
    try:
        for j in todo:
            recorder = EpisodeRecorder(out)
            try:
                r = run_episode(sim, scenario, base + j, expert=expert, driver=driver, learner=learner,
                                beta=beta, mixing=mixing, takeover=takeover, noise=noise,
                                observers=[recorder, *observers], episode=j, dagger_round=dagger_round,
                                gated_labels_only=gated_labels_only)
            except SimulatorConnectionError as e:
                fails += 1
                res.failed.append(j)
                log.warning("episode %d failed (%s); continuing with the next one", j, e)
                if fails > max_failures:
                    raise
                continue
            fails = 0
            res.results.append(r)
            res.frames += r.steps
            if bar is not None:
                bar.set_postfix(frames=res.frames, last=r.termination, refresh=False)
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return res
