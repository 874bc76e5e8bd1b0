"""The training dataset: a torch ``Dataset`` over recorded episode directories.

One sample = one camera frame of one step, with the expert's label for that state
(behaviour cloning; in DAgger the label is always the expert's, Ross et al. 2011) and
what a policy or a label correction needs: command, speed, the camera's mount offset
and yaw (to correct steering for off-centre views, as DAVE-2's shifted cameras and
CIL's +-30 deg side cameras; see REFERENCES.md), lateral deviation and heading error.

* Many directories: behaviour-cloning data plus one directory per DAgger round.
* The index (episode, t, camera) is built once from the per-step scalar arrays; frames
  are read lazily, one HDF5 handle per file per worker process (opened on first access;
  a forked worker notices the changed pid and reopens; at most ``max_open_files``
  handles are kept, least recently used closed first).
* Train/validation split by **episode**, never by frame (:func:`split_by_episode`):
  neighbouring frames are nearly identical, so a frame-level split leaks.

**Path labels** (``path_distances``, for a path head; see
:func:`route_path_labels`): the expert's route (the episode file's ``/route`` group) at
arc lengths ``s_ego + d_k``, ``s_ego`` the car's recorded projection onto the route
(``route_progress``), expressed in the frame of the recorded pose (x forward, y right,
CARLA axes) -- a label for any state the car was in, recoveries included.

Errors are :class:`~drive_il.errors.DataError` with one line: no finished episodes,
mixed camera rigs (naming both files), a missing camera, a damaged file (also a frame
whose HDF5 checksum fails when it is read), a non-finite expert label or speed at a
used step (naming the file and the step), path labels asked of a file without a route.
"""

from __future__ import annotations

import logging
import math
import os
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..errors import DataError
from ..routing.target import SparseRoute
from ..types import stop_reason_code
from .storage import RIG_KEYS, EpisodeMeta, EpisodeReader, RigChecker, list_episodes

try:  # torch is a dependency, but keep the module importable for data tools without it
    from torch.utils.data import Dataset as _TorchDataset
except ImportError:  # pragma: no cover
    _TorchDataset = object  # type: ignore[assignment,misc]

__all__ = ["EpisodeDataset", "split_by_episode", "collect_episode_paths", "collate_samples", "route_path_labels",
           "RIG_KEYS"]

log = logging.getLogger(__name__)

Sample = dict[str, Any]


def _as_dirs(dirs: str | Path | Sequence[str | Path]) -> list[Path]:
    if isinstance(dirs, (str, Path)):
        return [Path(dirs)]
    return [Path(d) for d in dirs]


def collect_episode_paths(dirs: str | Path | Sequence[str | Path]) -> list[Path]:
    """Finished episode files of one or many directories (each sorted, in the order of
    ``dirs``).

    Raises:
        DataError: a directory is missing, or none holds a finished episode
            ("no finished episodes in DIR (N partial)").
    """
    ds = _as_dirs(dirs)
    if not ds:
        raise DataError("no data directories given")
    paths: list[Path] = []
    for d in ds:
        paths.extend(list_episodes(d))
    if not paths:
        partial = sum(1 for d in ds for p in d.iterdir() if p.name.endswith(".h5.partial"))
        where = ", ".join(str(d) for d in ds)
        raise DataError(f"no finished episodes in {where} ({partial} partial)")
    return paths


