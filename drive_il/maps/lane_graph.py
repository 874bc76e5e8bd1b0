"""The lane graph of a town: lane segments, their successors and lane-change neighbours.

Built once per town (:attr:`drive_il.maps.towns.TownMap.lane_graph`) from the topology
walk of the town's :class:`~drive_il.maps.sampling.LaneSampler`: every
``carla.Map.get_topology()`` pair (entry, exit) is one *segment* -- a lane of one road
section, or a connecting lane of a junction -- sampled every 1 m with
``Waypoint.next_until_lane_end``. A segment's successors are the segments whose entry
coincides with its exit (and point the same way); a non-junction segment also links to
its left/right neighbour lane of the same direction where ``Waypoint.lane_change``
allows it. This is the structure of CARLA's ``GlobalRoutePlanner``
(``agents/navigation/global_route_planner.py``: topology segments, lane-follow and
lane-change edges); the code here is our own. Route search over the graph lives in
:mod:`drive_il.routing`.

Speed limits: the offline ``carla.Map`` exposes no speed limit on its waypoints (its
landmarks come from ``<signal>`` records, which CARLA's OpenDRIVE towns do not carry), so
they are read from the OpenDRIVE text itself: the
``<road><type s=...><speed max=... unit=.../></type>`` records (OpenDRIVE 1.4, §3.4),
converted to m/s; NaN where a road has none.

Frame: CARLA's world frame (x east, y south), metres, yaw in radians.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..errors import ScenarioError
from ..geometry import wrap_angle

if TYPE_CHECKING:  # pragma: no cover
    from .sampling import LaneSampler, TopologySegment

__all__ = ["LaneGraph", "LanePoint", "LaneSegment", "SAMPLE_STEP"]

log = logging.getLogger(__name__)

SAMPLE_STEP = 1.0        # lane sampling step of the graph [m]
_JOIN_TOL = 0.05         # exit/entry coincidence tolerance [m]
_OFFROAD_MARGIN = 2.0    # a start/goal farther than half the lane width + this is off the road [m]
_SPEED_UNITS = {"m/s": 1.0, "km/h": 1.0 / 3.6, "mph": 0.44704}
_LANE_CHANGE_BITS = {"NONE": 0, "Left": 1, "Right": 2, "Both": 3}


@dataclass
class LaneSegment:
    """One lane segment of the topology, sampled every :data:`SAMPLE_STEP` metres.

    Attributes:
        xy: (n, 2) lane centre [m].
        z: (n,) road height [m].
        yaw: (n,) lane direction [rad], unwrapped.
        s: (n,) arc length from the entry [m].
        width: (n,) lane width [m].
        limit: (n,) speed limit [m/s], NaN where none.
        road_id, section_id, lane_id: the OpenDRIVE lane of the entry.
        is_junction: a junction's connecting lane.
        lane_change: bit 1: a change to the left allowed, bit 2: to the right.
    """

    xy: np.ndarray
    z: np.ndarray
    yaw: np.ndarray
    s: np.ndarray
    width: np.ndarray
    limit: np.ndarray
    road_id: int
    section_id: int
    lane_id: int
    is_junction: bool
    lane_change: int

    @property
    def length(self) -> float:
        """[m] along the samples."""
        return float(self.s[-1])


@dataclass(frozen=True)
class LanePoint:
    """A point located on the lane graph.

    Attributes:
        seg: segment index.
        u: arc length along the segment [m].
        distance: distance from the query point to the lane centre [m].
    """

    seg: int
    u: float
    distance: float


class LaneGraph:
    """The lane graph of one town (see module docstring). A town's is
    :attr:`drive_il.maps.towns.TownMap.lane_graph`; build one from a sampler with
    :meth:`from_samples`.

    Args:
        topology: the sampled topology segments (:meth:`LaneSampler.topology_segments`).
        town: the map name (for error messages).
        xodr: the OpenDRIVE text (speed limits).

    Attributes:
        town: the map name.
        segments: the lane segments.
        succ: successor segment indices of each segment.
        left, right: neighbour segment (same direction) a lane change may go to, or -1.
    """

    def __init__(self, topology: Sequence["TopologySegment"], *, town: str, xodr: str) -> None:
        self.town = str(town).split("/")[-1]
        limits = _speed_limits(xodr)
        self.segments: list[LaneSegment] = [_segment(t, limits) for t in topology]
        n = len(self.segments)
        ent = np.array([sg.xy[0] for sg in self.segments]).reshape(n, 2)
        ext = np.array([sg.xy[-1] for sg in self.segments]).reshape(n, 2)
        ent_yaw = np.array([sg.yaw[0] for sg in self.segments])
        ext_yaw = np.array([sg.yaw[-1] for sg in self.segments])
        self.succ: list[list[int]] = []
        for k in range(n):
            d = np.hypot(ent[:, 0] - ext[k, 0], ent[:, 1] - ext[k, 1])
            cand = np.nonzero(d < _JOIN_TOL)[0]
            self.succ.append([int(j) for j in cand if j != k and abs(
                wrap_angle(float(ent_yaw[j] - ext_yaw[k]))) < math.pi / 2])
        # lane-change neighbours: same road, section and direction, adjacent lane
        by_key: dict[tuple[int, int, int], list[int]] = {}
        for k, sg in enumerate(self.segments):
            by_key.setdefault((sg.road_id, sg.section_id, sg.lane_id), []).append(k)
        self.left = [-1] * n
        self.right = [-1] * n
        for k, (sg, t) in enumerate(zip(self.segments, topology)):
            if sg.is_junction:
                continue
            for side, w, bit in (("left", t.left, 1), ("right", t.right, 2)):
                if not sg.lane_change & bit:
                    continue
                if w is None or w.lane_type != "Driving" or w.lane_id * sg.lane_id <= 0:
                    continue
                cands = by_key.get((w.road_id, w.section_id, w.lane_id), [])
                best, bd = -1, 1.0
                for j in cands:
                    dj = math.hypot(self.segments[j].xy[0, 0] - w.x, self.segments[j].xy[0, 1] - w.y)
                    if dj < bd:
                        best, bd = j, dj
                if best >= 0:
                    getattr(self, side)[k] = best
        # flat index of every sample, for locating points on the graph
        self._pts = np.concatenate([sg.xy for sg in self.segments])
        self._pt_seg = np.concatenate([np.full(len(sg.xy), k) for k, sg in enumerate(self.segments)])
        self._pt_idx = np.concatenate([np.arange(len(sg.xy)) for sg in self.segments])
        self._pt_yaw = np.concatenate([sg.yaw for sg in self.segments])
        self._pt_width = np.concatenate([sg.width for sg in self.segments])
        self._pt_junction = np.concatenate([np.full(len(sg.xy), sg.is_junction) for sg in self.segments])
        log.debug("lane graph of %s: %d segments, %d samples", self.town, n, len(self._pts))

    @classmethod
    def from_samples(cls, lanes: "LaneSampler") -> "LaneGraph":
        """The graph of a town's lanes (its topology walk every :data:`SAMPLE_STEP` m)."""
        return cls(lanes.topology_segments(SAMPLE_STEP), town=lanes.name, xodr=lanes.xodr)

    # -------------------------------------------------------------- locating points

    def locate(self, x: float, y: float, *, yaw: float | None = None,
               what: str = "start") -> LanePoint:
        """The nearest lane-centre point to (x, y) [m].

        Args:
            x, y: world point [m].
            yaw: heading hint [rad]; lanes pointing more than 90 deg away are ignored
                (chooses the lane direction on a two-way road).
            what: "start", "goal" or "via" (for the error message).

        Raises:
            ScenarioError: the point is farther from every (matching) lane centre than
                half the lane width + 2 m ("off the road").
        """
        d2 = (self._pts[:, 0] - x) ** 2 + (self._pts[:, 1] - y) ** 2
        if yaw is not None:
            bad = np.abs(np.angle(np.exp(1j * (self._pt_yaw - yaw)))) > math.pi / 2
            d2 = np.where(bad, np.inf, d2)
        # prefer lanes outside junctions when the point is equally near (overlapping lanes)
        d2j = d2 + np.where(self._pt_junction, 0.25, 0.0)
        i = int(np.argmin(d2j))
        if not np.isfinite(d2[i]):
            raise ScenarioError(f"{what} ({x:.1f}, {y:.1f}) is off the road on {self.town}: no lane there")
        k, j = int(self._pt_seg[i]), int(self._pt_idx[i])
        sg = self.segments[k]
        u, dist = _project_on_segment(sg, j, x, y)
        lim = 0.5 * float(self._pt_width[i]) + _OFFROAD_MARGIN
        if dist > lim:
            raise ScenarioError(
                f"{what} ({x:.1f}, {y:.1f}) is off the road on {self.town}: "
                f"{dist:.1f} m from the nearest driving lane centre (at most {lim:.1f} m allowed)")
        return LanePoint(k, u, dist)

    def point(self, k: int, u: float) -> tuple[float, float]:
        """World (x, y) of arc length ``u`` on segment ``k`` (linear)."""
        sg = self.segments[k]
        return (float(np.interp(u, sg.s, sg.xy[:, 0])), float(np.interp(u, sg.s, sg.xy[:, 1])))


