"""Procedural towns: ``procedural:<seed>`` names a generated OpenDRIVE 1.4 road network.

Every town is drawn from ``numpy.random.default_rng(seed)`` (the only source of
randomness) and written as text, so a seed gives byte-identical OpenDRIVE on every
machine and run; it is parsed by ``carla.Map(name, text)`` like every other town
(:func:`drive_il.maps.towns.load_town` resolves the names). :func:`expand_towns` turns a
range ``procedural:0-499`` into its 500 names.

What is generated (OpenDRIVE frame: x east, y north, headings counter-clockwise)
---------------------------------------------------------------------------------
* **Network**: a perturbed grid of 3-5 x 3-4 nodes. Column and row gaps are drawn from
  U(60, 190) m, every node is moved by up to 12 % of its smaller neighbouring gap in x
  and y, so blocks are 40-200 m and junction angles are not all 90 deg (grid arms
  about 70-110 deg apart; 30-150 deg with curved roads and diagonals). Up to a fifth of the edges are removed (every node keeps >= 2 arms; the
  network stays strongly connected, checked on the directed "arm" graph; 3 in 4
  removals only between X junctions): X (4 arms),
  T (3 arms) and L (2 arms) junctions; 0-3 straight diagonal roads across near-square
  cells make 5-way junctions (arms >= 35 deg apart). Every node is an OpenDRIVE
  ``junction``.
* **Roads** between nodes: straight, or curved (35 % of edges) -- a biarc between the
  two junction borders whose end headings deviate 6-30 deg from the chord (a C-curve or,
  1 in 4, an S-curve); arcs of radius about 20-400 m (kept >= 15 m and >= the road's
  half width + 8 m).
* **Junctions**: a connecting road (one driving lane, OpenDRIVE ``laneLink``) per lane
  pair of every allowed movement -- left (innermost lanes), right (outermost lanes),
  straight (lane k -> lane k); no U-turns; one-way arms only in their direction; every
  incoming lane has an exit and every outgoing lane an entry. A connecting road is
  line-arc-line (its arc's tangent length is 55-100 % of the room the junction leaves,
  so arcs start 0-5 m after the entry, as in Town01/02) or a biarc when the lanes
  barely turn. The junction border sits past the crossing roads' carriageways plus a
  random 0.6-8 m; a junction whose turns come out tighter than :data:`MIN_TURN_RADIUS`
  (lane centre; more for turns sharper than 90 deg) grows by 0.5 m steps. Lane-centre
  radii over seeds 0-49: right turns 3.0 m to 20+ m (median 6.1 m), left turns 5.3 m to
  20+ m (median 12 m); hairpins between arms < 60 deg apart take the widest arc; Town01: right 4.5-6.9 m, left 8.8-11.2 m; Town02: right
  2.7-5.3 m, left 5.4-9.1 m (``drive-il maps turns Town01 Town02 procedural:0-49``
  prints them side by side). Connecting lanes whose two ends differ in width ease
  between them with a cubic of zero end slopes (no kink at the joins).
* **Cross-sections** (per road; per side for the outer lanes): 1-3 driving lanes per
  direction (weights 55/33/12 %), lane width U(2.8, 4.0) m (Town01/02's lanes are
  4.0 m); up to 15-30 % one-way roads (drawn per town, kept only while the network
  stays strongly connected); medians (type
  ``median``, 0.6-2.0 m, 25 % of multi-lane two-way roads); parking lanes (``parking``,
  2.0-2.6 m, 20 % per side); a shoulder with a curb (``shoulder`` 0.3-1.2 m, as CARLA's
  towns) or a ``border`` curb lane (0.15-0.3 m); a sidewalk (1.5-4.0 m, 90 %).
* **Roundabouts**: 0-2 per town (about 1 town in 2 has one) replace a node of 3-4 arms
  spread >= 70 deg apart: a one-lane ring (3.5-4.0 m) turning counter-clockwise around
  an island (``median`` inside a ``border`` curb) of radius 8-16 m, one OpenDRIVE
  junction per arm spanning +-20-45 deg of the ring (ring, entry and exit connecting
  roads; entries and exits are biarcs with lane-centre radii >= 5 m), one-way ring
  roads between them.
* **Marks** (OpenDRIVE 1.4 ``roadMark`` on each lane's outer border; lane types
  ``driving``, ``median``, ``parking``, ``shoulder``, ``border``, ``sidewalk`` as
  ``carla.Map`` reads them):
  centre line broken white, solid yellow, double yellow (``solid solid``), broken
  yellow (Town01/02's centre line) or none; broken white between lanes of one direction
  (``laneChange="both"``, so the lane graph offers lane changes); solid white or no edge
  line; solid yellow at a median; ``curb`` on shoulders and borders; none on sidewalks
  and in junctions. Speed limits (``<type><speed>``) 30-60 km/h.

Not generated (yet): highways with ramps, multi-lane roundabouts,
elevation, lane-count changes inside a road, signals and objects.

Sources: CARLA's Town01/Town02 OpenDRIVE files (lane widths, centre and edge marks,
shoulder with curb and sidewalk) and their junction turns measured by ``drive-il maps
turns``; the ASAM OpenDRIVE 1.4 element set (planView lines/arcs, lanes, roadMark,
junction/connection/laneLink) as written by :mod:`drive_il.maps.opendrive_gen`.

Measured (2 shared cores, seeds 0-49): generation 0.03 s a town (max 0.1 s; 0.26 s
worst over 200 seeds), ``carla.Map`` parse 0.04 s, lane graph 0.04 s, map geometry
0.2 s; the embedded world's raster (5 cm) about 1.4 s and 130 MiB a town.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np

from ..errors import MapError
from .opendrive_gen import _advance, _document, _f, _plan_view, _road_link, _Seg

__all__ = [
    "MAX_SEED",
    "PREFIX",
    "Layout",
    "expand_towns",
    "generate",
    "generate_layout",
    "is_procedural",
    "parse_seed",
    "town_name",
]

PREFIX = "procedural:"
"""Town names ``procedural:<seed>`` resolve to generated towns."""
MAX_SEED = 2**63 - 1
"""Largest seed accepted."""
MAX_RANGE = 100_000
"""Most towns one range may name."""

MARK_WIDTH = 0.15
_SEED_RE = re.compile(r"^(\d+)$")
_RANGE_RE = re.compile(r"^(-?\d+)\s*-\s*(-?\d+)$")


# --------------------------------------------------------------------------- names
def is_procedural(name: str) -> bool:
    """True if ``name`` uses the ``procedural:`` prefix (case-insensitive)."""
    return isinstance(name, str) and name.strip().lower().startswith(PREFIX)


def town_name(seed: int) -> str:
    """The canonical name of the town of ``seed``: ``procedural:<seed>``."""
    return f"{PREFIX}{int(seed)}"


def _check_seed(text: str, spec: str) -> int:
    t = text.strip()
    if t.startswith("-") and t[1:].isdigit():
        raise MapError(f"bad town {spec!r}: the seed must be >= 0, got {t}")
    if not _SEED_RE.match(t):
        raise MapError(f"bad town {spec!r}: expected procedural:<seed> with an integer seed >= 0 "
                       f"(e.g. procedural:17) or a range procedural:<first>-<last>, got {t!r}")
    seed = int(t)
    if seed > MAX_SEED:
        raise MapError(f"bad town {spec!r}: the seed must be <= {MAX_SEED}")
    return seed


def parse_seed(name: str) -> int:
    """The seed of ``procedural:<seed>``.

    Raises:
        MapError: not a procedural name, a seed that is not an integer >= 0, or a range.
    """
    if not is_procedural(name):
        raise MapError(f"bad town {name!r}: not a procedural:<seed> name")
    rest = name.strip()[len(PREFIX):].strip()
    if _RANGE_RE.match(rest) and not rest.startswith("-"):
        raise MapError(f"bad town {name!r}: a range names several towns; load one seed "
                       f"(e.g. {PREFIX}{rest.split('-')[0].strip()})")
    return _check_seed(rest, name)


def expand_towns(spec: str) -> list[str]:
    """The town names a spec stands for.

    ``procedural:<a>-<b>`` (inclusive, a <= b) -> ``["procedural:a", ..., "procedural:b"]``;
    ``procedural:<seed>`` -> its canonical name; any other name -> ``[name]`` (resolved
    later by :func:`drive_il.maps.towns.load_town`).

    Raises:
        MapError: an empty name, a bad seed, a negative seed, a reversed range or one of
            more than :data:`MAX_RANGE` towns (one-line messages).
    """
    if not isinstance(spec, str) or not spec.strip():
        raise MapError(f"town name must be a non-empty string, got {spec!r}")
    spec = spec.strip()
    if not is_procedural(spec):
        return [spec]
    rest = spec[len(PREFIX):].strip()
    m = _RANGE_RE.match(rest)
    if m and not rest.startswith("-"):
        first, last = _check_seed(m.group(1), spec), _check_seed(m.group(2), spec)
        if last < first:
            raise MapError(f"bad town range {spec!r}: empty (last seed {last} < first {first}); "
                           f"write procedural:{last}-{first}")
        if last - first + 1 > MAX_RANGE:
            raise MapError(f"bad town range {spec!r}: {last - first + 1} towns, at most {MAX_RANGE}")
        return [town_name(s) for s in range(first, last + 1)]
    return [town_name(_check_seed(rest, spec))]


# --------------------------------------------------------------------------- geometry
def _wrap(a: float) -> float:
    return (a + math.pi) % (2.0 * math.pi) - math.pi


def _unit(h: float) -> np.ndarray:
    return np.array([math.cos(h), math.sin(h)])


def _right(h: float) -> np.ndarray:
    """Unit normal to the right of heading ``h``."""
    return np.array([math.sin(h), -math.cos(h)])


def _cross(a: np.ndarray, b: np.ndarray) -> float:
    return float(a[0] * b[1] - a[1] * b[0])


def _arc_to(p: np.ndarray, h: float, q: np.ndarray) -> _Seg | None:
    """The arc (or line) leaving ``p`` with heading ``h`` that reaches ``q``."""
    c = q - p
    L = float(np.hypot(*c))
    if L < 1e-9:
        return None
    t = _unit(h)
    phi = math.atan2(_cross(t, c), float(t @ c))
    if abs(phi) < 1e-9:
        return _Seg(L)
    return _Seg(L * phi / math.sin(phi), 2.0 * math.sin(phi) / L)


def _biarc(p0: np.ndarray, h0: float, p1: np.ndarray, h1: float) -> list[_Seg]:
    """Two arcs (equal tangent lengths) from pose (p0, h0) to pose (p1, h1), G1."""
    t0, t1 = _unit(h0), _unit(h1)
    v = p1 - p0
    t = t0 + t1
    vt, vv, den = float(v @ t), float(v @ v), 2.0 * (1.0 - float(t0 @ t1))
    root = math.sqrt(vt * vt + den * vv)
    if vt > 0.0:
        d = vv / (vt + root)  # the same root, without cancellation for near-parallel tangents
    else:
        d = (-vt + root) / den
    q0, q1 = p0 + d * t0, p1 - d * t1
    pm = 0.5 * (q0 + q1)
    hm = math.atan2(*(q1 - q0)[::-1])
    segs = [s for s in (_arc_to(p0, h0, pm), _arc_to(pm, hm, p1)) if s is not None]
    if len(segs) == 2 and segs[0].curvature == 0.0 and segs[1].curvature == 0.0:
        segs = [_Seg(segs[0].length + segs[1].length)]
    return segs


def _turn(p0: np.ndarray, h0: float, p1: np.ndarray, h1: float, frac: float) -> list[_Seg]:
    """Line-arc-line from (p0, h0) to (p1, h1) (the arc's tangent length ``frac`` of the
    room the rays leave), or a biarc when the rays do not meet ahead of both poses."""
    theta = _wrap(h1 - h0)
    t0, t1 = _unit(h0), _unit(h1)
    det = _cross(t0, t1)
    if abs(theta) > math.radians(12.0) and abs(det) > 1e-6:
        v = p1 - p0
        a, b = _cross(v, t1) / det, _cross(t0, v) / det
        if a > 0.05 and b > 0.05:
            T = min(a, b) * frac
            R = T / math.tan(abs(theta) / 2.0)
            segs = []
            if a - T > 1e-6:
                segs.append(_Seg(a - T))
            segs.append(_Seg(abs(theta) * R, math.copysign(1.0 / R, theta)))
            if b - T > 1e-6:
                segs.append(_Seg(b - T))
            return segs
    return _biarc(p0, h0, p1, h1)


def _end(p: np.ndarray, h: float, segs: list[_Seg]) -> tuple[np.ndarray, float]:
    x, y = float(p[0]), float(p[1])
    for s in segs:
        x, y, h = _advance(x, y, h, s)
    return np.array([x, y]), h


# --------------------------------------------------------------------------- layout
@dataclass
class Side:
    """The lanes outside the driving lanes on one side of a road, inside out."""

    parking: float = 0.0     # parking lane width [m], 0 = none
    curb_kind: str = "shoulder"  # "shoulder" or "border"
    curb: float = 0.5        # its width [m]
    sidewalk: float = 2.0    # sidewalk width [m], 0 = none


@dataclass
class Edge:
    """A road between two nodes (``a`` < ``b``); s runs a -> b, or in the travel
    direction of a one-way road (``oneway`` = +1: a -> b, -1: b -> a, 0: two-way)."""

    a: int
    b: int
    lanes: int = 1
    width: float = 3.5
    median: float = 0.0
    oneway: int = 0
    centre: tuple[str, str] = ("broken", "white")
    edge_mark: tuple[str, str] = ("solid", "white")
    sides: tuple[Side, Side] = (Side(), Side())    # (right, left) of the s direction
    speed: int = 50
    bend: tuple[float, float] = (0.0, 0.0)         # heading deviation at a / at b [rad]
    segs: list[_Seg] = field(default_factory=list)  # planView (set by the layout)
    start: tuple[float, float, float] = (0.0, 0.0, 0.0)  # its start pose (x, y, hdg)

    def half(self) -> float:
        """Half width of the carriageway (driving lanes, median) on its wider side [m]."""
        return self.median + self.lanes * self.width

    def outer(self) -> float:
        """Half width of the whole road (with parking, curb, sidewalk) on its wider side [m]."""
        return self.half() + max(sd.parking + sd.curb + sd.sidewalk for sd in self.sides)

    def min_arc_radius(self) -> float:
        """Smallest radius [m] the road's reference line may curve with."""
        return max(ROAD_MIN_RADIUS, self.outer() + 8.0)

    def drives(self, frm: int, to: int) -> bool:
        """Whether traffic may drive from node ``frm`` to node ``to`` along this edge."""
        if self.oneway == 0:
            return True
        return (frm, to) == ((self.a, self.b) if self.oneway > 0 else (self.b, self.a))


