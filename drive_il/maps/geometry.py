"""Map geometry: a town's lane surfaces and markings as polygons in world coordinates.

:func:`extract_geometry` turns the cross-section samples of a town's
:class:`~drive_il.maps.sampling.LaneSampler` into :class:`MapGeometry`: for every
OpenDRIVE lane section one driving lane is sampled along ``s`` and the whole
cross-section of lanes at that ``s`` is reached with ``Waypoint.get_left_lane`` /
``get_right_lane`` (lane type, lane width, ``left_lane_marking`` / ``right_lane_marking``:
type, colour and width [m]). Lanes become quadrilaterals classified by :class:`LaneClass`,
markings become :class:`MarkingStrip` boundaries of their real width; junctions get the
convex hull of their driving surfaces and an "apron" with the sidewalk corners that meet
them. The embedded world's raster (:mod:`drive_il.sim.embedded.raster`) paints this.

Conventions and sources:

* Broken lines: CARLA gives no dash pattern through ``carla.LaneMarking`` and the towns'
  ``<roadMark>`` elements carry no ``<type><line length space>``; we use CARLA's own
  road-mark mesh generator, ``LibCarla/source/carla/geom/MeshFactory.cpp``
  (``GenerateLaneMarksForNotCenterLine``: a dash and a gap of ``3 * resolution`` each,
  ``RoadParameters::resolution = 2 m``), i.e. 6 m dash / 6 m gap, phase starting at
  the lane section's start (:attr:`MarkingStrip.s0`). See :data:`DASH_LENGTH`,
  :data:`DASH_GAP`.
* As in CARLA's generator, no lane marks are kept inside junctions (curbs are).
* Double lines (SolidSolid, ...): order "from inside to outside, except the centre
  lane: from left to right" (LibCarla ``road/element/LaneMarking.h``); a strip's
  :attr:`MarkingStrip.right` points to the outside.

Frame: CARLA's world frame (x east, y south), metres.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING

import cv2
import numpy as np

from ..errors import MapError

if TYPE_CHECKING:  # pragma: no cover
    from .sampling import LaneSampler

__all__ = [
    "DASH_GAP",
    "DASH_LENGTH",
    "LANE_TYPE_CLASS",
    "SAMPLE_STEP",
    "LaneClass",
    "MapGeometry",
    "MarkingStrip",
    "extract_geometry",
]

log = logging.getLogger(__name__)

#: Broken-line dash and gap [m] (CARLA MeshFactory: 3 x 2 m each, see module doc).
DASH_LENGTH = 6.0
DASH_GAP = 6.0

#: Sampling step along s when extracting lane geometry [m] (sagitta < 2 cm for R >= 6 m).
SAMPLE_STEP = 1.0


class LaneClass(IntEnum):
    """Surface class of a lane quad (also channel 3 of the raster's level 0)."""

    TERRAIN = 0
    DRIVING = 1
    SHOULDER = 2
    SIDEWALK = 3
    PARKING = 4
    BORDER = 5
    MEDIAN = 6
    BIKING = 7
    OTHER = 8


#: carla.LaneType name -> LaneClass.
LANE_TYPE_CLASS = {
    "Driving": LaneClass.DRIVING, "Bidirectional": LaneClass.DRIVING,
    "Entry": LaneClass.DRIVING, "Exit": LaneClass.DRIVING,
    "OnRamp": LaneClass.DRIVING, "OffRamp": LaneClass.DRIVING,
    "Shoulder": LaneClass.SHOULDER, "Sidewalk": LaneClass.SIDEWALK,
    "Parking": LaneClass.PARKING, "Border": LaneClass.BORDER,
    "Median": LaneClass.MEDIAN, "Biking": LaneClass.BIKING,
    "Stop": LaneClass.SHOULDER, "Restricted": LaneClass.SHOULDER,
    "RoadWorks": LaneClass.OTHER, "Tram": LaneClass.OTHER, "Rail": LaneClass.OTHER,
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


def _right_vec(yaw_deg: float) -> tuple[float, float]:
    y = math.radians(yaw_deg)
    return (-math.sin(y), math.cos(y))


def extract_geometry(lanes: "LaneSampler", *, step: float = SAMPLE_STEP) -> MapGeometry:
    """Every lane of every road section of a town as polygons.

    Args:
        lanes: the town's lane sampler (:attr:`drive_il.maps.towns.TownMap.lane_samples`;
            its cross-sections every ``step`` metres are used).
        step: sampling step along s [m].

    Returns:
        MapGeometry.

    Raises:
        MapError: the map has no driving lane.
    """
    t0 = time.perf_counter()
    quads: list[np.ndarray] = []
    quad_cls: list[np.ndarray] = []
    junction_pts: dict[int, list[np.ndarray]] = {}
    markings: list[MarkingStrip] = []

    for sec in lanes.cross_sections(step):
        recs: dict[int, list] = {}
        for lid, samples in sec.lanes.items():
            rl = recs[lid] = [None] * len(samples)
            for k, smp in enumerate(samples):
                if smp is None:
                    continue
                x, y, yaw, width, lane_type, rm, lm, s = smp
                rx, ry = _right_vec(yaw)
                rl[k] = (x, y, rx, ry, 0.5 * width, lane_type, rm, lm if abs(lid) == 1 else None, s)
        center_from = -1 if -1 in recs else (1 if 1 in recs else None)
        for lid, rl in recs.items():
            # split into runs of consecutive present samples
            run: list = []
            for r in rl + [None]:
                if r is not None:
                    run.append(r)
                    continue
                if len(run) >= 2:
                    _emit_run(lid, run, sec.in_junction, sec.junction_id, center_from, sec.s_lo, quads,
                              quad_cls, junction_pts, markings)
                run = []

    if not quads:
        raise MapError(f"map {lanes.name!r}: no lane surface could be sampled")
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
    log.info("extracted lane geometry of %s in %.2f s (%d quads, %d marks)", lanes.name,
             time.perf_counter() - t0, len(Q), len(markings))
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
    cls = LANE_TYPE_CLASS.get(lt, LaneClass.OTHER if lt not in ("NONE", "Any") else None)
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
