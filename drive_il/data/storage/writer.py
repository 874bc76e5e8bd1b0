"""Writing one episode file: :class:`EpisodeWriter` writes ``NAME.h5.partial``,
renames it into place when the episode ends and appends the manifest line;
:class:`PartialEpisodeFile` is what it shares with the background writer (the partial
file, and discarding it).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ...errors import DataError
from .manifest import append_manifest
from .rig import rig_entries
from .schema import DRIVER_NAMES, PARTIAL_SUFFIX, SCHEMA_VERSION, STEP_FIELDS, _attr_str, _dumps, _info_attrs, _s

__all__ = ["PartialEpisodeFile", "EpisodeWriter"]

log = logging.getLogger(__name__)


class PartialEpisodeFile:
    """An episode file on its way to disk: written as ``path + ".partial"``, renamed to
    ``path`` when finished. The base of :class:`EpisodeWriter` and of the recorder's
    :class:`~drive_il.data.background.BackgroundEpisodeWriter`.

    Args:
        path: the final file name (``.../episode_000012.h5``).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.partial_path = self.path.with_name(self.path.name + PARTIAL_SUFFIX)
        self._closed = False

    def _remove_partial(self) -> None:
        """Delete the partial file (absent is fine)."""
        try:
            self.partial_path.unlink()
        except FileNotFoundError:
            pass

    @property
    def closed(self) -> bool:
        return self._closed


class EpisodeWriter(PartialEpisodeFile):
    """Writes one episode file: ``NAME.h5.partial`` first, renamed on :meth:`finish`.

    Frames go to disk as they come (one chunk per frame, written through HDF5's filter
    pipeline, ~50 us for a 66x200 frame); the per-step arrays are handed over once, to
    :meth:`finish`. Frame and step datasets carry HDF5's per-chunk fletcher32 checksum
    (``fletcher32=True``), so a damaged chunk fails to read instead of reading as other
    pixels or labels (``drive-il data verify`` reads every chunk).

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

        super().__init__(path)
        self._fsync = fsync
        self._capacity = max(1, int(capacity))
        self._shapes = {str(k): (int(v[0]), int(v[1])) for k, v in frame_shapes.items()}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # Default libver (earliest), no SWMR: see the docstring of drive_il.data.storage.
            self._f = h5py.File(self.partial_path, "w")
        except OSError as e:
            raise DataError(f"{self.partial_path}: cannot create episode file ({e})") from None
        attrs = _info_attrs(info)
        attrs["cameras_json"] = _dumps(rig_entries(info, self._shapes))
        for k, v in attrs.items():
            self._f.attrs[k] = v
        fg = self._f.create_group("frames")
        self._frames: dict[str, Any] = {}
        self._frame_ids: dict[str, Any] = {}
        self._written: dict[str, int] = {}
        for name, (h, w) in self._shapes.items():
            ds = fg.create_dataset(name, shape=(self._capacity, h, w, 3), maxshape=(None, h, w, 3),
                                   chunks=(1, h, w, 3), dtype="uint8", fletcher32=True)
            ds.attrs["layout"] = "HWC RGB"
            self._frames[name] = ds
            self._frame_ids[name] = ds.id
            self._written[name] = 0
        self._mspace: dict[tuple[int, int], Any] = {
            hw: h5py.h5s.create_simple((1, hw[0], hw[1], 3)) for hw in set(self._shapes.values())}
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
        # one whole chunk through the filter pipeline (HDF5 computes its fletcher32
        # checksum; a direct chunk write would bypass it)
        dsid = self._frame_ids[camera]
        fspace = dsid.get_space()
        fspace.select_hyperslab((t, 0, 0, 0), (1, h, w, 3))
        dsid.write(self._mspace[(h, w)], fspace, frame)
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
            ds = sg.create_dataset(k, data=np.asarray(steps[k], dtype=dtype), fletcher32=True)
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
            "density": _attr_str(f.attrs.get("density", "")),
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
        self._remove_partial()



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
