"""Parallel rollouts: episodes driven by several workers, each owning a simulator.

* :mod:`.jobs`: what a worker is given (:class:`EpisodeJob`, :class:`SimRecipe`,
  :class:`DriverRecipe`) and gives back (:class:`JobOutcome`), and the one function
  that drives a job (:meth:`WorkerState.execute`, which calls
  :func:`drive_il.rollout.run_episode`);
* :mod:`.pool`: the in-process pool (``--workers 1``), local worker processes
  (``--workers N``) and the dispatcher that re-runs the episode of a worker that died;
* :mod:`.ray_pool`: the same workers as Ray actors (``--ray auto|ADDRESS``; optional
  extra ``.[ray]``);
* :mod:`.servers`: ``--carla-servers host:port[,host:port...]``.

Layering: part of ``rollout`` (it drives episodes with :func:`~drive_il.rollout.run_episode`;
``collect`` hands it jobs), below ``evaluation`` and ``dagger``. Episodes keep their seeds, so data, metrics and reports
are the same for any number of workers.
"""

from .jobs import DriverRecipe, EpisodeJob, JobOutcome, SimRecipe, WorkerState
from .factory import make_pool
from .pool import InlinePool, ProcessPool, RolloutPool, WorkerLost, default_workers
from .servers import parse_servers

__all__ = ["DriverRecipe", "EpisodeJob", "InlinePool", "JobOutcome", "ProcessPool", "RolloutPool", "SimRecipe",
           "WorkerLost", "WorkerState", "default_workers", "make_pool", "parse_servers"]
