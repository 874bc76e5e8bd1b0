"""The pedestrian network of a town: sidewalks, corners and crossings.

:func:`build_network` derives a :class:`SidewalkNetwork` from a town's lane
cross-sections (:meth:`drive_il.maps.sampling.LaneSampler.cross_sections`, the same walk
the raster's lane polygons come from) and its OpenDRIVE road links;
:func:`sidewalk_network` memoises it on the :class:`~drive_il.maps.towns.TownMap`
(``town.memo(("sidewalk_network", ...))``), so it is built once per town.

The network (all in CARLA's world frame, metres):

* **sidewalk edges**: one polyline per road section and side (OpenDRIVE's left lanes,
  id > 0, and right lanes, id < 0), along increasing road ``s``, every
  :data:`~drive_il.maps.geometry.SAMPLE_STEP` metres: the centre line of the side's
  outermost ``Sidewalk`` lane (``carla.LaneType.Sidewalk``, which CARLA's towns and our
  generated towns have); where a side has driving lanes but no sidewalk (Town04's
  highways), a path :data:`FALLBACK_OFFSET` outside its outermost lane. Junction
  connecting roads carry none.
* **nodes**: the ends of the sidewalk edges; ends closer than :data:`MERGE_DISTANCE`
  (section boundaries, roads joined end to start) are one node.
* **corner edges**: at each junction, the sidewalk ends of the roads that meet there,
  ordered by angle around the junction, are joined end to end where two neighbours
  belong to different roads (the sidewalk corner, a straight walk over the junction's
  paved apron; a T-junction's far side gets a straight walk across the missing arm). A
  corner that would touch a driving lane (``carla.Map.get_waypoint`` with
  ``project_to_road=False``) is dropped.
* **crossings**: where two angular neighbours belong to the same road, a straight
  crossing from one side's sidewalk end to the other's, i.e. across the road's entry to
  the junction, perpendicular to the road, :data:`CROSSING_SETBACK` past the road's end
  (the stop line of the traffic lights, :mod:`drive_il.maps.signals`): vehicles stopped
  at the line stand just before it;
  :meth:`SidewalkNetwork.midblock_crossing` gives a crossing anywhere along a road (from
  a point of one side to the nearest point of the other side).

Walkers (:mod:`drive_il.sim.embedded.walkers`) walk the edges, turn at nodes and cross on
crossings; corners and crossings connect the sidewalks so that walkers walk around blocks
and over to the next block.

Build times (one core of a lightly loaded 2-core machine; the network alone, on top of
the lane cross-sections that the raster builds anyway, 0.05-0.3 s more when not built
yet): grid 0.04 s, circuit 0.005 s, procedural:3 0.06 s, Town01 0.03 s, Town02 0.03 s,
Town04 0.17 s (:data:`BUILD_TIMES`).
"""

from __future__ import annotations

import logging
import math
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import MapError

if TYPE_CHECKING:  # pragma: no cover
    from .towns import TownMap

__all__ = [
    "CORNER",
    "FALLBACK_OFFSET",
    "MAX_CORNER_LENGTH",
    "MERGE_DISTANCE",
    "SIDEWALK",
    "Crossing",
    "SidewalkNetwork",
    "build_network",
    "sidewalk_network",
]

log = logging.getLogger(__name__)

#: Edge kinds.
SIDEWALK, CORNER = 0, 1
#: Path outside the outermost lane of a side with no sidewalk lane [m].
FALLBACK_OFFSET = 1.0
#: Junction crossings lie this far past the end of the road entering the junction
#: (where the stop line is), inside the junction [m].
CROSSING_SETBACK = 1.5
#: Edge ends closer than this are one node [m].
MERGE_DISTANCE = 0.6
#: Corner walks longer than this are not made [m].
MAX_CORNER_LENGTH = 60.0
#: Cross-section sampling step [m] (the raster's, so the walk is shared).
STEP = 1.0
#: Build times measured on one core (s), for the record.
BUILD_TIMES = {"grid": 0.036, "circuit": 0.005, "procedural:3": 0.063, "Town01": 0.034,
               "Town02": 0.025, "Town04": 0.165}


