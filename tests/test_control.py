"""drive_il.control: pure pursuit on hand-computed arcs and steer <-> curvature (kinematic
bicycle, DAVE-2's label), for floats, numpy arrays and torch tensors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from drive_il.control import (
    curvature_to_steer,
    pure_pursuit_curvature,
    pure_pursuit_steer,
    steer_to_curvature,
)


# ----------------------------------------------------------------------- pure pursuit
def test_target_straight_ahead_gives_zero():
    assert pure_pursuit_curvature(0.0, 0.0, 0.0, 7.0, 0.0) == 0.0
    # heading pi/4, target on the heading line: lateral offset ~ 0
    assert pure_pursuit_curvature(1.0, 2.0, math.pi / 4, 4.0, 5.0) == pytest.approx(0.0, abs=1e-12)


def test_target_at_45_degrees_gives_the_known_arc():
    # target at (Ld/sqrt2, Ld/sqrt2): y = Ld/sqrt2, d = Ld -> kappa = 2 y / d^2 = sqrt2 / Ld
    # (the circle through the origin tangent to x, radius Ld/sqrt2, passes through it)
    for ld in (2.0, 5.0, 11.0):
        t = ld / math.sqrt(2.0)
        k = pure_pursuit_curvature(0.0, 0.0, 0.0, t, t)
        assert k == pytest.approx(math.sqrt(2.0) / ld)
        r = 1.0 / k
        assert math.hypot(t - 0.0, t - r) == pytest.approx(r)     # target on the arc
        assert pure_pursuit_curvature(0.0, 0.0, 0.0, t, -t) == pytest.approx(-k)


def test_pure_pursuit_sign_and_magnitude():
    # target 10 m ahead, 1 m to the right (+y at yaw 0): curvature 2 y / d^2, + = right
    k = pure_pursuit_curvature(0.0, 0.0, 0.0, 10.0, 1.0)
    assert k == pytest.approx(2.0 / 101.0)
    assert pure_pursuit_curvature(0.0, 0.0, 0.0, 10.0, -1.0) == pytest.approx(-k)
    # heading pi/2 (towards +y): a target at -x is to the right
    assert pure_pursuit_curvature(0.0, 0.0, math.pi / 2, -1.0, 10.0) > 0.0
    # a target on the pursuer: no curvature
    assert pure_pursuit_curvature(3.0, 4.0, 0.3, 3.0, 4.0) == 0.0


def test_pure_pursuit_steer_is_the_road_wheel_angle_of_the_arc():
    L, a = 2.9, math.radians(35.0)
    # atan(2 L sin(alpha) / d) (Coulter 1992), alpha = bearing of the target
    tx, ty = 8.0, 3.0
    alpha, d = math.atan2(ty, tx), math.hypot(tx, ty)
    want = math.atan(2.0 * L * math.sin(alpha) / d) / a
    assert pure_pursuit_steer(0.0, 0.0, 0.0, tx, ty, L, a) == pytest.approx(want)
    assert pure_pursuit_steer(0.0, 0.0, 0.0, 0.5, 3.0, L, a) == 1.0        # clipped


# ----------------------------------------------------------------- steer <-> curvature
@given(st.floats(-1.0, 1.0), st.floats(1.5, 5.0), st.floats(0.2, 1.2))
def test_round_trip(steer, wheelbase, max_steer):
    k = steer_to_curvature(steer, wheelbase, max_steer)
    assert math.isclose(curvature_to_steer(k, wheelbase, max_steer), steer, abs_tol=1e-9)


def test_steer_curvature_round_trip():
    L, a = 2.9, math.radians(35.0)
    for steer in (-0.7, -0.1, 0.0, 0.3, 1.0):
        assert curvature_to_steer(steer_to_curvature(steer, L, a), L, a) == pytest.approx(steer)


def test_known_values_and_signs():
    L, m = 2.9, math.radians(35.0)
    # full right lock: tan(35 deg) / 2.9 m (1/r = tan(delta) / L)
    assert math.isclose(steer_to_curvature(1.0, L, m), math.tan(m) / L)
    assert steer_to_curvature(0.3, L, m) > 0 > steer_to_curvature(-0.3, L, m)
    # radius 10 m to the right -> delta = atan(L / 10)
    assert math.isclose(curvature_to_steer(0.1, L, m), math.atan(0.29) / m)


def test_clipping():
    L, m = 2.9, math.radians(35.0)
    assert curvature_to_steer(5.0, L, m) == 1.0 and curvature_to_steer(-5.0, L, m) == -1.0
    raw = curvature_to_steer(5.0, L, m, clip=False)
    assert raw == pytest.approx(math.atan(5.0 * L) / m) and raw > 1.0
    arr = curvature_to_steer(np.array([-5.0, 0.0, 5.0]), L, m)
    assert arr.tolist() == [-1.0, 0.0, 1.0]
    assert curvature_to_steer(np.array([5.0]), L, m, clip=False)[0] > 1.0
    assert curvature_to_steer(torch.tensor([-5.0, 5.0]), L, m).tolist() == [-1.0, 1.0]


def test_numpy_and_torch_agree():
    s = np.linspace(-1, 1, 11)
    k_np = steer_to_curvature(s, 2.9, 0.6)
    k_t = steer_to_curvature(torch.tensor(s), 2.9, 0.6)
    assert isinstance(k_np, np.ndarray) and isinstance(k_t, torch.Tensor)
    assert np.allclose(k_np, k_t.numpy())
    assert np.allclose(curvature_to_steer(k_np, 2.9, 0.6), s)
    assert np.allclose(curvature_to_steer(k_t, 2.9, 0.6).numpy(), s)
    # element-wise equal to the scalar path
    assert np.allclose(k_np, [steer_to_curvature(float(x), 2.9, 0.6) for x in s], rtol=0, atol=1e-15)


def test_scalars_of_any_kind_give_floats():
    assert isinstance(steer_to_curvature(np.float32(0.2), 2.9, 0.6), float)
    assert isinstance(curvature_to_steer(np.float64(0.05), 2.9, 0.6), float)
    assert isinstance(curvature_to_steer(0, 2.9, 0.6), float)
