"""The embedded camera: pinhole projection, marking widths and dash lengths seen in the
image, vehicles, determinism.

The expected image positions are computed here independently of the renderer, with the
textbook pinhole model in CARLA's camera convention (x forward, y right, z up):
u = W/2 + f y / x, v = H/2 - f z / x, f = W / (2 tan(fov / 2)), continuous image
coordinates where pixel index i covers [i, i + 1).
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from drive_il.maps.geometry import DASH_LENGTH
from drive_il.scenario import WEATHER_PRESETS, CameraConfig
from drive_il.sim.embedded.camera import (
    _LAMP_DZ,
    _LAMP_F,
    STOP_LINE_WIDTH,
    TAG_PEDESTRIAN,
    TAG_TRAFFIC_LIGHT,
    Camera,
)
from drive_il.sim.embedded.depth_labels import TAG_ROADLINE
from drive_il.sim.embedded.raster import MapRaster
from drive_il.sim.embedded.weather import WeatherLook
from drive_il.types import (
    ActorState,
    TrafficLight,
    TrafficLightState,
    VehicleState,
    WalkerState,
)

#: a look that leaves the ground texture untouched (no grading, no haze)
NEUTRAL = WeatherLook(name="neutral", gain=(1.0, 1.0, 1.0), bias=(0.0, 0.0, 0.0), haze_k=0.0,
                      sky_top=(0.0, 0.0, 255.0), sky_horizon=(0.0, 0.0, 255.0))


def pinhole(spec: CameraConfig, ego: VehicleState, X: float, Y: float, Z: float = 0.0) -> tuple[float, float, float]:
    """(u, v, depth) of world point (X, Y, Z) in continuous image coordinates."""
    dx, dy = X - ego.x, Y - ego.y
    c, s = math.cos(ego.yaw), math.sin(ego.yaw)
    fwd, right, up = dx * c + dy * s, -dx * s + dy * c, Z
    a, b, h = fwd - spec.x, right - spec.y, up - spec.z
    cy, sy = math.cos(spec.yaw), math.sin(spec.yaw)
    a2, b2 = a * cy + b * sy, -a * sy + b * cy
    cp, sp = math.cos(spec.pitch), math.sin(spec.pitch)
    xc, zc, yc = a2 * cp + h * sp, -a2 * sp + h * cp, b2
    f = spec.width / (2.0 * math.tan(spec.fov / 2.0))
    return spec.width / 2.0 + f * yc / xc, spec.height / 2.0 - f * zc / xc, xc


def synthetic_raster(markers: list[tuple[float, float]], res: float = 0.05) -> MapRaster:
    """A black 80 m x 80 m ground with small white discs (radius 0.1 m) at ``markers``."""
    n = int(80 / res)
    x0 = y0 = -40.0
    img = np.zeros((n, n, 4), np.uint8)
    for (x, y) in markers:
        c = (round((x - x0) / res * 16), round((y - y0) / res * 16))
        cv2.circle(img, c, round(0.1 / res * 16), (255, 255, 255, 0), -1, cv2.LINE_AA, 4)
    levels = [img]
    while min(levels[-1].shape[:2]) > 48:
        levels.append(cv2.pyrDown(levels[-1]))
    return MapRaster(levels=levels, res=res, x0=x0, y0=y0, digest="synthetic", border_value=(0, 0, 0, 0))


RIGS = [
    CameraConfig(name="wide", width=800, height=600, fov_deg=90.0, x=1.4, z=1.5, pitch_deg=-10.0),
    CameraConfig(name="side", width=640, height=480, fov_deg=70.0, x=0.5, y=0.6, z=2.0, pitch_deg=-25.0, yaw_deg=30.0),
    CameraConfig(name="dave2", width=200, height=66, fov_deg=60.0, x=1.4, z=1.5, pitch_deg=-8.0),
]


@pytest.mark.parametrize("spec", RIGS, ids=lambda s: s.name)
def test_ground_point_projects_within_one_pixel(spec):
    ego = VehicleState(x=1.0, y=-2.0, yaw=math.radians(35.0))
    # ground points in front of the camera, 4-12 m away, across the field of view
    rng = np.random.default_rng(1)
    pts = []
    for _ in range(40):
        d = rng.uniform(4.0, 12.0)
        ang = spec.yaw + rng.uniform(-0.6, 0.6) * spec.fov / 2.0
        cx = ego.x + spec.x * math.cos(ego.yaw)
        cy = ego.y + spec.x * math.sin(ego.yaw)
        X, Y = cx + d * math.cos(ego.yaw + ang), cy + d * math.sin(ego.yaw + ang)
        u, v, depth = pinhole(spec, ego, X, Y)
        if 14 < u < spec.width - 14 and 14 < v < spec.height - 14 and depth > 0:
            pts.append((X, Y, u, v))
    # keep markers apart in the image
    chosen = []
    for p in pts:
        if all(math.hypot(p[2] - q[2], p[3] - q[3]) > 30 for q in chosen):
            chosen.append(p)
    assert len(chosen) >= 3
    cam = Camera(spec, synthetic_raster([(p[0], p[1]) for p in chosen]), NEUTRAL)
    img = cam.render(ego).astype(np.float64)
    g = img[..., 1]  # green: 0 on the ground and in the (blue) sky, 255 on markers
    for X, Y, u, v in chosen:
        iu, iv = int(u), int(v)
        k = 14
        win = g[iv - k:iv + k + 1, iu - k:iu + k + 1]
        assert win.sum() > 0, f"marker at ({X:.2f}, {Y:.2f}) not visible near ({u:.1f}, {v:.1f})"
        rows, cols = np.mgrid[iv - k:iv + k + 1, iu - k:iu + k + 1]
        mu = (cols * win).sum() / win.sum() + 0.5   # centroid, continuous coordinates
        mv = (rows * win).sum() / win.sum() + 0.5
        assert abs(mu - u) <= 1.0 and abs(mv - v) <= 1.0, (spec.name, (u, v), (mu, mv))


def test_sky_above_horizon_ground_below():
    spec = RIGS[0]
    cam = Camera(spec, synthetic_raster([]), NEUTRAL)
    img = cam.render(VehicleState(x=0.0, y=0.0, yaw=0.0))
    f = spec.focal_px
    v_h = spec.height / 2.0 + f * math.tan(spec.pitch)  # continuous row of the horizon
    assert abs(cam.horizon_v + 0.5 - v_h) < 1e-6
    assert (img[: int(v_h) - 1, :, 2] == 255).all()          # sky (blue)
    assert (img[int(v_h) + 2:, :, 2] == 0).all()             # black ground


# -- traffic lights, stop lines, walkers (issue 19) ---------------------------------------


DAVE2 = CameraConfig()  # 66x200, 60 deg, pitch -8 deg
ORIGIN = VehicleState(x=0.0, y=0.0, yaw=0.0)


def _light(x: float, y: float, state: TrafficLightState, yaw: float = 0.0) -> TrafficLight:
    """A head at (x, y) for traffic driving along +x (lamps facing -x), stop line across
    y - 4.5 .. y - 1 at x - 2."""
    return TrafficLight(light_id=1, x=x, y=y, yaw=yaw, state=state, height=3.0,
                        stop_line=((x - 2.0, y - 4.5), (x - 2.0, y - 1.0)))


def _lamp_px(spec: CameraConfig, light: TrafficLight, k: int) -> tuple[int, int]:
    c, s = math.cos(light.yaw), math.sin(light.yaw)
    u, v, _ = pinhole(spec, ORIGIN, light.x - _LAMP_F * c, light.y - _LAMP_F * s, light.height + _LAMP_DZ[k])
    return int(u), int(v)


@pytest.mark.parametrize("preset", WEATHER_PRESETS)
def test_lit_red_lamp_is_red_at_its_projection_in_every_preset(preset):
    raster = synthetic_raster([])
    look = WeatherLook.from_preset(preset)
    for spec, light in ((RIGS[0], _light(20.0, 3.0, TrafficLightState.RED)),
                        (DAVE2, _light(60.0, 4.0, TrafficLightState.RED))):
        img = Camera(spec, raster, look).render(ORIGIN, lights=(light,), frame=3, seed=1)
        u, v = _lamp_px(spec, light, 0)
        r, g, b = (int(x) for x in img[v, u])
        assert r >= 200 and r > 2 * g and r > 2 * b, (preset, spec.name, (r, g, b))
        # the unlit green lamp below it is dark (not lit)
        if spec is RIGS[0]:
            u, v = _lamp_px(spec, light, 2)
            assert max(img[v, u]) < 150, img[v, u]


def test_the_lit_lamp_follows_the_state_and_faces_the_traffic():
    spec = RIGS[0]
    cam = Camera(spec, synthetic_raster([]), WeatherLook.from_preset("ClearSunset"))
    green = _light(20.0, 3.0, TrafficLightState.GREEN)
    img = cam.render(ORIGIN, lights=(green,))
    u, v = _lamp_px(spec, green, 2)
    r, g, b = (int(x) for x in img[v, u])
    assert g >= 200 and g > 2 * r, (r, g, b)
    u, v = _lamp_px(spec, green, 0)
    assert img[v, u, 0] < 120                      # the red lamp is off
    yellow = cam.render(ORIGIN, lights=(_light(20.0, 3.0, TrafficLightState.YELLOW),))
    u, v = _lamp_px(spec, green, 1)
    assert yellow[v, u, 0] >= 200 and yellow[v, u, 1] >= 150 and yellow[v, u, 2] < 100
    # a head for the opposite direction shows the camera its back: no lit lamp in view
    back = cam.render(ORIGIN, lights=(_light(20.0, 3.0, TrafficLightState.RED, yaw=math.pi),))
    red = (back[..., 0].astype(int) > 150) & (back[..., 0] > 2 * back[..., 1].astype(int))
    assert not red.any()
    # ... but its pole and housing are drawn
    assert not np.array_equal(back, cam.render(ORIGIN))


def test_stop_line_is_white_on_the_ground_and_under_vehicles():
    spec = RIGS[0]
    cam = Camera(spec, synthetic_raster([]), NEUTRAL)
    light = _light(8.0, 3.0, TrafficLightState.RED)
    img = cam.render(ORIGIN, lights=(light,))
    (x0, _), _ = light.stop_line   # 4.6 m ahead of the camera: the band is ~10 px tall
    u, v, _ = pinhole(spec, ORIGIN, x0, 0.5 * (light.stop_line[0][1] + light.stop_line[1][1]))
    assert img[int(v), int(u)].min() >= 200                       # white paint on black ground
    # its width along the road: white from x0 - w/2 to x0 + w/2 (within 0.1 m, ~2.5 px)
    for dx, white in ((-0.5 * STOP_LINE_WIDTH + 0.1, True), (0.5 * STOP_LINE_WIDTH - 0.1, True),
                      (-0.5 * STOP_LINE_WIDTH - 0.1, False), (0.5 * STOP_LINE_WIDTH + 0.1, False)):
        u, v, _ = pinhole(spec, ORIGIN, x0 + dx, 0.25)
        assert (img[int(v), int(u)].min() >= 128) == white, (dx, img[int(v), int(u)])
    # a vehicle standing on it hides it
    car = ActorState(actor_id=1, x=x0 + 1.0, y=0.25, yaw=0.0, color=(200, 40, 40))
    with_car = cam.render(ORIGIN, (car,), lights=(light,))
    u, v, _ = pinhole(spec, ORIGIN, x0, 0.25, 0.0)
    assert np.array_equal(with_car[int(v), int(u)], cam.render(ORIGIN, (car,))[int(v), int(u)])
    assert with_car[int(v), int(u)].min() < 128


def test_walker_occludes_the_road_and_is_occluded_by_nearer_vehicles():
    spec = RIGS[0]
    cam = Camera(spec, synthetic_raster([]), WeatherLook.from_preset("ClearNoon"))
    walker = WalkerState(actor_id=100000, x=8.0, y=0.0, yaw=math.pi / 2, speed=1.4, color=(210, 30, 30))
    bare = cam.render(ORIGIN)
    img = cam.render(ORIGIN, walkers=(walker,))
    u, v, _ = pinhole(spec, ORIGIN, walker.x, walker.y, 0.65 * walker.height)   # torso
    r, g, b = (int(x) for x in img[int(v), int(u)])
    assert r > 100 and r > 2 * g and r > 2 * b, (r, g, b)
    u, v, _ = pinhole(spec, ORIGIN, walker.x, walker.y, 0.2 * walker.height)    # legs, over the road
    assert not np.array_equal(img[int(v), int(u)], bare[int(v), int(u)])
    # a car nearer than the walker hides it; a car behind it does not
    u, v, _ = pinhole(spec, ORIGIN, walker.x, walker.y, 0.65 * walker.height)
    near_car = ActorState(actor_id=1, x=5.5, y=0.0, yaw=0.0, height=1.6, color=(30, 60, 200))
    a = cam.render(ORIGIN, (near_car,), walkers=(walker,))
    assert np.array_equal(a[int(v), int(u)], cam.render(ORIGIN, (near_car,))[int(v), int(u)])
    far_car = ActorState(actor_id=1, x=14.0, y=0.0, yaw=0.0, height=1.6, color=(30, 60, 200))
    b_ = cam.render(ORIGIN, (far_car,), walkers=(walker,))
    assert np.array_equal(b_[int(v), int(u)], img[int(v), int(u)])
    # overlapping the camera or behind it: clipped, no error
    close = WalkerState(actor_id=100001, x=1.6, y=0.1, yaw=0.0)
    assert cam.render(ORIGIN, walkers=(close,)).shape == (spec.height, spec.width, 3)
    # far walkers in the 66x200 frame: silhouettes (legs and body ~7 px tall at 40 m, one
    # ~4 px tall at 75 m), red where projected
    dcam = Camera(DAVE2, synthetic_raster([]), NEUTRAL)
    for x in (40.0, 75.0):
        far = WalkerState(actor_id=100002, x=x, y=0.0, yaw=0.0, color=(240, 20, 20))
        img = dcam.render(ORIGIN, walkers=(far,)).astype(int)
        u, v, _ = pinhole(DAVE2, ORIGIN, x, 0.0, 0.65 * far.height)
        patch = img[int(v) - 1:int(v) + 2, int(u) - 1:int(u) + 2]
        assert (patch[..., 0] - patch[..., 2]).max() > 60, (x, patch[..., 0])


def test_depth_and_labels_of_lights_walkers_and_stop_lines():
    spec = RIGS[0]
    cam = Camera(spec, synthetic_raster([]), NEUTRAL)
    light = _light(20.0, 3.0, TrafficLightState.RED)
    walker = WalkerState(actor_id=100000, x=8.0, y=-1.0, yaw=0.0)
    depth, labels = cam.render_depth_labels(ORIGIN, lights=(light,), walkers=(walker,))
    u, v, x = pinhole(spec, ORIGIN, walker.x, walker.y, 0.65 * walker.height)
    assert labels[int(v), int(u)] == TAG_PEDESTRIAN
    # the torso's front face is 0.12 m before the walker's centre (scaled to 1.75 m)
    assert abs(depth[int(v), int(u)] - (x - 0.12)) < 0.1
    u, v, _ = pinhole(spec, ORIGIN, light.x - 0.26, light.y, light.height)   # housing
    assert labels[int(v), int(u)] == TAG_TRAFFIC_LIGHT
    u, v, _ = pinhole(spec, ORIGIN, light.x, light.y, 1.0)                   # pole
    assert labels[int(v), int(u)] == TAG_TRAFFIC_LIGHT
    (x0, _), _ = light.stop_line
    u, v, _ = pinhole(spec, ORIGIN, x0, 0.25)
    assert labels[int(v), int(u)] == TAG_ROADLINE
    plain_d, plain_l = cam.render_depth_labels(ORIGIN)
    assert np.array_equal(plain_d[int(v), int(u)], depth[int(v), int(u)])  # paint: ground depth
    d0, l0 = cam.render_depth_labels(ORIGIN, lights=(), walkers=())
    assert np.array_equal(d0, plain_d) and np.array_equal(l0, plain_l)


def test_no_lights_or_walkers_in_view_gives_the_identical_frame():
    spec = DAVE2
    look = WeatherLook.from_preset("HardRainSunset")
    cam = Camera(spec, synthetic_raster([(12.0, 1.0), (20.0, -1.0)]), look)
    cars = (ActorState(actor_id=1, x=15.0, y=-2.0, yaw=0.0), ActorState(actor_id=2, x=30.0, y=2.0, yaw=3.1))
    ref = cam.render(ORIGIN, cars, frame=4, seed=2)
    assert np.array_equal(cam.render(ORIGIN, cars, frame=4, seed=2, lights=(), walkers=()), ref)
    behind_l = _light(-20.0, 3.0, TrafficLightState.GREEN)
    behind_w = tuple(WalkerState(actor_id=100000 + i, x=-5.0 - 3 * i, y=1.0, yaw=0.0) for i in range(20))
    far_w = (WalkerState(actor_id=100100, x=500.0, y=0.0, yaw=0.0),)
    assert np.array_equal(cam.render(ORIGIN, cars, frame=4, seed=2, lights=(behind_l,),
                                     walkers=behind_w + far_w), ref)
    # and the same inputs give the same frame
    w = (WalkerState(actor_id=100000, x=10.0, y=0.5, yaw=1.0),)
    l_ = (_light(40.0, 4.0, TrafficLightState.RED),)
    assert np.array_equal(cam.render(ORIGIN, cars, lights=l_, walkers=w), cam.render(ORIGIN, cars, lights=l_, walkers=w))


# -- markings on a real OpenDRIVE road ------------------------------------------------------

carla = pytest.importorskip("carla")


def _straight_xodr() -> str:
    lane = lambda i, kind, w, mark: (f'<lane id="{i}" type="{kind}" level="false"><width sOffset="0" a="{w}" '
                                     f'b="0" c="0" d="0"/>{mark}</lane>')
    edge = '<roadMark sOffset="0" type="solid" color="white" width="0.12" laneChange="none"/>'
    none = '<roadMark sOffset="0" type="none" color="white" laneChange="none"/>'
    centre = '<roadMark sOffset="0" type="broken" color="yellow" width="0.15" laneChange="none"/>'
    return ('<?xml version="1.0" encoding="UTF-8"?><OpenDRIVE><header revMajor="1" revMinor="4" '
            'name="straight" version="1"/><road name="r" length="120" id="1" junction="-1"><link/>'
            '<planView><geometry s="0" x="0" y="0" hdg="0" length="120"><line/></geometry></planView>'
            '<lanes><laneSection s="0">'
            f'<left>{lane(2, "sidewalk", 2.0, none)}{lane(1, "driving", 3.5, edge)}</left>'
            f'<center><lane id="0" type="none" level="false">{centre}</lane></center>'
            f'<right>{lane(-1, "driving", 3.5, edge)}{lane(-2, "sidewalk", 2.0, none)}</right>'
            '</laneSection></lanes></road></OpenDRIVE>')


@pytest.fixture(scope="module")
def straight():
    text = _straight_xodr()
    m = carla.Map("straight", text)
    return m, MapRaster.build(m, xodr=text, resolution=0.05, cache=False)


def _sample(img: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Bilinear samples (N, 3) of ``img`` at continuous coordinates uv (N, 2)."""
    mx = (uv[:, 0] - 0.5).astype(np.float32).reshape(1, -1)
    my = (uv[:, 1] - 0.5).astype(np.float32).reshape(1, -1)
    return cv2.remap(img, mx, my, cv2.INTER_LINEAR).reshape(-1, 3).astype(np.float64)


