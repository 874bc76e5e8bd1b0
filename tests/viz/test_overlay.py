"""The overlay drawn from StepRecords, headless: 200 steps, screenshots, quitting, GIF,
TensorBoard images, the README screenshot."""

from __future__ import annotations

import cv2
import numpy as np
import pygame
import pytest

from drive_il.viz.demo import run_demo
from drive_il.viz.overlay import Layout, Overlay, render_demo_screenshot
from drive_il.viz.recording import surface_to_array


def _region(ov: Overlay, rect) -> np.ndarray:
    a = surface_to_array(ov.surface)
    return a[rect.top:rect.bottom, rect.left:rect.right]


def test_200_steps_with_screenshots(tmp_path, demo_world):
    shots = tmp_path / "screens"
    ov = Overlay(show=True, size=(800, 450), record_screens=shots, record_every=10, carla_map=demo_world.map)
    records = run_demo(demo_world, [ov], steps=200, seed=3, human_steps=range(120, 150))
    ov.close()
    assert len(records) == 200
    pngs = sorted(shots.glob("overlay_*.png"))
    # 200 steps + the final frame drawn at the end of the episode, every 10th saved
    assert [p.name for p in pngs[:2]] == ["overlay_000000.png", "overlay_000010.png"]
    assert len(pngs) == 21
    first = pygame.image.load(str(pngs[0]))
    assert first.get_size() == (800, 450)
    a0 = pygame.surfarray.array3d(first)
    a1 = pygame.surfarray.array3d(pygame.image.load(str(pngs[15])))
    assert (a0 != a1).any()
    h = ov.history
    assert h.count == 200
    assert h.human_interventions == 1
    assert h.interventions >= 1
    assert any(m.kind == "human" for m in h.markers)


def test_panels_show_the_step(demo_world):
    ov = Overlay(show=False, carla_map=demo_world.map)
    recs = run_demo(demo_world, [ov], steps=40, seed=0, human_steps=None)
    lay = ov.layout(recs[-1].step.observation.frames["center"])
    # the bird's-eye panel shows road (grey) and grass (green) pixels
    bird = _region(ov, lay.birdseye)
    road = np.all(bird == ov.theme.road, axis=-1).mean()
    grass = np.all(bird == ov.theme.grass, axis=-1).mean()
    assert road > 0.05 and grass > 0.05
    # the camera area holds the (scaled) camera image of the embedded world's renderer
    frame = recs[-1].step.observation.frames["center"]
    cam = cv2.resize(_region(ov, lay.camera), (frame.shape[1], frame.shape[0]), interpolation=cv2.INTER_AREA)
    err = np.abs(cam.astype(int) - frame.astype(int)).mean()
    assert err < 10 and err < np.abs(cam.astype(int) - np.roll(frame, 20, axis=0).astype(int)).mean() / 3
    # the expert path colour appears on the bird's-eye panel
    assert np.all(bird == ov.theme.expert_path, axis=-1).any()


def test_without_map_draws_route_lane(demo_world):
    ov = Overlay(show=False)  # no carla.Map: the route's own lane
    recs = run_demo(demo_world, [ov], steps=10, seed=0, human_steps=None)
    lay = ov.layout(recs[-1].step.observation.frames["center"])
    bird = _region(ov, lay.birdseye)
    assert np.all(bird == ov.theme.road, axis=-1).mean() > 0.02


def test_quit_event_raises_keyboard_interrupt(demo_world, pump):
    ov = Overlay(show=True, carla_map=demo_world.map, pump=pump)
    pygame.event.post(pygame.event.Event(pygame.QUIT))
    with pytest.raises(KeyboardInterrupt):
        run_demo(demo_world, [ov], steps=50, seed=0)
    assert ov.quit_requested
    assert ov.history.count == 1  # stopped at the first step


def test_quit_flag_only(demo_world, pump):
    ov = Overlay(show=True, carla_map=demo_world.map, pump=pump, raise_on_quit=False)
    pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=pygame.K_ESCAPE, mod=0, unicode="", scancode=0))
    recs = run_demo(demo_world, [ov], steps=5, seed=0)
    assert len(recs) == 5 and ov.quit_requested
    # q does not quit the live overlay (it toggles reverse for a human driver)
    ov2 = Overlay(show=True, carla_map=demo_world.map, pump=pump, raise_on_quit=False)
    pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=pygame.K_q, mod=0, unicode="q", scancode=0))
    run_demo(demo_world, [ov2], steps=3, seed=0)
    assert not ov2.quit_requested


def test_gif(tmp_path, demo_world):
    from PIL import Image

    ov = Overlay(show=False, size=(640, 360), carla_map=demo_world.map, gif=tmp_path / "ov.gif")
    run_demo(demo_world, [ov], steps=20, seed=0)
    ov.close()
    with Image.open(tmp_path / "ov.gif") as im:
        assert im.size == (320, 180)
        assert im.n_frames == 11  # 21 presented frames (20 steps + end), every 2nd kept


def test_tensorboard_images(demo_world):
    class Writer:
        def __init__(self):
            self.calls = []

        def add_image(self, tag, img, step, dataformats="CHW"):
            self.calls.append((tag, img.shape, img.dtype, step, dataformats))

    w = Writer()
    ov = Overlay(show=False, carla_map=demo_world.map, size=(640, 360), tensorboard=w, tensorboard_every=10)
    run_demo(demo_world, [ov], steps=25, seed=0)
    assert [c[3] for c in w.calls][:3] == [1, 11, 21]
    tag, shape, dtype, _, fmt = w.calls[0]
    assert tag == "overlay/episode_0" and shape == (360, 640, 3) and dtype == np.uint8 and fmt == "HWC"