def split_by_episode(paths: Sequence[str | Path], val_fraction: float, seed: int) -> tuple[list[Path], list[Path]]:
    """Split episode files into train and validation sets, by episode (never by frame).

    Deterministic: the paths are sorted, then shuffled by ``numpy.random.default_rng(seed)``.
    With ``val_fraction > 0`` and at least 2 episodes, validation gets
    ``round(val_fraction * n)`` episodes, at least 1 and at most n - 1.

    Args:
        paths: episode files.
        val_fraction: share of episodes for validation, in [0, 1).
        seed: shuffling seed.

    Returns:
        (train, validation), each sorted.

    Raises:
        ValueError: ``val_fraction`` outside [0, 1).
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction!r}")
    ps = sorted({Path(p) for p in paths})
    n = len(ps)
    n_val = 0
    if val_fraction > 0.0 and n >= 2:
        n_val = min(max(1, int(round(val_fraction * n))), n - 1)
    elif val_fraction > 0.0:
        log.warning("split_by_episode: %d episode(s); no validation episode", n)
    perm = np.random.default_rng(seed).permutation(n)
    val_idx = set(perm[:n_val].tolist())
    train = [p for i, p in enumerate(ps) if i not in val_idx]
    val = [p for i, p in enumerate(ps) if i in val_idx]
    return train, val


def collate_samples(batch: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Collate samples into a batch: a faster ``default_collate`` for this dataset.

    Same keys, dtypes and shapes as ``torch.utils.data.default_collate`` (``image``
    (B, H, W, 3) uint8, ``steer`` (B,) float32, ``command`` (B,) int64, ``camera`` a
    list of str, ...), but: arrays are stacked in numpy (in a DataLoader worker
    directly into shared memory, saving the copy that sending the batch would make);
    numpy scalars of one dtype are packed into one (K, B) array whose rows are the
    returned (contiguous) tensors, so a batch crosses from a worker in a handful of
    shared-memory blocks instead of one per key. Tensors (e.g. from a transform) are
    stacked; anything else goes to ``default_collate``.

    Use it as ``DataLoader(ds, collate_fn=collate_samples)``.
    """
    import torch
    from torch.utils.data import default_collate, get_worker_info

    in_worker = get_worker_info() is not None
    n = len(batch)
    out: dict[str, Any] = {}
    groups: dict[np.dtype, list[str]] = {}
    for k, v in batch[0].items():
        if isinstance(v, np.generic) and v.dtype.kind in "biuf":
            groups.setdefault(v.dtype, []).append(k)
            continue
        items = [b[k] for b in batch]
        if isinstance(v, np.ndarray) and v.dtype.kind in "biuf":
            dst = _empty(torch, (n, *v.shape), v.dtype, shared=in_worker)
            np.stack(items, out=dst.numpy())
            out[k] = dst
        elif isinstance(v, torch.Tensor):
            if in_worker:
                dst = _empty(torch, (n, *v.shape), v.dtype, shared=True)
                out[k] = torch.stack(items, out=dst)
            else:
                out[k] = torch.stack(items)
        elif isinstance(v, str):
            out[k] = items
        else:
            out[k] = default_collate(items)
    for dt, keys in groups.items():
        packed = _empty(torch, (len(keys), n), dt, shared=in_worker)
        a = packed.numpy()
        for i, k in enumerate(keys):
            a[i] = [b[k] for b in batch]
        for i, k in enumerate(keys):
            out[k] = packed[i]
    return {k: out[k] for k in batch[0]}  # the samples' key order


def _empty(torch: Any, shape: tuple[int, ...], dtype: Any, *, shared: bool):
    """An uninitialised tensor of a numpy or torch dtype, in shared memory if asked."""
    tdtype = dtype if isinstance(dtype, torch.dtype) else torch.from_numpy(np.empty(0, dtype=dtype)).dtype
    if shared:
        try:  # as torch's default_collate does in workers
            elem = torch.empty(0, dtype=tdtype)
            numel = int(np.prod(shape)) if shape else 1
            storage = elem._typed_storage()._new_shared(numel, device=elem.device)
            return elem.new(storage).resize_(*shape)
        except (AttributeError, RuntimeError):  # pragma: no cover - private API moved
            pass
    return torch.empty(shape, dtype=tdtype)


