"""Steering error in degrees of road-wheel angle (steer <-> 1/r: tests/test_control.py)."""

from __future__ import annotations

import math

import numpy as np
import torch

from drive_il.policies.labels import steer_error_deg


def test_steer_error_deg():
    assert np.isclose(steer_error_deg(0.1, 0.0, math.radians(35.0)), 3.5)
    e = steer_error_deg(np.array([0.1, -0.1]), np.zeros(2), math.radians(35.0))
    assert np.allclose(e, [3.5, 3.5])
    t = steer_error_deg(torch.tensor([0.1]), torch.tensor([0.0]), math.radians(35.0))
    assert isinstance(t, torch.Tensor) and np.allclose(t.numpy(), [3.5])
