"""Reading one episode file: :class:`EpisodeReader` (header checked on open, arrays
read lazily) and :func:`iter_readers`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

import numpy as np

from ...errors import DataError
from .schema import (FORMAT_NAME, PARTIAL_SUFFIX, STEP_FIELD_DEFAULTS, SUPPORTED_SCHEMA_VERSIONS, _attr_str,
                     _meta_from_attrs, default_step_array)

__all__ = ["EpisodeReader", "iter_readers"]


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
                if key in STEP_FIELD_DEFAULTS and self._r.meta.schema_version < STEP_FIELD_DEFAULTS[key][0]:
                    a = default_step_array(key, self._r.meta.steps)   # an older file: NaN / False
                    self._cache[key] = a
                    return a
                raise KeyError(key)
            try:
                a = g[key][()]
            except (OSError, RuntimeError) as e:
                raise DataError(f"{self._r.path}: cannot read steps/{key} ({e})") from None
            self._cache[key] = a
        return a

    def _keys(self) -> list[str]:
        stored = list(self._r._group("steps").keys())
        v = self._r.meta.schema_version
        return stored + [k for k, (since, _) in STEP_FIELD_DEFAULTS.items() if v < since and k not in stored]

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys())

    def __len__(self) -> int:
        return len(self._keys())


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
        steps: mapping STEP_FIELDS name -> numpy array (read on first access); in a
            file of an older schema version the arrays it lacks read as
            ``STEP_FIELD_DEFAULTS`` (``target_speed`` NaN, ``red_light`` False, ...).

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
        """Frame ``t`` of ``camera``: (H, W, 3) uint8.

        Raises:
            DataError: no such camera, or the frame's chunk is damaged (its fletcher32
                checksum fails) or unreadable.
        """
        ds = self.frames(camera)
        try:
            return np.asarray(ds[t])
        except (OSError, RuntimeError) as e:
            raise DataError(f"{self.path}: cannot read frame {t} of camera {camera!r} (damaged chunk: "
                            f"{_short(e)})") from None

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


def iter_readers(paths: Iterable[str | Path]) -> Iterator[EpisodeReader]:
    """Open each path in turn (closing the previous one)."""
    for p in paths:
        with EpisodeReader(p) as r:
            yield r
