"""Episode storage: one HDF5 file per episode, versioned, crash-safe.

A demonstration directory (one per collection run or DAgger round) looks like::

    DIR/
      manifest.jsonl                 one JSON line per finished episode (appended)
      episode_000000.h5              finished episodes (readers list only these)
      episode_000001.h5
      episode_000002.h5.partial      the episode being written (ignored by readers;
                                     left behind by a crash, reported by `data verify`)

    episode_NNNNNN.h5
      /  attrs                       format = "drive_il.episode", schema_version = 1,
                                     created (ISO 8601 UTC), drive_il_version,
                                     scenario, scenario_source, scenario_json,
                                     town, seed, episode, weather, backend, dt [s],
                                     cameras_json (rig: name, width, height, fov_deg,
                                       x, y, z [m], pitch_deg, yaw_deg per camera),
                                     vehicle_json (wheelbase [m], max_steer_deg, ...),
                                     expert_preset, driver, dagger_round (-1 = none),
                                     beta (NaN = none), noise_json,
                                     -- written when the episode ends: --
                                     termination, summary_json, steps (T),
                                     duration [s], distance [m], complete = True
      /frames/<camera>               (T, H, W, 3) uint8 RGB, chunks (1, H, W, 3),
                                     no compression (random access, ~16 us a frame)
      /steps/<field>                 per-step arrays, see STEP_FIELDS:
         frame (T,) int64            simulation frame number
         sim_time (T,) float64       [s]
         speed (T,) float32          [m/s]
         pose (T, 4) float64         x, y, z [m], yaw [rad] (CARLA world frame)
         command (T,) int8           RoadOption value
         executed (T, 3) float32     steer, throttle, brake sent to the simulator
         expert (T, 3) float32       the expert's label (always)
         learner (T, 3) float32      the learner's prediction, NaN when none ran
         intervention (T,) bool      the expert/human took over at this step
         noise (T,) bool             the executed control was perturbed (noise.py)
         driver (T,) uint8           index into the attribute ``names`` of the dataset
         lateral_deviation (T,) f32  [m], + = right of the lane centre
         heading_error (T,) float32  [rad]
         route_progress (T,) float32 [m] along the route
         collision (T,) bool         events reported while executing the control
         off_road (T,) bool
         lane_invasion (T,) bool
      /route/xy (N, 2) float64, yaw (N,) float64 [rad], s (N,) float64 [m],
             commands (N,) int8      the episode's route (absent when none)

Durability: the file is written as ``NAME.h5.partial`` with HDF5's default (earliest)
library version and no SWMR, closed, then renamed into place with ``os.replace``; the
manifest line is appended afterwards. A SIGKILL therefore loses at most the episode in
progress (REFERENCES.md: with libver="latest" and no SWMR a kill -9 left 0 of 4 files
readable; write-then-rename leaves every finished file intact). The per-step scalars
are buffered in memory and written once at the end; frames are written as they come,
one direct chunk write per frame. The layout follows the habit of LeRobot's
``lerobot_dataset.py``: a version in every file from day one, the tree drawn here.

Readers (:class:`EpisodeReader`, :func:`list_episodes`, the Dataset) ignore
``*.partial``; an unknown schema version or a damaged file is a
:class:`~drive_il.errors.DataError` naming the file.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import logging
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np

from ..errors import DataError

__all__ = [
    "SCHEMA_VERSION",
    "SUPPORTED_SCHEMA_VERSIONS",
    "FORMAT_NAME",
    "MANIFEST_NAME",
    "PARTIAL_SUFFIX",
    "STEP_FIELDS",
    "DRIVER_NAMES",
    "EVENT_FIELDS",
    "EpisodeMeta",
    "EpisodeWriter",
    "EpisodeReader",
    "ScanReport",
    "RigChecker",
    "RIG_KEYS",
    "episode_filename",
    "episode_index_from_path",
    "finished_episode_indices",
    "list_episodes",
    "scan_dir",
    "read_manifest",
    "append_manifest",
]

log = logging.getLogger(__name__)

#: Version of the on-disk layout written by this code. Bump on any incompatible change.
SCHEMA_VERSION = 1
#: Versions this code reads.
SUPPORTED_SCHEMA_VERSIONS: tuple[int, ...] = (1,)
#: ``format`` attribute of every episode file.
FORMAT_NAME = "drive_il.episode"
MANIFEST_NAME = "manifest.jsonl"
PARTIAL_SUFFIX = ".partial"
EPISODE_SUFFIX = ".h5"

#: Per-step arrays: name -> (dtype, trailing shape, description).
STEP_FIELDS: dict[str, tuple[str, tuple[int, ...], str]] = {
    "frame": ("int64", (), "simulation frame number"),
    "sim_time": ("float64", (), "simulation time [s]"),
    "speed": ("float32", (), "ego speed [m/s]"),
    "pose": ("float64", (4,), "x, y, z [m], yaw [rad] in CARLA's world frame"),
    "command": ("int8", (), "RoadOption value in force"),
    "executed": ("float32", (3,), "steer, throttle, brake sent to the simulator"),
    "expert": ("float32", (3,), "expert label: steer, throttle, brake"),
    "learner": ("float32", (3,), "learner prediction (NaN when none ran)"),
    "intervention": ("bool", (), "expert or human took over"),
    "noise": ("bool", (), "executed control perturbed by noise injection"),
    "driver": ("uint8", (), "index into DRIVER_NAMES (attribute 'names')"),
    "lateral_deviation": ("float32", (), "drift [m], + = right of lane centre"),
    "heading_error": ("float32", (), "vehicle yaw minus lane direction [rad]"),
    "route_progress": ("float32", (), "arc length along the route [m]"),
    "collision": ("bool", (), "collision reported while executing the control"),
    "off_road": ("bool", (), "left the drivable surface"),
    "lane_invasion": ("bool", (), "crossed a lane marking"),
}
#: Event flags among STEP_FIELDS (EventKind values).
EVENT_FIELDS: tuple[str, ...] = ("collision", "off_road", "lane_invasion")
#: Codes of the per-step ``driver`` array (unknown names are appended per file).
DRIVER_NAMES: tuple[str, ...] = ("expert", "learner", "human")

_NAME_RE = re.compile(r"^episode_(\d+)\.h5$")


def episode_filename(episode: int) -> str:
    """File name of episode ``episode`` (its index within the run): ``episode_000012.h5``."""
    if episode < 0:
        raise ValueError(f"episode index must be >= 0, got {episode}")
    return f"episode_{episode:06d}{EPISODE_SUFFIX}"


def episode_index_from_path(path: str | Path) -> int | None:
    """The episode index encoded in a finished file's name, or None."""
    m = _NAME_RE.match(Path(path).name)
    return int(m.group(1)) if m else None