@dataclass(frozen=True, slots=True)
class Crossing:
    """A straight crossing of a road.

    Attributes:
        a, b: its ends (x, y) [m], on the sidewalk paths of the two sides.
        node_a, node_b: the network nodes at the ends (-1 for a mid-block crossing).
        road_id: the OpenDRIVE road crossed.
        junction_id: the junction it is the entry of (-1 mid-block).
        curb_a, curb_b: distance [m] from each end to the road's edge: the walker is on
            the road for ``curb_a <= t <= length - curb_b`` of its way ``t`` from ``a``.
        length: |b - a| [m].
        to_edge, to_s: for a mid-block crossing, the sidewalk edge and its arc length
            [m] where it ends (-1, 0 for a junction crossing, which ends at ``node_b``).
    """

    a: tuple[float, float]
    b: tuple[float, float]
    node_a: int
    node_b: int
    road_id: int
    junction_id: int
    curb_a: float
    curb_b: float
    length: float
    to_edge: int = -1
    to_s: float = 0.0

    def reversed(self) -> Crossing:
        """The same crossing walked from ``b`` to ``a`` (junction crossings)."""
        return Crossing(self.b, self.a, self.node_b, self.node_a, self.road_id,
                        self.junction_id, self.curb_b, self.curb_a, self.length)


