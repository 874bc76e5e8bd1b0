"""drive_il.geometry: box_clearance against hand-computed distances."""

import math

import numpy as np
import pytest

from drive_il.geometry import box_clearance


def test_box_clearance_sides_corner_and_inside():
    # a 4 m x 2 m box at the origin heading +x (half extents 2 and 1)
    px = np.array([5.0, 0.0, 5.0, 0.0, 1.5])
    py = np.array([0.0, 3.0, 5.0, 0.0, 0.5])
    d = box_clearance(px, py, 0.0, 0.0, 0.0, 2.0, 1.0)
    # ahead of the front: 3 m; beside: 2 m; off the corner (2, 1): hypot(3, 4) = 5 m;
    # at the centre: -1 m (the nearer side is 1 m away); (1.5, 0.5): -0.5 m
    assert d == pytest.approx([3.0, 2.0, 5.0, -1.0, -0.5])


def test_box_clearance_rotated_and_broadcast():
    # the same box turned to +y and moved to (10, -4): a point 3 m ahead of its front
    d = box_clearance(10.0, -4.0 + 2.0 + 3.0, 10.0, -4.0, math.pi / 2, 2.0, 1.0)
    assert float(d) == pytest.approx(3.0)
    # one point against two boxes
    d2 = box_clearance(0.0, 0.0, np.array([4.0, 0.0]), np.array([0.0, 3.0]), np.array([0.0, 0.0]), 2.0, 1.0)
    assert d2 == pytest.approx([2.0, 2.0])
