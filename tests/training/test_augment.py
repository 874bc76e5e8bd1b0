"""Augmentation: recovery-label signs and geometry, viewpoint transform, photometric
changes, seeding."""

from __future__ import annotations

import math

import numpy as np
import pytest

from drive_il.camera import PinholeCamera
from drive_il.policies.preprocessing import PreprocessConfig
from drive_il.training.augment import (
    AugmentConfig,
    SampleTransform,
    corrected_steer,
    random_brightness,
    random_shadow,
    recovery_curvature,
    viewpoint_maps,
)

L, MAX = 2.9, math.radians(35.0)


def test_camera_right_of_centre_gets_a_left_correction():
    # camera 0.5 m to the right: the virtual car must steer left (negative)
    assert recovery_curvature(0.5, 0.0, 8.0) < 0
    assert corrected_steer(0.0, 0.5, 0.0, 8.0, wheelbase=L, max_steer_angle=MAX) < 0
    # yawed right -> left; left camera / yawed left -> right
    assert corrected_steer(0.0, 0.0, math.radians(10), 8.0, wheelbase=L, max_steer_angle=MAX) < 0
    assert corrected_steer(0.0, -0.5, math.radians(-10), 8.0, wheelbase=L, max_steer_angle=MAX) > 0
    # the correction adds to the expert's curvature
    base = 0.2
    c = corrected_steer(base, 0.5, 0.0, 8.0, wheelbase=L, max_steer_angle=MAX)
    assert c < base
    # centre camera: label untouched
    assert corrected_steer(base, 0.0, 0.0, 8.0, wheelbase=L, max_steer_angle=MAX) == base


def test_recovery_is_pure_pursuit_to_the_point_2s_ahead():
    y, v = 0.4, 10.0
    d = 20.0  # 2 s at 10 m/s
    # small angles: ~ -2 (y + d psi) / d^2
    assert math.isclose(recovery_curvature(y, 0.0, v), -2 * y / (d * d + y * y))
    psi = 0.01
    assert math.isclose(recovery_curvature(0.0, psi, v), -2 * (y * 0 + d * math.sin(psi)) / (d * d), rel_tol=1e-9)
    # faster -> farther look-ahead -> gentler; at rest the minimum distance applies
    assert abs(recovery_curvature(y, 0, 20.0)) < abs(recovery_curvature(y, 0, 5.0))
    assert recovery_curvature(y, 0, 0.0) == recovery_curvature(y, 0, 0.0, min_distance=4.0)
    assert math.isclose(recovery_curvature(y, 0, 0.0), -2 * y / (16 + y * y))
    # the arc really passes through the target point: a circle of curvature k from the
    # origin heading +x passes (f, r) when k = 2 r / (f^2 + r^2)
    y, psi, v = 0.7, 0.05, 6.0
    k = recovery_curvature(y, psi, v)
    d = 12.0
    f = d * math.cos(psi) - y * math.sin(psi)
    r = -d * math.sin(psi) - y * math.cos(psi)
    cx, cy = 0.0, 1.0 / k                         # circle centre, right = +y
    assert math.isclose(math.hypot(f - cx, r - cy), abs(1.0 / k), rel_tol=1e-9)


def _project(cam: PinholeCamera, p, cam_y=0.0, cam_yaw=0.0):
    """Independent pinhole projection of vehicle-frame point p (x fwd, y right, z up)."""
    th, ps = cam.pitch, cam.yaw + cam_yaw
    c = np.array([cam.x, cam.y + cam_y, cam.z])
    d = np.asarray(p, float) - c
    fwd = np.array([math.cos(th) * math.cos(ps), math.cos(th) * math.sin(ps), math.sin(th)])
    right = np.array([-math.sin(ps), math.cos(ps), 0.0])
    up = np.array([-math.sin(th) * math.cos(ps), -math.sin(th) * math.sin(ps), math.cos(th)])
    f = cam.focal
    u = (cam.width - 1) / 2 + f * d.dot(right) / d.dot(fwd)
    v = (cam.height - 1) / 2 - f * d.dot(up) / d.dot(fwd)
    return u, v


