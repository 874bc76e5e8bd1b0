"""Global route planning: A* over a town's lane graph, and random routes.

The lane graph (:class:`drive_il.maps.lane_graph.LaneGraph`, built once per town and
reached as ``town.lane_graph``) has one segment per lane of a road section or junction
connection, successor links and lane-change links. This is the structure of CARLA's
``GlobalRoutePlanner`` (``agents/navigation/global_route_planner.py``: topology segments,
lane-follow and lane-change edges, A* with a Euclidean heuristic); the code here is our
own.

Search states are ``(segment, offset along it)``: a route may start and end in the middle
of a lane, and a lane change moves the car to the neighbour lane a little further along
(cost: the change length plus a penalty). The heuristic is the straight-line distance to
the goal, admissible because every edge costs at least the distance it covers.

The dense route is sampled every ``spacing`` metres along the lane centres, interpolating
between lane samples with cubic Hermite curves on the lanes' own tangent directions (so
arcs stay arcs), and carries per waypoint the OpenDRIVE ids, lane width, junction flag,
speed limit and navigation command (:mod:`drive_il.routing.commands`). Junction connecting
roads without a speed record inherit the limit of the road before them; other waypoints
on roads without one get ``speed_limit=None``.

Every function takes the town (:class:`~drive_il.maps.towns.TownMap`) or its lane graph.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Union

import numpy as np

from ..errors import ScenarioError
from ..maps.lane_graph import LaneGraph, LanePoint, LaneSegment
from ..geometry import wrap_angle
from ..types import RoadOption, Route, RouteWaypoint
from .commands import route_commands

if TYPE_CHECKING:  # pragma: no cover
    from ..maps.towns import TownMap

__all__ = ["lane_graph_of", "plan_route", "random_route"]

Town = Union["TownMap", LaneGraph]
"""What the planners take: a town (its ``lane_graph`` is used) or a lane graph."""

_LC_PENALTY = 20.0       # extra cost of a lane change [m]
_LC_LEAD = 2.0           # a lane change starts this far after entering the lane [m]


def lane_graph_of(town: Town) -> LaneGraph:
    """``town`` itself when it is a LaneGraph, else ``town.lane_graph``.

    Raises:
        TypeError: neither (e.g. a bare ``carla.Map``: wrap it with
            :meth:`drive_il.maps.towns.TownMap.from_carla_map`).
    """
    if isinstance(town, LaneGraph):
        return town
    g = getattr(town, "lane_graph", None)
    if not isinstance(g, LaneGraph):
        raise TypeError(f"expected a TownMap or a LaneGraph, got {type(town).__name__} "
                        "(wrap a carla.Map with drive_il.maps.TownMap.from_carla_map)")
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


def _lc_length(sg: LaneSegment, u: float) -> float:
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
        "lc": np.zeros(len(us), dtype=np.int8),  # 0: no lane change
    }
    # exact lane points at the interpolated ends need the Hermite curve, not the chord
    for idx, u in ((0, u0), (len(us) - 1, u1)):
        out["x"][idx], out["y"][idx] = _hermite_at(sg, u)
    return out


def _hermite_at(sg: LaneSegment, u: float) -> tuple[float, float]:
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
    side = RoadOption.CHANGELANELEFT if g.left[p.k] == p.to else RoadOption.CHANGELANERIGHT
    return {
        "x": x, "y": y,
        "z": np.where(pick_b, np.interp(ub, b.s, b.z), np.interp(ua, a.s, a.z)),
        "yaw": yaw,
        "width": np.where(pick_b, np.interp(ub, b.s, b.width), np.interp(ua, a.s, a.width)),
        "limit": np.where(pick_b, b.limit[np.clip(np.searchsorted(b.s, ub) - 1, 0, len(b.s) - 1)],
                          a.limit[np.clip(np.searchsorted(a.s, ua) - 1, 0, len(a.s) - 1)]),
        "seg": np.where(pick_b, p.to, p.k),
        "lc": np.full(n, int(side), dtype=np.int8),
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
    commands = route_commands(ryaw, junction, lc, su, junction_lead)
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


# ----------------------------------------------------------------------------- public API


def plan_route(town: Town, start_xy: Sequence[float], goal_xy: Sequence[float], *,
               via: Iterable[Sequence[float]] = (), spacing: float = 1.0,
               start_yaw: float | None = None, junction_lead: float = 10.0) -> Route:
    """Plan the shortest lane route from a start to a goal through optional via points.

    Args:
        town: the town (a TownMap) or its lane graph.
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
        TypeError: ``town`` is neither a TownMap nor a LaneGraph.
    """
    if not spacing > 0:
        raise ValueError(f"spacing must be > 0, got {spacing!r}")
    g = lane_graph_of(town)
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


def random_route(town: Town, rng: np.random.Generator, length: float, *,
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
        town: the town (a TownMap) or its lane graph.
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
        TypeError: ``town`` is neither a TownMap nor a LaneGraph.
    """
    if not length > 0:
        raise ValueError(f"length must be > 0, got {length!r}")
    if not spacing > 0:
        raise ValueError(f"spacing must be > 0, got {spacing!r}")
    g = lane_graph_of(town)
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
