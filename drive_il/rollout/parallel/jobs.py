"""What a rollout worker is given and what it gives back.

A worker (a process of the local pool, or a Ray actor) owns one simulator, built once
from a :class:`SimRecipe`, and drives :class:`EpisodeJob` s one after another with
:func:`drive_il.rollout.run_episode`, the same function the single-process commands
call. A job names its drivers by a picklable :class:`DriverRecipe` (the expert's
preset values, the learner's checkpoint), which the worker turns into drivers once and
keeps (an LRU of learners, keyed by checkpoint). An episode is fully determined by
(scenario, seed, spec, drivers): a worker that drove other episodes before drives it the
same, so data and metrics do not depend on the number of workers or on which worker
drove which episode.

A job may record its episode (``record_dir``: an
:class:`~drive_il.data.recorder.EpisodeRecorder` into that directory, the file
``episode_{episode:06d}.h5``) and may carry observers: fresh, picklable observer
objects (e.g. the evaluation's deviation profile and intervention trace) that the
worker runs and sends back filled in the :class:`JobOutcome`.

Fault injection for tests: with ``DRIVE_IL_FAULT_KILL="EPISODE:STEP"`` in a worker's
environment, the worker kills its own process (SIGKILL) at that step of that episode
on the job's first attempt, as a crashed worker or a lost machine would.
"""

from __future__ import annotations

import copy
import logging
import os
import signal
import traceback
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ...errors import DriveILError, SimulatorConnectionError
from ...scenario import Scenario
from ...types import EpisodeResult
from ..arbitration import Drivers
from ..episode import run_episode
from ..spec import RolloutSpec

__all__ = ["DriverRecipe", "EpisodeJob", "JobOutcome", "SimRecipe", "WorkerState", "FAULT_ENV"]

log = logging.getLogger(__name__)

#: Environment variable of the fault-injection hook (see the module docstring).
FAULT_ENV = "DRIVE_IL_FAULT_KILL"


@dataclass(frozen=True)
class SimRecipe:
    """How a worker builds its simulator (the arguments of
    :func:`drive_il.sim.make_simulator`).

    Attributes:
        backend: "embedded" or "carla".
        maps_dir: folder of OpenDRIVE towns (None: the default search).
        host, port, tm_port, timeout: the CARLA server, its Traffic Manager port and the
            client time-out [s] (CARLA backend only).
        servers: CARLA servers to share out, ``(host, port, tm_port)`` each: worker
            ``slot`` uses ``servers[slot % len(servers)]``; empty = ``host``/``port``
            for every worker, with Traffic Manager port ``tm_port + slot``.
    """

    backend: str = "embedded"
    maps_dir: str | None = None
    host: str = "localhost"
    port: int = 2000
    tm_port: int = 8000
    timeout: float = 10.0
    servers: tuple[tuple[str, int, int], ...] = ()

    def for_slot(self, slot: int) -> SimRecipe:
        """The recipe of worker ``slot``: its own server (``servers``) or its own
        Traffic Manager port on the one server."""
        if self.servers:
            host, port, tm = self.servers[slot % len(self.servers)]
            return replace(self, host=host, port=port, tm_port=tm, servers=())
        return replace(self, tm_port=self.tm_port + slot, servers=())

    def where(self) -> str:
        """Where this recipe's simulator runs, for messages."""
        if self.backend == "carla":
            return f"CARLA {self.host}:{self.port} (TM {self.tm_port})"
        return "embedded"

    def build(self):
        """A new simulator.

        Raises:
            SimulatorConnectionError: the CARLA server cannot be reached.
        """
        from ...sim import make_simulator
        return make_simulator(self.backend, maps_dir=self.maps_dir, host=self.host, port=self.port,
                              tm_port=self.tm_port, timeout=self.timeout)