@dataclass
class Arm:
    """One road at a junction: heading (outwards), border distance, lanes in/out."""

    edge: int
    heading: float
    border: float = 0.0
    road: int = -1
    contact: str = "start"
    lanes_in: list[int] = field(default_factory=list)   # lane ids, innermost first
    lanes_out: list[int] = field(default_factory=list)
    junction: int = -1                                   # OpenDRIVE junction id at this end


@dataclass
class Conn:
    """One connecting road (a single driving lane -1) of an OpenDRIVE junction."""

    kind: str
    pred: tuple[int, str, int]     # (road id, contact point, lane id) it comes from
    succ: tuple[int, str, int]     # (road id, contact point, lane id) it leads to
    start: tuple[float, float, float]
    segs: list[_Seg]
    widths: tuple[float, float]    # lane width at the start, at the end [m]
    speed: int


@dataclass
class RingRoad:
    """A one-way arc of a roundabout between two of its junctions (lane -1 outwards)."""

    road: int
    start: tuple[float, float, float]
    segs: list[_Seg]
    width: float
    island: float                  # width of the island (median) lane inside [m]
    pred_junction: int
    succ_junction: int


@dataclass
class Roundabout:
    """A roundabout replacing a node: ring of inner radius ``r_in``, one lane of
    ``width`` turning counter-clockwise, one junction per arm spanning +-``beta``."""

    node: int
    r_in: float
    width: float
    beta: float
    roads: list[RingRoad] = field(default_factory=list)
    conns: dict[int, list[Conn]] = field(default_factory=dict)   # junction id -> its roads


