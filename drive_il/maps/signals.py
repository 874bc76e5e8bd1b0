"""Traffic-light layout of a town: signal heads, their stop lines and their groups.

A :class:`SignalLayout` is part of the map model (built once per town and kept on the
:class:`~drive_il.maps.towns.TownMap`, :func:`signal_layout`); the embedded world's light
controller (:mod:`drive_il.sim.embedded.lights`), the NPCs, the events, the camera and
the expert all read the same heads.

Two sources, as the CARLA server does it:

* **OpenDRIVE signals.** Where the town's text has ``<signal type="1000001">`` records
  (OpenDRIVE 1.4 §3.13 / ASAM OpenDRIVE 1.6 §12: type 1000001 = a traffic light, the
  German StVO catalogue CARLA uses) and ``<controller>`` records listing them, every
  signal is one head at its own (s, t) position, controlling the driving lanes of its
  ``orientation`` (``<validity>`` narrows them) on its road; the lanes' stop line is at
  the junction the lanes enter. Heads listed by one ``<controller>`` show the same lamp
  (one turn), and the controllers of a junction take turns in their ``sequence`` order
  (CARLA's ``UTrafficLightController`` / ``ATrafficLightGroup``). A signal no controller
  lists, or on a road whose lanes of its orientation enter no junction (a connecting
  road's), is left out; a file none of whose signals is usable is signalised as below.
* **Placed as CARLA places them on towns without signals.** Every junction where at
  least ``min_roads`` roads enter is one group, except roundabouts (CARLA signalises
  none; see :func:`_roundabout_junctions` for the ring test); one head per incoming road, all the
  road's incoming driving lanes sharing it and one stop line at the junction entry (the
  end of the incoming lanes), its pole on the right roadside at the stop line (on the
  sidewalk or shoulder where there is one; up to 3 m back from the line where another
  road passes the junction corner there). Each head has its own turn, heads ordered by
  the angle of their stop line around the junction centre, clockwise seen from above
  (increasing CARLA yaw): "The traffic lights in the same group follow a cycle. The
  first one is set to green while the rest remain frozen in red" (CARLA documentation,
  *Actors and blueprints*, "Traffic lights"; CARLA's default groups give every head of a
  junction its own turn).

Frame: CARLA's world frame (x east, y south, z up), metres, yaw in radians; "right" of
a heading ``yaw`` is the direction ``(-sin yaw, cos yaw)``.

Queries used: the town's lane graph (``carla.Map.get_topology()`` segments,
:mod:`drive_il.maps.lane_graph`), ``carla.Map.get_waypoint`` /
``Waypoint.get_right_lane`` (roadside width at a stop line) and
``carla.Map.get_waypoint_xodr`` (OpenDRIVE signal positions).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import MapError

if TYPE_CHECKING:  # pragma: no cover
    from .lane_graph import LaneGraph
    from .towns import TownMap

__all__ = ["SignalHead", "SignalLayout", "signal_layout", "build_signal_layout",
           "TRAFFIC_LIGHT_TYPE", "RING_MAX_ARC", "RING_MIN_WINDING", "POLE_OFFSET"]

#: OpenDRIVE ``<signal type>`` of a traffic light (the StVO catalogue CARLA's towns use).
TRAFFIC_LIGHT_TYPE = "1000001"
#: Longest one-way road between two junctions of a roundabout's ring [m].
RING_MAX_ARC = 60.0
#: A connecting lane whose total turning exceeds its net heading change by more than
#: this [rad] winds around a roundabout drawn as one junction.
RING_MIN_WINDING = math.radians(150.0)
#: Pole foot beyond the outer edge of the driving lanes where there is no roadside [m].
POLE_OFFSET = 0.5
#: Lamp housing centre above the pole foot [m] (CARLA's street-corner lights: ~3 m).
HEAD_HEIGHT = 3.0


@dataclass(frozen=True, slots=True)
class SignalHead:
    """One traffic-light head (a CARLA ``traffic.traffic_light`` actor).

    Attributes:
        light_id: id >= 1, stable for a town (the same text gives the same ids).
        group_id: the light group: the OpenDRIVE id of the junction it guards.
        junction_id: OpenDRIVE junction id the controlled lanes enter.
        x, y, z: pole foot [m] (right roadside at the stop line).
        yaw: driving direction of the controlled lanes at the stop line [rad] (the
            lamps face against it).
        stop_line: ((x0, y0), (x1, y1)) [m] across all controlled lanes at the
            junction entry, right edge first (seen in the driving direction).
        lanes: (road_id, lane_id) of every controlled driving lane at the stop line
            (OpenDRIVE ids of the incoming road's last lane section).
        index: the head's turn in its group (0 = first green); heads of one OpenDRIVE
            controller share a turn.
        road_id: the incoming road.
        opendrive_id: the ``<signal id>`` where it came from OpenDRIVE, else "".
        height: lamp housing centre above the pole foot [m].
    """

    light_id: int
    group_id: int
    junction_id: int
    x: float
    y: float
    z: float
    yaw: float
    stop_line: tuple[tuple[float, float], tuple[float, float]]
    lanes: tuple[tuple[int, int], ...]
    index: int
    road_id: int
    opendrive_id: str = ""
    height: float = HEAD_HEIGHT


@dataclass(frozen=True)
class SignalLayout:
    """Every traffic-light head of a town and its groups.

    Attributes:
        heads: the heads, by increasing ``light_id`` (1, 2, ...).
        groups: group id -> light ids in turn order (by ``index``, then id).
        turns: group id -> number of turns in the group's cycle.
        source: "opendrive" (the file's signals), "junctions" (placed) or "none".
        lane_light: (road_id, lane_id) of a controlled lane -> its light id (read-only).
    """

    heads: tuple[SignalHead, ...] = ()
    groups: Mapping[int, tuple[int, ...]] = field(default_factory=dict)
    turns: Mapping[int, int] = field(default_factory=dict)
    source: str = "none"
    lane_light: Mapping[tuple[int, int], int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.heads)

    def head(self, light_id: int) -> SignalHead:
        """The head with ``light_id``.

        Raises:
            KeyError: no such head (one line naming the id).
        """
        if 1 <= light_id <= len(self.heads):
            h = self.heads[light_id - 1]
            if h.light_id == light_id:
                return h
        raise KeyError(f"light_id {light_id} is not a traffic light of this town "
                       f"(ids 1..{len(self.heads)})")


def signal_layout(town: "TownMap", min_roads: int = 3) -> SignalLayout:
    """The town's traffic-light layout, built on first use and cached on the town
    (``town.memo(("signals", min_roads), ...)``).

    Args:
        town: the map model.
        min_roads: the fewest roads meeting at a junction for it to be signalised when
            the OpenDRIVE has no traffic-light signals (>= 2).

    Raises:
        MapError: ``min_roads`` < 2.
    """
    if int(min_roads) < 2:
        raise MapError(f"min_roads must be >= 2, got {min_roads}")
    return town.memo(("signals", int(min_roads)), lambda: build_signal_layout(town, int(min_roads)))


def build_signal_layout(town: "TownMap", min_roads: int = 3) -> SignalLayout:
    """Build the layout (uncached; see :func:`signal_layout` and the module docstring)."""
    graph = town.lane_graph
    road_junction = _road_junctions(town.xodr)
    approaches = _approaches(graph, road_junction)
    rows: list[dict[str, Any]] = []
    source = "none"
    if f'"{TRAFFIC_LIGHT_TYPE}"' in town.xodr:
        rows = _opendrive_heads(town, approaches)
        source = "opendrive" if rows else "none"
    if not rows:
        rows = _placed_heads(town, graph, road_junction, approaches, min_roads)
        source = "junctions" if rows else "none"
    rows.sort(key=lambda r: (r["junction_id"], r["index"], r["order"]))
    heads = []
    for i, r in enumerate(rows):
        heads.append(SignalHead(light_id=i + 1, group_id=r["junction_id"], junction_id=r["junction_id"],
                                x=r["x"], y=r["y"], z=r["z"], yaw=r["yaw"], stop_line=r["stop_line"],
                                lanes=r["lanes"], index=r["index"], road_id=r["road_id"],
                                opendrive_id=r.get("opendrive_id", "")))
    groups: dict[int, list[int]] = {}
    turns: dict[int, int] = {}
    lane_light: dict[tuple[int, int], int] = {}
    for h in heads:
        groups.setdefault(h.group_id, []).append(h.light_id)
        turns[h.group_id] = max(turns.get(h.group_id, 0), h.index + 1)
        for ln in h.lanes:
            lane_light.setdefault(ln, h.light_id)
    return SignalLayout(heads=tuple(heads), groups={g: tuple(v) for g, v in groups.items()},
                        turns=turns, source=source, lane_light=lane_light)


# ----------------------------------------------------------------------------- internals
_ATTRS = r'((?:[^>"]|"[^"]*")*?)'  # a tag's attributes (quoted values may hold ">")
_ROAD_TAG = re.compile(r"<road\b" + _ATTRS + r">")
_ATTR = {k: re.compile(rf'\b{k}\s*=\s*"([^"]*)"') for k in
         ("id", "junction", "type", "s", "t", "orientation", "zOffset", "fromLane", "toLane",
          "signalId", "sequence")}


def _attr(text: str, key: str, default: str = "") -> str:
    m = _ATTR[key].search(text)
    return m.group(1) if m else default


def _road_junctions(xodr: str) -> dict[int, int]:
    """road id -> junction id (-1 for roads outside junctions), from the ``<road>`` tags."""
    out: dict[int, int] = {}
    for m in _ROAD_TAG.finditer(xodr):
        a = m.group(1)
        try:
            out[int(_attr(a, "id"))] = int(_attr(a, "junction", "-1"))
        except ValueError:
            continue
    return out


@dataclass
class _Approach:
    """The incoming driving lanes of one road into one junction."""

    junction_id: int
    road_id: int
    lanes: list[tuple[int, int, float, float, float, float, float]]  # (road, lane, x, y, z, yaw, width)


def _approaches(graph: "LaneGraph", road_junction: Mapping[int, int]
                ) -> dict[int, dict[tuple[int, bool], _Approach]]:
    """junction id -> {(road id, lane id > 0): the road's incoming lanes at its end}."""
    segs = graph.segments
    out: dict[int, dict[tuple[int, bool], _Approach]] = {}
    for k, sg in enumerate(segs):
        if sg.is_junction:
            continue
        jids = {road_junction.get(segs[j].road_id, -1) for j in graph.succ[k] if segs[j].is_junction}
        jids.discard(-1)
        if len(jids) != 1:
            continue
        jid = jids.pop()
        key = (sg.road_id, sg.lane_id > 0)
        ap = out.setdefault(jid, {}).setdefault(key, _Approach(jid, sg.road_id, []))
        row = (sg.road_id, sg.lane_id, float(sg.xy[-1, 0]), float(sg.xy[-1, 1]), float(sg.z[-1]),
               float(sg.yaw[-1]), float(sg.width[-1]))
        if all(r[1] != sg.lane_id for r in ap.lanes):
            ap.lanes.append(row)
    return out


def _junction_roads(graph: "LaneGraph", road_junction: Mapping[int, int],
                    approaches: Mapping[int, Mapping[tuple[int, bool], _Approach]]) -> dict[int, set[int]]:
    """junction id -> ids of the roads that meet there (in or out)."""
    segs = graph.segments
    out: dict[int, set[int]] = {}
    for k, sg in enumerate(segs):
        if not sg.is_junction:
            continue
        jid = road_junction.get(sg.road_id, -1)
        if jid < 0:
            continue
        roads = out.setdefault(jid, set())
        for j in graph.succ[k]:
            if not segs[j].is_junction:
                roads.add(segs[j].road_id)
    for jid, aps in approaches.items():
        out.setdefault(jid, set()).update(r for r, _ in aps)
    return out


def _roundabout_junctions(graph: "LaneGraph", road_junction: Mapping[int, int]) -> set[int]:
    """Junctions that are part of a roundabout.

    Two tests: (1) the junction lies on a directed cycle of at least three junctions
    joined by short (<= :data:`RING_MAX_ARC`) one-way roads -- a ring of junctions, as
    CARLA's Town03 and our procedural towns model roundabouts; (2) one of its connecting
    lanes winds around a ring inside the junction: its total turning exceeds its net
    heading change by more than :data:`RING_MIN_WINDING` (a roundabout drawn as one
    junction).
    """
    segs = graph.segments
    preds: list[list[int]] = [[] for _ in segs]
    for k, nxt in enumerate(graph.succ):
        for j in nxt:
            preds[j].append(k)
    rings: set[int] = set()
    signs: dict[int, set[bool]] = {}
    lengths: dict[tuple[int, int, int], float] = {}  # (road, section, lane) -> [m]
    ends: dict[int, tuple[set[int], set[int]]] = {}
    lane_of: dict[int, int] = {}
    for k, sg in enumerate(segs):
        jid = road_junction.get(sg.road_id, -1)
        if sg.is_junction:
            d = np.diff(sg.yaw)
            if float(np.sum(np.abs(d))) - abs(float(sg.yaw[-1] - sg.yaw[0])) > RING_MIN_WINDING:
                rings.add(jid)
            continue
        signs.setdefault(sg.road_id, set()).add(sg.lane_id > 0)
        lane_of.setdefault(sg.road_id, sg.lane_id)
        key = (sg.road_id, sg.section_id, sg.lane_id)
        lengths[key] = max(lengths.get(key, 0.0), sg.length)
        fr, to = ends.setdefault(sg.road_id, (set(), set()))
        fr.update(road_junction.get(segs[p].road_id, -1) for p in preds[k] if segs[p].is_junction)
        to.update(road_junction.get(segs[j].road_id, -1) for j in graph.succ[k] if segs[j].is_junction)
    edges: dict[int, set[int]] = {}
    for road, (fr, to) in ends.items():
        if len(signs.get(road, ())) != 1 or len(fr) != 1 or len(to) != 1:
            continue
        a, b = next(iter(fr)), next(iter(to))
        arc = sum(v for (r, _, ln), v in lengths.items() if r == road and ln == lane_of[road])
        if a >= 0 and b >= 0 and a != b and arc <= RING_MAX_ARC:
            edges.setdefault(a, set()).add(b)
    for comp in _cycles(edges):
        if len(comp) >= 3:
            rings.update(comp)
    rings.discard(-1)
    return rings


def _cycles(edges: Mapping[int, set[int]]) -> list[set[int]]:
    """Strongly connected components (Tarjan's algorithm, iterative) of a small directed
    graph with more than one node."""
    index: dict[int, int] = {}
    low: dict[int, int] = {}
    on: set[int] = set()
    stack: list[int] = []
    out: list[set[int]] = []
    counter = 0
    nodes = sorted(set(edges) | {b for v in edges.values() for b in v})
    for root in nodes:
        if root in index:
            continue
        work = [(root, iter(sorted(edges.get(root, ()))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(edges.get(w, ())))))
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = set()
                    while True:
                        w = stack.pop()
                        on.discard(w)
                        comp.add(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        out.append(comp)
    return out


def _head_geometry(town: "TownMap", lanes: list[tuple[int, int, float, float, float, float, float]]
                   ) -> dict[str, Any]:
    """Stop line, yaw, z and default pole foot of an approach's incoming lanes."""
    yaws = np.array([r[5] for r in lanes])
    yaw = math.atan2(float(np.mean(np.sin(yaws))), float(np.mean(np.cos(yaws))))
    fx, fy = math.cos(yaw), math.sin(yaw)
    rx, ry = -fy, fx
    cx = float(np.mean([r[2] for r in lanes]))
    cy = float(np.mean([r[3] for r in lanes]))
    lat = [((r[2] - cx) * rx + (r[3] - cy) * ry, r[6]) for r in lanes]
    lon = max((r[2] - cx) * fx + (r[3] - cy) * fy for r in lanes)  # the junction entry
    ox, oy = cx + lon * fx, cy + lon * fy
    right = max(o + 0.5 * w for o, w in lat)
    left = min(o - 0.5 * w for o, w in lat)
    rightmost = max(lanes, key=lambda r: (r[2] - cx) * rx + (r[3] - cy) * ry)
    side = _roadside_width(town, rightmost)
    z = float(np.mean([r[4] for r in lanes]))
    px, py = _pole_foot(town, ox, oy, z, fx, fy, right, side)
    return {"yaw": yaw, "z": z,
            "stop_line": ((ox + right * rx, oy + right * ry), (ox + left * rx, oy + left * ry)),
            "x": px, "y": py,
            "lanes": tuple(sorted((r[0], r[1]) for r in lanes))}


def _pole_foot(town: "TownMap", ox: float, oy: float, z: float, fx: float, fy: float,
               right: float, side: float) -> tuple[float, float]:
    """The pole foot: ``right`` + a roadside offset right of the stop line's centre
    (ox, oy) -- half the roadside (shoulder, sidewalk) width, 0.5-1.5 m, or
    :data:`POLE_OFFSET` without one -- moved along the roadside and back from the line
    where that point lies on a driving lane (another road passing a junction corner)."""
    import carla
    rx, ry = -fy, fx
    first = min(max(0.5 * side, POLE_OFFSET), 1.5) if side > 0.0 else POLE_OFFSET
    offsets = [first] + [o for o in (0.3, side - 0.3, side + POLE_OFFSET) if o > 0.0 and o != first]
    m = town.map
    for back in (0.0, 1.0, 2.0, 3.0):
        for o in offsets:
            x = ox + (right + o) * rx - back * fx
            y = oy + (right + o) * ry - back * fy
            if m.get_waypoint(carla.Location(x, y, z), False, carla.LaneType.Driving) is None:
                return x, y
    return ox + (right + first) * rx, oy + (right + first) * ry


def _roadside_width(town: "TownMap", lane: tuple[int, int, float, float, float, float, float]) -> float:
    """Width [m] of the non-driving lanes (shoulder, sidewalk, ...) right of the rightmost
    incoming lane, 1 m before its end."""
    import carla
    road, lane_id, x, y, z, yaw, _ = lane
    loc = carla.Location(x - math.cos(yaw), y - math.sin(yaw), z)
    wp = town.map.get_waypoint(loc, True, carla.LaneType.Driving)
    if wp is None or wp.road_id != road or wp.lane_id != lane_id:
        return 0.0
    width = 0.0
    w = wp.get_right_lane()
    for _ in range(6):
        if w is None or w.lane_id * lane_id <= 0 or str(w.lane_type) == "Driving":
            break
        width += float(w.lane_width)
        w = w.get_right_lane()
    return width


def _placed_heads(town: "TownMap", graph: "LaneGraph", road_junction: Mapping[int, int],
                  approaches: Mapping[int, Mapping[tuple[int, bool], _Approach]],
                  min_roads: int) -> list[dict[str, Any]]:
    rings = _roundabout_junctions(graph, road_junction)
    rows: list[dict[str, Any]] = []
    for jid in sorted(approaches):
        if len(approaches[jid]) < min_roads or jid in rings:
            continue
        heads = []
        for (road, _), ap in sorted(approaches[jid].items()):
            g = _head_geometry(town, ap.lanes)
            g.update(junction_id=jid, road_id=road)
            heads.append(g)
        if len(heads) < 2:
            continue  # a single approach (one-way roads out): nothing to take turns with
        mx = float(np.mean([0.5 * (h["stop_line"][0][0] + h["stop_line"][1][0]) for h in heads]))
        my = float(np.mean([0.5 * (h["stop_line"][0][1] + h["stop_line"][1][1]) for h in heads]))
        for h in heads:
            (ax, ay), (bx, by) = h["stop_line"]
            h["angle"] = math.atan2(0.5 * (ay + by) - my, 0.5 * (ax + bx) - mx)
        heads.sort(key=lambda h: (h["angle"], h["road_id"]))
        for i, h in enumerate(heads):
            h["index"] = i
            h["order"] = i
            del h["angle"]
        rows.extend(heads)
    return rows


_SIGNAL_RE = re.compile(r"<signal\b" + _ATTRS + r"(?:/>|>(.*?)</signal>)", re.DOTALL)
_VALIDITY_RE = re.compile(r"<validity\b" + _ATTRS + r"/?>")
_CONTROLLER_RE = re.compile(r'<controller\b((?:[^>"/]|"[^"]*")*)>(.*?)</controller>', re.DOTALL)
_CONTROL_RE = re.compile(r"<control\b" + _ATTRS + r"/?>")
_JUNCTION_RE = re.compile(r"<junction\b" + _ATTRS + r">(.*?)</junction>", re.DOTALL)
_JCTRL_RE = re.compile(r"<controller\b" + _ATTRS + r"/?>")
_ROAD_BLOCK = re.compile(r"<road\b" + _ATTRS + r">(.*?)</road>", re.DOTALL)


def _opendrive_heads(town: "TownMap",
                     approaches: Mapping[int, Mapping[tuple[int, bool], _Approach]]) -> list[dict[str, Any]]:
    """Heads from the file's traffic-light ``<signal>``s grouped by ``<controller>``s."""
    xodr = town.xodr
    # signal id -> controller id; junction controllers' sequences
    sig_ctrl: dict[str, str] = {}
    ctrl_order: dict[str, int] = {}
    for n, m in enumerate(_CONTROLLER_RE.finditer(xodr)):
        cid = _attr(m.group(1), "id")
        ctrl_order.setdefault(cid, 10_000 + n)
        for c in _CONTROL_RE.finditer(m.group(2)):
            sig_ctrl.setdefault(_attr(c.group(1), "signalId"), cid)
    for jm in _JUNCTION_RE.finditer(xodr):
        for c in _JCTRL_RE.finditer(jm.group(2)):
            cid = _attr(c.group(1), "id")
            try:
                ctrl_order[cid] = int(_attr(c.group(1), "sequence", ""))
            except ValueError:
                pass
    rows: list[dict[str, Any]] = []
    for rm in _ROAD_BLOCK.finditer(xodr):
        try:
            road = int(_attr(rm.group(1), "id"))
        except ValueError:
            continue
        for sm in _SIGNAL_RE.finditer(rm.group(2)):
            a = sm.group(1)
            if _attr(a, "type") != TRAFFIC_LIGHT_TYPE:
                continue
            sid = _attr(a, "id")
            cid = sig_ctrl.get(sid)
            if cid is None:
                continue  # a light no controller drives
            forward = _attr(a, "orientation", "+") != "-"  # "+": lanes driving along +s (ids < 0)
            ap = None
            for japs in approaches.values():
                cand = japs.get((road, not forward))
                if cand is not None:
                    ap = cand
                    break
            if ap is None:
                continue
            lanes = ap.lanes
            vm = _VALIDITY_RE.search(sm.group(2) or "")
            if vm:
                lo, hi = sorted((int(_attr(vm.group(1), "fromLane", "0")),
                                 int(_attr(vm.group(1), "toLane", "0"))))
                lanes = [r for r in lanes if lo <= r[1] <= hi] or lanes
            g = _head_geometry(town, lanes)
            pos = _signal_position(town, road, float(_attr(a, "s", "0")), float(_attr(a, "t", "0")))
            if pos is not None:
                g["x"], g["y"] = pos
            g.update(junction_id=ap.junction_id, road_id=road, opendrive_id=sid, ctrl=cid,
                     order=len(rows))
            rows.append(g)
    # turn index: the junction's controllers in sequence order
    by_j: dict[int, list[str]] = {}
    for r in rows:
        lst = by_j.setdefault(r["junction_id"], [])
        if r["ctrl"] not in lst:
            lst.append(r["ctrl"])
    for r in rows:
        ctrls = sorted(by_j[r["junction_id"]], key=lambda c: (ctrl_order.get(c, 10**9), c))
        r["index"] = ctrls.index(r["ctrl"])
        del r["ctrl"]
    return rows


def _signal_position(town: "TownMap", road: int, s: float, t: float) -> tuple[float, float] | None:
    """World (x, y) of the road frame point (s, t) (t > 0: left of the reference line,
    OpenDRIVE's convention), from the innermost lane's waypoint at s."""
    m = town.map
    for lane_id in (-1, 1):
        wp = m.get_waypoint_xodr(road, lane_id, s)
        if wp is None:
            continue
        tr = wp.transform
        yaw = math.radians(tr.rotation.yaw)
        lx, ly = math.sin(yaw), -math.cos(yaw)  # left of the lane's heading
        refx = tr.location.x + lx * 0.5 * wp.lane_width
        refy = tr.location.y + ly * 0.5 * wp.lane_width
        if lane_id > 0:  # the lane drives against +s: +s's left is its right
            lx, ly = -lx, -ly
        return refx + t * lx, refy + t * ly
    return None
