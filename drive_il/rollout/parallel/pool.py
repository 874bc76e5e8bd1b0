"""Rollout pools: where episodes are driven.

* :class:`InlinePool`: this process, with the caller's simulator and drivers (one
  worker; the overlay and a human driver work here only). This is ``--workers 1``.
* :class:`ProcessPool`: ``N`` local worker processes (``multiprocessing``, spawn), each
  owning a simulator (``--workers N``).
* :class:`~drive_il.parallel.ray_pool.RayPool`: ``N`` Ray actors, on one machine or a
  cluster (``--ray auto|ADDRESS``).

Every pool drives jobs with :meth:`drive_il.parallel.jobs.WorkerState.execute`, so an
episode is the same whichever pool drove it. :meth:`RolloutPool.run` hands the jobs out
to idle workers, calls ``on_outcome`` as each finishes (in the order they finish) and
returns the outcomes in job order.

**A worker that dies** (killed, out of memory, its machine or its CARLA server gone in a
way that kills the process) has its job re-run on another worker, up to
``max_attempts`` times in all; the dead worker is replaced by a new one in the same slot
(the same CARLA server). The run goes on and :attr:`RolloutPool.retried` says what was
re-run and why. A job that fails inside a living worker (a lost CARLA connection, a
failed write) is not re-run by the pool: its outcome carries the error, and the caller
decides (``collect`` counts consecutive failures as before).
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import wait as mp_wait
from typing import Any

from ...errors import DriveILError
from .jobs import EpisodeJob, JobOutcome, SimRecipe, WorkerState

__all__ = ["InlinePool", "ProcessPool", "RolloutPool", "WorkerLost", "default_workers"]

log = logging.getLogger(__name__)


class WorkerLost(DriveILError):
    """A job's worker died ``max_attempts`` times in a row: the run stops."""


@dataclass
class _Busy:
    job: EpisodeJob
    attempt: int


class RolloutPool:
    """Hands jobs to workers (see the module docstring).

    Subclasses provide ``_start(slot)``, ``_submit(worker, job, attempt)``,
    ``_wait(busy) -> [(worker, outcome or None when it died, reason)]``, ``_stop(worker)``.

    Attributes:
        workers: the number of workers.
        remote: True when jobs leave this process (drivers travel as recipes).
        retried: one line per job re-run after its worker died.
        max_attempts: tries per job (the first included) before :class:`WorkerLost`.
    """

    remote = True
    kind = "pool"

    def __init__(self, workers: int, *, max_attempts: int = 3) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.workers = int(workers)
        self.max_attempts = int(max_attempts)
        self.retried: list[str] = []
        self._slots: dict[int, Any] = {}

    # -- backend hooks
    def _start(self, slot: int) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def _submit(self, worker: Any, job: EpisodeJob, attempt: int) -> None:  # pragma: no cover
        raise NotImplementedError

    def _wait(self, busy: dict[int, _Busy]) -> list[tuple[int, JobOutcome | None, str]]:  # pragma: no cover
        raise NotImplementedError

    def _stop(self, worker: Any, *, kill: bool = False) -> None:  # pragma: no cover
        raise NotImplementedError

    # -- the dispatcher
    def run(self, jobs: Sequence[EpisodeJob], on_outcome: Callable[[JobOutcome], None] | None = None
            ) -> list[JobOutcome]:
        """Drive ``jobs`` and return their outcomes in job order.

        Args:
            jobs: the episodes (their ``index`` fields must be 0..len-1 in order).
            on_outcome: called in this process for each outcome as it arrives; an
                exception raised there stops the run (the other workers' episodes in
                progress are abandoned: their workers are stopped) and propagates.

        Raises:
            WorkerLost: a job's worker died ``max_attempts`` times.
            KeyboardInterrupt: the workers are stopped first.
        """
        pending: deque[tuple[EpisodeJob, int]] = deque((j, 1) for j in jobs)
        out: dict[int, JobOutcome] = {}
        busy: dict[int, _Busy] = {}
        try:
            while pending or busy:
                for slot in range(self.workers):
                    if not pending:
                        break
                    if slot in busy:
                        continue
                    if slot not in self._slots:
                        self._slots[slot] = self._start(slot)
                    job, attempt = pending.popleft()
                    try:
                        self._submit(self._slots[slot], job, attempt)
                    except (OSError, EOFError) as e:  # the worker died between jobs
                        self._replace(slot)
                        pending.appendleft((job, attempt))
                        log.warning("worker %d was gone before %s (%s); replaced", slot, job.describe(), e)
                        continue
                    busy[slot] = _Busy(job, attempt)
                for slot, outcome, reason in self._wait(busy):
                    b = busy.pop(slot)
                    if outcome is None:  # the worker died with the job
                        self._replace(slot)
                        if b.attempt >= self.max_attempts:
                            raise WorkerLost(f"{b.job.describe()}: its worker died {b.attempt} times ({reason}); "
                                             "stopping (finished episodes are kept)")
                        line = (f"{b.job.describe()}: worker {slot} died ({reason}); re-run "
                                f"(attempt {b.attempt + 1})")
                        self.retried.append(line)
                        log.warning("%s", line)
                        pending.appendleft((b.job, b.attempt + 1))
                        continue
                    outcome.attempts = b.attempt
                    out[outcome.index] = outcome
                    if on_outcome is not None:
                        on_outcome(outcome)
        except BaseException:
            for slot in list(busy):  # abandon the episodes in progress
                self._replace(slot, restart=False)
            raise
        return [out[j.index] for j in jobs]

    def _replace(self, slot: int, *, restart: bool = False) -> None:
        w = self._slots.pop(slot, None)
        if w is not None:
            try:
                self._stop(w, kill=True)
            except Exception:  # noqa: BLE001 - it is dead already
                pass
        if restart:
            self._slots[slot] = self._start(slot)

    def close(self) -> None:
        """Stop the workers (idempotent)."""
        for slot in list(self._slots):
            w = self._slots.pop(slot)
            try:
                self._stop(w)
            except Exception:  # noqa: BLE001
                pass

    def __enter__(self) -> RolloutPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def describe(self) -> str:
        return f"{self.workers} {self.kind} worker(s)"


