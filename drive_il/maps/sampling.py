"""The lane sampler: the one place that walks a ``carla.Map``'s waypoints.

Everything the project derives from a town's lanes -- the raster's lane polygons
(:mod:`drive_il.maps.geometry`), the lane graph of the route planner
(:mod:`drive_il.maps.lane_graph`) and the overlay's lane chunks
(:mod:`drive_il.maps.lane_chunks`) -- reads plain numbers from a :class:`LaneSampler`
instead of calling into ``carla.Waypoint`` itself. A :class:`~drive_il.maps.towns.TownMap`
owns one sampler; each walk is made once and memoised on it.

The consumers sample the lanes at different places along ``s``, and their outputs
(rasters, routes, drawings) depend on exactly where, so the sampler offers three walks,
each parameterised by its step:

* :meth:`LaneSampler.waypoints` / :meth:`~LaneSampler.lane_runs` /
  :meth:`~LaneSampler.section_lanes`: the road grid of
  ``carla.Map.generate_waypoints(spacing)`` (every driving lane at road ``s`` =
  eps, eps + spacing, ...), grouped per lane; one walk shared by the overlay (lane runs,
  completed to the lane end) and the raster (which lanes each road section has);
* :meth:`~LaneSampler.topology_segments`: each ``carla.Map.get_topology()`` segment
  sampled from its entry with ``Waypoint.next_until_lane_end(step)`` (the lane graph);
* :meth:`~LaneSampler.cross_sections`: every road section at evenly spaced ``s``, with
  the whole cross-section of lanes of every type reached by ``get_left_lane`` /
  ``get_right_lane`` (the raster's surfaces and markings).

Values are kept as carla gives them (float32 converted to float; yaw in degrees as in
``carla.Rotation``) so that every consumer computes exactly what it did when it walked
the waypoints itself. Frame: CARLA's world frame (x east, y south, z up), metres.
"""

from __future__ import annotations

import math
import threading
import xml.etree.ElementTree as ET
from collections.abc import Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import MapError

if TYPE_CHECKING:  # pragma: no cover
    import carla

__all__ = ["CrossSection", "LaneRun", "LaneSampler", "Mark", "Neighbour", "Sample", "TopologySegment"]

Mark = tuple[str, str, float]
"""A lane marking: (``carla.LaneMarkingType`` name, ``carla.LaneMarkingColor`` name, width [m])."""

Sample = tuple[float, float, float, float, str, Mark, Mark, float]
"""One cross-section sample: (x [m], y [m], yaw [deg], lane width [m], ``carla.LaneType``
name, right marking, left marking, road s [m])."""


@dataclass(frozen=True, slots=True)
class LaneRun:
    """Road-grid samples of one lane (road, section, lane) in driving order.

    Attributes:
        road_id, section_id, lane_id: the OpenDRIVE lane.
        is_junction: the lane lies inside a junction.
        x, y, z: (n,) lane-centre points [m].
        yaw: (n,) lane direction [deg] (``carla.Rotation.yaw``).
        width: (n,) lane width [m].
        s: (n,) road s [m].
        left_marking, right_marking: n marks each (type, colour, width).
        left_driving: (n,) int64: the lane id of the lane on the left when it is a
            driving lane, else 0.
    """

    road_id: int
    section_id: int
    lane_id: int
    is_junction: bool
    x: np.ndarray
    y: np.ndarray
    z: np.ndarray
    yaw: np.ndarray
    width: np.ndarray
    s: np.ndarray
    left_marking: tuple[Mark, ...]
    right_marking: tuple[Mark, ...]
    left_driving: np.ndarray

    def __len__(self) -> int:
        return len(self.x)


@dataclass(frozen=True, slots=True)
class Neighbour:
    """The lane beside a topology segment's entry (``get_left_lane`` / ``get_right_lane``).

    Attributes:
        road_id, section_id, lane_id: the OpenDRIVE lane.
        lane_type: ``carla.LaneType`` name.
        x, y: its waypoint [m].
    """

    road_id: int
    section_id: int
    lane_id: int
    lane_type: str
    x: float
    y: float