@dataclass(frozen=True)
class DriverRecipe:
    """The drivers of a job, as picklable values (no torch module, no simulator).

    Attributes:
        expert_config: the expert's :class:`~drive_il.expert.config.ExpertConfig`.
        vehicle: the expert's vehicle (:class:`~drive_il.scenario.VehicleConfig`).
        learner_checkpoint: the learner's checkpoint directory, a tuple of them (an
            :class:`~drive_il.policies.ensemble.EnsembleDriver` of those members), or
            None.
        learner_kwargs: the learner's resolved settings (vehicle, speeds, cruise gains,
            governor; see :class:`~drive_il.policies.driver.PolicyDriver`).
        device: where the learner runs ("cpu", "cuda", "cuda:N").
    """

    expert_config: Any
    vehicle: Any
    learner_checkpoint: str | tuple[str, ...] | None = None
    learner_kwargs: tuple[tuple[str, Any], ...] = ()
    device: str = "cpu"

    #: PolicyDriver attributes that :meth:`of` reads and :meth:`build` passes back.
    LEARNER_FIELDS = ("vehicle", "target_speed", "turn_speed", "expert_config", "dt", "lateral_accel_limit",
                      "min_speed", "curve_hold", "path_follower", "curve_governor")

    @classmethod
    def of(cls, drivers: Drivers) -> DriverRecipe:
        """The recipe of an expert (and learner) built in this process.

        Raises:
            ValueError: a human driver or a human gate (they need this process's
                keyboard or wheel), or a learner that is not a checkpoint's
                :class:`~drive_il.policies.driver.PolicyDriver`.
        """
        if drivers.human is not None or drivers.gate is not None:
            raise ValueError("a human driver cannot run in a rollout worker; drive with --workers 1")
        e = drivers.expert
        if not hasattr(e, "config") or not hasattr(e, "vehicle"):
            raise ValueError(f"the expert {type(e).__name__} has no config/vehicle to rebuild it in a worker")
        learner, kwargs, device = None, (), "cpu"
        if drivers.learner is not None:
            lr = drivers.learner
            path = getattr(getattr(lr, "info", None), "path", None)
            members = getattr(lr, "members", None)
            if path is None and members and all(m is not None for m in members):
                path = tuple(str(m) for m in members)  # an ensemble: rebuilt from its members
            if path is None:
                raise ValueError(f"the learner {type(lr).__name__} is not loaded from a checkpoint; it cannot "
                                 "be rebuilt in a worker")
            learner = path if isinstance(path, tuple) else str(path)
            kwargs = tuple((k, getattr(lr, k)) for k in cls.LEARNER_FIELDS)
            device = str(getattr(lr, "device", "cpu"))
        return cls(expert_config=e.config, vehicle=e.vehicle, learner_checkpoint=learner, learner_kwargs=kwargs,
                   device=device)

    def build_expert(self):
        from ...expert.expert import Expert
        return Expert(config=self.expert_config, vehicle=self.vehicle)

    def build_learner(self):
        from ...policies.driver import PolicyDriver
        kwargs = dict(self.learner_kwargs)
        if self.device != "cpu":
            kwargs["device"] = self.device
        if isinstance(self.learner_checkpoint, tuple):
            from ...policies.ensemble import EnsembleDriver
            return EnsembleDriver(list(self.learner_checkpoint), **kwargs)
        return PolicyDriver(self.learner_checkpoint, **kwargs)


@dataclass(frozen=True)
class EpisodeJob:
    """One episode to drive.

    Attributes:
        index: position of the job in its batch (results come back in this order).
        scenario: the scenario.
        seed: the episode seed (route, traffic, arbitration coins, noise).
        episode: the episode index (metadata; the recorded file's number).
        spec: how it is driven.
        drivers: the drivers' recipe (None: the pool's own drivers, in-process only).
        record_dir: record the episode into this demonstration directory, or None.
        observers: fresh picklable observers, driven with the episode and returned.
    """

    index: int
    scenario: Scenario
    seed: int
    episode: int
    spec: RolloutSpec
    drivers: DriverRecipe | None = None
    record_dir: str | None = None
    observers: tuple[Any, ...] = ()

    def describe(self) -> str:
        from ..towns import episode_scenario
        where = f" into {self.record_dir}" if self.record_dir else ""
        drawn = episode_scenario(self.scenario, self.seed)   # the drawn town, weather, density of the lists
        density = f", {drawn.traffic.density} traffic" if self.scenario.traffic.densities else ""
        return f"episode {self.episode} (seed {self.seed}, {drawn.town}, {drawn.weather}{density}){where}"


@dataclass
class JobOutcome:
    """What a worker gives back for a job.

    Attributes:
        index: the job's index.
        result: the episode's result, or None when it failed.
        observers: the job's observers after the episode.
        error: the failure (a lost CARLA server is a
            :class:`~drive_il.errors.SimulatorConnectionError`; a failed write a
            :class:`~drive_il.errors.DataError`), or None.
        worker: which worker drove it (e.g. "local-1", "ray-0 on node ...").
        attempts: 1 + the number of times the job was re-run after its worker died.
    """

    index: int
    result: EpisodeResult | None
    observers: tuple[Any, ...] = ()
    error: BaseException | None = None
    worker: str = ""
    attempts: int = 1
    notes: list[str] = field(default_factory=list)


def portable_error(exc: BaseException) -> BaseException:
    """``exc`` as an exception that survives pickling with its one-line message (the
    project's errors and the builtin ones keep their type; anything else becomes a
    :class:`~drive_il.errors.DriveILError` with the type, the message and the worker's
    traceback)."""
    if isinstance(exc, (DriveILError, ValueError, OSError, KeyError, TypeError)):
        try:
            return type(exc)(str(exc))
        except Exception:  # pragma: no cover - an exception class with another signature
            pass
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return DriveILError(f"{type(exc).__name__}: {exc} (in a rollout worker)\n{tb}")


