"""Procedural OpenDRIVE 1.4 road networks: a closed ``circuit`` and a town ``grid``.

A fresh machine has no CARLA towns, so the project generates its own road networks and
loads them through the same offline parser as the real towns,
``carla.Map(name, xodr_text)`` (CARLA 0.9.16 client). The text is written directly
(ASAM OpenDRIVE 1.4: ``planView`` geometry of lines and arcs, ``lanes`` with
``laneSection``/``left``/``center``/``right``, ``roadMark``, ``type``/``speed``, and
``junction``/``connection``/``laneLink`` with connecting roads), so generation is
deterministic: the same name gives byte-identical text on every run.

Coordinates here are OpenDRIVE's (x east, y north, heading counter-clockwise from +x,
curvature > 0 = left turn); ``carla.Map`` converts to CARLA's frame (y negated).

Cross-section of every two-way road, right side (left side mirrored), following the
layout of CARLA's towns (Town01: driving, shoulder with a curb, sidewalk)::

    | sidewalk 2.0 m | shoulder 0.5 m (curb) | driving 3.5 m  ||  driving 3.5 m | ...
                                         solid white   centre line (broken white,
                                          edge mark     solid yellow or double yellow)

Networks:

- ``circuit``: a closed two-way loop of about 880 m, mostly turning left with a
  right-hand S-bend and a right-hand curve, arc radii from 25 m to 120 m, split into four
  roads whose centre lines differ (broken white, solid yellow, double solid yellow).
- ``grid``: 3 x 3 blocks of 90 m (4 x 4 nodes). Interior nodes are X-junctions, border
  nodes T-junctions, corners L-junctions (a single turn each way), every junction with a
  connecting road per allowed movement (left, right, straight; no U-turns), so
  ``carla.Map.get_topology()`` lets a car turn every way at every junction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

__all__ = [
    "GENERATED_TOWNS",
    "LANE_WIDTH",
    "generate",
    "generate_circuit",
    "generate_grid",
    "is_generated",
]

LANE_WIDTH = 3.5
"""Width of a driving lane [m]."""
SHOULDER_WIDTH = 0.5
"""Width of the shoulder lane between the driving lane and the sidewalk [m]."""
SIDEWALK_WIDTH = 2.0
"""Width of the sidewalk lane [m]."""
MARK_WIDTH = 0.15
"""Width of painted lane markings [m]."""
SPEED_LIMIT_KMH = 50
"""Speed limit of the generated roads [km/h] (the CARLA boundary unit of OpenDRIVE)."""

GRID_BLOCKS = 3
"""Blocks per side of the grid."""
GRID_BLOCK = 90.0
"""Distance between adjacent grid nodes [m]."""
GRID_JUNCTION = 12.0
"""Distance from a grid node to the border of its junction [m]; a right turn's lane
centre has radius GRID_JUNCTION - LANE_WIDTH/2, a left turn's + LANE_WIDTH/2."""


# --------------------------------------------------------------------------- geometry
@dataclass(frozen=True, slots=True)
class _Seg:
    """One planView primitive: a line (curvature 0) or an arc.

    Attributes:
        length: arc length [m] (> 0).
        curvature: [1/m], > 0 turns left (OpenDRIVE frame).
    """

    length: float
    curvature: float = 0.0


def _advance(x: float, y: float, hdg: float, seg: _Seg) -> tuple[float, float, float]:
    """End pose (x [m], y [m], heading [rad]) after driving ``seg`` from (x, y, hdg)."""
    k, s = seg.curvature, seg.length
    if k == 0.0:
        return x + s * math.cos(hdg), y + s * math.sin(hdg), hdg
    h1 = hdg + k * s
    return (x + (math.sin(h1) - math.sin(hdg)) / k,
            y - (math.cos(h1) - math.cos(hdg)) / k, h1)


def _arc(radius: float, degrees: float) -> _Seg:
    """Arc of ``radius`` [m] turning ``degrees`` (> 0 left, < 0 right)."""
    ang = math.radians(degrees)
    return _Seg(length=abs(ang) * radius, curvature=math.copysign(1.0 / radius, ang))


def _f(v: float) -> str:
    """A float as fixed, platform-independent text (deterministic output)."""
    s = f"{v:.9f}".rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