def _runs(xs: np.ndarray, on: np.ndarray) -> list[tuple[float, float]]:
    out, start = [], None
    for x, o in zip(xs, on):
        if o and start is None:
            start = x
        elif not o and start is not None:
            out.append((start, x))
            start = None
    return out


def test_marking_widths_and_dash_lengths_in_the_image(straight):
    m, raster = straight
    # the OpenDRIVE values, as carla.Map reports them
    wp = m.get_waypoint(carla.Location(x=30.0, y=1.75, z=0.0))
    centre_w = wp.left_lane_marking.width
    edge_w = wp.right_lane_marking.width
    assert (round(centre_w, 3), round(edge_w, 3)) == (0.15, 0.12)
    spec = CameraConfig(name="probe", width=800, height=600, fov_deg=90.0, x=0.0, z=2.0, pitch_deg=-20.0)
    ego = VehicleState(x=10.0, y=1.75, yaw=0.0)  # lane -1, heading +x
    img = Camera(spec, raster, NEUTRAL).render(ego)

    def project(X, Y):
        return np.array([pinhole(spec, ego, x, y)[:2] for x, y in zip(X, Y)])

    # dashes of the yellow centre line (CARLA y = 0), 1-30 m ahead; each dash's ends at
    # half its own height over the asphalt (the far ones are pre-filtered, lower)
    xs = np.arange(11.0, 40.0, 0.01)
    rgb = _sample(img, project(xs, np.zeros_like(xs)))
    yellow = rgb[:, 0] - rgb[:, 2]
    base = np.median(yellow[yellow <= np.percentile(yellow, 30)])
    full = []
    for a, b in _runs(xs, yellow > base + 0.25 * (yellow.max() - base)):
        if a <= xs[0] or b >= xs[-1] - 0.02:
            continue  # cut by the sampled range
        sel = (xs > a - 1.0) & (xs < b + 1.0)
        peak = yellow[sel].max()
        (a2, b2), = _runs(xs[sel], yellow[sel] > 0.5 * (base + peak))
        full.append((a2, b2))
    assert len(full) >= 2
    for a, b in full:
        assert abs((b - a) - DASH_LENGTH) <= 0.1 * DASH_LENGTH, (a, b)
    # widths: across the centre line inside a dash, across both solid edge lines
    assert any(abs(a - 24.0) < 0.3 for a, _ in full), full  # the dash phase: s = 0, 12, 24, ...
    for X in (16.0, 17.2):  # inside the dash [12, 18), 6-7 m ahead: all three lines in view, >= 4 px wide
        for y_line, w_true, chan in ((0.0, centre_w, "yellow"), (3.5, edge_w, "white"), (-3.5, edge_w, "white")):
            ys = np.arange(y_line - 0.6, y_line + 0.6, 0.002)
            rgb = _sample(img, project(np.full_like(ys, X), ys))
            sig = rgb[:, 0] - rgb[:, 2] if chan == "yellow" else rgb.min(axis=1)
            # full width at half maximum, with the background of each side (an edge
            # line lies between asphalt and the sidewalk's concrete)
            k = int(np.argmax(sig))
            lo = np.median(sig[ys < y_line - 0.3])
            hi = np.median(sig[ys > y_line + 0.3])
            i = k
            while sig[i] > 0.5 * (lo + sig[k]):
                i -= 1
            j = k
            while sig[j] > 0.5 * (hi + sig[k]):
                j += 1
            w = ys[j] - ys[i] - (ys[1] - ys[0])
            assert abs(w - w_true) <= 0.1 * w_true, (X, y_line, w, w_true)


