"""Collect episodes into a demonstration directory: resumable, crash-safe, one owner.

Episode ``j`` of a directory is driven with seed ``first_seed + j`` and written as
``episode_{j:06d}.h5`` (see :mod:`drive_il.data.storage`). Re-running the same
collection skips every finished episode (listed in the directory), so a crash or a
Ctrl-C loses at most the episode in progress: Ctrl-C discards the partial file cleanly
and stops; a lost CARLA server marks the episode failed (nothing half-written), the
simulator reconnects at the next reset and the collection goes on. A failed write (disk
full) stops the collection with one line; the partial file is removed, finished
episodes stay.

One writer at a time: the collection holds the directory's lock
(:func:`drive_il.data.storage.locked_directory`) from start to end; a second process
on the same directory fails at once instead of recording the same episodes again.

Resuming checks that the directory holds demonstrations of the same scenario: the
scenario recorded in each finished file (``scenario_json``) must agree with the one
given now, and so must the camera rig, or the collection refuses with one line (mixing
scenarios into one directory would go unnoticed in training). Compared: every field of
the scenario except ``name`` (a renamed copy drives the same), ``seed`` (each episode
records its own; ``--first-seed`` and DAgger rounds choose other seeds), ``test`` and
``pipeline`` (evaluation and DAgger settings: they do not change what is recorded, and
``drive-il dagger --rounds`` changes them when it resumes), ``noise`` (noise injection
is a way of collecting, recorded per episode in ``noise_json``; ``drive-il collect
--noise-*`` changes it without changing the scenario). Fields that a file does not
record (written by an older version) are not compared. Resuming also repairs the
manifest from the finished files (:func:`drive_il.data.tools.repair_dir`: a crash
between the rename and the manifest append leaves a file without its line).

Used by ``drive-il collect``, the DAgger rounds and the main job.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import DataError, SimulatorConnectionError
from ..scenario import Scenario
from ..sim.base import Simulator
from ..types import EpisodeResult
from .arbitration import Drivers
from .episode import run_episode
from .spec import CollectSpec

__all__ = ["SCENARIO_KEYS_NOT_COMPARED", "CollectResult", "collect", "resume_problem"]

#: Scenario fields that may differ between the episodes of one directory (see the
#: module docstring); ``cameras`` is compared on its own (the camera rig).
SCENARIO_KEYS_NOT_COMPARED: tuple[str, ...] = ("name", "seed", "test", "pipeline", "noise", "source", "cameras")

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
        retried: one line per episode re-run because its worker died.
    """

    out_dir: Path
    results: list[EpisodeResult] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    frames: int = 0
    retried: list[str] = field(default_factory=list)


def collect(sim: Simulator | None, scenario: Scenario, out_dir: str | Path, spec: CollectSpec, drivers: Drivers, *,
            observers: Sequence[Any] = (), progress: bool = True, pool: Any = None) -> CollectResult:
    """Drive ``spec.episodes`` episodes into ``out_dir``, skipping finished ones.

    Args:
        sim: the simulator (None with a ``pool``: its workers own theirs).
        scenario: the scenario (``scenario.seed`` is the default first seed).
        out_dir: demonstration directory (created).
        spec: how many episodes, from which seed, driven how.
        drivers: expert, learner, ... (see :func:`drive_il.rollout.run_episode`); with
            a ``pool`` they travel to the workers as a
            :class:`~drive_il.rollout.parallel.DriverRecipe`.
        observers: extra observers (overlay; in-process only); the episode recorder is
            added first.
        progress: tqdm progress bar over episodes.
        pool: a :class:`~drive_il.rollout.parallel.RolloutPool` of workers (None: this
            process drives). Episode ``j`` keeps seed ``first_seed + j`` whichever
            worker drives it, so the files are the same for any number of workers; this
            process holds the directory's lock while the workers write, and a worker
            that dies has its episode re-run (the partial file is overwritten).

    Raises:
        ValueError: the rollout spec's mode needs a driver that ``drivers`` lacks;
            observers or a human driver with a pool of workers.
        KeyboardInterrupt: after discarding the partial episode.
        SimulatorConnectionError: more than ``spec.max_failures`` consecutive failures.
        DataError: ``out_dir`` cannot be created; another process is writing it; it
            holds episodes of another scenario or camera rig; a write failed (disk
            full: the partial file is removed, finished episodes stay).
        WorkerLost: an episode's worker died ``pool.max_attempts`` times.
    """
    from ..data.storage import locked_directory

    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"{out}: cannot create the demonstration directory "
                        f"({e.strerror or e}); expected a directory path that can be written") from None
    with locked_directory(out):
        _prepare_resume(out, scenario)
        return _collect_locked(sim, scenario, out, spec, drivers, observers, progress, pool)


