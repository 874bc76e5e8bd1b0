"""Global route planning: A* over the lane graph of a ``carla.Map``.

The lane graph is built once per map (and cached) from ``carla.Map.get_topology()``:
every topology pair (entry, exit) is one *segment* — a lane of one road section, or a
connecting lane of a junction — sampled every ``_SAMPLE`` metres with
``Waypoint.next_until_lane_end``. A segment's successors are the segments whose entry
coincides with its exit (and point the same way); a non-junction segment also links to
its left/right neighbour lane of the same direction where ``Waypoint.lane_change``
allows it. This is the structure of CARLA's ``GlobalRoutePlanner``
(``agents/navigation/global_route_planner.py``: topology segments, lane-follow and
lane-change edges, A* with a Euclidean heuristic); the code here is our own.

Search states are ``(segment, offset along it)``: a route may start and end in the middle
of a lane, and a lane change moves the car to the neighbour lane a little further along
(cost: the change length plus a penalty). The heuristic is the straight-line distance to
the goal, admissible because every edge costs at least the distance it covers.

The dense route is sampled every ``spacing`` metres along the lane centres, interpolating
between lane samples with cubic Hermite curves on the lanes' own tangent directions (so
arcs stay arcs), and carries per waypoint the OpenDRIVE ids, lane width, junction flag,
speed limit and navigation command.

Navigation commands (CARLA's ``RoadOption``):

- inside a junction, and on the ``junction_lead`` metres (default 10 m; a scenario's
  ``command_lead``) leading into it,
  the command is LEFT, RIGHT or STRAIGHT from the heading change across the junction
  (|change| < 30 deg: STRAIGHT; + = towards CARLA's +y = RIGHT). CARLA's agents set it on
  the junction segment only; a lead gives a command-conditioned learner (Codevilla et
  al. 2018) time to slow for the turn, but a long one blurs when to turn: on the
  Town01 -> Town02 split a 10 m lead made DAVE-2 turn ~3 m early at Town02's tighter
  junctions, a 2 m lead did not (``scenarios/town01_train_town02_test.toml``);
- CHANGELANELEFT / CHANGELANERIGHT on the waypoints of a planned lane change;
- LANEFOLLOW elsewhere.

Speed limits: the offline ``carla.Map`` exposes no speed limit on its waypoints (its
landmarks come from ``<signal>`` records, which CARLA's OpenDRIVE towns do not carry), so
they are read from the OpenDRIVE text itself (``carla.Map.to_opendrive()``): the
``<road><type s=...><speed max=... unit=.../></type>`` records (OpenDRIVE 1.4, §3.4),
converted to m/s. Junction connecting roads without a record inherit the limit of the road
before them; other waypoints on roads without one get ``speed_limit=None``.
"""

from __future__ import annotations

import heapq
import logging
import math
import re
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ScenarioError
from ..geometry import polyline_curvature, wrap_angle
from ..types import RoadOption, Route, RouteWaypoint

if TYPE_CHECKING:  # pragma: no cover
    import carla

__all__ = ["LaneGraph", "LanePoint", "junction_turns", "lane_graph", "plan_route", "random_route"]

log = logging.getLogger(__name__)

_SAMPLE = 1.0            # lane sampling step of the cached graph [m]
_JOIN_TOL = 0.05         # exit/entry coincidence tolerance [m]
_OFFROAD_MARGIN = 2.0    # a start/goal farther than half the lane width + this is off the road [m]
_LC_PENALTY = 20.0       # extra cost of a lane change [m]
_LC_LEAD = 2.0           # a lane change starts this far after entering the lane [m]
_STRAIGHT_DEG = 30.0     # |heading change| below this across a junction = STRAIGHT
_SPEED_UNITS = {"m/s": 1.0, "km/h": 1.0 / 3.6, "mph": 0.44704}


# ----------------------------------------------------------------------------- graph


