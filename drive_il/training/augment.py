"""Data augmentation for behaviour cloning, with steering labels corrected geometrically.

**Recovery label** (DAVE-2, Bojarski et al. 2016, arXiv:1604.07316: "the steering label
for transformed images is adjusted to one that would steer the vehicle back to the
desired location and orientation in two seconds"). A frame seen from a camera that is
``y`` metres to the right of the car's centre line and yawed ``psi`` rad to the right is
the view of a virtual car displaced and rotated by (y, psi) from the path the expert
drives. We steer the virtual car back by *pure pursuit* towards the point of the
expert's path ``d = max(v * T, d_min)`` metres ahead (T = ``recovery_seconds`` = 2 s,
v = speed [m/s]). In the virtual car's frame that point lies

    forward f = d cos(psi) - y sin(psi),    right r = -d sin(psi) - y cos(psi)

and the arc through it has curvature ``2 r / (f^2 + r^2) = 2 r / (d^2 + y^2)``, i.e. for
small offsets ``dkappa ~ -2 (y + d psi) / d^2``: a camera (or a shifted view) to the RIGHT
of the centre line, or yawed right, gets a LEFT (negative) correction. The corrected
label is the expert's own path curvature plus this correction,

    1/r_label = tan(steer * max_steer) / L + dkappa,    steer_label = atan(L / r_label) / max_steer

(kinematic bicycle relation, clipped to [-1, 1]; the path curvature is treated as
constant over the short correction, and the camera's longitudinal mount is neglected).
The same rule labels the centre camera's frames after a viewpoint shift/rotation.

**Path labels** (a path head, :mod:`drive_il.policies.path`) are corrected the same way,
but exactly: the view from a camera displaced by (y, psi) is the view of a virtual car
whose frame is the real car's moved ``y`` to the right and yawed ``psi`` to the right;
the path is the same world path, expressed in the virtual car's frame. A point
(x, p) (forward, right) of the real car's frame is, in the virtual car's,

    x' = x cos(psi) + (p - y) sin(psi),    p' = -x sin(psi) + (p - y) cos(psi)

(:func:`transform_path`; the point (d, 0) gives the recovery formula's f and r above).
Pure pursuit along the moved path then steers the virtual car back onto the path
(DAVE-2's recovery idea, with the path instead of a 2 s curvature correction); the
camera's longitudinal mount is neglected here too.

**Viewpoint transform** (DAVE-2: "a viewpoint transformation ... assuming all points
below the horizon are on flat ground and all points above the horizon are infinitely
far away"): the frame is re-rendered as seen by a virtual camera shifted ``dy`` m right
and yawed ``dpsi`` rad right of the real one: rays below the horizon are intersected
with the ground plane z = 0 and re-projected into the real camera, rays above it are
rotated only. Without camera roll both parts are homographies
(:func:`viewpoint_homographies`, applied by :func:`warp_viewpoint` with two
``cv2.warpPerspective`` calls); :func:`viewpoint_maps` gives the same mapping
per pixel (a reference for tests). Needs the camera intrinsics and mount
(:class:`drive_il.camera.PinholeCamera`, the renderer's camera model, built from the
episode's camera rig with ``PinholeCamera.from_rig``).

**Photometric**: random brightness (a factor on the RGB frame) and random shadows (one
side of a random line across the frame darkened), as in common DAVE-2 reproductions.

**Horizontal mirror** (``flip_prob``): the preprocessed frame flipped left to right, with
the labels of the mirrored scene: steer, 1/r and the path's (and target point's) lateral
offsets negated, LEFT <-> RIGHT and CHANGELANELEFT <-> CHANGELANERIGHT swapped
(:data:`MIRRORED_COMMAND`); speed, gap and stop-reason labels unchanged. The camera model
is symmetric about its optical axis (CARLA's principal point is the image centre), so the
mirrored frame is what a camera at -y, yawed -psi, would see in the mirrored world: the
recovery label computed for (y, psi) and then mirrored is that camera's. The mirrored world
drives on the left: a right turn of the data (the near lane's tight radius) trains the LEFT
branch too, and a left turn (the far lane's wide radius) the RIGHT one. A common
augmentation of DAVE-2 reproductions (steering negated); for command branches the swap
of the turn commands is the only addition.

**On the training device**: ``SampleTransform(..., defer_image_ops=True)`` makes the same
draws and labels but returns the raw frame and the drawn parameters; the image work is
then done batched by :class:`drive_il.training.device_augment.DeviceAugment`.

Every random draw comes from the ``numpy.random.Generator`` passed in;
:class:`SampleTransform` is handed one per sample, seeded from (seed, epoch, index), so
a run is reproducible whatever the number of DataLoader workers.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..camera import PinholeCamera
from ..control import curvature_to_steer, steer_to_curvature
from ..policies.presets import AugmentConfig  # the [augmentation] table of a model preset
from ..policies.preprocessing import PreprocessConfig, preprocess_uint8
from ..types import RoadOption

__all__ = [
    "MIRRORED_COMMAND",
    "AugmentConfig",
    "SampleTransform",
    "corrected_steer",
    "random_brightness",
    "random_shadow",
    "recovery_curvature",
    "transform_path",
    "viewpoint_homographies",
    "viewpoint_maps",
    "warp_viewpoint",
]

log = logging.getLogger(__name__)

#: Route command -> the command of the mirrored scene (the others map to themselves).
MIRRORED_COMMAND = {RoadOption.LEFT: RoadOption.RIGHT, RoadOption.RIGHT: RoadOption.LEFT,
                    RoadOption.CHANGELANELEFT: RoadOption.CHANGELANERIGHT,
                    RoadOption.CHANGELANERIGHT: RoadOption.CHANGELANELEFT}


def recovery_curvature(lateral_offset: float, heading_offset: float, speed: float, *,
                       recovery_seconds: float = 2.0, min_distance: float = 4.0) -> float:
    """Curvature correction that brings a displaced view back to the path (see module doc).

    Args:
        lateral_offset: y [m] of the (virtual) car from the expert's path, + = right.
        heading_offset: psi [rad] relative to the path, + = yawed right.
        speed: v [m/s] (the look-ahead is d = max(v * recovery_seconds, min_distance)).
        recovery_seconds: T [s].
        min_distance: d_min [m].

    Returns:
        dkappa [1/m] to add to the expert's 1/r; negative (left) for a view displaced or
        yawed to the right.
    """
    d = max(abs(float(speed)) * recovery_seconds, min_distance)
    y, psi = float(lateral_offset), float(heading_offset)
    right = -d * math.sin(psi) - y * math.cos(psi)
    return 2.0 * right / (d * d + y * y)


def corrected_steer(steer: float, lateral_offset: float, heading_offset: float, speed: float, *,
                    wheelbase: float, max_steer_angle: float, recovery_seconds: float = 2.0,
                    min_distance: float = 4.0) -> float:
    """The expert's steer label corrected for a view displaced by (y, psi) (module doc).

    Returns:
        steer in [-1, 1].
    """
    if lateral_offset == 0.0 and heading_offset == 0.0:
        return float(steer)
    kappa = steer_to_curvature(float(steer), wheelbase, max_steer_angle)
    kappa += recovery_curvature(lateral_offset, heading_offset, speed,
                                recovery_seconds=recovery_seconds, min_distance=min_distance)
    return float(curvature_to_steer(kappa, wheelbase, max_steer_angle))


def transform_path(points: np.ndarray, lateral_offset: float, heading_offset: float) -> np.ndarray:
    """Path points (..., K, 2) (forward, right) [m] of the car's frame, expressed in the
    frame of a virtual car displaced ``lateral_offset`` m to the right and yawed
    ``heading_offset`` rad to the right (module docstring)::

        x' = x cos(psi) + (p - y) sin(psi),    p' = -x sin(psi) + (p - y) cos(psi)

    Returns a float64 array of the same shape (the input itself, unchanged, for (0, 0)).
    """
    pts = np.asarray(points, dtype=np.float64)
    y, psi = float(lateral_offset), float(heading_offset)
    if y == 0.0 and psi == 0.0:
        return pts
    c, s = math.cos(psi), math.sin(psi)
    x, p = pts[..., 0], pts[..., 1] - y
    return np.stack([x * c + p * s, -x * s + p * c], axis=-1)


def _scale_lut(factor: float) -> np.ndarray:
    return np.clip(np.arange(256, dtype=np.float32) * np.float32(factor) + 0.5, 0, 255).astype(np.uint8)


def random_brightness(image: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    """(H, W, 3) uint8 frame scaled by a factor drawn in [1 - strength, 1 + strength]
    (rounded, saturated at 255; a lookup table)."""
    import cv2

    f = _draw_brightness(rng, strength)
    return cv2.LUT(image, _scale_lut(f))


def _draw_brightness(rng: np.random.Generator, strength: float) -> float:
    """The random draw of :func:`random_brightness`: the factor."""
    return rng.uniform(1.0 - strength, 1.0 + strength)


def _draw_shadow(rng: np.random.Generator, w: int, strength: tuple[float, float]) -> tuple[float, float, float, bool]:
    """The random draws of :func:`random_shadow`, in its order: (x_top, x_bot, factor, left_side)."""
    x_top, x_bot = rng.uniform(0, w, size=2)
    factor = rng.uniform(*strength)
    left_side = rng.random() < 0.5
    return x_top, x_bot, factor, left_side


def random_shadow(image: np.ndarray, rng: np.random.Generator, strength: tuple[float, float]) -> np.ndarray:
    """(H, W, 3) uint8 frame with one side of a random top-to-bottom line darkened by a
    factor drawn in ``strength`` (lo, hi)."""
    import cv2

    h, w = image.shape[:2]
    x_top, x_bot, factor, left_side = _draw_shadow(rng, w, strength)
    edge = 0 if left_side else w
    poly = np.array([[x_top, 0], [x_bot, h], [edge, h], [edge, 0]], dtype=np.float64)
    mask = np.zeros((h, w), np.uint8)
    cv2.fillPoly(mask, [np.round(poly * 16).astype(np.int32)], 1, lineType=cv2.LINE_8, shift=4)
    out = image.copy()
    cv2.copyTo(cv2.LUT(image, _scale_lut(factor)), mask, out)
    return out


def viewpoint_maps(cam: PinholeCamera, shift: float, yaw: float) -> tuple[np.ndarray, np.ndarray]:
    """Remap tables from a virtual camera (shifted ``shift`` m right, yawed ``yaw`` rad
    right of ``cam``) to the real camera's pixels (flat ground below the horizon,
    infinitely far above it).

    For a virtual-camera ray ``d`` (vehicle axes) that hits the ground at
    ``t = z / -d_z``, the point seen is ``t d + (0, shift, 0)`` from the real camera,
    i.e. the direction ``d + (shift / t) e_y``; above the horizon it is ``d``. Both are
    expressed in the real camera's axes and projected (pinhole, CARLA's focal length).

    Returns:
        (map_x, map_y): (H, W) float32 for ``cv2.remap`` (output pixel -> source pixel);
        -1 where the source would lie behind the real camera.
    """
    h, w, f = cam.height, cam.width, cam.focal
    rays = cam.pixel_rays()                                        # (N, 3) virtual cam axes
    r_virt = cam.rotated(yaw).rotation
    r_real = cam.rotation
    m = (r_real.T @ r_virt).T.astype(np.float32)                  # virtual cam -> real cam axes
    q = rays @ m                                                   # (N, 3) direction, real axes
    dz = rays @ r_virt[2].astype(np.float32)                       # vehicle z of each ray
    if shift != 0.0:
        k = np.where(dz < -1e-3, np.float32(shift / cam.z) * -dz, np.float32(0.0))   # shift / t
        q += k[:, None] * r_real[1].astype(np.float32)[None, :]   # e_y in real cam axes
    fwd = q[:, 0]
    behind = fwd <= 1e-6
    inv = np.float32(f) / np.where(behind, np.float32(1.0), fwd)
    map_x = np.float32(cam.cx) + q[:, 1] * inv
    map_y = np.float32(cam.cy) - q[:, 2] * inv
    map_x[behind] = -1.0
    map_y[behind] = -1.0
    return map_x.reshape(h, w), map_y.reshape(h, w)


def viewpoint_homographies(cam: PinholeCamera, shift: float, yaw: float) -> tuple[np.ndarray, np.ndarray, int]:
    """The same transform as :func:`viewpoint_maps`, as two 3x3 homographies.

    With no roll, the virtual camera's horizon is a row; below it the flat-ground
    mapping is the plane-induced homography, above it the rotation homography:
    ``p_real ~ B G A p_virt`` with ``A`` the inverse intrinsics (pixel -> ray in
    camera axes), ``G = M - (shift / z) e_y' r_z^T`` (``M`` the rotation between the
    two cameras, ``e_y'`` the vehicle's y axis in real-camera axes, ``r_z`` the virtual
    ray's vehicle z component) and ``B`` the intrinsics.

    Returns:
        (H_ground, H_sky, first_ground_row): homographies mapping virtual (output)
        pixels to real (source) pixels, and the first row below the horizon.
    """
    h, f, cy = cam.height, cam.focal, cam.cy
    a = cam.pixel_to_axes                                   # pixel -> ray (camera axes)
    b = cam.axes_to_pixel                                   # ray -> pixel
    r_virt = cam.rotated(yaw).rotation
    r_real = cam.rotation
    m = r_real.T @ r_virt
    g = m - (shift / cam.z) * np.outer(r_real[1], r_virt[2])
    # vehicle z of the ray of row v (no roll: independent of the column)
    rows = np.arange(h, dtype=np.float64)
    dz = r_virt[2, 0] * 1.0 + r_virt[2, 2] * (-(rows - cy) / f)
    below = np.flatnonzero(dz < -1e-3)
    first = int(below[0]) if len(below) else h
    return b @ g @ a, b @ m @ a, first


def warp_viewpoint(image: np.ndarray, cam: PinholeCamera, shift: float, yaw: float) -> np.ndarray:
    """The (H, W, 3) uint8 frame as seen from the shifted/rotated virtual camera
    (two ``cv2.warpPerspective`` calls, see :func:`viewpoint_homographies`).

    Raises:
        ValueError: the frame size differs from the camera model's.
    """
    import cv2

    if image.shape[0] != cam.height or image.shape[1] != cam.width:
        raise ValueError(f"frame {image.shape[:2]} does not match the camera model "
                         f"{cam.height}x{cam.width}")
    hg, hs, first = viewpoint_homographies(cam, shift, yaw)
    h, w = cam.height, cam.width
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    out = np.empty_like(image)
    if first > 0:   # sky rows [0, first): rotation only
        out[:first] = cv2.warpPerspective(image, hs, (w, first), flags=flags, borderMode=cv2.BORDER_REPLICATE)
    if first < h:   # ground rows [first, h): output row r is row r - first of this warp
        shift_rows = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, float(first)], [0.0, 0.0, 1.0]])
        out[first:] = cv2.warpPerspective(image, hg @ shift_rows, (w, h - first), flags=flags,
                                          borderMode=cv2.BORDER_REPLICATE)
    return out


class SampleTransform:
    """Turns one dataset sample (dict) into a training example (dict of arrays).

    Args:
        preprocessing: the model's preprocessing.
        augment: augmentation settings, or None (validation: no augmentation and no
            camera correction other than the mount's).
        rig: camera name -> :class:`~drive_il.camera.PinholeCamera` (needed by the viewpoint transform;
            None disables it).
        reference: (y [m], yaw [rad]) mount of the model's own camera (the correction
            is relative to it).
        defer_image_ops: draw the same random numbers in the same order and compute the
            same labels, but leave the image work (viewpoint warp, brightness, shadow,
            crop, resize, colour) to :class:`drive_il.training.device_augment.DeviceAugment`,
            which does it batched on the training device: the output then carries the raw
            frame and the drawn parameters (below) instead of the preprocessed image.

    Input sample keys (``drive_il.data.dataset.EpisodeDataset``): ``image`` (H, W, 3)
    uint8, ``camera``, ``camera_y`` [m], ``camera_yaw`` [rad], ``steer``, ``speed``
    [m/s], ``command``, ``wheelbase`` [m], ``max_steer_angle`` [rad]; optionally ``path``
    (K, 2) [m], the path labels of a path head; optionally ``target_point`` (2,) [m], the
    route's target point (an input); optionally ``target_speed`` [m/s], a speed head's
    label; optionally ``obstacle_gap`` [m], an obstacle-gap head's label; optionally
    ``stop_reason`` (int code), a stop-reason head's label.

    Output: ``image`` (C, h, w) uint8, ``steer`` float32 (corrected label),
    ``curvature`` float32 (1/r of the corrected label) [1/m], ``expert_steer`` float32
    (uncorrected), ``speed`` float32, ``command`` int64, ``max_steer_angle`` float32,
    ``wheelbase`` float32; with an input ``path``, ``path`` (K, 2) float32 seen from the
    (virtual) camera's car (:func:`transform_path`, the same (y, psi) as the steering
    correction); with an input ``target_point``, ``target_point`` (2,) float32 moved the
    same way; with an input ``target_speed``, ``target_speed`` float32 [m/s]
    unchanged (side cameras and shifted views keep the step's speed label); with an input
    ``obstacle_gap``, ``obstacle_gap`` float32 [m] unchanged (a side camera sits 0.2-0.5 m
    beside the centre one: the gap along the route changes by far less than the label's
    error); with an input ``stop_reason``, ``stop_reason`` int64 unchanged. A mirrored
    sample (``flip_prob``, module doc) has its image flipped and ``steer``, ``curvature``,
    ``expert_steer``, the lateral components of ``path`` and ``target_point`` negated and
    ``command`` mirrored (:data:`MIRRORED_COMMAND`).

    With ``defer_image_ops``: ``image`` is the raw frame as (3, H, W) uint8 (RGB, not
    cropped or resized), plus the parameters of the image operations, all float32:
    ``aug_homography`` (2, 3, 3), the viewpoint warp's homographies from output to source
    pixels (ground, sky; :func:`viewpoint_homographies`), identity when not applied;
    ``aug_horizon`` (), the first output row warped with the ground homography (0 when
    not applied); ``aug_brightness`` (), the brightness factor (1 when not applied);
    ``aug_shadow`` (4,), ``(x_top, x_bot, factor, right_side)``: the shadow line's ends
    [px] at the top and bottom edge of the frame, rounded to 1/16 px as the polygon fill of
    :func:`random_shadow` rounds them, the darkening factor and 1 when the right side of
    the line is darkened (0: the left side); ``(0, 0, 1, 0)`` when not applied;
    ``aug_flip`` (), 1 when the output image is to be mirrored (the labels are already), else 0.
    """

    def __init__(self, preprocessing: PreprocessConfig, augment: AugmentConfig | None = None, *,
                 rig: Mapping[str, PinholeCamera] | None = None,
                 reference: tuple[float, float] = (0.0, 0.0), defer_image_ops: bool = False) -> None:
        self.preprocessing = preprocessing
        self.augment = augment
        self.rig = dict(rig or {})
        self.reference = reference
        self.defer_image_ops = bool(defer_image_ops)

    def __call__(self, sample: Mapping[str, Any], rng: np.random.Generator | None = None) -> dict[str, Any]:
        a = self.augment
        defer = self.defer_image_ops
        img = sample["image"]
        if defer:
            img = np.asarray(img)
            if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
                raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {img.shape} {img.dtype}")
            homography = np.broadcast_to(np.eye(3, dtype=np.float32), (2, 3, 3)).copy()
            horizon, brightness = np.float32(0.0), np.float32(1.0)
            shadow = np.array([0.0, 0.0, 1.0, 0.0], np.float32)
        y = float(sample.get("camera_y", 0.0)) - self.reference[0]
        psi = float(sample.get("camera_yaw", 0.0)) - self.reference[1]
        if a is not None and rng is not None:
            if a.viewpoint_prob > 0 and rng.random() < a.viewpoint_prob:
                cam = self.rig.get(str(sample.get("camera", "")))
                if cam is not None and cam.height == img.shape[0] and cam.width == img.shape[1]:
                    ds = float(np.clip(rng.normal(0.0, a.viewpoint_shift_std), -2.5 * a.viewpoint_shift_std,
                                       2.5 * a.viewpoint_shift_std))
                    std = math.radians(a.viewpoint_yaw_std_deg)
                    dp = float(np.clip(rng.normal(0.0, std), -2.5 * std, 2.5 * std))
                    if defer:
                        hg, hs, first = viewpoint_homographies(cam, ds, dp)
                        homography = np.stack([hg, hs]).astype(np.float32)
                        horizon = np.float32(first)
                    else:
                        img = warp_viewpoint(img, cam, ds, dp)
                    y += ds
                    psi += dp
            if a.brightness_prob > 0 and rng.random() < a.brightness_prob:
                if defer:
                    brightness = np.float32(_draw_brightness(rng, a.brightness_range))
                else:
                    img = random_brightness(img, rng, a.brightness_range)
            if a.shadow_prob > 0 and rng.random() < a.shadow_prob:
                if defer:
                    x_top, x_bot, factor, left_side = _draw_shadow(rng, img.shape[1], a.shadow_strength)
                    # random_shadow fills the polygon in 1/16 px fixed point (exact in float32)
                    shadow = np.array([np.round(x_top * 16) / 16, np.round(x_bot * 16) / 16, np.float32(factor),
                                       0.0 if left_side else 1.0], np.float32)
                else:
                    img = random_shadow(img, rng, a.shadow_strength)
        # drawn last, and only when enabled: the other draws (and so earlier runs) unchanged
        flip = a is not None and rng is not None and a.flip_prob > 0 and rng.random() < a.flip_prob
        wheelbase = float(sample.get("wheelbase", 2.9))
        max_steer = float(sample.get("max_steer_angle", math.radians(35.0)))
        expert = float(sample["steer"])
        speed = float(sample.get("speed", 0.0))
        if a is not None:
            steer = corrected_steer(expert, y, psi, speed, wheelbase=wheelbase, max_steer_angle=max_steer,
                                    recovery_seconds=a.recovery_seconds, min_distance=a.min_recovery_distance)
        else:
            steer = corrected_steer(expert, y, psi, speed, wheelbase=wheelbase, max_steer_angle=max_steer)
        out = {
            "image": np.ascontiguousarray(img.transpose(2, 0, 1)) if defer else preprocess_uint8(img, self.preprocessing),
            "steer": np.float32(steer),
            "curvature": np.float32(steer_to_curvature(steer, wheelbase, max_steer)),
            "expert_steer": np.float32(expert),
            "speed": np.float32(speed),
            "command": np.int64(int(sample.get("command", 4))),
            "wheelbase": np.float32(wheelbase),
            "max_steer_angle": np.float32(max_steer),
        }
        if "path" in sample:
            out["path"] = np.ascontiguousarray(transform_path(sample["path"], y, psi), dtype=np.float32)
        if "target_point" in sample:   # an input in the ego frame: seen from the virtual camera's car too
            out["target_point"] = np.ascontiguousarray(transform_path(sample["target_point"], y, psi),
                                                       dtype=np.float32)
        if "target_speed" in sample:   # a speed head's label: the same for every view of the step
            out["target_speed"] = np.float32(sample["target_speed"])
        if "obstacle_gap" in sample:   # an obstacle-gap head's label: also the same for every view
            out["obstacle_gap"] = np.float32(sample["obstacle_gap"])
        if "stop_reason" in sample:    # a stop-reason head's label: what the expert slows for
            out["stop_reason"] = np.int64(sample["stop_reason"])
        if flip:
            if not defer:
                out["image"] = np.ascontiguousarray(out["image"][:, :, ::-1])
            for k in ("steer", "curvature", "expert_steer"):
                out[k] = np.float32(-out[k])
            for k in ("path", "target_point"):   # a new array: the input may be the sample's own
                if k in out:
                    out[k] = out[k] * np.array([1.0, -1.0], np.float32)
            c = int(out["command"])
            out["command"] = np.int64(MIRRORED_COMMAND.get(c, c))
        if defer:
            out.update(aug_homography=homography, aug_horizon=horizon, aug_brightness=brightness, aug_shadow=shadow,
                       aug_flip=np.float32(1.0 if flip else 0.0))
        return out