def _collect_locked(sim: Simulator | None, scenario: Scenario, out: Path, spec: CollectSpec, drivers: Drivers,
                    observers: Sequence[Any], progress: bool, pool: Any) -> CollectResult:
    from ..data.storage import PARTIAL_SUFFIX, episode_filename, finished_episode_indices
    from .parallel import DriverRecipe, EpisodeJob, InlinePool

    episodes = spec.episodes
    base = scenario.seed if spec.first_seed is None else int(spec.first_seed)
    done = set(finished_episode_indices(out))
    res = CollectResult(out_dir=out, skipped=sorted(i for i in done if i < episodes))
    todo = [j for j in range(episodes) if j not in done]
    if pool is None:
        runner = InlinePool(sim, drivers, observers)
        recipe = None
    else:
        if observers:
            raise ValueError("observers (the overlay) need --workers 1: they run in this process")
        runner, recipe = pool, DriverRecipe.of(drivers)
    jobs = [EpisodeJob(index=k, scenario=scenario, seed=base + j, episode=j, spec=spec.rollout, drivers=recipe,
                       record_dir=str(out)) for k, j in enumerate(todo)]
    bar = None
    if progress and todo:
        from tqdm import tqdm
        bar = tqdm(total=episodes, initial=episodes - len(todo), unit="ep", desc=f"collect {out.name}",
                   dynamic_ncols=True)
    fails = 0
    finished: set[int] = set()

    def on_outcome(o) -> None:
        nonlocal fails
        j = todo[o.index]
        finished.add(o.index)
        e = o.error
        if e is not None:
            if isinstance(e, SimulatorConnectionError):
                fails += 1
                res.failed.append(j)
                log.warning("episode %d failed (%s); continuing with the next one", j, e)
                if fails > spec.max_failures:
                    raise e
                return
            kept = len(finished_episode_indices(out))
            if isinstance(e, DataError):  # a write failed (disk full): the recorder removed the partial file
                raise DataError(f"{e}; collection stopped at episode {j}, the {kept} finished episode(s) in "
                                f"{out} are kept (re-run the same collection to resume)")
            if isinstance(e, OSError):  # an OSError that did not pass through the recorder (an observer's)
                from ..data.recorder import io_reason
                raise DataError(f"{out}: collection stopped at episode {j} ({io_reason(e)}); the partial file "
                                f"was removed, the {kept} finished episode(s) are kept")
            raise e
        fails = 0
        r = o.result
        res.results.append(r)
        res.frames += r.steps
        if bar is not None:
            bar.set_postfix(frames=res.frames, last=r.termination, refresh=False)
            bar.update(1)

    try:
        runner.run(jobs, on_outcome)
    finally:
        if bar is not None:
            bar.close()
        if pool is not None:  # episodes abandoned in workers that were stopped: no partial file stays
            for k, j in enumerate(todo):
                if k not in finished:
                    p = out / (episode_filename(j) + PARTIAL_SUFFIX)
                    try:
                        p.unlink()
                    except FileNotFoundError:
                        pass
                    except OSError as e:  # pragma: no cover
                        log.warning("%s: cannot remove (%s)", p, e)
        if pool is not None and getattr(pool, "retried", None):
            res.retried = list(pool.retried)
    res.results.sort(key=lambda r: r.info.episode)
    return res