class _FaultKill:
    """The fault-injection observer (``DRIVE_IL_FAULT_KILL``): SIGKILL at a step."""

    def __init__(self, step: int) -> None:
        self.step = step
        self.t = 0

    def on_episode_start(self, info, first) -> None:
        self.t = 0

    def on_step(self, record) -> None:
        self.t += 1
        if self.t >= self.step:
            os.kill(os.getpid(), signal.SIGKILL)

    def on_episode_end(self, result) -> None:
        return None


def _fault_observer(job: EpisodeJob, attempt: int) -> list[Any]:
    spec = os.environ.get(FAULT_ENV, "")
    if not spec or attempt > 1:
        return []
    try:
        ep, step = (int(x) for x in spec.split(":"))
    except ValueError:
        return []
    return [_FaultKill(step)] if ep == job.episode else []


class WorkerState:
    """A worker's simulator and drivers, and the one function that drives a job.

    Args:
        sim: a simulator (in-process pool), or None to build one from ``recipe`` at
            the first job.
        recipe: the simulator's recipe (workers).
        drivers: drivers to use for jobs without a recipe (in-process pool).
        observers: extra observers of every job (in-process pool: the overlay).
        name: the worker's name in outcomes.
        max_learners: learners kept loaded (LRU).
    """

    def __init__(self, sim=None, recipe: SimRecipe | None = None, *, drivers: Drivers | None = None,
                 observers: tuple[Any, ...] = (), name: str = "main", max_learners: int = 3) -> None:
        self.sim = sim
        self.recipe = recipe
        self.drivers = drivers
        self.observers = tuple(observers)
        self.name = name
        self.max_learners = max_learners
        self._experts: dict[Any, Any] = {}
        self._learners: OrderedDict[Any, Any] = OrderedDict()
        self._owns_sim = sim is None

    def _drivers(self, recipe: DriverRecipe | None) -> Drivers:
        if recipe is None:
            if self.drivers is None:
                raise ValueError("the job names no drivers and the worker has none")
            return self.drivers
        key = (repr(recipe.expert_config), repr(recipe.vehicle))
        expert = self._experts.get(key)
        if expert is None:
            expert = self._experts[key] = recipe.build_expert()
        learner = None
        if recipe.learner_checkpoint is not None:
            lkey = (recipe.learner_checkpoint, repr(recipe.learner_kwargs), recipe.device, _mtime(recipe))
            learner = self._learners.get(lkey)
            if learner is None:
                learner = recipe.build_learner()
                self._learners[lkey] = learner
                while len(self._learners) > self.max_learners:
                    self._learners.popitem(last=False)
            else:
                self._learners.move_to_end(lkey)
        return Drivers(expert=expert, learner=learner)

    def execute(self, job: EpisodeJob, attempt: int = 1) -> JobOutcome:
        """Drive ``job``; failures come back in the outcome (KeyboardInterrupt is
        raised)."""
        # in-process the job's observers are copied (a worker gets its own copies by pickling)
        observers = tuple(job.observers) if self._owns_sim else tuple(copy.deepcopy(o) for o in job.observers)
        recorder = None
        try:
            if self.sim is None:
                self.sim = self.recipe.build()
            drivers = self._drivers(job.drivers)
            obs: list[Any] = []
            if job.record_dir is not None:
                from ...data.recorder import EpisodeRecorder
                recorder = EpisodeRecorder(Path(job.record_dir))
                obs.append(recorder)
            obs.extend(observers)
            obs.extend(self.observers)
            obs.extend(_fault_observer(job, attempt))
            result = run_episode(self.sim, job.scenario, job.seed, drivers, job.spec, observers=obs,
                                 episode=job.episode)
            return JobOutcome(index=job.index, result=result, observers=observers, worker=self.name,
                              attempts=attempt)
        except KeyboardInterrupt:
            raise
        except Exception as e:  # noqa: BLE001 - reported to the caller in the outcome
            if recorder is not None:
                recorder.discard("failed")
            if isinstance(e, SimulatorConnectionError) and self._owns_sim and self.sim is not None:
                self._drop_sim()
            return JobOutcome(index=job.index, result=None, observers=observers, error=portable_error(e),
                              worker=self.name, attempts=attempt)

    def _drop_sim(self) -> None:
        try:
            self.sim.close()
        except Exception:  # noqa: BLE001 - the server is gone anyway
            pass
        self.sim = None

    def close(self) -> None:
        if self._owns_sim and self.sim is not None:
            self._drop_sim()


def _mtime(recipe: DriverRecipe) -> float:
    """The learner checkpoint's weights' modification time (a retrained checkpoint in
    the same directory is loaded afresh; an ensemble's newest member)."""
    ck = recipe.learner_checkpoint
    if isinstance(ck, tuple):
        return max(_mtime(replace(recipe, learner_checkpoint=c)) for c in ck)
    try:
        p = Path(ck)
        f = p / "model.safetensors"
        if not f.exists():
            f = p / "best" / "model.safetensors"
        return f.stat().st_mtime
    except (OSError, TypeError):
        return 0.0