@dataclass(frozen=True, slots=True)
class TopologySegment:
    """One ``get_topology()`` pair (entry, exit), the entry lane sampled to its end.

    Attributes:
        road_id, section_id, lane_id: the entry's lane.
        is_junction: the entry lies inside a junction.
        lane_change: the entry's ``carla.LaneChange`` name ("NONE", "Left", "Right", "Both").
        samples: (n, 6) rows (x, y, z [m], yaw [deg], lane width [m], road s [m]) of the
            entry and ``next_until_lane_end(step)``.
        exit: the same row for the topology exit.
        left, right: the lanes beside the entry, or None.
    """

    road_id: int
    section_id: int
    lane_id: int
    is_junction: bool
    lane_change: str
    samples: np.ndarray
    exit: tuple[float, float, float, float, float, float]
    left: Neighbour | None
    right: Neighbour | None


@dataclass(frozen=True, slots=True)
class CrossSection:
    """One road section sampled across all its lanes.

    Attributes:
        road_id, section_id: the section.
        s_lo: road s where the section starts [m] (the dash phase of its marks).
        in_junction: the road is a junction's connecting road.
        junction_id: the junction of the first sample inside one, or -1.
        lanes: lane id -> one :data:`Sample` or None per s sample, in the order the
            lanes were first reached (anchor lane first).
    """

    road_id: int
    section_id: int
    s_lo: float
    in_junction: bool
    junction_id: int
    lanes: dict[int, list[Sample | None]]


def _mark(m: Any) -> Mark:
    return (str(m.type), str(m.color), float(m.width))


def _row(w: Any) -> tuple[float, float, float, float, float, float]:
    tr = w.transform
    loc = tr.location
    return (loc.x, loc.y, loc.z, tr.rotation.yaw, w.lane_width, w.s)


def _neighbour(w: Any) -> Neighbour | None:
    if w is None:
        return None
    loc = w.transform.location
    return Neighbour(int(w.road_id), int(w.section_id), int(w.lane_id), str(w.lane_type),
                     float(loc.x), float(loc.y))


def _left_driving(w: Any) -> int:
    try:
        other = w.get_left_lane()
    except RuntimeError:  # pragma: no cover - defensive against odd maps
        return 0
    if other is None or str(other.lane_type) != "Driving":
        return 0
    return int(other.lane_id)


def road_sections(xodr: str) -> dict[int, tuple[float, list[float], bool]]:
    """road id -> (length [m], [lane-section start s [m]...], is a junction road) from
    the OpenDRIVE text.

    Raises:
        MapError: the text is not XML.
    """
    try:
        root = ET.fromstring(xodr)
    except ET.ParseError as e:  # pragma: no cover - towns.py validates first
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


