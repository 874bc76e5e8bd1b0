"""Top-down raster of a ``carla.Map``: the ground texture the embedded camera sees.

The raster is built once per town (and cached on disk and in the process) from the lane
geometry that ``carla.Map`` gives offline: for every OpenDRIVE lane section one driving
lane is sampled along ``s`` with ``Map.get_waypoint_xodr(road, lane, s)``, and the whole
cross-section of lanes at that ``s`` is reached with ``Waypoint.get_left_lane`` /
``get_right_lane`` (lane type, lane width, ``left_lane_marking`` /
``right_lane_marking``: type, colour and width [m]). Lanes become filled quadrilaterals,
markings become strips of their real width; broken lines follow a dash pattern along
the road's ``s``.

Frame and pixel convention (documented once, used by the camera and the world):

* CARLA world frame, left-handed seen from above: x east, y south. The raster's
  columns run along +x and its rows along +y, so an image of the raster viewed as is
  (row 0 at the top) is the map seen from above with north up, and the map's
  handedness is kept (no mirror): ``col = (x - x0) / res``, ``row = (y - y0) / res``.
* Pixel *centres* lie at integer (col, row), as OpenCV's drawing and warping
  functions assume.

Layers (``levels[0]`` is (H, W, 4) uint8):

* channels 0-2: RGB colour (asphalt with grain and blotches, paint, curbs, sidewalks,
  shoulders, grass/dirt terrain), deterministic from a seed derived from the map digest;
* channel 3: the :class:`LaneClass` code of each pixel (``classes``); ``drivable`` is
  ``classes == LaneClass.DRIVING`` (driving lanes and junction surfaces).

``levels[k]`` (k >= 1) are ``cv2.pyrDown`` images (Gaussian pre-blur, half size) used by
the camera as a mipmap pyramid against aliasing; their channel 3 is meaningless. Four
channels because OpenCV's bilinear warp is ~1.6x faster on 4-channel images than on
3-channel ones (measured: 75 us vs 124 us for a 57x200 band on one core).

Conventions and sources:

* Broken lines: CARLA gives no dash pattern through ``carla.LaneMarking`` and the towns'
  ``<roadMark>`` elements carry no ``<type><line length space>``; we use CARLA's own
  road-mark mesh generator, ``LibCarla/source/carla/geom/MeshFactory.cpp``
  (``GenerateLaneMarksForNotCenterLine``: a dash and a gap of ``3 * resolution`` each,
  ``RoadParameters::resolution = 2 m``), i.e. 6 m dash / 6 m gap, phase starting at
  the lane section's start. See :data:`DASH_LENGTH`, :data:`DASH_GAP`.
* As in CARLA's generator, no lane marks are painted inside junctions (curbs are).
* Double lines (SolidSolid, ...): two lines of the mark's width separated by a gap
  of one line width; order "from inside to outside, except the centre lane: from
  left to right" (LibCarla ``road/element/LaneMarking.h``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from ...errors import MapError

if TYPE_CHECKING:  # pragma: no cover
    import carla

__all__ = [
    "DASH_GAP",
    "DASH_LENGTH",
    "RASTER_VERSION",
    "LaneClass",
    "MapGeometry",
    "MapRaster",
    "MarkingStrip",
    "choose_resolution",
    "extract_geometry",
    "raster_cache_dir",
]

log = logging.getLogger(__name__)

#: Bumped whenever the raster's content changes (part of the disk cache key).
RASTER_VERSION = 8

#: Broken-line dash and gap [m] (CARLA MeshFactory: 3 x 2 m each, see module doc).
DASH_LENGTH = 6.0
DASH_GAP = 6.0

#: Raster resolutions tried, finest first [m/px].
RESOLUTIONS = (0.05, 0.1, 0.125, 0.15, 0.2, 0.25, 0.4, 0.5)
#: Pixel budget of level 0 (4 bytes each; the pyramid adds one third).
MAX_PIXELS = 80_000_000
#: Terrain margin around the road network [m].
MARGIN = 15.0
#: Sampling step along s when extracting lane geometry [m] (sagitta < 2 cm for R >= 6 m).
SAMPLE_STEP = 1.0


class LaneClass(IntEnum):
    """Surface class stored in channel 3 of the raster's level 0."""

    TERRAIN = 0
    DRIVING = 1
    SHOULDER = 2
    SIDEWALK = 3
    PARKING = 4
    BORDER = 5
    MEDIAN = 6
    BIKING = 7
    OTHER = 8


_N_CLASSES = 9

#: carla.LaneType name -> LaneClass.
_LANE_TYPE_CLASS = {
    "Driving": LaneClass.DRIVING, "Bidirectional": LaneClass.DRIVING,
    "Entry": LaneClass.DRIVING, "Exit": LaneClass.DRIVING,
    "OnRamp": LaneClass.DRIVING, "OffRamp": LaneClass.DRIVING,
    "Shoulder": LaneClass.SHOULDER, "Sidewalk": LaneClass.SIDEWALK,
    "Parking": LaneClass.PARKING, "Border": LaneClass.BORDER,
    "Median": LaneClass.MEDIAN, "Biking": LaneClass.BIKING,
    "Stop": LaneClass.SHOULDER, "Restricted": LaneClass.SHOULDER,
    "RoadWorks": LaneClass.OTHER, "Tram": LaneClass.OTHER, "Rail": LaneClass.OTHER,
}

