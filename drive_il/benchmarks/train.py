"""``drive-il bench train``: is behaviour cloning model-bound, and is inference fast?

Three figures, measured in one run on temporary synthetic episodes written with the
real recorder (``drive_il.data.synthetic``, a 3-camera 66x200 rig):

1. **trainer**: samples/s of training steps fed by the real input pipeline
   (EpisodeDataset reading HDF5 frames -> augmentation with side-camera correction,
   brightness, shadows, viewpoint transform -> preprocessing -> the trainer's
   DataLoader (:func:`~drive_il.training.trainer.train_loader`) ->
   :func:`~drive_il.training.trainer.train_step`: forward, loss, backward, AdamW),
   against the **bare** train step of the same model on one batch already in memory.
   Both run in alternating blocks of batches (``--rounds`` x ``--block``), so that load
   from other processes hits both alike; the ratio of the best blocks (load only ever
   slows a block down) and the median ratio of paired blocks are printed. Target
   >= 0.90 (DESIGN.md: the input pipeline must keep training model-bound).
   ``--fit-epoch`` also times one epoch of the complete ``fit`` loop (TensorBoard
   scalars and metrics included).
2. **pipeline**: samples/s of the input pipeline alone (the same DataLoader, no model).
3. **inference**: DAVE-2 (or the chosen model) batch 1 on one thread: the bare
   ``forward`` and the full ``PolicyDriver.predict_steer`` (preprocessing included),
   median over many calls. Target <= 2 ms (REFERENCES.md: ~1.5 ms on 2 vCPUs).

``--device cpu|cuda|cuda:N|auto`` (default cpu) runs the model there: the bare step's
batch is on the device, the trainer's batches are copied there as ``fit`` does (pinned,
non-blocking), and CUDA timings are bracketed by ``torch.cuda.synchronize``; ``--amp``
adds bfloat16 autocast (CUDA only). The trainer line also gives the share of the
trainer blocks' time spent waiting for the DataLoader (``data_wait_fraction``).
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import statistics
import tempfile
import time
from pathlib import Path

NAME = "train"
HELP = "training throughput vs bare forward+backward, and batch-1 inference latency"

__all__ = ["HELP", "NAME", "add_arguments", "run"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="dave2", help="model preset (default dave2)")
    p.add_argument("--episodes", type=int, default=4, help="synthetic episodes (default 4)")
    p.add_argument("--steps", type=int, default=120, help="steps per episode (default 120)")
    p.add_argument("--cameras", type=int, default=3, choices=(1, 2, 3), help="cameras in the rig (default 3)")
    p.add_argument("--batch-size", type=int, default=None, help="batch size (default: the preset's)")
    p.add_argument("--workers", type=int, default=None, help="DataLoader workers (default: the preset's)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    p.add_argument("--rounds", type=int, default=5, help="paired trainer/bare blocks (default 5)")
    p.add_argument("--block", type=int, default=6, help="batches per block (default 6)")
    p.add_argument("--fit-epoch", action="store_true", help="also time one epoch of the full fit() loop")
    p.add_argument("--latency-calls", type=int, default=300, help="batch-1 inference calls (default 300)")
    p.add_argument("--data", type=Path, default=None, help="use these episodes instead of synthetic ones")
    p.add_argument("--device", default="cpu", metavar="auto|cpu|cuda|cuda:N",
                   help="where the model runs (default cpu)")
    p.add_argument("--amp", action="store_true", help="bfloat16 autocast on CUDA (ignored on the CPU)")
    p.add_argument("--augment-on", choices=("loader", "device"), default="loader",
                   help="image augmentation per sample in the DataLoader (default) or batched on the device "
                        "(drive_il.training.device_augment)")


def _sync(device) -> None:
    if device is not None:
        import torch
        torch.cuda.synchronize(device)


def _block(policy, opt, loss_fn, batches, *, device=None, amp: bool = False, waits: list | None = None,
           device_augment=None) -> float:
    """samples/s of training steps on the given batches (an iterator); ``device``: a
    CUDA device (None: the CPU); the time spent waiting for batches is appended to
    ``waits`` as a fraction of the block's time."""
    from ..training.trainer import train_step

    n = 0
    wait = 0.0
    _sync(device)
    t0 = time.perf_counter()
    it = iter(batches)
    while True:
        tw = time.perf_counter()
        batch = next(it, None)
        wait += time.perf_counter() - tw
        if batch is None:
            break
        train_step(policy, opt, loss_fn, batch, lr=1e-4, device=device, amp=amp, device_augment=device_augment)
        n += int(batch["image"].shape[0])
    _sync(device)
    dt = time.perf_counter() - t0
    if waits is not None:
        waits.append(wait / dt)
    return n / dt


