"""NPC traffic of the embedded world: lane following, random junction branches, IDM.

Every NPC drives along the centre line of its lane: its path is a list of lane-centre
points every :data:`PATH_SPACING` metres obtained with ``carla.Waypoint.next``, extended
ahead as it drives; where ``next`` offers several branches (a junction entry) one is
drawn uniformly with the scenario's ``numpy.random.Generator``. The NPC's pose is the
point at its arc length on that path (bounding-box centre on the lane centre, heading
interpolated from the lane direction) -- the lane-keeping behaviour of CARLA's Traffic
Manager without a lateral controller to tune (exact lane centres, no oscillation, a few
microseconds per vehicle; a pure-pursuit controller on the same waypoints would only
add a lateral error the NPCs do not need).

Longitudinal motion follows the Intelligent Driver Model (Treiber, Hennecke, Helbing,
"Congested traffic states in empirical observations and microscopic simulations",
Phys. Rev. E 62, 2000):

    a = a_max [1 - (v / v0)^4 - (s* / s)^2],   s* = s0 + v T + v (v - v_lead) / (2 sqrt(a_max b))

with the desired speed v0 (``TrafficConfig.target_speed``, spread per vehicle), the
standstill gap s0 (``min_gap``), the time headway T (``time_headway``), the maximum
acceleration a (``acceleration``) and comfortable deceleration b
(:data:`IDM_DECELERATION`). v0 is further capped in curves to keep the lateral
acceleration below ``lateral_acceleration`` (the defaults are calibrated to queue
discharge at green lights: :class:`~drive_il.scenario.TrafficConfig`). The leader is the nearest vehicle ahead
on the NPC's own path (within :data:`PATH_TOLERANCE` of it): other NPCs going the same
way or crossing it (not oncoming ones), static vehicles, and the ego in any heading, so
NPCs do not rear-end or run into the ego; the gap is bumper to bumper. The leaders are
found with one vectorised distance pass over all pairs per step, then a scan of the
part of each path that can hold them.

Junctions are entered first come, first served: an NPC claims the junction ahead when
it is within its braking distance of it; other NPCs may join the claim only for the
same movement (same lane in and out, a platoon) and otherwise wait at the entry until
the claims are released (:meth:`Traffic._junction_gap`), so NPCs do not drive through
each other at junctions.

Traffic lights (``Traffic.step(ego, lights=...)``, the
:class:`~drive_il.types.TrafficLight` heads of the world): an NPC approaching a junction
whose entry lane is controlled by a light stops with its front :data:`STOP_LINE_MARGIN`
before the stop line when the light is red, and when it is yellow if it can stop there
at the comfortable deceleration b; it goes on green (and on red or yellow when it could
not stop any more even at :data:`MAX_BRAKING`: it entered the light's yellow too close).
The stop is an IDM obstacle at the stop line (standstill gap s0 included). An NPC stopping
for a light does not claim the junction (and gives up a claim it made before the light
changed), so cross traffic with green is not held up; waiting at a light, or queued
behind a vehicle that waits at one, is not "blocked" (no deadlock breaking: lights turn
green by themselves). Without lights nothing of this runs.

No deadlock: a vehicle is a leader only when it is ahead on the path; two NPCs that see
each other as leaders (merging side by side) are resolved by id (the lower id ignores
the other); an NPC blocked by another NPC or waiting at a junction for more than
:data:`MAX_BLOCKED_S` ignores NPC leaders and junction claims until it moves again; an
NPC whose lane ends (dead end) is removed. NPCs do not change lanes or overtake.

Everything is pure Python floats and the given rng: the same seed gives the same
traffic, bit for bit.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from bisect import bisect_left, bisect_right
from typing import Any, Sequence

import numpy as np

from ...geometry import box_clearance
from ...scenario import TrafficConfig
from ...types import ActorState, slot_setters

__all__ = ["NPCVehicle", "Traffic", "PATH_SPACING", "IDM_DECELERATION", "MAX_BLOCKED_S", "PATH_TOLERANCE",
           "JUNCTION_LEADER", "LIGHT_LEADER", "STOP_LINE_MARGIN", "NPC_COLORS"]

log = logging.getLogger(__name__)

#: Lane-centre path resolution [m].
PATH_SPACING = 2.0
#: IDM comfortable deceleration b [m/s^2] (Treiber et al. 2000: 1.67).
IDM_DECELERATION = 2.0
#: Hardest braking of an NPC [m/s^2].
MAX_BRAKING = 8.0
#: After this long blocked by another NPC [s], NPC leaders are ignored.
MAX_BLOCKED_S = 15.0
#: A vehicle whose centre is within this distance of a path point [m] is on the path.
PATH_TOLERANCE = 1.6
#: With traffic lights, an NPC does not enter a junction whose exit is jammed: its NPC
#: leader stands past the entry, slower than this [m/s], with its rear within one NPC
#: length + min_gap of the exit.
BOX_SPEED = 1.0
#: At a signalised entry, a claim on the junction by another approach's NPC standing
#: slower than this [m/s] does not hold up the green.
STUCK_CLAIM_SPEED = 0.5
#: With traffic lights, an NPC about to enter a junction with no leader within its usual
#: lookahead looks this far ahead [m] for a car standing past the exit (entry <= braking
#: distance + 8 m, a junction up to ~26 m, a car length and min_gap beyond).
BOX_LOOK = 45.0
#: The ego is an NPC's leader where the NPC's path comes within its half width + this of
#: the ego's bounding box [m].
EGO_MARGIN = 0.3
#: Other NPCs on the path heading more than this from its direction are oncoming and
#: not followed [rad]; crossing ones are (an NPC yields to a vehicle crossing its path).
ONCOMING_HEADING = math.radians(135.0)
#: ``NPCVehicle.leader`` while waiting at a junction's entry.
JUNCTION_LEADER = -2
#: ``NPCVehicle.leader`` while stopping for a red or yellow traffic light.
LIGHT_LEADER = -3
#: An NPC stopping for a light stops with its front this far before the stop line [m].
STOP_LINE_MARGIN = 0.5
#: Car body colours (RGB) drawn for NPCs.
NPC_COLORS: tuple[tuple[int, int, int], ...] = (
    (160, 30, 30), (30, 60, 150), (220, 220, 220), (25, 25, 25), (120, 120, 125),
    (200, 160, 40), (40, 110, 60), (90, 20, 80), (180, 90, 30), (70, 140, 170),
)
_DEG = math.pi / 180.0
_TWO_PI = 2.0 * math.pi
_RED, _YELLOW = 0, 1  # TrafficLightState.RED, .YELLOW (carla.TrafficLightState numbering)
#: Hybrid mode: NPCs beyond ``TrafficConfig.hybrid_radius`` of the ego move every this
#: many steps (over the time elapsed since their last move).
HYBRID_EVERY = 4
#: Above this many moving NPCs the leader broad phase runs in numpy.
_VECTORISE_ABOVE = 40
#: ... or above this many (mover, other) pairs (e.g. few movers among many walkers).
#: Measured on Town01's dense traffic (115 others): the plain loop costs ~0.13 us a pair,
#: the numpy pass ~50 us + ~0.035 us a pair; they break even near 500 pairs. Both give
#: the same pairs and distances.
_VECTORISE_PAIRS = 500


class NPCVehicle:
    """One NPC (or a static vehicle): pose, speed and its lane path ahead.

    Attributes:
        actor_id: unique id (>= 1; the ego is 0).
        x, y, yaw: bounding-box centre [m] and heading [rad].
        speed: [m/s].
        length, width, height: bounding box [m].
        color: RGB body colour.
        desired_speed: IDM v0 [m/s].
        static: never moves (a parked or stopped vehicle).
    """

    __slots__ = ("actor_id", "x", "y", "yaw", "speed", "length", "width", "height", "color",
                 "desired_speed", "static", "px", "py", "pyaw", "ps", "pk", "pj", "plane", "i", "s", "tail",
                 "dead_end", "blocked", "leader", "ignore_npcs", "claim", "cached", "queued",
                 "stop_for", "last_tick", "runs", "posed")

    def __init__(self, *, actor_id: int, x: float, y: float, yaw: float, length: float,
                 width: float, height: float, color: tuple[int, int, int],
                 desired_speed: float = 0.0, static: bool = False) -> None:
        self.actor_id = actor_id
        self.x, self.y, self.yaw = float(x), float(y), float(yaw)
        self.speed = 0.0
        self.length, self.width, self.height = float(length), float(width), float(height)
        self.color = color
        self.desired_speed = float(desired_speed)
        self.static = static
        self.px: list[float] = []
        self.py: list[float] = []
        self.pyaw: list[float] = []
        self.ps: list[float] = []
        self.pk: list[float] = []  # |curvature| [1/m] of the segment ending at each point
        self.pj: list[int] = []  # junction id of each point (-1 outside junctions)
        self.plane: list[tuple[int, int]] = []  # (road_id, lane_id) of each point
        # indices j >= 1 where a junction run starts (pj[j] != -1, pj[j] != pj[j - 1]),
        # in increasing order: the junction scans ahead visit these, not every point
        self.runs: list[int] = []
        self.posed = False  # x, y, yaw were computed by Traffic._move from (i, s)
        self.i = 0
        self.s = 0.0
        self.tail: Any = None
        self.dead_end = False
        self.blocked = 0.0
        self.leader = -1
        self.ignore_npcs = False
        self.claim: list[tuple[int, float]] = []  # junctions held: (junction id, exit s)
        self.cached: ActorState | None = None
        self.last_tick = 0  # Traffic step count at the last update (hybrid mode)
        self.queued = False  # waiting at a light, or behind a vehicle that is
        self.stop_for = -1  # id of the light the NPC has decided to stop for

    def actor_state(self) -> ActorState:
        """The vehicle as a frozen :class:`ActorState` (cached until it moves again)."""
        st = self.cached
        if st is None:
            st = self.cached = _actor_state(self.actor_id, self.x, self.y, self.yaw, self.speed,
                                            self.length, self.width, self.height, self.color)
        return st


# every moving NPC needs a new ActorState each step: built slot by slot
# (drive_il.types.slot_setters)
_NEW = object.__new__
(_SET_ID, _SET_X, _SET_Y, _SET_YAW, _SET_SPEED, _SET_Z, _SET_LENGTH, _SET_WIDTH, _SET_HEIGHT,
 _SET_COLOR) = slot_setters(ActorState, ("actor_id", "x", "y", "yaw", "speed", "z", "length", "width",
                                         "height", "color"))
_Z0 = next(f.default for f in dataclasses.fields(ActorState) if f.name == "z")


def _actor_state(actor_id: int, x: float, y: float, yaw: float, speed: float, length: float,
                 width: float, height: float, color: tuple[int, int, int]) -> ActorState:
    """``ActorState(actor_id=..., ..., color=...)`` (z at its default), built slot by slot."""
    st = _NEW(ActorState)
    _SET_ID(st, actor_id)
    _SET_X(st, x)
    _SET_Y(st, y)
    _SET_YAW(st, yaw)
    _SET_SPEED(st, speed)
    _SET_Z(st, _Z0)
    _SET_LENGTH(st, length)
    _SET_WIDTH(st, width)
    _SET_HEIGHT(st, height)
    _SET_COLOR(st, color)
    return st


def _claim_reach(npc: NPCVehicle) -> float:
    """Arc length [m] up to which an NPC claims (and checks) the junction ahead: its
    braking distance at IDM's comfortable deceleration + 8 m past its position."""
    v = npc.speed
    return npc.s + v * v / (2.0 * IDM_DECELERATION) + 8.0