@dataclass
class _Segment:
    """One lane segment of the topology, sampled every ``_SAMPLE`` metres."""

    xy: np.ndarray        # (n, 2) [m]
    z: np.ndarray         # (n,)
    yaw: np.ndarray       # (n,) lane direction [rad]
    s: np.ndarray         # (n,) arc length from the entry [m]
    width: np.ndarray     # (n,) lane width [m]
    limit: np.ndarray     # (n,) speed limit [m/s], NaN where none
    road_id: int
    section_id: int
    lane_id: int
    is_junction: bool
    lane_change: int      # bit 1: left allowed, bit 2: right allowed

    @property
    def length(self) -> float:
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
    """The lane graph of one ``carla.Map`` (see module docstring). Build it with
    :func:`lane_graph`, which caches it per map.

    Attributes:
        town: the map name.
        segments: the lane segments.
        succ: successor segment indices of each segment.
        left, right: neighbour segment (same direction) a lane change may go to, or -1.
    """

    def __init__(self, carla_map: carla.Map) -> None:
        import carla

        self.town = str(carla_map.name).split("/")[-1]
        limits = _speed_limits(carla_map.to_opendrive())
        topo = carla_map.get_topology()
        self.segments: list[_Segment] = []
        entries = []
        for a, b in topo:
            self.segments.append(_sample_segment(a, b, limits, carla))
            entries.append(a)
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
        for k, (sg, a) in enumerate(zip(self.segments, entries)):
            if sg.is_junction:
                continue
            for side, getter, bit in (("left", a.get_left_lane, 1), ("right", a.get_right_lane, 2)):
                if not sg.lane_change & bit:
                    continue
                w = getter()
                if w is None or w.lane_type != carla.LaneType.Driving or w.lane_id * sg.lane_id <= 0:
                    continue
                cands = by_key.get((w.road_id, w.section_id, w.lane_id), [])
                loc = w.transform.location
                best, bd = -1, 1.0
                for j in cands:
                    dj = math.hypot(self.segments[j].xy[0, 0] - loc.x, self.segments[j].xy[0, 1] - loc.y)
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


def _project_on_segment(sg: _Segment, j: int, x: float, y: float) -> tuple[float, float]:
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


def _sample_segment(a, b, limits, carla) -> _Segment:
    wps = [a] + list(a.next_until_lane_end(_SAMPLE))
    bl = b.transform.location
    rows = []
    for w in wps:
        tr = w.transform
        loc = tr.location
        rows.append((loc.x, loc.y, loc.z, math.radians(tr.rotation.yaw), w.lane_width, w.s))
    arr = np.array(rows, dtype=np.float64)
    # drop repeated samples, then cut at the topology exit: next_until_lane_end may stop
    # short of it or run past it; keep samples strictly before the exit, then end on it
    keep = np.ones(len(arr), dtype=bool)
    keep[1:] = np.hypot(np.diff(arr[:, 0]), np.diff(arr[:, 1])) > 1e-3
    arr = arr[keep]
    dend = np.hypot(arr[:, 0] - bl.x, arr[:, 1] - bl.y)
    arr = arr[:int(np.argmin(dend)) + 1]
    ahead = (bl.x - arr[:, 0]) * np.cos(arr[:, 3]) + (bl.y - arr[:, 1]) * np.sin(arr[:, 3])
    while len(arr) > 1 and (ahead[len(arr) - 1] < 0.3 * _SAMPLE):
        arr = arr[:-1]
    btr = b.transform
    exit_row = (bl.x, bl.y, bl.z, math.radians(btr.rotation.yaw), b.lane_width, b.s)
    if math.hypot(arr[-1, 0] - bl.x, arr[-1, 1] - bl.y) > 1e-3:
        arr = np.vstack([arr, exit_row])
    if len(arr) < 2:  # a zero-length lane (entry = exit)
        arr = np.vstack([arr, exit_row])
    xy = arr[:, :2].copy()
    seg = np.hypot(*np.diff(xy, axis=0).T)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    yaw = np.unwrap(arr[:, 3])
    lim_row = limits.get(a.road_id)
    if lim_row:
        starts = np.array([r[0] for r in lim_row])
        vals = np.array([r[1] for r in lim_row])
        idx = np.searchsorted(starts, arr[:, 5] + 1e-6, side="right") - 1
        limit = np.where(idx >= 0, vals[np.clip(idx, 0, None)], np.nan)
    else:
        limit = np.full(len(arr), np.nan)
    lc = a.lane_change
    bits = 0
    if lc in (carla.LaneChange.Left, carla.LaneChange.Both):
        bits |= 1
    if lc in (carla.LaneChange.Right, carla.LaneChange.Both):
        bits |= 2
    return _Segment(xy=xy, z=arr[:, 2].copy(), yaw=yaw, s=s, width=arr[:, 4].copy(), limit=limit,
                    road_id=int(a.road_id), section_id=int(a.section_id), lane_id=int(a.lane_id),
                    is_junction=bool(a.is_junction), lane_change=bits)


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