@dataclass(frozen=True, eq=False)
class SidewalkNetwork:
    """A town's pedestrian network (see the module docstring).

    Edges are stored as one concatenated point array so that walkers can be moved with
    vectorised numpy.

    Attributes:
        points: (N, 2) float64 points of all edges [m], edge after edge.
        arclen: (N,) arc length of each point from its edge's start [m].
        edge_start, edge_count: (E,) int64 first point index and number of points.
        edge_length: (E,) [m].
        edge_kind: (E,) uint8 :data:`SIDEWALK` or :data:`CORNER`.
        edge_road: (E,) OpenDRIVE road id of a sidewalk edge (-1 for corners).
        edge_side: (E,) +1 left side (lanes id > 0), -1 right side, 0 corner.
        edge_curb: (E,) distance from the path to the road's edge [m] (sidewalk half
            width, or :data:`FALLBACK_OFFSET`).
        edge_opposite: (E,) the sidewalk edge on the other side of the same road section
            (-1 none).
        edge_nodes: (E, 2) node at the edge's start and end.
        node_xy: (M, 2) node positions [m].
        node_junction: (M,) junction the node is a corner of (-1 none).
        node_edges: per node, the (edge, end) pairs meeting there (end 0: the edge's
            start, 1: its end).
        crossings: the junction crossings (:class:`Crossing`, from ``node_a`` to ``node_b``).
        node_crossings: per node, indices into ``crossings`` starting or ending there.
        build_time: seconds the build took.
    """

    points: np.ndarray
    arclen: np.ndarray
    edge_start: np.ndarray
    edge_count: np.ndarray
    edge_length: np.ndarray
    edge_kind: np.ndarray
    edge_road: np.ndarray
    edge_side: np.ndarray
    edge_curb: np.ndarray
    edge_opposite: np.ndarray
    edge_nodes: np.ndarray
    node_xy: np.ndarray
    node_junction: np.ndarray
    node_edges: tuple[tuple[tuple[int, int], ...], ...]
    crossings: tuple[Crossing, ...]
    node_crossings: tuple[tuple[int, ...], ...]
    build_time: float = 0.0

    @property
    def num_edges(self) -> int:
        return len(self.edge_length)

    @property
    def sidewalk_length(self) -> float:
        """Total length of the sidewalk edges [m]."""
        return float(self.edge_length[self.edge_kind == SIDEWALK].sum())

    def polyline(self, edge: int) -> np.ndarray:
        """(n, 2) points of ``edge`` [m]."""
        i = int(self.edge_start[edge])
        return self.points[i:i + int(self.edge_count[edge])]

    def point_at(self, edge: int, s: float) -> tuple[float, float, float]:
        """(x, y, direction [rad]) at arc length ``s`` [m] of ``edge`` (clamped to it)."""
        i0 = int(self.edge_start[edge])
        n = int(self.edge_count[edge])
        a = self.arclen[i0:i0 + n]
        s = min(max(float(s), 0.0), float(a[-1]))
        k = min(max(int(np.searchsorted(a, s, side="right")) - 1, 0), n - 2)
        p, q = self.points[i0 + k], self.points[i0 + k + 1]
        seg = float(a[k + 1] - a[k])
        t = (s - float(a[k])) / seg if seg > 1e-9 else 0.0
        return (float(p[0] + (q[0] - p[0]) * t), float(p[1] + (q[1] - p[1]) * t),
                math.atan2(float(q[1] - p[1]), float(q[0] - p[0])))

    def project(self, edge: int, x: float, y: float) -> float:
        """Arc length [m] of the point of ``edge`` nearest to (x, y)."""
        P = self.polyline(edge)
        a = self.arclen[int(self.edge_start[edge]):int(self.edge_start[edge]) + len(P)]
        A, B = P[:-1], P[1:]
        d = B - A
        L2 = np.maximum((d * d).sum(axis=1), 1e-12)
        t = np.clip(((x - A[:, 0]) * d[:, 0] + (y - A[:, 1]) * d[:, 1]) / L2, 0.0, 1.0)
        cx, cy = A[:, 0] + d[:, 0] * t, A[:, 1] + d[:, 1] * t
        k = int(np.argmin((cx - x) ** 2 + (cy - y) ** 2))
        return float(a[k] + t[k] * math.sqrt(L2[k]))

    def midblock_crossing(self, edge: int, s: float) -> Crossing | None:
        """A crossing of the road from arc length ``s`` [m] of sidewalk ``edge`` to the
        nearest point of the sidewalk on the road's other side (perpendicular to the
        road on straight roads), or None when the road has no other side."""
        other = int(self.edge_opposite[edge])
        if other < 0:
            return None
        x, y, _ = self.point_at(edge, s)
        t = self.project(other, x, y)
        bx, by, _ = self.point_at(other, t)
        length = math.hypot(bx - x, by - y)
        if length < 1e-3:
            return None
        return Crossing((x, y), (bx, by), -1, -1, int(self.edge_road[edge]), -1,
                        float(self.edge_curb[edge]), float(self.edge_curb[other]), length,
                        other, t)

    def crossings_at(self, node: int) -> list[Crossing]:
        """The junction crossings that start at ``node`` (oriented from it)."""
        out = []
        for k in self.node_crossings[node]:
            c = self.crossings[k]
            out.append(c if c.node_a == node else c.reversed())
        return out


def sidewalk_network(town: TownMap) -> SidewalkNetwork:
    """The town's :class:`SidewalkNetwork`, built once (memoised on the town)."""
    return town.memo(("sidewalk_network", STEP), lambda: build_network(town))


def _road_links(xodr: str) -> dict[int, tuple[int, int]]:
    """road id -> (junction id of its predecessor or -1, of its successor or -1)."""
    try:
        root = ET.fromstring(xodr)
    except ET.ParseError as e:  # pragma: no cover - towns are validated first
        raise MapError(f"OpenDRIVE text is not valid XML: {e}") from None
    out: dict[int, tuple[int, int]] = {}
    for r in root.iter("road"):
        ends = [-1, -1]
        link = r.find("link")
        if link is not None:
            for k, tag in enumerate(("predecessor", "successor")):
                el = link.find(tag)
                if el is not None and el.get("elementType") == "junction":
                    ends[k] = int(el.get("elementId", "-1"))
        out[int(r.get("id"))] = (ends[0], ends[1])
    return out


