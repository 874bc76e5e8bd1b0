"""Steering labels: ``Control.steer`` <-> inverse turning radius 1/r.

DAVE-2 (Bojarski et al. 2016, arXiv:1604.07316) predicts the inverse turning radius
1/r [1/m] ("no singularity when driving straight, independent of the car geometry").
The simulator is commanded in ``steer`` in [-1, 1] (+1 = full right, CARLA's
convention); the road-wheel angle is ``delta = steer * max_steer_angle`` and the
kinematic bicycle model gives

    1/r = kappa = tan(delta) / L          (L = wheelbase [m]; + = turning right)
    steer = atan(L * kappa) / max_steer_angle   (clipped to [-1, 1])

Every function works on floats, numpy arrays and torch tensors alike.

Steering errors are reported in **degrees of road-wheel angle**:
``|steer_pred - steer_expert| * max_steer_angle`` (e.g. 0.01 steer = 0.35 deg for a
35 deg maximum).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = [
    "curvature_to_steer",
    "steer_error_deg",
    "steer_to_curvature",
]


def _is_torch(x: Any) -> bool:
    return type(x).__module__.startswith("torch")


def steer_to_curvature(steer: Any, wheelbase: Any, max_steer_angle: Any) -> Any:
    """Inverse turning radius 1/r [1/m] of a steer command (kinematic bicycle model).

    Args:
        steer: steer in [-1, 1], + = right (float, array or tensor).
        wheelbase: L [m] (scalar or broadcastable).
        max_steer_angle: road-wheel angle at |steer| = 1 [rad].

    Returns:
        1/r [1/m], + = turning right, same kind as ``steer``.
    """
    if _is_torch(steer):
        import torch
        return torch.tan(steer * max_steer_angle) / wheelbase
    if isinstance(steer, np.ndarray):
        return np.tan(steer * max_steer_angle) / wheelbase
    return math.tan(float(steer) * float(max_steer_angle)) / float(wheelbase)


def curvature_to_steer(curvature: Any, wheelbase: Any, max_steer_angle: Any) -> Any:
    """Steer command in [-1, 1] that drives a curvature 1/r (clipped).

    Args:
        curvature: 1/r [1/m], + = right.
        wheelbase: L [m].
        max_steer_angle: [rad].

    Returns:
        steer in [-1, 1], same kind as ``curvature``.
    """
    if _is_torch(curvature):
        import torch
        return torch.clamp(torch.atan(curvature * wheelbase) / max_steer_angle, -1.0, 1.0)
    if isinstance(curvature, np.ndarray):
        return np.clip(np.arctan(curvature * wheelbase) / max_steer_angle, -1.0, 1.0)
    s = math.atan(float(curvature) * float(wheelbase)) / float(max_steer_angle)
    return -1.0 if s < -1.0 else min(s, 1.0)


def steer_error_deg(steer_pred: Any, steer_true: Any, max_steer_angle: Any) -> Any:
    """Absolute steering error in degrees of road-wheel angle."""
    d = steer_pred - steer_true
    if _is_torch(d):
        return d.abs() * max_steer_angle * (180.0 / math.pi)
    return np.abs(d) * np.asarray(max_steer_angle) * (180.0 / math.pi)
