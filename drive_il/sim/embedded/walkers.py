"""Pedestrians of the embedded world: walking on sidewalks, crossing with gap acceptance.

Walkers move on the town's pedestrian network (:mod:`drive_il.maps.sidewalks`):

* on **sidewalk and corner edges** at their own speed (drawn uniformly in
  ``TrafficConfig.walker_speed`` x [0.8, 1.2]; CARLA's walker blueprints walk at
  1.0-2.0 m/s), each keeping a lateral offset to the right of its walking direction;
* at a **junction corner** (arriving from a sidewalk at the end of a road that enters a
  junction) a walker decides to cross with probability ``junction_crossing``: it crosses
  the road it walked along (the crossing at that node) or, with even odds, walks round
  the corner and crosses the next road; otherwise it walks round the corner (or, where
  there is none, turns back). After crossing it walks on along either sidewalk;
* **mid-block**, a walker on a sidewalk starts to cross the road to the other side's
  sidewalk with rate ``midblock_crossing`` per minute (a Poisson process: probability
  ``1 - exp(-rate dt / 60)`` per step), perpendicular to the road
  (:meth:`~drive_il.maps.sidewalks.SidewalkNetwork.midblock_crossing`).

**Gap acceptance** (critical-gap model of pedestrian crossing behaviour; Brewer,
Fitzpatrick, Whitacre, Lord, "Exploration of pedestrian gap-acceptance behavior at
selected locations", Transp. Res. Rec. 1982, 2006, report accepted gaps of 5-9 s for the
85th percentile): a walker waits at the kerb until no vehicle -- NPC or ego -- would
reach the road part of its crossing within its critical gap (drawn per walker in
:data:`CRITICAL_GAP` seconds; shorter than a full crossing so that drivers do meet
walkers on the road and must yield) *and* every approaching vehicle is farther than its
stopping distance (reaction :data:`REACTION_TIME` s, deceleration
:data:`STOP_DECELERATION` m/s^2, plus :data:`CLEARANCE`): every crossing can be avoided
by a driver that brakes. A vehicle approaches when the crossing lies ahead of it
within a cone; a vehicle on the crossing (its centre within half its length +
:data:`ON_CROSSING` of it) always blocks, a stopped vehicle elsewhere never does (a walker
crosses in front of a car waiting at the stop line). Once on the road a walker keeps
walking (it never stops mid-road). At a signalised junction (``lights``, the world's
:class:`~drive_il.types.TrafficLight` heads) a walker crosses an approach only while
every head of that road is red (its vehicles are stopped), gap acceptance still applied.
A walker that has waited :data:`MAX_WAIT` s gives up and walks on along the sidewalk.

**Collisions**: :class:`WalkerCollisionDetector` tests the ego's oriented box against
each walker's circle and reports ``EventKind.WALKER_COLLISION`` once per contact onset
(as :class:`~drive_il.sim.embedded.events.CollisionDetector` does for vehicles).

**NPC vehicles yield**: :meth:`Walkers.obstacles` gives each walker on the road as
stopped obstacles at its position and along the rest of its crossing (up to
:data:`YIELD_AHEAD` m ahead), which the NPCs' IDM treats as leaders
(:meth:`drive_il.sim.embedded.traffic.Traffic.step`).

Cost: one vectorised numpy pass per step over all walkers (positions on the
concatenated edge points with one ``searchsorted``), Python only for the few walkers
reaching a node and for gap checks (numpy over waiting walkers x nearby vehicles, every
:data:`GAP_CHECK_STEPS` steps). Measured on one core of a loaded 2-core machine (Town01,
best of 30 x 50 steps): 50 walkers with 20 vehicles ~40 us/step, 250 walkers with 100
vehicles ~100 us/step; :meth:`Walkers.obstacles` 20-35 us, :meth:`Walkers.states` near
the ego ~2 us per returned walker.

Determinism: every draw comes from the given ``numpy.random.Generator`` (the world uses
``default_rng([seed, WALKER_STREAM])``), in a fixed order.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ...geometry import box_clearance
from ...maps.sidewalks import (
    CORNER,
    SIDEWALK,
    Crossing,
    SidewalkNetwork,
    sidewalk_network,
)
from ...scenario import TrafficConfig
from ...types import Event, EventKind, TrafficLightState, WalkerState, slot_setters

__all__ = [
    "CLEARANCE",
    "CRITICAL_GAP",
    "GAP_CHECK_STEPS",
    "MAX_WAIT",
    "ON_CROSSING",
    "REACTION_TIME",
    "STOP_DECELERATION",
    "WALKER_COLORS",
    "WALKER_ID_BASE",
    "WALKER_RADIUS",
    "WALKER_STATE_RADIUS",
    "WALKER_STREAM",
    "YIELD_AHEAD",
    "YIELD_SPACING",
    "WalkerCollisionDetector",
    "Walkers",
]

#: Walker actor ids start here (vehicles are numbered from 1, the ego is 0).
WALKER_ID_BASE = 100000
#: Second entry of the walkers' rng seed: ``default_rng([seed, WALKER_STREAM])``.
WALKER_STREAM = 3
#: Critical gap range [s] (uniform per walker).
CRITICAL_GAP = (3.0, 5.0)
#: Driver reaction time [s] and deceleration [m/s^2] of the stopping-distance test.
REACTION_TIME = 1.0
STOP_DECELERATION = 3.5
#: Extra distance [m] a vehicle's front must keep from the crossing (half a car + margin).
CLEARANCE = 4.0
#: A vehicle whose centre is within half its length + this of the crossing stands on it
#: and blocks it [m] (one stopped at the stop line, just before the crossing, does not).
ON_CROSSING = 0.5
#: A waiting walker gives up after this long [s].
MAX_WAIT = 30.0
#: A crossing walker does not step closer than this to a vehicle's body [m] (beyond its
#: radius): it holds where it is (pedestrians do not walk into cars).
BODY_CLEARANCE = 0.15
#: A crossing walker held by a vehicle's body this long [s] turns back to the kerb it
#: came from (and walks on along the sidewalk), so a car waiting for it can go; held
#: this long again on the way back, it turns once more and crosses after all.
TURN_BACK = 3.0
#: How far along its remaining crossing a walker on the road is an NPC obstacle [m].
YIELD_AHEAD = 5.0
#: Spacing of those obstacle points [m] (NPCs match obstacles within 1.6 m of their path).
YIELD_SPACING = 2.0
#: Waiting walkers look for a gap every this many steps (0.2 s at 20 Hz).
GAP_CHECK_STEPS = 4
#: Footprint radius [m] (``WalkerState.radius``).
WALKER_RADIUS = 0.3
#: :meth:`Walkers.states` near the ego, as the world fills ``WorldState.walkers`` [m]
#: (the camera draws walkers up to 90 m, ``camera.WALKER_DRAW``).
WALKER_STATE_RADIUS = 90.0
#: Clothes colours (RGB).
WALKER_COLORS: tuple[tuple[int, int, int], ...] = (
    (60, 60, 140), (150, 40, 40), (40, 110, 50), (200, 170, 60), (30, 30, 30),
    (220, 220, 220), (120, 70, 40), (90, 40, 110), (40, 130, 150), (170, 90, 130),
)

_WALK, _WAIT, _CROSS = 0, 1, 2
_CONE = 0.6          # approaching: lateral offset < _CONE * ahead + _CONE_BASE [m]
_CONE_BASE = 4.0
_END_MARGIN = 3.0    # no mid-block crossing this close to an edge's ends [m]


def _road_span(c: Crossing) -> tuple[float, float]:
    """(start, end) [m] along crossing ``c`` (from ``c.a``) of its part on the road,
    between the kerbs."""
    r0 = min(float(c.curb_a), float(c.length))
    return r0, max(float(c.length) - float(c.curb_b), r0)


class _Obstacle:
    """A walker (or a point of its crossing) as a stopped obstacle for the NPCs."""

    __slots__ = ("actor_id", "length", "speed", "static", "width", "x", "y", "yaw")

    def __init__(self, actor_id: int, x: float, y: float, yaw: float) -> None:
        self.actor_id = actor_id
        self.x, self.y, self.yaw = x, y, yaw
        self.speed = 0.0
        self.length = self.width = 2.0 * WALKER_RADIUS
        self.static = True


class Walkers:
    """The pedestrians of one episode.

    Args:
        town: the :class:`~drive_il.maps.towns.TownMap` (its sidewalk network is built
            once and memoised on it).
        config: the scenario's TrafficConfig (``walker_speed``, ``junction_crossing``,
            ``midblock_crossing``, ``min_spawn_distance``).
        dt: fixed step [s] (> 0).
        rng: the only source of randomness.

    Raises:
        ValueError: ``dt`` <= 0.
    """

    def __init__(self, town: Any, config: TrafficConfig, dt: float,
                 rng: np.random.Generator) -> None:
        if not dt > 0.0:
            raise ValueError(f"Walkers dt must be > 0 s, got {dt!r}")
        self.net: SidewalkNetwork = sidewalk_network(town)
        self.config = config
        self.dt = float(dt)
        self.rng = rng
        net = self.net
        # strictly increasing key over all edge points: edge offset + arc length
        off = np.concatenate([[0.0], np.cumsum(net.edge_length + 1.0)[:-1]]) if net.num_edges else \
            np.zeros(0)
        self._edge_off = off
        self._key = np.repeat(off, net.edge_count) + net.arclen if net.num_edges else np.zeros(0)
        # the key with +inf appended: key_x[k] <= q < key_x[k + 1] tells whether k is
        # still the search result for q (see _positions)
        self._key_x = np.append(self._key, np.inf)
        P = net.points
        d = np.diff(P, axis=0, append=P[-1:]) if len(P) else np.zeros((0, 2))
        n = np.hypot(d[:, 0], d[:, 1])
        n[n < 1e-9] = 1.0
        self._ux, self._uy = d[:, 0] / n, d[:, 1] / n
        self._px, self._py = P[:, 0].copy(), P[:, 1].copy()
        self._last = net.edge_start + net.edge_count - 2  # last segment of each edge
        self.count = 0
        self._alloc(0)
        self._p_mid = 1.0 - math.exp(-config.midblock_crossing * self.dt / 60.0)
        self._n_off = 0   # walkers not walking on an edge (waiting or crossing)
        self._checks = 0
        self.crossings_started = 0

    # ------------------------------------------------------------------ state arrays
    def _alloc(self, n: int) -> None:
        self.mode = np.zeros(n, np.int8)
        self._k = np.zeros(n, np.int64)       # per walker: its key index of the last step
        self.edge = np.zeros(n, np.int64)
        self.elen = np.zeros(n)              # per walker: its edge's length [m],
        self.eoff = np.zeros(n)              # key offset, first and last segment
        self.estart = np.zeros(n, np.int64)
        self.elast = np.zeros(n, np.int64)
        self.s = np.zeros(n)
        self.dir = np.ones(n)
        self.speed = np.zeros(n)
        self.offset = np.zeros(n)
        self.gap = np.zeros(n)
        self.wait = np.zeros(n)
        self.cross_next = np.zeros(n, bool)
        self.cs = np.zeros(n)             # way along the crossing [m]
        self.cax = np.zeros(n)
        self.cay = np.zeros(n)
        self.cux = np.zeros(n)
        self.cuy = np.zeros(n)
        self.clen = np.zeros(n)
        self.cr0 = np.zeros(n)
        self.cr1 = np.zeros(n)
        self.held = np.zeros(n)           # time held by a vehicle's body on the crossing [s]
        self.returning = np.zeros(n, bool)  # turned back: walking to the kerb it came from
        self.crossing: list[Crossing | None] = [None] * n
        self.resume: list[tuple[int, float, float]] = [(0, 0.0, 1.0)] * n
        self.colors: list[tuple[int, int, int]] = []
        self.x = np.zeros(n)
        self.y = np.zeros(n)
        self.yaw = np.zeros(n)
        self.on_road = np.zeros(n, bool)

    def _set_edge(self, i: int, e: int) -> None:
        self.edge[i] = e
        self.elen[i] = self.net.edge_length[e]
        self.eoff[i] = self._edge_off[e]
        self.estart[i] = self.net.edge_start[e]
        self.elast[i] = self._last[e]

    # ------------------------------------------------------------------ spawning
    def spawn(self, count: int, avoid: Sequence[tuple[float, float]] = ()) -> int:
        """Place ``count`` walkers on sidewalk edges (drawn by length), at least
        ``config.min_spawn_distance`` from each point of ``avoid`` (the ego's start).

        Returns:
            How many were placed (0 when the town has no sidewalks).

        Raises:
            ValueError: ``count`` < 0 or walkers were spawned already.
        """
        if count < 0:
            raise ValueError(f"walker count must be >= 0, got {count!r}")
        if self.count:
            raise ValueError("Walkers.spawn: walkers were spawned already")
        net = self.net
        side = np.flatnonzero((net.edge_kind == SIDEWALK) & (net.edge_length > 1.0)) \
            if net.num_edges else np.zeros(0, np.int64)
        if count == 0 or len(side) == 0:
            return 0
        rng, cfg = self.rng, self.config
        p = net.edge_length[side] / net.edge_length[side].sum()
        av = np.asarray(list(avoid), dtype=np.float64).reshape(-1, 2)
        d2 = cfg.min_spawn_distance ** 2
        self._alloc(count)
        for i in range(count):
            for _ in range(20):
                e = int(side[int(rng.choice(len(side), p=p))])
                s = float(rng.uniform(0.0, net.edge_length[e]))
                x, y, _ = net.point_at(e, s)
                if not len(av) or float(((av - (x, y)) ** 2).sum(axis=1).min()) >= d2:
                    break
            self._set_edge(i, e)
            self.s[i] = s
            self.dir[i] = 1.0 if rng.random() < 0.5 else -1.0
            self.speed[i] = max(0.3, cfg.walker_speed * float(rng.uniform(0.8, 1.2)))
            self.offset[i] = float(rng.uniform(-0.3, 0.5))
            self.gap[i] = float(rng.uniform(*CRITICAL_GAP))
            self.colors.append(WALKER_COLORS[int(rng.integers(len(WALKER_COLORS)))])
        self.count = count
        self._positions()
        return count

    # ------------------------------------------------------------------ stepping
    def step(self, ego: Any, vehicles: Sequence[Any] = (), lights: Sequence[Any] = ()) -> None:
        """Advance every walker by ``dt``.

        Args:
            ego: the ego (``x, y, yaw, speed, length``).
            vehicles: the NPCs (same attributes).
            lights: the world's :class:`~drive_il.types.TrafficLight` heads (may be empty).
        """
        n = self.count
        if n == 0:
            return
        dt = self.dt
        mode = self.mode
        moving = mode != _WALK
        if self._n_off:  # some wait or cross
            walk = ~moving
            self.s += np.where(walk, self.dir * self.speed * dt, 0.0)
            adv = np.where(mode == _CROSS, self.speed * dt, 0.0)
            crossing = np.flatnonzero(mode == _CROSS)
            if len(crossing):
                self._hold_at_bodies(crossing, adv, ego, vehicles)
            self.cs += adv
        else:
            self.s += self.dir * self.speed * dt
        net = self.net
        if self._p_mid > 0.0:
            u = self.rng.random(n)
            for i in np.flatnonzero(u < self._p_mid).tolist():
                e = int(self.edge[i])
                si = float(self.s[i])
                if mode[i] == _WALK and net.edge_kind[e] == SIDEWALK and net.edge_opposite[e] >= 0 \
                        and _END_MARGIN < si < self.elen[i] - _END_MARGIN:
                    c = net.midblock_crossing(e, si)
                    if c is not None:
                        self._start_wait(i, c, (e, si, float(self.dir[i])))
        # walkers past the end of their edge
        s = self.s
        past = np.flatnonzero((s < 0.0) | (s > self.elen))
        for i in past.tolist():
            if mode[i] == _WALK:
                self._at_node(i)
        if self._n_off:
            done = np.flatnonzero((mode == _CROSS) & (self.cs >= self.clen))
            for i in done.tolist():
                self._end_crossing(i)
            self._checks += 1
            if self._checks >= GAP_CHECK_STEPS:
                self._checks = 0
                waiting = np.flatnonzero(mode == _WAIT)
                if len(waiting):
                    self._gap_check(waiting, ego, vehicles, lights)
        self._n_off = int(np.count_nonzero(mode))
        self._positions()

    def start_crossing(self, index: int, crossing: Crossing) -> None:
        """Make walker ``index`` walk to ``crossing.a`` at once and wait there to cross
        (gap acceptance applies); for hand-built situations and scripted scenarios.

        Raises:
            IndexError: no such walker.
        """
        if not 0 <= index < self.count:
            raise IndexError(f"walker index {index!r} out of range (0 .. {self.count - 1})")
        e, s = int(self.edge[index]), float(np.clip(self.s[index], 0.0, self.elen[index]))
        self._start_wait(index, crossing, (e, s, float(self.dir[index])))
        self._positions()

    def _start_wait(self, i: int, c: Crossing, resume: tuple[int, float, float]) -> None:
        self.mode[i] = _WAIT
        self._n_off += 1
        self.crossing[i] = c
        self.resume[i] = resume
        self.wait[i] = 0.0
        self.cs[i] = 0.0
        L = max(c.length, 1e-6)
        self.cax[i], self.cay[i] = c.a
        self.cux[i], self.cuy[i] = (c.b[0] - c.a[0]) / L, (c.b[1] - c.a[1]) / L
        self.clen[i] = c.length
        self.cr0[i], self.cr1[i] = _road_span(c)

    def _walk_from(self, i: int, node: int, came: int, *, corner_only: bool = False) -> None:
        """Put walker i on an edge leaving ``node`` (not ``came`` unless it is the only
        one; only corners with ``corner_only`` when there is one)."""
        net = self.net
        opts = [(e, end) for e, end in net.node_edges[node] if e != came]
        if corner_only:
            corners = [o for o in opts if net.edge_kind[o[0]] == CORNER]
            opts = corners or opts
        if not opts:
            e, end = came, (0 if net.edge_nodes[came][0] == node else 1)
        elif len(opts) == 1:
            e, end = opts[0]
        else:
            e, end = opts[int(self.rng.integers(len(opts)))]
        self._set_edge(i, e)
        if end == 0:
            self.s[i], self.dir[i] = 0.0, 1.0
        else:
            self.s[i], self.dir[i] = float(net.edge_length[e]), -1.0
        self.mode[i] = _WALK

    def _at_node(self, i: int) -> None:
        net = self.net
        e = int(self.edge[i])
        end = 1 if self.s[i] > 0.0 else 0
        node = int(net.edge_nodes[e][end])
        here = net.crossings_at(node)
        if self.cross_next[i] and here:
            self.cross_next[i] = False
            c = here[int(self.rng.integers(len(here)))] if len(here) > 1 else here[0]
            self._start_wait(i, c, (e, float(net.edge_length[e]) if end else 0.0, float(self.dir[i])))
            return
        if net.edge_kind[e] == SIDEWALK and net.node_junction[node] >= 0:
            # a junction corner reached along a sidewalk: cross here, round the corner
            # and cross there, or walk round the corner
            corner = [c for c, _ in net.node_edges[node] if net.edge_kind[c] == CORNER]
            if self.rng.random() < self.config.junction_crossing:
                if here and (not corner or self.rng.random() < 0.5):
                    c = here[int(self.rng.integers(len(here)))] if len(here) > 1 else here[0]
                    self._start_wait(i, c, (e, float(net.edge_length[e]) if end else 0.0,
                                            float(self.dir[i])))
                    return
                self.cross_next[i] = bool(corner)
            self._walk_from(i, node, e, corner_only=True)
            return
        self.cross_next[i] = False
        self._walk_from(i, node, e)

    def _hold_at_bodies(self, idx: np.ndarray, adv: np.ndarray, ego: Any, vehicles: Sequence[Any]) -> None:
        """Crossing walkers ``idx`` whose next step would bring them within
        :data:`BODY_CLEARANCE` of a vehicle's body (the ego's or an NPC's bounding box),
        closer than they are, hold (``adv`` set to 0); one held :data:`TURN_BACK` s turns
        back to the kerb it came from."""
        vs = [ego, *vehicles]
        # positions first (the near test); the rest of a vehicle's box only for the
        # few (walker, vehicle) pairs that are near
        vx = np.array([v.x for v in vs], dtype=np.float64)
        vy = np.array([v.y for v in vs], dtype=np.float64)
        off = self.offset[idx]
        ux, uy = self.cux[idx], self.cuy[idx]
        x0 = self.cax[idx] + ux * self.cs[idx] - uy * off
        y0 = self.cay[idx] + uy * self.cs[idx] + ux * off
        x1, y1 = x0 + ux * adv[idx], y0 + uy * adv[idx]
        near = ((vx[None, :] - x0[:, None]) ** 2 + (vy[None, :] - y0[:, None]) ** 2) < 64.0
        rows, cols = np.nonzero(near)
        if len(rows) == 0:
            self.held[idx] = 0.0
            return
        sub = [vs[c] for c in cols.tolist()]
        boxes = (vx[cols], vy[cols], np.array([v.yaw for v in sub], dtype=np.float64),
                 np.array([0.5 * v.length for v in sub], dtype=np.float64),
                 np.array([0.5 * v.width for v in sub], dtype=np.float64))
        d0, d1 = box_clearance(x0[rows], y0[rows], *boxes), box_clearance(x1[rows], y1[rows], *boxes)
        bad = (d1 < WALKER_RADIUS + BODY_CLEARANCE) & (d1 < d0)
        blocked = np.zeros(len(idx), bool)
        blocked[rows[bad]] = True
        self.held[idx[~blocked]] = 0.0
        dt = self.dt
        for i in idx[blocked].tolist():
            adv[i] = 0.0
            self.held[i] += dt
            if self.held[i] >= TURN_BACK:
                self._turn_back(i)

    def _turn_back(self, i: int) -> None:
        """Walker i reverses along its crossing: from the way out back to the kerb it
        started from, or (held again on the way back, e.g. by a car that moved up beside
        it) on again to the far kerb, so no walker and car wait for each other for ever.
        The walker keeps its world position and side (the lateral offset flips with the
        direction)."""
        c = self.crossing[i]
        L = float(c.length)
        r0, r1 = _road_span(c)
        cs = float(self.cs[i])
        self.cax[i] += self.cux[i] * cs
        self.cay[i] += self.cuy[i] * cs
        self.cux[i], self.cuy[i] = -self.cux[i], -self.cuy[i]
        if self.returning[i]:  # on again: p [m] along the crossing from its start kerb
            p = float(self.clen[i]) - cs
            self.clen[i] = max(L - p, 0.0)
            self.cr0[i], self.cr1[i] = max(r0 - p, 0.0), max(r1 - p, 0.0)
        else:  # back: the way walked, reversed
            self.cr0[i], self.cr1[i] = max(cs - r1, 0.0), max(cs - r0, 0.0)
            self.clen[i] = cs
        self.cs[i] = 0.0
        self.offset[i] = -self.offset[i]
        self.held[i] = 0.0
        self.returning[i] = not self.returning[i]

    def _end_crossing(self, i: int) -> None:
        if self.returning[i]:  # back at the kerb it came from: walk on along the sidewalk
            self.returning[i] = False
            self.offset[i] = -self.offset[i]
            self._give_up(i)
            return
        c = self.crossing[i]
        self.crossing[i] = None
        if c.to_edge >= 0:  # mid-block: walk on along the other side, either way
            self._set_edge(i, c.to_edge)
            self.s[i] = c.to_s
            self.dir[i] = 1.0 if self.rng.random() < 0.5 else -1.0
            self.mode[i] = _WALK
        else:
            self._walk_from(i, c.node_b, -1)

    def _give_up(self, i: int) -> None:
        e, s, d = self.resume[i]
        self.crossing[i] = None
        self._set_edge(i, e)
        self.s[i] = s
        net = self.net
        at_end = s >= net.edge_length[e] - 1e-9 or s <= 1e-9
        if at_end:  # a junction crossing: walk on round the corner, or back
            node = int(net.edge_nodes[e][1 if s > 0.0 else 0])
            self._walk_from(i, node, e, corner_only=True)
        else:
            self.dir[i] = d
            self.mode[i] = _WALK

    def _gap_check(self, idx: np.ndarray, ego: Any, vehicles: Sequence[Any],
                   lights: Sequence[Any]) -> None:
        dt = self.dt
        self.wait[idx] += dt * GAP_CHECK_STEPS
        # the road part of each crossing: A -> B
        ax = self.cax[idx] + self.cux[idx] * self.cr0[idx]
        ay = self.cay[idx] + self.cuy[idx] * self.cr0[idx]
        bx = self.cax[idx] + self.cux[idx] * self.cr1[idx]
        by = self.cay[idx] + self.cuy[idx] * self.cr1[idx]
        V = np.array([(ego.x, ego.y, ego.yaw, ego.speed, ego.length)]
                     + [(v.x, v.y, v.yaw, v.speed, v.length) for v in vehicles], dtype=np.float64)
        # only vehicles near some crossing can block (reach: the longest gap at their speed)
        vv = V[:, 3]
        reach = vv * np.maximum(CRITICAL_GAP[1], REACTION_TIME + vv / (2.0 * STOP_DECELERATION)) \
            + 0.5 * V[:, 4] + CLEARANCE + 0.5 * (self.clen[idx].max() + 1.0)
        mx, my = 0.5 * (ax + bx), 0.5 * (ay + by)
        near = (((V[:, 0] - mx[:, None]) ** 2 + (V[:, 1] - my[:, None]) ** 2)
                <= reach * reach).any(axis=0)
        if not near.any():
            blocks = np.zeros((len(idx), 1), bool)
        else:
            V = V[near]
            vx, vy, vyaw, vv, vhl = V[:, 0], V[:, 1], V[:, 2], V[:, 3], 0.5 * V[:, 4]
            dx, dy = (bx - ax)[:, None], (by - ay)[:, None]
            L2 = np.maximum(dx * dx + dy * dy, 1e-9)
            t = np.clip(((vx - ax[:, None]) * dx + (vy - ay[:, None]) * dy) / L2, 0.0, 1.0)
            cx = ax[:, None] + dx * t - vx
            cy = ay[:, None] + dy * t - vy
            dist = np.hypot(cx, cy)
            c, s = np.cos(vyaw), np.sin(vyaw)
            ahead = cx * c + cy * s
            lateral = np.abs(cy * c - cx * s)
            free = np.maximum(dist - vhl - CLEARANCE, 0.0)
            approaching = (vv > 0.2) & (ahead > 0.0) & (lateral < _CONE * ahead + _CONE_BASE)
            t_arrive = free / np.maximum(vv, 0.1)
            stop = vv * REACTION_TIME + vv * vv / (2.0 * STOP_DECELERATION)
            blocks = (dist < vhl + ON_CROSSING) | (
                approaching & ((t_arrive < self.gap[idx][:, None]) | (free < stop)))
        ok = ~blocks.any(axis=1)
        if lights:
            ok &= self._lights_allow(idx, lights)
        for k, i in enumerate(idx.tolist()):
            if ok[k]:
                self.mode[i] = _CROSS
                self.cs[i] = 0.0
                self.crossings_started += 1
            elif self.wait[i] > MAX_WAIT:
                self._give_up(i)

    def _lights_allow(self, idx: np.ndarray, lights: Sequence[Any]) -> np.ndarray:
        """Per waiting walker: False at a junction crossing of a road that has a head
        (``TrafficLight.junction_id`` and a ``lanes`` entry of that road) not red."""
        red = TrafficLightState.RED
        heads: dict[tuple[int, int], bool] = {}  # (junction, road) -> all red so far
        for lt in lights:
            for road, _lane in lt.lanes:
                key = (int(lt.junction_id), int(road))
                heads[key] = heads.get(key, True) and lt.state == red
        out = np.ones(len(idx), bool)
        for k, i in enumerate(idx.tolist()):
            c = self.crossing[i]
            if c is not None and c.junction_id >= 0:
                out[k] = heads.get((c.junction_id, c.road_id), True)
        return out

    # ------------------------------------------------------------------ outputs
    def _positions(self) -> None:
        n = self.count
        if n == 0:
            return
        net = self.net
        # (np.clip as the two ufuncs it is made of: min(max(a, lo), hi), without the
        # wrapper's cost)
        s = np.minimum(np.maximum(self.s, 0.0), self.elen)
        # k = searchsorted(key, q, "right") - 1, the last key <= q: a walker moves a few
        # cm a step, so last step's k mostly still satisfies key[k] <= q < key[k + 1]
        # (which makes it that same result); the binary search runs for the others only
        q = self.eoff + s
        kr = self._k
        key_x = self._key_x
        stale = np.flatnonzero((key_x[kr] > q) | (key_x[kr + 1] <= q))
        if len(stale):
            kr[stale] = np.searchsorted(self._key, q[stale], side="right") - 1
        k = kr.copy()
        np.minimum(np.maximum(k, self.estart, out=k), self.elast, out=k)
        ds = s - net.arclen[k]
        ux, uy = self._ux[k], self._uy[k]
        x = self._px[k] + ux * ds
        y = self._py[k] + uy * ds
        d = self.dir
        wx, wy = ux * d, uy * d
        off = self.mode != _WALK
        if off.any():
            cs = self.cs
            x = np.where(off, self.cax + self.cux * cs, x)
            y = np.where(off, self.cay + self.cuy * cs, y)
            wx = np.where(off, self.cux, wx)
            wy = np.where(off, self.cuy, wy)
            self.on_road = (self.mode == _CROSS) & (cs >= self.cr0) & (cs <= self.cr1)
        else:
            self.on_road = np.zeros(n, bool)
        o = self.offset
        self.x = x - wy * o
        self.y = y + wx * o
        self.yaw = np.arctan2(wy, wx)

    def obstacles(self) -> list[_Obstacle]:
        """Walkers on the road as stopped obstacles for the NPCs: each at its position
        and every :data:`YIELD_SPACING` m along the rest of the road part of its crossing, up to
        :data:`YIELD_AHEAD` m (objects with ``actor_id, x, y, yaw, speed, length, width,
        static``)."""
        out: list[_Obstacle] = []
        idx = np.flatnonzero(self.mode == _CROSS) if self.count else ()
        if not len(idx):
            return out
        # the crossing walkers' values as plain floats (the same float64 arithmetic as
        # on numpy scalars, without their cost)
        cols = [a[idx].tolist() for a in (self.cs, self.cr0, self.cr1, self.yaw, self.x, self.y,
                                          self.cax, self.cay, self.cux, self.cuy)]
        for i, cs, r0, r1, yaw, x, y, cax, cay, cux, cuy in zip(idx.tolist(), *cols):
            if cs > r1:
                continue
            wid = WALKER_ID_BASE + i
            end = min(r1, cs + YIELD_AHEAD)
            t = max(cs, r0 - 1.0)
            ox, oy = x - cax - cux * cs, y - cay - cuy * cs
            while t <= end + 1e-9:
                out.append(_Obstacle(wid, cax + cux * t + ox, cay + cuy * t + oy, yaw))
                t += YIELD_SPACING
        return out

    def states(self, near: tuple[float, float] | None = None,
               radius: float = math.inf) -> tuple[WalkerState, ...]:
        """The walkers as :class:`~drive_il.types.WalkerState` (ids from
        :data:`WALKER_ID_BASE`), all of them or those within ``radius`` [m] of ``near``."""
        n = self.count
        if n == 0:
            return ()
        if near is None or not math.isfinite(radius):
            idx = slice(None)
            ids = range(n)
        else:
            idx = np.flatnonzero((self.x - near[0]) ** 2 + (self.y - near[1]) ** 2
                                 <= radius * radius)
            ids = idx.tolist()
        # (the selected walkers' values only, as plain floats)
        x, y, yaw = self.x[idx].tolist(), self.y[idx].tolist(), self.yaw[idx].tolist()
        sp = np.where(self.mode[idx] == _WAIT, 0.0, self.speed[idx]).tolist()
        road = self.on_road[idx].tolist()
        cols = self.colors
        base = WALKER_ID_BASE
        return tuple([_walker_state(base + i, xi, yi, yawi, spi, ri, cols[i])
                      for i, xi, yi, yawi, spi, ri in zip(ids, x, y, yaw, sp, road)])


# the walkers near the ego are new WalkerStates every step: built slot by slot
# (drive_il.types.slot_setters)
_NEW = object.__new__
(_SET_ID, _SET_X, _SET_Y, _SET_YAW, _SET_SPEED, _SET_Z, _SET_RADIUS, _SET_HEIGHT, _SET_ROAD,
 _SET_COLOR) = slot_setters(WalkerState, ("actor_id", "x", "y", "yaw", "speed", "z", "radius", "height",
                                          "on_road", "color"))


def _walker_state(actor_id: int, x: float, y: float, yaw: float, speed: float, on_road: bool,
                  color: tuple[int, int, int]) -> WalkerState:
    """``WalkerState(actor_id, x, y, yaw, speed, 0.0, WALKER_RADIUS, 1.75, on_road,
    color)``, built slot by slot."""
    st = _NEW(WalkerState)
    _SET_ID(st, actor_id)
    _SET_X(st, x)
    _SET_Y(st, y)
    _SET_YAW(st, yaw)
    _SET_SPEED(st, speed)
    _SET_Z(st, 0.0)
    _SET_RADIUS(st, WALKER_RADIUS)
    _SET_HEIGHT(st, 1.75)
    _SET_ROAD(st, on_road)
    _SET_COLOR(st, color)
    return st


class WalkerCollisionDetector:
    """Ego-vs-walker contacts (oriented box against circle), reported on onset.

    Args:
        length, width: ego bounding box [m].
    """

    __slots__ = ("contacts", "length", "width")

    def __init__(self, *, length: float, width: float) -> None:
        self.length = float(length)
        self.width = float(width)
        self.contacts: frozenset[int] = frozenset()

    def touching(self, x: float, y: float, yaw: float, wx: np.ndarray, wy: np.ndarray,
                 radius: float = WALKER_RADIUS) -> np.ndarray:
        """Indices of the walkers at (wx, wy) [m] whose circle overlaps the ego box."""
        if len(wx) == 0:
            return np.zeros(0, np.int64)
        c, s = math.cos(yaw), math.sin(yaw)
        dx, dy = wx - x, wy - y
        f = dx * c + dy * s
        r = -dx * s + dy * c
        hl, hw = 0.5 * self.length, 0.5 * self.width
        ex = np.abs(f) - hl
        ey = np.abs(r) - hw
        d2 = np.maximum(ex, 0.0) ** 2 + np.maximum(ey, 0.0) ** 2
        return np.flatnonzero(d2 < radius * radius)

    def prime(self, x: float, y: float, yaw: float, walkers: Walkers | None) -> None:
        """Take the contacts present now as known (not reported by the next detect)."""
        self.contacts = frozenset(self._ids(x, y, yaw, walkers))

    def _ids(self, x: float, y: float, yaw: float, walkers: Walkers | None) -> list[int]:
        if walkers is None or walkers.count == 0:
            return []
        return [WALKER_ID_BASE + int(i) for i in self.touching(x, y, yaw, walkers.x, walkers.y)]

    def detect(self, x: float, y: float, yaw: float, walkers: Walkers | None,
               frame: int, sim_time: float) -> list[Event]:
        """WALKER_COLLISION events (``other_actor`` = walker id) for new contacts."""
        now = frozenset(self._ids(x, y, yaw, walkers))
        ev = [Event(kind=EventKind.WALKER_COLLISION, frame=frame, sim_time=sim_time, other_actor=i)
              for i in sorted(now - self.contacts)]
        self.contacts = now
        return ev