@pytest.mark.parametrize("shift,yaw", [(0.5, 0.0), (-0.8, 0.0), (0.0, math.radians(4)), (0.6, math.radians(-3))])
def test_viewpoint_maps_follow_flat_ground_geometry(shift, yaw):
    cam = PinholeCamera(width=200, height=66, fov=math.radians(60), x=1.4, y=0.0, z=1.5, pitch=math.radians(-8))
    mx, my = viewpoint_maps(cam, shift, yaw)
    checked = 0
    for gx in (6.0, 9.0, 14.0, 25.0):
        for gy in (-2.0, -0.5, 0.0, 1.0, 2.5):
            uv, vv = _project(cam, (gx, gy, 0.0), cam_y=shift, cam_yaw=yaw)     # in the virtual view
            ur, vr = _project(cam, (gx, gy, 0.0))                              # in the real view
            iu, iv = int(round(uv)), int(round(vv))
            if not (0 <= iu < 200 and 0 <= iv < 66):
                continue
            # the map at the virtual pixel points to the real pixel (up to rounding of the pixel)
            du, dv = uv - iu, vv - iv
            assert abs(mx[iv, iu] - (ur - du * 1.0)) < 1.5
            assert abs(my[iv, iu] - (vr - dv * 1.0)) < 1.5
            checked += 1
    assert checked >= 6


def test_viewpoint_shift_right_moves_the_scene_left():
    cam = PinholeCamera(width=200, height=66, fov=math.radians(60), z=1.5, pitch=math.radians(-8))
    mx, _ = viewpoint_maps(cam, 0.5, 0.0)
    # bottom centre of the virtual view looks at ground right of the real camera's centre
    assert mx[-1, 100] > 100.5
    mx0, my0 = viewpoint_maps(cam, 0.0, 0.0)
    u, v = np.meshgrid(np.arange(200), np.arange(66))
    assert np.allclose(mx0, u, atol=1e-3) and np.allclose(my0, v, atol=1e-3)


def test_photometric_changes_are_seeded():
    img = np.full((66, 200, 3), 100, np.uint8)
    a = random_brightness(img, np.random.default_rng(1), 0.3)
    b = random_brightness(img, np.random.default_rng(1), 0.3)
    assert np.array_equal(a, b) and 70 <= a[0, 0, 0] <= 130
    s = random_shadow(img, np.random.default_rng(2), (0.5, 0.5))
    assert set(np.unique(s)) <= {50, 100} and (s == 50).any()


def _sample(camera="right", y=0.5, yaw=0.0, steer=0.1):
    return {"image": np.random.default_rng(0).integers(0, 256, (66, 200, 3), dtype=np.uint8),
            "camera": camera, "camera_y": y, "camera_yaw": yaw, "steer": steer, "speed": 8.0,
            "command": 4, "wheelbase": L, "max_steer_angle": MAX}


def test_sample_transform_corrects_side_cameras_and_is_deterministic():
    cam = PinholeCamera.from_rig(dict(width=200, height=66, fov_deg=60, x=1.4, y=0.5, z=1.5, pitch_deg=-8, yaw_deg=0))
    t = SampleTransform(PreprocessConfig(), AugmentConfig(viewpoint_prob=1.0), rig={"right": cam})
    a = t(_sample(), np.random.default_rng([0, 1, 2]))
    b = t(_sample(), np.random.default_rng([0, 1, 2]))
    c = t(_sample(), np.random.default_rng([0, 1, 3]))
    assert np.array_equal(a["image"], b["image"]) and a["steer"] == b["steer"]
    assert not np.array_equal(a["image"], c["image"])
    assert a["image"].shape == (3, 66, 200) and a["image"].dtype == np.uint8
    assert a["expert_steer"] == np.float32(0.1)
    val = SampleTransform(PreprocessConfig(), None)
    v = val(_sample(), None)
    assert v["steer"] < 0.1                         # right camera: left correction
    assert math.isclose(float(v["curvature"]), math.tan(float(v["steer"]) * MAX) / L, rel_tol=1e-5)
    centre = val(_sample("center", 0.0), None)
    assert centre["steer"] == np.float32(0.1)


