"""From episode directories to the training and validation samples of a model preset.

Glue between :mod:`drive_il.data.dataset` (episode files -> raw samples) and the
training loop (:mod:`drive_il.training.trainer`):

* episodes are split by episode (``split_by_episode(paths, val_fraction, seed)``);
* training uses the model's camera plus, with ``augmentation.side_cameras``, the other
  cameras of the rig (``augmentation.cameras``, or all), whose labels the transform
  corrects (:mod:`drive_il.training.augment`); validation uses the model's camera only;
* ``sample_filter`` keeps steps by their metadata, ``max_frames`` caps the number of
  training time steps (a seeded draw; every used camera of a kept step stays);
* a preset with a path head (``[output] kind = "path"``) gets the path labels of its
  ``path_distances`` in every sample (``EpisodeDataset(path_distances=...)``, from the
  episodes' routes); a model with ``target_point_input`` gets ``target_point`` the same way
  (``EpisodeDataset(target_points=True)``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from ..policies.checkpoint import VehicleParams
from ..types import STOP_REASON_UNKNOWN

__all__ = ["Subset", "TrainingData", "label_options", "open_training_data"]

log = logging.getLogger(__name__)


class Subset:
    """A read-only view of ``base`` at ``indices`` (a plain Sequence)."""

    def __init__(self, base: Sequence[Any], indices: Sequence[int]) -> None:
        self.base = base
        self.indices = np.asarray(indices, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> Any:
        return self.base[int(self.indices[i])]


@dataclass
class TrainingData:
    """Training and validation samples for one preset.

    Attributes:
        train: raw training samples (dicts, see ``EpisodeDataset``).
        val: raw validation samples, or None without validation episodes.
        train_episodes, val_episodes: the episode files of each side.
        cameras: the camera rig (one dict per camera used in training).
        vehicle: the vehicle geometry of the data (stored with the checkpoint).
        data_dirs: the directories.
    """

    train: Sequence[Mapping[str, Any]]
    val: Sequence[Mapping[str, Any]] | None
    train_episodes: list[Path]
    val_episodes: list[Path]
    cameras: list[dict]
    vehicle: VehicleParams
    data_dirs: list[Path]


def _make_select(sample_filter: Callable[[Mapping[str, Any]], bool] | None):
    if sample_filter is None:
        return None

    def select(steps: Mapping[str, np.ndarray], meta: Any) -> np.ndarray:
        cols = {k: np.asarray(steps[k]) for k in ("command", "speed", "intervention", "noise",
                                                   "lateral_deviation", "heading_error")}
        n = len(cols["speed"])
        keep = np.zeros(n, dtype=bool)
        base = {"episode_path": str(meta.path), "dagger_round": meta.dagger_round, "beta": meta.beta,
                "driver": meta.driver, "town": meta.town, "weather": meta.weather}
        for t in range(n):
            d = dict(base, frame=t, command=int(cols["command"][t]), speed=float(cols["speed"][t]),
                     intervention=bool(cols["intervention"][t]), noise=bool(cols["noise"][t]),
                     lateral_deviation=float(cols["lateral_deviation"][t]),
                     heading_error=float(cols["heading_error"][t]))
            keep[t] = bool(sample_filter(d))
        return keep

    return select


def label_options(preset: Any) -> dict[str, Any]:
    """The :class:`~drive_il.data.dataset.EpisodeDataset` keywords a model preset needs:
    ``path_distances`` (a path head's arc lengths [m], else None), ``speed_labels`` (a
    speed head), ``gap_labels`` (an obstacle-gap head; ``"vehicles"`` with ``[output]
    gap_lights = false``: no labels where the expert slows for a light), ``reason_labels``
    (a stop-reason head) and ``target_points`` (a model with ``target_point_input``)."""
    out = getattr(preset, "output", None)
    gap = bool(getattr(out, "obstacle_gap", False))
    if gap and not getattr(out, "gap_lights", True):
        gap = "vehicles"
    return {"path_distances": tuple(out.path_distances) if out is not None and out.is_path else None,
            "speed_labels": bool(getattr(out, "speed", False)),
            "gap_labels": gap,
            "reason_labels": bool(getattr(out, "stop_reason_head", False)),
            "target_points": bool(getattr(preset.model, "target_point_input", False))}


def open_training_data(data_dirs: Iterable[str | Path], preset: Any, *, seed: int = 0,
                       sample_filter: Callable[[Mapping[str, Any]], bool] | None = None,
                       max_frames: int | None = None) -> TrainingData:
    """Open the episodes of ``data_dirs`` for ``preset`` (see module docstring).

    Raises:
        DataError: no episodes, mixed rigs, the model's camera missing from the data,
            no sample left after filtering, a path head and an episode without a route,
            a speed head and no training sample with a speed label, an obstacle-gap
            head and no training sample with a gap label, a stop-reason head and no
            training sample with a known stop reason.
    """
    from ..data.dataset import EpisodeDataset, collect_episode_paths, split_by_episode

    dirs = [Path(d) for d in data_dirs]
    for d in dirs:
        if not d.is_dir():
            raise DataError(f"{d}: data directory not found")
    paths = collect_episode_paths(dirs)
    train_paths, val_paths = split_by_episode(paths, preset.training.val_fraction, seed)
    cam = preset.preprocessing.camera
    aug = preset.augmentation
    select = _make_select(sample_filter)

    # which cameras the data has (one file is enough: the dataset rejects mixed rigs)
    probe = EpisodeDataset(episodes=paths[:1], cameras=None)
    if cam not in probe.cameras:
        raise DataError(f"{paths[0]}: the model reads camera {cam!r}, the data has cameras "
                        f"{', '.join(probe.cameras)} (set [preprocessing] camera in the model preset)")
    if aug.side_cameras:
        train_cams = tuple(aug.cameras) if aug.cameras else tuple(probe.cameras)
        if cam not in train_cams:
            train_cams = (cam,) + train_cams
    else:
        train_cams = (cam,)
    for c in train_cams:
        if c not in probe.cameras:
            raise DataError(f"{paths[0]}: augmentation camera {c!r} not in the data (cameras: "
                            f"{', '.join(probe.cameras)})")
    labels = label_options(preset)
    speed = labels["speed_labels"]
    train = EpisodeDataset(episodes=train_paths, cameras=train_cams, select=select, **labels)
    val = EpisodeDataset(episodes=val_paths, cameras=(cam,), select=select, **labels) if val_paths else None
    if speed and len(train) and not np.isfinite(train.labels["target_speed"]).any():
        raise DataError(f"no speed labels (target_speed) in {', '.join(str(d) for d in dirs)}: a speed head "
                        "needs episodes recorded with schema version 2 or later (collect them again)")
    if labels["gap_labels"] and len(train) and np.isnan(train.labels["obstacle_gap"]).all():
        raise DataError(f"no obstacle-gap labels (steps/obstacle) in {', '.join(str(d) for d in dirs)}: an "
                        "obstacle-gap head needs episodes recorded with schema version 4 or later (collect them "
                        "again)")
    if labels["reason_labels"] and len(train) and (train.labels["stop_reason"] == STOP_REASON_UNKNOWN).all():
        raise DataError(f"no stop reasons (steps/stop_reason) in {', '.join(str(d) for d in dirs)}: a stop-reason "
                        "head needs episodes recorded with schema version 3 or later (collect them again)")
    if val is not None and len(val) == 0:
        val = None
    metas = train.metas + (val.metas if val is not None else [])
    wb = {round(m.wheelbase, 6) for m in metas}
    ms = {round(m.max_steer_angle, 6) for m in metas}
    if len(wb) > 1 or len(ms) > 1:
        log.warning("episodes of different vehicles (wheelbase %s, max steer %s): labels use each "
                    "episode's own; the checkpoint stores the first", sorted(wb), sorted(ms))
    vehicle = VehicleParams(wheelbase=metas[0].wheelbase, max_steer_angle=metas[0].max_steer_angle)

    train_seq: Sequence[Mapping[str, Any]] = train
    if max_frames is not None and max_frames > 0:
        nc = len(train.cameras)
        n_steps = len(train) // nc
        if max_frames < n_steps:
            keep = np.sort(np.random.default_rng([seed, 7]).choice(n_steps, size=max_frames, replace=False))
            idx = (keep[:, None] * nc + np.arange(nc)[None, :]).reshape(-1)
            train_seq = Subset(train, idx)
    if len(train_seq) == 0:
        raise DataError(f"no training samples in {', '.join(str(d) for d in dirs)} "
                        f"(everything filtered out?)")
    rig = [dict(train.rig[c], name=c) for c in train.cameras]
    return TrainingData(train=train_seq, val=val, train_episodes=train_paths, val_episodes=val_paths,
                        cameras=rig, vehicle=vehicle, data_dirs=dirs)