_CACHE: dict[int, tuple[weakref.ref, LaneGraph]] = {}


def lane_graph(carla_map: carla.Map) -> LaneGraph:
    """The (cached) lane graph of a map. The cache is keyed by the map object (weakly:
    an entry goes when its map is garbage-collected)."""
    key = id(carla_map)
    hit = _CACHE.get(key)
    if hit is not None and hit[0]() is carla_map:
        return hit[1]
    g = LaneGraph(carla_map)
    _CACHE[key] = (weakref.ref(carla_map, lambda _r, k=key: _CACHE.pop(k, None)), g)
    return g


# ----------------------------------------------------------------------------- search


@dataclass(frozen=True)
class _Piece:
    """A part of a path: follow segment ``k`` from ``u0`` to ``u1``, or (``to`` >= 0)
    change lane from ``k`` at ``u0`` to segment ``to`` at ``u1`` over the distance
    between them."""

    k: int
    u0: float
    u1: float
    to: int = -1


def _lc_length(sg: _Segment, u: float) -> float:
    """Length of a lane change starting at ``u`` on ``sg`` [m]: at least 12 m, four lane
    widths, or 2 s at the lane's speed limit."""
    w = float(np.interp(u, sg.s, sg.width))
    i = int(np.clip(np.searchsorted(sg.s, u, side="right") - 1, 0, len(sg.s) - 1))
    lim = float(sg.limit[i])
    return max(12.0, 4.0 * w, 2.0 * lim if math.isfinite(lim) else 0.0)