def _right(yaw_deg: float) -> tuple[float, float]:
    y = math.radians(yaw_deg)
    return -math.sin(y), math.cos(y)


def _side_path(samples: dict[int, list], side: int) -> tuple[np.ndarray, float] | None:
    """Walkway points of one side of a cross-section (None: no walkway there)."""
    lids = sorted((lid for lid in samples if (lid > 0) == (side > 0)), key=abs)
    if not lids:
        return None
    n = len(next(iter(samples.values())))
    pts = []
    curbs = []
    has_driving = False
    for k in range(n):
        present = [lid for lid in lids if samples[lid][k] is not None and samples[lid][k][3] > 1e-3]
        if not present:
            continue
        types = {samples[lid][k][4] for lid in present}
        has_driving |= "Driving" in types
        walk = [lid for lid in present if samples[lid][k][4] == "Sidewalk"]
        if walk:
            x, y, yaw, w = samples[walk[-1]][k][:4]
            pts.append((x, y))
            curbs.append(0.5 * w)
        else:
            x, y, yaw, w = samples[present[-1]][k][:4]
            rx, ry = _right(yaw)
            # outward = right of the lane's driving direction (right-hand traffic: a
            # left lane's waypoint yaw runs against the reference line), both sides
            off = 0.5 * w + FALLBACK_OFFSET
            pts.append((x + rx * off, y + ry * off))
            curbs.append(FALLBACK_OFFSET)
    has_sidewalk = any(s is not None and s[4] == "Sidewalk" for lid in lids for s in samples[lid])
    if len(pts) < 2 or not (has_sidewalk or has_driving):
        return None
    return np.asarray(pts, dtype=np.float64), float(np.median(curbs))


def _touches_driving(carla_map: Any, a: np.ndarray, b: np.ndarray, z: float = 0.0) -> bool:
    import carla
    L = float(np.hypot(*(b - a)))
    n = max(2, int(L / 1.0) + 1)
    for t in np.linspace(0.15, 0.85, n):
        p = a + (b - a) * t
        wp = carla_map.get_waypoint(carla.Location(float(p[0]), float(p[1]), z), False,
                                    carla.LaneType.Driving)
        if wp is not None:
            return True
    return False


def _ray_meet(a: np.ndarray, da: np.ndarray, b: np.ndarray, db: np.ndarray) -> np.ndarray | None:
    """Where the rays a + t da and b + u db (t, u > 0) meet, or None."""
    den = da[0] * db[1] - da[1] * db[0]
    if abs(den) < 1e-6:
        return None
    w = b - a
    t = (w[0] * db[1] - w[1] * db[0]) / den
    u = (w[0] * da[1] - w[1] * da[0]) / den
    if t <= 0.0 or u <= 0.0:
        return None
    return a + t * da