def route_path_labels(route_xy: np.ndarray, route_s: np.ndarray, route_yaw: np.ndarray, pose: np.ndarray,
                      s_ego: np.ndarray, distances: Sequence[float]) -> np.ndarray:
    """The route ahead of each pose, as points in the pose's frame (a path head's labels).

    For step t and distance d_k the route point at arc length ``s_ego[t] + d_k``
    (linear between the route's vertices; beyond the last vertex along its ``yaw``, before
    the first one back along the first ``yaw``) is expressed in the frame of the pose
    ``(x_t, y_t, yaw_t)``: with ``(dx, dy)`` = point - pose (world),

        forward = dx cos(yaw) + dy sin(yaw),    right = -dx sin(yaw) + dy cos(yaw)

    (CARLA axes: y right, yaw + = to the right; the lateral component has the sign of
    :func:`drive_il.control.pure_pursuit_curvature`'s).

    Args:
        route_xy: (N, 2) route vertices [m], world frame; route_s: (N,) arc lengths [m],
            non-decreasing; route_yaw: (N,) directions [rad].
        pose: (T, >=2) x, y [m] and, in the last column, yaw [rad] (a file's ``pose``
            (T, 4) x, y, z, yaw or (T, 3) x, y, yaw).
        s_ego: (T,) arc length of the car's projection onto the route [m].
        distances: (K,) d_k [m].

    Returns:
        (T, K, 2) float64: (forward, right) [m] of each point.
    """
    xy = np.asarray(route_xy, dtype=np.float64).reshape(-1, 2)
    s = np.asarray(route_s, dtype=np.float64).reshape(-1)
    yaw_r = np.asarray(route_yaw, dtype=np.float64).reshape(-1)
    pose = np.asarray(pose, dtype=np.float64)
    q = np.asarray(s_ego, dtype=np.float64).reshape(-1, 1) + np.asarray(distances, dtype=np.float64)[None, :]
    px = np.interp(q, s, xy[:, 0])
    py = np.interp(q, s, xy[:, 1])
    past = q - s[-1]
    if (past > 0).any():
        px = np.where(past > 0, xy[-1, 0] + past * math.cos(yaw_r[-1]), px)
        py = np.where(past > 0, xy[-1, 1] + past * math.sin(yaw_r[-1]), py)
    before = q - s[0]
    if (before < 0).any():
        px = np.where(before < 0, xy[0, 0] + before * math.cos(yaw_r[0]), px)
        py = np.where(before < 0, xy[0, 1] + before * math.sin(yaw_r[0]), py)
    ex, ey, eyaw = pose[:, 0:1], pose[:, 1:2], pose[:, -1:]
    c, sn = np.cos(eyaw), np.sin(eyaw)
    dx, dy = px - ex, py - ey
    return np.stack([dx * c + dy * sn, -dx * sn + dy * c], axis=-1)


def _file_route(p: Path, reader: Any, keys: Sequence[str], why: str) -> dict[str, np.ndarray]:
    """The episode file's ``/route`` arrays; DataError (one line: the file, "the file has
    no route", ``why``) when it lacks one of ``keys`` or has fewer than 2 points."""
    route = reader.route
    if not route or any(k not in route for k in keys) or len(route["s"]) < 2:
        raise DataError(f"{p}: the file has no route; {why}")
    return route


def _check_used_steps(p: Path, ok: np.ndarray, used: np.ndarray, what: str) -> None:
    """DataError (one line: the file, the first used step where ``ok`` (T,) is False,
    ``what``) if a selected step fails."""
    bad = used & ~ok
    if bad.any():
        raise DataError(f"{p}: step {int(np.flatnonzero(bad)[0])}: {what}")


def _check_finite(path: Path, expert: np.ndarray, speed: np.ndarray, used: np.ndarray) -> None:
    """Raise a one-line DataError at the first used step whose expert label (steer,
    throttle, brake) or speed is NaN or infinite: one such label turns every weight
    of a model trained on it into NaN."""
    bad = used & ~(np.isfinite(expert).all(axis=1) & np.isfinite(speed))
    if bad.any():
        t = int(np.flatnonzero(bad)[0])
        vals = ", ".join(f"{k} {float(v)!r}" for k, v in zip(("steer", "throttle", "brake"), expert[t]))
        raise DataError(f"{path}: step {t}: non-finite expert label or speed ({vals}, speed {float(speed[t])!r}; "
                        f"{int(bad.sum())} such step(s) in the file); a model cannot be trained on it: "
                        "re-record or remove the episode")


