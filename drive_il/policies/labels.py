"""Steering labels: ``Control.steer`` <-> inverse turning radius 1/r.

DAVE-2 (Bojarski et al. 2016, arXiv:1604.07316) predicts the inverse turning radius
1/r [1/m] ("no singularity when driving straight, independent of the car geometry").
The simulator is commanded in ``steer`` in [-1, 1] (+1 = full right, CARLA's
convention); the road-wheel angle is ``delta = steer * max_steer_angle`` and the
kinematic bicycle model gives

    1/r = kappa = tan(delta) / L          (L = wheelbase [m]; + = turning right)
    steer = atan(L * kappa) / max_steer_angle   (clipped to [-1, 1])

Every function works on floats, numpy arrays and torch tensors alike. The conversions
themselves are :func:`drive_il.control.steer_to_curvature` and
:func:`drive_il.control.curvature_to_steer` (one implementation); this module keeps the
error measure.

Steering errors are reported in **degrees of road-wheel angle**:
``|steer_pred - steer_expert| * max_steer_angle`` (e.g. 0.01 steer = 0.35 deg for a
35 deg maximum).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["steer_error_deg"]


def steer_error_deg(steer_pred: Any, steer_true: Any, max_steer_angle: Any) -> Any:
    """Absolute steering error in degrees of road-wheel angle."""
    d = steer_pred - steer_true
    if type(d).__module__.startswith("torch"):
        return d.abs() * max_steer_angle * (180.0 / math.pi)
    return np.abs(d) * np.asarray(max_steer_angle) * (180.0 / math.pi)