# Base colours (RGB) per class, grain amplitude and low-frequency tints.
_BASE = np.array([
    (92, 112, 58),    # terrain: grass
    (86, 86, 88),     # driving: asphalt
    (78, 78, 80),     # shoulder / gutter
    (158, 156, 150),  # sidewalk: concrete
    (96, 96, 98),     # parking
    (150, 148, 140),  # border: concrete
    (88, 110, 56),    # median: grass
    (120, 70, 62),    # biking: red asphalt
    (100, 96, 90),    # other
], dtype=np.float32)
_GRAIN = np.array([14, 9, 9, 7, 9, 8, 14, 8, 9], dtype=np.float32)
# Two low-frequency noise fields A (~1.5 m) and B (~6 m): per-class RGB tint vectors.
_TINT_A = np.array([
    (9, 10, 5), (5, 5, 5), (5, 5, 5), (6, 6, 6), (5, 5, 5), (6, 6, 6), (9, 10, 5), (5, 5, 5), (5, 5, 5),
], dtype=np.float32)
_TINT_B = np.array([
    (18, 4, -2), (6, 6, 6), (6, 6, 6), (8, 8, 8), (6, 6, 6), (8, 8, 8), (16, 4, -2), (6, 6, 6), (6, 6, 6),
], dtype=np.float32)

_PAINT = {"White": (228, 228, 222), "Yellow": (222, 178, 48), "Blue": (40, 80, 190),
          "Green": (60, 160, 70), "Red": (190, 50, 40), "Other": (228, 228, 222),
          "Standard": (228, 228, 222)}
_CURB = (176, 175, 170)
_CURB_SHADOW = (60, 60, 62)
_GRASS_MARK = (92, 112, 58)

#: Which marking types are made of which lines ("S" solid, "B" broken), inside first.
_LINES = {
    "Solid": "S", "Broken": "B", "SolidSolid": "SS", "SolidBroken": "SB",
    "BrokenSolid": "BS", "BrokenBroken": "BB", "BottsDots": "D", "Other": "S",
}


@dataclass(frozen=True, slots=True)
class MarkingStrip:
    """One lane boundary carrying a mark, sampled along s.

    Attributes:
        kind: ``carla.LaneMarkingType`` name (Solid, Broken, SolidSolid, ..., Curb, Grass).
        color: ``carla.LaneMarkingColor`` name (White, Yellow, ...).
        width: width of one line [m].
        xy: (N, 2) boundary points [m], world frame.
        right: (N, 2) unit vectors pointing to the "outside" (second line of double marks).
        s: (N,) road s of each point [m] (dash phase).
        s0: s where the dash pattern starts (lane-section start) [m].
    """

    kind: str
    color: str
    width: float
    xy: np.ndarray
    right: np.ndarray
    s: np.ndarray
    s0: float


@dataclass(frozen=True, slots=True)
class MapGeometry:
    """Lane surfaces and markings of a map, as polygons in world coordinates.

    Attributes:
        quads: (Q, 4, 2) float64 lane quadrilaterals [m].
        quad_class: (Q,) uint8 LaneClass of each quad.
        junction_hulls: convex hulls (K, 2) of the driving surfaces of each junction.
        junction_aprons: convex hulls (K, 2) of each junction with the ends of the
            sidewalks/shoulders that meet it (paved as sidewalk: the corners).
        markings: lane boundaries with marks.
        bounds: (xmin, ymin, xmax, ymax) of all surfaces [m].
    """

    quads: np.ndarray
    quad_class: np.ndarray
    junction_hulls: tuple[np.ndarray, ...]
    markings: tuple[MarkingStrip, ...]
    bounds: tuple[float, float, float, float]
    junction_aprons: tuple[np.ndarray, ...] = ()


def _road_sections(xodr: str) -> dict[int, tuple[float, list[float], bool]]:
    """road id -> (length, [section start s...], in_junction) from the OpenDRIVE text."""
    try:
        root = ET.fromstring(xodr)
    except ET.ParseError as e:  # pragma: no cover - maps.py validates first
        raise MapError(f"OpenDRIVE text is not valid XML: {e}") from None
    out: dict[int, tuple[float, list[float], bool]] = {}
    for r in root.iter("road"):
        lanes = r.find("lanes")
        if lanes is None:
            continue
        secs = sorted(float(ls.get("s", "0")) for ls in lanes.iter("laneSection"))
        junction = r.get("junction", "-1") not in ("-1", "", None)
        out[int(r.get("id"))] = (float(r.get("length", "0")), secs or [0.0], junction)
    return out


def _right_vec(yaw_deg: float) -> tuple[float, float]:
    y = math.radians(yaw_deg)
    return (-math.sin(y), math.cos(y))


