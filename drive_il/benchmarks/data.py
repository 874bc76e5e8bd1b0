"""``drive-il bench data``: random-access reading of 66x200 frames for training.

Writes synthetic episodes with the real recorder to a temporary directory, then reads
them in shuffled order:

* **bare h5py** baseline: one process reading ``dataset[t]`` at random positions;
* **EpisodeDataset + DataLoader** (batch 64, shuffled) with 0 and 2 workers
  (persistent workers, the first epoch is a warm-up): frames/s and the ratio to the
  baseline. Issue 4 target: >= 5,000 frames/s with 2 workers.

The files are freshly written, so they are in the page cache: this measures the
pipeline (HDF5, Python, collation), not the disk.
"""

from __future__ import annotations

import argparse
import itertools
import os
import tempfile
import time
from pathlib import Path

import numpy as np

NAME = "data"
HELP = "random-access frames/s through EpisodeDataset + DataLoader vs bare h5py"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--episodes", type=int, default=8, help="synthetic episodes (default 8)")
    p.add_argument("--steps", type=int, default=500, help="steps per episode (default 500)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--workers", type=int, nargs="+", default=[0, 2], help="DataLoader workers to measure (default 0 2)")
    p.add_argument("--epochs", type=int, default=2, help="measured epochs after a warm-up epoch (default 2)")
    p.add_argument("--cameras", type=int, default=1, choices=(1, 2, 3), help="cameras per episode (default 1)")
    p.add_argument("--height", type=int, default=66)
    p.add_argument("--width", type=int, default=200)
    p.add_argument("--dir", type=Path, default=None, help="parent of the temporary directory (default: system temp)")


def _bare_h5py(paths: list[Path], n_reads: int, camera: str, seed: int = 0) -> float:
    import h5py

    files = [h5py.File(p, "r") for p in paths]
    try:
        dsets = [f["frames"][camera] for f in files]
        lengths = [d.shape[0] for d in dsets]
        rng = np.random.default_rng(seed)
        eps = rng.integers(0, len(dsets), n_reads)
        ts = [int(rng.integers(0, lengths[e])) for e in eps]
        t0 = time.perf_counter()
        for e, t in zip(eps, ts):
            dsets[e][t]
        return n_reads / (time.perf_counter() - t0)
    finally:
        for f in files:
            f.close()


def run(args: argparse.Namespace) -> int:
    import torch
    from torch.utils.data import DataLoader

    from ..data.dataset import EpisodeDataset, collate_samples
    from ..data.synthetic import write_synthetic_episodes

    with tempfile.TemporaryDirectory(prefix="drive_il_bench_data_", dir=args.dir) as tmp:
        t0 = time.perf_counter()
        paths = write_synthetic_episodes(tmp, args.episodes, steps=args.steps, n_cameras=args.cameras,
                                         height=args.height, width=args.width, pool=32)
        t_write = time.perf_counter() - t0
        t0 = time.perf_counter()
        ds = EpisodeDataset([tmp], cameras=None)
        t_index = time.perf_counter() - t0
        n = len(ds)
        print(f"bench data: {args.episodes} episodes x {args.steps} steps x {args.cameras} camera(s), "
              f"{args.height}x{args.width}: {n} samples ({n * args.height * args.width * 3 / 1e6:.0f} MB), "
              f"written in {t_write:.1f} s, index built in {1e3 * t_index:.0f} ms")
        base = _bare_h5py(paths, min(n, 4000), "center")
        print(f"  bare h5py dataset[t], random, 1 process: {base:,.0f} frames/s (baseline)")
        torch.set_num_threads(1)  # collation in the main process; oversubscribed OpenMP threads crawl
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        print(f"  machine: {os.cpu_count()} CPUs, load average {load:.1f} (other processes slow every figure)")
        for nw, (cname, cfn) in itertools.product(args.workers, (("collate_samples", collate_samples),
                                                                ("default_collate", None))):
            g = torch.Generator().manual_seed(0)
            dl = DataLoader(ds, batch_size=args.batch_size, shuffle=True, num_workers=nw, generator=g,
                            persistent_workers=nw > 0, drop_last=False, collate_fn=cfn)
            for _ in dl:  # warm-up epoch (worker start, page cache)
                pass
            seen = 0
            t0 = time.perf_counter()
            for _ in range(max(1, args.epochs)):
                for batch in dl:
                    seen += int(batch["image"].shape[0])
            fps = seen / (time.perf_counter() - t0)
            target = " (target >= 5,000 frames/s: " + ("ok)" if fps >= 5000 else "MISSED)") if nw == 2 else ""
            print(f"  EpisodeDataset + DataLoader({cname}), batch {args.batch_size}, shuffled, {nw} worker(s): "
                  f"{fps:,.0f} frames/s, ratio {fps / base:.2f} to bare h5py{target}")
            del dl
        ds.close()
    return 0