@dataclass
class Turn:
    """One connecting lane of a junction: from lane ``k`` of arm ``a`` to lane ``j`` of
    arm ``b`` (indices into the node's arms; lanes 1-based from the centre)."""

    a: int
    k: int
    b: int
    j: int
    kind: str                  # "left", "right" or "straight"
    start: np.ndarray          # reference line start (the lane's left edge) [m]
    heading: float             # [rad]
    segs: list[_Seg]
    width: float               # the wider of the lane's two end widths [m]

    def min_radius(self) -> float:
        """Smallest radius of the lane's centre [m] (inf when straight): the reference
        line is the lane's left edge, so a right arc's centre radius is its radius
        minus half the lane width, a left arc's plus."""
        r = math.inf
        for s in self.segs:
            if s.curvature != 0.0:
                r = min(r, 1.0 / abs(s.curvature) - math.copysign(0.5 * self.width, -s.curvature))
        return r

    def angle(self) -> float:
        """Heading change [rad], > 0 left."""
        return sum(s.length * s.curvature for s in self.segs)


@dataclass
class Layout:
    """The drawn network of one seed (for tests and statistics)."""

    seed: int
    nodes: np.ndarray                          # (n, 2) node positions [m]
    edges: list[Edge]
    arms: dict[int, list[Arm]]                 # node -> its arms
    turn_frac: dict[int, float]                # node -> tangent-length fraction of its turns
    turns: dict[int, list[Turn]] = field(default_factory=dict)  # node -> connecting lanes
    roundabouts: dict[int, Roundabout] = field(default_factory=dict)  # node -> its roundabout
    _conn_id: int = 10000

    def next_conn_id(self, n: int) -> int:
        """Reserve ``n`` connecting-road ids; returns the first."""
        first, self._conn_id = self._conn_id, self._conn_id + n
        return first

    def junction_angles(self) -> list[float]:
        """Angles [deg] between angularly adjacent arms of every junction."""
        out = []
        for arms in self.arms.values():
            hs = sorted(a.heading % (2 * math.pi) for a in arms)
            for i, h in enumerate(hs):
                nxt = hs[(i + 1) % len(hs)] + (2 * math.pi if i + 1 == len(hs) else 0.0)
                out.append(math.degrees(nxt - h))
        return out