def extract_geometry(carla_map: carla.Map, xodr: str, *, step: float = SAMPLE_STEP) -> MapGeometry:
    """Sample every lane of every road section of ``carla_map`` into polygons.

    Args:
        carla_map: the town, parsed offline by ``carla.Map(name, xodr)``.
        xodr: its OpenDRIVE text (for the lane-section boundaries along s).
        step: sampling step along s [m].

    Returns:
        MapGeometry.

    Raises:
        MapError: the map has no driving lane.
    """
    sections = _road_sections(xodr)
    # Driving lanes present per (road, section), from the map's own waypoints.
    lanes_at: dict[tuple[int, int], set[int]] = {}
    for w in carla_map.generate_waypoints(2.0):
        lanes_at.setdefault((w.road_id, w.section_id), set()).add(w.lane_id)
    if not lanes_at:
        raise MapError(f"map {carla_map.name!r} has no driving lane")

    quads: list[np.ndarray] = []
    quad_cls: list[np.ndarray] = []
    junction_pts: dict[int, list[np.ndarray]] = {}
    markings: list[MarkingStrip] = []

    for (road_id, sec_id), lane_ids in sorted(lanes_at.items()):
        if road_id not in sections:
            continue
        length, secs, in_junction = sections[road_id]
        if sec_id >= len(secs):
            continue
        s_lo = secs[sec_id]
        s_hi = secs[sec_id + 1] if sec_id + 1 < len(secs) else length
        if s_hi - s_lo < 1e-4:
            continue
        eps = min(1e-3, 0.25 * (s_hi - s_lo))
        n = max(2, math.ceil((s_hi - s_lo - 2 * eps) / step) + 1)
        ss = np.linspace(s_lo + eps, s_hi - eps, n)
        anchor = min(lane_ids, key=lambda i: (abs(i), i > 0))
        # lane id -> list of per-sample records (or None where absent)
        recs: dict[int, list] = {}
        junction_id = -1
        for k, s in enumerate(ss):
            a = carla_map.get_waypoint_xodr(road_id, anchor, float(s))
            if a is None:
                continue
            if in_junction and junction_id < 0 and a.is_junction:
                junction_id = a.junction_id
            seen = {a.lane_id: a}
            stack = [a]
            while stack:
                q = stack.pop()
                for nb in (q.get_left_lane(), q.get_right_lane()):
                    if nb is None or nb.lane_id in seen or nb.road_id != road_id or nb.section_id != sec_id:
                        continue
                    seen[nb.lane_id] = nb
                    stack.append(nb)
            for lid, q in seen.items():
                t = q.transform
                loc = t.location
                rx, ry = _right_vec(t.rotation.yaw)
                hw = 0.5 * q.lane_width
                rm = q.right_lane_marking
                lm = q.left_lane_marking if abs(lid) == 1 else None
                recs.setdefault(lid, [None] * n)[k] = (
                    loc.x, loc.y, rx, ry, hw, str(q.lane_type),
                    (str(rm.type), str(rm.color), float(rm.width)),
                    None if lm is None else (str(lm.type), str(lm.color), float(lm.width)),
                    float(q.s),
                )
        center_from = -1 if -1 in recs else (1 if 1 in recs else None)
        for lid, rl in recs.items():
            # split into runs of consecutive present samples
            run: list = []
            for r in rl + [None]:
                if r is not None:
                    run.append(r)
                    continue
                if len(run) >= 2:
                    _emit_run(lid, run, in_junction, junction_id, center_from, s_lo, quads, quad_cls,
                              junction_pts, markings)
                run = []

    if not quads:
        raise MapError(f"map {carla_map.name!r}: no lane surface could be sampled")
    Q = np.concatenate(quads, axis=0)
    C = np.concatenate(quad_cls, axis=0).astype(np.uint8)
    hulls = []
    for jid, pts in sorted(junction_pts.items()):
        P = np.concatenate(pts, axis=0).astype(np.float32)
        if len(P) >= 3:
            hulls.append(cv2.convexHull(P).reshape(-1, 2).astype(np.float64))
    aprons = _junction_aprons(Q, C, hulls)
    lo = Q.reshape(-1, 2).min(axis=0)
    hi = Q.reshape(-1, 2).max(axis=0)
    return MapGeometry(Q, C, tuple(hulls), tuple(markings),
                       (float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])), tuple(aprons))


def _junction_aprons(Q: np.ndarray, C: np.ndarray, hulls: list[np.ndarray], pad: float = 2.5) -> list[np.ndarray]:
    """Per junction: the convex hull of its driving surface and of the non-driving quads
    (sidewalks, shoulders) that come within ``pad`` [m] of it."""
    nd = Q[C != LaneClass.DRIVING]
    if len(nd) == 0:
        return []
    qmin = nd.min(axis=1)
    qmax = nd.max(axis=1)
    out = []
    for hull in hulls:
        hmin = hull.min(axis=0) - pad
        hmax = hull.max(axis=0) + pad
        cand = np.nonzero((qmax[:, 0] >= hmin[0]) & (qmin[:, 0] <= hmax[0]) &
                          (qmax[:, 1] >= hmin[1]) & (qmin[:, 1] <= hmax[1]))[0]
        if len(cand) == 0:
            continue
        contour = hull.astype(np.float32).reshape(-1, 1, 2)
        pts = [hull]
        for i in cand:
            q = nd[i]
            if max(cv2.pointPolygonTest(contour, (float(x), float(y)), True) for x, y in q) >= -pad:
                pts.append(q)
        if len(pts) > 1:
            P = np.concatenate(pts, axis=0).astype(np.float32)
            out.append(cv2.convexHull(P).reshape(-1, 2).astype(np.float64))
    return out


def _emit_run(lid, run, in_junction, junction_id, center_from, s_lo, quads, quad_cls,
              junction_pts, markings) -> None:
    a = np.array([r[:5] for r in run], dtype=np.float64)  # x, y, rx, ry, hw
    c = a[:, 0:2]
    rv = a[:, 2:4]
    hw = a[:, 4:5]
    left = c - rv * hw
    right = c + rv * hw
    q = np.stack([left[:-1], right[:-1], right[1:], left[1:]], axis=1)
    # drop degenerate quads (lanes of zero width)
    keep = (hw[:-1, 0] + hw[1:, 0]) > 1e-3
    q = q[keep]
    lt = run[0][5]
    cls = _LANE_TYPE_CLASS.get(lt, LaneClass.OTHER if lt not in ("NONE", "Any") else None)
    if cls is None or len(q) == 0:
        return
    quads.append(q)
    quad_cls.append(np.full(len(q), int(cls), np.uint8))
    if in_junction and cls == LaneClass.DRIVING and junction_id >= 0:
        junction_pts.setdefault(junction_id, []).append(q.reshape(-1, 2))
    s = np.array([r[8] for r in run], dtype=np.float64)
    # right boundary marks (in the lane's own direction), split where the mark changes
    _marks_along(run, 6, right, rv, s, s_lo, in_junction, markings)
    if center_from is not None and lid == center_from:
        # centre line: "from left to right" in the reference direction (lane -1 runs
        # along it, lane 1 against it)
        out = rv if lid < 0 else -rv
        _marks_along(run, 7, left, out, s, s_lo, in_junction, markings)


