"""Multi-process training (DistributedDataParallel) for the behaviour-cloning loop.

``drive-il train --nproc N ...`` starts ``python -m torch.distributed.run --standalone
--nproc-per-node N -m drive_il train ...`` (``torchrun --nproc-per-node N -m drive_il
train ...`` works as well); each process reads its place from torchrun's environment
(``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``) into a
:class:`DistContext`, and :func:`drive_il.training.trainer.fit` does the rest:

* the process group: ``gloo`` on the CPU, ``nccl`` on CUDA with process r on
  ``cuda:LOCAL_RANK``;
* one global epoch order for all ranks (the single-process order: the permutation of the
  ``torch.Generator`` seeded from (seed, epoch), or the weighted draws of
  ``balance_steering``/``balance_commands``); rank r takes every ``world_size``-th index
  of each global batch, so the ranks' step-k batches together are the single-process
  step-k batch, and as the loss is a batch mean and DDP averages the gradients, N
  processes compute the single-process update up to float rounding;
* rank 0 alone writes checkpoints, TensorBoard, ``train.json`` and progress bars; the
  others wait for it (:meth:`DistContext.main_only`), and an error on rank 0 is raised
  on every rank, so that no rank hangs.

``WORLD_SIZE`` unset or 1 is the plain single-process loop, untouched.

:func:`train_throughput_ddp` runs ``drive-il train --nproc N`` in a subprocess and
returns the global training throughput [samples/s] (for scaling benchmarks).
"""

from __future__ import annotations

import json
import logging
import math
import os
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..devices import is_cuda, resolve_device
from ..errors import ConfigError, DriveILError

__all__ = ["DistContext", "launch", "launch_command", "rank_batches", "train_throughput_ddp"]

log = logging.getLogger(__name__)


def _env_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"environment variable {name}={raw!r}: expected an integer (set by torchrun)") from None