class LaneSampler:
    """The walks over one town's waypoints (see the module docstring), each made once.

    Args:
        carla_map: the town's road network.
        xodr: its OpenDRIVE text (lane-section boundaries; default ``to_opendrive()``).

    Attributes:
        name: the map's name (``carla_map.name``).
    """

    def __init__(self, carla_map: "carla.Map", xodr: str | None = None) -> None:
        self.map = carla_map
        self._xodr = xodr
        self.name = str(getattr(carla_map, "name", "map"))
        self._lock = threading.RLock()
        self._memo: dict[Hashable, Any] = {}

    def _once(self, key: Hashable, build) -> Any:
        with self._lock:
            if key not in self._memo:
                self._memo[key] = build()
            return self._memo[key]

    @property
    def xodr(self) -> str:
        """The OpenDRIVE text."""
        if self._xodr is None:
            self._xodr = self.map.to_opendrive()
        return self._xodr

    # -- the road grid ----------------------------------------------------------------------
    def waypoints(self, spacing: float = 2.0) -> tuple["carla.Waypoint", ...]:
        """``carla.Map.generate_waypoints(spacing)`` (driving lanes, every ``spacing`` [m]
        of road s), made once per spacing."""
        return self._once(("grid", float(spacing)), lambda: tuple(self.map.generate_waypoints(spacing)))

    def _groups(self, spacing: float) -> dict[tuple[int, int, int], list[Any]]:
        def build() -> dict[tuple[int, int, int], list[Any]]:
            groups: dict[tuple[int, int, int], list[Any]] = {}
            for wp in self.waypoints(spacing):
                groups.setdefault((wp.road_id, wp.section_id, wp.lane_id), []).append(wp)
            return groups
        return self._once(("groups", float(spacing)), build)

    def section_lanes(self, spacing: float = 2.0) -> dict[tuple[int, int], set[int]]:
        """(road id, section id) -> ids of its driving lanes, from the road grid."""
        def build() -> dict[tuple[int, int], set[int]]:
            out: dict[tuple[int, int], set[int]] = {}
            for road, sec, lane in self._groups(spacing):
                out.setdefault((road, sec), set()).add(lane)
            return out
        return self._once(("section_lanes", float(spacing)), build)

    def lane_runs(self, spacing: float = 2.0) -> tuple[LaneRun, ...]:
        """Every driving lane of the road grid as a :class:`LaneRun`: its samples ordered
        by s in driving direction (positive lanes run towards decreasing s) and completed
        to the lane end with ``next_until_lane_end(spacing)``; lanes of fewer than two
        samples are left out. Made once per spacing."""
        return self._once(("runs", float(spacing)), lambda: self._lane_runs(spacing))

    def _lane_runs(self, spacing: float) -> tuple[LaneRun, ...]:
        runs = []
        for (road, sec, lane_id), group in self._groups(spacing).items():
            wps = sorted(group, key=lambda w: w.s)
            if lane_id > 0:
                wps.reverse()
            try:
                tail = list(wps[-1].next_until_lane_end(spacing))
            except RuntimeError:  # pragma: no cover - defensive against odd maps
                tail = []
            key = (wps[-1].road_id, wps[-1].section_id, wps[-1].lane_id)
            wps.extend(w for w in tail if (w.road_id, w.section_id, w.lane_id) == key)
            if len(wps) < 2:
                continue
            rows = np.array([_row(w) for w in wps], dtype=np.float64)
            runs.append(LaneRun(
                road_id=int(road), section_id=int(sec), lane_id=int(lane_id),
                is_junction=bool(wps[0].is_junction),
                x=rows[:, 0], y=rows[:, 1], z=rows[:, 2], yaw=rows[:, 3], width=rows[:, 4], s=rows[:, 5],
                left_marking=tuple(_mark(w.left_lane_marking) for w in wps),
                right_marking=tuple(_mark(w.right_lane_marking) for w in wps),
                left_driving=np.array([_left_driving(w) for w in wps], dtype=np.int64)))
        return tuple(runs)

    # -- the topology -----------------------------------------------------------------------
    def topology_segments(self, step: float = 1.0) -> tuple[TopologySegment, ...]:
        """Every ``get_topology()`` pair, its entry lane sampled every ``step`` [m] to the
        lane end; made once per step."""
        return self._once(("topology", float(step)), lambda: self._topology(step))

    def _topology(self, step: float) -> tuple[TopologySegment, ...]:
        out = []
        for a, b in self.map.get_topology():
            wps = [a] + list(a.next_until_lane_end(step))
            out.append(TopologySegment(
                road_id=int(a.road_id), section_id=int(a.section_id), lane_id=int(a.lane_id),
                is_junction=bool(a.is_junction), lane_change=str(a.lane_change),
                samples=np.array([_row(w) for w in wps], dtype=np.float64), exit=_row(b),
                left=_neighbour(a.get_left_lane()), right=_neighbour(a.get_right_lane())))
        return tuple(out)

    # -- cross-sections ---------------------------------------------------------------------
    def cross_sections(self, step: float = 1.0) -> tuple[CrossSection, ...]:
        """Every road section that has a driving lane, sampled across all its lanes at
        evenly spaced s no more than ``step`` [m] apart (from just after the section's
        start to just before its end); made once per step.

        Raises:
            MapError: the map has no driving lane.
        """
        return self._once(("cross", float(step)), lambda: self._cross_sections(step))

    def _cross_sections(self, step: float) -> tuple[CrossSection, ...]:
        sections = road_sections(self.xodr)
        lanes_at = self.section_lanes(2.0)
        if not lanes_at:
            raise MapError(f"map {self.name!r} has no driving lane")
        m = self.map
        out = []
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
            recs: dict[int, list[Sample | None]] = {}
            junction_id = -1
            for k, s in enumerate(ss):
                a = m.get_waypoint_xodr(road_id, anchor, float(s))
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
                    recs.setdefault(lid, [None] * n)[k] = (
                        loc.x, loc.y, t.rotation.yaw, q.lane_width, str(q.lane_type),
                        _mark(q.right_lane_marking), _mark(q.left_lane_marking), float(q.s))
            out.append(CrossSection(road_id=int(road_id), section_id=int(sec_id), s_lo=float(s_lo),
                                    in_junction=bool(in_junction), junction_id=int(junction_id), lanes=recs))
        return tuple(out)