def _strongly_connected(n_nodes: int, edges: list[Edge], active: list[bool]) -> bool:
    """Whether every (edge, direction) state reaches every other without U-turns."""
    at: dict[int, list[int]] = {i: [] for i in range(n_nodes)}
    for k, e in enumerate(edges):
        if active[k]:
            at[e.a].append(k)
            at[e.b].append(k)
    states = [(k, frm, to) for k, e in enumerate(edges) if active[k]
              for frm, to in ((e.a, e.b), (e.b, e.a)) if e.drives(frm, to)]
    if not states:
        return False
    index = {s: i for i, s in enumerate(states)}
    succ: list[list[int]] = [[] for _ in states]
    pred: list[list[int]] = [[] for _ in states]
    for i, (k, _frm, to) in enumerate(states):
        for k2 in at[to]:
            if k2 == k:
                continue
            e2 = edges[k2]
            other = e2.b if e2.a == to else e2.a
            j = index.get((k2, to, other))
            if j is not None:
                succ[i].append(j)
                pred[j].append(i)

    def reach(graph: list[list[int]]) -> int:
        seen, stack = {0}, [0]
        while stack:
            for v in graph[stack.pop()]:
                if v not in seen:
                    seen.add(v)
                    stack.append(v)
        return len(seen)

    # every node must be on the network too
    if any(not at[i] for i in range(n_nodes)):
        return False
    return reach(succ) == len(states) and reach(pred) == len(states)


def _pick(rng: np.random.Generator, items, p):
    return items[int(rng.choice(len(items), p=p))]


def _draw_edge(rng: np.random.Generator, a: int, b: int) -> Edge:
    lanes = int(rng.choice([1, 2, 3], p=[0.55, 0.33, 0.12]))
    width = round(float(rng.uniform(2.8, 4.0)) / 0.05) * 0.05
    median = round(float(rng.uniform(0.6, 2.0)), 2) if lanes >= 2 and rng.random() < 0.25 else 0.0
    centre = _pick(rng, [("broken", "white"), ("solid", "yellow"), ("solid solid", "yellow"),
                         ("broken", "yellow"), ("none", "white")], [0.3, 0.2, 0.25, 0.15, 0.1])
    if centre[0] == "none" and lanes > 1:
        centre = ("solid solid", "yellow")
    edge_mark = ("solid", "white") if rng.random() < 0.6 else ("none", "white")
    sides = []
    for _ in range(2):
        parking = round(float(rng.uniform(2.0, 2.6)), 2) if rng.random() < 0.2 else 0.0
        if rng.random() < 0.65:
            kind, curb = "shoulder", round(float(rng.uniform(0.3, 1.2)), 2)
        else:
            kind, curb = "border", round(float(rng.uniform(0.15, 0.3)), 2)
        sidewalk = round(float(rng.uniform(1.5, 4.0)), 2) if rng.random() < 0.9 else 0.0
        sides.append(Side(parking, kind, curb, sidewalk))
    speed = int(rng.choice([30, 40, 50, 60], p=[0.25, 0.3, 0.3, 0.15]))
    if lanes == 1 and speed == 60:
        speed = 50
    return Edge(a, b, lanes, width, median, 0, centre, edge_mark, (sides[0], sides[1]), speed)


ROAD_MIN_RADIUS = 15.0
"""Smallest arc radius of a road between junctions [m] (Town01's tightest road curves)."""
MIN_TURN_RADIUS = 3.0
"""Smallest radius [m] of a 90 deg junction turn's lane centre (Town02's tightest right
turns: 2.7 m on the route); sharper turns get more (x (angle / 90 deg)^2, at most 2x)."""


def _min_radius(t: Turn) -> float:
    if t.kind == "straight":
        return 2.5 * MIN_TURN_RADIUS   # lane shifts across a junction: gentle S-curves
    return min(MIN_TURN_RADIUS * max(1.0, abs(t.angle()) / (math.pi / 2)) ** 2, 2.0 * MIN_TURN_RADIUS)


def _junction_turns(node: np.ndarray, av: list[Arm], edges: list[Edge], frac: float) -> list[Turn]:
    """The connecting lanes of one junction (see :func:`_lane_pairs`)."""
    moves = {(ia, ib): _classify(_wrap(b.heading - a.heading - math.pi))
             for ia, a in enumerate(av) if a.lanes_in
             for ib, b in enumerate(av) if ib != ia and b.lanes_out}
    n_in = {ia: len(a.lanes_in) for ia, a in enumerate(av) if a.lanes_in}
    n_out = {ib: len(b.lanes_out) for ib, b in enumerate(av) if b.lanes_out}
    out = []
    for ia, k, ib, j in sorted(_lane_pairs(moves, n_in, n_out)):
        a, b = av[ia], av[ib]
        ea, eb = edges[a.edge], edges[b.edge]
        travel_in = _wrap(a.heading + math.pi)
        p0 = node + a.border * _unit(a.heading) + (ea.median + (k - 1) * ea.width) * _right(travel_in)
        p1 = node + b.border * _unit(b.heading) + (eb.median + (j - 1) * eb.width) * _right(b.heading)
        sharp = abs(_wrap(b.heading - travel_in)) > math.radians(120.0)
        segs = _turn(p0, travel_in, p1, b.heading, 1.0 if sharp else frac)  # hairpins: widest arc
        q, hq = _end(p0, travel_in, segs)
        assert float(np.hypot(*(q - p1))) < 1e-6 and abs(_wrap(hq - b.heading)) < 1e-6
        out.append(Turn(ia, k, ib, j, moves[(ia, ib)], p0, travel_in, segs, max(ea.width, eb.width)))
    return out


def _adjacent_headings(av: list[Arm]) -> list[tuple[float, float]]:
    """(heading, next heading counter-clockwise) of each arm."""
    hs = sorted(a.heading % (2 * math.pi) for a in av)
    return [(h, hs[(i + 1) % len(hs)]) for i, h in enumerate(hs)]


RING_TURN_MIN_RADIUS = 5.0
"""Smallest lane-centre radius [m] of a roundabout entry or exit."""


def _ring_pose(c: np.ndarray, r: float, ang: float) -> tuple[np.ndarray, float]:
    """Point of the circle (c, r) at polar angle ``ang`` and the counter-clockwise tangent."""
    return c + r * _unit(ang), _wrap(ang + math.pi / 2)