def _prepare_resume(out: Path, scenario: Scenario) -> None:
    """Refuse to resume a directory of another scenario or rig; repair its manifest."""
    from ..data.storage import EpisodeReader, list_episodes
    from ..data.tools import repair_dir

    files = list_episodes(out)
    if not files:
        return
    metas = []
    for p in files:
        try:
            with EpisodeReader(p) as r:
                metas.append(r.meta)
        except DataError as e:  # damaged: reported by `data verify`, left alone here
            log.warning("%s", e)
    problem = resume_problem(scenario, metas)
    if problem:
        raise DataError(f"{out}: {problem}; resuming would mix them: record into a new directory (e.g. "
                        "another --out) instead")
    rep = repair_dir(out, lock=False)
    for line in rep.changes:
        log.warning("manifest repaired: %s", line)


def resume_problem(scenario: Scenario, metas: Sequence[Any]) -> str | None:
    """Why episodes recorded earlier (their :class:`~drive_il.data.storage.EpisodeMeta`)
    must not be resumed with ``scenario``, or None when they may.

    Returns:
        e.g. "holds episodes of another scenario (town is 'circuit' in
        episode_000000.h5 but 'grid' now)".
    """
    from ..data.storage import RIG_KEYS

    now = scenario.to_dict()
    rig_now = {str(c.get("name")): c for c in now.get("cameras", [])}
    for m in metas:
        name = Path(m.path).name
        rec = dict(m.scenario_dict or {})
        for key, value in now.items():
            if key in SCENARIO_KEYS_NOT_COMPARED or key not in rec:
                continue
            diff = _first_difference(rec[key], value, key)
            if diff is not None:
                where, a, b = diff
                names = "" if m.scenario == scenario.name else f"; scenario {m.scenario!r} there, {scenario.name!r} now"
                return f"holds episodes of another scenario ({where} is {_show(a)} in {name} but {_show(b)} now{names})"
        rig_then = rec.get("cameras")
        if not isinstance(rig_then, list):  # an older file: the recorded rig (sizes are the frames')
            rig_then = [{k: v for k, v in c.items() if k not in ("width", "height")} for c in m.cameras]
        then = {str(c.get("name")): c for c in rig_then if isinstance(c, dict)}
        if list(then) != list(rig_now):
            return (f"holds episodes recorded with another camera rig (cameras {', '.join(then) or 'none'} "
                    f"in {name} but {', '.join(rig_now)} now)")
        for cam, c in rig_now.items():
            for k in RIG_KEYS:
                if k in then[cam] and k in c and _differs(then[cam][k], c[k]):
                    return (f"holds episodes recorded with another camera rig (camera {cam!r} {k} is "
                            f"{_show(then[cam][k])} in {name} but {_show(c[k])} now)")
    return None


def _first_difference(a: Any, b: Any, where: str) -> tuple[str, Any, Any] | None:
    """(dotted path, recorded value, value now) of the first difference; keys that only
    one side has are not compared (fields added or removed between versions)."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in b:
            if k in a:
                d = _first_difference(a[k], b[k], f"{where}.{k}")
                if d is not None:
                    return d
        return None
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if len(a) != len(b):
            return where, a, b
        for i, (x, y) in enumerate(zip(a, b)):
            d = _first_difference(x, y, f"{where}[{i}]")
            if d is not None:
                return d
        return None
    return (where, a, b) if _differs(a, b) else None


def _differs(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a != b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        if math.isnan(float(a)) and math.isnan(float(b)):
            return False
        return not math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-9)
    return a != b


def _show(v: Any) -> str:
    try:
        s = json.dumps(v, sort_keys=True)
    except (TypeError, ValueError):
        s = repr(v)
    return s if len(s) <= 60 else s[:57] + "..."