class InlinePool(RolloutPool):
    """Jobs driven in this process, one at a time, with the caller's simulator and
    drivers (and extra observers such as the overlay): ``--workers 1``.

    Args:
        sim: the simulator.
        drivers: drivers of the jobs that carry no recipe.
        observers: extra observers of every job.
    """

    remote = False
    kind = "in-process"

    def __init__(self, sim, drivers=None, observers: Sequence[Any] = ()) -> None:
        super().__init__(1)
        self.state = WorkerState(sim, drivers=drivers, observers=tuple(observers))

    def run(self, jobs: Sequence[EpisodeJob], on_outcome: Callable[[JobOutcome], None] | None = None
            ) -> list[JobOutcome]:
        out = []
        for job in jobs:
            o = self.state.execute(job)
            out.append(o)
            if on_outcome is not None:
                on_outcome(o)
        return out

    def close(self) -> None:
        self.state.close()

    def describe(self) -> str:
        return "1 worker (this process)"


# ---------------------------------------------------------------------------- local processes
def _worker_main(conn, slot: int, recipe: SimRecipe, threads: int) -> None:
    """A local worker process: build the simulator lazily, drive jobs until told to stop."""
    import signal
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    try:
        import torch
        torch.set_num_threads(max(1, threads))
    except ImportError:  # pragma: no cover
        pass
    state = WorkerState(recipe=recipe.for_slot(slot), name=f"local-{slot}")
    try:
        while True:
            try:
                msg = conn.recv()
            except (EOFError, OSError):
                break
            if msg is None:
                break
            job, attempt = msg
            outcome = state.execute(job, attempt)
            try:
                conn.send(outcome)
            except Exception as e:  # noqa: BLE001 - an unpicklable result: report it instead
                from .jobs import portable_error
                conn.send(JobOutcome(index=job.index, result=None, error=portable_error(e), worker=state.name,
                                     attempts=attempt))
    finally:
        state.close()


@dataclass
class _LocalWorker:
    process: Any
    conn: Any


class ProcessPool(RolloutPool):
    """``workers`` local processes (``multiprocessing`` with the spawn start method),
    each owning a simulator built from ``recipe.for_slot(slot)``.

    Args:
        workers: number of processes (>= 1).
        recipe: the simulator recipe.
        threads: torch threads per worker (1: the control loop's batch-1 inference is
            fastest on one thread).
        max_attempts: tries per job before :class:`WorkerLost`.
    """

    kind = "local"

    def __init__(self, workers: int, recipe: SimRecipe, *, threads: int = 1, max_attempts: int = 3) -> None:
        super().__init__(workers, max_attempts=max_attempts)
        self.recipe = recipe
        self.threads = threads
        self._ctx = mp.get_context("spawn")

    def _start(self, slot: int) -> _LocalWorker:
        parent, child = self._ctx.Pipe(duplex=True)
        p = self._ctx.Process(target=_worker_main, args=(child, slot, self.recipe, self.threads),
                              name=f"drive_il-worker-{slot}", daemon=True)
        p.start()
        child.close()
        return _LocalWorker(p, parent)

    def _submit(self, worker: _LocalWorker, job: EpisodeJob, attempt: int) -> None:
        if not worker.process.is_alive():
            raise EOFError("worker process exited")
        worker.conn.send((job, attempt))

    def _wait(self, busy: dict[int, _Busy]) -> list[tuple[int, JobOutcome | None, str]]:
        by_obj: dict[Any, int] = {}
        for slot in busy:
            w = self._slots[slot]
            by_obj[w.conn] = slot
            by_obj[w.process.sentinel] = slot
        ready = mp_wait(list(by_obj))
        done: dict[int, tuple[int, JobOutcome | None, str]] = {}
        for r in ready:
            slot = by_obj[r]
            if slot in done:
                continue
            w = self._slots[slot]
            outcome = None
            if w.conn.poll():
                try:
                    outcome = w.conn.recv()
                except (EOFError, OSError):
                    outcome = None
            if outcome is not None:
                done[slot] = (slot, outcome, "")
            elif not w.process.is_alive():
                w.process.join(timeout=1)
                code = w.process.exitcode
                reason = f"exit code {code}" if code is None or code >= 0 else f"killed by signal {-code}"
                done[slot] = (slot, None, reason)
        return list(done.values())

    def _stop(self, worker: _LocalWorker, *, kill: bool = False) -> None:
        if kill:
            if worker.process.is_alive():
                worker.process.kill()
        else:
            try:
                worker.conn.send(None)
            except (OSError, EOFError, BrokenPipeError):
                pass
        worker.process.join(timeout=10)
        if worker.process.is_alive():  # pragma: no cover - a stuck worker
            worker.process.kill()
            worker.process.join(timeout=5)
        worker.conn.close()

    def pids(self) -> list[int]:
        """The worker processes' ids (tests)."""
        return [w.process.pid for w in self._slots.values()]


def default_workers() -> int:
    """The number of CPUs this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1