# --------------------------------------------------------------------------- metadata


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    if dataclasses.is_dataclass(o) and not isinstance(o, type):
        return dataclasses.asdict(o)
    if hasattr(o, "name") and hasattr(o, "value"):  # enums
        return o.name
    if isinstance(o, (set, frozenset)):
        return sorted(o)
    return str(o)


def _dumps(v: Any) -> str:
    return json.dumps(v, default=_json_default, sort_keys=True, allow_nan=True)


@dataclass(frozen=True)
class EpisodeMeta:
    """Per-episode metadata of an episode file (the root attributes).

    Attributes:
        path: the file.
        schema_version: on-disk layout version.
        scenario: scenario name; scenario_source: its file; scenario_dict: the full
            scenario as plain values.
        town, seed, episode, weather, backend: where and how it was driven.
        dt: fixed step [s].
        cameras: the camera rig, one dict per camera (name, width, height, fov_deg,
            x, y, z [m], pitch_deg, yaw_deg), as given by the rollout, completed with
            the recorded image size.
        vehicle: vehicle parameters (wheelbase [m], max_steer_deg, ...).
        expert_preset, driver: who taught / who drove.
        dagger_round: DAgger round or None; beta: DAgger beta or None.
        noise: noise-injection settings ({} when off).
        termination: how the episode ended ("" while partial).
        summary: metric name -> value.
        steps: number of recorded steps T.
        duration: T * dt [s]; distance: path length of the recorded poses [m].
        created: ISO 8601 UTC time the file was started.
        complete: the writer finished the file.
    """

    path: Path
    schema_version: int
    scenario: str
    town: str
    seed: int
    episode: int
    weather: str
    backend: str
    dt: float
    cameras: tuple[dict, ...]
    vehicle: dict
    expert_preset: str
    driver: str
    dagger_round: int | None
    beta: float | None
    noise: dict
    termination: str
    summary: dict
    steps: int
    duration: float
    distance: float
    created: str
    complete: bool
    scenario_source: str = ""
    scenario_dict: dict = field(default_factory=dict)
    drive_il_version: str = ""

    @property
    def camera_names(self) -> tuple[str, ...]:
        return tuple(c["name"] for c in self.cameras)

    def camera(self, name: str) -> dict:
        """The rig entry of camera ``name``.

        Raises:
            DataError: no such camera in this file.
        """
        for c in self.cameras:
            if c.get("name") == name:
                return c
        raise DataError(f"{self.path}: no camera {name!r} (cameras: {', '.join(self.camera_names)})")

    @property
    def wheelbase(self) -> float:
        """[m] (2.9 m when the file does not say)."""
        return float(self.vehicle.get("wheelbase", 2.9))

    @property
    def max_steer_angle(self) -> float:
        """Road-wheel angle at |steer| = 1 [rad]."""
        if "max_steer_deg" in self.vehicle:
            return math.radians(float(self.vehicle["max_steer_deg"]))
        if "max_steer_angle" in self.vehicle:
            return float(self.vehicle["max_steer_angle"])
        return math.radians(35.0)