class EpisodeDataset(_TorchDataset):
    """Samples (episode, step, camera) of recorded episodes.

    Each sample is a dict:

    * ``image``: (H, W, 3) uint8 RGB numpy array;
    * ``camera`` (str), ``camera_y`` [m] (mount lateral offset, + = right) and
      ``camera_yaw`` [rad] (+ = right), for label correction of off-centre views;
    * ``steer``, ``throttle``, ``brake``: the expert's label (float32);
    * ``speed`` [m/s], ``command`` (int64 RoadOption value);
    * ``lateral_deviation`` [m], ``heading_error`` [rad] (float32);
    * ``intervention`` (bool), ``noise`` (bool);
    * ``episode`` (index into :attr:`episode_paths`), ``frame`` (step index t);
    * ``wheelbase`` [m], ``max_steer_angle`` [rad] of the episode's vehicle;
    * with ``path_distances``: ``path`` (K, 2) float32, the route ahead in the ego
      frame at those arc lengths (:func:`route_path_labels`);
    * with ``target_points``: ``target_point`` (2,) float32, the route's target point
      (forward, right) [m] in the ego frame (an input, not a label: the next point of the
      route's sparse plan, :class:`drive_il.routing.target.SparseRoute`, from the
      file's ``/route``, ``pose`` and ``route_progress``; what the worlds put in
      :class:`~drive_il.types.Observation` ``target_point``);
    * with ``speed_labels``: ``target_speed`` float32 [m/s], the expert's target speed
      at the step (the label of a speed head; every camera of the step carries the same
      one), NaN where the file has none (schema version 1): the loss masks those out;
    * with ``gap_labels``: ``obstacle_gap`` float32 [m], the gap from the front bumper to
      what the expert slows for (``steps/obstacle``'s gap; +inf where nothing slows it,
      NaN where the file has none: schema version 3 or older), the label of an
      obstacle-gap head (``[output] obstacle_gap``);
    * with ``reason_labels``: ``stop_reason`` int64, the code of what the expert slows for
      at the step (``steps/stop_reason``, :data:`~drive_il.types.STOP_REASONS`;
      :data:`~drive_il.types.STOP_REASON_UNKNOWN` where the file has none), the label of
      a stop-reason head (``[output] stop_reason_head``).

    ``transform(sample) -> sample`` is applied last (preprocessing, augmentation).
    Batch with :func:`collate_samples` (faster than torch's ``default_collate``, same
    result).

    Args:
        dirs: one or many episode directories (e.g. BC data + DAgger rounds).
        cameras: camera names to use, or None for every camera of the rig.
        episodes: use only these episode files (e.g. one side of
            :func:`split_by_episode`); ``dirs`` is then ignored except for messages.
        transform: applied to each sample, last.
        select: ``select(steps, meta) -> (T,) bool`` keeps the steps where True;
            ``steps`` maps STEP_FIELDS names to arrays (e.g. keep only
            intervention-flagged frames for gated DAgger).
        interventions_only: shorthand for ``select`` on ``steps["intervention"]``.
        exclude_noise: drop steps whose executed control was perturbed (the labels
            there are clean either way; CIL trains only on the expert's recovery).
        max_open_files: HDF5 handles kept open per worker.
        path_distances: arc lengths d_k [m] of path labels (None: no ``path`` key).
        speed_labels: add ``target_speed`` to every sample.
        gap_labels: add ``obstacle_gap`` to every sample; ``"vehicles"``: NaN (unknown)
            where the expert's stop reason is a red or yellow light (``[output]
            gap_lights = false``).
        reason_labels: add ``stop_reason`` to every sample.
        target_points: add ``target_point`` to every sample.

    Attributes:
        episode_paths: the episode files, index = ``sample["episode"]``.
        metas: their :class:`EpisodeMeta`.
        cameras: the camera names used.
        rig: camera name -> rig entry (name, width, height, fov_deg, x, y, z, ...).
        labels: per-sample arrays aligned with the index (steer, throttle, brake, speed,
            command, lateral_deviation, heading_error, intervention, noise,
            target_speed, stop_reason, obstacle_gap, episode, frame, camera), for
            statistics and weighting without reading images.

    Raises:
        DataError: no finished episodes, mixed camera rigs (one line naming both files),
            a camera missing from a file, a damaged file, a non-finite expert label or
            speed at a selected step (naming the file and the step); reading a frame
            whose chunk is damaged (HDF5 fletcher32 checksum) names the file too.
    """

    def __init__(self, dirs: str | Path | Sequence[str | Path] = (), *,
                 cameras: Sequence[str] | None = ("center",), episodes: Sequence[str | Path] | None = None,
                 transform: Callable[[Sample], Sample] | None = None,
                 select: Callable[[Mapping[str, np.ndarray], EpisodeMeta], np.ndarray] | None = None,
                 interventions_only: bool = False, exclude_noise: bool = False,
                 max_open_files: int = 128, path_distances: Sequence[float] | None = None,
                 speed_labels: bool = False, target_points: bool = False, gap_labels: bool | str = False,
                 reason_labels: bool = False) -> None:
        if episodes is not None:
            paths = [Path(p) for p in episodes]
            if not paths:
                where = ", ".join(str(d) for d in _as_dirs(dirs)) or "the given episode list"
                raise DataError(f"no finished episodes in {where} (empty episode list)")
            for p in paths:
                if p.name.endswith(".partial"):
                    raise DataError(f"{p}: a partial episode file cannot be used for training")
        else:
            paths = collect_episode_paths(dirs)
        self.transform = transform
        self.speed_labels = bool(speed_labels)
        if gap_labels not in (False, True, "vehicles"):
            raise ValueError(f"gap_labels: expected True, False or 'vehicles', got {gap_labels!r}")
        self.gap_labels = bool(gap_labels)
        self.reason_labels = bool(reason_labels)
        light_codes = np.array([stop_reason_code("red_light"), stop_reason_code("yellow_light")], np.uint8) \
            if gap_labels == "vehicles" else None
        self.max_open_files = max(1, int(max_open_files))
        self.episode_paths: list[Path] = paths
        self.metas: list[EpisodeMeta] = []
        cols: dict[str, list[np.ndarray]] = {k: [] for k in (
            "steer", "throttle", "brake", "speed", "command", "lateral_deviation", "heading_error",
            "intervention", "noise", "target_speed", "stop_reason", "obstacle_gap")}
        masks: list[np.ndarray] = []
        self.path_distances: tuple[float, ...] | None = (tuple(float(d) for d in path_distances)
                                                         if path_distances is not None else None)
        paths_k: list[np.ndarray] = []
        targets: list[np.ndarray] | None = [] if target_points else None
        cams: tuple[str, ...] | None = tuple(cameras) if cameras is not None else None
        if cams is not None and not cams:
            raise DataError("no cameras selected")
        rigs = RigChecker(cams)
        for p in paths:
            with EpisodeReader(p) as r:
                meta = r.meta
                rigs.add(meta)
                for c in rigs.cameras or ():
                    n_frames = r.frames(c).shape[0]
                    if n_frames != meta.steps:
                        raise DataError(f"{p}: camera {c!r} has {n_frames} frames for {meta.steps} steps")
                steps = r.steps
                expert = np.asarray(steps["expert"], dtype=np.float32)
                cols["steer"].append(expert[:, 0])
                cols["throttle"].append(expert[:, 1])
                cols["brake"].append(expert[:, 2])
                for k in ("speed", "lateral_deviation", "heading_error"):
                    cols[k].append(np.asarray(steps[k], dtype=np.float32))
                cols["command"].append(np.asarray(steps["command"], dtype=np.int64))
                cols["intervention"].append(np.asarray(steps["intervention"], dtype=bool))
                cols["noise"].append(np.asarray(steps["noise"], dtype=bool))
                cols["target_speed"].append(np.asarray(steps["target_speed"], dtype=np.float32))
                cols["stop_reason"].append(np.asarray(steps["stop_reason"], dtype=np.uint8))
                gap = np.array(steps["obstacle"][:, 0], dtype=np.float32)
                if light_codes is not None:
                    gap[np.isin(cols["stop_reason"][-1], light_codes)] = np.nan
                cols["obstacle_gap"].append(gap)
                m = np.ones(meta.steps, dtype=bool)
                if interventions_only:
                    m &= cols["intervention"][-1]
                if exclude_noise:
                    m &= ~cols["noise"][-1]
                if select is not None:
                    sm = np.asarray(select(steps, meta), dtype=bool)
                    if sm.shape != (meta.steps,):
                        raise ValueError(f"select returned shape {sm.shape} for {p} with {meta.steps} steps")
                    m &= sm
                _check_finite(p, expert, cols["speed"][-1], m)
                if self.path_distances is not None:
                    paths_k.append(self._path_labels(p, r, steps, m))
                if targets is not None:
                    targets.append(self._target_points(p, r, steps, m))
                masks.append(m)
                self.metas.append(meta)
        cams = rigs.cameras
        assert cams is not None
        self.cameras: tuple[str, ...] = cams
        self.rig: dict[str, dict] = {c: rigs.rig[c] for c in cams}
        self._cam_y = [float(self.rig[c].get("y", 0.0)) for c in cams]
        self._cam_yaw = [math.radians(float(self.rig[c].get("yaw_deg", 0.0))) for c in cams]
        self._hw = [(int(self.rig[c]["height"]), int(self.rig[c]["width"])) for c in cams]
        lengths = np.array([len(m) for m in masks], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        self._steps = {k: (np.concatenate(v) if v else np.zeros(0)) for k, v in cols.items()}
        self._path = (np.concatenate(paths_k) if paths_k else np.zeros((0, 0, 2), np.float32)) \
            if self.path_distances is not None else None
        self._target = ((np.concatenate(targets) if targets else np.zeros((0, 2), np.float32))
                        if targets is not None else None)
        self._wheelbase = np.array([m.wheelbase for m in self.metas], dtype=np.float32)
        self._max_steer = np.array([m.max_steer_angle for m in self.metas], dtype=np.float32)
        # index (episode, t, camera), ordered by episode, step, camera
        e_list, t_list = [], []
        for e, m in enumerate(masks):
            ts = np.flatnonzero(m)
            e_list.append(np.full(len(ts), e, dtype=np.int32))
            t_list.append(ts.astype(np.int32))
        e_steps = np.concatenate(e_list) if e_list else np.zeros(0, np.int32)
        t_steps = np.concatenate(t_list) if t_list else np.zeros(0, np.int32)
        nc = len(cams)
        self._e = np.repeat(e_steps, nc)
        self._t = np.repeat(t_steps, nc)
        self._c = np.tile(np.arange(nc, dtype=np.int8), len(e_steps))
        self._g = offsets[self._e] + self._t
        g = self._g
        self.labels: dict[str, np.ndarray] = {k: v[g] for k, v in self._steps.items()}
        self.labels["episode"] = self._e
        self.labels["frame"] = self._t
        self.labels["camera"] = self._c
        self._pid = os.getpid()
        self._handles: OrderedDict[int, tuple[Any, list[Any]]] = OrderedDict()
        if len(self._e) == 0:
            log.warning("EpisodeDataset: %d episodes but no sample passed the selection", len(paths))

    # ------------------------------------------------------------------ torch API
    def __len__(self) -> int:
        return int(len(self._e))

    def __getitem__(self, i: int) -> Sample:
        i = int(i)
        if i < 0:
            i += len(self._e)
        e = int(self._e[i])
        t = int(self._t[i])
        c = int(self._c[i])
        g = int(self._g[i])
        s = self._steps
        sample: Sample = {
            "image": self._read(e, c, t),
            "camera": self.cameras[c],
            "camera_y": np.float32(self._cam_y[c]),
            "camera_yaw": np.float32(self._cam_yaw[c]),
            "steer": s["steer"][g],
            "throttle": s["throttle"][g],
            "brake": s["brake"][g],
            "speed": s["speed"][g],
            "command": s["command"][g],
            "lateral_deviation": s["lateral_deviation"][g],
            "heading_error": s["heading_error"][g],
            "intervention": s["intervention"][g],
            "noise": s["noise"][g],
            "episode": np.int64(e),
            "frame": np.int64(t),
            "wheelbase": self._wheelbase[e],
            "max_steer_angle": self._max_steer[e],
        }
        if self._path is not None:
            sample["path"] = self._path[g]
        if self._target is not None:
            sample["target_point"] = self._target[g]
        if self.speed_labels:
            sample["target_speed"] = s["target_speed"][g]
        if self.gap_labels:
            sample["obstacle_gap"] = s["obstacle_gap"][g]
        if self.reason_labels:
            sample["stop_reason"] = np.int64(s["stop_reason"][g])
        if self.transform is not None:
            sample = self.transform(sample)
        return sample

    def __getitems__(self, indices: Sequence[int]) -> list[Sample]:
        """Batched fetch used by torch's DataLoader (same samples as __getitem__)."""
        return [self.__getitem__(i) for i in indices]

    def _path_labels(self, p: Path, reader: Any, steps: Mapping[str, np.ndarray], used: np.ndarray) -> np.ndarray:
        """(T, K, 2) float32 path labels of one episode file (:func:`route_path_labels`)."""
        route = _file_route(p, reader, ("xy", "s"), "a path head's labels are the route ahead "
                            "(record with a route, or train a 1/r model)")
        yaw = route.get("yaw")
        if yaw is None:
            d = np.diff(np.asarray(route["xy"], dtype=np.float64), axis=0)
            yaw = np.arctan2(d[:, 1], d[:, 0])
            yaw = np.concatenate([yaw, yaw[-1:]])
        lab = route_path_labels(route["xy"], route["s"], yaw, np.asarray(steps["pose"]),
                                np.asarray(steps["route_progress"]), self.path_distances or ())
        _check_used_steps(p, np.isfinite(lab).all(axis=(1, 2)), used,
                          "non-finite path label (pose or route progress); a path head cannot be trained on it")
        return lab.astype(np.float32)

    @staticmethod
    def _target_points(p: Path, reader: Any, steps: Mapping[str, np.ndarray], used: np.ndarray) -> np.ndarray:
        """(T, 2) float32 target points of one episode file (:class:`SparseRoute`)."""
        route = _file_route(p, reader, ("xy", "s", "commands"), "a target point is the route's next plan point "
                            "(record with a route, or train a model without target_point_input)")
        plan = SparseRoute(route["xy"], route["s"], route["commands"])
        tp = plan.target_points(np.asarray(steps["pose"]), np.asarray(steps["route_progress"]))
        _check_used_steps(p, np.isfinite(tp).all(axis=1), used, "non-finite target point (pose or route progress)")
        return tp.astype(np.float32)

    # ------------------------------------------------------------------ reading
    def _read(self, e: int, c: int, t: int) -> np.ndarray:
        ent = self._handle(e)
        dsid = ent[1][c]
        h, w = self._hw[c]
        try:
            if ent[2][c]:
                _, buf = dsid.read_direct_chunk((t, 0, 0, 0))
                img = np.frombuffer(buf, dtype=np.uint8)
                if img.size == h * w * 3:
                    return img.reshape(h, w, 3).copy()  # writable (torch warns on read-only arrays)
            # through HDF5's filter pipeline: checks the chunk's fletcher32 checksum
            return np.asarray(ent[3][c][t])
        except (OSError, RuntimeError, ValueError) as err:
            raise DataError(f"{self.episode_paths[e]}: cannot read frame {t} of camera {self.cameras[c]!r} "
                            f"(damaged chunk: {' '.join(str(err).split())[:120]})") from None

    def _handle(self, e: int):
        pid = os.getpid()
        if pid != self._pid:  # forked worker: never use the parent's HDF5 handles
            self._handles = OrderedDict()
            self._pid = pid
        ent = self._handles.get(e)
        if ent is not None:
            self._handles.move_to_end(e)
            return ent
        import h5py

        p = self.episode_paths[e]
        try:
            f = h5py.File(p, "r", rdcc_nbytes=0)
            dsets = [f["frames"][c] for c in self.cameras]
        except (OSError, KeyError) as err:
            raise DataError(f"{p}: cannot read frames ({' '.join(str(err).split())})") from None
        ids = [d.id for d in dsets]
        direct = [d.chunks == (1, *d.shape[1:]) and d.id.get_create_plist().get_nfilters() == 0 for d in dsets]
        ent = (f, ids, direct, dsets)
        self._handles[e] = ent
        while len(self._handles) > self.max_open_files:
            _, old = self._handles.popitem(last=False)
            try:
                old[0].close()
            except Exception:  # pragma: no cover
                pass
        return ent

    def close(self) -> None:
        """Close the HDF5 handles of this process."""
        if self._pid == os.getpid():
            for ent in self._handles.values():
                try:
                    ent[0].close()
                except Exception:  # pragma: no cover
                    pass
        self._handles = OrderedDict()

    def __getstate__(self) -> dict:
        st = dict(self.__dict__)
        st["_handles"] = OrderedDict()  # handles never cross processes (spawn workers)
        return st

    def __setstate__(self, st: dict) -> None:
        self.__dict__.update(st)
        self._pid = os.getpid()

    # ------------------------------------------------------------------ helpers
    @property
    def num_episodes(self) -> int:
        return len(self.episode_paths)

    def steering_balance_weights(self, bins: int = 21) -> np.ndarray:
        """Per-sample weights inversely proportional to the steering label's histogram
        count (for ``torch.utils.data.WeightedRandomSampler``: straight driving
        dominates recorded data). Normalised to mean 1."""
        steer = self.labels["steer"]
        if len(steer) == 0:
            return np.zeros(0)
        edges = np.linspace(-1.0, 1.0, bins + 1)
        idx = np.clip(np.digitize(steer, edges) - 1, 0, bins - 1)
        counts = np.bincount(idx, minlength=bins).astype(np.float64)
        w = 1.0 / counts[idx]
        return w * (len(w) / w.sum())

    def describe(self) -> str:
        """One line: samples, episodes, cameras and image size."""
        h, w = self._hw[0]
        return (f"{len(self)} samples from {self.num_episodes} episodes, cameras "
                f"{', '.join(self.cameras)} ({h}x{w})")