def build_network(town: TownMap) -> SidewalkNetwork:
    """Build the pedestrian network of ``town`` (see the module docstring).

    Args:
        town: the town (its ``lane_samples`` cross-sections, ``xodr`` and ``map``).

    Returns:
        The network (possibly with no edges: a town whose roads have no sides).

    Raises:
        MapError: the map has no driving lane.
    """
    t0 = time.perf_counter()
    links = _road_links(town.xodr)
    sections = town.lane_samples.cross_sections(STEP)
    last_section: dict[int, int] = {}
    for sec in sections:
        if not sec.in_junction:
            last_section[sec.road_id] = max(last_section.get(sec.road_id, -1), sec.section_id)
    polys: list[np.ndarray] = []
    meta: list[tuple[int, int, float]] = []  # (road, side, curb)
    ends_junction: list[tuple[int, int]] = []  # junction at the start / end of the edge
    pairs: dict[tuple[int, int], dict[int, int]] = {}
    for sec in sections:
        if sec.in_junction:
            continue
        pred, succ = links.get(sec.road_id, (-1, -1))
        for side in (1, -1):
            got = _side_path(sec.lanes, side)
            if got is None:
                continue
            pts, curb = got
            d = np.hypot(*np.diff(pts, axis=0).T)
            keep = np.concatenate([[True], d > 1e-3])
            pts = pts[keep]
            if len(pts) < 2:
                continue
            e = len(polys)
            ends = (pred if sec.section_id == 0 else -1,
                    succ if sec.section_id == last_section[sec.road_id] else -1)
            # at a junction the sidewalk runs on CROSSING_SETBACK past the road's end (the
            # stop line), so that crossings lie in front of the vehicles stopped there
            if ends[0] >= 0:
                d = pts[0] - pts[1]
                pts = np.vstack([pts[0] + d / max(float(np.hypot(*d)), 1e-9) * CROSSING_SETBACK, pts])
            if ends[1] >= 0:
                d = pts[-1] - pts[-2]
                pts = np.vstack([pts, pts[-1] + d / max(float(np.hypot(*d)), 1e-9) * CROSSING_SETBACK])
            polys.append(pts)
            meta.append((sec.road_id, side, curb))
            ends_junction.append(ends)
            pairs.setdefault((sec.road_id, sec.section_id), {})[side] = e
    # nodes: merge ends closer than MERGE_DISTANCE
    E = len(polys)
    end_xy = np.array([p[k] for p in polys for k in (0, -1)], dtype=np.float64).reshape(-1, 2)
    parent = list(range(2 * E))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    if E:
        d2 = ((end_xy[:, None, :] - end_xy[None, :, :]) ** 2).sum(axis=2)
        ii, jj = np.nonzero(np.triu(d2 < MERGE_DISTANCE ** 2, 1))
        for i, j in zip(ii.tolist(), jj.tolist()):
            if i // 2 == j // 2:
                continue  # the two ends of one (closed, tiny) edge
            ri, rj = find(i), find(j)
            if ri != rj:
                parent[max(ri, rj)] = min(ri, rj)
    roots = sorted({find(i) for i in range(2 * E)})
    node_of = {r: k for k, r in enumerate(roots)}
    end_node = [node_of[find(i)] for i in range(2 * E)]
    node_xy = [[0.0, 0.0, 0] for _ in roots]
    for i in range(2 * E):
        acc = node_xy[end_node[i]]
        acc[0] += end_xy[i, 0]
        acc[1] += end_xy[i, 1]
        acc[2] += 1
    nodes = np.array([(a / c, b / c) for a, b, c in node_xy], dtype=np.float64).reshape(-1, 2)
    node_junction = np.full(len(nodes), -1, dtype=np.int64)
    # junction groups: (node, road, side) of the ends that touch a junction
    groups: dict[int, list[tuple[int, int, int]]] = {}
    for e in range(E):
        for k in (0, 1):
            jid = ends_junction[e][k]
            if jid >= 0:
                nd = end_node[2 * e + k]
                node_junction[nd] = jid
                groups.setdefault(jid, []).append((nd, meta[e][0], meta[e][1]))
    corners: list[tuple[int, int, np.ndarray | None]] = []
    crossings: list[Crossing] = []
    curb_at = {}
    out_dir: dict[int, np.ndarray] = {}
    for e in range(E):
        p = polys[e]
        for k in (0, 1):
            curb_at[end_node[2 * e + k]] = meta[e][2]
            d = p[0] - p[1] if k == 0 else p[-1] - p[-2]
            out_dir[end_node[2 * e + k]] = d / max(float(np.hypot(*d)), 1e-9)
    for jid, members in sorted(groups.items()):
        members = sorted(set(members))
        if len(members) < 2:
            continue
        c = nodes[[m[0] for m in members]].mean(axis=0)
        ang = [math.atan2(nodes[m[0], 1] - c[1], nodes[m[0], 0] - c[0]) for m in members]
        order = [members[i] for i in np.argsort(ang, kind="stable")]
        n = len(order)
        cyc = [(order[i], order[(i + 1) % n]) for i in range(n if n > 2 else 1)]
        for (na, ra, _), (nb, rb, _) in cyc:
            if na == nb:
                continue
            a, b = nodes[na], nodes[nb]
            L = float(np.hypot(*(b - a)))
            if ra == rb:
                if L > 1e-3:
                    crossings.append(Crossing((float(a[0]), float(a[1])), (float(b[0]), float(b[1])),
                                              na, nb, ra, jid, curb_at[na], curb_at[nb], L))
            elif L <= MAX_CORNER_LENGTH:
                if not _touches_driving(town.map, a, b):
                    corners.append((na, nb, None))
                    continue
                # round a curved corner: walk on along each sidewalk to where they meet
                p = _ray_meet(a, out_dir[na], b, out_dir[nb])
                if p is not None and float(np.hypot(*(p - a)) + np.hypot(*(p - b))) <= MAX_CORNER_LENGTH \
                        and not _touches_driving(town.map, a, p) and not _touches_driving(town.map, p, b):
                    corners.append((na, nb, p))
    # assemble edges
    all_polys = list(polys) + [nodes[[a, b]] if p is None else np.stack([nodes[a], p, nodes[b]])
                               for a, b, p in corners]
    kinds = [SIDEWALK] * E + [CORNER] * len(corners)
    roads = [m[0] for m in meta] + [-1] * len(corners)
    sides = [m[1] for m in meta] + [0] * len(corners)
    curbs = [m[2] for m in meta] + [0.0] * len(corners)
    edge_nodes = [(end_node[2 * e], end_node[2 * e + 1]) for e in range(E)] + [(a, b) for a, b, _ in corners]
    # snap sidewalk ends onto their node so that walkers do not jump
    for e in range(E):
        all_polys[e] = all_polys[e].copy()
        all_polys[e][0] = nodes[edge_nodes[e][0]]
        all_polys[e][-1] = nodes[edge_nodes[e][1]]
    opposite = [-1] * len(all_polys)
    for sides_of in pairs.values():
        if 1 in sides_of and -1 in sides_of:
            opposite[sides_of[1]] = sides_of[-1]
            opposite[sides_of[-1]] = sides_of[1]
    counts = np.array([len(p) for p in all_polys], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64) if len(counts) else \
        np.zeros(0, np.int64)
    points = np.concatenate(all_polys, axis=0) if all_polys else np.zeros((0, 2))
    arcs = []
    for p in all_polys:
        arcs.append(np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(p, axis=0).T))]))
    arclen = np.concatenate(arcs) if arcs else np.zeros(0)
    lengths = np.array([a[-1] for a in arcs], dtype=np.float64)
    node_edges: list[list[tuple[int, int]]] = [[] for _ in range(len(nodes))]
    for e, (a, b) in enumerate(edge_nodes):
        node_edges[a].append((e, 0))
        node_edges[b].append((e, 1))
    node_cross: list[list[int]] = [[] for _ in range(len(nodes))]
    for k, cr in enumerate(crossings):
        node_cross[cr.node_a].append(k)
        node_cross[cr.node_b].append(k)
    net = SidewalkNetwork(
        points=points, arclen=arclen, edge_start=starts, edge_count=counts,
        edge_length=lengths, edge_kind=np.array(kinds, dtype=np.uint8),
        edge_road=np.array(roads, dtype=np.int64), edge_side=np.array(sides, dtype=np.int64),
        edge_curb=np.array(curbs, dtype=np.float64), edge_opposite=np.array(opposite, dtype=np.int64),
        edge_nodes=np.array(edge_nodes, dtype=np.int64).reshape(-1, 2), node_xy=nodes,
        node_junction=node_junction, node_edges=tuple(tuple(x) for x in node_edges),
        crossings=tuple(crossings), node_crossings=tuple(tuple(x) for x in node_cross),
        build_time=time.perf_counter() - t0)
    log.info("sidewalk network of %s: %d sidewalk edges (%.0f m), %d corners, %d crossings "
             "in %.2f s", town.name, E, net.sidewalk_length, len(corners), len(crossings),
             net.build_time)
    return net
