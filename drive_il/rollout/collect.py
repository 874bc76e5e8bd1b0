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
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import SimulatorConnectionError
from ..scenario import Scenario
from ..sim.base import Simulator
from ..types import EpisodeResult
from .arbitration import Drivers
from .episode import run_episode
from .spec import CollectSpec

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


def collect(sim: Simulator, scenario: Scenario, out_dir: str | Path, spec: CollectSpec, drivers: Drivers, *,
            observers: Sequence[Any] = (), progress: bool = True) -> CollectResult:
    """Drive ``spec.episodes`` episodes into ``out_dir``, skipping finished ones.

    Args:
        sim: the simulator.
        scenario: the scenario (``scenario.seed`` is the default first seed).
        out_dir: demonstration directory (created).
        spec: how many episodes, from which seed, driven how.
        drivers: expert, learner, ... (see :func:`drive_il.rollout.run_episode`).
        observers: extra observers (overlay); the episode recorder is added first.
        progress: tqdm progress bar over episodes.

    Raises:
        ValueError: the rollout spec's mode needs a driver that ``drivers`` lacks.
        KeyboardInterrupt: after discarding the partial episode.
        SimulatorConnectionError: more than ``spec.max_failures`` consecutive failures.
    """
    from ..data.recorder import EpisodeRecorder
    from ..data.storage import finished_episode_indices

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    episodes = spec.episodes
    base = scenario.seed if spec.first_seed is None else int(spec.first_seed)
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
                r = run_episode(sim, scenario, base + j, drivers, spec.rollout, observers=[recorder, *observers],
                                episode=j)
            except SimulatorConnectionError as e:
                fails += 1
                res.failed.append(j)
                log.warning("episode %d failed (%s); continuing with the next one", j, e)
                if fails > spec.max_failures:
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
