"""Behaviour cloning: the training loop, read top to bottom (CleanRL style).

``train_policy`` is what ``drive-il train`` and the DAgger loop call::

    result = train_policy(data_dirs=["runs/demo/data"], model_config="models/dave2.toml",
                          out_dir="runs/demo/dave2", epochs=10, seed=0)
    policy, info = load_checkpoint(result.best)

A run directory::

    RUN/
      best/            checkpoint with the lowest validation loss (drive_il.policies.checkpoint)
      last/            checkpoint after the last finished epoch + optimizer and loop state
      tb/              TensorBoard events (torch.utils.tensorboard.SummaryWriter)
      train.json       TrainResult summary of the last run (epochs, losses, figures)

Data: the episodes of ``data_dirs`` are split into training and validation **by
episode** (``drive_il.data.dataset.split_by_episode``, seeded). Training samples are
every frame of every camera used (the model's camera plus, with
``augmentation.side_cameras``, the side cameras whose labels get the recovery
correction, :mod:`drive_il.training.augment`), with photometric and viewpoint
augmentation; validation samples are the model's own camera, unaugmented.

Reproducibility: the weights are initialised from ``torch.manual_seed(seed)``; the
shuffling of epoch e uses a ``torch.Generator`` seeded from (seed, e) and each sample's
augmentation a ``numpy.random.Generator`` seeded from (seed, e, index), so a run is the
same whatever the number of workers, and ``--resume`` continues exactly where an
interrupted run stopped (epoch granularity).

TensorBoard tags: ``train/loss``, ``train/steer_error_deg``, ``train/lr`` (every few
steps and per epoch: ``train/epoch_*``), ``val/loss``, ``val/steer_error_deg``,
``val/steer_mae``, ``val/curvature_mae`` (a path head, ``[output] kind = "path"``: the
steer and curvature of pure pursuit along the predicted path, plus ``val/path_error_m``,
``val/path_lateral_mae``, ``val/path_final_error_m`` [m], see
:mod:`drive_il.training.losses`; a speed head, ``[output] speed = true``:
``train/speed_mae``, ``val/speed_mae`` [m/s] and ``val/lateral_loss``; an obstacle-gap head
also ``train/gap_mae``, ``val/gap_mae`` [m]; a stop-reason head ``train/stop_reason_acc``,
``val/stop_reason_acc`` and ``val/stop_reason_ce`` [nats]), histograms ``val/steer_error_deg_hist``,
``val/steer_pred``, ``val/steer_label``, image ``val/frames`` (a grid of validation
frames with the expert's steering needle in green and the prediction in red), ``perf/samples_per_s``,
``perf/data_wait_fraction``, and the preset and run settings as text (``hparams``).
Steering errors are in degrees of road-wheel angle (:mod:`drive_il.policies.labels`).

Failures are one line (a :class:`~drive_il.errors.DriveILError`, ``drive-il: error:``,
exit 2) and lose nothing already saved: a non-finite label or speed is refused when the
data is opened (naming the episode file and the step), a loss that becomes NaN or
infinite stops training before the epoch is saved (:class:`NonFiniteLossError`), a
damaged frame names its file, a full disk leaves the previous checkpoints as they were.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..camera import PinholeCamera
from ..devices import autocast_context, is_cuda, resolve_device
from ..errors import CheckpointError, ConfigError, DataError, DriveILError
from ..policies.checkpoint import (
    VehicleParams,
    load_checkpoint,
    load_optimizer,
    save_checkpoint,
    save_optimizer,
)
from ..policies.registry import ModelPreset, build_policy, load_model_preset
from ..types import STOP_REASON_NAMES, STOP_REASON_UNKNOWN
from .augment import SampleTransform

__all__ = ["BCDataset", "NonFiniteLossError", "TrainResult", "draw_steering", "epoch_batches", "fit", "to_device",
           "train_loader", "train_policy", "train_step"]

log = logging.getLogger(__name__)


class NonFiniteLossError(DriveILError):
    """The training or validation loss became NaN or infinite (training diverged, or
    non-finite inputs): training stops before anything is saved, so ``RUN/best`` and
    ``RUN/last`` keep the last finished epoch."""


@dataclass(frozen=True)
class TrainResult:
    """Outcome of a training run.

    Attributes:
        out_dir: the run directory.
        best: best checkpoint directory (lowest validation loss; the last one when
            there is no validation split).
        last: last checkpoint directory.
        epochs: epochs finished in total (including resumed ones).
        best_epoch: epoch of ``best``.
        best_val_loss: its validation loss (NaN without validation).
        val_steer_error_deg: its mean validation steering error [deg road-wheel].
        train_samples: training samples per epoch.
        val_samples: validation samples.
        samples_per_s: training throughput of the last epoch [samples/s]; with several
            processes the global figure (all ranks' samples over the slowest rank's time).
        history: one dict of metrics per epoch run in this call.
        data_wait_fraction: share of the last epoch's time spent waiting for batches
            (0..1; the slowest rank's with several processes).
        device: where the network ran (``cpu``, ``cuda:0``, ...; rank 0's).
        world_size: training processes (1 without DistributedDataParallel).
    """

    out_dir: Path
    best: Path
    last: Path
    epochs: int
    best_epoch: int
    best_val_loss: float
    val_steer_error_deg: float
    train_samples: int
    val_samples: int
    samples_per_s: float
    history: tuple[dict, ...] = ()
    data_wait_fraction: float = 0.0
    device: str = "cpu"
    world_size: int = 1

    @property
    def checkpoint(self) -> Path:
        """The checkpoint to use (``best``)."""
        return self.best

    @property
    def best_val_steer_error_deg(self) -> float:
        """Alias of ``val_steer_error_deg``."""
        return self.val_steer_error_deg

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("out_dir", "best", "last"):
            d[k] = str(d[k])
        d["history"] = list(self.history)
        return d


class BCDataset:
    """A torch-style Dataset: raw samples -> transformed training examples.

    Args:
        base: a sequence of raw sample dicts (``EpisodeDataset`` or any list).
        transform: a :class:`~drive_il.training.augment.SampleTransform`.
        seed: run seed.
        augment: draw a per-sample Generator (else the transform gets None).
        indices: subset of ``base`` (None = all).

    ``set_epoch(e)`` before creating the epoch's DataLoader iterator: sample i of
    epoch e is augmented with ``numpy.random.default_rng([seed, e, i])``.
    """

    def __init__(self, base: Sequence[Mapping[str, Any]], transform: SampleTransform, *, seed: int = 0,
                 augment: bool = True, indices: Sequence[int] | None = None) -> None:
        self.base = base
        self.transform = transform
        self.seed = int(seed)
        self.augment = augment
        self.indices = None if indices is None else np.asarray(indices, dtype=np.int64)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.base) if self.indices is None else len(self.indices)

    def raw(self, i: int) -> Mapping[str, Any]:
        """The untransformed sample i."""
        return self.base[int(i) if self.indices is None else int(self.indices[i])]

    def __getitem__(self, i: int) -> dict[str, Any]:
        rng = np.random.default_rng([self.seed, self.epoch, int(i)]) if self.augment else None
        return self.transform(self.raw(i), rng)


def draw_steering(image: np.ndarray, expert: float, predicted: float, *, scale: int = 2) -> np.ndarray:
    """An (H*scale, W*scale, 3) uint8 copy of an RGB frame with the expert's steer (green)
    and the predicted steer (red) drawn as needles from the bottom centre (steer +1
    = 60 deg to the right) and written as numbers."""
    import cv2

    img = cv2.resize(image, (image.shape[1] * scale, image.shape[0] * scale), interpolation=cv2.INTER_NEAREST)
    h, w = img.shape[:2]
    base = (w // 2, h - 2)
    length = 0.6 * h
    for s, colour in ((expert, (0, 220, 0)), (predicted, (230, 30, 30))):
        a = math.radians(60.0) * float(np.clip(s, -1, 1))
        tip = (int(base[0] + length * math.sin(a)), int(base[1] - length * math.cos(a)))
        cv2.line(img, base, tip, colour, 2, cv2.LINE_AA)
    cv2.putText(img, f"E {expert:+.2f}", (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 220, 0), 1, cv2.LINE_AA)
    cv2.putText(img, f"P {predicted:+.2f}", (4, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (230, 30, 30), 1, cv2.LINE_AA)
    return img


def _grid(frames: Sequence[np.ndarray], cols: int = 2, pad: int = 2) -> np.ndarray:
    """Tile (H, W, 3) uint8 frames of equal size into one image, ``cols`` per row."""
    h, w = frames[0].shape[:2]
    rows = (len(frames) + cols - 1) // cols
    out = np.full((rows * (h + pad) - pad, cols * (w + pad) - pad, 3), 255, np.uint8)
    for i, f in enumerate(frames):
        r, c = divmod(i, cols)
        out[r * (h + pad): r * (h + pad) + h, c * (w + pad): c * (w + pad) + w] = f
    return out


def _cosine_lr(base_lr: float, step: int, total: int, schedule: str) -> float:
    if schedule == "constant" or total <= 0:
        return base_lr
    return 0.5 * base_lr * (1.0 + math.cos(math.pi * min(step, total) / total))


def _hparams_text(preset: ModelPreset, extra: Mapping[str, Any]) -> str:
    rows = ["| key | value |", "| --- | --- |"]

    def walk(prefix: str, v: Any) -> None:
        if isinstance(v, dict):
            for k, x in v.items():
                walk(f"{prefix}.{k}" if prefix else k, x)
        else:
            rows.append(f"| {prefix} | {v} |")

    walk("", preset.to_dict())
    walk("run", dict(extra))
    return "\n".join(rows)


def _collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    import torch
    out = {}
    for k in items[0]:
        out[k] = torch.from_numpy(np.stack([it[k] for it in items]))
    return out


def train_loader(dataset: BCDataset, training: Any, *, seed: int, epoch: int, pin_memory: bool = False):
    """The shuffled DataLoader of one epoch (``dataset.set_epoch`` is called here).

    Shuffling uses a ``torch.Generator`` seeded from (seed, epoch); the per-sample
    augmentation seeds come from the dataset, so workers do not change the result. With
    ``training.balance_steering`` / ``balance_commands`` samples are drawn (with
    replacement) with :func:`sampling_weights`. ``pin_memory``: page-locked batches
    (for fast, asynchronous copies to a CUDA device; leave it off on the CPU).
    """
    import torch
    from torch.utils.data import DataLoader, WeightedRandomSampler

    dataset.set_epoch(epoch)
    g = torch.Generator()
    g.manual_seed(seed * 1_000_003 + epoch)
    sampler = None
    weights = sampling_weights(dataset.base, training)
    if weights is not None:
        # DAVE-2 over-sampled curves against the straight-driving bias (Bojarski et al. 2016)
        sampler = WeightedRandomSampler(torch.from_numpy(weights), num_samples=len(dataset), replacement=True,
                                        generator=g)
    return DataLoader(dataset, batch_size=training.batch_size, shuffle=sampler is None,
                      sampler=sampler, generator=g if sampler is None else None,
                      num_workers=training.num_workers, collate_fn=_collate,
                      drop_last=len(dataset) > training.batch_size, persistent_workers=False,
                      pin_memory=pin_memory)


class _IndexView:
    """Stands in for a :class:`BCDataset` in :func:`train_loader` to enumerate the
    epoch's sample indices without reading any sample."""

    def __init__(self, dataset: BCDataset) -> None:
        self.base = dataset.base
        self._n = len(dataset)

    def set_epoch(self, epoch: int) -> None:
        pass

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"index": np.asarray(int(i), dtype=np.int64)}


def epoch_batches(dataset: BCDataset, training: Any, *, seed: int, epoch: int) -> list[list[int]]:
    """The global batches of sample indices of epoch ``epoch``, in order: exactly those
    the single-process :func:`train_loader` yields (same generator, same draws, same
    ``drop_last``; the number of workers does not change them)."""
    if dataclasses.is_dataclass(training):
        tc = dataclasses.replace(training, num_workers=0)
    else:
        tc = copy.copy(training)
        tc.num_workers = 0
    return [b["index"].tolist() for b in train_loader(_IndexView(dataset), tc, seed=seed, epoch=epoch)]


def sampling_weights(samples: Sequence[Mapping[str, Any]], training: Any) -> np.ndarray | None:
    """Per-sample draw weights (mean 1) of ``training.balance_steering`` (with
    ``balance_power``), ``training.balance_commands`` and ``training.balance_standing``,
    multiplied; None when none is on or the samples have no label arrays."""
    w = None
    if getattr(training, "balance_steering", False):
        w = steering_balance_weights(samples, power=getattr(training, "balance_power", 1.0))
    go_share = getattr(training, "standing_go_share", 0.5)
    reasons = tuple(getattr(training, "balance_standing_reasons", ()))
    for key, weights in (("balance_commands", command_balance_weights),
                         ("balance_standing", lambda x: standing_balance_weights(x, go_share=go_share,
                                                                                  reasons=reasons))):
        c = weights(samples) if getattr(training, key, False) else None
        if c is not None:
            w = c if w is None else w * c
            w = w * (len(w) / w.sum())
    return w


def standing_balance_weights(samples: Sequence[Mapping[str, Any]], go_share: float = 0.5,
                             reasons: Sequence[str] = ()) -> np.ndarray | None:
    """Per-sample weights of ``balance_standing``: 1 for a moving car; for a standing
    one (measured ``speed`` < :data:`~drive_il.data.tools.STANDING_SPEED`) the frames
    where the expert starts off (:func:`~drive_il.data.tools.starting_off`: label >=
    ``GO_SPEED``) get the share ``go_share`` of the standing frames' count, the others
    (stop, creep; NaN labels count as stop) the rest (``go_share`` = 0.5: equal shares).
    A class that is absent leaves the other at weight 1. ``reasons`` (of
    :data:`~drive_il.types.STOP_REASON_NAMES`): only the standing runs whose
    reason (:func:`~drive_il.data.tools.standing_run_reasons`) is listed are balanced, the others keep
    weight 1; empty: all. Returns float64 weights of shape (N,) with mean 1; None
    without label arrays (or without speed labels).

    Raises:
        ValueError: ``go_share`` outside (0, 1).
        DataError: ``reasons`` given and standing frames without the expert's stop
            reason (episodes of schema version 1 or 2).
    """
    from ..data.tools import STANDING_SPEED, starting_off
    if not 0.0 < go_share < 1.0:
        raise ValueError(f"standing_go_share: expected a share in (0, 1), got {go_share}")
    speed, target = _label_array(samples, "speed"), _label_array(samples, "target_speed")
    if speed is None or target is None or len(speed) == 0:
        return None
    standing = np.asarray(speed, dtype=np.float64) < STANDING_SPEED
    go = starting_off(speed, target)
    if reasons:
        run = _standing_run_reasons(samples)
        if run is None or np.any(standing & (run == STOP_REASON_UNKNOWN)):
            raise DataError("balance_standing_reasons: the episodes do not record the expert's stop "
                             "reason (steps/stop_reason, schema 3); re-collect them or leave the list empty")
        keep = np.isin(run, [STOP_REASON_NAMES.index(r) for r in reasons])
        standing &= keep
        go &= keep
    stop = standing & ~go
    w = np.ones(len(speed), dtype=np.float64)
    n_go, n_stop = int(go.sum()), int(stop.sum())
    if n_go and n_stop:
        total = n_go + n_stop
        w[go] = go_share * total / n_go
        w[stop] = (1.0 - go_share) * total / n_stop
    return w * (len(w) / w.sum())


def _standing_run_reasons(samples: Sequence[Mapping[str, Any]]) -> np.ndarray | None:
    """:func:`~drive_il.data.tools.standing_run_reasons` of a dataset's samples (of the
    whole dataset when ``samples`` is a subset, then indexed: a subset need not keep the
    time order); None without episode, speed or stop-reason label arrays."""
    from ..data.tools import standing_run_reasons
    labels, idx = _labels_of(samples)
    if labels is None or not all(k in labels for k in ("episode", "speed", "stop_reason")):
        return None
    ep = np.asarray(labels["episode"])
    order = np.lexsort((np.asarray(labels["frame"]), ep)) if "frame" in labels else np.arange(len(ep))
    run = np.empty(len(ep), np.int64)
    run[order] = standing_run_reasons(ep[order], np.asarray(labels["speed"])[order],
                                      np.asarray(labels["stop_reason"])[order])
    return run[idx] if idx is not None else run


def _labels_of(samples: Any) -> tuple[Mapping[str, np.ndarray] | None, Any]:
    """(the label arrays of ``samples`` or of the dataset it is a subset of, the
    subset's indices into them or None)."""
    labels = getattr(samples, "labels", None)
    if labels is None and hasattr(samples, "base") and hasattr(samples, "indices"):
        return getattr(samples.base, "labels", None), samples.indices
    return labels, None


def _label_array(samples: Sequence[Mapping[str, Any]], key: str) -> np.ndarray | None:
    labels, idx = _labels_of(samples)
    if labels is None or key not in labels:
        return None
    a = np.asarray(labels[key])
    return a[idx] if idx is not None else a


def steering_balance_weights(samples: Sequence[Mapping[str, Any]], bins: int = 21,
                             power: float = 1.0) -> np.ndarray | None:
    """Per-sample weights ``count ** -power`` of the expert's steer in its histogram bin
    (``bins`` bins over [-1, 1]), normalised to mean 1, from the dataset's label arrays
    (no image read); None when ``samples`` has no label arrays."""
    steer = _label_array(samples, "steer")
    if steer is None or len(steer) == 0:
        return None
    edges = np.linspace(-1.0, 1.0, bins + 1)
    b = np.clip(np.digitize(steer.astype(np.float64), edges) - 1, 0, bins - 1)
    counts = np.bincount(b, minlength=bins).astype(np.float64)
    w = counts[b] ** -float(power)
    return w * (len(w) / w.sum())


def command_balance_weights(samples: Sequence[Mapping[str, Any]]) -> np.ndarray | None:
    """Per-sample weights ``1 / count(command)``, normalised to mean 1: every command
    present gets the same total weight. None when ``samples`` has no label arrays."""
    cmd = _label_array(samples, "command")
    if cmd is None or len(cmd) == 0:
        return None
    _, inv, counts = np.unique(cmd.astype(np.int64), return_inverse=True, return_counts=True)
    w = 1.0 / counts[inv].astype(np.float64)
    return w * (len(w) / w.sum())


def _cpus() -> int:
    import os
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def to_device(batch: Mapping[str, Any], device: Any = None, *, non_blocking: bool = True) -> Mapping[str, Any]:
    """A collated batch on ``device``: the batch itself (no copy) when ``device`` is None
    or the CPU; else each tensor copied with ``non_blocking`` (asynchronous from pinned
    memory)."""
    if device is None or not is_cuda(device):
        return batch
    return {k: v.to(device, non_blocking=non_blocking) if hasattr(v, "to") else v for k, v in batch.items()}


def train_step(policy, optimizer, loss_fn, batch: Mapping[str, Any], *, lr: float, grad_clip: float = 0.0,
               device: Any = None, amp: bool = False, device_augment: Any = None):
    """One optimisation step on a collated batch; returns the :class:`LossOutput`.

    ``device``: move the batch there first (None or the CPU: used as it is); ``amp``:
    forward and loss under :func:`drive_il.devices.autocast_context` (bfloat16 on
    CUDA; ignored on the CPU); ``device_augment``: a
    :class:`~drive_il.training.device_augment.DeviceAugment` applied to the batch on the
    device (the image work the loader deferred), or None.

    Raises:
        NonFiniteLossError: the batch's loss is NaN or infinite (the weights are left
            untouched: no step is taken).
    """
    import torch

    _, lo = _forward_loss(policy, policy, optimizer, loss_fn, batch, lr=lr, device=device, amp=amp,
                          device_augment=device_augment)
    if not bool(torch.isfinite(lo.loss.detach()).all()):
        raise NonFiniteLossError(f"training loss is {float(lo.loss.detach()):g}")
    _backward_step(policy, optimizer, lo.loss, grad_clip)
    return lo


def _forward_loss(model, policy, optimizer, loss_fn, batch: Mapping[str, Any], *, lr: float, device: Any,
                  amp: bool, device_augment: Any):
    """The shared first half of a training step: set the learning rate, move (and
    augment on the device) the batch, forward ``model`` (``policy`` or its DDP wrapper)
    and the loss under autocast. Returns (the batch on the device, the LossOutput)."""
    for grp in optimizer.param_groups:
        grp["lr"] = lr
    batch = to_device(batch, device)
    if device_augment is not None:
        batch = device_augment(batch)
    with autocast_context(device, amp):
        x = batch["image"].float()                               # (B, C, h, w) in [0, 255]
        # (B, 1) 1/r or (B, K) units; with a speed head (SpeedLoss) also the (B,) target speed
        output = model(x, batch["command"], batch["speed"], **_forward_kwargs(loss_fn, batch))
        lo = loss_fn(policy, output, batch)
    return batch, lo


def _forward_kwargs(loss_fn, batch: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword inputs of the model's forward: the loss's (``with_speed``) and, when the
    batch carries one (a model with ``target_point_input``), ``target_point`` (B, 2) [m]."""
    kw = dict(getattr(loss_fn, "forward_kwargs", {}))
    if "target_point" in batch:
        kw["target_point"] = batch["target_point"]
    return kw


def _backward_step(policy, optimizer, loss, grad_clip: float) -> None:
    """The shared second half: zero the gradients, backward ``loss``, clip the gradient
    norm to ``grad_clip`` (0: no clipping), step the optimizer."""
    import torch

    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(policy.parameters(), grad_clip)
    optimizer.step()


def _ddp_train_step(model, policy, optimizer, loss_fn, batch: Mapping[str, Any], *, lr: float, grad_clip: float,
                    device: Any, amp: bool, dist_ctx: Any, global_size: int,
                    device_augment: Any = None) -> dict[str, float]:
    """One step of a multi-process run on this rank's share of the global batch.

    ``model`` is the DistributedDataParallel wrapper of ``policy``. The loss is scaled
    by ``share * world_size / global_size`` (1 when the shares are equal), so that DDP's
    gradient average is the gradient of the global batch mean. The metrics (and the
    non-finite check, before any backward pass, so that all ranks agree) are reduced
    over the ranks; returns the global batch means, with ``"_n"`` the global size.
    """
    import torch

    batch, lo = _forward_loss(model, policy, optimizer, loss_fn, batch, lr=lr, device=device, amp=amp,
                              device_augment=device_augment)
    b = int(batch["image"].shape[0])
    keys = sorted(lo.metrics)
    bad = 0.0 if bool(torch.isfinite(lo.loss.detach()).all()) else 1.0
    red = dist_ctx.all_reduce([bad, float(b)] + [float(lo.metrics[k]) * b for k in keys])
    n = max(red[1], 1.0)
    metrics = {k: v / n for k, v in zip(keys, red[2:])}
    if red[0] > 0:
        raise NonFiniteLossError(f"training loss is {metrics.get('loss', math.nan):g}")
    scale = b * dist_ctx.world_size / global_size
    _backward_step(policy, optimizer, lo.loss if scale == 1.0 else lo.loss * scale, grad_clip)
    metrics["_n"] = red[1]
    return metrics


def predict_batches(policy, loss_fn, loader, *, device: Any = None, amp: bool = False):
    """The policy (in eval mode, without gradients) on every batch of ``loader``: yields
    ``(cpu_batch, output, loss_output)``, the collated batch as the loader gave it, the
    model's output (with a speed head: ``(lateral, speed (B,) [m/s])``) and the
    :class:`~drive_il.training.losses.LossOutput` of ``loss_fn``. Validation and offline
    evaluation (:mod:`drive_il.training.offline`) both read the model through it."""
    import torch

    policy.eval()
    with torch.no_grad():
        for cpu_batch in loader:
            batch = to_device(cpu_batch, device)
            with autocast_context(device, amp):
                out = policy(batch["image"].float(), batch["command"], batch["speed"],
                             **_forward_kwargs(loss_fn, batch))
                lo = loss_fn(policy, out, batch)
            yield cpu_batch, out, lo


def _evaluate(policy, loss_fn, loader, *, device: Any = None,
              amp: bool = False) -> tuple[dict[str, float], np.ndarray, np.ndarray, np.ndarray]:
    """Mean metrics over a loader; per-sample errors [deg], predictions and labels."""
    sums: dict[str, float] = {}
    n = 0
    errs, preds, labels = [], [], []
    for cpu_batch, _, lo in predict_batches(policy, loss_fn, loader, device=device, amp=amp):
        b = int(cpu_batch["image"].shape[0])
        for k, v in lo.metrics.items():
            sums[k] = sums.get(k, 0.0) + v * b
        n += b
        errs.append(lo.steer_error_deg.float().cpu().numpy())
        preds.append(lo.steer.float().cpu().numpy())
        labels.append(cpu_batch["steer"].numpy())
    if n == 0:
        return {}, np.zeros(0), np.zeros(0), np.zeros(0)
    return ({k: v / n for k, v in sums.items()}, np.concatenate(errs), np.concatenate(preds),
            np.concatenate(labels))


class _NullWriter:
    """The SummaryWriter of ranks other than 0: writes nothing."""

    def __getattr__(self, name: str) -> Callable[..., None]:
        return lambda *a, **k: None


def fit(*, policy, preset: ModelPreset, train_data: Sequence[Mapping[str, Any]],
        val_data: Sequence[Mapping[str, Any]] | None, out_dir: str | Path, epochs: int | None = None,
        seed: int = 0, vehicle: VehicleParams | None = None, cameras: Sequence[Mapping[str, Any]] = (),
        resume: bool = False, progress: bool = True, run_info: Mapping[str, Any] | None = None,
        device: Any = "auto", amp: bool = False, augment_on_device: bool = False) -> TrainResult:
    """Train ``policy`` by behaviour cloning on raw sample sequences (the loop itself).

    Args:
        policy: a freshly built (or warm-started) module from the registry (on the
            CPU; it is moved to ``device``).
        preset: its model preset (preprocessing, augmentation, training settings).
        train_data: raw samples (dicts as ``EpisodeDataset`` returns) for training.
        val_data: raw samples for validation (the model's camera only), or None.
        out_dir: the run directory.
        epochs: total epochs (default: ``preset.training.epochs``).
        seed: run seed.
        vehicle: geometry stored with the checkpoint (labels use each sample's own;
            default: :class:`VehicleParams` defaults).
        cameras: the training camera rig (stored with the checkpoint; used by the
            viewpoint augmentation).
        resume: continue from ``out_dir/last`` (its weights, optimizer and epoch) when it
            exists (else start afresh); a finished run trains no further. The
            checkpoints hold CPU tensors, so a run resumes on any device.
        progress: show tqdm progress bars.
        run_info: extra JSON-able info stored in the checkpoints and in TensorBoard text.
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or a ``torch.device``
            (:func:`drive_il.devices.resolve_device`); batches are copied there
            (pinned, non-blocking on CUDA). On the CPU the loop is the same as ever.
        amp: bfloat16 autocast of forward and loss on CUDA (ignored, with a warning,
            on the CPU).
        augment_on_device: do the training images' augmentation and preprocessing on
            the device, batched (:mod:`drive_il.training.device_augment`; the loader
            then only reads frames and computes the labels). Off by default: on the
            H200 machine measured (16 cores) the loader's workers fed DAVE-2 at 10,293
            samples/s against 7,274 with the image work on the GPU (README, "Scaling
            out"); it pays where few CPU cores feed a GPU. On CUDA with
            ``training.num_workers = 0`` the loader uses min(8, CPUs - 1) worker
            processes.

    Multi-process (``WORLD_SIZE`` > 1 in the environment, as torchrun sets it; see
    :mod:`drive_il.training.distributed`): the policy is wrapped in
    ``DistributedDataParallel``, each rank trains on its share (``batch_size //
    world_size`` samples) of the single-process global batches, and only rank 0 writes
    files. ``samples_per_s`` is then the global throughput of all ranks.

    Returns:
        :class:`TrainResult`.

    Raises:
        DataError: no training samples; a frame or label that cannot be read (a damaged
            chunk), naming the file.
        CheckpointError: ``out_dir/last`` is corrupt or of another architecture; a
            checkpoint cannot be written (disk full: the one already there is kept).
        ConfigError: ``out_dir`` is a file or cannot be created; a bad ``device``;
            ``training.batch_size`` not divisible by the number of processes.
        NonFiniteLossError: the training or validation loss became NaN or infinite;
            nothing of that epoch is saved (``best``/``last`` keep the epoch before).
    """
    import torch
    from torch.utils.data import DataLoader
    from tqdm import tqdm

    from .distributed import DistContext, rank_batches
    from .losses import make_loss

    tc = preset.training
    vehicle = vehicle or VehicleParams()
    epochs = int(epochs or tc.epochs)
    out = Path(out_dir)
    dctx = DistContext.from_env()
    ddp = dctx.enabled
    if ddp and tc.batch_size % dctx.world_size:
        raise ConfigError(f"training.batch_size {tc.batch_size} is not divisible by the {dctx.world_size} "
                          f"processes (WORLD_SIZE): each takes batch_size / processes samples of a step")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: is a file, expected a run directory (give --out a new or existing directory)")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"{out}: cannot create the run directory ({e.strerror or e})") from None
    if len(train_data) == 0:
        raise DataError(f"{out}: no training samples (empty data or everything filtered out)")
    if ddp and len(train_data) < dctx.world_size:
        raise DataError(f"{out}: {len(train_data)} training samples for {dctx.world_size} processes "
                        f"(each process needs at least one)")
    dev = dctx.setup(device, flag="device")
    cuda = is_cuda(dev)
    if amp:
        autocast_context(dev, amp)                               # the CPU warning, once, up front
    step_device = dev if cuda else None

    rig = {str(c["name"]): PinholeCamera.from_rig(c) for c in cameras if "width" in c and "name" in c}
    ref = next((c for c in cameras if c.get("name") == preset.preprocessing.camera), None)
    reference = (float(ref.get("y", 0.0)), math.radians(float(ref.get("yaw_deg", 0.0)))) if ref else (0.0, 0.0)
    dev_aug = None
    if augment_on_device:
        from .device_augment import make_train_transform
        transform, dev_aug = make_train_transform(preset.preprocessing, preset.augmentation, rig=rig,
                                                  reference=reference, on_device=True)
        if dev_aug is not None:
            dev_aug = dev_aug.to(dev)
    else:
        transform = SampleTransform(preset.preprocessing, preset.augmentation, rig=rig, reference=reference)
    if cuda and tc.num_workers == 0:  # feed the GPU from worker processes
        n_workers = min(8, max(1, _cpus() - 1))
        log.info("training on %s: %d DataLoader workers (training.num_workers is 0)", dev, n_workers)
        tc = dataclasses.replace(tc, num_workers=n_workers)
    train_ds = BCDataset(train_data, transform, seed=seed, augment=True)
    val_ds = BCDataset(val_data, SampleTransform(preset.preprocessing, None, reference=reference),
                       seed=seed, augment=False) if val_data is not None and len(val_data) else None

    policy.to(dev)
    loss_fn = make_loss(policy)
    opt = torch.optim.AdamW(policy.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    steps_per_epoch = max(1, math.ceil(len(train_ds) / tc.batch_size))
    total_steps = steps_per_epoch * epochs
    start_epoch, step, best_val, best_epoch, best_err = 0, 0, math.inf, -1, math.nan
    last_dir, best_dir = out / "last", out / "best"
    resuming = resume and (last_dir / "config.json").exists()
    if resume and not resuming and dctx.is_main:
        log.info("%s: nothing to resume (no %s/), starting afresh", out, last_dir.name)
    try:
        if resuming:
            loaded, last_info = load_checkpoint(last_dir, expected_architecture=preset.architecture)
            policy.load_state_dict(loaded.state_dict())          # CPU tensors -> the device
            loop = load_optimizer(last_dir, opt)                 # state follows the parameters' device
            weights_epoch = int(last_info.training.get("epoch", loop.get("epoch", -1)))
            if int(loop.get("epoch", -1)) != weights_epoch:  # killed between the two writes
                log.warning("%s: optimizer state of epoch %s, weights of epoch %s; resuming after the weights' "
                            "epoch", last_dir, loop.get("epoch"), weights_epoch)
                loop["epoch"] = weights_epoch
            start_epoch = int(loop.get("epoch", -1)) + 1
            step = int(loop.get("step", 0))
            best_val = float(loop.get("best_val", math.inf))
            best_epoch = int(loop.get("best_epoch", -1))
            best_err = float(loop.get("best_err", math.nan))
            if dctx.is_main:
                log.info("resuming %s at epoch %d (step %d)", out, start_epoch, step)
        model = policy
        if ddp:
            from torch.nn.parallel import DistributedDataParallel
            model = DistributedDataParallel(policy, device_ids=[dev.index] if cuda else None,
                                            output_device=dev.index if cuda else None)
    except BaseException:
        dctx.destroy(wait=False)
        raise

    if dctx.is_main:
        from torch.utils.tensorboard import SummaryWriter
        writer = SummaryWriter(str(out / "tb"), purge_step=step if resuming else None)
    else:
        writer = _NullWriter()
    show = progress and dctx.is_main
    info = dict(run_info or {})
    info.update(seed=seed, epochs=epochs, train_samples=len(train_ds), val_samples=len(val_ds) if val_ds else 0)
    if cuda or ddp:
        info.update(device=str(dev), world_size=dctx.world_size)
    if amp:
        info.update(amp=True)
    if start_epoch == 0:
        writer.add_text("hparams", _hparams_text(preset, info), 0)
    image_idx = (np.linspace(0, len(val_ds) - 1, min(tc.images_logged, len(val_ds))).astype(int)
                 if val_ds is not None else np.zeros(0, dtype=int))

    history: list[dict] = []
    samples_per_s = 0.0
    wait_fraction = 0.0
    threads_before = torch.get_num_threads()
    if tc.threads:
        torch.set_num_threads(tc.threads)
    log_every = max(1, steps_per_epoch // 20)
    epoch = start_epoch

    def diverged(what: str) -> NonFiniteLossError:
        kept = (f"{last_dir} and {best_dir} keep the last finished epoch"
                if (last_dir / "config.json").exists() else "no checkpoint was written")
        return NonFiniteLossError(f"{out}: epoch {epoch + 1}, step {step}: {what} (training diverged: lower "
                                  f"training.lr or check the data); stopped, {kept}")

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize(dev)

    try:
        for epoch in range(start_epoch, epochs):
            # ---- train one epoch
            model.train()
            torch.manual_seed(seed * 1_000_003 + epoch)          # dropout, if any
            if ddp:
                # the single-process epoch's global batches; this rank takes its share of each
                global_batches = epoch_batches(train_ds, tc, seed=seed, epoch=epoch)
                train_ds.set_epoch(epoch)
                sizes = [len(b) for b in global_batches]
                loader = DataLoader(train_ds, batch_sampler=rank_batches(global_batches, dctx.rank, dctx.world_size),
                                    num_workers=tc.num_workers, collate_fn=_collate, pin_memory=cuda,
                                    persistent_workers=False)
            else:
                sizes = []
                loader = train_loader(train_ds, tc, seed=seed, epoch=epoch, pin_memory=cuda)
            sums: dict[str, float] = {}
            n_seen = 0
            sync()
            t0 = time.perf_counter()
            wait = 0.0
            t_wait = time.perf_counter()
            bar = tqdm(loader, desc=f"epoch {epoch + 1}/{epochs}", disable=not show, leave=False,
                       unit="batch", dynamic_ncols=True)
            for k_batch, batch in enumerate(bar):
                wait += time.perf_counter() - t_wait
                lr = _cosine_lr(tc.lr, step, total_steps, tc.lr_schedule)
                try:
                    if ddp:
                        metrics = _ddp_train_step(model, policy, opt, loss_fn, batch, lr=lr, grad_clip=tc.grad_clip,
                                                  device=step_device, amp=amp, dist_ctx=dctx,
                                                  global_size=sizes[k_batch], device_augment=dev_aug)
                        b = int(metrics.pop("_n"))
                    else:
                        lo = train_step(policy, opt, loss_fn, batch, lr=lr, grad_clip=tc.grad_clip,
                                        device=step_device, amp=amp, device_augment=dev_aug)
                        metrics = lo.metrics
                        b = int(batch["image"].shape[0])
                except NonFiniteLossError as e:
                    raise diverged(str(e)) from None
                n_seen += b
                for k, v in metrics.items():
                    sums[k] = sums.get(k, 0.0) + v * b
                if step % log_every == 0:
                    writer.add_scalar("train/loss", metrics["loss"], step)
                    writer.add_scalar("train/steer_error_deg", metrics["steer_error_deg"], step)
                    writer.add_scalar("train/lr", lr, step)
                    if "speed_mae" in metrics:   # a speed head (losses.SpeedLoss)
                        writer.add_scalar("train/speed_mae", metrics["speed_mae"], step)
                    if "gap_mae" in metrics:     # an obstacle-gap head
                        writer.add_scalar("train/gap_mae", metrics["gap_mae"], step)
                    if "stop_reason_acc" in metrics:   # a stop-reason head
                        writer.add_scalar("train/stop_reason_acc", metrics["stop_reason_acc"], step)
                if show:
                    bar.set_postfix(loss=f"{metrics['loss']:.4f}", err=f"{metrics['steer_error_deg']:.2f}deg")
                step += 1
                t_wait = time.perf_counter()
            bar.close()
            sync()
            dt = max(time.perf_counter() - t0, 1e-9)
            if ddp:                                              # the slowest rank sets the pace
                dt, wait = dctx.all_reduce([dt, wait], op="max")
            samples_per_s = n_seen / dt
            wait_fraction = wait / dt
            train_m = {k: v / max(n_seen, 1) for k, v in sums.items()}
            for k, v in train_m.items():
                writer.add_scalar(f"train/epoch_{k}", v, step)
            writer.add_scalar("perf/samples_per_s", samples_per_s, step)
            writer.add_scalar("perf/data_wait_fraction", wait_fraction, step)

            # ---- validate (rank 0; its figures are shared with the other ranks)
            row: dict[str, Any] = {"epoch": epoch, "step": step, "samples_per_s": samples_per_s,
                                   **{f"train_{k}": v for k, v in train_m.items()}}
            if val_ds is not None:
                def validate() -> tuple[dict[str, float], np.ndarray, np.ndarray, np.ndarray]:
                    vloader = DataLoader(val_ds, batch_size=tc.batch_size, shuffle=False,
                                         num_workers=tc.num_workers, collate_fn=_collate, pin_memory=cuda)
                    return _evaluate(policy, loss_fn, vloader, device=step_device, amp=amp)

                if ddp:
                    held: dict[str, Any] = {}

                    def validate_main(held: dict[str, Any] = held) -> dict[str, float]:
                        held["r"] = validate()
                        return held["r"][0]

                    val_m = dctx.main_only(validate_main)
                    errs, preds, labels = held["r"][1:] if dctx.is_main else (None, None, None)
                else:
                    val_m, errs, preds, labels = validate()
                if val_m and not math.isfinite(val_m.get("loss", 0.0)):
                    raise diverged(f"validation loss is {val_m['loss']:g}")
                if dctx.is_main:
                    for k, v in val_m.items():
                        writer.add_scalar(f"val/{k}", v, step)
                    for tag, values in (("val/steer_error_deg_hist", errs), ("val/steer_pred", preds),
                                        ("val/steer_label", labels)):
                        finite = np.isfinite(values)
                        if not finite.all():  # add_histogram raises on NaN/inf
                            values = values[finite]
                        if len(values):
                            writer.add_histogram(tag, values, step)
                    if (tc.image_log_every and (epoch % tc.image_log_every == 0 or epoch == epochs - 1)
                            and len(image_idx)):
                        frames = [draw_steering(np.asarray(val_ds.raw(int(i))["image"]), float(labels[i]),
                                                float(preds[i])) for i in image_idx]
                        writer.add_image("val/frames", _grid(frames, cols=2), step, dataformats="HWC")
                row.update({f"val_{k}": v for k, v in val_m.items()})
                score = val_m["loss"]
            else:
                score = train_m.get("loss", math.inf)
            if not math.isfinite(train_m.get("loss", 0.0)):
                raise diverged(f"mean training loss is {train_m['loss']:g}")
            row["data_wait_fraction"] = wait_fraction
            history.append(row)

            # ---- checkpoints (rank 0 writes; the others wait for it)
            ckpt_info = {**info, "epoch": epoch, "step": step, **{k: v for k, v in row.items() if k != "epoch"}}
            is_best = score < best_val or best_epoch < 0
            if is_best:
                best_val, best_epoch = score, epoch
                best_err = row.get("val_steer_error_deg", row.get("train_steer_error_deg", math.nan))
            loop_state = {"epoch": epoch, "step": step, "best_val": best_val, "best_epoch": best_epoch,
                          "best_err": best_err, "seed": seed}

            def save(ckpt_info: dict = ckpt_info, is_best: bool = is_best, loop_state: dict = loop_state) -> None:
                save_checkpoint(last_dir, policy, preset, vehicle=vehicle, cameras=cameras, training=ckpt_info)
                if is_best:
                    save_checkpoint(best_dir, policy, preset, vehicle=vehicle, cameras=cameras, training=ckpt_info)
                save_optimizer(last_dir, opt, loop_state)
                writer.flush()

            dctx.main_only(save)
            if dctx.is_main:
                log.info("epoch %d: %s", epoch, {k: round(v, 5) if isinstance(v, float) else v
                                                 for k, v in row.items()})
            if show:
                msg = f"epoch {epoch + 1}/{epochs}: train loss {train_m.get('loss', math.nan):.4f}"
                if "val_loss" in row:
                    msg += f", val loss {row['val_loss']:.4f}, val steer error {row['val_steer_error_deg']:.2f} deg"
                tqdm.write(msg + f", {samples_per_s:.0f} samples/s")
    except DriveILError as e:
        dctx.destroy(wait=False)
        raise _one_line(e) from None
    finally:
        torch.set_num_threads(threads_before)
        writer.close()

    result = TrainResult(
        out_dir=out, best=best_dir if (best_dir / "config.json").exists() else last_dir, last=last_dir,
        epochs=epochs, best_epoch=best_epoch,
        best_val_loss=best_val if val_ds is not None else math.nan,
        val_steer_error_deg=best_err if val_ds is not None else math.nan,
        train_samples=len(train_ds), val_samples=len(val_ds) if val_ds else 0,
        samples_per_s=samples_per_s, history=tuple(history), data_wait_fraction=wait_fraction,
        device=str(dev), world_size=dctx.world_size)

    def write_summary() -> None:
        try:
            (out / "train.json").write_text(json.dumps(result.to_dict(), indent=2, default=float))
        except OSError as e:
            raise CheckpointError(f"{out / 'train.json'}: cannot write ({e.strerror or e}); the checkpoints in "
                                  f"{out} are complete") from None

    try:
        dctx.main_only(write_summary)
    finally:
        dctx.destroy()
    return result


def _one_line(e: DriveILError) -> DriveILError:
    """``e`` itself, or, for an error that a DataLoader worker re-raised (torch puts the
    worker's traceback in the message), the same kind of error with the original
    one-line message."""
    msg = str(e)
    if "\n" not in msg:
        return e
    lines = [ln.strip() for ln in msg.strip().splitlines() if ln.strip()]
    last = lines[-1] if lines else msg
    name = type(e).__name__ + ": "
    if name in last:
        last = last.split(name, 1)[1]
    try:
        return type(e)(last)
    except TypeError:  # an error class with another signature
        return DriveILError(last)


def train_policy(*, data_dirs: Iterable[str | Path], model_config: str | Path | ModelPreset, out_dir: str | Path,
                 epochs: int | None = None, seed: int = 0, resume: bool = False,
                 init_from: str | Path | None = None,
                 sample_filter: Callable[[Mapping[str, Any]], bool] | None = None,
                 max_frames: int | None = None, progress: bool = True, device: Any = "auto",
                 amp: bool = False, augment_on_device: bool = False) -> TrainResult:
    """Behaviour cloning from episode directories (``drive-il train``; the DAgger loop).

    Args:
        data_dirs: directories of episode files (``drive_il.data.storage``).
        model_config: a :class:`ModelPreset`, a preset file or a name in ``models/``.
        out_dir: run directory (``best/``, ``last/``, ``tb/``).
        epochs: total epochs (default: the preset's).
        seed: run seed (split, initialisation, shuffling, augmentation).
        resume: continue from ``out_dir/last`` when it exists (else start afresh).
        init_from: warm start from this checkpoint's weights (same architecture); ignored
            when resuming from ``out_dir/last``.
        sample_filter: keep only samples for which it returns True; it receives the
            per-step metadata dict of the dataset (episode, frame, command, speed,
            intervention, ... — no image).
        max_frames: use at most this many training time steps (drawn with the seed),
            e.g. to give BC as many expert labels as DAgger's final dataset.
        progress: tqdm progress bars.
        device: ``auto`` (CUDA when available), ``cpu``, ``cuda``, ``cuda:N``
            (:func:`drive_il.devices.resolve_device`). Under torchrun (``WORLD_SIZE`` >
            1) each process uses ``cuda:LOCAL_RANK`` or the CPU, see :func:`fit`.
        amp: bfloat16 autocast on CUDA (ignored with a warning on the CPU).
        augment_on_device: see :func:`fit` (default: in the loader).

    Returns:
        :class:`TrainResult`.

    Raises:
        DataError: no episodes, inconsistent rigs, the model's camera not in the data.
        CheckpointError: ``init_from`` of another architecture, nothing to resume.
        ConfigError: bad preset, bad device (``cuda`` without CUDA, ...).
    """
    import torch

    from .data_source import open_training_data

    resolve_device(device, flag="device")                        # fail before reading any data
    preset = load_model_preset(model_config)
    src = open_training_data(data_dirs, preset, seed=seed, sample_filter=sample_filter, max_frames=max_frames)
    torch.manual_seed(seed)
    policy = build_policy(preset)
    if init_from is not None and not (resume and (Path(out_dir) / "last" / "config.json").exists()):
        warm, _ = load_checkpoint(init_from, expected_architecture=preset.architecture)
        policy.load_state_dict(warm.state_dict())
    run_info = {"data_dirs": [str(d) for d in src.data_dirs], "train_episodes": len(src.train_episodes),
                "val_episodes": len(src.val_episodes), "init_from": str(init_from) if init_from else None,
                "max_frames": max_frames}
    return fit(policy=policy, preset=preset, train_data=src.train, val_data=src.val, out_dir=out_dir,
               epochs=epochs, seed=seed, vehicle=src.vehicle, cameras=src.cameras, resume=resume,
               progress=progress, run_info=run_info, device=device, amp=amp, augment_on_device=augment_on_device)