def _search(g: LaneGraph, start: LanePoint, goal: LanePoint, start_xy, goal_xy) -> list[_Piece]:
    gx, gy = g.point(goal.seg, goal.u)

    def h(k: int, u: float) -> float:
        px, py = g.point(k, u)
        return math.hypot(px - gx, py - gy)

    # state: (k, u) ; pieces reconstructed from parents
    start_state = (start.seg, round(start.u, 2))
    openq: list = [(h(*start_state), 0.0, 0, start_state)]
    best = {start_state: 0.0}
    parent: dict = {start_state: None}
    counter = 1
    final = None
    while openq:
        _, gc, _, st = heapq.heappop(openq)
        if gc > best.get(st, math.inf) + 1e-9:
            continue
        if st == ("goal",):
            final = st
            break
        k, u = st
        sg = g.segments[k]
        moves = []
        if k == goal.seg and goal.u >= u - 1e-6:
            moves.append((("goal",), max(0.0, goal.u - u), _Piece(k, u, goal.u)))
        rest = max(0.0, sg.length - u)
        for j in g.succ[k]:
            moves.append(((j, 0.0), rest, _Piece(k, u, sg.length)))
        for nb in (g.left[k], g.right[k]):
            if nb < 0:
                continue
            c = u + _LC_LEAD
            L = _lc_length(sg, c)
            nsg = g.segments[nb]
            un = (c + L) / max(sg.length, 1e-6) * nsg.length
            if c + L > sg.length - 1.0 or un > nsg.length - 1.0:
                continue
            moves.append(((nb, round(un, 2)), _LC_LEAD + L + _LC_PENALTY, _Piece(k, c, un, to=nb)))
            # following k up to c first is part of the piece list (see reconstruction)
        for nst, cost, piece in moves:
            ng = gc + cost
            if ng < best.get(nst, math.inf) - 1e-9:
                best[nst] = ng
                parent[nst] = (st, piece)
                hh = 0.0 if nst == ("goal",) else h(*nst)
                heapq.heappush(openq, (ng + hh, ng, counter, nst))
                counter += 1
    if final is None:
        raise ScenarioError(
            f"goal ({goal_xy[0]:.1f}, {goal_xy[1]:.1f}) is not reachable from start "
            f"({start_xy[0]:.1f}, {start_xy[1]:.1f}) on {g.town}")
    pieces: list[_Piece] = []
    st = final
    while parent[st] is not None:
        prev, piece = parent[st]
        pieces.append(piece)
        if piece.to >= 0 and piece.u0 > prev[1]:
            pieces.append(_Piece(piece.k, prev[1], piece.u0))
        st = prev
    pieces.reverse()
    return pieces


# ----------------------------------------------------------------------------- dense route


def _follow_samples(g: LaneGraph, p: _Piece) -> dict[str, np.ndarray]:
    """Lane samples of segment p.k between u0 and u1 (end points interpolated)."""
    sg = g.segments[p.k]
    u0, u1 = max(0.0, p.u0), min(sg.length, p.u1)
    inner = np.nonzero((sg.s > u0 + 1e-6) & (sg.s < u1 - 1e-6))[0]
    us = np.concatenate([[u0], sg.s[inner], [u1]])
    out = {
        "x": np.interp(us, sg.s, sg.xy[:, 0]),
        "y": np.interp(us, sg.s, sg.xy[:, 1]),
        "z": np.interp(us, sg.s, sg.z),
        "yaw": np.interp(us, sg.s, sg.yaw),
        "width": np.interp(us, sg.s, sg.width),
        "limit": sg.limit[np.clip(np.searchsorted(sg.s, us, side="right") - 1, 0, len(sg.s) - 1)],
        "seg": np.full(len(us), p.k),
        "lc": np.zeros(len(us), dtype=np.int8),
    }
    # exact lane points at the interpolated ends need the Hermite curve, not the chord
    for idx, u in ((0, u0), (len(us) - 1, u1)):
        out["x"][idx], out["y"][idx] = _hermite_at(sg, u)
    return out


def _hermite_at(sg: _Segment, u: float) -> tuple[float, float]:
    i = int(np.clip(np.searchsorted(sg.s, u, side="right") - 1, 0, len(sg.s) - 2))
    L = float(sg.s[i + 1] - sg.s[i])
    if L < 1e-9:
        return float(sg.xy[i, 0]), float(sg.xy[i, 1])
    t = (u - float(sg.s[i])) / L
    return _hermite(sg.xy[i], sg.xy[i + 1], float(sg.yaw[i]), float(sg.yaw[i + 1]), t)


def _hermite(p0, p1, y0: float, y1: float, t):
    """Cubic Hermite point(s) between p0 and p1 with unit tangents at yaw y0, y1 scaled
    by the chord length (arcs are reproduced to within a fraction of a millimetre)."""
    L = math.hypot(p1[0] - p0[0], p1[1] - p0[1])
    t2, t3 = t * t, t * t * t
    h00, h10, h01, h11 = 2 * t3 - 3 * t2 + 1, t3 - 2 * t2 + t, -2 * t3 + 3 * t2, t3 - t2
    x = h00 * p0[0] + h10 * L * math.cos(y0) + h01 * p1[0] + h11 * L * math.cos(y1)
    y = h00 * p0[1] + h10 * L * math.sin(y0) + h01 * p1[1] + h11 * L * math.sin(y1)
    return x, y


