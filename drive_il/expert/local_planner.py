"""Local planning on a dense route: where the car is on it, where it steers to, how fast.

:class:`RouteTracker` precomputes, once per route, the arrays the expert reads at every
step (positions, arc length, unwrapped lane direction, smoothed curvature and a speed
profile), so a control step costs a windowed projection and a few scalar operations; no
``carla.Map`` call happens per step.

Speed profile (per route waypoint, computed backwards once): the desired speed (the
lane's speed limit times a factor, or the cruise speed where there is none), the curve
speed ``sqrt(a_lat / |kappa|)`` (a lateral-acceleration limit; e.g. Snider 2009, and
CARLA's BehaviorAgent slows for curves likewise), the junction caps (turn / straight),
and a stop just beyond the route's end; then ``v[i] <= sqrt(v[i+1]^2 + 2 b ds)`` so the
car starts slowing ``comfort_decel`` early for what lies ahead.

Lead vehicles (:func:`lead_vehicle`): other vehicles whose centre lies on the route
ahead within half the lane width + a margin, now, or later at constant velocity around
the time the ego gets there (crossing and cutting-in vehicles at junctions), are
obstacles; the target speed keeps a time gap to the nearest
one and stops ``stop_gap`` behind it (a time-gap rule with a braking-distance bound,
in the spirit of the Intelligent Driver Model's desired gap ``s0 + v T``; Treiber,
Hennecke, Helbing, Phys. Rev. E 62, 2000).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..geometry import RouteProjection, project_onto_polyline
from ..types import ActorState, RoadOption, Route, TrafficLight, WalkerState
from .config import ExpertConfig

__all__ = ["Lead", "RouteTracker", "lead_vehicle", "walker_obstacle"]

_BACK = 8        # projection window: segments behind the hint
_AHEAD = 60      # projection window: segments ahead of the hint
KSMOOTH = 1.5
_TWO_PI = 2.0 * math.pi
_RELOCATE = 6.0  # beyond this distance from the windowed projection, search the whole route [m]


@dataclass(frozen=True, slots=True)
class Lead:
    """An obstacle on the path ahead: a vehicle, a walker or a stop line.

    Attributes:
        gap: distance along the route from the ego's front bumper to the obstacle [m]:
            to a vehicle's rear (bumper to bumper), to a walker's footprint circle, or to
            a traffic light's stop line.
        speed: its speed along the route [m/s] (>= 0; 0 for a walker or a stop line).
        actor_id: its id (the light's ``light_id`` for a stop line).
        kind: "vehicle", "walker", "red_light" or "yellow_light".
    """

    gap: float
    speed: float
    actor_id: int
    kind: str = "vehicle"


class RouteTracker:
    """A route prepared for tracking.

    Args:
        route: the dense route.
        config: the expert preset (speed profile parameters).

    Attributes:
        xy: (N, 2) positions [m]; s: (N,) arc length [m]; yaw: (N,) unwrapped lane
            direction [rad]; kappa: (N,) smoothed curvature [1/m] (+ = right);
            v_profile: (N,) speed profile [m/s]; width: (N,) lane widths [m].
        index: the hint (segment index of the last projection).
    """

    def __init__(self, route: Route, config: ExpertConfig) -> None:
        self.route = route
        self.xy = np.ascontiguousarray(route.xy, dtype=np.float64)
        self.s = np.ascontiguousarray(route.s, dtype=np.float64)
        n = len(self.s)
        self.yaw = np.unwrap(np.asarray(route.yaw, dtype=np.float64))
        ds = np.maximum(np.diff(self.s), 1e-6)
        k = np.zeros(n)
        if n >= 2:
            dk = np.diff(self.yaw) / ds
            k[1:-1] = 0.5 * (dk[:-1] + dk[1:])
            k[0], k[-1] = dk[0], dk[-1]
        self.kappa_raw = k
        # smooth over ~3 m (lane joins leave small heading steps)
        sp = max(route.spacing, 1e-3)
        half = max(1, int(round(KSMOOTH / sp)))
        ker = np.ones(2 * half + 1) / (2 * half + 1)
        self.kappa = np.convolve(np.pad(k, half, mode="edge"), ker, mode="valid")
        wps = route.waypoints
        self.width = np.array([w.lane_width for w in wps], dtype=np.float64)
        junction = np.array([w.is_junction for w in wps], dtype=bool)
        limit = np.array([math.nan if w.speed_limit is None else w.speed_limit for w in wps])
        cmds = route.commands
        c = config
        v = np.where(np.isfinite(limit), np.minimum(c.max_speed, c.speed_limit_factor * np.nan_to_num(limit)),
                     min(c.target_speed, c.max_speed))
        # curve speed over a +-3 m window of the curvature (the tightest part of a bend)
        half_c = max(1, int(round(3.0 / sp)))
        kabs = np.abs(self.kappa)
        kmax = kabs.copy()
        for j in range(1, half_c + 1):
            kmax[j:] = np.maximum(kmax[j:], kabs[:-j])
            kmax[:-j] = np.maximum(kmax[:-j], kabs[j:])
        v = np.minimum(v, np.sqrt(c.lateral_accel_limit / np.maximum(kmax, 1e-6)))
        # |curvature| bound over +-6 m (how far a straight walker track can bend away)
        k6 = kmax.copy()
        for j in range(half_c + 1, max(half_c, round(6.0 / sp)) + 1):
            k6[j:] = np.maximum(k6[j:], kabs[:-j])
            k6[:-j] = np.maximum(k6[:-j], kabs[j:])
        self._kappa_bound = k6.tolist()
        turn = junction & ((cmds == int(RoadOption.LEFT)) | (cmds == int(RoadOption.RIGHT)))
        v = np.where(turn, np.minimum(v, c.junction_speed), v)
        v = np.where(junction & ~turn, np.minimum(v, c.junction_straight_speed), v)
        # stop just beyond the end, then the backward deceleration pass
        b2 = 2.0 * c.comfort_decel
        v[-1] = min(v[-1], math.sqrt(b2 * c.route_end_margin))
        vl = v.tolist()
        sl = self.s.tolist()
        for i in range(n - 2, -1, -1):
            lim = math.sqrt(vl[i + 1] * vl[i + 1] + b2 * (sl[i + 1] - sl[i]))
            vl[i] = min(vl[i], lim)
        self.v_profile = np.array(vl)
        # python lists for the scalar hot path
        self._s = sl
        self._x = self.xy[:, 0].tolist()
        self._y = self.xy[:, 1].tolist()
        self._yaw = self.yaw.tolist()
        self._kappa = self.kappa.tolist()
        self._v = vl
        self._width = self.width.tolist()
        self.length = float(self.s[-1])
        self.index = 0
        # the route waypoint just before each junction entry (traffic lights' lanes)
        self.entries = np.nonzero(~junction[:-1] & junction[1:])[0].tolist()
        self._lane_keys = [(int(w.road_id), int(w.lane_id)) for w in wps]
        self._box_key: tuple | None = None
        self._box = (0.0, 0.0, 0.0, 0.0)

    # ------------------------------------------------------------------ projection

    def locate(self, x: float, y: float, yaw: float, *, first: bool = False):
        """Project the point onto the route near the last projection (hint).

        The search window is ``[index - 8, index + 60]`` segments: the projection moves
        forward with the car and never snaps back to a far-behind part of the route
        (routes that cross themselves). Only when the car is more than 6 m from that
        window (a teleport) is the whole route searched.

        Args:
            first: search the whole route (episode start, a new route), matching the
                heading as well as the position.

        Returns:
            geometry.RouteProjection (index, s, lateral (+ right), heading_error, x, y).
        """
        n = len(self._s)
        if not first:
            q = self._local(x, y, yaw, max(0, self.index - 2), min(n - 1, self.index + 6))
            if q is not None:
                return q
        if first:
            c = self._global_index(x, y, yaw)
            lo, hi = max(0, c - 2), min(n, c + 3)
        else:
            lo, hi = max(0, self.index - _BACK), min(n, self.index + _AHEAD + 1)
        if hi - lo < 2:
            lo = max(0, hi - 2)
        p = project_onto_polyline(self.xy[lo:hi], self.s[lo:hi], x, y, yaw)
        if abs(p.lateral) > _RELOCATE and (lo > 0 or hi < n):
            c = self._global_index(x, y, yaw)
            qlo, qhi = max(0, c - 2), min(n, c + 3)
            q = project_onto_polyline(self.xy[qlo:qhi], self.s[qlo:qhi], x, y, yaw)
            if abs(q.lateral) < abs(p.lateral) - 1.0:
                idx = qlo + q.index
                self.index = idx
                return RouteProjection(idx, q.s, q.lateral, q.heading_error, q.x, q.y)
        idx = lo + p.index
        self.index = idx
        return RouteProjection(idx, p.s, p.lateral, p.heading_error, p.x, p.y)

    def _global_index(self, x: float, y: float, yaw: float) -> int:
        """Route segment best matching a pose anywhere on the route: distance plus a
        heading penalty of 3 m per radian (a route that passes the same place twice,
        e.g. both directions of a road, is told apart by the heading); among matches
        within 0.5 m of the best the earliest wins (a loop back over the start)."""
        a = self.xy[:-1]
        d = self.xy[1:] - a
        L2 = np.maximum(np.einsum("ij,ij->i", d, d), 1e-12)
        t = np.clip(((x - a[:, 0]) * d[:, 0] + (y - a[:, 1]) * d[:, 1]) / L2, 0.0, 1.0)
        dist = np.hypot(x - a[:, 0] - t * d[:, 0], y - a[:, 1] - t * d[:, 1])
        seg_yaw = np.arctan2(d[:, 1], d[:, 0])
        dh = np.abs((yaw - seg_yaw + math.pi) % _TWO_PI - math.pi)
        cost = dist + 3.0 * dh
        # a route that comes back over its start (loops) matches twice: take the
        # earliest of the near-best matches
        return int(np.nonzero(cost <= cost.min() + 0.5)[0][0])

    def _local(self, x: float, y: float, yaw: float, lo: int, hi: int) -> RouteProjection | None:
        """Scalar projection onto segments lo..hi-1 (the hot path, a few microseconds).
        None when the best point is at the window's edge (the car left the window) or
        farther than 3 m (then the numpy window search decides)."""
        X, Y, S = self._x, self._y, self._s
        best_d2 = math.inf
        bi = -1
        bt = 0.0
        for i in range(lo, hi):
            ax, ay = X[i], Y[i]
            dx, dy = X[i + 1] - ax, Y[i + 1] - ay
            L2 = dx * dx + dy * dy
            if L2 < 1e-12:
                continue
            t = ((x - ax) * dx + (y - ay) * dy) / L2
            t = 0.0 if t < 0.0 else (min(t, 1.0))
            ex, ey = x - ax - t * dx, y - ay - t * dy
            d2 = ex * ex + ey * ey
            if d2 < best_d2:
                best_d2, bi, bt = d2, i, t
        if bi < 0 or best_d2 > 9.0:
            return None
        n = len(S)
        if (bi == lo and bt == 0.0 and lo > 0) or (bi == hi - 1 and bt == 1.0 and hi < n - 1):
            return None
        ax, ay = X[bi], Y[bi]
        dx, dy = X[bi + 1] - ax, Y[bi + 1] - ay
        seg_yaw = math.atan2(dy, dx)
        qx, qy = ax + bt * dx, ay + bt * dy
        c, sn = math.cos(seg_yaw), math.sin(seg_yaw)
        lateral = -(x - qx) * sn + (y - qy) * c
        along = S[bi] + bt * math.sqrt(dx * dx + dy * dy)
        he = (yaw - seg_yaw + math.pi) % _TWO_PI - math.pi
        self.index = bi
        return RouteProjection(bi, along, lateral, he, qx, qy)

    # ------------------------------------------------------------------ lookups

    def _seg(self, s: float) -> tuple[int, float]:
        sl = self._s
        i = bisect.bisect_right(sl, s) - 1
        if i < 0:
            return 0, 0.0
        if i >= len(sl) - 1:
            return len(sl) - 2, 1.0
        L = sl[i + 1] - sl[i]
        return i, (s - sl[i]) / L if L > 1e-9 else 0.0

    def point_at(self, s: float) -> tuple[float, float, float]:
        """(x, y, yaw) at arc length ``s`` [m], extrapolated straight beyond the end."""
        if s > self.length:
            x, y, yaw = self._x[-1], self._y[-1], self._yaw[-1]
            e = s - self.length
            return x + e * math.cos(yaw), y + e * math.sin(yaw), yaw
        i, t = self._seg(s)
        x = self._x[i] + t * (self._x[i + 1] - self._x[i])
        y = self._y[i] + t * (self._y[i + 1] - self._y[i])
        yaw = self._yaw[i] + t * (self._yaw[i + 1] - self._yaw[i])
        return x, y, yaw

    def curvature_at(self, s: float) -> float:
        """Smoothed curvature [1/m] at ``s`` (0 beyond the end)."""
        if s >= self.length:
            return 0.0
        i, t = self._seg(s)
        return self._kappa[i] + t * (self._kappa[i + 1] - self._kappa[i])

    def speed_at(self, s: float) -> float:
        """Profile speed [m/s] at ``s``."""
        i, t = self._seg(min(max(s, 0.0), self.length))
        return self._v[i] + t * (self._v[i + 1] - self._v[i])

    def width_at(self, index: int) -> float:
        """Lane width [m] at a route index."""
        return self._width[min(max(index, 0), len(self._width) - 1)]

    def path_box(self, lo: int, hi: int, pad: float, beyond: float = 0.0) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1) [m]: bounding box of the route vertices ``lo..hi`` widened by
        half the widest lane there + ``pad``, and with ``hi`` the last vertex, of the
        straight extension ``beyond`` [m] past the route's end; cached for the last
        (lo, hi, pad, beyond)."""
        key = (lo, hi, pad, beyond)
        if self._box_key != key:
            pts = self.xy[lo:hi + 1]
            if beyond > 0.0 and hi >= len(self.xy) - 1:
                yaw = float(self.yaw[-1])
                tip = self.xy[-1] + beyond * np.array([math.cos(yaw), math.sin(yaw)])
                pts = np.vstack([pts, tip])
            p = 0.5 * float(self.width[lo:hi + 1].max()) + pad
            (x0, y0), (x1, y1) = pts.min(axis=0) - p, pts.max(axis=0) + p
            self._box = (float(x0), float(y0), float(x1), float(y1))
            self._box_key = key
        return self._box

    # ------------------------------------------------------------------ traffic lights

    def light_stops(self, lights: Sequence[TrafficLight]) -> list[tuple[float, int]]:
        """The stop lines of ``lights`` that the route passes, as ``(s, light_id)``
        sorted by arc length ``s`` [m] of the stop line along the route. Computed once
        per route (lights do not move); a route through the same junction twice gets two
        entries.

        A light controls the route at a junction entry when its ``lanes`` hold the
        ``(road_id, lane_id)`` of the route waypoint just before the entry (the lanes of
        CARLA's ``TrafficLight.get_stop_waypoints()``); its stop line lies at the
        along-route coordinate of the stop line's midpoint, or at the junction entry
        when the stop line is unset or more than :data:`_LINE_SNAP` m from the entry.
        Fallback for a light not matched by lane: the route polyline crosses its stop
        line segment, driving within 60 deg of the light's direction (``yaw``).
        """
        out: list[tuple[float, int]] = []
        if not lights:
            return out
        S = self._s
        by_lane: dict[tuple[int, int], list[TrafficLight]] = {}
        for light in lights:
            for key in light.lanes:
                by_lane.setdefault((int(key[0]), int(key[1])), []).append(light)
        for i in self.entries:
            s_entry = S[i + 1]
            for light in by_lane.get(self._lane_keys[i], ()):
                s_line = s_entry
                (x0, y0), (x1, y1) = light.stop_line
                if (x0, y0) != (x1, y1):
                    lo = bisect.bisect_left(S, s_entry - _LINE_SNAP - 5.0)
                    hi = min(len(S), bisect.bisect_right(S, s_entry + _LINE_SNAP) + 1)
                    if hi - lo >= 2:
                        p = project_onto_polyline(self.xy[lo:hi], self.s[lo:hi], 0.5 * (x0 + x1), 0.5 * (y0 + y1))
                        if abs(p.s - s_entry) <= _LINE_SNAP:
                            s_line = float(p.s)
                out.append((s_line, int(light.light_id)))
        a = self.xy[:-1]
        d = self.xy[1:] - a
        seg_len = np.hypot(d[:, 0], d[:, 1])
        seg_yaw = np.arctan2(d[:, 1], d[:, 0])
        for light in lights:
            (x0, y0), (x1, y1) = light.stop_line
            ex, ey = x1 - x0, y1 - y0
            if ex == 0.0 and ey == 0.0:
                continue
            den = d[:, 0] * ey - d[:, 1] * ex
            wx, wy = x0 - a[:, 0], y0 - a[:, 1]
            with np.errstate(divide="ignore", invalid="ignore"):
                t = (wx * ey - wy * ex) / den
                u = (wx * d[:, 1] - wy * d[:, 0]) / den
            hit = ((np.abs(den) > 1e-12) & (t >= 0.0) & (t <= 1.0) & (u >= 0.0) & (u <= 1.0)
                   & (np.cos(seg_yaw - light.yaw) > 0.5))
            for j in np.nonzero(hit)[0].tolist():
                s_line = S[j] + float(t[j]) * float(seg_len[j])
                lid = int(light.light_id)
                if not any(k == lid and abs(s - s_line) < 2.0 * _LINE_SNAP for s, k in out):
                    out.append((s_line, lid))
        out.sort()
        return out


_PRED_STEP = 0.5      # prediction sample interval [s]
_EARLY, _LATE = 1.0, 2.0  # conflict window around the ego's arrival time [s]
#: Acceleration [m/s^2] of the ego's second arrival-time estimate: starting off (from a
#: stop in a junction, a walker gone) it gets there sooner than at its current speed.
_LAUNCH_ACCEL = 2.0
_LINE_SNAP = 15.0     # a stop line farther than this from its junction entry is not trusted [m]


def _launch_time(d: float, v: float) -> float:
    """Time [s] to cover ``d`` [m] from speed ``v`` [m/s] accelerating at
    :data:`_LAUNCH_ACCEL` (d = v t + a t^2 / 2)."""
    if d <= 0.0:
        return 0.0
    return (math.sqrt(v * v + 2.0 * _LAUNCH_ACCEL * d) - v) / _LAUNCH_ACCEL


def _route_frame(S: list[float], X: list[float], Y: list[float], YAW: list[float], s_guess: float,
                 px: float, py: float, lo: int, hi: int) -> tuple[int, float, float]:
    """Route vertex nearest to (px, py) among ``lo..hi-1``, hill-climbing from the
    vertex at arc length ``s_guess``; returns (index, lateral offset (+ right), offset
    along the route from that vertex) [m]."""
    i = bisect.bisect_right(S, s_guess) - 1
    i = lo if i < lo else (min(i, hi - 1))
    d = (px - X[i]) ** 2 + (py - Y[i]) ** 2
    while i + 1 < hi:
        dn = (px - X[i + 1]) ** 2 + (py - Y[i + 1]) ** 2
        if dn >= d:
            break
        i, d = i + 1, dn
    while i > lo:
        dn = (px - X[i - 1]) ** 2 + (py - Y[i - 1]) ** 2
        if dn >= d:
            break
        i, d = i - 1, dn
    c, s = math.cos(YAW[i]), math.sin(YAW[i])
    ex, ey = px - X[i], py - Y[i]
    return i, -ex * s + ey * c, ex * c + ey * s


def lead_vehicle(tracker: RouteTracker, actors: Sequence[ActorState], *, ego_x: float, ego_y: float,
                 ego_yaw: float, ego_s: float, ego_speed: float, ego_length: float,
                 ego_width: float, config: ExpertConfig) -> Lead | None:
    """The nearest obstacle on the route ahead of the ego, or None.

    A vehicle is an obstacle when its centre lies within ``lane_width / 2 +
    corridor_margin`` of the route, or its bounding box within ``ego_width / 2 +
    corridor_margin`` of it (a car at an angle, turning off the route or waiting to turn
    in, with its centre outside the lane and a corner in it), between the ego and
    ``detection_range`` ahead (near the goal, of the route's last segment extended
    straight on: the road does not end there, and a car queued just past the goal is in
    the way):

    * now (a vehicle in the lane ahead, moving or not), or
    * at a predicted time ``t_k = 0.5, 1.0, ... <= prediction_time`` s (constant
      velocity), when the ego would reach that point of the route (at its current speed,
      at least 0.5 m/s, or accelerating from it at 2 m/s^2: an ego starting off from a
      stop) between ``t_k - 1 s`` and ``t_k + 2 s``: a vehicle about to
      cross or cut into the path around the time the ego gets there (junctions). A
      vehicle that will have passed long before, or arrive long after, is ignored.

    For a predicted conflict the obstacle's speed along the route is its velocity
    component along the route there (about 0 for a crossing vehicle).

    Scalar code: a few microseconds per vehicle near the ego (those farther than the
    detection range cost one distance test).
    """
    rng = config.detection_range
    r2 = (rng + 10.0) ** 2
    S, X, Y, YAW, WID = tracker._s, tracker._x, tracker._y, tracker._yaw, tracker._width
    n = len(S)
    lo = tracker.index
    s_hi = ego_s + rng + 5.0
    hi = min(n - 1, bisect.bisect_right(S, s_hi))
    if hi <= lo:
        return None
    ce, se = math.cos(ego_yaw), math.sin(ego_yaw)
    # the window reaches the route's end: the road goes on beyond the goal, so a vehicle
    # standing just past it is ahead on the last segment's straight extension
    open_end, last = hi == n - 1, hi - 1
    horizon = config.prediction_time
    kmax = int(horizon / _PRED_STEP + 1e-9)
    margin = config.corridor_margin
    half_ego = 0.5 * ego_length
    half_w = 0.5 * ego_width + margin
    v_arrive = max(0.5, ego_speed)
    best: Lead | None = None
    box = None
    for a in actors:
        dx, dy = a.x - ego_x, a.y - ego_y
        if dx * dx + dy * dy > r2:
            continue
        ca, sa = math.cos(a.yaw), math.sin(a.yaw)
        vx, vy = a.speed * ca, a.speed * sa
        if box is None:  # bounding box of the path ahead, widened by the corridor
            # (+3 m: a long car's half length, whose centre may lie outside the corridor with
            # a corner in it)
            bx0, by0, bx1, by1 = tracker.path_box(lo, hi, margin + 3.0, rng)
            box = True
        ex_ = a.x + vx * horizon
        ey_ = a.y + vy * horizon
        if (max(a.x, ex_) < bx0 or min(a.x, ex_) > bx1 or max(a.y, ey_) < by0
                or min(a.y, ey_) > by1):
            continue  # its whole predicted track stays clear of the path ahead
        ks = 0 if a.speed < 0.3 else kmax
        for k in range(ks + 1):
            tk = k * _PRED_STEP
            px, py = a.x + vx * tk, a.y + vy * tk
            # initial guess from the forward distance in the ego frame, then hill-climb
            f = (px - ego_x) * ce + (py - ego_y) * se
            if f < -5.0:
                continue  # behind the ego
            if k > 0 and _launch_time(f, ego_speed) > tk + _LATE:
                continue  # route distance >= f: the ego cannot be there in the window
            i, lat, off = _route_frame(S, X, Y, YAW, ego_s + f, px, py, lo, hi)
            rel = a.yaw - YAW[i]
            cr, sr = math.cos(rel), math.sin(rel)
            if abs(lat) > 0.5 * WID[i] + margin and \
                    abs(lat) - abs(sr) * 0.5 * a.length - abs(cr) * 0.5 * a.width > half_w:
                continue
            if off < -2.0 or (off > 2.0 and not (i == last and open_end)):
                continue  # beyond the window's ends (past the route's end: straight on)
            along = S[i] + off
            if along <= ego_s:
                continue
            ext = abs(cr) * 0.5 * a.length + abs(sr) * 0.5 * a.width
            gap = along - ego_s - half_ego - ext
            if gap > rng:
                continue
            if k > 0:
                d_ego = along - ego_s
                t_ego = d_ego / v_arrive
                if (t_ego < tk - _EARLY or t_ego > tk + _LATE) and \
                        not tk - _EARLY <= _launch_time(d_ego, ego_speed) <= tk + _LATE:
                    continue
            if best is None or gap < best.gap:
                best = Lead(gap=gap, speed=max(0.0, a.speed * cr), actor_id=a.actor_id)
            break  # the earliest conflict of this vehicle
    return best


def walker_obstacle(tracker: RouteTracker, walkers: Sequence[WalkerState], *, ego_x: float, ego_y: float,
                    ego_yaw: float, ego_s: float, ego_speed: float, ego_length: float, config: ExpertConfig) -> Lead | None:
    """The nearest walker in or entering the ego's lane ahead, as a stopped obstacle
    (``Lead`` with ``kind="walker"``, speed 0), or None.

    Each walker is predicted at constant velocity at ``t = 0, 0.5, ...,
    walker_prediction_time`` s. It is an obstacle at the first predicted position whose
    footprint circle comes within ``lane_width / 2 + walker_margin`` of the route ahead
    (``|lateral| - radius < lane_width / 2 + walker_margin``):

    * now (``t = 0``: a walker in the lane) anywhere within ``detection_range``;
    * later (a walker about to step into the lane) only within the stopping horizon
      ``stop_gap + v * 0.5 s + v^2 / (2 comfort_decel)`` [m] of the ego's front, the
      distance in which the ego must start braking to stop ``stop_gap`` short of it.
      A conflict farther away needs no action yet: the walker is re-predicted every step.

    The gap is measured from the ego's front bumper to the walker's circle at the
    conflict point. A conflict more than the walker's diameter behind the front bumper
    (beside the body) is none: driving on cannot reach it, and the embedded world's
    walkers hold short of vehicle bodies (waiting there would deadlock with them).
    Walkers farther than ``detection_range + 10`` m cost one distance test. ``walkers``
    empty: returns None at once.
    """
    if not walkers:
        return None
    rng = config.detection_range
    r2 = (rng + 10.0) ** 2
    S, X, Y, YAW, WID = tracker._s, tracker._x, tracker._y, tracker._yaw, tracker._width
    KAP = tracker._kappa_bound
    n = len(S)
    lo = tracker.index
    hi = min(n - 1, bisect.bisect_right(S, ego_s + rng + 5.0))
    if hi <= lo:
        return None
    half_ego = 0.5 * ego_length
    open_end, last = hi == n - 1, hi - 1  # (as in lead_vehicle)
    v = max(0.0, ego_speed)
    reach = config.stop_gap + 0.5 * v + v * v / (2.0 * config.comfort_decel)
    kmax = int(config.walker_prediction_time / _PRED_STEP + 1e-9)
    margin = config.walker_margin
    ce, se = math.cos(ego_yaw), math.sin(ego_yaw)
    horizon = kmax * _PRED_STEP
    best: Lead | None = None
    bx0, by0, bx1, by1 = tracker.path_box(lo, hi, margin + 1.0, rng)
    for w in walkers:
        x, y = w.x, w.y
        d = w.speed * horizon
        if x + d < bx0 or x - d > bx1 or y + d < by0 or y - d > by1:
            continue  # it cannot reach the path ahead within the horizon
        dx, dy = x - ego_x, y - ego_y
        if dx * dx + dy * dy > r2:
            continue
        vx, vy = w.speed * math.cos(w.yaw), w.speed * math.sin(w.yaw)
        ks = 0 if w.speed < 0.05 else kmax
        k = 0
        while k <= ks:
            tk = k * _PRED_STEP
            px, py = w.x + vx * tk, w.y + vy * tk
            f = (px - ego_x) * ce + (py - ego_y) * se  # guess: forward distance, then hill-climb
            if f < -5.0:
                k += 1
                continue  # behind the ego
            i, lat, off = _route_frame(S, X, Y, YAW, ego_s + f, px, py, lo, hi)
            if off < -2.0 or (off > 2.0 and not (i == last and open_end)):
                k += 1
                continue  # beyond the window's ends (past the route's end: straight on)
            excess = abs(lat) - w.radius - (0.5 * WID[i] + margin)
            if excess >= 0.0:
                # outside the corridor. Stop when it cannot reach it within the horizon:
                # its speed towards the route plus the route's bending (|kappa| d^2 / 2
                # over the distance d it walks); else skip the samples it cannot reach
                # it by walking straight at it
                rest = horizon - tk
                c, s = math.cos(YAW[i]), math.sin(YAW[i])
                toward = (vx * s - vy * c) if lat > 0.0 else (vy * c - vx * s)
                dw = w.speed * rest
                if excess >= max(toward, 0.0) * rest + 0.5 * KAP[i] * dw * dw:
                    break
                k += max(1, int(excess / (w.speed * _PRED_STEP)))
                continue
            along = S[i] + off
            gap = along - ego_s - half_ego - w.radius
            if along <= ego_s or gap > rng or (k > 0 and gap > reach) or gap < -2.0 * w.radius:
                # (gap < -2 r: beside the body, behind the front bumper; driving on
                # cannot reach it, and walkers hold short of vehicle bodies)
                k += 1
                continue
            if best is None or gap < best.gap:
                best = Lead(gap=gap, speed=0.0, actor_id=w.actor_id, kind="walker")
            break  # the earliest conflict of this walker
    return best