def _rb_turns(c: np.ndarray, av: list[Arm], edges: list[Edge], r_in: float, width: float,
              beta: float) -> list[tuple[int, str, int, np.ndarray, float, list[_Seg]]] | None:
    """Entries and exits of every arm: (arm index, "entry"/"exit", lane index, start,
    heading, segs); None when one is too tight."""
    out = []
    for ia, a in enumerate(av):
        e = edges[a.edge]
        phi = a.heading
        travel_in = _wrap(phi + math.pi)
        for k in range(1, len(a.lanes_in) + 1):
            p0 = c + a.border * _unit(phi) + (e.median + (k - 1) * e.width) * _right(travel_in)
            p1, h1 = _ring_pose(c, r_in, phi + beta)
            segs = _biarc(p0, travel_in, p1, h1)
            t = Turn(ia, k, -1, 1, "right", p0, travel_in, segs, max(e.width, width))
            if t.min_radius() < RING_TURN_MIN_RADIUS or abs(t.angle()) > math.radians(150):
                return None
            out.append((ia, "entry", k, p0, travel_in, segs))
        for j in range(1, len(a.lanes_out) + 1):
            p0, h0 = _ring_pose(c, r_in, phi - beta)
            p1 = c + a.border * _unit(phi) + (e.median + (j - 1) * e.width) * _right(phi)
            segs = _biarc(p0, h0, p1, phi)
            t = Turn(-1, 1, ia, j, "right", p0, h0, segs, max(e.width, width))
            if t.min_radius() < RING_TURN_MIN_RADIUS or abs(t.angle()) > math.radians(150):
                return None
            out.append((ia, "exit", j, p0, h0, segs))
    return out


def _roundabout(rng: np.random.Generator, v: int, c: np.ndarray, av: list[Arm],
                edges: list[Edge], room: list[float]) -> Roundabout | None:
    """Draw a roundabout for node ``v`` (sets its arms' borders and junctions), or None
    when none fits its arms."""
    r_in = float(rng.uniform(8.0, 16.0))
    width = round(float(rng.uniform(3.5, 4.0)) / 0.05) * 0.05
    gap = min((b - a) % (2 * math.pi) for a, b in _adjacent_headings(av))
    saved = [a.border for a in av]
    for grow in np.arange(0.0, 12.0, 1.0):
        for a in av:
            a.border = r_in + width + 4.0 + 0.6 * edges[a.edge].half() + float(grow)
        if any(a.border > r for a, r in zip(av, room)):
            break
        for beta_deg in range(20, 46, 5):
            beta = math.radians(beta_deg)
            # the ring road between two junctions keeps >= 3 m
            if (gap - 2 * beta) * r_in < 3.0:
                break
            if _rb_turns(c, av, edges, r_in, width, beta) is not None:
                for i, a in enumerate(sorted(av, key=lambda a: a.heading % (2 * math.pi))):
                    a.junction = 5000 + 10 * v + i
                return Roundabout(v, r_in, width, beta)
    for a, b in zip(av, saved):
        a.border = b
    return None


def _roundabout_roads(rb: Roundabout, c: np.ndarray, av: list[Arm], edges: list[Edge], rid: int) -> int:
    """Draw the ring roads (ids from ``rid``) and each junction's connecting roads of
    ``rb``; returns the next free road id."""
    order = sorted(range(len(av)), key=lambda i: av[i].heading % (2 * math.pi))
    n = len(order)
    ring_speed = 30
    before: dict[int, RingRoad] = {}
    after: dict[int, RingRoad] = {}
    for pos, ia in enumerate(order):
        ib = order[(pos + 1) % n]
        a0 = av[ia].heading + rb.beta
        sweep = (av[ib].heading - rb.beta - a0) % (2 * math.pi)
        p0, h0 = _ring_pose(c, rb.r_in, a0)
        rr = RingRoad(rid, (float(p0[0]), float(p0[1]), h0), [_Seg(sweep * rb.r_in, 1.0 / rb.r_in)],
                      rb.width, max(rb.r_in - 1.3, 1.0), av[ia].junction, av[ib].junction)
        rid += 1
        rb.roads.append(rr)
        after[ia] = before[ib] = rr
    turns = _rb_turns(c, av, edges, rb.r_in, rb.width, rb.beta) or []
    for ia in order:
        a = av[ia]
        e = edges[a.edge]
        p0, h0 = _ring_pose(c, rb.r_in, a.heading - rb.beta)
        conns = [Conn("ring", (before[ia].road, "end", -1), (after[ia].road, "start", -1),
                      (float(p0[0]), float(p0[1]), h0), [_Seg(2 * rb.beta * rb.r_in, 1.0 / rb.r_in)],
                      (rb.width, rb.width), ring_speed)]
        for ia2, kind, k, start, h, segs in turns:
            if ia2 != ia:
                continue
            st = (float(start[0]), float(start[1]), h)
            if kind == "entry":
                conns.append(Conn("entry", (a.road, a.contact, a.lanes_in[k - 1]),
                                  (after[ia].road, "start", -1), st, segs, (e.width, rb.width), ring_speed))
            else:
                conns.append(Conn("exit", (before[ia].road, "end", -1),
                                  (a.road, a.contact, a.lanes_out[k - 1]), st, segs, (rb.width, e.width), ring_speed))
        rb.conns[a.junction] = conns
    return rid


class _Retry(Exception):
    """A drawn network does not fit (a road too short for its junctions): draw again."""


def generate_layout(seed: int) -> Layout:
    """Draw the network of ``seed`` (nodes, roads, cross-sections, junction borders).

    All randomness comes from ``numpy.random.default_rng(seed)``; a network that does
    not fit is drawn again from the same generator (rare; deterministic).
    """
    rng = np.random.default_rng(int(seed))
    for _ in range(50):
        try:
            return _draw_layout(rng, int(seed))
        except _Retry:
            continue
    raise MapError(f"procedural:{seed}: no road network fits after 50 draws")  # pragma: no cover