def _change_samples(g: LaneGraph, p: _Piece) -> dict[str, np.ndarray]:
    """A smooth lane change from segment p.k at u0 to segment p.to at u1."""
    a, b = g.segments[p.k], g.segments[p.to]
    L = _lc_length(a, p.u0)
    n = max(2, int(math.ceil(L / 0.5)) + 1)
    t = np.linspace(0.0, 1.0, n)
    ua = p.u0 + t * L
    ub = t * p.u1 + (1 - t) * (p.u0 / max(a.length, 1e-6) * b.length)
    blend = t * t * (3 - 2 * t)
    ax, ay = np.interp(ua, a.s, a.xy[:, 0]), np.interp(ua, a.s, a.xy[:, 1])
    bx, by = np.interp(ub, b.s, b.xy[:, 0]), np.interp(ub, b.s, b.xy[:, 1])
    x = (1 - blend) * ax + blend * bx
    y = (1 - blend) * ay + blend * by
    d = np.gradient(np.stack([x, y], 1), axis=0)
    yaw = np.unwrap(np.arctan2(d[:, 1], d[:, 0]))
    pick_b = t >= 0.5
    side = 5 if g.left[p.k] == p.to else 6
    return {
        "x": x, "y": y,
        "z": np.where(pick_b, np.interp(ub, b.s, b.z), np.interp(ua, a.s, a.z)),
        "yaw": yaw,
        "width": np.where(pick_b, np.interp(ub, b.s, b.width), np.interp(ua, a.s, a.width)),
        "limit": np.where(pick_b, b.limit[np.clip(np.searchsorted(b.s, ub) - 1, 0, len(b.s) - 1)],
                          a.limit[np.clip(np.searchsorted(a.s, ua) - 1, 0, len(a.s) - 1)]),
        "seg": np.where(pick_b, p.to, p.k),
        "lc": np.full(n, side, dtype=np.int8),
    }


