"""``drive-il train --data DIR [DIR...] --model models/dave2.toml --out RUN``: behaviour
cloning of a policy on recorded demonstrations (see drive_il.training.trainer).

``--device auto|cpu|cuda|cuda:N`` picks where the network trains (``--amp``: bfloat16
autocast on CUDA). ``--nproc N`` trains with N processes (DistributedDataParallel; see
drive_il.training.distributed): it runs ``python -m torch.distributed.run --standalone
--nproc-per-node N -m drive_il train ...`` (the same options without ``--nproc``) and
returns its exit status; ``torchrun --nproc-per-node N -m drive_il train ...`` works too.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from .common import add_device_args


def register(sub) -> None:
    p = sub.add_parser(
        "train", help="train a policy (ALVINN, DAVE-2) by behaviour cloning on recorded episodes",
        description="Behaviour cloning on episode directories. Writes RUN/best, RUN/last "
                    "(checkpoints) and RUN/tb (TensorBoard: tensorboard --logdir RUN/tb).")
    p.add_argument("--data", type=Path, nargs="+", required=True, metavar="DIR",
                   help="episode directories (drive-il collect output; several are aggregated)")
    p.add_argument("--model", default="dave2",
                   help="model preset: a TOML file or a name in models/ (default dave2)")
    p.add_argument("--out", type=Path, required=True, metavar="RUN", help="run directory")
    p.add_argument("--epochs", type=int, default=None, help="epochs (default: the preset's)")
    p.add_argument("--seed", type=int, default=None, help="seed (default: the preset's training.seed)")
    p.add_argument("--resume", action="store_true",
                   help="continue from RUN/last (an error when RUN holds no finished epoch)")
    p.add_argument("--init-from", type=Path, default=None, metavar="CKPT",
                   help="warm start from a checkpoint of the same architecture")
    p.add_argument("--max-frames", type=int, default=None, help="use at most N training time steps")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--nproc", type=int, default=None, metavar="N",
                   help="train with N processes (DistributedDataParallel through torchrun; gloo on the CPU, "
                        "one GPU each on CUDA); the preset's batch size is split among them")
    add_device_args(p, amp=True)
    p.add_argument("--augment-on", choices=("loader", "device"), default="loader",
                   help="where the training images are augmented: in the DataLoader workers (default; per sample, "
                        "numpy/OpenCV) or on the device (batched torch ops: for a GPU fed by few CPU cores)")
    p.set_defaults(func=run)


def _child_args(args: argparse.Namespace) -> list[str]:
    """The ``drive_il`` arguments of each torchrun process: this command without --nproc."""
    out = ["-v"] * int(getattr(args, "verbose", 0) or 0)
    out += ["train", "--data", *[str(d) for d in args.data], "--model", str(args.model), "--out", str(args.out)]
    for flag, v in (("--epochs", args.epochs), ("--seed", args.seed), ("--init-from", args.init_from),
                    ("--max-frames", args.max_frames)):
        if v is not None:
            out += [flag, str(v)]
    if args.resume:
        out.append("--resume")
    if args.no_progress:
        out.append("--no-progress")
    out += ["--device", str(args.device)]
    if args.amp:
        out.append("--amp")
    return out


def _launch(args: argparse.Namespace, preset) -> int:
    """``drive-il train --nproc N``: check what can be checked here, then torchrun."""
    import torch

    from ..devices import is_cuda, resolve_device
    from ..errors import ConfigError
    from ..training.distributed import launch

    n = int(args.nproc)
    dev = resolve_device(args.device, flag="--device")
    if is_cuda(dev):
        gpus = torch.cuda.device_count()
        if n > gpus:
            raise ConfigError(f"--nproc {n}: more processes than GPUs (torch sees {gpus}) with --device "
                              f"{args.device}; use --nproc {gpus} or fewer (or --device cpu)")
    bs = preset.training.batch_size
    if bs % n:
        raise ConfigError(f"--nproc {n}: the preset's training.batch_size {bs} is not divisible by {n} "
                          f"(each process takes batch_size / N samples of a step)")
    return int(launch(n, _child_args(args)).returncode)


def run(args: argparse.Namespace) -> int:
    from ..devices import resolve_device
    from ..errors import CheckpointError, ConfigError, DriveILError
    from ..policies.checkpoint import CONFIG_NAME
    from ..policies.registry import load_model_preset
    from ..training.trainer import train_policy

    if args.epochs is not None and args.epochs < 1:
        raise ConfigError(f"--epochs: expected an integer >= 1, got {args.epochs}")
    if args.max_frames is not None and args.max_frames < 1:
        raise ConfigError(f"--max-frames: expected an integer >= 1, got {args.max_frames}")
    if args.nproc is not None and args.nproc < 1:
        raise ConfigError(f"--nproc {args.nproc}: expected an integer >= 1 (processes)")
    if args.out.exists() and not args.out.is_dir():
        raise ConfigError(f"--out {args.out}: is a file, expected a run directory (a new or existing directory)")
    if args.resume and not (args.out / "last" / CONFIG_NAME).exists():
        raise CheckpointError(f"--resume: nothing to resume in {args.out} (no finished epoch: "
                              f"{args.out / 'last' / CONFIG_NAME} missing); run without --resume to start training")
    resolve_device(args.device, flag="--device")
    preset = load_model_preset(args.model)
    if args.nproc is not None:
        return _launch(args, preset)
    seed = preset.training.seed if args.seed is None else args.seed
    main = os.environ.get("RANK", "0") in ("", "0")
    try:
        res = train_policy(data_dirs=args.data, model_config=preset, out_dir=args.out, epochs=args.epochs,
                           seed=seed, resume=args.resume, init_from=args.init_from, max_frames=args.max_frames,
                           progress=not args.no_progress, device=args.device, amp=args.amp,
                           augment_on_device=args.augment_on == "device")
    except DriveILError:
        if main:
            raise
        return 2                    # rank 0 reports the error (every rank raised the same one)
    if not main:
        return 0
    procs = f", {res.world_size} processes" if res.world_size > 1 else ""
    print(f"trained {preset.name} ({preset.architecture}): {res.epochs} epochs, "
          f"{res.train_samples} training / {res.val_samples} validation samples, "
          f"best epoch {res.best_epoch + 1}: val loss {res.best_val_loss:.5f}, "
          f"val steering error {res.val_steer_error_deg:.2f} deg (road-wheel), "
          f"{res.samples_per_s:.0f} samples/s ({res.device}{procs})")
    print(f"checkpoint: {res.best}   tensorboard: tensorboard --logdir {res.out_dir / 'tb'}")
    return 0
