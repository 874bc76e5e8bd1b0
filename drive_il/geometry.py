"""Pure planar geometry in CARLA's world frame.

CARLA's frame is left-handed seen from above: x forward/east, y right/south, yaw from
+x towards +y. For a heading ``yaw`` the forward unit vector is (cos yaw, sin yaw) and
the *right* unit vector is (-sin yaw, cos yaw). Lateral offsets are + to the right, as
DESIGN.md defines the lateral deviation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "wrap_angle",
    "to_local",
    "to_world",
    "RouteProjection",
    "project_onto_polyline",
    "polyline_curvature",
    "box_clearance",
]

TWO_PI = 2.0 * math.pi


def wrap_angle(a: float) -> float:
    """Wrap an angle [rad] into [-pi, pi)."""
    return (a + math.pi) % TWO_PI - math.pi


def to_local(x: float, y: float, ox: float, oy: float, oyaw: float) -> tuple[float, float]:
    """World point (x, y) into the frame at (ox, oy, oyaw): (forward, right) [m]."""
    dx, dy = x - ox, y - oy
    c, s = math.cos(oyaw), math.sin(oyaw)
    return (dx * c + dy * s, -dx * s + dy * c)


def to_world(fwd: float, right: float, ox: float, oy: float, oyaw: float) -> tuple[float, float]:
    """Local (forward, right) [m] in the frame (ox, oy, oyaw) to world (x, y)."""
    c, s = math.cos(oyaw), math.sin(oyaw)
    return (ox + fwd * c - right * s, oy + fwd * s + right * c)


def box_clearance(px, py, cx, cy, yaw, half_length, half_width):
    """Distance [m] of points from the outline of oriented rectangles (a vehicle's
    bounding box seen from above), negative inside: the Euclidean distance to the
    nearest corner or side outside, minus the depth inside.

    Args:
        px, py: the points [m], world frame.
        cx, cy, yaw: the rectangles' centres [m] and headings [rad].
        half_length, half_width: half extents along and across the heading [m].
        All arrays (or floats) broadcasting with each other.

    Returns:
        ndarray of the broadcast shape [m].
    """
    dx, dy = np.subtract(px, cx), np.subtract(py, cy)
    c, s = np.cos(yaw), np.sin(yaw)
    lon = np.abs(dx * c + dy * s) - half_length
    lat = np.abs(dy * c - dx * s) - half_width
    return np.where((lon > 0) & (lat > 0), np.hypot(np.maximum(lon, 0), np.maximum(lat, 0)),
                    np.maximum(lon, lat))


@dataclass(frozen=True, slots=True)
class RouteProjection:
    """A point projected onto a polyline.

    Attributes:
        index: segment index i (the point projects between vertices i and i+1).
        s: arc length of the projection along the polyline [m].
        lateral: signed distance from the polyline [m], + = right of it.
        heading_error: heading minus the segment direction, wrapped [rad] (+ = turned
            right of the lane direction); 0 if no heading was given.
        x, y: the projected point [m].
    """

    index: int
    s: float
    lateral: float
    heading_error: float
    x: float
    y: float


def project_onto_polyline(
    xy: np.ndarray,
    s: np.ndarray,
    px: float,
    py: float,
    yaw: float | None = None,
    *,
    hint: int | None = None,
    window: int = 40,
) -> RouteProjection:
    """Project a point onto a polyline (nearest segment).

    Args:
        xy: (N, 2) vertices [m], N >= 2.
        s: (N,) cumulative arc length [m].
        px, py: the point [m].
        yaw: heading of the vehicle [rad] for the heading error (optional).
        hint: previous segment index; if given, only segments within ``window`` of it
            are searched (O(window) per call, used in control loops), falling back to a
            full search when the best distance there exceeds 10 m.
        window: search half-width in segments around ``hint``.

    Returns:
        RouteProjection.
    """
    n = len(xy)
    if hint is None:
        lo, hi = 0, n - 1
    else:
        lo, hi = max(0, hint - window), min(n - 1, hint + window)
    a = xy[lo:hi]
    b = xy[lo + 1:hi + 1]
    d = b - a
    L2 = np.einsum("ij,ij->i", d, d)
    L2 = np.where(L2 < 1e-12, 1e-12, L2)
    p = np.array((px, py))
    t = np.clip(np.einsum("ij,ij->i", p - a, d) / L2, 0.0, 1.0)
    q = a + d * t[:, None]
    dist2 = np.einsum("ij,ij->i", p - q, p - q)
    k = int(np.argmin(dist2))
    if hint is not None and dist2[k] > 100.0 and (lo > 0 or hi < n - 1):
        return project_onto_polyline(xy, s, px, py, yaw, hint=None)
    i = lo + k
    dx, dy = float(d[k, 0]), float(d[k, 1])
    seg_yaw = math.atan2(dy, dx)
    qx, qy = float(q[k, 0]), float(q[k, 1])
    c, sn = math.cos(seg_yaw), math.sin(seg_yaw)
    lateral = -(px - qx) * sn + (py - qy) * c
    along = float(s[i]) + float(t[k]) * math.sqrt(float(L2[k]))
    he = wrap_angle(yaw - seg_yaw) if yaw is not None else 0.0
    return RouteProjection(i, along, lateral, he, qx, qy)


def polyline_curvature(xy: np.ndarray) -> np.ndarray:
    """Signed curvature [1/m] at each vertex of a polyline (+ = turning right in
    CARLA's frame), from the turning angle over the mean adjacent segment length.

    Args:
        xy: (N, 2) vertices.

    Returns:
        (N,) curvature; the end points copy their neighbours.
    """
    n = len(xy)
    k = np.zeros(n)
    if n < 3:
        return k
    d = np.diff(xy, axis=0)
    h = np.arctan2(d[:, 1], d[:, 0])
    dh = (np.diff(h) + math.pi) % TWO_PI - math.pi
    ln = np.hypot(d[:, 0], d[:, 1])
    mean_len = np.maximum(0.5 * (ln[:-1] + ln[1:]), 1e-6)
    k[1:-1] = dh / mean_len
    k[0], k[-1] = k[1], k[-2]
    return k