def _build_route(g: LaneGraph, pieces: Sequence[_Piece], spacing: float, junction_lead: float,
                 *, max_length: float | None = None) -> Route:
    parts = []
    for p in pieces:
        if p.to >= 0:
            parts.append(_change_samples(g, p))
        elif p.u1 - p.u0 > 1e-6:
            parts.append(_follow_samples(g, p))
    if not parts:
        raise ScenarioError(f"the route on {g.town} has zero length (start and goal coincide)")
    cat = {k: np.concatenate([q[k] for q in parts]) for k in parts[0]}
    # drop repeated points at piece boundaries
    x, y = cat["x"], cat["y"]
    keep = np.ones(len(x), dtype=bool)
    keep[1:] = np.hypot(np.diff(x), np.diff(y)) > 1e-3
    cat = {k: v[keep] for k, v in cat.items()}
    x, y = cat["x"], cat["y"]
    yaw = np.unwrap(cat["yaw"])
    if len(x) < 2:
        raise ScenarioError(f"the route on {g.town} has zero length (start and goal coincide)")
    s = np.concatenate([[0.0], np.cumsum(np.hypot(np.diff(x), np.diff(y)))])
    total = float(s[-1]) if max_length is None else min(float(s[-1]), max_length)
    n = max(2, int(math.floor(total / spacing + 1e-9)) + 1)
    su = np.arange(n) * spacing
    if su[-1] < total - 1e-6:  # end exactly at the route's end
        su = np.append(su, total)
    idx = np.clip(np.searchsorted(s, su, side="right") - 1, 0, len(s) - 2)
    Ls = s[idx + 1] - s[idx]
    t = np.where(Ls > 1e-9, (su - s[idx]) / np.maximum(Ls, 1e-9), 0.0)
    t2, t3 = t * t, t * t * t
    h00, h10, h01, h11 = 2 * t3 - 3 * t2 + 1, t3 - 2 * t2 + t, -2 * t3 + 3 * t2, t3 - t2
    y0, y1 = yaw[idx], yaw[idx + 1]
    rx = h00 * x[idx] + h10 * Ls * np.cos(y0) + h01 * x[idx + 1] + h11 * Ls * np.cos(y1)
    ry = h00 * y[idx] + h10 * Ls * np.sin(y0) + h01 * y[idx + 1] + h11 * Ls * np.sin(y1)
    ryaw = y0 + t * (y1 - y0)
    rz = cat["z"][idx] + t * (cat["z"][idx + 1] - cat["z"][idx])
    near = np.where(t < 0.5, idx, idx + 1)
    seg_of = cat["seg"][near].astype(int)
    lc = cat["lc"][near]
    width = cat["width"][near]
    limit = cat["limit"][near]
    junction = np.array([g.segments[k].is_junction for k in seg_of], dtype=bool)
    limit = _fill_junction_limits(np.array(limit, dtype=np.float64), junction)
    commands = _commands(ryaw, junction, lc, su, junction_lead)
    wps = []
    for i in range(len(su)):
        sgm = g.segments[seg_of[i]]
        lim = float(limit[i])
        wps.append(RouteWaypoint(
            x=float(rx[i]), y=float(ry[i]), z=float(rz[i]), yaw=wrap_angle(float(ryaw[i])),
            command=RoadOption(int(commands[i])), road_id=sgm.road_id, section_id=sgm.section_id,
            lane_id=sgm.lane_id, lane_width=float(width[i]), is_junction=bool(junction[i]),
            speed_limit=None if not math.isfinite(lim) else lim))
    return Route(waypoints=tuple(wps), spacing=float(spacing))


def _fill_junction_limits(limit: np.ndarray, junction: np.ndarray) -> np.ndarray:
    """Junction connecting roads rarely carry their own speed record: inside a junction a
    missing limit is taken from the road before it (after it, at a route start)."""
    out = limit.copy()
    last = math.nan
    for i in range(len(out)):
        if math.isfinite(out[i]):
            last = out[i]
        elif junction[i]:
            out[i] = last
    first = np.nonzero(np.isfinite(out))[0]
    if len(first):
        f = int(first[0])
        lead = junction[:f]
        out[:f][lead] = out[f]
    return out


def _commands(yaw: np.ndarray, junction: np.ndarray, lc: np.ndarray, s: np.ndarray,
              lead: float) -> np.ndarray:
    n = len(yaw)
    cmd = np.full(n, int(RoadOption.LANEFOLLOW), dtype=np.int64)
    cmd[lc == 5] = int(RoadOption.CHANGELANELEFT)
    cmd[lc == 6] = int(RoadOption.CHANGELANERIGHT)
    i = 0
    while i < n:
        if not junction[i]:
            i += 1
            continue
        j = i
        while j + 1 < n and junction[j + 1]:
            j += 1
        before = yaw[i - 1] if i > 0 else yaw[i]
        after = yaw[j + 1] if j + 1 < n else yaw[j]
        turn = float(after - before)  # unwrapped yaw: the signed total turn
        if abs(turn) < math.radians(_STRAIGHT_DEG):
            c = RoadOption.STRAIGHT
        elif turn > 0:
            c = RoadOption.RIGHT
        else:
            c = RoadOption.LEFT
        lo = int(np.searchsorted(s, s[i] - lead, side="left"))
        # the lead never overwrites an earlier junction's command
        k = i - 1
        while k >= lo and not junction[k] and cmd[k] in (int(RoadOption.LANEFOLLOW),):
            k -= 1
        cmd[k + 1:j + 1] = int(c)
        i = j + 1
    return cmd


