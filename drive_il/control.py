"""Lateral-control geometry shared by every driver: pure pursuit and steer <-> curvature.

The one implementation of each; the expert (:mod:`drive_il.expert`), the steering
labels (:mod:`drive_il.policies.labels`), the serve lane follower and the benchmarks
import them from here.

* **Pure pursuit** (Coulter, "Implementation of the Pure Pursuit Path Tracking
  Algorithm", CMU-RI-TR-92-01, 1992): the circular arc that leaves the rear axle along
  the heading and passes through a target point at distance ``d`` with lateral offset
  ``y`` has curvature ``kappa = 2 y / d^2`` (``= 2 sin(alpha) / d`` with ``alpha`` the
  target's bearing from the heading).
* **Steer <-> curvature** through the kinematic bicycle model (Rajamani, "Vehicle
  Dynamics and Control", 2nd ed. 2012, sec. 2.2): ``1/r = kappa = tan(delta) / L``, with
  ``L`` the wheelbase [m] and ``delta = steer * max_steer_angle`` the road-wheel angle.
  ``kappa`` is DAVE-2's label, the inverse turning radius (Bojarski et al. 2016).

Frames: CARLA's (x forward, y right, z up; yaw [rad], + = clockwise seen from above).
Signs: + curvature and + steer = turning right (CARLA's ``Control.steer``).

Core layer: imports only :mod:`math` and :mod:`numpy`; torch tensors are handled by
their own methods (no torch import).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = [
    "curvature_to_steer",
    "pure_pursuit_curvature",
    "pure_pursuit_steer",
    "steer_to_curvature",
]


def _is_torch(x: Any) -> bool:
    return type(x).__module__.startswith("torch")


def pure_pursuit_curvature(rx: float, ry: float, yaw: float, tx: float, ty: float) -> float:
    """Pure-pursuit curvature [1/m] of the arc from (rx, ry) heading ``yaw`` through (tx, ty).

    Coulter (1992): ``kappa = 2 y / d^2`` with ``y`` the target's lateral offset in the
    vehicle frame (+ = right, CARLA frame) and ``d`` its distance. Use the rear axle as
    (rx, ry) for a kinematic bicycle.

    Args:
        rx, ry: the pursuing point (normally the rear axle) [m], world frame.
        yaw: heading [rad].
        tx, ty: the target point [m], world frame.

    Returns:
        Curvature [1/m], + = turn right; 0.0 when the target is within 1 mm.
    """
    dx, dy = tx - rx, ty - ry
    c, s = math.cos(yaw), math.sin(yaw)
    lat = -dx * s + dy * c
    d2 = dx * dx + dy * dy
    if d2 < 1e-6:
        return 0.0
    return 2.0 * lat / d2


def steer_to_curvature(steer: Any, wheelbase: Any, max_steer_angle: Any) -> Any:
    """Rear-axle curvature ``1/r = tan(steer * max_steer_angle) / L`` [1/m] of a steer.

    Args:
        steer: normalised steer, + = right (float, numpy array or torch tensor).
        wheelbase: L [m] (scalar or broadcastable).
        max_steer_angle: road-wheel angle at |steer| = 1 [rad].

    Returns:
        1/r [1/m], + = turning right; a float for a scalar, else the kind of ``steer``.
    """
    if _is_torch(steer):
        return (steer * max_steer_angle).tan() / wheelbase
    if isinstance(steer, np.ndarray):
        return np.tan(steer * max_steer_angle) / wheelbase
    return math.tan(float(steer) * float(max_steer_angle)) / float(wheelbase)


def curvature_to_steer(kappa: Any, wheelbase: Any, max_steer_angle: Any, *,
                       clip: bool = True) -> Any:
    """Normalised steer ``atan(L kappa) / max_steer_angle`` for a curvature 1/r.

    Args:
        kappa: rear-axle curvature 1/r [1/m], + = right (float, numpy array or torch
            tensor).
        wheelbase: L [m].
        max_steer_angle: road-wheel angle at |steer| = 1 [rad].
        clip: clip the result to [-1, 1] (default); ``False`` returns the raw ratio.

    Returns:
        steer (+1 = full right); a float for a scalar, else the kind of ``kappa``.
    """
    if _is_torch(kappa):
        s = (kappa * wheelbase).atan() / max_steer_angle
        return s.clamp(-1.0, 1.0) if clip else s
    if isinstance(kappa, np.ndarray):
        s = np.arctan(kappa * wheelbase) / max_steer_angle
        return np.clip(s, -1.0, 1.0) if clip else s
    s = math.atan(float(kappa) * float(wheelbase)) / float(max_steer_angle)
    if not clip:
        return s
    return -1.0 if s < -1.0 else min(s, 1.0)


def pure_pursuit_steer(rx: float, ry: float, yaw: float, tx: float, ty: float,
                       wheelbase: float, max_steer_angle: float) -> float:
    """Steer in [-1, 1] that follows the pure-pursuit arc toward (tx, ty).

    ``curvature_to_steer(pure_pursuit_curvature(rx, ry, yaw, tx, ty), L, max_angle)``,
    i.e. road-wheel angle ``atan(2 L sin(alpha) / d)`` (Coulter 1992). Arguments as in
    :func:`pure_pursuit_curvature` and :func:`curvature_to_steer`.
    """
    return curvature_to_steer(pure_pursuit_curvature(rx, ry, yaw, tx, ty),
                              wheelbase, max_steer_angle)
