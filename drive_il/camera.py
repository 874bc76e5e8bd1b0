"""The one pinhole camera model: intrinsics, mount, pixel rays and the ground homography.

Used by the embedded renderer (:mod:`drive_il.sim.embedded.camera`) and by the training
augmentation (:mod:`drive_il.training.augment`), so both see a camera the same way.

Model (CARLA's ``sensor.camera.rgb``): horizontal field of view ``fov``, focal length
``f = W / (2 tan(fov / 2))`` [px] (square pixels), principal point at the image centre,
no distortion, no roll.

Frames (CARLA, left-handed):

* vehicle frame: x forward, y right, z up [m], origin at the vehicle's reference point
  (bounding-box centre) at ground level;
* camera axes: (fwd, right, up), the camera's forward/right/up unit vectors; the mount
  is at (x, y, z) in the vehicle frame, rotated by ``yaw`` (+ = right, about z) then
  ``pitch`` (+ = up);
* pixels: **index convention** (OpenCV's): the centre of pixel column ``i`` is at
  ``u = i`` (continuous coordinates where pixel i covers [i, i+1) are ``u + 0.5``). A
  point at camera-axes coordinates (a, b, c) (a forward) maps to

      u = cx + f * b / a,     v = cy - f * c / a,     cx = W/2 - 1/2,  cy = H/2 - 1/2.

Core layer: imports only math, functools, dataclasses and numpy.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from .scenario import CameraConfig

__all__ = ["PinholeCamera", "mount_axes"]

Vec3 = tuple[float, float, float]


def mount_axes(pitch: float, yaw: float) -> tuple[Vec3, Vec3, Vec3]:
    """Camera forward/right/up unit vectors in the vehicle frame (x fwd, y right, z up).

    Args:
        pitch: [rad], + = up.
        yaw: [rad], + = right.

    Returns:
        (fwd, right, up), each an (x, y, z) tuple.
    """
    cp, sp = math.cos(pitch), math.sin(pitch)
    cy, sy = math.cos(yaw), math.sin(yaw)
    fwd = (cp * cy, cp * sy, sp)
    right = (-sy, cy, 0.0)
    up = (-sp * cy, -sp * sy, cp)
    return fwd, right, up


@dataclass(frozen=True)
class PinholeCamera:
    """A pinhole camera mounted on the vehicle (frames and conventions: module doc).

    Build it from a :class:`~drive_il.scenario.CameraConfig` (:meth:`from_config`) or
    from a camera-rig entry as stored in episodes and checkpoints (:meth:`from_rig`).
    Hashable (used as a cache key).

    Attributes:
        width, height: image size [px].
        fov: horizontal field of view [rad].
        x, y, z: mount position [m] in the vehicle frame.
        pitch: [rad], + = up.
        yaw: [rad], + = right.

    Raises:
        ValueError: a size below 1 px or a field of view outside (0, pi).
    """

    width: int
    height: int
    fov: float
    x: float = 0.0
    y: float = 0.0
    z: float = 1.5
    pitch: float = 0.0
    yaw: float = 0.0

    def __post_init__(self) -> None:
        if self.width < 1 or self.height < 1:
            raise ValueError(f"camera size must be >= 1 px, got {self.width}x{self.height}")
        if not 0.0 < self.fov < math.pi:
            raise ValueError(f"camera fov must be in (0, pi) rad, got {self.fov!r}")

    # -- construction --------------------------------------------------------------------
    @classmethod
    def from_config(cls, spec: CameraConfig) -> PinholeCamera:
        """From a :class:`~drive_il.scenario.CameraConfig` (degrees -> radians)."""
        return cls(width=int(spec.width), height=int(spec.height), fov=spec.fov,
                   x=float(spec.x), y=float(spec.y), z=float(spec.z),
                   pitch=spec.pitch, yaw=spec.yaw)

    @classmethod
    def from_rig(cls, d: Mapping[str, Any]) -> PinholeCamera:
        """From a camera-rig entry (name, width, height, fov_deg, x, y, z, pitch_deg,
        yaw_deg) as stored in episode metadata (``EpisodeInfo.cameras``) and checkpoints.
        Missing optional keys default to fov 60 deg, mount (0, 0, 1.5) m, no rotation.

        Raises:
            KeyError: no ``width`` or ``height``.
        """
        return cls(width=int(d["width"]), height=int(d["height"]),
                   fov=math.radians(float(d.get("fov_deg", 60.0))),
                   x=float(d.get("x", 0.0)), y=float(d.get("y", 0.0)), z=float(d.get("z", 1.5)),
                   pitch=math.radians(float(d.get("pitch_deg", 0.0))),
                   yaw=math.radians(float(d.get("yaw_deg", 0.0))))

    def rotated(self, dyaw: float) -> PinholeCamera:
        """The same camera yawed ``dyaw`` [rad] further right."""
        return replace(self, yaw=self.yaw + dyaw)

    # -- intrinsics ----------------------------------------------------------------------
    @property
    def focal(self) -> float:
        """Focal length [px]: ``W / (2 tan(fov / 2))`` (CARLA's convention)."""
        return self.width / (2.0 * math.tan(self.fov / 2.0))

    @property
    def cx(self) -> float:
        """Principal point column [px], index convention: ``W/2 - 1/2``."""
        return self.width / 2.0 - 0.5

    @property
    def cy(self) -> float:
        """Principal point row [px], index convention: ``H/2 - 1/2``."""
        return self.height / 2.0 - 0.5

    @property
    def K(self) -> np.ndarray:
        """3x3 intrinsic matrix in the optical frame (x right, y down, z forward):
        ``[[f, 0, cx], [0, f, cy], [0, 0, 1]]``, pixel index convention."""
        f = self.focal
        return np.array([[f, 0.0, self.cx], [0.0, f, self.cy], [0.0, 0.0, 1.0]])

    @property
    def axes_to_pixel(self) -> np.ndarray:
        """3x3 matrix from camera axes (fwd, right, up) to homogeneous pixels (u w, v w, w),
        ``w`` = depth along fwd: ``K`` with the axes permuted."""
        f = self.focal
        return np.array([[self.cx, f, 0.0], [self.cy, 0.0, -f], [1.0, 0.0, 0.0]])

    @property
    def pixel_to_axes(self) -> np.ndarray:
        """3x3 inverse of :attr:`axes_to_pixel`: pixel (u, v, 1) -> ray (1, right, up) in
        camera axes, fwd component 1."""
        f = self.focal
        cx, cy = self.cx, self.cy
        return np.array([[0.0, 0.0, 1.0], [1.0 / f, 0.0, -cx / f], [0.0, -1.0 / f, cy / f]])

    def project(self, points: np.ndarray) -> np.ndarray:
        """Pixel coordinates (index convention) of points in camera axes.

        Args:
            points: (N, 3) camera-axes coordinates (fwd, right, up) [m]; fwd > 0 for a
                point in front of the camera (no check: fwd = 0 gives inf/nan).

        Returns:
            (N, 2) float64 (u, v) [px].
        """
        p = np.asarray(points, dtype=np.float64)
        f = self.focal
        u = self.cx + f * p[:, 1] / p[:, 0]
        v = self.cy - f * p[:, 2] / p[:, 0]
        return np.stack([u, v], axis=1)

    # -- mount ---------------------------------------------------------------------------
    @property
    def axes(self) -> tuple[Vec3, Vec3, Vec3]:
        """(fwd, right, up) unit vectors in the vehicle frame (:func:`mount_axes`)."""
        return mount_axes(self.pitch, self.yaw)

    @property
    def rotation(self) -> np.ndarray:
        """3x3 rotation from camera axes to vehicle axes: columns fwd, right, up."""
        return np.array(self.axes).T

    def vehicle_to_axes(self, points: np.ndarray) -> np.ndarray:
        """(N, 3) vehicle-frame points [m] -> (N, 3) camera-axes coordinates (fwd, right, up)."""
        d = np.asarray(points, dtype=np.float64) - np.array([self.x, self.y, self.z])
        return d @ self.rotation

    @property
    def pixel_to_vehicle(self) -> np.ndarray:
        """3x3 matrix from pixel (u, v, 1) to the pixel's ray direction in the vehicle
        frame (fwd component 1 in camera axes; not normalised)."""
        f, cx, cy = self.focal, self.cx, self.cy
        fw, rt, up = self.axes
        return np.array([[rt[i] / f, -up[i] / f, fw[i] - rt[i] * cx / f + up[i] * cy / f]
                         for i in range(3)])

    def pixel_rays(self) -> np.ndarray:
        """(H*W, 3) float32 rays of every pixel (row-major) in camera axes (fwd = 1,
        right, up); cached, read-only."""
        return _pixel_rays(self)

    @property
    def horizon_row(self) -> float:
        """Image row (index convention, continuous) of the horizon of a flat ground;
        -1e9 / 1e9 when the camera looks straight down / up (no horizon in any row)."""
        fw, _rt, up = self.axes
        if abs(up[2]) < 1e-9:
            return -1e9 if fw[2] < 0 else 1e9
        b = -fw[2] / up[2]
        return self.cy - b * self.focal

    def ground_homography(self, ego_x: float, ego_y: float, ego_yaw: float) -> np.ndarray:
        """3x3 homography from pixels (u, v, 1) to world ground points (X, Y, 1) on z = 0.

        Args:
            ego_x, ego_y: the vehicle's reference point [m], world frame.
            ego_yaw: its heading [rad].

        Returns:
            (3, 3) float64. Valid for rows below the horizon (:attr:`horizon_row`) and a
            camera above the ground (z > 0).
        """
        Q = self.pixel_to_vehicle
        c, s = math.cos(ego_yaw), math.sin(ego_yaw)
        Rz = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
        Cx = ego_x + self.x * c - self.y * s
        Cy = ego_y + self.x * s + self.y * c
        Cz = self.z
        G = np.array([[-Cz, 0.0, Cx], [0.0, -Cz, Cy], [0.0, 0.0, 1.0]])
        return G @ Rz @ Q


@functools.lru_cache(maxsize=16)
def _pixel_rays(cam: PinholeCamera) -> np.ndarray:
    h, w, f = cam.height, cam.width, cam.focal
    u, v = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    rays = np.stack([np.ones_like(u), (u - (w - 1) / 2.0) / f, -(v - (h - 1) / 2.0) / f], axis=-1)
    rays = rays.reshape(-1, 3).astype(np.float32)
    rays.setflags(write=False)
    return rays