# ----------------------------------------------------------------------------- public API


def plan_route(carla_map: carla.Map, start_xy: Sequence[float], goal_xy: Sequence[float], *,
               via: Iterable[Sequence[float]] = (), spacing: float = 1.0,
               start_yaw: float | None = None, junction_lead: float = 10.0) -> Route:
    """Plan the shortest lane route from a start to a goal through optional via points.

    Args:
        carla_map: the town.
        start_xy: (x, y) [m] world frame; snapped to the nearest driving lane centre
            (whose direction is within 90 deg of ``start_yaw`` when given).
        goal_xy: (x, y) [m]; snapped to the nearest driving lane centre.
        via: intermediate (x, y) points visited in order.
        spacing: distance between route waypoints [m] (> 0).
        start_yaw: heading hint at the start [rad] (chooses the lane direction).
        junction_lead: metres before a junction on which its turn command is set.

    Returns:
        A dense :class:`~drive_il.types.Route` (see module docstring for commands).

    Raises:
        ScenarioError: start, via or goal off the road (farther than half the lane width
            + 2 m from a lane centre), or the goal unreachable from the start; one line.
        ValueError: ``spacing`` not positive.
    """
    if not spacing > 0:
        raise ValueError(f"spacing must be > 0, got {spacing!r}")
    g = lane_graph(carla_map)
    sx, sy = float(start_xy[0]), float(start_xy[1])
    cur = g.locate(sx, sy, yaw=start_yaw, what="start")
    cur_xy = (sx, sy)
    pieces: list[_Piece] = []
    targets = [(tuple(map(float, v)), "via") for v in via] + [((float(goal_xy[0]), float(goal_xy[1])), "goal")]
    for (tx, ty), what in targets:
        tgt = g.locate(tx, ty, what=what)
        pieces += _search(g, cur, tgt, cur_xy, (tx, ty))
        cur, cur_xy = LanePoint(tgt.seg, tgt.u, 0.0), (tx, ty)
    return _build_route(g, pieces, spacing, junction_lead)


def random_route(carla_map: carla.Map, rng: np.random.Generator, length: float, *,
                 start_xy: Sequence[float] | None = None, start_yaw: float | None = None,
                 spacing: float = 1.0, junction_lead: float = 10.0) -> Route:
    """A random route of at least ``length`` metres, deterministic given ``rng``.

    The start is a lane point outside junctions drawn with ``rng`` (like a CARLA spawn
    point: a segment drawn with probability proportional to its length, an offset along
    it leaving 5 m before its end), or ``start_xy`` snapped to the nearest lane. At each
    lane end the next lane is drawn uniformly among the successors with ``rng``; a dead
    end backtracks to the last choice. The route stays in its lane between junctions (no
    lane changes).

    Args:
        carla_map: the town.
        rng: the random generator (the only source of randomness).
        length: route length [m] (> 0); the route is cut at exactly ``length`` or up to
            one ``spacing`` more.
        start_xy: optional start (x, y) [m].
        start_yaw: heading hint at ``start_xy`` [rad].
        spacing: waypoint spacing [m].
        junction_lead: see :func:`plan_route`.

    Raises:
        ScenarioError: ``start_xy`` off the road, or no route of that length exists
            from the start (dead ends only).
        ValueError: ``length`` or ``spacing`` not positive.
    """
    if not length > 0:
        raise ValueError(f"length must be > 0, got {length!r}")
    if not spacing > 0:
        raise ValueError(f"spacing must be > 0, got {spacing!r}")
    g = lane_graph(carla_map)
    if start_xy is not None:
        st = g.locate(float(start_xy[0]), float(start_xy[1]), yaw=start_yaw, what="start")
        starts = [st]
    else:
        cand = [k for k, sg in enumerate(g.segments) if not sg.is_junction and sg.length > 6.0]
        if not cand:
            raise ScenarioError(f"{g.town} has no lane outside junctions to start a route on")
        w = np.array([g.segments[k].length for k in cand])
        starts = []
        for _ in range(20):
            k = int(cand[int(rng.choice(len(cand), p=w / w.sum()))])
            u = float(rng.uniform(0.0, g.segments[k].length - 5.0))
            starts.append(LanePoint(k, u, 0.0))
    for st in starts:
        pieces = _random_walk(g, st, length, rng)
        if pieces is not None:
            # the route's length is measured along its chords: extend the cut until it
            # reaches ``length`` (a few centimetres on curvy routes)
            cut = math.ceil(length / spacing - 1e-9) * spacing
            for _ in range(4):
                route = _build_route(g, pieces, spacing, junction_lead, max_length=cut)
                if route.length >= length - 1e-9:
                    break
                cut += (length - route.length) + 1e-3
            return route
    raise ScenarioError(f"no route of {length:.0f} m exists from the start on {g.town} (dead ends)")


