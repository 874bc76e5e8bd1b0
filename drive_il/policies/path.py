"""The path head's geometry: points in the ego frame, and pure pursuit along them.

A path head (``[output] kind = "path"``, :class:`~drive_il.policies.presets.OutputConfig`)
predicts the path ahead as K points at fixed **arc lengths** d_1 < ... < d_K along it
(1, 2, ..., 10 m by default; space-indexed as in Jaeger et al., "Hidden Biases of
End-to-End Driving Models", ICCV 2023, rather than LBC's / TransFuser's timed
waypoints). The labels are the expert's route at arc lengths ``s_ego + d_k``
(``s_ego`` the car's projection onto the route), expressed in the ego frame
(:func:`drive_il.data.dataset.route_path_labels`).

**Frame**: the recorded pose of the car (its centre, the simulator's vehicle location),
CARLA axes: x forward, y right [m]. Points are ``(..., K, 2)`` arrays ``(x, y)``.

**Lateral-only heads** (``predict_x = false``) predict y_k only; x_k is rebuilt from the
arc lengths (:func:`lateral_to_points`): the path is taken as a polyline whose vertex k
lies d_k along it from the car's projection, and that projection is the foot of the
perpendicular from the car. With ``u = (u_x, u_y)`` the unit direction of the first
segment (``u_y = (y_2 - y_1) / (d_2 - d_1)``), ``P_1 . u = d_1`` gives

    x_1 = (d_1 - y_1 u_y) / u_x,      x_k = x_{k-1} + sqrt((d_k - d_{k-1})^2 - (y_k - y_{k-1})^2)

exact on a straight road for any lateral offset and heading error; on an arc the chords
stand in for the arc (on an arc of radius 10 m, a sharp junction turn, the points at 1 m
spacing come out 5 mm (first point) to 10 mm (at 10 m) too far forward). ``|u_y|`` and
each ``|dy / dd|`` are capped at 0.95.

**Following the path** (the expert's lateral law, :mod:`drive_il.control`): the
look-ahead is the expert preset's ``L_d = min(min_lookahead + lookahead_time * v,
max_lookahead)`` (v the measured speed); the target is the path at arc length ``L_d``
(:func:`path_point_at`: linear between the points, extrapolated along the first or
last segment outside ``[d_1, d_K]``); the curvature is Coulter's pure pursuit
``kappa = 2 y / (x'^2 + y^2)`` from the rear axle, which is half a wheelbase behind the
pose (``x' = x + L / 2``, as the expert pursues from ``pose - L/2``); the steer is
``atan(L kappa) / max_steer_angle`` capped at the preset's ``max_steer``
(:func:`path_steer`; the training and offline metrics' steer, :func:`path_steer_batch`).

**Driving with the expert's law** (:class:`PathFollower`,
:class:`~drive_il.policies.driver.PolicyDriver`'s ``path_follower="expert"``; the
default stays :func:`path_steer`): plain pure pursuit cuts corners (steady error
~ ``L_d^2 / 2R`` on a curve of radius R; Snider, CMU-RI-TR-09-08, 2009, sec. 2.2), and
the expert removes that with a
curvature feed-forward (:mod:`drive_il.expert.controllers`). On the *true* path (the
route's labels) pure pursuit leaves the lane centre by 0.6-0.9 m in the tight right turns
of held-out procedural towns and Town02, where the expert stays within 0.3 m (README,
"The learner's path follower"). The follower therefore applies the expert's law itself
(:func:`drive_il.expert.controllers.tracking_curvature`) to the predicted path: the
feed-forward of the path's curvature at the car plus pure pursuit's correction from the
car's pose to the path's. The path's curvature at the car is not in the prediction (its
first point is 1 m ahead, and extrapolating a turn's onset back to the car overshoots), so
it is *remembered*: each step the curvature of the circle through the path at ``d_1``,
``d_1 + span`` and ``d_1 + 2 span`` (Menger curvature) is stored for the arc length
``d_1 + span`` ahead, and the car reads the stored value for where its odometry (the
measured speed x dt) has brought it -- the road the car saw a moment ago, where it is now.
A new command (another branch's path) clears the memory. The path's direction at the car
is the first segment's, carried back from its middle along the remembered curvature, and
the projection lies the first distance back from the first point along that arc.
Measured (README, "The learner's path follower"): on the true path it keeps the tight
turns of held-out procedural towns within 0.2-0.3 m, as the expert (pure pursuit 0.6-0.9
m); on our learners' *predicted* paths it is level with pure pursuit in closed loop and a
little worse offline (held-out Town01 episodes, steer MAE against the expert's in LEFT
turns 0.093 against 0.078): the predicted points near the car are less even than the
point 5 m ahead that pure pursuit reads. It is an option, for better path heads.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ..control import curvature_to_steer, pure_pursuit_curvature
from ..expert.controllers import tracking_curvature

__all__ = [
    "PathDecoder",
    "PathFollower",
    "PursuitParams",
    "lateral_to_points",
    "lookahead_distance",
    "menger_curvature",
    "path_curve_speed",
    "path_point_at",
    "path_pursuit_curvature",
    "path_steer",
    "path_steer_batch",
]

#: cap on |dy / d(arc length)| when x is rebuilt from lateral offsets
_SLOPE_CAP = 0.95


@dataclass(frozen=True)
class PursuitParams:
    """The expert preset's pure-pursuit settings (:class:`drive_il.expert.config.ExpertConfig`).

    Attributes:
        min_lookahead: look-ahead at rest [m].
        lookahead_time: growth with speed [s].
        max_lookahead: cap [m].
        max_steer: cap on |steer|.
        preview_time: the feed-forward's preview [s] (:class:`PathFollower`).
        recovery_lateral_accel: cap on the correcting part's lateral acceleration
            [m/s^2] (:class:`PathFollower`).
    """

    min_lookahead: float = 3.5
    lookahead_time: float = 0.45
    max_lookahead: float = 20.0
    max_steer: float = 1.0
    preview_time: float = 0.0
    recovery_lateral_accel: float = 4.0

    @classmethod
    def from_expert(cls, config: Any = None) -> PursuitParams:
        """From an expert preset (default: ``ExpertConfig()``)."""
        if config is None:
            from ..expert.config import ExpertConfig
            config = ExpertConfig()
        return cls(min_lookahead=float(config.min_lookahead), lookahead_time=float(config.lookahead_time),
                   max_lookahead=float(config.max_lookahead), max_steer=float(getattr(config, "max_steer", 1.0)),
                   preview_time=float(getattr(config, "preview_time", 0.0)),
                   recovery_lateral_accel=float(getattr(config, "recovery_lateral_accel", 4.0)))


def lookahead_distance(speed: Any, pursuit: PursuitParams) -> Any:
    """The expert's look-ahead ``min(min_lookahead + lookahead_time * max(v, 0), max_lookahead)``
    [m] (a float, or a tensor for a tensor speed)."""
    if isinstance(speed, torch.Tensor):
        return (pursuit.min_lookahead + pursuit.lookahead_time * speed.clamp(min=0.0)).clamp(max=pursuit.max_lookahead)
    return min(pursuit.min_lookahead + pursuit.lookahead_time * max(float(speed), 0.0), pursuit.max_lookahead)


def lateral_to_points(lateral: torch.Tensor, distances: torch.Tensor) -> torch.Tensor:
    """(B, K) lateral offsets y_k [m] at arc lengths d_k (K,) -> (B, K, 2) points (x, y),
    x rebuilt from the arc lengths (module docstring)."""
    d = distances.to(lateral.dtype)
    if lateral.shape[1] == 1:
        return torch.stack([d.expand_as(lateral), lateral], dim=-1)
    dd = d[1:] - d[:-1]                                                   # (K-1,)
    dy = lateral[:, 1:] - lateral[:, :-1]                                 # (B, K-1)
    slope = (dy / dd).clamp(-_SLOPE_CAP, _SLOPE_CAP)
    ux = torch.sqrt(1.0 - slope[:, 0] ** 2)
    x1 = (d[0] - lateral[:, 0] * slope[:, 0]) / ux                        # (B,)
    steps = dd * torch.sqrt(1.0 - slope ** 2)                             # (B, K-1)
    x = torch.cat([x1[:, None], x1[:, None] + torch.cumsum(steps, dim=1)], dim=1)
    return torch.stack([x, lateral], dim=-1)


class PathDecoder(nn.Module):
    """Raw head units -> (B, K, 2) points [m] (no parameters; its buffer is not saved).

    Layout of the units: y_1..y_K [m], then with ``predict_x`` the residuals
    ``x_k - d_k`` [m].
    """

    def __init__(self, distances: Sequence[float], predict_x: bool) -> None:
        super().__init__()
        self.register_buffer("distances", torch.tensor([float(v) for v in distances], dtype=torch.float32),
                             persistent=False)
        self.predict_x = bool(predict_x)

    def forward(self, raw: torch.Tensor) -> torch.Tensor:
        k = self.distances.shape[0]
        if self.predict_x:
            x = raw[:, k:2 * k] + self.distances.to(raw.dtype)
            return torch.stack([x, raw[:, :k]], dim=-1)
        return lateral_to_points(raw[:, :k], self.distances)


def path_point_at(points: Any, distances: Any, d: Any) -> Any:
    """The path at arc length ``d``: linear between the points, extrapolated along the
    first/last segment outside ``[d_1, d_K]``.

    Args:
        points: (K, 2) numpy array, or (B, K, 2) tensor.
        distances: (K,) arc lengths [m] (numpy / sequence, or a tensor).
        d: arc length [m]: a float (numpy points) or a (B,) tensor.

    Returns:
        (2,) numpy array, or (B, 2) tensor.
    """
    if isinstance(points, torch.Tensor):
        dist = torch.as_tensor(distances, dtype=points.dtype, device=points.device)
        k = dist.shape[0]
        if k == 1:
            return points[:, 0, :] * (d / dist[0])[:, None]
        i = (torch.searchsorted(dist.contiguous(), d.to(dist.dtype).contiguous()) - 1).clamp(0, k - 2)
        d0, d1 = dist[i], dist[i + 1]
        t = ((d - d0) / (d1 - d0))[:, None]
        rows = torch.arange(points.shape[0], device=points.device)
        p0, p1 = points[rows, i], points[rows, i + 1]
        return p0 + t * (p1 - p0)
    pts = np.asarray(points, dtype=np.float64)
    dist = np.asarray(distances, dtype=np.float64)
    k = len(dist)
    if k == 1:
        return pts[0] * (float(d) / dist[0])
    i = int(np.clip(np.searchsorted(dist, float(d)) - 1, 0, k - 2))
    t = (float(d) - dist[i]) / (dist[i + 1] - dist[i])
    return pts[i] + t * (pts[i + 1] - pts[i])


def path_pursuit_curvature(points: torch.Tensor, distances: Any, speed: torch.Tensor, wheelbase: Any,
                           pursuit: PursuitParams) -> torch.Tensor:
    """(B, K, 2) points, (B,) speeds [m/s] -> (B,) pure-pursuit curvature [1/m] (+ = right)
    from the rear axle (``L / 2`` behind the pose) to the path at the look-ahead."""
    target = path_point_at(points, distances, lookahead_distance(speed.to(points.dtype), pursuit))
    h = 0.5 * torch.as_tensor(wheelbase, dtype=points.dtype, device=points.device)
    dx = target[:, 0] + h
    dy = target[:, 1]
    d2 = dx * dx + dy * dy
    return torch.where(d2 < 1e-6, torch.zeros_like(d2), 2.0 * dy / d2.clamp(min=1e-6))


def path_steer_batch(points: torch.Tensor, distances: Any, speed: torch.Tensor, wheelbase: Any,
                     max_steer_angle: Any, pursuit: PursuitParams) -> tuple[torch.Tensor, torch.Tensor]:
    """(steer (B,), curvature (B,)): :func:`path_steer` for a batch (tensors)."""
    k = path_pursuit_curvature(points, distances, speed, wheelbase, pursuit)
    steer = curvature_to_steer(k, wheelbase, max_steer_angle).clamp(-pursuit.max_steer, pursuit.max_steer)
    return steer, k


def path_steer(points: Any, distances: Sequence[float], speed: float, *, wheelbase: float,
               max_steer_angle: float, pursuit: PursuitParams) -> float:
    """The steer in [-max_steer, max_steer] that follows a (K, 2) path with pure pursuit
    (module docstring; :func:`drive_il.control.pure_pursuit_curvature` from the rear axle).

    Returns 0.0 for a non-finite path."""
    tx, ty = (float(v) for v in path_point_at(points, distances, lookahead_distance(speed, pursuit)))
    if not (math.isfinite(tx) and math.isfinite(ty)):
        return 0.0
    kappa = pure_pursuit_curvature(-0.5 * float(wheelbase), 0.0, 0.0, tx, ty)
    s = curvature_to_steer(kappa, wheelbase, max_steer_angle)
    return max(-pursuit.max_steer, min(pursuit.max_steer, s))


def path_curve_speed(points: Any, distances: Sequence[float], *, lateral_accel_limit: float,
                     deceleration: float, span: float = 3.0) -> float:
    """The highest speed [m/s] from which the car can slow, at ``deceleration``, to the
    curve speed of every bend of a predicted path: the expert's speed profile
    (:class:`drive_il.expert.local_planner.RouteTracker`: the curve speed
    ``sqrt(lateral_accel_limit / |kappa|)`` and a backward pass at its ``comfort_decel``)
    on the learner's own path instead of the route.

    ``kappa(d)`` is the curvature of the circle through the path at ``d - span``, ``d``
    and ``d + span`` (:func:`menger_curvature`; the expert smooths its route's curvature
    over 3 m too), for every ``d`` with both ends on the path (``d_1 + span`` to ``d_K -
    span``, every metre); that bend may begin where its circle does, so it allows
    ``sqrt(v_c(d)^2 + 2 b (d - span))`` now (on a path that is one circle, from ``d_1``:
    ``sqrt(v_c^2 + 2 b d_1)``, the car being in the bend already).

    Args:
        points: (K, 2) ego-frame points [m] (x forward, y right).
        distances: their arc lengths d_k [m], increasing.
        lateral_accel_limit: [m/s^2] (the expert's ``lateral_accel_limit``).
        deceleration: b [m/s^2] (the expert's ``comfort_decel``).
        span: [m], > 0.

    Returns:
        the cap [m/s]; ``math.inf`` for a path too short for one circle, a straight one,
        or a non-finite one.

    Raises:
        ValueError: ``lateral_accel_limit``, ``deceleration`` or ``span`` not > 0.
    """
    if not (lateral_accel_limit > 0 and deceleration > 0 and span > 0):
        raise ValueError(f"path_curve_speed: lateral_accel_limit, deceleration and span must be > 0, got "
                         f"{lateral_accel_limit!r}, {deceleration!r}, {span!r}")
    pts = np.asarray(points, dtype=np.float64)
    if not np.isfinite(pts).all():
        return math.inf
    dist = np.asarray(distances, dtype=np.float64)
    d_lo, d_hi = float(dist[0]) + span, float(dist[-1]) - span
    d = np.arange(d_lo, d_hi + 1e-9, 1.0)
    if len(d) == 0:  # (also every path of one point: d_lo > d_hi)
        return math.inf
    # every point interpolated once (path_point_at's formula, elementwise: the same floats)
    q = np.concatenate([d - span, d, d + span])
    i = np.clip(np.searchsorted(dist, q) - 1, 0, len(dist) - 2)
    t = ((q - dist[i]) / (dist[i + 1] - dist[i]))[:, None]
    P = pts[i] + t * (pts[i + 1] - pts[i])
    a, b, c = P[:len(d)], P[len(d):2 * len(d)], P[2 * len(d):]
    # |menger_curvature(a, b, c)| per circle, the same operations
    abx, aby = b[:, 0] - a[:, 0], b[:, 1] - a[:, 1]
    bcx, bcy = c[:, 0] - b[:, 0], c[:, 1] - b[:, 1]
    cax, cay = a[:, 0] - c[:, 0], a[:, 1] - c[:, 1]
    den = np.sqrt((abx * abx + aby * aby) * (bcx * bcx + bcy * bcy) * (cax * cax + cay * cay))
    ok = den > 1e-12   # (menger_curvature's 0 for coincident points)
    k = np.zeros(len(d))
    k[ok] = np.abs(2.0 * (abx[ok] * bcy[ok] - aby[ok] * bcx[ok]) / den[ok])
    bent = k > 1e-9
    if not bent.any():
        return math.inf
    return float(np.sqrt(lateral_accel_limit / k[bent] + 2.0 * deceleration * (d[bent] - span)).min())


def menger_curvature(a: Sequence[float], b: Sequence[float], c: Sequence[float]) -> float:
    """Signed curvature [1/m] of the circle through three points (x, y) [m] (Menger:
    ``4 area / (|ab| |bc| |ca|)``), + = turning right in CARLA's axes (x forward, y
    right), as :func:`drive_il.control.pure_pursuit_curvature`; 0.0 for coincident points."""
    abx, aby = b[0] - a[0], b[1] - a[1]
    bcx, bcy = c[0] - b[0], c[1] - b[1]
    cax, cay = a[0] - c[0], a[1] - c[1]
    den = math.sqrt((abx * abx + aby * aby) * (bcx * bcx + bcy * bcy) * (cax * cax + cay * cay))
    return 2.0 * (abx * bcy - aby * bcx) / den if den > 1e-12 else 0.0


class PathFollower:
    """The expert's lateral law on a predicted path (module docstring, "Driving with the
    expert's law").

    Args:
        distances: the path's arc lengths d_k [m] (at least two).
        wheelbase: [m]; the rear axle is half of it behind the pose.
        max_steer_angle: road-wheel angle at steer 1 [rad].
        pursuit: the expert preset's look-ahead, steer cap, preview and recovery cap.
        span: spacing [m] of the three path points whose circle gives the curvature
            (3 m: the curvature of the path from d_1 to d_1 + 6 m, stored for ``d_1 + span``).

    ``steer(points, speed, travelled, command)``: (K, 2) ego-frame points [m], the
    measured speed [m/s], the distance driven since the last call [m] (>= 0) and the
    command (a new one clears the memory) -> steer in [-max_steer, max_steer]; 0.0 for a
    non-finite path (the memory is then left as it was). ``reset()`` at an episode's start.
    """

    def __init__(self, distances: Sequence[float], *, wheelbase: float, max_steer_angle: float,
                 pursuit: PursuitParams, span: float = 3.0) -> None:
        self.distances = np.asarray(distances, dtype=np.float64)
        if len(self.distances) < 2:
            raise ValueError(f"PathFollower needs at least two path distances, got {list(self.distances)}")
        if not span > 0:
            raise ValueError(f"span must be > 0 m, got {span!r}")
        self.wheelbase = float(wheelbase)
        self.max_steer_angle = float(max_steer_angle)
        self.pursuit = pursuit
        self.span = float(span)
        self.reset()

    def reset(self) -> None:
        """Forget the remembered curvature and the odometry."""
        self._odo = 0.0
        self._memory: list[tuple[float, float]] = []   # (odometry where it applies [m], curvature [1/m])
        self._command: Any = None
        #: the curvature [1/m] the feed-forward used at the last step
        self.curvature = 0.0

    def _curvature_here(self, ahead: float) -> float:
        """The remembered curvature ``ahead`` [m] of the car (linear between entries;
        the nearest entry outside them)."""
        q = self._odo + ahead
        mem = self._memory
        if q <= mem[0][0]:
            return mem[0][1]
        for (o0, k0), (o1, k1) in itertools.pairwise(mem):
            if q <= o1:
                return k0 if o1 <= o0 else k0 + (q - o0) / (o1 - o0) * (k1 - k0)
        return mem[-1][1]

    def steer(self, points: Any, speed: float, travelled: float, command: Any = None) -> float:
        """The steer for (K, 2) ego-frame ``points`` [m] at ``speed`` [m/s], after
        ``travelled`` [m] since the last call, under ``command`` (class docstring)."""
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        if not np.isfinite(pts).all():
            return 0.0
        if command != self._command:
            self._memory.clear()
            self._command = command
        self._odo += max(float(travelled), 0.0)
        d = self.distances
        d1, sp = float(d[0]), self.span
        a, b, c = (path_point_at(pts, d, x) for x in (d1, d1 + sp, d1 + 2.0 * sp))
        entry = (self._odo + d1 + sp, menger_curvature(a, b, c))
        if self._memory and self._memory[-1][0] >= entry[0]:   # not moved since: the newer view replaces it
            self._memory[-1] = entry
        else:
            self._memory.append(entry)
        while len(self._memory) > 2 and self._memory[1][0] <= self._odo:   # passed: keep one behind the car
            self._memory.pop(0)
        v = max(float(speed), 0.0)
        p = self.pursuit
        k_here = self._curvature_here(0.0)
        k_ahead = self._curvature_here(v * p.preview_time) if p.preview_time > 0 else k_here
        # the projection and the path's direction there: the first segment's direction
        # (at its middle, m) carried back to the car along the remembered curvature
        # (Simpson's rule), then back from the first point along the chord
        m = 0.5 * (d1 + float(d[1]))
        turn = m / 6.0 * (k_here + 4.0 * self._curvature_here(0.5 * m) + self._curvature_here(m))
        yaw0 = math.atan2(pts[1, 1] - pts[0, 1], pts[1, 0] - pts[0, 0]) - turn
        chord = yaw0 + 0.5 * d1 * self._curvature_here(0.5 * d1)
        px, py = pts[0, 0] - d1 * math.cos(chord), pts[0, 1] - d1 * math.sin(chord)
        tx, ty = (float(t) for t in path_point_at(pts, d, lookahead_distance(v, p)))
        h = 0.5 * self.wheelbase
        kappa = tracking_curvature(-h, 0.0, 0.0, proj_x=px, proj_y=py, path_yaw=yaw0, target_x=tx, target_y=ty,
                                   path_curvature=k_here, preview_curvature=k_ahead, half_wheelbase=h, speed=v,
                                   recovery_lateral_accel=p.recovery_lateral_accel)
        self.curvature = k_ahead
        s = curvature_to_steer(kappa, self.wheelbase, self.max_steer_angle)
        return max(-p.max_steer, min(p.max_steer, s))