def _info_attrs(info: Any) -> dict[str, Any]:
    """Root attributes from an EpisodeInfo-like object (duck typed)."""
    dr = getattr(info, "dagger_round", None)
    beta = getattr(info, "beta", None)
    from .. import __version__
    return {
        "format": FORMAT_NAME,
        "schema_version": SCHEMA_VERSION,
        "drive_il_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "scenario": _s(getattr(info, "scenario", "")),
        "scenario_source": _s(getattr(info, "scenario_source", "") or ""),
        "scenario_json": _dumps(getattr(info, "scenario_dict", {}) or {}),
        "town": _s(getattr(info, "town", "")),
        "seed": int(getattr(info, "seed", 0)),
        "episode": int(getattr(info, "episode", 0)),
        "weather": _s(getattr(info, "weather", "")),
        "backend": _s(getattr(info, "backend", "")),
        "dt": float(getattr(info, "dt", 0.05)),
        "vehicle_json": _dumps(getattr(info, "vehicle", {}) or {}),
        "expert_preset": _s(getattr(info, "expert_preset", "")),
        "driver": _s(getattr(info, "driver", "")),
        "dagger_round": -1 if dr is None else int(dr),
        "beta": float("nan") if beta is None else float(beta),
        "noise_json": _dumps(getattr(info, "noise", {}) or {}),
        "termination": "",
        "summary_json": "{}",
        "steps": 0,
        "duration": 0.0,
        "distance": 0.0,
        "complete": False,
    }


def _s(v: Any) -> str:
    """A string attribute value (HDF5 strings cannot hold NUL: replaced by U+FFFD)."""
    return str(v).replace("\x00", "\ufffd")


def _attr_str(v: Any) -> str:
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    return str(v)


def _meta_from_attrs(path: Path, a: Mapping[str, Any]) -> EpisodeMeta:
    def js(key: str, default: Any) -> Any:
        if key not in a:
            return default
        try:
            return json.loads(_attr_str(a[key]))
        except ValueError as e:
            raise DataError(f"{path}: attribute {key!r} is not valid JSON ({e})") from None

    dr = int(a.get("dagger_round", -1))
    beta = float(a.get("beta", float("nan")))
    return EpisodeMeta(
        path=path,
        schema_version=int(a["schema_version"]),
        scenario=_attr_str(a.get("scenario", "")),
        scenario_source=_attr_str(a.get("scenario_source", "")),
        scenario_dict=js("scenario_json", {}),
        town=_attr_str(a.get("town", "")),
        seed=int(a.get("seed", 0)),
        episode=int(a.get("episode", 0)),
        weather=_attr_str(a.get("weather", "")),
        backend=_attr_str(a.get("backend", "")),
        dt=float(a.get("dt", 0.05)),
        cameras=tuple(js("cameras_json", [])),
        vehicle=js("vehicle_json", {}),
        expert_preset=_attr_str(a.get("expert_preset", "")),
        driver=_attr_str(a.get("driver", "")),
        dagger_round=None if dr < 0 else dr,
        beta=None if math.isnan(beta) else beta,
        noise=js("noise_json", {}),
        termination=_attr_str(a.get("termination", "")),
        summary=js("summary_json", {}),
        steps=int(a.get("steps", 0)),
        duration=float(a.get("duration", 0.0)),
        distance=float(a.get("distance", 0.0)),
        created=_attr_str(a.get("created", "")),
        complete=bool(a.get("complete", False)),
        drive_il_version=_attr_str(a.get("drive_il_version", "")),
    )