def _random_walk(g: LaneGraph, st: LanePoint, length: float, rng: np.random.Generator,
                 max_steps: int = 100_000) -> list[_Piece] | None:
    need = math.ceil(length) + 5.0
    first = _Piece(st.seg, st.u, g.segments[st.seg].length)
    path = [first]
    total = first.u1 - first.u0
    options: list[list[int]] = []
    succ = list(g.succ[st.seg])
    rng.shuffle(succ)
    options.append(succ)
    steps = 0
    while total < need:
        steps += 1
        if steps > max_steps:
            return None
        if not options[-1]:
            if len(path) == 1:
                return None
            p = path.pop()
            options.pop()
            total -= p.u1 - p.u0
            continue
        k = options[-1].pop(0)
        sg = g.segments[k]
        path.append(_Piece(k, 0.0, sg.length))
        total += sg.length
        nxt = list(g.succ[k])
        rng.shuffle(nxt)
        options.append(nxt)
    return path


def junction_turns(route: Route, *, curvature_threshold: float = 0.05) -> list[dict[str, Any]]:
    """The geometry of every junction a route crosses: how long the junction is, where
    in it the turn's arc begins and how tight the arc is. Used to compare towns (a
    learner trained in one town judges a turn's onset from the look of its junctions).

    Args:
        route: a dense route (its waypoints' ``is_junction`` and ``command``).
        curvature_threshold: |curvature| [1/m] above which the route counts as turning
            (0.05 = a 20 m radius).

    Returns:
        One dict per junction crossed: ``command`` (RoadOption name of its first
        waypoint), ``x``, ``y`` (entry point [m]), ``length`` (along the route from the entry to
        the first waypoint after the junction [m]), ``arc_start`` (from the entry to the first point of |curvature| >
        threshold [m], negative when the arc begins before the entry; None for a route
        that does not turn there), ``min_radius`` ([m], None when it does not turn).
        Junctions cut by the route's start or end are left out.
    """
    j = np.array([w.is_junction for w in route.waypoints], bool)
    k = np.abs(polyline_curvature(route.xy))
    out: list[dict[str, Any]] = []
    n = len(j)
    i = 1
    while i < n:
        if j[i] and not j[i - 1]:
            e = i
            while e < n and j[e]:
                e += 1
            if e >= n:
                break
            lo, hi = max(i - 3, 0), min(e + 3, n)
            turning = np.flatnonzero(k[lo:hi] > curvature_threshold)
            w = route.waypoints[i]
            out.append({
                "command": w.command.name, "x": float(w.x), "y": float(w.y),
                "length": float(route.s[e] - route.s[i]),
                "arc_start": float(route.s[lo + turning[0]] - route.s[i]) if len(turning) else None,
                "min_radius": float(1.0 / k[lo:hi].max()) if len(turning) else None,
            })
            i = e
        i += 1
    return out