def _project_on_segment(sg: LaneSegment, j: int, x: float, y: float) -> tuple[float, float]:
    """Arc length and distance of (x, y) projected on the segment near sample j."""
    best_u, best_d = float(sg.s[j]), math.hypot(sg.xy[j, 0] - x, sg.xy[j, 1] - y)
    for i in (j - 1, j):
        if i < 0 or i + 1 >= len(sg.xy):
            continue
        ax, ay = sg.xy[i]
        dx, dy = sg.xy[i + 1] - sg.xy[i]
        L2 = dx * dx + dy * dy
        if L2 < 1e-12:
            continue
        t = min(1.0, max(0.0, ((x - ax) * dx + (y - ay) * dy) / L2))
        qx, qy = ax + t * dx, ay + t * dy
        d = math.hypot(x - qx, y - qy)
        if d < best_d:
            best_d, best_u = d, float(sg.s[i] + t * (sg.s[i + 1] - sg.s[i]))
    return best_u, best_d


def _segment(t: "TopologySegment", limits: dict[int, list[tuple[float, float]]]) -> LaneSegment:
    """A LaneSegment from a topology walk: samples cut at the topology exit."""
    arr = np.array(t.samples, dtype=np.float64)
    arr[:, 3] = [math.radians(v) for v in arr[:, 3]]
    ex, ey, ez, eyaw, ewidth, es = t.exit
    # drop repeated samples, then cut at the topology exit: next_until_lane_end may stop
    # short of it or run past it; keep samples strictly before the exit, then end on it
    keep = np.ones(len(arr), dtype=bool)
    keep[1:] = np.hypot(np.diff(arr[:, 0]), np.diff(arr[:, 1])) > 1e-3
    arr = arr[keep]
    dend = np.hypot(arr[:, 0] - ex, arr[:, 1] - ey)
    arr = arr[:int(np.argmin(dend)) + 1]
    ahead = (ex - arr[:, 0]) * np.cos(arr[:, 3]) + (ey - arr[:, 1]) * np.sin(arr[:, 3])
    while len(arr) > 1 and (ahead[len(arr) - 1] < 0.3 * SAMPLE_STEP):
        arr = arr[:-1]
    exit_row = (ex, ey, ez, math.radians(eyaw), ewidth, es)
    if math.hypot(arr[-1, 0] - ex, arr[-1, 1] - ey) > 1e-3:
        arr = np.vstack([arr, exit_row])
    if len(arr) < 2:  # a zero-length lane (entry = exit)
        arr = np.vstack([arr, exit_row])
    xy = arr[:, :2].copy()
    seg = np.hypot(*np.diff(xy, axis=0).T)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    yaw = np.unwrap(arr[:, 3])
    lim_row = limits.get(t.road_id)
    if lim_row:
        starts = np.array([r[0] for r in lim_row])
        vals = np.array([r[1] for r in lim_row])
        idx = np.searchsorted(starts, arr[:, 5] + 1e-6, side="right") - 1
        limit = np.where(idx >= 0, vals[np.clip(idx, 0, None)], np.nan)
    else:
        limit = np.full(len(arr), np.nan)
    return LaneSegment(xy=xy, z=arr[:, 2].copy(), yaw=yaw, s=s, width=arr[:, 4].copy(), limit=limit,
                       road_id=t.road_id, section_id=t.section_id, lane_id=t.lane_id,
                       is_junction=t.is_junction, lane_change=_LANE_CHANGE_BITS.get(t.lane_change, 0))


