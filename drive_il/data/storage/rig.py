"""The camera rig of an episode file: the ``cameras_json`` entries the writer records
(:func:`rig_entries`) and :class:`RigChecker`, which holds the files of one dataset to
one rig.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

from ...errors import DataError
from .schema import EpisodeMeta

__all__ = ["RIG_KEYS", "RigChecker", "rig_entries"]


def rig_entries(info: Any, shapes: Mapping[str, tuple[int, int]]) -> list[dict]:
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
