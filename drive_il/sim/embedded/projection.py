"""Projection helpers shared by the embedded camera's RGB and depth/label renders
(:mod:`drive_il.sim.embedded.camera`, :mod:`drive_il.sim.embedded.depth_labels`): the
near plane, cv2's sub-pixel drawing precision, and vehicle boxes clipped against the
near plane (Sutherland-Hodgman)."""

from __future__ import annotations

import numpy as np

__all__ = ["NEAR", "MAX_DRAW", "SHIFT", "ONE", "BOX_FACES", "clip_near"]

#: Near plane [m] along the camera's forward axis.
NEAR = 0.05
#: Vehicles farther than this are not drawn [m].
MAX_DRAW = 250.0
#: Sub-pixel bits for cv2 drawing, and one pixel in those units.
SHIFT = 4
ONE = 1 << SHIFT
#: The six faces of a box given as 8 corners (bottom 0-3, top 4-7), corner indices.
BOX_FACES = ((0, 1, 2, 3), (4, 5, 6, 7), (0, 1, 5, 4), (1, 2, 6, 5), (2, 3, 7, 6), (3, 0, 4, 7))


def clip_near(cam: np.ndarray) -> np.ndarray:
    """Sutherland-Hodgman clip of a polygon (K, 3) in camera axes (x forward) against
    x >= :data:`NEAR`; returns (K', 3), possibly empty."""
    out = []
    n = len(cam)
    for i in range(n):
        a, b = cam[i], cam[(i + 1) % n]
        ina, inb = a[0] >= NEAR, b[0] >= NEAR
        if ina:
            out.append(a)
        if ina != inb:
            t = (NEAR - a[0]) / (b[0] - a[0])
            out.append(a + t * (b - a))
    return np.array(out) if out else np.zeros((0, 3))
