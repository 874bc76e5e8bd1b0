"""Weather presets: CARLA's names and numbers, and looks that differ as intended."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from drive_il.scenario import WEATHER_PRESETS, CameraConfig
from drive_il.sim.embedded.camera import Camera
from drive_il.sim.embedded.raster import MapRaster
from drive_il.sim.embedded.weather import CARLA_WEATHER, WeatherLook
from drive_il.types import VehicleState


def test_every_scenario_preset_has_a_look():
    for name in WEATHER_PRESETS:
        look = WeatherLook.from_preset(name)
        assert look.name == name
        assert 0.0 <= look.rain <= 1.0 and 0.0 <= look.wet <= 1.0 and look.haze_k > 0
    with pytest.raises(ValueError, match="unknown weather preset 'Foggy'"):
        WeatherLook.from_preset("Foggy")


def test_numbers_are_carlas():
    carla = pytest.importorskip("carla")
    for name in CARLA_WEATHER:
        w = getattr(carla.WeatherParameters, name)
        p = WeatherLook.from_preset(name).carla_parameters()
        for key, value in p.items():
            assert getattr(w, key) == pytest.approx(value, abs=1e-5), (name, key)
        made = WeatherLook.from_preset(name).to_carla()
        for key, value in p.items():
            assert getattr(made, key) == pytest.approx(value, abs=1e-5), (name, key)


@pytest.fixture(scope="module")
def ground():
    """A grey, textured ground with a white stripe, 60 m x 60 m."""
    res = 0.1
    n = 600
    rng = np.random.default_rng(5)
    img = np.empty((n, n, 4), np.uint8)
    img[..., :3] = np.clip(95 + 12 * rng.standard_normal((n, n, 1)), 0, 255).astype(np.uint8)
    img[..., 3] = 1
    img[298:302, :, :3] = 230  # along x, at y in [-0.2, 0.2]
    levels = [img]
    while min(levels[-1].shape[:2]) > 48:
        levels.append(cv2.pyrDown(levels[-1]))
    return MapRaster(levels=levels, res=res, x0=-30.0, y0=-30.0, digest="grey", border_value=(95, 95, 95, 0))


def _render(ground, name: str) -> tuple[np.ndarray, Camera]:
    spec = CameraConfig(width=320, height=240, fov_deg=90.0, pitch_deg=-10.0)
    cam = Camera(spec, ground, WeatherLook.from_preset(name))
    img = cam.render(VehicleState(x=-25.0, y=0.0, yaw=0.0), frame=1, seed=2).astype(np.float64)
    return img, cam


def test_presets_differ_as_intended(ground):
    imgs = {}
    for name in ("ClearNoon", "CloudyNoon", "WetNoon", "HardRainNoon", "ClearSunset"):
        img, cam = _render(ground, name)
        g0 = math.ceil(cam.horizon_v) + 2
        imgs[name] = (img[g0:], img[: max(int(cam.horizon_v) - 1, 1)])
    lum = {k: g.mean() for k, (g, _) in imgs.items()}
    # brightness: clear > cloudy > hard rain; wet ground darker than dry
    assert lum["ClearNoon"] > lum["CloudyNoon"] + 5
    assert lum["CloudyNoon"] > lum["HardRainNoon"] + 3
    assert lum["WetNoon"] < lum["ClearNoon"] - 5
    # contrast (the white stripe straight ahead against the asphalt beside it, medians
    # over the bottom rows so that rain streaks do not count) drops in rain
    def contrast(g):
        rows = g[-40:].mean(axis=2)
        return np.median(rows[:, 157:163]) - np.median(rows[:, 90:130])
    assert contrast(imgs["HardRainNoon"][0]) < 0.8 * contrast(imgs["ClearNoon"][0])
    # a warm sunset: more red relative to blue on the ground and in the sky
    def warmth(x):
        return x[..., 0].mean() / max(x[..., 2].mean(), 1.0)
    assert warmth(imgs["ClearSunset"][0]) > warmth(imgs["ClearNoon"][0]) * 1.1
    assert warmth(imgs["ClearSunset"][1]) > warmth(imgs["ClearNoon"][1]) * 1.2
    # clouds grey the sky: less blue dominance
    def blueness(x):
        return x[..., 2].mean() - x[..., 0].mean()
    assert blueness(imgs["CloudyNoon"][1]) < 0.6 * blueness(imgs["ClearNoon"][1])


def test_haze_grows_with_distance(ground):
    img, cam = _render(ground, "HardRainNoon")
    haze = np.array(cam.look.haze_colour)
    g0 = math.ceil(cam.horizon_v) + 1
    # distance of the row's mean colour to the haze colour shrinks towards the horizon
    near = np.abs(img[-10:].mean(axis=(0, 1)) - haze).sum()
    far = np.abs(img[g0:g0 + 3].mean(axis=(0, 1)) - haze).sum()
    assert far < 0.5 * near


def test_haze_and_sheen_by_hand_floats_and_arrays_alike():
    look = WeatherLook.from_preset("WetCloudyNoon")
    d = np.array([-5.0, 0.0, 12.5, 80.0, math.inf])
    a = look.haze_alpha(d)
    assert a.tolist() == [look.haze_alpha(float(v)) for v in d]
    assert a[0] == 0.0 and a[1] == 0.0 and a[-1] == 1.0
    assert a[3] == pytest.approx(1.0 - math.exp(-look.haze_k * 80.0))
    assert np.allclose(look.haze_transmission(d), 1.0 - a, rtol=0.0, atol=1e-15)
    assert look.wet_sheen(math.inf) == 0.0 and look.wet_sheen(0.0) == 0.0
    assert look.wet_sheen(30.0) == pytest.approx(look.wet * 0.35 * (1.0 - math.exp(-1.0)))
    assert look.wet > 0.0