def _draw_layout(rng: np.random.Generator, seed: int) -> Layout:
    nx, ny = int(rng.integers(3, 6)), int(rng.integers(3, 5))
    gx = np.concatenate([[0.0], np.cumsum(rng.uniform(60.0, 190.0, nx - 1))])
    gy = np.concatenate([[0.0], np.cumsum(rng.uniform(60.0, 190.0, ny - 1))])
    dxs, dys = np.diff(gx), np.diff(gy)
    nodes = np.zeros((nx * ny, 2))
    for j in range(ny):
        for i in range(nx):
            mx = min(dxs[max(i - 1, 0)], dxs[min(i, nx - 2)])
            my = min(dys[max(j - 1, 0)], dys[min(j, ny - 2)])
            nodes[j * nx + i] = (gx[i] + rng.uniform(-0.12, 0.12) * mx,
                                 gy[j] + rng.uniform(-0.12, 0.12) * my)
    edges: list[Edge] = []
    for j in range(ny):
        for i in range(nx):
            k = j * nx + i
            if i + 1 < nx:
                edges.append(_draw_edge(rng, k, k + 1))
            if j + 1 < ny:
                edges.append(_draw_edge(rng, k, k + nx))
    # diagonal roads across near-square inner cells: 5-way junctions (>= 35 deg between arms)
    n_diag = int(rng.choice([0, 1, 2, 3], p=[0.25, 0.35, 0.25, 0.15]))
    n_grid = len(edges)
    used: set[int] = set()
    for c in rng.permutation((nx - 1) * (ny - 1)):
        if n_diag <= 0:
            break
        i, j = int(c) % (nx - 1), int(c) // (nx - 1)
        ends = (j * nx + i, (j + 1) * nx + i + 1) if rng.random() < 0.5 else \
            (j * nx + i + 1, (j + 1) * nx + i)
        if used & set(ends):
            continue
        d = nodes[ends[1]] - nodes[ends[0]]
        h = math.atan2(d[1], d[0])
        if min(abs(_wrap(h - g)) for g in np.arange(4) * math.pi / 2) < math.radians(35.0):
            continue
        e = _draw_edge(rng, *sorted(ends))
        e.lanes = min(e.lanes, 2)
        edges.append(e)
        used.update(ends)
        n_diag -= 1
    n = len(nodes)
    active = [True] * len(edges)

    def degree(v: int) -> int:
        return sum(1 for k, e in enumerate(edges) if active[k] and v in (e.a, e.b))

    # remove edges (T and L junctions), keeping >= 2 arms per node and strong connectivity
    removal = float(rng.uniform(0.0, 0.2))
    for k in rng.permutation(n_grid):  # grid edges only: diagonals stay
        if sum(1 for x in active if not x) >= removal * n_grid:
            break
        e = edges[k]
        # mostly between X junctions (they become T), sometimes at the border (-> L)
        floor = 3 if rng.random() < 0.75 else 2
        if degree(e.a) <= floor or degree(e.b) <= floor:
            continue
        active[k] = False
        if not _strongly_connected(n, edges, active):
            active[k] = True
    # one-way roads
    oneway_share = float(rng.uniform(0.15, 0.3))
    n_active = sum(active)
    for k in rng.permutation(len(edges)):
        if not active[k]:
            continue
        if sum(1 for e, a in zip(edges, active) if a and e.oneway) >= oneway_share * n_active:
            break
        e = edges[k]
        e.oneway = 1 if rng.random() < 0.5 else -1
        if not _strongly_connected(n, edges, active):
            e.oneway = 0
        else:
            e.median = 0.0
            e.centre = ("solid", "yellow") if rng.random() < 0.6 else ("solid", "white")
    edges = [e for e, a in zip(edges, active) if a]

    # curved roads: heading deviation at both ends (C: symmetric, S: same sign)
    # (the deviation is capped so the arcs stay >= min_arc_radius with 25 m junctions)
    for e in edges:
        if rng.random() < 0.35:
            dev = math.radians(float(rng.uniform(6.0, 30.0)))
            s_curve = rng.random() < 0.25
            chord = float(np.hypot(*(nodes[e.b] - nodes[e.a]))) - 50.0
            cap = chord / ((4.0 if s_curve else 2.0) * e.min_arc_radius())
            dev = min(dev, math.asin(min(cap, 1.0))) * (1 if rng.random() < 0.5 else -1)
            e.bend = (dev, dev if s_curve else -dev)
    # arms; straighten bends that squeeze two arms of a node under 55 deg
    for _ in range(10):
        arms: dict[int, list[Arm]] = {v: [] for v in range(n)}
        for k, e in enumerate(edges):
            chord = nodes[e.b] - nodes[e.a]
            h = math.atan2(chord[1], chord[0])
            arms[e.a].append(Arm(k, _wrap(h + e.bend[0])))
            arms[e.b].append(Arm(k, _wrap(h + math.pi - e.bend[1])))
        bad = set()
        for v, av in arms.items():
            for i, a in enumerate(av):
                for b in av[i + 1:]:
                    ea, eb = edges[a.edge], edges[b.edge]
                    if ea.bend == (0.0, 0.0) and eb.bend == (0.0, 0.0):
                        continue  # straight roads (diagonals) keep their angle
                    if abs(_wrap(a.heading - b.heading)) < math.radians(55.0):
                        bad.update((a.edge, b.edge))
        if not bad:
            break
        for k in bad:
            edges[k].bend = (0.0, 0.0)
    # junction borders: past the crossing carriageways + margin, plus a random extra
    turn_frac: dict[int, float] = {}
    for v, av in arms.items():
        extra = float(rng.uniform(0.6, 3.0)) if rng.random() < 0.6 else float(rng.uniform(3.0, 8.0))
        turn_frac[v] = float(rng.uniform(0.55, 1.0))
        for a in av:
            need = edges[a.edge].half() + 1.0
            for b in av:
                if b is a:
                    continue
                alpha = abs(_wrap(a.heading - b.heading))
                if alpha > math.radians(155.0):
                    continue
                ha, hb = edges[a.edge].half() + 0.3, edges[b.edge].half() + 0.3
                need = max(need, (ha * math.cos(alpha) + hb) / math.sin(alpha))
            a.border = need + extra
    # lanes at each arm (road id = edge index; s runs a -> b, or along a one-way road)
    for k, e in enumerate(edges):
        arm_a = next(a for a in arms[e.a] if a.edge == k)
        arm_b = next(a for a in arms[e.b] if a.edge == k)
        first, last = (arm_a, arm_b) if e.oneway >= 0 else (arm_b, arm_a)
        off = 1 if e.median else 0
        ids = list(range(1 + off, e.lanes + 1 + off))
        first.road, first.contact = k, "start"
        last.road, last.contact = k, "end"
        last.lanes_in = [-i for i in ids]
        first.lanes_out = [-i for i in ids]
        if not e.oneway:
            first.lanes_in = list(ids)
            last.lanes_out = list(ids)
    for v, av in arms.items():
        for a in av:
            a.junction = 1000 + v
    # roundabouts: 0-2 nodes of 3-4 well-spread arms
    roundabouts: dict[int, Roundabout] = {}
    n_rb = int(rng.choice([0, 1, 2], p=[0.4, 0.45, 0.15]))
    cands = [v for v in sorted(arms) if len(arms[v]) >= 3 and min(
        (b - a) % (2 * math.pi) for a, b in _adjacent_headings(arms[v])) > math.radians(70.0)]
    for v in (rng.permutation(cands)[:n_rb] if cands else []):
        room = []
        for a in arms[int(v)]:
            e = edges[a.edge]
            other = next(b for b in arms[e.b if e.a == int(v) else e.a] if b.edge == a.edge)
            room.append(float(np.hypot(*(nodes[e.b] - nodes[e.a]))) - other.border - 25.0)
        rb = _roundabout(rng, int(v), nodes[int(v)], arms[int(v)], edges, room)
        if rb is not None:
            roundabouts[int(v)] = rb
    # connecting lanes; a junction whose turns are too tight for a car grows
    turns: dict[int, list[Turn]] = {}
    for v, av in arms.items():
        if v in roundabouts:
            continue
        for _ in range(40):
            turns[v] = _junction_turns(nodes[v], av, edges, turn_frac[v])
            if all(t.min_radius() >= _min_radius(t) for t in turns[v]):
                break
            for a in av:
                a.border += 0.5
        else:
            raise _Retry
    # every road >= 15 m long, its arcs no tighter than its width allows
    for k, e in enumerate(edges):
        arm_a = next(a for a in arms[e.a] if a.edge == k)
        arm_b = next(a for a in arms[e.b] if a.edge == k)
        span = float(np.hypot(*(nodes[e.b] - nodes[e.a])))
        if arm_a.border + arm_b.border + 15.0 > span:
            raise _Retry
        first, last = (arm_a, arm_b) if e.oneway >= 0 else (arm_b, arm_a)
        n0, n1 = (e.a, e.b) if e.oneway >= 0 else (e.b, e.a)
        p0 = nodes[n0] + first.border * _unit(first.heading)
        p1 = nodes[n1] + last.border * _unit(last.heading)
        e.segs = _biarc(p0, first.heading, p1, _wrap(last.heading + math.pi))
        e.start = (float(p0[0]), float(p0[1]), first.heading)
        if any(sg.curvature and 1.0 / abs(sg.curvature) < e.min_arc_radius() for sg in e.segs):
            raise _Retry
    # ring roads get ids after the edges'
    rid = len(edges)
    for v in sorted(roundabouts):
        rid = _roundabout_roads(roundabouts[v], nodes[v], arms[v], edges, rid)
    return Layout(int(seed), nodes, edges, arms, turn_frac, turns, roundabouts)