# --------------------------------------------------------------------------- XML parts
@dataclass(frozen=True, slots=True)
class _Mark:
    """A roadMark: OpenDRIVE ``type`` ("none", "solid", "broken", "solid solid", "curb")
    and ``color`` ("white", "yellow", "standard")."""

    type: str = "none"
    color: str = "white"

    def xml(self) -> str:
        change = {"broken": "both"}.get(self.type, "none")
        width = f' width="{_f(MARK_WIDTH)}"' if self.type not in ("none",) else ""
        return (f'<roadMark sOffset="0" type="{self.type}" weight="standard" '
                f'color="{self.color}" material="standard"{width} laneChange="{change}"/>')


NO_MARK = _Mark("none")
EDGE = _Mark("solid", "white")
CURB = _Mark("curb", "standard")


def _lane(lane_id: int, kind: str, width: float, mark: _Mark,
          pred: int | None = None, succ: int | None = None) -> str:
    link = ""
    if pred is not None or succ is not None:
        link = "<link>" + (f'<predecessor id="{pred}"/>' if pred is not None else "") + \
               (f'<successor id="{succ}"/>' if succ is not None else "") + "</link>"
    return (f'<lane id="{lane_id}" type="{kind}" level="false">{link}'
            f'<width sOffset="0" a="{_f(width)}" b="0" c="0" d="0"/>{mark.xml()}</lane>')


def _two_way_lanes(centre: _Mark, *, link_pred: bool, link_succ: bool) -> str:
    """Lanes of a two-way road: driving, shoulder (curb), sidewalk on each side.

    Lane links to a plain road keep the same lane id (roads joined end to start).
    """
    def side(sign: int) -> list[str]:
        out = []
        for n, (kind, width, mark) in enumerate(
                (("driving", LANE_WIDTH, EDGE), ("shoulder", SHOULDER_WIDTH, CURB),
                 ("sidewalk", SIDEWALK_WIDTH, NO_MARK)), start=1):
            lid = sign * n
            out.append(_lane(lid, kind, width, mark,
                             pred=lid if link_pred else None, succ=lid if link_succ else None))
        return out

    # OpenDRIVE lists left lanes from the outermost inwards, right lanes from the centre.
    left = "".join(reversed(side(+1)))
    right = "".join(side(-1))
    return ('<lanes><laneSection s="0">'
            f'<left>{left}</left>'
            f'<center><lane id="0" type="none" level="false">{centre.xml()}</lane></center>'
            f'<right>{right}</right>'
            '</laneSection></lanes>')


def _connecting_lanes(pred: int, succ: int) -> str:
    """One driving lane (-1) of a junction connecting road, no markings."""
    return ('<lanes><laneSection s="0">'
            f'<center><lane id="0" type="none" level="false">{NO_MARK.xml()}</lane></center>'
            f'<right>{_lane(-1, "driving", LANE_WIDTH, NO_MARK, pred=pred, succ=succ)}</right>'
            '</laneSection></lanes>')


def _plan_view(x: float, y: float, hdg: float, segs: Sequence[_Seg]) -> tuple[str, float]:
    """planView XML of ``segs`` starting at (x, y, hdg); returns (xml, total length)."""
    out, s = ["<planView>"], 0.0
    for seg in segs:
        shape = "<line/>" if seg.curvature == 0.0 else f'<arc curvature="{_f(seg.curvature)}"/>'
        out.append(f'<geometry s="{_f(s)}" x="{_f(x)}" y="{_f(y)}" hdg="{_f(hdg)}" '
                   f'length="{_f(seg.length)}">{shape}</geometry>')
        x, y, hdg = _advance(x, y, hdg, seg)
        s += seg.length
    out.append("</planView>")
    return "".join(out), s


def _road(road_id: int, name: str, junction: int, start: tuple[float, float, float],
          segs: Sequence[_Seg], link: str, lanes: str) -> str:
    plan, length = _plan_view(*start, segs)
    return (f'<road name="{name}" length="{_f(length)}" id="{road_id}" junction="{junction}">'
            f'<link>{link}</link>'
            f'<type s="0" type="town"><speed max="{SPEED_LIMIT_KMH}" unit="km/h"/></type>'
            f'{plan}'
            '<elevationProfile><elevation s="0" a="0" b="0" c="0" d="0"/></elevationProfile>'
            '<lateralProfile/>'
            f'{lanes}'
            '<objects/><signals/></road>')