def _loader_cycle(ds, tc, pin_memory: bool = False):
    """Batches of the real training DataLoader, epoch after epoch."""
    from ..training.trainer import train_loader

    epoch = 0
    while True:
        yield from train_loader(ds, tc, seed=0, epoch=epoch, pin_memory=pin_memory)
        epoch += 1


def run(args: argparse.Namespace) -> int:
    import torch

    from ..policies.checkpoint import VehicleParams
    from ..policies.driver import PolicyDriver
    from ..policies.registry import build_policy, load_model_preset
    from ..camera import PinholeCamera
    from ..devices import is_cuda, resolve_device
    from ..training.data_source import open_training_data
    from ..training.losses import make_loss
    from ..training.trainer import BCDataset, _collate, fit, train_loader
    from ..types import Observation

    device = resolve_device(args.device, flag="--device")
    cuda = device if is_cuda(device) else None
    if args.threads:
        torch.set_num_threads(args.threads)
    preset = load_model_preset(args.model)
    tc = preset.training
    tc = dataclasses.replace(tc, val_fraction=0.0, image_log_every=0,
                             batch_size=args.batch_size or tc.batch_size,
                             num_workers=tc.num_workers if args.workers is None else args.workers)
    preset = preset.replace(training=tc)
    with tempfile.TemporaryDirectory(prefix="drive_il_bench_train_") as tmp:
        data = args.data
        if data is None:
            from ..data.synthetic import write_synthetic_episodes
            data = Path(tmp) / "data"
            write_synthetic_episodes(data, args.episodes, steps=args.steps, n_cameras=args.cameras, seed=0)
        src = open_training_data([data], preset, seed=0)
        n = len(src.train)
        rig = {c["name"]: PinholeCamera.from_rig(c) for c in src.cameras}
        from ..training.device_augment import make_train_transform
        transform, dev_aug = make_train_transform(preset.preprocessing, preset.augmentation, rig=rig,
                                                  reference=(0.0, 0.0), on_device=args.augment_on == "device")
        if dev_aug is not None:
            dev_aug = dev_aug.to(device)
        ds = BCDataset(src.train, transform, seed=0)

        # pipeline alone
        t0 = time.perf_counter()
        k = 0
        for batch in train_loader(ds, tc, seed=0, epoch=0):
            k += int(batch["image"].shape[0])
        pipe = k / (time.perf_counter() - t0)

        # trainer (real loader + train step) and bare (one batch in memory), interleaved in
        # blocks so that load from other processes hits both alike
        batch = _collate([ds[i] for i in range(min(tc.batch_size, n))])
        if cuda is not None:
            batch = {k: v.to(device) for k, v in batch.items()}              # the bare step's batch lives there
        if dev_aug is not None:
            batch = dev_aug(batch)                                           # ... already augmented
        torch.manual_seed(0)
        policy = build_policy(preset).train().to(device)
        opt = torch.optim.AdamW(policy.parameters(), lr=1e-4)
        loss_fn = make_loss(policy)
        kw = {"device": cuda, "amp": args.amp}
        _block(policy, opt, loss_fn, [batch], **kw)                             # warm-up
        kw_full = {**kw, "device_augment": dev_aug}
        stream = _loader_cycle(ds, tc, pin_memory=cuda is not None)
        fulls, bares, waits = [], [], []
        for _ in range(args.rounds):
            fulls.append(_block(policy, opt, loss_fn, itertools.islice(stream, args.block), waits=waits, **kw_full))
            bares.append(_block(policy, opt, loss_fn, itertools.repeat(batch, args.block), **kw))
        ratios = [f / b for f, b in zip(fulls, bares)]
        full, bare = max(fulls), max(bares)
        amp = ", amp bf16" if args.amp and cuda is not None else ""
        where = "augmentation on the device" if dev_aug is not None else "augmentation in the loader"
        print(f"train    {preset.name} on {device}{amp}: trainer {full:.0f} samples/s (real DataLoader, {where}, "
              f"{n} samples, batch {tc.batch_size}, workers {tc.num_workers}, threads {torch.get_num_threads()}); "
              f"bare forward+backward {bare:.0f} samples/s; ratio {full / bare:.3f} best-of-{args.rounds}, "
              f"{statistics.median(ratios):.3f} median of paired blocks (target >= 0.90); "
              f"data_wait_fraction {statistics.median(waits):.3f} (median of the trainer blocks)")
        print(f"pipeline {preset.name}: input pipeline alone {pipe:.0f} samples/s "
              f"(= {pipe / bare:.1f}x the bare model rate)")
        if args.fit_epoch:
            torch.manual_seed(0)
            res = fit(policy=build_policy(preset), preset=preset, train_data=src.train, val_data=None,
                      out_dir=Path(tmp) / "run", epochs=1, seed=0, vehicle=src.vehicle, cameras=src.cameras,
                      progress=False, device=device, amp=args.amp, augment_on_device=args.augment_on == "device")
            print(f"fit      {preset.name}: one epoch of drive_il.training.trainer.fit (TensorBoard, checkpoints) "
                  f"{res.samples_per_s:.0f} samples/s; ratio to bare {res.samples_per_s / bare:.3f}; "
                  f"data_wait_fraction {res.data_wait_fraction:.3f}")

        # batch-1 inference, one thread
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        policy = build_policy(preset).eval().to(device)
        x = batch["image"][:1].float()
        cmd, speed = batch["command"][:1], batch["speed"][:1]
        extra = {"target_point": batch["target_point"][:1]} if "target_point" in batch else {}
        times = []
        with torch.no_grad():
            for _ in range(20):
                policy(x, cmd, speed, **extra)
            for _ in range(args.latency_calls):
                t = time.perf_counter()
                out = policy(x, cmd, speed, **extra)
                if cuda is not None:
                    out.cpu()                                                # the result back on the host
                times.append(time.perf_counter() - t)
        bare_ms = statistics.median(times) * 1e3
        bare_min = min(times) * 1e3
        torch.set_num_threads(threads)
        from ..policies.checkpoint import CheckpointInfo
        info = CheckpointInfo(path=Path(tmp), architecture=preset.architecture, preset=preset,
                              vehicle=VehicleParams(src.vehicle.wheelbase, src.vehicle.max_steer_angle))
        driver = PolicyDriver((policy, info), vehicle=info.vehicle, target_speed=8.0, device=device)
        frame = src.train[0]["image"]
        obs = Observation(frames={preset.preprocessing.camera: frame}, speed=8.0, target_point=(20.0, 0.0))
        for _ in range(20):
            driver.predict_steer(obs)
        times = []
        for _ in range(args.latency_calls):
            t = time.perf_counter()
            driver.predict_steer(obs)
            times.append(time.perf_counter() - t)
        full_ms = statistics.median(times) * 1e3
        print(f"infer    {preset.name} on {device}: batch 1, 1 thread: forward {bare_ms:.2f} ms (min {bare_min:.2f}), "
              f"PolicyDriver.predict_steer (preprocessing included) {full_ms:.2f} ms (min {min(times) * 1e3:.2f}); "
              f"median of {args.latency_calls} calls (target <= 2 ms); ratio {full_ms / bare_ms:.2f}")
    return 0