# --------------------------------------------------------------------------- XML
def _mark(kind: str, color: str) -> str:
    change = "both" if kind == "broken" else "none"
    width = f' width="{_f(MARK_WIDTH)}"' if kind != "none" else ""
    return (f'<roadMark sOffset="0" type="{kind}" weight="standard" color="{color}" '
            f'material="standard"{width} laneChange="{change}"/>')


_CURB = '<roadMark sOffset="0" type="curb" weight="standard" color="standard" material="standard" width="0.15" laneChange="none"/>'


def _lane(lane_id: int, kind: str, width: float, mark: str, link: str = "",
          end_width: float | None = None, length: float = 1.0) -> str:
    """A lane of constant ``width``, or one easing to ``end_width`` over ``length``
    (cubic with zero slope at both ends: its centre line stays tangent to the lanes it
    joins)."""
    dw = 0.0 if end_width is None else end_width - width
    c, d = 3.0 * dw / length ** 2, -2.0 * dw / length ** 3
    return (f'<lane id="{lane_id}" type="{kind}" level="false">{link}'
            f'<width sOffset="0" a="{_f(width)}" b="0" c="{_f(c)}" d="{_f(d)}"/>{mark}</lane>')


def _side_lanes(e: Edge, side: Side, sign: int, driving: int) -> list[str]:
    """Lanes of one side, centre outwards; ``driving`` lanes of driving (0 for the
    empty side of a one-way road)."""
    out, lid = [], 0
    if e.median > 0 and driving:
        lid += 1
        out.append(_lane(sign * lid, "median", e.median, _mark("solid", "yellow")))
    for i in range(driving):
        lid += 1
        last = i == driving - 1
        mark = _mark(*e.edge_mark) if last else _mark("broken", "white")
        out.append(_lane(sign * lid, "driving", e.width, mark))
    if side.parking > 0 and driving:
        lid += 1
        out.append(_lane(sign * lid, "parking", side.parking, _mark("none", "white")))
    lid += 1
    out.append(_lane(sign * lid, side.curb_kind, side.curb, _CURB))
    if side.sidewalk > 0:
        lid += 1
        out.append(_lane(sign * lid, "sidewalk", side.sidewalk, _mark("none", "white")))
    return out


def _road_xml(road_id: int, name: str, junction: int, start: tuple[float, float, float],
              segs: list[_Seg], link: str, lanes: str, speed: int) -> str:
    plan, length = _plan_view(*start, segs)
    return (f'<road name="{name}" length="{_f(length)}" id="{road_id}" junction="{junction}">'
            f'<link>{link}</link>'
            f'<type s="0" type="town"><speed max="{speed}" unit="km/h"/></type>'
            f'{plan}'
            '<elevationProfile><elevation s="0" a="0" b="0" c="0" d="0"/></elevationProfile>'
            '<lateralProfile/>'
            f'{lanes}'
            '<objects/><signals/></road>')


def _classify(theta: float) -> str:
    if abs(theta) < math.radians(40.0):
        return "straight"
    return "left" if theta > 0 else "right"


def _lane_pairs(moves: dict[tuple[int, int], str], n_in: dict[int, int],
                n_out: dict[int, int]) -> set[tuple[int, int, int, int]]:
    """(in arm, in lane k, out arm, out lane j) of a junction, lanes 1-based from the
    centre: straight k -> k, left from the innermost lanes, right from the outermost;
    then every incoming lane gets an exit and every outgoing lane an entry."""
    rank = {"left": 0, "straight": 1, "right": 2}
    pairs: set[tuple[int, int, int, int]] = set()
    for (a, b), kind in moves.items():
        n, m = n_in[a], n_out[b]
        if kind == "straight":
            for k in range(1, n + 1):
                pairs.add((a, k, b, min(k, m)))
            for j in range(n + 1, m + 1):
                pairs.add((a, n, b, j))
        elif kind == "left":
            pairs.add((a, 1, b, 1))
        else:
            pairs.add((a, n, b, m))
    for a, n in n_in.items():
        outs = sorted((b for (a2, b) in moves if a2 == a), key=lambda b: rank[moves[(a, b)]])
        for k in range(1, n + 1):
            if outs and not any(p[0] == a and p[1] == k for p in pairs):
                b = outs[0] if 2 * k <= n + 1 else outs[-1]
                m = n_out[b]
                pairs.add((a, k, b, min(k, m) if moves[(a, b)] != "right" else max(m - (n - k), 1)))
    for b, m in n_out.items():
        ins = sorted((a for (a, b2) in moves if b2 == b), key=lambda a: rank[moves[(a, b)]])
        for j in range(1, m + 1):
            if ins and not any(p[2] == b and p[3] == j for p in pairs):
                straight = [a for a in ins if moves[(a, b)] == "straight"]
                a = straight[0] if straight else (ins[0] if 2 * j <= m + 1 else ins[-1])
                n = n_in[a]
                pairs.add((a, min(j, n) if moves[(a, b)] != "right" else max(n - (m - j), 1), b, j))
    return pairs


