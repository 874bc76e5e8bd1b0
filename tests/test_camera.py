"""drive_il.camera.PinholeCamera: projection of known points, rays and homography in
agreement, and the renderer and the augmentation on the same model."""

from __future__ import annotations

import math

import numpy as np
import pytest

from drive_il.camera import PinholeCamera, mount_axes
from drive_il.scenario import CameraConfig

RIGS = [
    CameraConfig(),                                                          # DAVE-2 66x200
    CameraConfig(name="side", width=640, height=480, fov_deg=70.0, x=0.5, y=0.6, z=2.0,
                 pitch_deg=-25.0, yaw_deg=30.0),
    CameraConfig(name="wide", width=800, height=600, fov_deg=90.0, x=1.4, z=1.5, pitch_deg=-10.0),
]


def _rig_entry(spec: CameraConfig) -> dict:
    return dict(name=spec.name, width=spec.width, height=spec.height, fov_deg=spec.fov_deg, x=spec.x,
                y=spec.y, z=spec.z, pitch_deg=spec.pitch_deg, yaw_deg=spec.yaw_deg)


def _apply(H: np.ndarray, u: float, v: float) -> tuple[float, float]:
    p = H @ np.array([u, v, 1.0])
    return p[0] / p[2], p[1] / p[2]


def test_known_ground_point_projects_to_the_known_pixel():
    # level camera 1.5 m up at the reference point, 90 deg fov, 200 px wide: f = 100 px
    cam = PinholeCamera(width=200, height=100, fov=math.radians(90.0), z=1.5)
    assert cam.focal == pytest.approx(100.0)
    assert (cam.cx, cam.cy) == (99.5, 49.5)
    # ground point 10 m ahead, 2 m right: camera axes (10, 2, -1.5) -> u = cx + 100 * 2 / 10,
    # v = cy + 100 * 1.5 / 10
    a = cam.vehicle_to_axes(np.array([[10.0, 2.0, 0.0]]))
    assert np.allclose(a, [[10.0, 2.0, -1.5]])
    assert np.allclose(cam.project(a), [[119.5, 64.5]])
    # the homography maps the pixel back to the ground point, for any ego pose
    assert np.allclose(_apply(cam.ground_homography(0.0, 0.0, 0.0), 119.5, 64.5), (10.0, 2.0))
    yaw = math.radians(30.0)
    X = 5.0 + 10.0 * math.cos(yaw) - 2.0 * math.sin(yaw)
    Y = -3.0 + 10.0 * math.sin(yaw) + 2.0 * math.cos(yaw)
    assert np.allclose(_apply(cam.ground_homography(5.0, -3.0, yaw), 119.5, 64.5), (X, Y))
    # horizon of a level camera: the middle of the image
    assert cam.horizon_row == pytest.approx(cam.cy)


def test_pitched_down_camera_sees_the_point_under_its_axis_at_the_centre():
    # pitch -45 deg, 2 m up, mounted 1 m ahead: the optical axis meets the ground 3 m ahead
    cam = PinholeCamera(width=101, height=51, fov=math.radians(60.0), x=1.0, z=2.0, pitch=math.radians(-45.0))
    uv = cam.project(cam.vehicle_to_axes(np.array([[3.0, 0.0, 0.0]])))
    assert np.allclose(uv, [[50.0, 25.0]])
    assert np.allclose(_apply(cam.ground_homography(0.0, 0.0, 0.0), 50.0, 25.0), (3.0, 0.0))
    # horizon: 45 deg above the axis, f tan(45 deg) rows up
    assert cam.horizon_row == pytest.approx(25.0 - cam.focal)


@pytest.mark.parametrize("spec", RIGS, ids=lambda s: s.name)
def test_rays_intrinsics_and_homography_agree(spec):
    cam = PinholeCamera.from_config(spec)
    f = cam.focal
    assert f == pytest.approx(spec.focal_px)
    # K (optical frame) and axes_to_pixel (camera axes) are the same matrix, axes permuted
    perm = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])   # (fwd, right, up) -> (x, y, z) optical
    assert np.allclose(cam.K @ perm, cam.axes_to_pixel)
    assert np.allclose(cam.axes_to_pixel @ cam.pixel_to_axes, np.eye(3))
    # rotation: orthonormal, columns = mount_axes
    R = cam.rotation
    assert np.allclose(R.T @ R, np.eye(3)) and np.allclose(R, np.array(mount_axes(cam.pitch, cam.yaw)).T)
    # per-pixel rays == inverse intrinsics, and in the vehicle frame == pixel_to_vehicle
    rays32 = cam.pixel_rays()
    assert rays32.shape == (cam.height * cam.width, 3) and rays32.dtype == np.float32
    assert not rays32.flags.writeable and cam.pixel_rays() is rays32      # cached, read-only
    rays = rays32.astype(np.float64)
    v, u = np.divmod(np.arange(cam.height * cam.width), cam.width)
    pix = np.stack([u, v, np.ones_like(u)]).astype(np.float64)            # (3, N)
    assert np.allclose(rays.T, cam.pixel_to_axes @ pix, atol=1e-6)
    veh = cam.pixel_to_vehicle @ pix
    assert np.allclose(veh, R @ rays.T, atol=1e-6)
    # ray / ground intersection == ground homography (rows below the horizon), and the
    # ground point projects back to its pixel
    below = (veh[2] < -1e-3) & (v > cam.horizon_row + 1)
    t = cam.z / -veh[2, below]
    ground = np.array([cam.x, cam.y, cam.z])[:, None] + t * veh[:, below]   # vehicle frame
    Hg = cam.ground_homography(0.0, 0.0, 0.0)
    g = Hg @ pix[:, below]
    assert np.allclose(g[:2] / g[2], ground[:2], rtol=1e-9, atol=1e-6)
    back = cam.project(cam.vehicle_to_axes(ground.T))
    assert np.allclose(back, pix[:2, below].T, atol=1e-6)
    # the horizon row: rays there are level
    if 0 <= cam.horizon_row < cam.height:
        hr = cam.pixel_to_vehicle @ np.array([cam.cx, cam.horizon_row, 1.0])
        assert abs(hr[2]) < 1e-9