# --------------------------------------------------------------------------- writer


class EpisodeWriter:
    """Writes one episode file: ``NAME.h5.partial`` first, renamed on :meth:`finish`.

    Frames go to disk as they come (one direct chunk write per frame, ~40-80 us for a
    66x200 frame); the per-step arrays are handed over once, to :meth:`finish`.

    Args:
        path: the final file name (``.../episode_000012.h5``); the partial file is
            ``path + ".partial"``.
        info: an ``EpisodeInfo`` (or any object with its attributes) for the root
            attributes.
        frame_shapes: camera name -> (H, W) of its frames.
        route: optional mapping with ``xy`` (N, 2), ``yaw`` (N,), ``s`` (N,),
            ``commands`` (N,) arrays (a ``drive_il.types.Route`` works).
        capacity: initial frame capacity (grows by doubling; trimmed at the end).
        fsync: fsync the file before the rename (survives power loss, not only a
            killed process; costs a flush of the whole file).

    Raises:
        DataError: the file cannot be created.
    """

    def __init__(self, path: str | Path, info: Any, frame_shapes: Mapping[str, tuple[int, int]],
                 *, route: Any = None, capacity: int = 512, fsync: bool = False) -> None:
        import h5py

        self.path = Path(path)
        self.partial_path = self.path.with_name(self.path.name + PARTIAL_SUFFIX)
        self._fsync = fsync
        self._closed = False
        self._capacity = max(1, int(capacity))
        self._shapes = {str(k): (int(v[0]), int(v[1])) for k, v in frame_shapes.items()}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # Default libver (earliest), no SWMR: see the module docstring.
            self._f = h5py.File(self.partial_path, "w")
        except OSError as e:
            raise DataError(f"{self.partial_path}: cannot create episode file ({e})") from None
        attrs = _info_attrs(info)
        attrs["cameras_json"] = _dumps(_rig(info, self._shapes))
        for k, v in attrs.items():
            self._f.attrs[k] = v
        fg = self._f.create_group("frames")
        self._frames: dict[str, Any] = {}
        self._frame_ids: dict[str, Any] = {}
        self._written: dict[str, int] = {}
        for name, (h, w) in self._shapes.items():
            ds = fg.create_dataset(name, shape=(self._capacity, h, w, 3), maxshape=(None, h, w, 3),
                                   chunks=(1, h, w, 3), dtype="uint8")
            ds.attrs["layout"] = "HWC RGB"
            self._frames[name] = ds
            self._frame_ids[name] = ds.id
            self._written[name] = 0
        if route is not None:
            rg = self._f.create_group("route")
            for key, dtype in (("xy", "float64"), ("yaw", "float64"), ("s", "float64"), ("commands", "int8")):
                arr = getattr(route, key, None) if not isinstance(route, Mapping) else route.get(key)
                if arr is not None:
                    rg.create_dataset(key, data=np.asarray(arr, dtype=dtype))

    @property
    def cameras(self) -> tuple[str, ...]:
        return tuple(self._shapes)

    def write_frame(self, camera: str, t: int, frame: np.ndarray) -> None:
        """Write frame ``t`` of ``camera``: (H, W, 3) uint8.

        Raises:
            ValueError: unknown camera or a frame of another shape/dtype.
        """
        ds = self._frames.get(camera)
        if ds is None:
            raise ValueError(f"unknown camera {camera!r} (rig: {', '.join(self._shapes)})")
        h, w = self._shapes[camera]
        if frame.shape != (h, w, 3) or frame.dtype != np.uint8:
            raise ValueError(f"camera {camera!r}: expected a ({h}, {w}, 3) uint8 frame, "
                             f"got {frame.shape} {frame.dtype}")
        if t >= self._capacity:
            self._capacity = max(2 * self._capacity, t + 1)
            for d in self._frames.values():
                d.resize(self._capacity, axis=0)
        if not frame.flags.c_contiguous:
            frame = np.ascontiguousarray(frame)
        self._frame_ids[camera].write_direct_chunk((t, 0, 0, 0), frame)
        if t >= self._written[camera]:
            self._written[camera] = t + 1

    def write_step(self, t: int, frames: Mapping[str, np.ndarray]) -> None:
        """Write frame ``t`` of every camera of the rig (``frames``: name -> (H, W, 3) uint8)."""
        for cam in self._shapes:
            self.write_frame(cam, t, frames[cam])

    def finish(self, steps: Mapping[str, np.ndarray], *, termination: str,
               summary: Mapping[str, Any] | None = None, driver_names: Sequence[str] = DRIVER_NAMES,
               manifest: bool = True, manifest_extra: Mapping[str, Any] | None = None) -> Path:
        """Write the per-step arrays and the end-of-episode attributes, close, rename the
        partial file into place and append the manifest line.

        Args:
            steps: STEP_FIELDS name -> array of length T (all fields required).
            termination: how the episode ended.
            summary: metric name -> value (JSON-able).
            driver_names: names of the codes in ``steps["driver"]``.
            manifest: append a line to ``manifest.jsonl`` beside the file.
            manifest_extra: more keys for the manifest line.

        Returns:
            The finished file's path.

        Raises:
            ValueError: a missing field, wrong shape, or a frame count that differs
                from T.
        """
        if self._closed:
            raise RuntimeError(f"{self.partial_path}: writer already closed")
        missing = [k for k in STEP_FIELDS if k not in steps]
        if missing:
            raise ValueError(f"finish: missing step fields {missing}")
        n = len(steps["frame"])
        for k, (dtype, tail, _) in STEP_FIELDS.items():
            a = np.asarray(steps[k])
            if a.shape != (n, *tail):
                raise ValueError(f"finish: step field {k!r} has shape {a.shape}, expected {(n, *tail)}")
        for cam, w in self._written.items():
            if w != n:
                raise ValueError(f"finish: camera {cam!r} has {w} frames for {n} steps")
        f = self._f
        for d in self._frames.values():
            d.resize(n, axis=0)
        sg = f.create_group("steps")
        for k, (dtype, tail, doc) in STEP_FIELDS.items():
            ds = sg.create_dataset(k, data=np.asarray(steps[k], dtype=dtype))
            ds.attrs["doc"] = doc
        sg["driver"].attrs["names"] = _dumps(list(driver_names))
        pose = np.asarray(steps["pose"], dtype=np.float64)
        distance = float(np.hypot(*np.diff(pose[:, :2], axis=0).T).sum()) if n > 1 else 0.0
        dt = float(f.attrs["dt"])
        summ = dict(summary or {})
        f.attrs["termination"] = _s(termination)
        f.attrs["summary_json"] = _dumps(summ)
        f.attrs["steps"] = int(n)
        f.attrs["duration"] = n * dt
        f.attrs["distance"] = distance
        f.attrs["complete"] = True
        line = {
            "file": self.path.name,
            "schema_version": SCHEMA_VERSION,
            "episode": int(f.attrs["episode"]),
            "seed": int(f.attrs["seed"]),
            "scenario": _attr_str(f.attrs["scenario"]),
            "town": _attr_str(f.attrs["town"]),
            "weather": _attr_str(f.attrs["weather"]),
            "driver": _attr_str(f.attrs["driver"]),
            "dagger_round": None if int(f.attrs["dagger_round"]) < 0 else int(f.attrs["dagger_round"]),
            "termination": str(termination),
            "steps": int(n),
            "duration": n * dt,
            "distance": distance,
            "cameras": list(self._shapes),
            "noisy_steps": int(np.count_nonzero(steps["noise"])),
            "interventions": int(np.count_nonzero(steps["intervention"])),
            "created": _attr_str(f.attrs["created"]),
        }
        if manifest_extra:
            line.update(manifest_extra)
        f.flush()
        f.close()
        self._closed = True
        if self._fsync:
            fd = os.open(self.partial_path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.replace(self.partial_path, self.path)
        if self._fsync:
            _fsync_dir(self.path.parent)
        if manifest:
            append_manifest(self.path.parent, line, fsync=self._fsync)
        log.debug("episode written: %s (%d steps)", self.path, n)
        return self.path

    def abort(self) -> None:
        """Close and delete the partial file (idempotent)."""
        if not self._closed:
            try:
                self._f.close()
            except Exception:  # pragma: no cover - closing a broken file
                pass
            self._closed = True
        try:
            self.partial_path.unlink()
        except FileNotFoundError:
            pass

    @property
    def closed(self) -> bool:
        return self._closed


def _rig(info: Any, shapes: Mapping[str, tuple[int, int]]) -> list[dict]:
    """The camera rig from ``info.cameras`` (dicts or CameraConfig), completed with the
    recorded image sizes; cameras missing from the info get a bare entry."""
    given: dict[str, dict] = {}
    for c in getattr(info, "cameras", ()) or ():
        d = dict(c) if isinstance(c, Mapping) else (
            dataclasses.asdict(c) if dataclasses.is_dataclass(c) else dict(vars(c)))
        given[str(d.get("name", ""))] = d
    rig = []
    for name, (h, w) in shapes.items():
        d = dict(given.get(name, {}))
        d.setdefault("x", 0.0)
        d.setdefault("y", 0.0)
        d.setdefault("z", 0.0)
        d.setdefault("pitch_deg", 0.0)
        d.setdefault("yaw_deg", 0.0)
        d["name"] = name
        d["height"] = int(h)
        d["width"] = int(w)
        rig.append(d)
    return rig


def _fsync_dir(d: Path) -> None:
    try:
        fd = os.open(d, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- manifest


def append_manifest(directory: str | Path, line: Mapping[str, Any], *, fsync: bool = False) -> None:
    """Append one JSON line to ``DIR/manifest.jsonl`` (one ``write`` call, O_APPEND)."""
    p = Path(directory) / MANIFEST_NAME
    data = (_dumps(dict(line)) + "\n").encode("utf-8")
    fd = os.open(p, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)


def read_manifest(directory: str | Path) -> tuple[list[dict], list[str]]:
    """The manifest's entries and its problems.

    Returns:
        (entries, problems): the parsed lines in order; one message per unreadable
        line (e.g. a line torn by a crash). A missing manifest gives ([], []).
    """
    p = Path(directory) / MANIFEST_NAME
    if not p.exists():
        return [], []
    entries, problems = [], []
    for i, raw in enumerate(p.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
            if not isinstance(obj, dict) or "file" not in obj:
                raise ValueError("not an object with a 'file' key")
            entries.append(obj)
        except ValueError as e:
            problems.append(f"{p}:{i}: unreadable manifest line ({e})")
    return entries, problems


# --------------------------------------------------------------------------- reader


class _StepArrays(Mapping[str, np.ndarray]):
    """Lazy, cached per-step arrays of an open episode file."""

    def __init__(self, reader: "EpisodeReader") -> None:
        self._r = reader
        self._cache: dict[str, np.ndarray] = {}

    def __getitem__(self, key: str) -> np.ndarray:
        a = self._cache.get(key)
        if a is None:
            g = self._r._group("steps")
            if key not in g:
                raise KeyError(key)
            try:
                a = g[key][()]
            except (OSError, RuntimeError) as e:
                raise DataError(f"{self._r.path}: cannot read steps/{key} ({e})") from None
            self._cache[key] = a
        return a

    def __iter__(self) -> Iterator[str]:
        return iter(self._r._group("steps").keys())

    def __len__(self) -> int:
        return len(self._r._group("steps"))


class EpisodeReader:
    """Read an episode file (context manager). Arrays are read lazily.

    Example::

        with EpisodeReader("runs/x/data/episode_000000.h5") as ep:
            steer = ep.steps["expert"][:, 0]       # (T,) float32
            img = ep.frame("center", 10)            # (H, W, 3) uint8
            rig = ep.meta.camera("center")          # mount pose and intrinsics

    Attributes:
        path: the file.
        meta: :class:`EpisodeMeta` (root attributes).
        steps: mapping STEP_FIELDS name -> numpy array (read on first access).

    Raises:
        DataError: the file is missing, truncated or corrupt (the message names the
            file), is not a drive_il episode, or has an unsupported schema version
            (the message names the file and both versions).
    """

    def __init__(self, path: str | Path) -> None:
        import h5py

        self.path = Path(path)
        if self.path.name.endswith(PARTIAL_SUFFIX):
            raise DataError(f"{self.path}: partial episode file (being written, or left by an interrupted "
                            "collection); readers use finished files only")
        if not self.path.exists():
            raise DataError(f"{self.path}: episode file not found")
        try:
            self._f = h5py.File(self.path, "r")
        except OSError as e:
            raise DataError(f"{self.path}: damaged or truncated episode file ({_short(e)})") from None
        try:
            a = self._f.attrs
            fmt = _attr_str(a.get("format", ""))
            if fmt != FORMAT_NAME or "schema_version" not in a:
                raise DataError(f"{self.path}: not a drive_il episode file (format attribute {fmt!r})")
            ver = int(a["schema_version"])
            if ver not in SUPPORTED_SCHEMA_VERSIONS:
                raise DataError(f"{self.path}: episode schema version {ver} is not supported "
                                f"(this drive_il reads version "
                                f"{', '.join(map(str, SUPPORTED_SCHEMA_VERSIONS))})")
            self.meta = _meta_from_attrs(self.path, a)
        except DataError:
            self._f.close()
            raise
        except (OSError, KeyError, ValueError, TypeError) as e:
            self._f.close()
            raise DataError(f"{self.path}: damaged episode file ({_short(e)})") from None
        self.steps: Mapping[str, np.ndarray] = _StepArrays(self)

    # context manager -------------------------------------------------------
    def __enter__(self) -> "EpisodeReader":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        try:
            self._f.close()
        except Exception:  # pragma: no cover
            pass

    # access ----------------------------------------------------------------
    def _group(self, name: str):
        try:
            return self._f[name]
        except KeyError:
            raise DataError(f"{self.path}: group /{name} missing (incomplete episode file)") from None
        except (OSError, RuntimeError) as e:
            raise DataError(f"{self.path}: cannot read /{name} ({_short(e)})") from None

    def __len__(self) -> int:
        return self.meta.steps

    @property
    def cameras(self) -> tuple[str, ...]:
        return tuple(self._group("frames").keys())

    def frames(self, camera: str):
        """The frames of ``camera``: a lazy ``h5py.Dataset`` of shape (T, H, W, 3) uint8.

        Raises:
            DataError: no such camera.
        """
        g = self._group("frames")
        if camera not in g:
            raise DataError(f"{self.path}: no camera {camera!r} (cameras: {', '.join(g.keys())})")
        return g[camera]

    def frame(self, camera: str, t: int) -> np.ndarray:
        """Frame ``t`` of ``camera``: (H, W, 3) uint8."""
        return np.asarray(self.frames(camera)[t])

    @property
    def route(self) -> dict[str, np.ndarray]:
        """The route arrays (xy (N, 2), yaw (N,), s (N,), commands (N,)); {} if none."""
        if "route" not in self._f:
            return {}
        return {k: v[()] for k, v in self._f["route"].items()}

    @property
    def driver_names(self) -> list[str]:
        """Names of the codes of ``steps["driver"]``."""
        ds = self._group("steps")["driver"]
        return list(json.loads(_attr_str(ds.attrs.get("names", "[]"))))

    @property
    def h5(self):
        """The underlying open ``h5py.File`` (read-only)."""
        return self._f


def _short(e: BaseException) -> str:
    s = " ".join(str(e).split())
    return s if len(s) <= 160 else s[:157] + "..."


# --------------------------------------------------------------------------- directories


def list_episodes(directory: str | Path) -> list[Path]:
    """Finished episode files (``*.h5``, not ``*.partial``) in ``directory``, sorted by
    name. Files are not opened (see :func:`scan_dir` for a checked listing).

    Raises:
        DataError: ``directory`` does not exist or is not a directory.
    """
    d = Path(directory)
    if not d.is_dir():
        raise DataError(f"{d}: no such data directory")
    return sorted(p for p in d.iterdir() if p.suffix == EPISODE_SUFFIX and p.is_file())


def finished_episode_indices(directory: str | Path) -> set[int]:
    """Indices of the finished episodes in ``directory`` (from the file names), for
    resuming a collection run; an absent directory gives the empty set."""
    d = Path(directory)
    if not d.is_dir():
        return set()
    out = set()
    for p in list_episodes(d):
        i = episode_index_from_path(p)
        if i is not None:
            out.add(i)
    return out


@dataclass(frozen=True)
class ScanReport:
    """What a data directory holds.

    Attributes:
        directory: the directory.
        finished: readable finished episode files, sorted.
        partial: ``*.partial`` files (an episode in progress or left by a crash).
        damaged: (file, reason) for finished files that cannot be opened.
    """

    directory: Path
    finished: tuple[Path, ...]
    partial: tuple[Path, ...]
    damaged: tuple[tuple[Path, str], ...]


def scan_dir(directory: str | Path) -> ScanReport:
    """List finished, partial and damaged episode files (opens each finished file's
    header; cheap).

    Raises:
        DataError: ``directory`` does not exist.
    """
    d = Path(directory)
    files = list_episodes(d)
    partial = sorted(p for p in d.iterdir() if p.name.endswith(EPISODE_SUFFIX + PARTIAL_SUFFIX))
    finished, damaged = [], []
    for p in files:
        try:
            with EpisodeReader(p) as r:
                if not r.meta.complete:
                    raise DataError(f"{p}: episode file was not finished by its writer")
            finished.append(p)
        except DataError as e:
            damaged.append((p, str(e)))
    return ScanReport(d, tuple(finished), tuple(partial), tuple(damaged))


#: Camera rig entries that must agree between the files of one dataset.
RIG_KEYS: tuple[str, ...] = ("width", "height", "fov_deg", "x", "y", "z", "pitch_deg", "yaw_deg")


class RigChecker:
    """Checks that episode files share one camera rig (as one training dataset must).

    Args:
        cameras: the camera names used, or None for every camera of the first file
            (then every file must have exactly the same cameras).

    Attributes:
        cameras: the camera names (known after the first :meth:`add`).
        rig: camera name -> rig entry of the first file.
    """

    def __init__(self, cameras: Sequence[str] | None = None) -> None:
        self._all = cameras is None
        self.cameras: tuple[str, ...] | None = None if cameras is None else tuple(cameras)
        self.rig: dict[str, dict] = {}
        self._ref: Path | None = None

    def add(self, meta: EpisodeMeta) -> None:
        """Check one more file.

        Raises:
            DataError: a camera missing from the file, or a rig entry (size, mount,
                field of view) or camera set that differs from the first file's (one
                line naming both files).
        """
        p = meta.path
        names = meta.camera_names
        if self.cameras is None:
            self.cameras = names
        if self._all and self._ref is not None and tuple(names) != tuple(self.cameras):
            raise DataError(f"mixed camera rigs: cameras {', '.join(self.cameras)} in {self._ref} "
                            f"but {', '.join(names) or 'none'} in {p}")
        for c in self.cameras:
            if c not in names:
                raise DataError(f"{p}: no camera {c!r} (cameras: {', '.join(names) or 'none'})")
            entry = meta.camera(c)
            ref = self.rig.get(c)
            if ref is None:
                self.rig[c] = dict(entry)
                continue
            for k in RIG_KEYS:
                a, b = ref.get(k), entry.get(k)
                if _differs(a, b):
                    raise DataError(f"mixed camera rigs: camera {c!r} has {k}={a!r} in {self._ref} "
                                    f"but {k}={b!r} in {p}")
        if self._ref is None:
            self._ref = p


def _differs(a: Any, b: Any) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return not math.isclose(float(a), float(b), rel_tol=0.0, abs_tol=1e-9)
    return a != b


def iter_readers(paths: Iterable[str | Path]) -> Iterator[EpisodeReader]:
    """Open each path in turn (closing the previous one)."""
    for p in paths:
        with EpisodeReader(p) as r:
            yield r