def _marks_along(run, idx, xy, out_vec, s, s0, in_junction, markings) -> None:
    start = 0
    n = len(run)
    for i in range(1, n + 1):
        if i < n and run[i][idx] == run[start][idx]:
            continue
        mk = run[start][idx]
        if mk is not None and i - start >= 2:
            kind, color, width = mk
            if kind != "NONE" and (not in_junction or kind == "Curb"):
                if width <= 0.0:
                    width = 0.15 if kind == "Curb" else 0.12
                j1 = min(i + 1, n)  # include the next sample so strips join up
                markings.append(MarkingStrip(kind, color, width, xy[start:j1].copy(),
                                             out_vec[start:j1].copy(), s[start:j1].copy(), float(s0)))
        start = i


def choose_resolution(bounds: tuple[float, float, float, float], *, margin: float = MARGIN,
                      max_pixels: int = MAX_PIXELS) -> float:
    """The finest of :data:`RESOLUTIONS` whose raster of ``bounds`` + margin fits the budget."""
    w = bounds[2] - bounds[0] + 2 * margin
    h = bounds[3] - bounds[1] + 2 * margin
    for r in RESOLUTIONS:
        if (w / r) * (h / r) <= max_pixels:
            return r
    return RESOLUTIONS[-1]


def raster_cache_dir(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """``$DRIVE_IL_CACHE_DIR/raster`` or ``~/.cache/drive_il/raster``."""
    if cache_dir is not None:
        return Path(cache_dir)
    env = os.environ.get("DRIVE_IL_CACHE_DIR")
    base = Path(env) if env else Path.home() / ".cache" / "drive_il"
    return base / "raster"


_MEM_CACHE: OrderedDict[str, MapRaster] = OrderedDict()
_MEM_LOCK = threading.Lock()
_MEM_MAX = 3
_GEOM_CACHE: OrderedDict[str, MapGeometry] = OrderedDict()


class MapRaster:
    """A top-down raster of a town with a mipmap pyramid and a drivable layer.

    Build with :meth:`build` (cached); see the module docstring for the frame.

    Attributes:
        levels: tuple of (H_k, W_k, 4) uint8 arrays; level 0 = RGB + LaneClass code,
            level k = ``cv2.pyrDown`` of level k-1 (channel 3 meaningless there).
        res: level-0 resolution [m/px].
        x0, y0: world coordinates [m] of the centre of pixel (0, 0).
        digest: the key of this raster (map digest, resolution, bounds, version).
        border_value: the RGBX value sampled outside the raster (plain terrain).
    """

    def __init__(self, *, levels: Sequence[np.ndarray], res: float, x0: float, y0: float,
                 digest: str, border_value: tuple[int, int, int, int]) -> None:
        if not levels or levels[0].ndim != 3 or levels[0].shape[2] != 4 or levels[0].dtype != np.uint8:
            raise ValueError("MapRaster.levels[0] must be an (H, W, 4) uint8 array")
        self.levels = tuple(levels)
        self.res = float(res)
        self.x0 = float(x0)
        self.y0 = float(y0)
        self.digest = digest
        self.border_value = tuple(int(v) for v in border_value)
        self._drivable: np.ndarray | None = None

    # -- shape and frames ------------------------------------------------------------
    @property
    def height(self) -> int:
        return int(self.levels[0].shape[0])

    @property
    def width(self) -> int:
        return int(self.levels[0].shape[1])

    @property
    def colour(self) -> np.ndarray:
        """(H, W, 3) uint8 RGB view of level 0."""
        return self.levels[0][..., :3]

    @property
    def classes(self) -> np.ndarray:
        """(H, W) uint8 LaneClass codes (a view of level 0's channel 3)."""
        return self.levels[0][..., 3]

    @property
    def drivable(self) -> np.ndarray:
        """(H, W) bool: driving lanes and junction surfaces (computed once, cached)."""
        if self._drivable is None:
            self._drivable = self.classes == LaneClass.DRIVING
        return self._drivable

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """World extent (xmin, ymin, xmax, ymax) [m] covered by pixel centres."""
        return (self.x0, self.y0, self.x0 + (self.width - 1) * self.res, self.y0 + (self.height - 1) * self.res)

    @property
    def nbytes(self) -> int:
        """Bytes of all levels."""
        return int(sum(lv.nbytes for lv in self.levels))

    def world_to_pixel(self, x, y):
        """World (x, y) [m] -> raster (col, row) [px] (floats or arrays)."""
        return ((np.asarray(x) - self.x0) / self.res, (np.asarray(y) - self.y0) / self.res) \
            if isinstance(x, np.ndarray) else ((x - self.x0) / self.res, (y - self.y0) / self.res)

    def pixel_to_world(self, col, row):
        """Raster (col, row) [px] -> world (x, y) [m]."""
        return (self.x0 + col * self.res, self.y0 + row * self.res)

    def class_at(self, x: float, y: float) -> LaneClass:
        """LaneClass at world (x, y) (TERRAIN outside the raster)."""
        c = round((x - self.x0) / self.res)
        r = round((y - self.y0) / self.res)
        if 0 <= r < self.height and 0 <= c < self.width:
            return LaneClass(int(self.levels[0][r, c, 3]))
        return LaneClass.TERRAIN

    def is_drivable(self, x: float, y: float) -> bool:
        """True where world (x, y) [m] lies on a driving lane or junction surface."""
        c = round((x - self.x0) / self.res)
        r = round((y - self.y0) / self.res)
        if 0 <= r < self.height and 0 <= c < self.width:
            return int(self.levels[0][r, c, 3]) == LaneClass.DRIVING
        return False

    def is_drivable_many(self, xy: np.ndarray) -> np.ndarray:
        """Vectorised :meth:`is_drivable`.

        Args:
            xy: (N, 2) world points [m].

        Returns:
            (N,) bool.
        """
        xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        if len(xy) <= 8:
            return np.array([self.is_drivable(float(x), float(y)) for x, y in xy], dtype=bool)
        c = np.rint((xy[:, 0] - self.x0) / self.res).astype(np.int64)
        r = np.rint((xy[:, 1] - self.y0) / self.res).astype(np.int64)
        ok = (r >= 0) & (r < self.height) & (c >= 0) & (c < self.width)
        out = np.zeros(len(xy), dtype=bool)
        if ok.any():
            out[ok] = self.levels[0][r[ok], c[ok], 3] == LaneClass.DRIVING
        return out

    # -- building ----------------------------------------------------------------------
    @classmethod
    def for_town(cls, town, **kwargs) -> MapRaster:
        """Raster of a ``drive_il.sim.maps.TownMap`` (uses its map, xodr and digest)."""
        return cls.build(town.map, xodr=town.xodr, digest=getattr(town, "digest", "") or None, **kwargs)

    @classmethod
    def build(cls, carla_map: carla.Map, *, xodr: str | None = None, digest: str | None = None,
              resolution: float | None = None, bounds: tuple[float, float, float, float] | None = None,
              cache: bool = True, cache_dir: str | os.PathLike[str] | None = None,
              max_pixels: int = MAX_PIXELS) -> MapRaster:
        """Build (or load from cache) the raster of a map.

        Args:
            carla_map: the town.
            xodr: its OpenDRIVE text (default: ``carla_map.to_opendrive()``).
            digest: SHA-1 of ``xodr`` (computed when None).
            resolution: [m/px]; None chooses from :data:`RESOLUTIONS` by the pixel budget
                (0.05 m for Town01-sized maps, coarser for Town04).
            bounds: restrict the raster to (xmin, ymin, xmax, ymax) [m] (tests, crops);
                default: the road network plus a terrain margin.
            cache: use the in-process and on-disk caches.
            cache_dir: cache folder (default :func:`raster_cache_dir`).
            max_pixels: level-0 pixel budget when choosing the resolution.

        Returns:
            MapRaster (deterministic: the same map and arguments give identical arrays).

        Raises:
            MapError: the map has no lanes.
            ValueError: a bad resolution or bounds.
        """
        if xodr is None:
            xodr = carla_map.to_opendrive()
        if digest is None:
            digest = hashlib.sha1(xodr.encode("utf-8")).hexdigest()
        if resolution is not None and not (0.005 <= resolution <= 5.0):
            raise ValueError(f"resolution must be in [0.005, 5] m/px, got {resolution!r}")
        geom = _GEOM_CACHE.get(digest)
        key_base = f"{digest[:16]}-v{RASTER_VERSION}"
        if bounds is not None:
            bx0, by0, bx1, by1 = (float(v) for v in bounds)
            if not (bx1 > bx0 and by1 > by0):
                raise ValueError(f"bounds must be (xmin, ymin, xmax, ymax) with max > min, got {bounds!r}")
        # The resolution depends on the geometry's bounds unless given: a cheap key
        # lookup first when both are known.
        if resolution is not None or bounds is not None:
            res = resolution if resolution is not None else choose_resolution(bounds, margin=0.0, max_pixels=max_pixels)
            key = _key(key_base, res, bounds)
            hit = cls._lookup(key, cache, cache_dir)
            if hit is not None:
                return hit
        if geom is None:
            t0 = time.perf_counter()
            geom = extract_geometry(carla_map, xodr)
            _GEOM_CACHE[digest] = geom
            while len(_GEOM_CACHE) > 4:
                _GEOM_CACHE.popitem(last=False)
            log.info("extracted lane geometry of %s in %.2f s (%d quads, %d marks)", carla_map.name,
                     time.perf_counter() - t0, len(geom.quads), len(geom.markings))
        if bounds is None:
            gx0, gy0, gx1, gy1 = geom.bounds
            area = (gx0 - MARGIN, gy0 - MARGIN, gx1 + MARGIN, gy1 + MARGIN)
        else:
            area = bounds
        res = resolution if resolution is not None else choose_resolution(area, margin=0.0, max_pixels=max_pixels)
        key = _key(key_base, res, bounds)
        hit = cls._lookup(key, cache, cache_dir)
        if hit is not None:
            return hit
        t0 = time.perf_counter()
        raster = _render(geom, area, res, key, seed=int(digest[:8], 16) if _is_hex(digest[:8]) else 0)
        log.info("built raster %s (%dx%d at %.3f m/px, %.0f MB) in %.2f s", key, raster.width, raster.height,
                 res, raster.nbytes / 1e6, time.perf_counter() - t0)
        if cache:
            try:
                raster = _save(raster, raster_cache_dir(cache_dir) / key)
            except OSError as e:  # a read-only home must not stop the simulator
                log.warning("could not cache raster %s: %s", key, e)
            _remember(key, raster)
        return raster

    @classmethod
    def _lookup(cls, key: str, cache: bool, cache_dir) -> MapRaster | None:
        if not cache:
            return None
        with _MEM_LOCK:
            r = _MEM_CACHE.get(key)
            if r is not None:
                _MEM_CACHE.move_to_end(key)
                return r
        d = raster_cache_dir(cache_dir) / key
        if (d / "meta.json").exists():
            try:
                r = _load(d)
            except (OSError, ValueError, KeyError) as e:
                log.warning("ignoring unreadable raster cache %s: %s", d, e)
                return None
            _remember(key, r)
            return r
        return None


def _is_hex(s: str) -> bool:
    try:
        int(s, 16)
        return True
    except ValueError:
        return False


def _key(base: str, res: float, bounds) -> str:
    k = f"{base}-{round(res * 1000)}mm"
    if bounds is not None:
        h = hashlib.sha1(repr(tuple(round(float(v), 3) for v in bounds)).encode()).hexdigest()[:8]
        k += f"-crop{h}"
    return k


def _remember(key: str, r: MapRaster) -> None:
    with _MEM_LOCK:
        _MEM_CACHE[key] = r
        _MEM_CACHE.move_to_end(key)
        while len(_MEM_CACHE) > _MEM_MAX:
            _MEM_CACHE.popitem(last=False)


def _save(r: MapRaster, d: Path) -> MapRaster:
    d.parent.mkdir(parents=True, exist_ok=True)
    if (d / "meta.json").exists():
        return _load(d)
    tmp = Path(tempfile.mkdtemp(prefix=d.name + ".tmp", dir=d.parent))
    try:
        for k, lv in enumerate(r.levels):
            np.save(tmp / f"level{k}.npy", lv, allow_pickle=False)
        meta = {"res": r.res, "x0": r.x0, "y0": r.y0, "digest": r.digest, "levels": len(r.levels),
                "border_value": list(r.border_value), "version": RASTER_VERSION}
        (tmp / "meta.json").write_text(json.dumps(meta))
        try:
            os.replace(tmp, d)
        except OSError:
            if not (d / "meta.json").exists():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    _prune_old_versions(d)
    return _load(d)


def _prune_old_versions(d: Path) -> None:
    """Remove cached rasters of the same map from other RASTER_VERSIONs (a process that
    still maps one keeps its pages: unlinking mapped files is safe on POSIX)."""
    digest16 = d.name.split("-", 1)[0]
    for other in d.parent.glob(f"{digest16}-v*"):
        if other.is_dir() and not other.name.startswith(f"{digest16}-v{RASTER_VERSION}-") and ".tmp" not in other.name:
            shutil.rmtree(other, ignore_errors=True)


def _load(d: Path) -> MapRaster:
    meta = json.loads((d / "meta.json").read_text())
    if meta.get("version") != RASTER_VERSION:
        raise ValueError(f"raster cache version {meta.get('version')} != {RASTER_VERSION}")
    # memory-mapped (pages shared between processes, loaded lazily), as plain ndarrays
    levels = [np.load(d / f"level{k}.npy", mmap_mode="r", allow_pickle=False).view(np.ndarray)
              for k in range(int(meta["levels"]))]
    return MapRaster(levels=levels, res=meta["res"], x0=meta["x0"], y0=meta["y0"], digest=meta["digest"],
                     border_value=tuple(meta["border_value"]))


# -- rendering the raster ----------------------------------------------------------------

_SHIFT = 4  # sub-pixel bits for cv2 drawing


def _to_px(pts: np.ndarray, x0: float, y0: float, res: float) -> np.ndarray:
    p = np.empty(pts.shape, dtype=np.float64)
    p[..., 0] = (pts[..., 0] - x0) / res
    p[..., 1] = (pts[..., 1] - y0) / res
    return np.rint(p * (1 << _SHIFT)).astype(np.int32)


def _render(geom: MapGeometry, area, res: float, key: str, *, seed: int) -> MapRaster:
    ax0, ay0, ax1, ay1 = area
    x0 = math.floor(ax0 / res) * res
    y0 = math.floor(ay0 / res) * res
    W = math.ceil((ax1 - x0) / res) + 1
    H = math.ceil((ay1 - y0) / res) + 1
    if W * H > 400_000_000:
        raise ValueError(f"raster of {W}x{H} px is too large; choose a coarser resolution")
    img = np.empty((H, W, 4), dtype=np.uint8)
    img[...] = (*[int(v) for v in _BASE[0]], 0)
    cls = np.zeros((H, W), dtype=np.uint8)
    aa = cv2.LINE_AA

    def visible(q: np.ndarray) -> np.ndarray:
        mn = q.min(axis=1)
        mx = q.max(axis=1)
        return (mx[:, 0] >= x0 - 1) & (mn[:, 0] <= x0 + W * res + 1) & (mx[:, 1] >= y0 - 1) & (mn[:, 1] <= y0 + H * res + 1)

    def fill(poly_px: np.ndarray, c: int, *, with_colour: bool = True) -> None:
        cv2.fillConvexPoly(cls, poly_px, int(c), cv2.LINE_8, _SHIFT)
        if with_colour:
            col = tuple(int(v) for v in _BASE[c]) + (0,)
            cv2.fillConvexPoly(img, poly_px, col, aa, _SHIFT)

    vis = visible(geom.quads)
    Q = _to_px(geom.quads[vis], x0, y0, res)
    C = geom.quad_class[vis]
    # 1. non-driving surfaces, 2. junction surfaces, 3. driving lanes on top
    for apron in geom.junction_aprons:
        fill(_to_px(apron, x0, y0, res), LaneClass.SIDEWALK)
    order = np.argsort(C == LaneClass.DRIVING, kind="stable")
    nd = [i for i in order if C[i] != LaneClass.DRIVING]
    for i in nd:
        fill(Q[i], int(C[i]))
    for hull in geom.junction_hulls:
        hp = _to_px(hull, x0, y0, res)
        fill(hp, LaneClass.DRIVING)
    for i in np.nonzero(C == LaneClass.DRIVING)[0]:
        fill(Q[i], LaneClass.DRIVING)

    # 4. texture: grain + two low-frequency fields, per class, in row strips
    _texture(img, cls, res, seed)
    # 5. curbs and paint on top (flat paint: its anti-aliased edges then blend with the
    #    textured ground, which keeps the painted widths true), then the classes
    for m in geom.markings:
        _draw_marking(img, m, x0, y0, res)
    img[..., 3] = cls
    border = (*[int(v) for v in _BASE[0]], 0)
    levels = [img]
    while min(levels[-1].shape[:2]) > 48 and len(levels) < 9:
        levels.append(cv2.pyrDown(levels[-1], borderType=cv2.BORDER_REPLICATE))
    for lv in levels:
        lv.setflags(write=False)
    return MapRaster(levels=levels, res=res, x0=x0, y0=y0, digest=key, border_value=border)


def _strip_quads(xy: np.ndarray, nrm: np.ndarray, off: float, half: float) -> np.ndarray:
    """Quads (N-1, 4, 2) of a strip of half width ``half`` centred ``off`` along ``nrm``."""
    a = xy + nrm * (off - half)
    b = xy + nrm * (off + half)
    return np.stack([a[:-1], b[:-1], b[1:], a[1:]], axis=1)


def _resample(xy: np.ndarray, nrm: np.ndarray, s: np.ndarray, s_new: np.ndarray):
    order = np.argsort(s) if s[-1] < s[0] else slice(None)
    ss, xx, nn = s[order], xy[order], nrm[order]
    p = np.stack([np.interp(s_new, ss, xx[:, 0]), np.interp(s_new, ss, xx[:, 1])], axis=1)
    n = np.stack([np.interp(s_new, ss, nn[:, 0]), np.interp(s_new, ss, nn[:, 1])], axis=1)
    n /= np.maximum(np.hypot(n[:, 0], n[:, 1]), 1e-9)[:, None]
    return p, n


def _paint_strip(img: np.ndarray, pts: np.ndarray, half: float, colour, *, cap_start: bool,
                 cap_end: bool) -> None:
    """Paint a strip of half width ``half`` [px] along the polyline ``pts`` (N, 2) [px]
    with exact-width anti-aliasing.

    Coverage of a pixel is the product of a lateral and a longitudinal linear ramp one
    pixel wide centred on the strip's edges (the box-filter coverage of a straight
    edge), so the painted full width at half maximum is exactly ``2 * half`` and a
    capped end lies exactly at its end point. Segments are combined with ``max`` (no
    double painting at joints); interior joints are extended to close curves.
    ``cv2.fillConvexPoly`` is not used for paint: its inclusive rasterisation plus the
    LINE_AA fringe widens a strip by about 1.4 px.
    """
    H, W = img.shape[:2]
    ext = half + 1.5
    lo = np.floor(pts.min(axis=0) - ext).astype(int)
    hi = np.ceil(pts.max(axis=0) + ext).astype(int)
    c0, r0 = max(lo[0], 0), max(lo[1], 0)
    c1, r1 = min(hi[0], W - 1), min(hi[1], H - 1)
    if c1 < c0 or r1 < r0:
        return
    cc = np.arange(c0, c1 + 1, dtype=np.float32)[None, :]
    rr = np.arange(r0, r1 + 1, dtype=np.float32)[:, None]
    alpha = np.zeros((r1 - r0 + 1, c1 - c0 + 1), np.float32)
    n = len(pts)
    for i in range(n - 1):
        ax, ay = pts[i]
        dx, dy = pts[i + 1, 0] - ax, pts[i + 1, 1] - ay
        L = math.hypot(dx, dy)
        if L < 1e-6:
            continue
        ux, uy = dx / L, dy / L
        px = cc - ax
        py = rr - ay
        t = px * ux + py * uy
        d = np.abs(py * ux - px * uy)
        cov = np.clip(half + 0.5 - d, 0.0, 1.0)
        t_lo = 0.0 if (i == 0 and cap_start) else -ext
        t_hi = L if (i == n - 2 and cap_end) else L + ext
        cov *= np.clip(np.minimum(t - t_lo, t_hi - t) + 0.5, 0.0, 1.0)
        np.maximum(alpha, cov, out=alpha)
    if not alpha.any():
        return
    patch = img[r0:r1 + 1, c0:c1 + 1, :3].astype(np.float32)
    a3 = alpha[..., None]
    patch += (np.asarray(colour, np.float32)[None, None, :] - patch) * a3
    img[r0:r1 + 1, c0:c1 + 1, :3] = np.rint(patch).astype(np.uint8)


def _draw_line(img, xy, nrm, s, s0, off, width, colour, pattern, x0, y0, res) -> None:
    half = 0.5 * width / res
    if half < 0.5:
        # thinner than a pixel: keep the painted amount (width x contrast) by fading the
        # paint towards the asphalt on a one-pixel-wide line
        t = 2.0 * half
        colour = [b + (c - b) * t for c, b in zip(colour, _BASE[LaneClass.DRIVING])]
        half = 0.5

    def to_px(p: np.ndarray) -> np.ndarray:
        return np.stack([(p[:, 0] - x0) / res, (p[:, 1] - y0) / res], axis=1)

    centre = xy + nrm * off
    if pattern == "S":
        # chunks of <= 16 samples, joined without caps
        n = len(centre)
        for k in range(0, n - 1, 15):
            seg = centre[k:min(k + 16, n)]
            if len(seg) >= 2:
                _paint_strip(img, to_px(seg), half, colour, cap_start=k == 0, cap_end=k + 16 >= n)
        return
    if pattern == "B":
        dash, gap = DASH_LENGTH, DASH_GAP
    else:  # "D": Botts' dots, ~0.1 m every 1.2 m (approximated as short square dashes)
        dash, gap = max(width, 0.1), 1.2
    sx = s if s[-1] >= s[0] else s[::-1]
    keep_off = (half + 2.0) * res  # interior joints extend this far: keep them off the caps
    for lo, hi in _dash_intervals(sx, s0, dash, gap):
        inner = sx[(sx > lo + keep_off) & (sx < hi - keep_off)]
        s_new = np.concatenate([[lo], inner, [hi]])
        p, nn = _resample(xy, nrm, s, s_new)
        c = p + nn * off
        # a dash cut by the end of the strip continues on the next strip: no cap there
        _paint_strip(img, to_px(c), half, colour, cap_start=lo > sx[0] + 1e-6 or _dash_starts_at(lo, s0, dash + gap),
                     cap_end=hi < sx[-1] - 1e-6 or _dash_ends_at(hi, s0, dash, dash + gap))


def _dash_starts_at(x: float, s0: float, P: float, tol: float = 0.01) -> bool:
    r = (x - s0) % P
    return r < tol or P - r < tol


def _dash_ends_at(x: float, s0: float, dash: float, P: float, tol: float = 0.01) -> bool:
    r = (x - s0) % P
    return abs(r - dash) < tol


def _dash_intervals(s: np.ndarray, s0: float, dash: float, gap: float) -> list[tuple[float, float]]:
    P = dash + gap
    out = []
    k0 = math.floor((s[0] - s0) / P)
    k1 = math.floor((s[-1] - s0) / P)
    for k in range(k0, k1 + 1):
        a = s0 + k * P
        lo, hi = max(a, s[0]), min(a + dash, s[-1])
        if hi - lo > 1e-6:
            out.append((lo, hi))
    return out


def _draw_marking(img: np.ndarray, m: MarkingStrip, x0: float, y0: float, res: float) -> None:
    if len(m.xy) < 2:
        return
    if m.kind == "Curb":
        # a raised kerb stone, lighter, with a thin shadow line on the road side
        _draw_line(img, m.xy, m.right, m.s, m.s0, 0.0, m.width, _CURB, "S", x0, y0, res)
        _draw_line(img, m.xy, m.right, m.s, m.s0, -0.5 * m.width - 0.03, 0.06, _CURB_SHADOW, "S", x0, y0, res)
        return
    if m.kind == "Grass":
        _draw_line(img, m.xy, m.right, m.s, m.s0, 0.0, max(m.width, 0.3), _GRASS_MARK, "S", x0, y0, res)
        return
    pattern = _LINES.get(m.kind)
    if pattern is None:
        return
    colour = _PAINT.get(m.color, _PAINT["White"])
    w = m.width
    if len(pattern) == 1:
        _draw_line(img, m.xy, m.right, m.s, m.s0, 0.0, w, colour, pattern, x0, y0, res)
    else:
        # two lines of width w, gap w, inside (negative side of ``right``) first
        _draw_line(img, m.xy, m.right, m.s, m.s0, -w, w, colour, pattern[0], x0, y0, res)
        _draw_line(img, m.xy, m.right, m.s, m.s0, +w, w, colour, pattern[1], x0, y0, res)


def _texture(img: np.ndarray, cls: np.ndarray, res: float, seed: int) -> None:
    """Add deterministic texture in place: grain + two low-frequency tint fields per class.

    The noise comes from one ``numpy.random.Generator`` seeded from the map digest and is
    drawn in fixed row strips, so the same map gives the same texture bit for bit.
    """
    H, W = cls.shape
    rng = np.random.default_rng(np.random.SeedSequence([seed, 7]))
    # low-frequency fields on coarse grids (cells of ~1.5 m and ~6 m), bilinear-upsampled
    grids = []
    for cell in (1.5, 6.0):
        gh = math.ceil(H * res / cell) + 4
        gw = math.ceil(W * res / cell) + 4
        g = rng.standard_normal((gh, gw)).astype(np.float32)
        g = cv2.GaussianBlur(g, (0, 0), 0.7)
        g /= max(float(g.std()), 1e-6)
        grids.append((cell, g))
    def lut(v: np.ndarray) -> np.ndarray:
        t = np.zeros(256, np.float32)
        t[:len(v)] = v
        return t

    grain_lut = lut(_GRAIN / 128.0)
    ta = [lut(_TINT_A[:, ch]) for ch in range(3)]
    tb = [lut(_TINT_B[:, ch]) for ch in range(3)]
    strip = 256
    for r0 in range(0, H, strip):
        r1 = min(H, r0 + strip)
        n = r1 - r0
        c = cls[r0:r1]
        raw = np.frombuffer(rng.bytes(n * W), dtype=np.uint8).reshape(n, W)
        grain = raw.astype(np.float32)
        grain -= 128.0
        grain *= cv2.LUT(c, grain_lut)
        fields = []
        for cell, g in grids:
            k = res / cell
            M = np.array([[k, 0, 2.0], [0, k, 2.0 + r0 * k]], dtype=np.float64)
            fields.append(cv2.warpAffine(g, M, (W, n), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                         borderMode=cv2.BORDER_REFLECT))
        planes = list(cv2.split(np.ascontiguousarray(img[r0:r1])))
        for ch in range(3):
            d = cv2.multiply(fields[0], cv2.LUT(c, ta[ch]))
            d = cv2.add(d, cv2.multiply(fields[1], cv2.LUT(c, tb[ch])))
            d = cv2.add(d, grain)
            planes[ch] = cv2.add(planes[ch], d, dtype=cv2.CV_8U)
        img[r0:r1] = cv2.merge(planes)
