"""Rollouts as Ray actors (``--ray auto|ADDRESS``): the same jobs as the local pool,
on one machine or on a Ray cluster.

Ray (https://docs.ray.io) schedules the actors and moves jobs and outcomes; this module
only says what an actor does: it owns one simulator
(:class:`~drive_il.parallel.jobs.WorkerState`, built from the pool's
:class:`~drive_il.parallel.jobs.SimRecipe` for its slot, so with ``--carla-servers``
each actor has its own CARLA server and Traffic Manager port) and drives one
:class:`~drive_il.parallel.jobs.EpisodeJob` per call. An actor that dies (its process
killed, its node lost: ``ray.exceptions.RayActorError``) is replaced in its slot and
its episode re-run on a living actor (:class:`~drive_il.parallel.pool.RolloutPool`).

Ray is an optional extra: ``pip install -e '.[ray]'``. ``--ray auto`` connects to the
cluster of ``RAY_ADDRESS`` or of ``ray start`` on this machine, else starts a local one
with as many CPUs as this process may use; ``--ray ADDRESS`` connects to that cluster
(every node needs drive_il installed, and the maps folder where towns are files).
"""

from __future__ import annotations

import logging
import os
from typing import Any

from ...errors import ConfigError
from .jobs import FAULT_ENV, EpisodeJob, JobOutcome, SimRecipe, WorkerState
from .pool import RolloutPool, _Busy, default_workers

__all__ = ["RayPool", "ray_available", "INSTALL_HINT"]

log = logging.getLogger(__name__)

INSTALL_HINT = "Ray is not installed: pip install -e '.[ray]' (or pip install 'ray==2.60.0')"


def ray_available() -> bool:
    """True when ``import ray`` works."""
    try:
        import ray  # noqa: F401
    except ImportError:
        return False
    return True


class _RolloutActor:
    """The body of a Ray actor: one simulator, one job per :meth:`run`."""

    def __init__(self, slot: int, recipe: SimRecipe, threads: int = 1) -> None:
        try:
            import torch
            torch.set_num_threads(max(1, threads))
        except ImportError:  # pragma: no cover
            pass
        import ray
        node = ray.get_runtime_context().get_node_id()[:8]
        self.state = WorkerState(recipe=recipe.for_slot(slot), name=f"ray-{slot} on node {node}")

    def run(self, job: EpisodeJob, attempt: int) -> JobOutcome:
        return self.state.execute(job, attempt)

    def pid(self) -> int:
        return os.getpid()

    def close(self) -> None:
        self.state.close()


class RayPool(RolloutPool):
    """``workers`` Ray actors (see the module docstring).

    Args:
        workers: number of actors.
        recipe: simulator recipe.
        address: "auto" or a Ray address.
        threads: torch threads per actor.
        max_attempts: tries per job.

    Raises:
        ConfigError: Ray is not installed (the line says how to install it), or the
            cluster at ``address`` cannot be reached.
    """

    kind = "Ray"

    def __init__(self, workers: int, recipe: SimRecipe, *, address: str = "auto", threads: int = 1,
                 max_attempts: int = 3) -> None:
        super().__init__(workers, max_attempts=max_attempts)
        try:
            import ray
        except ImportError:
            raise ConfigError(f"--ray {address}: {INSTALL_HINT}") from None
        self.recipe = recipe
        self.threads = threads
        self._ray = ray
        self._started_here = False
        if not ray.is_initialized():
            try:
                if address == "auto":
                    if os.environ.get("RAY_ADDRESS"):
                        ray.init(address=os.environ["RAY_ADDRESS"], log_to_driver=False)
                    else:
                        try:
                            ray.init(address="auto", log_to_driver=False)
                        except (ConnectionError, RuntimeError, ValueError):
                            ray.init(num_cpus=max(default_workers(), workers), include_dashboard=False,
                                     log_to_driver=False)
                            self._started_here = True
                else:
                    ray.init(address=address, log_to_driver=False)
            except (ConnectionError, RuntimeError, ValueError) as e:
                first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                raise ConfigError(f"--ray {address}: cannot connect to the Ray cluster ({first}); start it "
                                  "with `ray start --head` or give its address") from None
        total = int(ray.cluster_resources().get("CPU", 0))
        free = int(ray.available_resources().get("CPU", 0))
        if total < workers:
            raise ConfigError(f"--workers {workers}: the Ray cluster at --ray {address} has {total} CPUs; each "
                              "rollout actor needs one (add nodes or ask for fewer workers)")
        if free < workers:
            log.warning("the Ray cluster has %d of %d CPUs free; %d rollout actors wait until enough are free",
                        free, total, workers)
        opts: dict[str, Any] = {"num_cpus": 1, "max_restarts": 0, "max_task_retries": 0}
        if os.environ.get(FAULT_ENV):  # the fault-injection hook reaches the actors (tests)
            opts["runtime_env"] = {"env_vars": {FAULT_ENV: os.environ[FAULT_ENV]}}
        self._actor_cls = ray.remote(**opts)(_RolloutActor)
        self._refs: dict[int, Any] = {}

    def _start(self, slot: int) -> Any:
        return self._actor_cls.remote(slot, self.recipe, self.threads)

    def _submit(self, worker: Any, job: EpisodeJob, attempt: int) -> None:
        slot = next(s for s, w in self._slots.items() if w is worker)
        self._refs[slot] = worker.run.remote(job, attempt)

    def _wait(self, busy: dict[int, _Busy]) -> list[tuple[int, JobOutcome | None, str]]:
        ray = self._ray
        refs = {self._refs[s]: s for s in busy}
        ready, _ = ray.wait(list(refs), num_returns=1)
        out = []
        for r in ready:
            slot = refs[r]
            self._refs.pop(slot, None)
            try:
                out.append((slot, ray.get(r), ""))
            except ray.exceptions.RayActorError as e:
                out.append((slot, None, f"Ray actor died: {type(e).__name__}"))
            except ray.exceptions.RayTaskError as e:  # an exception escaped the actor method
                cause = e.as_instanceof_cause() if hasattr(e, "as_instanceof_cause") else e
                raise cause from None
        return out

    def _stop(self, worker: Any, *, kill: bool = False) -> None:
        ray = self._ray
        if not kill:
            try:
                ray.get(worker.close.remote(), timeout=30)
            except Exception:  # noqa: BLE001 - it may be dead
                pass
        ray.kill(worker, no_restart=True)

    def pids(self) -> list[int]:
        """The actors' process ids (tests)."""
        return [self._ray.get(w.pid.remote()) for w in self._slots.values()]

    def close(self) -> None:
        super().close()
        if self._started_here and self._ray.is_initialized():
            self._ray.shutdown()

    def describe(self) -> str:
        res = self._ray.cluster_resources()
        return f"{self.workers} Ray actor(s) on a cluster of {int(res.get('CPU', 0))} CPUs"
