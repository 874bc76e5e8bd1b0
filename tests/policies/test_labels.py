"""steer <-> inverse turning radius 1/r (kinematic bicycle, DAVE-2's label)."""

from __future__ import annotations

import math

import numpy as np
import torch
from hypothesis import given
from hypothesis import strategies as st

from drive_il.policies.labels import (
    curvature_to_steer,
    steer_error_deg,
    steer_to_curvature,
)


@given(st.floats(-1.0, 1.0), st.floats(1.5, 5.0), st.floats(0.2, 1.2))
def test_round_trip(steer, wheelbase, max_steer):
    k = steer_to_curvature(steer, wheelbase, max_steer)
    assert math.isclose(curvature_to_steer(k, wheelbase, max_steer), steer, abs_tol=1e-9)


def test_known_values_and_signs():
    L, m = 2.9, math.radians(35.0)
    # full right lock: tan(35 deg) / 2.9 m
    assert math.isclose(steer_to_curvature(1.0, L, m), math.tan(m) / L)
    assert steer_to_curvature(0.3, L, m) > 0 > steer_to_curvature(-0.3, L, m)
    # radius 10 m to the right -> delta = atan(L / 10)
    assert math.isclose(curvature_to_steer(0.1, L, m), math.atan(0.29) / m)
    assert curvature_to_steer(5.0, L, m) == 1.0 and curvature_to_steer(-5.0, L, m) == -1.0


def test_numpy_and_torch_agree():
    s = np.linspace(-1, 1, 11)
    k_np = steer_to_curvature(s, 2.9, 0.6)
    k_t = steer_to_curvature(torch.tensor(s), 2.9, 0.6)
    assert np.allclose(k_np, k_t.numpy())
    assert np.allclose(curvature_to_steer(k_np, 2.9, 0.6), s)
    assert np.allclose(curvature_to_steer(k_t, 2.9, 0.6).numpy(), s)
    assert np.isclose(steer_error_deg(0.1, 0.0, math.radians(35.0)), 3.5)