def _junction_end(pj: list[int], j: int) -> int:
    """Index of the first path point after the junction that point ``j`` lies in
    (``len(pj)`` when the path ends inside it)."""
    jid = pj[j]
    k = j
    n = len(pj)
    while k < n and pj[k] == jid:
        k += 1
    return k


def _lerp_angle(a: float, b: float, t: float) -> float:
    d = (b - a + math.pi) % _TWO_PI - math.pi
    return a + d * t


class Traffic:
    """NPC vehicles of one episode.

    Args:
        carla_map: the town.
        config: the scenario's TrafficConfig.
        dt: fixed step [s].
        rng: the only source of randomness (spawn choice, speeds, colours, branches).
    """

    def __init__(self, carla_map: Any, config: TrafficConfig, *, dt: float,
                 rng: np.random.Generator) -> None:
        import carla
        self.map = carla_map
        self.config = config
        self.dt = float(dt)
        self.rng = rng
        self.vehicles: list[NPCVehicle] = []
        self._next_id = 1
        self._loc = carla.Location
        self._driving = carla.LaneType.Driving
        self._a_max = float(config.acceleration)
        self._a_lat = float(config.lateral_acceleration)
        self._sqrt_ab = math.sqrt(self._a_max * IDM_DECELERATION)
        # junction id -> {npc id: movement ((road, lane) in, (road, lane) out)}
        self._claims: dict[int, dict[int, tuple]] = {}
        # (road, lane) of a controlled incoming lane -> index of its light in ``lights``
        self._lane_light: dict[tuple[int, int], int] = {}
        self._n_lights = -1
        self._tick = 0  # steps taken (hybrid mode's schedule)

    # ------------------------------------------------------------------ spawning
    def _new_id(self) -> int:
        i = self._next_id
        self._next_id += 1
        return i

    def spawn(self, count: int, spawn_points: Sequence[Any], *,
              avoid: Sequence[tuple[float, float]] = (),
              length: float = 4.5, width: float = 1.9, height: float = 1.5) -> int:
        """Spawn up to ``count`` moving NPCs at rest on spawn points drawn with the rng,
        at least ``config.min_spawn_distance`` from each point of ``avoid`` (the ego's
        start) and from each other.

        Args:
            count: how many.
            spawn_points: candidates with ``x, y, yaw`` (``drive_il.sim.maps.spawn_points``).
            avoid: (x, y) points to keep clear.

        Returns:
            The number spawned (fewer than ``count`` when the town is too small; logged).
        """
        if count <= 0 or not spawn_points:
            return 0
        d2 = self.config.min_spawn_distance ** 2
        taken = [(float(x), float(y)) for x, y in avoid] + [(v.x, v.y) for v in self.vehicles]
        order = self.rng.permutation(len(spawn_points))
        n = 0
        cfg = self.config
        for k in order:
            if n >= count:
                break
            p = spawn_points[int(k)]
            if any((p.x - x) ** 2 + (p.y - y) ** 2 < d2 for x, y in taken):
                continue
            wp = self.map.get_waypoint(self._loc(float(p.x), float(p.y), 0.0), True, self._driving)
            if wp is None:
                continue
            v0 = cfg.target_speed * (1.0 + cfg.speed_spread * float(self.rng.uniform(-1.0, 1.0)))
            color = NPC_COLORS[int(self.rng.integers(len(NPC_COLORS)))]
            npc = NPCVehicle(actor_id=self._new_id(), x=p.x, y=p.y, yaw=p.yaw, length=length,
                             width=width, height=height, color=color, desired_speed=v0)
            self._start_path(npc, wp)
            npc.last_tick = self._tick
            self.vehicles.append(npc)
            taken.append((npc.x, npc.y))
            n += 1
        if n < count:
            log.warning("traffic: spawned %d of %d vehicles (not enough free spawn points)", n, count)
        return n

    def add_static(self, x: float, y: float, yaw: float, *, length: float = 4.5,
                   width: float = 1.9, height: float = 1.5,
                   color: tuple[int, int, int] = (120, 120, 125)) -> int:
        """Place a vehicle that never moves (e.g. a stopped lead vehicle); returns its id."""
        npc = NPCVehicle(actor_id=self._new_id(), x=x, y=y, yaw=yaw, length=length, width=width,
                         height=height, color=tuple(int(c) for c in color), static=True)
        self.vehicles.append(npc)
        return npc.actor_id

    def _start_path(self, npc: NPCVehicle, wp: Any) -> None:
        t = wp.transform
        npc.px, npc.py = [t.location.x], [t.location.y]
        npc.pyaw, npc.ps, npc.pk = [t.rotation.yaw * _DEG], [0.0], [0.0]
        npc.pj = [wp.junction_id if wp.is_junction else -1]
        npc.plane = [(wp.road_id, wp.lane_id)]
        npc.runs = []
        npc.posed = False
        npc.i, npc.s, npc.tail = 0, 0.0, wp
        npc.x, npc.y, npc.yaw = npc.px[0], npc.py[0], npc.pyaw[0]
        npc.cached = None
        self._extend(npc, 60.0)

    def _extend(self, npc: NPCVehicle, until: float) -> None:
        """Grow the path until it reaches arc length ``until`` [m] (or a dead end)."""
        ps = npc.ps
        while ps[-1] < until and not npc.dead_end:
            nxt = npc.tail.next(PATH_SPACING)
            if not nxt:
                npc.dead_end = True
                break
            wp = nxt[0] if len(nxt) == 1 else nxt[int(self.rng.integers(len(nxt)))]
            t = wp.transform
            x, y = t.location.x, t.location.y
            d = math.hypot(x - npc.px[-1], y - npc.py[-1])
            if d < 1e-3:  # degenerate: skip ahead
                npc.tail = wp
                continue
            yaw = t.rotation.yaw * _DEG
            npc.pk.append(abs((yaw - npc.pyaw[-1] + math.pi) % _TWO_PI - math.pi) / d)
            npc.px.append(x)
            npc.py.append(y)
            npc.pyaw.append(yaw)
            jid = wp.junction_id if wp.is_junction else -1
            if jid != -1 and jid != npc.pj[-1]:
                npc.runs.append(len(ps))
            npc.pj.append(jid)
            npc.plane.append((wp.road_id, wp.lane_id))
            ps.append(ps[-1] + d)
            npc.tail = wp

    # ------------------------------------------------------------------ stepping
    def _leader(self, npc: NPCVehicle, cands: Sequence[tuple[Any, float]], ego: Any,
                lookahead: float) -> tuple[float, float, int, float]:
        """(gap [m], leader speed [m/s], leader id, max curvature ahead [1/m]).

        ``cands`` are (vehicle, distance [m]) pairs within the lookahead circle and not
        behind. A vehicle at distance D can only lie near path points whose arc length
        ahead is at least D - tolerance (an arc is never shorter than its chord) and,
        for paths turning by at most ~90 deg within the lookahead, at most 1.5 D + 4 m;
        only that window of the path is scanned.
        """
        px, py, ps, pyaw = npc.px, npc.py, npc.ps, npc.pyaw
        s0 = npc.s
        i0 = npc.i + 1
        n = len(ps)
        # j_end: the first point from i0 with ps[j] - s0 > lookahead (a binary search
        # on ps <= s0 + lookahead, then the exact test of the linear scan this replaces
        # at the boundary: both are monotone in ps, they differ only by a rounding)
        j_end = bisect_right(ps, s0 + lookahead, i0)
        while j_end > i0 and not ps[j_end - 1] - s0 <= lookahead:
            j_end -= 1
        while j_end < n and ps[j_end] - s0 <= lookahead:
            j_end += 1
        # curvature ahead within the braking horizon
        kmax = 0.0
        jh = bisect_right(ps, s0 + 5.0 + 2.0 * npc.speed, i0, j_end)
        if jh > i0:
            kmax = max(npc.pk[i0:jh])
        best_gap, best_v, best_id = math.inf, 0.0, -1
        if npc.dead_end:
            best_gap = ps[-1] - s0 - 0.5 * npc.length
        if j_end <= i0 or not cands:
            return best_gap, best_v, best_id, kmax
        half = 0.5 * npc.length
        tol2 = PATH_TOLERANCE * PATH_TOLERANCE
        j_lo = i0 - 1
        ignore_npcs = npc.ignore_npcs
        for o, dist in cands:
            is_ego = o is ego
            if ignore_npcs and not is_ego and not o.static:
                continue
            if is_ego:
                # the ego's body, not only its centre: the first path point within the
                # NPC's half width + EGO_MARGIN of the ego's box is the conflict (an ego
                # across the path, or one the path turns into, is a leader however its
                # centre lies)
                g = self._ego_gap(npc, o, j_lo, j_end)
                if g is not None and g[0] < best_gap:
                    best_gap, best_v, best_id = g[0], g[1], o.actor_id
                continue
            # nearest path point in the window
            lo = bisect_left(ps, s0 + dist - PATH_TOLERANCE - PATH_SPACING, j_lo, j_end) - 1
            if lo < j_lo:
                lo = j_lo
            # window end: the first point with ps > s0 + 1.5 dist + 4 (or j_end)
            hi = bisect_right(ps, s0 + 1.5 * dist + 4.0, lo, j_end) if lo < j_end else lo
            jb, db = -1, tol2
            ox, oy = o.x, o.y
            for j in range(lo, hi):
                ex = px[j] - ox
                ey = py[j] - oy
                d = ex * ex + ey * ey
                if d < db:
                    db, jb = d, j
            if jb < 0:
                continue
            dyaw = (o.yaw - pyaw[jb] + math.pi) % _TWO_PI - math.pi
            if not o.static and abs(dyaw) > ONCOMING_HEADING:
                continue  # oncoming NPC on a shared junction surface: not a leader
            c, s = math.cos(pyaw[jb]), math.sin(pyaw[jb])
            s_o = ps[jb] + (ox - px[jb]) * c + (oy - py[jb]) * s
            if s_o <= s0:
                continue  # beside or behind
            ext = 0.5 * (o.length * abs(math.cos(dyaw)) + o.width * abs(math.sin(dyaw)))
            gap = s_o - s0 - half - ext
            if gap < best_gap:
                best_gap, best_id = gap, o.actor_id
                best_v = o.speed * math.cos(dyaw)
        return best_gap, best_v, best_id, kmax

    @staticmethod
    def _ego_gap(npc: NPCVehicle, ego: Any, j_lo: int, j_end: int) -> tuple[float, float] | None:
        """(gap [m], speed along the path [m/s]) of the ego as the NPC's leader, or None.

        The conflict is the first path point ahead (index ``j_lo`` .. ``j_end - 1``) within
        the NPC's half width + :data:`EGO_MARGIN` of the ego's bounding box (distance to
        the box outline); the gap runs from the NPC's front to that point. Path points
        are :data:`PATH_SPACING` apart, so the gap errs short by up to that much.
        """
        ps = npc.ps
        s0 = npc.s
        j0 = bisect_right(ps, s0, j_lo, j_end)  # the first path point ahead of the NPC
        if j0 >= j_end:
            return None
        d = box_clearance(npc.px[j0:j_end], npc.py[j0:j_end], ego.x, ego.y, ego.yaw,
                          0.5 * ego.length, 0.5 * ego.width)
        hit = np.flatnonzero(d < 0.5 * npc.width + EGO_MARGIN)
        if len(hit) == 0:
            return None
        j = j0 + int(hit[0])
        return ps[j] - s0 - 0.5 * npc.length, ego.speed * math.cos(ego.yaw - npc.pyaw[j])

    @staticmethod
    def _candidates(movers: list[NPCVehicle], looks: list[float],
                    others: list[Any]) -> list[list[tuple[Any, float]]]:
        """Per mover, the (vehicle, distance) pairs within its lookahead + 5 m and not
        more than 3 m behind it (a plain loop for a few vehicles, one vectorised pass
        over all pairs for many)."""
        if len(movers) <= _VECTORISE_ABOVE and len(movers) * len(others) <= _VECTORISE_PAIRS:
            out = []
            for v, look in zip(movers, looks):
                r2 = (look + 5.0) ** 2
                x, y = v.x, v.y
                c, sn = math.cos(v.yaw), math.sin(v.yaw)
                row = []
                for o in others:
                    dx, dy = o.x - x, o.y - y
                    d2 = dx * dx + dy * dy
                    if d2 <= r2 and dx * c + dy * sn >= -3.0 and o is not v:
                        row.append((o, math.sqrt(d2)))
                out.append(row)
            return out
        # the distance test on all pairs, then the "not behind" test and the square
        # roots on the few pairs within range only (the same float operations, pair by
        # pair, as one pass over all pairs: the same pairs and distances)
        ox = np.array([o.x for o in others])
        oy = np.array([o.y for o in others])
        m = len(movers)
        mx = np.array([v.x for v in movers])
        my = np.array([v.y for v in movers])
        myaw = np.array([v.yaw for v in movers])
        r = np.asarray(looks) + 5.0
        dx = ox[None, :] - mx[:, None]
        dy = oy[None, :] - my[:, None]
        d2 = dx * dx + dy * dy
        ks, js = np.nonzero(d2 <= (r * r)[:, None])  # row-major: grouped by mover
        pd2 = d2[ks, js]
        ok = (dx[ks, js] * np.cos(myaw)[ks] + dy[ks, js] * np.sin(myaw)[ks] >= -3.0) & (pd2 > 1e-12)
        out: list[list[tuple[Any, float]]] = [[] for _ in range(m)]
        for k, j, d in zip(ks[ok].tolist(), js[ok].tolist(), np.sqrt(pd2[ok]).tolist()):
            o = others[j]
            if o is not movers[k]:  # (itself: excluded by d2 > 0 already)
                out[k].append((o, d))
        return out

    def step(self, ego: Any, lights: Sequence[Any] = (), walkers: Sequence[Any] = ()) -> None:
        """Advance every moving NPC by ``dt``.

        Args:
            ego: the ego, an object with ``x, y, yaw, speed, length, width`` (its
                ``actor_id`` is taken as 0).
            lights: the traffic lights now (:class:`~drive_il.types.TrafficLight`, the
                same heads in the same order every step); empty: no lights.
            walkers: pedestrians on the road as stopped obstacles (``actor_id, x, y,
                yaw, speed, length, width, static=True``;
                :meth:`drive_il.sim.embedded.walkers.Walkers.obstacles`): an NPC yields
                to one on its path ahead as to a stopped vehicle.
        """
        if not self.vehicles:
            return
        if lights and len(lights) != self._n_lights:
            self._lane_light = {ln: k for k, lt in enumerate(lights) for ln in lt.lanes}
            self._n_lights = len(lights)
        dt = self.dt
        ego_o = _EgoView(ego)
        others: list[Any] = list(self.vehicles)
        others.append(ego_o)
        if walkers:
            others.extend(walkers)
        cfg = self.config
        s0_gap, T = cfg.min_gap, cfg.time_headway
        a_max, a_lat = self._a_max, self._a_lat
        plans: list[tuple[NPCVehicle, float, float, float]] = []  # (npc, new speed, v0, its dt)
        leaders: dict[int, int] = {}
        self._tick += 1
        tick = self._tick
        movers = [v for v in self.vehicles if not v.static]
        if cfg.hybrid_radius > 0.0:
            movers = self._hybrid_movers(movers, ego, tick)
        looks = []
        for npc in movers:
            v = npc.speed
            look = 20.0 + 3.0 * v + v * v / (2.0 * IDM_DECELERATION)
            if npc.ps[-1] - npc.s < look + 10.0:
                self._extend(npc, npc.s + look + 30.0)
            looks.append(look)
        # with lights, an NPC about to enter a junction looks out to BOX_LOOK for a jammed exit
        boxes = [self._box_ahead(npc) for npc in movers] if lights else [None] * len(movers)
        cands = self._candidates(movers, [lk if b is None or lk >= BOX_LOOK else BOX_LOOK
                                          for lk, b in zip(looks, boxes)],
                                 others) if movers else []
        npc_of = {n.actor_id: n for n in self.vehicles} if lights else {}
        for npc, look, cand, box in zip(movers, looks, cands, boxes):
            v = npc.speed
            gap, v_lead, lid, kmax = self._leader(npc, cand, ego_o, look)
            lgap = self._light_gap(npc, lights, look) if lights else math.inf
            if lgap < math.inf:  # stopping for a light: no junction claim
                self._release_claims(npc)
                if lgap < gap:
                    gap, v_lead, lid = lgap, 0.0, LIGHT_LEADER
            else:
                bgap = math.inf
                if box is not None:  # about to enter a junction: is its exit jammed?
                    bg, bv, bl = gap, v_lead, lid
                    if bl == -1 and look < BOX_LOOK:  # no leader within look: past the exit?
                        bg, bv, bl, _ = self._leader(npc, cand, ego_o, BOX_LOOK)
                    # (an NPC leader: the ego and walkers on crossings move on by themselves)
                    if bv < BOX_SPEED and bl in npc_of:
                        bgap = self._box_gap(npc, box, bg)
                if bgap < math.inf:  # the exit is jammed: wait at the entry behind it
                    gap, v_lead, lid = bgap, 0.0, bl
                else:
                    jgap = self._junction_gap(npc, npc_of)
                    if jgap < gap:
                        gap, v_lead, lid = jgap, 0.0, JUNCTION_LEADER
            leaders[npc.actor_id] = lid
            npc.leader = lid
            # IDM
            v0 = npc.desired_speed
            if kmax > 1e-6:
                vc = math.sqrt(a_lat / kmax)
                if vc < v0:
                    v0 = vc
            free = 1.0 - (v / v0) ** 4 if v0 > 0.1 else -1.0
            if gap < math.inf:
                g = gap if gap > 0.05 else 0.05
                s_star = s0_gap + v * T + v * (v - v_lead) / (2.0 * self._sqrt_ab)
                if s_star < s0_gap:
                    s_star = s0_gap
                a = a_max * (free - (s_star / g) ** 2)
            else:
                a = a_max * free
            if a < -MAX_BRAKING:
                a = -MAX_BRAKING
            dti = dt * (tick - npc.last_tick)
            npc.last_tick = tick
            v1 = v + a * dti
            plans.append((npc, v1 if v1 > 0.0 else 0.0, v0, dti))
        # two NPCs that lead each other: the lower id ignores its leader this step
        by_id = {n.actor_id: n for n, _, _, _ in plans}
        for npc, v1, v0, dt in plans:
            lid = leaders.get(npc.actor_id, -1)
            if lid > 0 and leaders.get(lid) == npc.actor_id and npc.actor_id < lid:
                v = npc.speed
                a = a_max * (1.0 - (v / v0) ** 4) if v0 > 0.1 else 0.0
                v1 = max(0.0, v + a * dt)
            # blocked bookkeeping
            lead = by_id.get(lid)
            if lights:
                npc.queued = lid == LIGHT_LEADER or (lead is not None and lead.queued)
                if npc.queued:
                    npc.blocked = 0.0
                    self._move(npc, 0.5 * (npc.speed + v1) * dt, v1)
                    continue
            if v1 < 0.1 and (lid == JUNCTION_LEADER or (lead is not None and not lead.static)):
                npc.blocked += dt
                if npc.blocked > MAX_BLOCKED_S:
                    npc.ignore_npcs = True
            else:
                npc.blocked = 0.0
                if v1 > 1.0:
                    npc.ignore_npcs = False
            self._move(npc, 0.5 * (npc.speed + v1) * dt, v1)
        gone = [n for n in self.vehicles if n.dead_end and not n.static and n.ps[-1] - n.s < 0.5]
        if gone:
            for n in gone:
                for jid, _ in n.claim:
                    self._claims.get(jid, {}).pop(n.actor_id, None)
                log.debug("traffic: vehicle %d reached a dead end and was removed", n.actor_id)
            self.vehicles = [n for n in self.vehicles if n not in gone]

    def _hybrid_movers(self, movers: list[NPCVehicle], ego: Any, tick: int) -> list[NPCVehicle]:
        """The NPCs updated at step ``tick`` in hybrid mode (``TrafficConfig.hybrid_radius``
        > 0; CARLA Traffic Manager's hybrid physics mode, ``set_hybrid_physics_mode`` /
        ``set_hybrid_physics_radius``, simplifies vehicles beyond a radius of the hero the
        same way): within the radius of the ego every step; beyond it every
        :data:`HYBRID_EVERY`-th step, staggered by id, integrated over the time since its
        last update. Pure function of the state and ``tick``: runs stay reproducible."""
        r2 = self.config.hybrid_radius ** 2
        ex, ey = ego.x, ego.y
        out = []
        for v in movers:
            dx, dy = v.x - ex, v.y - ey
            if dx * dx + dy * dy <= r2 or (tick + v.actor_id) % HYBRID_EVERY == 0 \
                    or tick - v.last_tick >= HYBRID_EVERY:
                out.append(v)
        return out

    @staticmethod
    def _box_ahead(npc: NPCVehicle) -> tuple[float, float, float, int] | None:
        """The junction the NPC is about to enter, as (front-to-entry gap [m], entry s,
        exit s [m] along its path, junction id), or None: the first junction entry within
        the claim reach (braking distance + 8 m) that the front has not passed."""
        s = npc.s
        ps, pj = npc.ps, npc.pj
        n = len(ps)
        reach = _claim_reach(npc)
        # the first entry (a run start after a point outside junctions) from i + 1 on
        # with ps <= reach: a scan of the points would stop at the same one
        runs = npc.runs
        for k in range(bisect_left(runs, npc.i + 1), len(runs)):
            j = runs[k]
            if ps[j] > reach:
                return None
            if pj[j - 1] == -1:
                break
        else:
            return None
        entry_gap = ps[j - 1] - s - 0.5 * npc.length
        if entry_gap < 0.0:
            return None  # entering already
        k = _junction_end(pj, j)
        return entry_gap, ps[j - 1], ps[k] if k < n else ps[-1], pj[j]

    def _box_gap(self, npc: NPCVehicle, box: tuple[float, float, float, int], gap: float) -> float:
        """Distance [m] from the NPC's front to the entry of the junction ``box``
        (:meth:`_box_ahead`) when it must not enter because its exit is jammed (inf when
        it may).

        "Do not block the box" (worlds with traffic lights): the leader, an NPC ``gap``
        [m] ahead (bumper to bumper) slower than :data:`BOX_SPEED` (the caller checks;
        looked for up to :data:`BOX_LOOK` ahead), stands beyond the entry with its rear
        less than one NPC length + ``min_gap`` past the junction's exit, so entering would
        leave the NPC standing in the junction across the other approaches (on short
        blocks, queues at red lights then lock two junctions into each other). A claim on
        the junction is given up while it waits.
        """
        entry_gap, entry_s, exit_s, jid = box
        rear = npc.s + 0.5 * npc.length + gap  # the leader's rear along the path
        if rear <= entry_s or rear >= exit_s + npc.length + self.config.min_gap:
            return math.inf
        self._drop_claim(npc, jid)
        return entry_gap

    def _drop_claim(self, npc: NPCVehicle, jid: int) -> None:
        """Give up the NPC's claim on junction ``jid`` (if it holds one)."""
        if any(h == jid for h, _ in npc.claim):
            held = self._claims.get(jid)
            if held is not None:
                held.pop(npc.actor_id, None)
                if not held:
                    del self._claims[jid]
            npc.claim = [(h, e) for h, e in npc.claim if h != jid]

    def _junction_gap(self, npc: NPCVehicle, npc_of: dict[int, NPCVehicle]) -> float:
        """Distance [m] to the stop line of the next junction when the NPC may not
        enter it yet (inf when it may); ``npc_of``: the NPCs by id (with lights: whether
        a claimant stands still).

        First come, first served: an NPC claims a junction when it comes within its
        braking distance + 8 m of it; others may claim it too only for the same
        movement (same lane in, same lane out: a platoon) -- at an entry controlled by a
        traffic light, for the same lane in (whatever the exit: the light keeps the other
        approaches out, and a queue discharges at saturation flow, not one vehicle per
        junction crossing); the rest wait at the entry until every claim is released (the
        claimant's rear has left the junction). An NPC that has waited
        :data:`MAX_BLOCKED_S` enters regardless.
        """
        self._release_claims(npc)
        s = npc.s
        claims = self._claims
        ps, pj = npc.ps, npc.pj
        n = len(ps)
        reach = _claim_reach(npc)
        held_ids = [jid for jid, _ in npc.claim]
        # the first junction point from i + 1 on with ps <= reach that is not in a held
        # junction: point i + 1 itself, or the start of a junction run (the points of a
        # run share their junction id), as a scan of the points finds it
        j = npc.i + 1
        if j >= n or ps[j] > reach:
            return math.inf
        jid = pj[j]
        if jid == -1 or jid in held_ids:
            runs = npc.runs
            for k in range(bisect_right(runs, j), len(runs)):
                j = runs[k]
                if ps[j] > reach:
                    return math.inf
                jid = pj[j]
                if jid not in held_ids:
                    break
            else:
                return math.inf
        k = _junction_end(pj, j)
        exit_s = ps[k] if k < n else ps[-1]
        movement = (npc.plane[j - 1], npc.plane[k] if k < n else None)
        held = claims.get(jid)
        if self._lane_light and movement[0] in self._lane_light:
            # a signalised entry: its light separates it from the other approaches, so
            # the vehicles of one lane go through on its green as a platoon, whatever
            # their exits (they follow each other up to the point their paths part); a
            # claimant of another approach standing in the junction (stuck behind a
            # jammed exit) holds no one up: the green waits for it only as a leader on
            # its path
            same = all(m[0] == movement[0] or (o := npc_of.get(a)) is None or o.speed < STUCK_CLAIM_SPEED
                       for a, m in held.items()) if held else True
        else:
            same = all(m == movement for m in held.values()) if held else True
        if not held or npc.ignore_npcs or same:
            claims.setdefault(jid, {})[npc.actor_id] = movement
            npc.claim.append((jid, exit_s))
            return math.inf
        return ps[j - 1] - s - 0.5 * npc.length

    def _release_claims(self, npc: NPCVehicle) -> None:
        """Release the junctions the NPC's rear has left."""
        s = npc.s
        claims = self._claims
        if npc.claim:
            keep = []
            for jid, exit_s in npc.claim:
                if s > exit_s + 0.5 * npc.length:
                    held = claims.get(jid)
                    if held is not None:
                        held.pop(npc.actor_id, None)
                        if not held:
                            del claims[jid]
                else:
                    keep.append((jid, exit_s))
            npc.claim = keep

    def _light_gap(self, npc: NPCVehicle, lights: Sequence[Any], look: float) -> float:
        """IDM gap [m] to an obstacle at the stop line of the first signalised junction
        entry within ``look`` metres when its light says stop (inf when it says go).

        Red: stop unless the NPC could not stop before the line even at
        :data:`MAX_BRAKING` (or its front is past it). Yellow: stop when the NPC can
        stop at the comfortable deceleration b. Green, off, unknown: go. A decision to
        stop holds until the light turns green (no change of mind while braking). A
        claim on the junction made before the light changed is given up.
        """
        ps, pj, plane = npc.ps, npc.pj, npc.plane
        s = npc.s
        lane_light = self._lane_light
        end = s + look
        # the first entry from i + 1 on with ps <= end whose incoming lane has a light
        # (junction entries are run starts: see NPCVehicle.runs)
        runs = npc.runs
        for q in range(bisect_left(runs, npc.i + 1), len(runs)):
            j = runs[q]
            if ps[j] > end:
                return math.inf
            if pj[j - 1] == -1:
                k = lane_light.get(plane[j - 1])
                if k is not None:
                    break
        else:
            return math.inf
        lt = lights[k]
        state = int(lt.state)
        if state not in (_RED, _YELLOW):
            npc.stop_for = -1
            return math.inf
        (x0, y0), (x1, y1) = lt.stop_line
        i = j - 1
        c, sn = math.cos(npc.pyaw[i]), math.sin(npc.pyaw[i])
        s_line = ps[i] + (0.5 * (x0 + x1) - npc.px[i]) * c + (0.5 * (y0 + y1) - npc.py[i]) * sn
        d = s_line - s - 0.5 * npc.length - STOP_LINE_MARGIN  # front to the stopping point
        v = npc.speed
        if npc.stop_for != lt.light_id:  # decide once per light change, then keep to it
            if d < -STOP_LINE_MARGIN:
                return math.inf  # the front is past the line
            if state == _YELLOW:
                if v * v > 2.0 * IDM_DECELERATION * (d + STOP_LINE_MARGIN):
                    return math.inf  # cannot stop before the line comfortably: go
            elif v * v > 2.0 * MAX_BRAKING * (d + STOP_LINE_MARGIN):
                return math.inf
            npc.stop_for = lt.light_id
        self._drop_claim(npc, pj[j])
        gap = d + self.config.min_gap  # IDM's standstill gap s0 puts the front at the point
        return gap if gap > 0.0 else 0.0

    def _move(self, npc: NPCVehicle, ds: float, v1: float) -> None:
        """Advance the NPC by ``ds`` [m] along its path and set its speed ``v1`` [m/s].

        An NPC that stands still (``ds`` 0, same speed) on the same segment, its pose
        computed here before, would get the same pose from the same s, segment and
        points again (the same floats): it is left as it is, and keeps its cached
        ActorState (the same object)."""
        ps = npc.ps
        i = npc.i
        n = len(ps)
        if npc.posed and ds == 0.0 and v1 == npc.speed and not (i + 1 < n - 1 and ps[i + 1] <= npc.s):
            return
        npc.speed = v1
        npc.cached = None
        npc.posed = True
        s = npc.s + ds
        if s > ps[-1]:
            s = ps[-1]
        while i + 1 < n - 1 and ps[i + 1] <= s:
            i += 1
        npc.s = s
        seg = ps[i + 1] - ps[i] if i + 1 < n else 0.0
        t = (s - ps[i]) / seg if seg > 1e-9 else 0.0
        if t > 1.0:
            t = 1.0
        px, py = npc.px, npc.py
        if i + 1 < n:
            npc.x = px[i] + (px[i + 1] - px[i]) * t
            npc.y = py[i] + (py[i + 1] - py[i]) * t
            yaw = _lerp_angle(npc.pyaw[i], npc.pyaw[i + 1], t)
            npc.yaw = (yaw + math.pi) % _TWO_PI - math.pi
        else:
            npc.x, npc.y, npc.yaw = px[i], py[i], npc.pyaw[i]
        # drop the path behind
        if i > 64:
            del npc.px[:i], npc.py[:i], npc.pyaw[:i], npc.ps[:i], npc.pk[:i]
            del npc.pj[:i], npc.plane[:i]
            npc.runs = [j - i for j in npc.runs if j - i >= 1]
            i = 0
        npc.i = i

    def actor_states(self) -> tuple[ActorState, ...]:
        """The NPCs as :class:`ActorState` values (privileged world state)."""
        return tuple([v.cached or v.actor_state() for v in self.vehicles])


class _EgoView:
    """The ego as an obstacle for the NPCs (id 0)."""

    __slots__ = ("actor_id", "x", "y", "yaw", "speed", "length", "width", "static")

    def __init__(self, ego: Any) -> None:
        self.actor_id = 0
        self.x, self.y, self.yaw, self.speed = ego.x, ego.y, ego.yaw, ego.speed
        self.length, self.width = ego.length, ego.width
        self.static = False