@dataclass
class DistContext:
    """This process's place in a (possibly) multi-process run.

    Attributes:
        rank: global rank (0 .. world_size - 1); ``RANK``.
        world_size: number of processes; ``WORLD_SIZE`` (1 = not distributed).
        local_rank: rank on this machine; ``LOCAL_RANK`` (the GPU index on CUDA).
        device: the ``torch.device`` of this process, set by :meth:`setup`.
        backend: ``"gloo"`` or ``"nccl"`` once the process group is up, else None.
        owns_group: :meth:`setup` created the process group (so :meth:`destroy` ends it).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: Any = None
    backend: str | None = None
    owns_group: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> DistContext:
        """Read ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` (defaults 0, 1, 0).

        Raises:
            ConfigError: a variable is not an integer, or the ranks do not fit the size.
        """
        env = os.environ if env is None else env
        ws = _env_int(env, "WORLD_SIZE", 1)
        rank = _env_int(env, "RANK", 0)
        local = _env_int(env, "LOCAL_RANK", rank)
        if ws < 1 or not 0 <= rank < ws or local < 0:
            raise ConfigError(f"environment RANK={rank}, LOCAL_RANK={local}, WORLD_SIZE={ws}: expected "
                              f"0 <= RANK < WORLD_SIZE and LOCAL_RANK >= 0 (as torchrun sets them)")
        return cls(rank=rank, world_size=ws, local_rank=local)

    @property
    def enabled(self) -> bool:
        """More than one process."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes files and shows progress."""
        return self.rank == 0

    # ---- set-up and tear-down

    def setup(self, device: Any = "auto", *, flag: str = "device"):
        """Resolve this process's device and, with ``world_size > 1``, join the process
        group (``gloo`` on the CPU, ``nccl`` on CUDA; CUDA processes use
        ``cuda:LOCAL_RANK`` whatever index ``device`` names). Returns the device.

        Raises:
            ConfigError: bad device spec (see :func:`drive_il.devices.resolve_device`),
                more processes on this machine than GPUs, or torch without
                ``torch.distributed``.
        """
        import torch

        dev = resolve_device(device, flag=flag)
        if not self.enabled:
            self.device = dev
            return dev
        import torch.distributed as dist

        if not dist.is_available():
            raise ConfigError(f"WORLD_SIZE={self.world_size}: this torch ({torch.__version__}) has no "
                              f"torch.distributed; run with one process")
        if is_cuda(dev):
            n = torch.cuda.device_count()
            if self.local_rank >= n:
                raise ConfigError(f"{flag} {device}: process LOCAL_RANK={self.local_rank} needs cuda:"
                                  f"{self.local_rank}, torch sees {n} GPU{'s' if n != 1 else ''}; start at most "
                                  f"{n} processes per machine")
            if dev.index is not None and dev.index != self.local_rank and self.world_size > 1:
                log.warning("%s %s: with %d processes each uses cuda:LOCAL_RANK (cuda:%d here)", flag, device,
                            self.world_size, self.local_rank)
            dev = torch.device("cuda", self.local_rank)
            torch.cuda.set_device(dev)
            backend = "nccl"
        else:
            backend = "gloo"
        if dist.is_initialized():
            self.backend = dist.get_backend()
            self.owns_group = False
        else:
            kwargs: dict[str, Any] = {}
            if backend == "nccl":
                kwargs["device_id"] = dev
            dist.init_process_group(backend=backend, init_method="env://", rank=self.rank,
                                    world_size=self.world_size, **kwargs)
            self.backend = backend
            self.owns_group = True
        self.device = dev
        return dev

    def destroy(self, *, wait: bool = True) -> None:
        """Leave the process group, if :meth:`setup` created it; with ``wait``, after a
        barrier (no rank tears its connections down while another still uses them)."""
        if self.owns_group:
            import torch.distributed as dist
            if dist.is_initialized():
                if wait:
                    self.barrier()
                dist.destroy_process_group()
            self.owns_group = False

    # ---- collectives (no-ops with one process)

    @property
    def comm_device(self):
        """Where collective tensors live: the CUDA device under nccl, else the CPU."""
        import torch
        return self.device if self.backend == "nccl" else torch.device("cpu")

    def barrier(self) -> None:
        """Wait for every rank (nothing with one process)."""
        if self.enabled:
            import torch.distributed as dist
            if self.backend == "nccl":
                dist.barrier(device_ids=[self.device.index])
            else:
                dist.barrier()

    def all_reduce(self, values: Sequence[float], op: str = "sum") -> list[float]:
        """Element-wise ``sum`` or ``max`` of a list of floats over the ranks (float64);
        the list itself with one process."""
        if not self.enabled:
            return [float(v) for v in values]
        import torch
        import torch.distributed as dist

        t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=self.comm_device)
        dist.all_reduce(t, op={"sum": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX}[op])
        return [float(v) for v in t.cpu().tolist()]

    def broadcast_object(self, obj: Any, src: int = 0) -> Any:
        """Rank ``src``'s (picklable) ``obj`` on every rank."""
        if not self.enabled:
            return obj
        import torch.distributed as dist

        box = [obj if self.rank == src else None]
        dist.broadcast_object_list(box, src=src, device=self.comm_device if self.backend == "nccl" else None)
        return box[0]

    def main_only(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on rank 0 only and return its result on every rank (the others wait).

        A :class:`~drive_il.errors.DriveILError` raised by ``fn`` on rank 0 is raised on
        every rank (so that no rank waits forever). With one process: ``fn()``.
        """
        if not self.enabled:
            return fn()
        value, error = None, None
        if self.is_main:
            try:
                value = fn()
            except DriveILError as e:
                error = e
        value, error = self.broadcast_object((value, error))
        if error is not None:
            raise error
        return value


def rank_batches(global_batches: Iterable[Sequence[int]], rank: int, world_size: int) -> list[list[int]]:
    """Rank ``rank``'s share of each global batch: every ``world_size``-th index from
    position ``rank`` (``batch[rank::world_size]``), so that the shares of all ranks
    together are the global batch."""
    return [[int(i) for i in b[rank::world_size]] for b in global_batches]


# ---- launching


def launch_command(nproc: int, args: Sequence[str], *, python: str | None = None) -> list[str]:
    """``python -m torch.distributed.run --standalone --nproc-per-node N -m drive_il ARGS``."""
    return [python or sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={int(nproc)}",
            "-m", "drive_il", *[str(a) for a in args]]


def launch(nproc: int, args: Sequence[str], *, env: Mapping[str, str] | None = None,
           capture: bool = False) -> subprocess.CompletedProcess:
    """Run ``drive_il ARGS`` in ``nproc`` processes under torchrun; returns the finished
    process (``returncode`` is torchrun's: 0 when every rank succeeded).

    ``OMP_NUM_THREADS`` is set to ``cpu_count // nproc`` (at least 1) unless the
    environment has it. With ``capture``, stdout and stderr are captured as text.
    """
    e = dict(os.environ if env is None else env)
    if "OMP_NUM_THREADS" not in e:
        e["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // max(1, int(nproc))))
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK", "MASTER_ADDR",
              "MASTER_PORT", "TORCHELASTIC_RUN_ID"):
        e.pop(k, None)          # a launcher inside a distributed job starts a fresh one
    return subprocess.run(launch_command(nproc, args), env=e, check=False, capture_output=capture,
                          text=True if capture else None)


def train_throughput_ddp(data_dirs: Iterable[str | Path], model: str | Path, nproc: int, *, epochs: int = 1,
                         out_dir: str | Path, seed: int = 0, device: str = "cpu",
                         extra_args: Sequence[str] = ()) -> float:
    """Global training throughput [samples/s, all ranks together] of
    ``drive-il train --nproc N`` on ``data_dirs`` (run in a subprocess, read from
    ``out_dir/train.json``: the last epoch's ``samples_per_s``).

    Args:
        data_dirs: episode directories.
        model: a model preset name (``models/``) or TOML file.
        nproc: processes (>= 1; on CUDA at most the number of GPUs).
        epochs: epochs to train.
        out_dir: run directory (a fresh one is best: an existing ``last/`` is not resumed).
        seed: run seed.
        device: ``cpu``, ``cuda``, ``auto``.
        extra_args: more ``drive-il train`` options.

    Raises:
        DriveILError: the run failed (its last line of stderr in the message).
    """
    out = Path(out_dir)
    cmd = [sys.executable, "-m", "drive_il", "train", "--data", *[str(d) for d in data_dirs], "--model", str(model),
           "--out", str(out), "--epochs", str(int(epochs)), "--seed", str(int(seed)), "--device", str(device),
           "--nproc", str(int(nproc)), "--no-progress", *extra_args]
    r = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if r.returncode != 0:
        tail = [ln for ln in (r.stderr or "").strip().splitlines() if ln.strip()]
        err = next((ln for ln in reversed(tail) if ln.startswith("drive-il: error:")), tail[-1] if tail else "")
        raise DriveILError(f"drive-il train --nproc {nproc} failed (exit {r.returncode}): {err.strip()}")
    doc = json.loads((out / "train.json").read_text(encoding="utf-8"))
    v = float(doc.get("samples_per_s", math.nan))
    return v