# -- vehicles -------------------------------------------------------------------------------

def test_vehicle_is_drawn_where_projected_and_near_plane_is_safe():
    spec = RIGS[0]
    ego = VehicleState(x=0.0, y=0.0, yaw=0.0)
    cam = Camera(spec, synthetic_raster([]), NEUTRAL)
    car = ActorState(actor_id=7, x=15.0, y=-2.0, yaw=0.0, color=(200, 40, 40))
    img = cam.render(ego, (car,))
    # centre of its rear face, 0.45 m up (on the body)
    u, v, _ = pinhole(spec, ego, car.x - car.length / 2, car.y, 0.45 * car.height)
    px = img[int(v), int(u)].astype(int)
    assert px[0] > 60 and px[0] > 3 * px[1] and px[0] > 3 * px[2], px  # shaded body red
    # left of the centre line in the image (y < 0 = left in CARLA's frame)
    assert u < spec.width / 2
    # an actor overlapping the camera, one behind it: clipped, no error
    img2 = cam.render(ego, (ActorState(actor_id=1, x=1.0, y=0.0, yaw=0.3),
                            ActorState(actor_id=2, x=-10.0, y=0.0, yaw=0.0)))
    assert img2.shape == (spec.height, spec.width, 3)
    # nothing in view: identical to no actors at all
    far = ActorState(actor_id=3, x=-60.0, y=5.0, yaw=0.0)
    assert np.array_equal(cam.render(ego, (far,)), cam.render(ego))


