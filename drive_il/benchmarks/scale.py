"""``drive-il bench scale``: does throughput grow with workers and processes?

Measured in one run, each figure with its ratio to the 1-worker figure of the same
kind:

1. **collection**: the expert driving and recording episodes of the scenario
   (default: the default scenario) into a temporary directory with
   :func:`drive_il.rollout.collect`, at 1 and 2 (``--workers``) local worker processes,
   and on local Ray actors (``--ray``; skipped with a reason without the extra);
2. **evaluation**: the learner driving with the expert shadowing
   (:func:`drive_il.evaluation.evaluate.evaluate`), same pools; the learner is
   ``--checkpoint`` or an untrained DAVE-2 (throughput does not depend on the weights);
3. **training**: DAVE-2 behaviour cloning samples/s with 1 and 2 DistributedDataParallel
   processes (``drive-il train --nproc N``, gloo on the CPU), on synthetic episodes.

Rollout figures are episodes/s and frames/s of the episodes after each pool's workers
have started: every pool first drives one warm-up episode per worker (imports,
simulator and town built), timed separately as ``start``, so that the comparison is of
steady-state throughput; ``--episodes`` per measurement.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

NAME = "scale"
HELP = "rollout throughput at 1 and N workers (local and Ray) and DDP training at 1 and N processes"

__all__ = ["HELP", "NAME", "add_arguments", "run"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scenario", default=None, help="scenario (default: scenarios/default.toml)")
    p.add_argument("--episodes", type=int, default=8, help="episodes per measurement (default 8)")
    p.add_argument("--workers", type=int, default=2, help="the N of the comparison (default 2)")
    p.add_argument("--checkpoint", type=Path, default=None, help="learner for the evaluation (default: untrained)")
    p.add_argument("--no-ray", action="store_true", help="skip the Ray measurements")
    p.add_argument("--no-train", action="store_true", help="skip the DDP training measurements")
    p.add_argument("--train-episodes", type=int, default=8, help="synthetic training episodes (default 8)")
    p.add_argument("--epochs", type=int, default=2, help="training epochs per measurement (default 2)")
    p.add_argument("--device", default="cpu", help="training device (default cpu)")


def _untrained(out: Path, sc) -> Path:
    import torch

    from ..policies.checkpoint import VehicleParams, save_checkpoint
    from ..policies.registry import build_policy, load_model_preset
    preset = load_model_preset("dave2")
    torch.manual_seed(0)
    rig = [{k: getattr(c, k) for k in ("name", "width", "height", "fov_deg", "x", "y", "z", "pitch_deg", "yaw_deg")}
           for c in sc.cameras]
    return save_checkpoint(out, build_policy(preset), preset,
                           vehicle=VehicleParams(sc.vehicle.wheelbase, math.radians(sc.vehicle.max_steer_deg)),
                           cameras=rig)


def _measure(kind: str, pool, sim, sc, expert, learner, episodes: int, tmp: Path, tag: str):
    """(start seconds, episodes/s, frames/s) of one pool (None: this process)."""
    from ..evaluation.evaluate import evaluate
    from ..rollout import CollectSpec, Drivers, collect

    n_warm = 1 if pool is None else pool.workers
    t0 = time.perf_counter()
    if kind == "collect":
        collect(sim, sc, tmp / f"warm-{tag}", CollectSpec(episodes=n_warm, first_seed=900), Drivers(expert=expert),
                progress=False, pool=pool)
    else:
        evaluate(sim, sc.replace(seed=900), learner=learner, expert=expert, seeds=1, episodes=n_warm, pool=pool)
    start = time.perf_counter() - t0
    t0 = time.perf_counter()
    if kind == "collect":
        res = collect(sim, sc, tmp / f"data-{tag}", CollectSpec(episodes=episodes, first_seed=0),
                      Drivers(expert=expert), progress=False, pool=pool)
        frames = res.frames
    else:
        rep = evaluate(sim, sc, learner=learner, expert=expert, seeds=1, episodes=episodes, pool=pool)
        frames = int(sum(e["steps"] for e in rep.episodes))
    dt = time.perf_counter() - t0
    return start, episodes / dt, frames / dt


def run(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..expert.expert import Expert
    from ..policies.driver import PolicyDriver
    from ..rollout.parallel import ProcessPool, SimRecipe
    from ..rollout.parallel.ray_pool import INSTALL_HINT, ray_available
    from ..scenario import load_scenario
    from ..sim import make_simulator

    if args.episodes < 1 or args.workers < 2:
        raise ConfigError(f"--episodes >= 1 and --workers >= 2 expected, got {args.episodes} and {args.workers}")
    sc = load_scenario(args.scenario)
    expert = Expert.for_scenario(sc)
    n = args.workers
    print(f"bench scale: scenario {sc.name} ({sc.where}), {args.episodes} episodes per measurement, 1 vs {n} workers")
    rows: list[tuple[str, str, float, float, float]] = []
    with tempfile.TemporaryDirectory(prefix="drive_il_bench_scale_") as td:
        tmp = Path(td)
        ckpt = args.checkpoint or _untrained(tmp / "untrained", sc)
        learner = PolicyDriver.from_checkpoint(ckpt, scenario=sc)
        pools: list[tuple[str, int, object]] = [("local", 1, None), ("local", n, None)]
        if not args.no_ray:
            if ray_available():
                pools += [("ray", 1, None), ("ray", n, None)]
            else:
                print(f"  Ray: skipped ({INSTALL_HINT})")
        for name, w, _ in pools:
            if name == "local":
                pool = ProcessPool(w, SimRecipe())
            else:
                from ..rollout.parallel.ray_pool import RayPool
                pool = RayPool(w, SimRecipe(), address="auto")
            try:
                for kind in ("collect", "eval"):
                    start, eps, fps = _measure(kind, pool, None, sc, expert, learner, args.episodes, tmp,
                                               f"{name}{w}{kind}")
                    rows.append((kind, f"{name} x{w}", start, eps, fps))
            finally:
                pool.close()
        sim = make_simulator()
        try:
            for kind in ("collect", "eval"):
                start, eps, fps = _measure(kind, None, sim, sc, expert, learner, args.episodes, tmp, f"inline{kind}")
                rows.append((kind, "this process", start, eps, fps))
        finally:
            sim.close()
        print(f"  {'what':8s} {'workers':14s} {'start s':>8s} {'episodes/s':>11s} {'frames/s':>9s} "
              f"{'ratio to local x1':>18s}")
        for kind in ("collect", "eval"):
            base = next(r for r in rows if r[0] == kind and r[1] == "local x1")
            for r in (x for x in rows if x[0] == kind):
                print(f"  {r[0]:8s} {r[1]:14s} {r[2]:8.1f} {r[3]:11.2f} {r[4]:9.0f} {r[4] / base[4]:18.2f}")
            local_n = next(r for r in rows if r[0] == kind and r[1] == f"local x{n}")
            ray_n = next((r for r in rows if r[0] == kind and r[1] == f"ray x{n}"), None)
            line = f"  {kind}: {n} local workers {local_n[4] / base[4]:.2f}x the 1-worker rate (target >= 1.7x)"
            if ray_n is not None:
                line += f"; Ray x{n} at {ray_n[4] / local_n[4]:.2f} of the local pool's rate (target >= 0.85)"
            print(line)
        if not args.no_train:
            from ..data.synthetic import write_synthetic_episodes
            from ..training.distributed import train_throughput_ddp
            data = tmp / "train-data"
            write_synthetic_episodes(data, args.train_episodes, steps=120, n_cameras=3)
            sps = {}
            for k in (1, n):
                sps[k] = train_throughput_ddp([data], "dave2", k, epochs=args.epochs, out_dir=tmp / f"train{k}",
                                              device=args.device)
            print(f"  training DAVE-2 ({args.device}, gloo/nccl DDP): 1 process {sps[1]:.0f} samples/s, {n} processes "
                  f"{sps[n]:.0f} samples/s, ratio {sps[n] / sps[1]:.2f}")
    return 0