@pytest.mark.parametrize("size", [(1280, 720), (800, 600), (640, 360)])
def test_layout_inside_window(size):
    lay = Layout.compute(size, (66, 200))
    win = pygame.Rect(0, 0, *size)
    rects = [lay.camera, lay.gauges, lay.chart, lay.birdseye, lay.hud]
    for r in rects:
        assert win.contains(r) and r.width > 0 and r.height > 0
    for i, a in enumerate(rects):
        for b in rects[i + 1:]:
            assert not a.colliderect(b)


def test_demo_screenshot(tmp_path):
    p = render_demo_screenshot(tmp_path / "overlay.png", steps=60)
    assert p.exists() and 5_000 < p.stat().st_size < 300_000
    assert pygame.image.load(str(p)).get_size() == (1280, 720)


def test_demo_takeovers_are_the_rollouts(demo_world):
    """The demo drives through the rollout: a DAVE-2 takeover starts past the threshold,
    the expert drives it, and it lasts at least the re-centring steps."""
    from drive_il.rollout import InterventionConfig

    recs = run_demo(demo_world, [], steps=300, seed=3, human_steps=None, learner_bias=0.25)
    assert len(recs) == 300 and [r.step.world_state.frame for r in recs[:3]] == [0, 1, 2]
    inter = np.array([r.intervention for r in recs])
    lat = np.array([r.lateral_deviation for r in recs])
    on = np.flatnonzero(inter[1:] & ~inter[:-1]) + 1
    off = np.flatnonzero(~inter[1:] & inter[:-1]) + 1
    assert len(on) >= 2 and np.all(np.abs(lat[on]) > 1.0)
    assert all(b - a >= InterventionConfig().recenter_steps for a, b in zip(on, off))
    assert all(r.driver == ("expert" if r.intervention else "learner") for r in recs)
    assert all(r.expert_path is not None and r.beta == 0.0 and r.dagger_round == 2 for r in recs)


def test_lights_walkers_and_speeds_are_drawn(tmp_path, demo_world):
    """Urban driving (issue 19): a red light whose stop line crosses the route ahead,
    walkers beside the ego, the expert's and the learner's target speeds."""
    import dataclasses
    import math

    from drive_il.geometry import project_onto_polyline
    from drive_il.types import TrafficLight, TrafficLightState, WalkerState
    from drive_il.viz import panels

    ov = Overlay(show=False, carla_map=demo_world.map)
    recs = run_demo(demo_world, [ov], steps=30, seed=0, human_steps=None)
    rec = recs[-1]
    ws = rec.step.world_state
    route, ego = ws.route, ws.ego
    # a stop line across the route 25 m ahead of the ego's front bumper
    p = project_onto_polyline(route.xy, route.s, ego.x, ego.y)
    s_line = p.s + 0.5 * ego.length + 25.0
    i = int(np.searchsorted(route.s, s_line))
    (ax, ay), (bx, by) = route.xy[i - 1], route.xy[i]
    yaw = math.atan2(by - ay, bx - ax)
    t = (s_line - route.s[i - 1]) / (route.s[i] - route.s[i - 1])
    mx, my = ax + t * (bx - ax), ay + t * (by - ay)
    nx, ny = -math.sin(yaw), math.cos(yaw)
    light = TrafficLight(light_id=5, x=mx + 3.0 * nx, y=my + 3.0 * ny, yaw=yaw, state=TrafficLightState.RED,
                         stop_line=((mx - 2.0 * nx, my - 2.0 * ny), (mx + 2.0 * nx, my + 2.0 * ny)))
    walker = WalkerState(actor_id=100000, x=ego.x + 6.0 * math.cos(ego.yaw), y=ego.y + 6.0 * math.sin(ego.yaw),
                         yaw=0.0, color=(20, 240, 240))
    ws2 = dataclasses.replace(ws, traffic_lights=(light,), walkers=(walker,))
    rec2 = dataclasses.replace(rec, step=dataclasses.replace(rec.step, world_state=ws2), route_progress=p.s,
                               expert_target_speed=8.0, learner_target_speed=5.0)
    ov.update(rec2)
    ov.render(rec2)
    got, gap = ov.light_ahead(rec2)
    assert got is light and abs(gap - 25.0) < 0.5
    items = {k: v for k, v, _ in ov.hud_items(rec2)}
    assert items["light"] == "RED 25 m" and items["exp/lrn v"] == "28.8 / 18.0 km/h"
    frame = rec2.step.observation.frames["center"]
    lay = ov.layout(frame)
    bird = _region(ov, lay.birdseye)
    assert np.all(bird == panels.light_colour(TrafficLightState.RED), axis=-1).sum() >= 20   # the stop line
    assert np.all(bird == walker.color, axis=-1).sum() >= 9                              # the walker's dot
    gauges = _region(ov, lay.gauges)
    assert np.all(gauges == ov.theme.expert, axis=-1).any() and np.all(gauges == ov.theme.learner, axis=-1).any()
    cam = _region(ov, lay.camera)   # the light indicator: a lit red lamp in the camera view's corner
    assert np.all(cam == panels.light_colour(TrafficLightState.RED), axis=-1).sum() >= 20
    # green: the lamp colour follows; past the stop line: no light ahead
    rec3 = dataclasses.replace(rec2, step=dataclasses.replace(rec2.step, world_state=dataclasses.replace(
        ws2, traffic_lights=(dataclasses.replace(light, state=TrafficLightState.GREEN),))))
    assert {k: c for k, _, c in ov.hud_items(rec3)}["light"] == panels.light_colour(TrafficLightState.GREEN)
    assert ov.light_ahead(dataclasses.replace(rec2, route_progress=p.s + 30.0)) == (None, None)
    path = ov.screenshot(tmp_path / "urban.png")
    assert path.stat().st_size > 10_000
