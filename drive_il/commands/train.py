"""``drive-il train --data DIR [DIR...] --model models/dave2.toml --out RUN``: behaviour
cloning of a policy on recorded demonstrations (see drive_il.training.trainer)."""

from __future__ import annotations

import argparse
from pathlib import Path


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
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import CheckpointError, ConfigError
    from ..policies.checkpoint import CONFIG_NAME
    from ..policies.registry import load_model_preset
    from ..training.trainer import train_policy

    if args.epochs is not None and args.epochs < 1:
        raise ConfigError(f"--epochs: expected an integer >= 1, got {args.epochs}")
    if args.max_frames is not None and args.max_frames < 1:
        raise ConfigError(f"--max-frames: expected an integer >= 1, got {args.max_frames}")
    if args.out.exists() and not args.out.is_dir():
        raise ConfigError(f"--out {args.out}: is a file, expected a run directory (a new or existing directory)")
    if args.resume and not (args.out / "last" / CONFIG_NAME).exists():
        raise CheckpointError(f"--resume: nothing to resume in {args.out} (no finished epoch: "
                              f"{args.out / 'last' / CONFIG_NAME} missing); run without --resume to start training")
    preset = load_model_preset(args.model)
    seed = preset.training.seed if args.seed is None else args.seed
    res = train_policy(data_dirs=args.data, model_config=preset, out_dir=args.out, epochs=args.epochs,
                       seed=seed, resume=args.resume, init_from=args.init_from, max_frames=args.max_frames,
                       progress=not args.no_progress)
    print(f"trained {preset.name} ({preset.architecture}): {res.epochs} epochs, "
          f"{res.train_samples} training / {res.val_samples} validation samples, "
          f"best epoch {res.best_epoch + 1}: val loss {res.best_val_loss:.5f}, "
          f"val steering error {res.val_steer_error_deg:.2f} deg (road-wheel), "
          f"{res.samples_per_s:.0f} samples/s")
    print(f"checkpoint: {res.best}   tensorboard: tensorboard --logdir {res.out_dir / 'tb'}")
    return 0