@pytest.mark.parametrize("shift,yaw", [(0.5, 0.0), (0.0, 0.05), (-0.7, -0.04)])
def test_homography_warp_equals_per_pixel_maps(shift, yaw):
    import cv2

    from drive_il.training.augment import warp_viewpoint

    cam = PinholeCamera(width=200, height=66, fov=math.radians(60), z=1.5, pitch=math.radians(-8))
    img = cv2.GaussianBlur(np.random.default_rng(0).integers(0, 256, (66, 200, 3), dtype=np.uint8), (9, 9), 3)
    mx, my = viewpoint_maps(cam, shift, yaw)
    ref = cv2.remap(img, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    out = warp_viewpoint(img, cam, shift, yaw)
    assert np.abs(ref.astype(int) - out.astype(int)).max() <= 2
    assert not np.array_equal(out, img)


def _path_sample(camera="right", y=0.5, yaw=0.08, command=2):
    s = _sample(camera, y, yaw, steer=0.3)
    k = np.arange(1.0, 11.0)
    s.update(command=command, path=np.stack([k, 0.05 * k * k], 1),       # a right turn
             target_point=np.array([10.0, 4.0]), target_speed=5.0, obstacle_gap=12.0, stop_reason=1)
    return s


@pytest.mark.parametrize("command,mirrored", [(1, 2), (2, 1), (3, 3), (4, 4), (5, 6), (6, 5)])
def test_mirror_flips_the_frame_and_mirrors_the_labels(command, mirrored):
    aug = {"brightness_prob": 1.0, "shadow_prob": 1.0, "viewpoint_prob": 0.0}
    plain = SampleTransform(PreprocessConfig(), AugmentConfig(**aug))
    flip = SampleTransform(PreprocessConfig(), AugmentConfig(**aug, flip_prob=1.0))
    s = _path_sample(command=command)
    path_in = s["path"].copy()
    a = plain(s, np.random.default_rng([4, 0, 1]))
    b = flip(s, np.random.default_rng([4, 0, 1]))     # the same draws, then the flip's
    assert np.array_equal(b["image"], a["image"][:, :, ::-1])
    for k in ("steer", "curvature", "expert_steer"):
        assert b[k] == -a[k] and b[k].dtype == np.float32, k
    for k in ("path", "target_point"):
        assert np.array_equal(b[k][..., 0], a[k][..., 0]) and np.array_equal(b[k][..., 1], -a[k][..., 1]), k
        assert b[k].dtype == np.float32
    assert b["command"] == mirrored and b["command"].dtype == np.int64
    for k in ("speed", "target_speed", "obstacle_gap", "stop_reason"):
        assert b[k] == a[k], k
    assert np.array_equal(s["path"], path_in)        # the input sample is not changed


def test_mirrored_side_camera_label_is_the_other_cameras_in_the_mirrored_scene():
    """flip(label seen from (y, psi)) == label seen from (-y, -psi) of the mirrored path."""
    flip = SampleTransform(PreprocessConfig(), AugmentConfig(brightness_prob=0.0, shadow_prob=0.0, flip_prob=1.0))
    val = SampleTransform(PreprocessConfig(), None)
    s = _path_sample("right", 0.5, 0.08)
    m = _path_sample("left", -0.5, -0.08)
    m["path"] = s["path"] * np.array([1.0, -1.0])
    m["target_point"] = s["target_point"] * np.array([1.0, -1.0])
    m["steer"] = -s["steer"]
    b = flip(s, np.random.default_rng(0))
    c = val(m, None)
    np.testing.assert_allclose(b["path"], c["path"], atol=1e-6)
    np.testing.assert_allclose(b["target_point"], c["target_point"], atol=1e-6)
    assert math.isclose(float(b["steer"]), float(c["steer"]), abs_tol=1e-6)
    assert b["path"][-1, 1] < 0.0                   # the right turn seen as a left one


def test_no_mirror_draw_when_off():
    s = _path_sample()
    r1, r2 = np.random.default_rng(7), np.random.default_rng(7)
    SampleTransform(PreprocessConfig(), AugmentConfig(flip_prob=0.0))(s, r1)
    SampleTransform(PreprocessConfig(), AugmentConfig(flip_prob=1e-9))(s, r2)
    assert r1.random() != r2.random()               # one more draw with the mirror on