def _document(name: str, body: Sequence[str], extent: tuple[float, float, float, float]) -> str:
    """The full OpenDRIVE file: header (with geoReference) and ``body`` elements."""
    north, south, east, west = extent
    header = (f'<header revMajor="1" revMinor="4" name="{name}" version="1" '
              f'date="2026-01-01T00:00:00" north="{_f(north)}" south="{_f(south)}" '
              f'east="{_f(east)}" west="{_f(west)}" vendor="drive_il">'
              '<geoReference><![CDATA[+proj=tmerc +lat_0=49 +lon_0=8 +k=1 +x_0=0 +y_0=0 '
              '+datum=WGS84 +units=m +no_defs]]></geoReference></header>')
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<OpenDRIVE>\n' + header + "\n"
            + "\n".join(body) + "\n</OpenDRIVE>\n")


def _road_link(kind: str, element_type: str, element_id: int, contact: str | None = None) -> str:
    cp = f' contactPoint="{contact}"' if contact else ""
    return f'<{kind} elementType="{element_type}" elementId="{element_id}"{cp}/>'


# --------------------------------------------------------------------------- circuit
def _circuit_segments() -> list[list[_Seg]]:
    """The circuit's geometry, split into four roads, closed exactly.

    Two straights (headings 0 and 210 deg) have lengths solved so the loop closes.
    Heading changes sum to +360 deg; radii 25..120 m; right-hand turns included.
    """
    pre = [_arc(120, 90), _Seg(40.0), _arc(35, 90), _arc(45, -60), _arc(30, 90)]
    post = [_arc(60, 105), _arc(40, -30), _arc(25, 75)]
    # Free straights: A (heading 0) before `pre`, B (heading 210 deg) between pre and post.
    def end(a: float, b: float) -> tuple[float, float, float]:
        x, y, h = 0.0, 0.0, 0.0
        for seg in [_Seg(a)] + pre + [_Seg(b)] + post:
            if seg.length > 0:
                x, y, h = _advance(x, y, h, seg)
        return x, y, h
    # end() is affine in (a, b): solve the 2x2 system end(a, b) = (0, 0).
    x0, y0, h = end(0.0, 0.0)
    assert abs(h - 2.0 * math.pi) < 1e-9, math.degrees(h)  # headings close: one full turn
    xa, ya, _ = end(1.0, 0.0)
    xb, yb, _ = end(0.0, 1.0)
    m11, m21, m12, m22 = xa - x0, ya - y0, xb - x0, yb - y0
    det = m11 * m22 - m12 * m21
    a = (-x0 * m22 + m12 * y0) / det
    b = (-m11 * y0 + m21 * x0) / det
    assert a > 10 and b > 10, (a, b)  # a design change that breaks closure fails loudly
    # Split the straight A in half so the loop starts mid-straight.
    return [
        [_Seg(a / 2), pre[0], pre[1]],
        [pre[2], pre[3], pre[4]],
        [_Seg(b / 2)],
        [_Seg(b / 2), post[0], post[1], post[2], _Seg(a / 2)],
    ]


def generate_circuit() -> str:
    """OpenDRIVE 1.4 text of the ``circuit`` town (deterministic).

    Returns:
        The .xodr text: four two-way roads forming a closed loop of about 880 m.
    """
    roads = _circuit_segments()
    centres = [_Mark("broken", "white"), _Mark("solid", "yellow"),
               _Mark("solid solid", "yellow"), _Mark("broken", "white")]
    n = len(roads)
    body, pose, xs, ys = [], (0.0, 0.0, 0.0), [], []
    for i, segs in enumerate(roads):
        link = (_road_link("predecessor", "road", (i - 1) % n, "end")
                + _road_link("successor", "road", (i + 1) % n, "start"))
        body.append(_road(i, f"circuit {i}", -1, pose, segs, link,
                          _two_way_lanes(centres[i], link_pred=True, link_succ=True)))
        for seg in segs:
            pose = _advance(*pose, seg)
            xs.append(pose[0])
            ys.append(pose[1])
    return _document("circuit", body, (max(ys), min(ys), max(xs), min(xs)))


# --------------------------------------------------------------------------- grid
_DIRS = {"E": (1, 0), "N": (0, 1), "W": (-1, 0), "S": (0, -1)}
_HDG = {"E": 0.0, "N": math.pi / 2, "W": math.pi, "S": -math.pi / 2}
_LEFT_OF = {"E": "N", "N": "W", "W": "S", "S": "E"}
_OPPOSITE = {"E": "W", "N": "S", "W": "E", "S": "N"}