def _write_conns(body: list[str], conns: list[Conn], jid: int, first_id: int) -> str:
    """Append the connecting roads of junction ``jid`` (ids from ``first_id``) to
    ``body``; returns the junction's ``<connection>`` elements."""
    out = []
    for n, cn in enumerate(conns):
        cid = first_id + n
        length = sum(sg.length for sg in cn.segs)
        (pr, pc, pl), (sr, sc, sl) = cn.pred, cn.succ
        lane = _lane(-1, "driving", cn.widths[0], _mark("none", "white"),
                     f'<link><predecessor id="{pl}"/><successor id="{sl}"/></link>', cn.widths[1], length)
        lanes = ('<lanes><laneSection s="0">'
                 f'<center><lane id="0" type="none" level="false">{_mark("none", "white")}</lane></center>'
                 f'<right>{lane}</right></laneSection></lanes>')
        link = _road_link("predecessor", "road", pr, pc) + _road_link("successor", "road", sr, sc)
        body.append(_road_xml(cid, f"junction {jid} {cn.kind} {pr}:{pl}->{sr}:{sl}", jid, cn.start,
                              cn.segs, link, lanes, cn.speed))
        out.append(f'<connection id="{n}" incomingRoad="{pr}" connectingRoad="{cid}" contactPoint="start">'
                   f'<laneLink from="{pl}" to="-1"/></connection>')
    return "".join(out)


def generate(seed: int) -> str:
    """OpenDRIVE 1.4 text of the town ``procedural:<seed>`` (byte-identical per seed).

    Raises:
        MapError: a seed outside 0..:data:`MAX_SEED`.
    """
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or not 0 <= int(seed) <= MAX_SEED:
        raise MapError(f"procedural town seed must be an integer in 0..{MAX_SEED}, got {seed!r}")
    lay = generate_layout(int(seed))
    nodes, edges, arms = lay.nodes, lay.edges, lay.arms
    body: list[str] = []
    junctions: list[str] = []

    # plain roads: s from node a to node b (the travel direction of one-way roads)
    for k, e in enumerate(edges):
        arm_a = next(a for a in arms[e.a] if a.edge == k)
        arm_b = next(a for a in arms[e.b] if a.edge == k)
        n0, n1 = (e.a, e.b) if e.oneway >= 0 else (e.b, e.a)
        first, last = (arm_a, arm_b) if e.oneway >= 0 else (arm_b, arm_a)
        right, left = e.sides
        r_lanes = _side_lanes(e, right, -1, e.lanes)
        l_lanes = _side_lanes(e, left, +1, 0 if e.oneway else e.lanes)
        centre = _mark(*e.centre) if not e.median else _mark("none", "white")
        lanes = ('<lanes><laneSection s="0">'
                 f'<left>{"".join(reversed(l_lanes))}</left>'
                 f'<center><lane id="0" type="none" level="false">{centre}</lane></center>'
                 f'<right>{"".join(r_lanes)}</right></laneSection></lanes>')
        link = (_road_link("predecessor", "junction", first.junction)
                + _road_link("successor", "junction", last.junction))
        kind = "one-way" if e.oneway else "two-way"
        body.append(_road_xml(k, f"{kind} {n0}-{n1}", -1, e.start, e.segs, link, lanes, e.speed))

    # roundabouts: ring roads (one lane turning left, island inside, curb and sidewalk outside)
    for v in sorted(lay.roundabouts):
        rb = lay.roundabouts[v]
        for rr in rb.roads:
            lanes = ('<lanes><laneSection s="0">'
                     f'<left>{_lane(2, "median", rr.island, _mark("none", "white"))}'
                     f'{_lane(1, "border", 0.3, _CURB)}</left>'
                     f'<center><lane id="0" type="none" level="false">{_mark("solid", "white")}</lane></center>'
                     f'<right>{_lane(-1, "driving", rr.width, _mark("solid", "white"))}'
                     f'{_lane(-2, "shoulder", 0.5, _CURB)}{_lane(-3, "sidewalk", 2.0, _mark("none", "white"))}</right>'
                     '</laneSection></lanes>')
            link = (_road_link("predecessor", "junction", rr.pred_junction)
                    + _road_link("successor", "junction", rr.succ_junction))
            body.append(_road_xml(rr.road, f"roundabout {v} ring", -1, rr.start, rr.segs, link, lanes, 30))
        for jid in sorted(rb.conns):
            conns = _write_conns(body, rb.conns[jid], jid, lay.next_conn_id(len(rb.conns[jid])))
            junctions.append(f'<junction id="{jid}" name="roundabout {v}">' + conns + "</junction>")

    # junctions: a connecting road per lane pair of every movement
    for v in sorted(arms):
        if v in lay.roundabouts:
            continue
        av = arms[v]
        conns = []
        for t in lay.turns[v]:
            a, b = av[t.a], av[t.b]
            ea, eb = edges[a.edge], edges[b.edge]
            conns.append(Conn(t.kind, (a.road, a.contact, a.lanes_in[t.k - 1]),
                              (b.road, b.contact, b.lanes_out[t.j - 1]),
                              (float(t.start[0]), float(t.start[1]), t.heading), t.segs,
                              (ea.width, eb.width), min(ea.speed, eb.speed)))
        jid = av[0].junction
        xml = _write_conns(body, conns, jid, lay.next_conn_id(len(conns)))
        kind = {2: "L", 3: "T", 4: "X"}.get(len(av), f"{len(av)}-way")
        junctions.append(f'<junction id="{jid}" name="{kind} {v}">' + xml + "</junction>")

    lo, hi = nodes.min(axis=0) - 40.0, nodes.max(axis=0) + 40.0
    return _document(town_name(seed), body + junctions, (float(hi[1]), float(lo[1]), float(hi[0]), float(lo[0])))