def test_built_from_config_or_rig_alike_and_validated():
    for spec in RIGS:
        assert PinholeCamera.from_config(spec) == PinholeCamera.from_rig(_rig_entry(spec))
    cam = PinholeCamera.from_rig(dict(width=200, height=66))
    assert cam == PinholeCamera(width=200, height=66, fov=math.radians(60.0), z=1.5)
    assert cam.rotated(0.1).yaw == pytest.approx(0.1) and cam.rotated(0.1).pitch == cam.pitch
    with pytest.raises(KeyError):
        PinholeCamera.from_rig(dict(height=66))
    with pytest.raises(ValueError):
        PinholeCamera(width=0, height=66, fov=1.0)
    with pytest.raises(ValueError):
        PinholeCamera(width=200, height=66, fov=math.pi)


def _textured_raster():
    import cv2

    from drive_il.sim.embedded.raster import MapRaster

    rng = np.random.default_rng(0)
    n = 800                                              # 80 m x 80 m at 0.1 m
    noise = rng.integers(0, 256, (n // 8, n // 8, 1), dtype=np.uint8)
    img = cv2.resize(noise, (n, n), interpolation=cv2.INTER_CUBIC)
    rgba = np.dstack([img, 255 - img, img // 2, np.zeros_like(img)])
    levels = [np.ascontiguousarray(rgba)]
    while min(levels[-1].shape[:2]) > 48:
        levels.append(cv2.pyrDown(levels[-1]))
    return MapRaster(levels=levels, res=0.1, x0=-40.0, y0=-40.0, digest="noise", border_value=(0, 0, 0, 0))


def test_renderer_and_augmentation_share_the_model():
    """The renderer's view from a camera 0.4 m right and 3 deg yawed right matches the
    augmentation's viewpoint warp of the centre view (flat ground): both use the same
    pinhole model."""
    import dataclasses

    from drive_il.sim.embedded.camera import Camera
    from drive_il.sim.embedded.weather import WeatherLook
    from drive_il.training.augment import warp_viewpoint
    from drive_il.types import VehicleState

    look = WeatherLook(name="neutral", gain=(1.0, 1.0, 1.0), bias=(0.0, 0.0, 0.0), haze_k=0.0,
                       sky_top=(0.0, 0.0, 255.0), sky_horizon=(0.0, 0.0, 255.0))
    spec = CameraConfig(width=320, height=160, fov_deg=70.0, x=1.4, z=1.5, pitch_deg=-12.0)
    shifted = dataclasses.replace(spec, y=0.4, yaw_deg=3.0)
    raster = _textured_raster()
    centre = Camera(spec, raster, look)
    assert isinstance(centre.model, PinholeCamera)
    model = PinholeCamera.from_rig(_rig_entry(spec))
    assert centre.model == model
    ego = VehicleState(x=-10.0, y=0.0, yaw=0.0)
    warped = warp_viewpoint(centre.render(ego), model, 0.4, math.radians(3.0)).astype(np.float64)
    truth = Camera(shifted, raster, look).render(ego).astype(np.float64)
    rows = slice(int(model.horizon_row) + 20, spec.height - 4)          # ground, off the borders
    cols = slice(30, spec.width - 30)
    err = np.abs(warped[rows, cols] - truth[rows, cols])
    assert err.mean() < 3.0, err.mean()          # grey levels (1.7 measured)
    # a wrong model (5 deg more pitch) is clearly worse
    wrong = dataclasses.replace(model, pitch=model.pitch + math.radians(5.0))
    bad = warp_viewpoint(centre.render(ego), wrong, 0.4, math.radians(3.0)).astype(np.float64)
    assert np.abs(bad[rows, cols] - truth[rows, cols]).mean() > 3.0 * err.mean()   # (11.5)