# -- determinism ----------------------------------------------------------------------------

def test_bit_identical_frames_and_rain_varies_only_with_rain(straight):
    _, raster = straight
    spec = CameraConfig()
    ego = VehicleState(x=20.0, y=1.75, yaw=0.02)
    car = ActorState(actor_id=1, x=35.0, y=1.9, yaw=0.0)
    clear = WeatherLook.from_preset("ClearNoon")
    a = Camera(spec, raster, clear).render(ego, (car,), frame=5, seed=3)
    b = Camera(spec, raster, clear).render(ego, (car,), frame=5, seed=3)
    assert a.dtype == np.uint8 and a.shape == (66, 200, 3)
    assert np.array_equal(a, b)
    c = Camera(spec, raster, clear).render(ego, (car,), frame=6, seed=4)
    assert np.array_equal(a, c)  # no rain: (seed, frame) do not matter
    rain = WeatherLook.from_preset("HardRainNoon")
    cam = Camera(spec, raster, rain)
    r1 = cam.render(ego, (car,), frame=5, seed=3)
    assert np.array_equal(r1, Camera(spec, raster, rain).render(ego, (car,), frame=5, seed=3))
    others = [cam.render(ego, (car,), frame=f, seed=s) for f, s in ((6, 3), (5, 4), (7, 3))]
    assert all(not np.array_equal(r1, o) for o in others)