_ROAD_RE = re.compile(r"<road\b([^>]*)>(.*?)</road>", re.DOTALL)
_ID_RE = re.compile(r'\bid\s*=\s*"([^"]*)"')
_TYPE_RE = re.compile(r"<type\b([^>]*)>(.*?)</type>", re.DOTALL)
_S_RE = re.compile(r'\bs\s*=\s*"([^"]*)"')
_SPEED_RE = re.compile(r"<speed\b([^>]*)/?>")
_MAX_RE = re.compile(r'\bmax\s*=\s*"([^"]*)"')
_UNIT_RE = re.compile(r'\bunit\s*=\s*"([^"]*)"')


def _speed_limits(xodr: str) -> dict[int, list[tuple[float, float]]]:
    """road id -> [(s_start, limit [m/s] or NaN)] from ``<road><type><speed>`` records."""
    out: dict[int, list[tuple[float, float]]] = {}
    for m in _ROAD_RE.finditer(xodr):
        idm = _ID_RE.search(m.group(1))
        if not idm:
            continue
        try:
            rid = int(idm.group(1))
        except ValueError:
            continue
        body = m.group(2)
        rows = []
        for t in _TYPE_RE.finditer(body):
            sm = _S_RE.search(t.group(1))
            sp = _SPEED_RE.search(t.group(2))
            if not sm or not sp:
                continue
            mx = _MAX_RE.search(sp.group(1))
            unit = _UNIT_RE.search(sp.group(1))
            try:
                v = float(mx.group(1)) * _SPEED_UNITS.get(unit.group(1) if unit else "m/s", 1.0)
            except (AttributeError, ValueError):  # "no limit", "undefined"
                v = float("nan")
            rows.append((float(sm.group(1)), v))
        if rows:
            out[rid] = sorted(rows)
    return out