def generate_grid() -> str:
    """OpenDRIVE 1.4 text of the ``grid`` town (deterministic).

    Returns:
        The .xodr text: 3 x 3 blocks of 90 m; X-, T- and L-junctions with connecting
        roads for every left, right and straight movement.
    """
    n_nodes = GRID_BLOCKS + 1
    B, J = GRID_BLOCK, GRID_JUNCTION
    node_xy = {(i, j): (i * B, j * B) for i in range(n_nodes) for j in range(n_nodes)}
    junction_id = {node: 1000 + k for k, node in enumerate(sorted(node_xy))}

    # Plain roads: each edge from a node to its E or N neighbour; s runs from the
    # first node to the second. arms[node][dir] = (road id, contact at this node).
    body: list[str] = []
    arms: dict[tuple[int, int], dict[str, tuple[int, str]]] = {n: {} for n in node_xy}
    road_id = 0
    for node in sorted(node_xy):
        for d in ("E", "N"):
            dx, dy = _DIRS[d]
            other = (node[0] + dx, node[1] + dy)
            if other not in node_xy:
                continue
            x, y = node_xy[node]
            start = (x + J * dx, y + J * dy, _HDG[d])
            link = (_road_link("predecessor", "junction", junction_id[node])
                    + _road_link("successor", "junction", junction_id[other]))
            # Roads running east-west get a solid yellow centre, north-south broken white.
            centre = _Mark("solid", "yellow") if d == "E" else _Mark("broken", "white")
            body.append(_road(road_id, f"{'EW' if d == 'E' else 'NS'} {node[0]},{node[1]}", -1,
                              start, [_Seg(B - 2 * J)], link,
                              _two_way_lanes(centre, link_pred=False, link_succ=False)))
            arms[node][d] = (road_id, "start")
            arms[other][_OPPOSITE[d]] = (road_id, "end")
            road_id += 1

    # Junctions: a connecting road (one driving lane -1) per movement in -> out.
    junctions: list[str] = []
    conn_id = 10000
    for node in sorted(node_xy):
        px, py = node_xy[node]
        connections = []
        node_arms = arms[node]
        for a in ("E", "N", "W", "S"):
            if a not in node_arms:
                continue
            for b in ("E", "N", "W", "S"):
                if b == a or b not in node_arms:
                    continue
                in_road, in_contact = node_arms[a]
                out_road, out_contact = node_arms[b]
                # Traffic arriving at the node drives towards it: lane -1 of a road
                # ending here, lane 1 of a road starting here. Leaving: the converse.
                in_lane = -1 if in_contact == "end" else 1
                out_lane = -1 if out_contact == "start" else 1
                # The connecting road starts on the arm's border, heading into the node.
                ax, ay = _DIRS[a]
                travel = _OPPOSITE[a]
                start = (px + J * ax, py + J * ay, _HDG[travel])
                if b == travel:
                    segs = [_Seg(2 * J)]
                elif b == _LEFT_OF[travel]:
                    segs = [_arc(J, 90)]
                else:
                    segs = [_arc(J, -90)]
                link = (_road_link("predecessor", "road", in_road, in_contact)
                        + _road_link("successor", "road", out_road, out_contact))
                body.append(_road(conn_id, f"junction {junction_id[node]} {a}->{b}",
                                  junction_id[node], start, segs, link,
                                  _connecting_lanes(in_lane, out_lane)))
                connections.append(
                    f'<connection id="{len(connections)}" incomingRoad="{in_road}" '
                    f'connectingRoad="{conn_id}" contactPoint="start">'
                    f'<laneLink from="{in_lane}" to="-1"/></connection>')
                conn_id += 1
        kind = {2: "L", 3: "T", 4: "X"}[len(node_arms)]
        junctions.append(f'<junction id="{junction_id[node]}" name="{kind} {node[0]},{node[1]}">'
                         + "".join(connections) + "</junction>")

    size = (n_nodes - 1) * B
    return _document("grid", body + junctions, (size + 10, -10.0, size + 10, -10.0))


_GENERATORS: dict[str, Callable[[], str]] = {
    "circuit": generate_circuit,
    "grid": generate_grid,
}

GENERATED_TOWNS: tuple[str, ...] = tuple(_GENERATORS)
"""Names of the towns the project generates itself."""


def is_generated(name: str) -> bool:
    """True if ``name`` (case-insensitive) is a generated town."""
    return name.lower() in _GENERATORS


def generate(name: str) -> str:
    """OpenDRIVE text of the generated town ``name`` (case-insensitive).

    Raises:
        KeyError: ``name`` is not one of :data:`GENERATED_TOWNS`.
    """
    return _GENERATORS[name.lower()]()
