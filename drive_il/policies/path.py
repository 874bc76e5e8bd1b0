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
``atan(L kappa) / max_steer_angle`` capped at the preset's ``max_steer``. The expert's
curvature feed-forward and steer-rate limit read the route, which the learner does not
have; they are not applied.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from ..control import curvature_to_steer, pure_pursuit_curvature

__all__ = [
    "PathDecoder",
    "PursuitParams",
    "lateral_to_points",
    "lookahead_distance",
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
    """

    min_lookahead: float = 3.5
    lookahead_time: float = 0.45
    max_lookahead: float = 20.0
    max_steer: float = 1.0

    @classmethod
    def from_expert(cls, config: Any = None) -> PursuitParams:
        """From an expert preset (default: ``ExpertConfig()``)."""
        if config is None:
            from ..expert.config import ExpertConfig
            config = ExpertConfig()
        return cls(min_lookahead=float(config.min_lookahead), lookahead_time=float(config.lookahead_time),
                   max_lookahead=float(config.max_lookahead), max_steer=float(getattr(config, "max_steer", 1.0)))


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
