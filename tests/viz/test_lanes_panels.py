"""The overlay's lane-geometry lookup, the panel transform, pure drawing, the history
(the lane chunks themselves: tests/maps/test_lane_chunks.py)."""

from __future__ import annotations

import math

import numpy as np
import pygame
import pytest

from drive_il.types import (
    Control,
    Event,
    EventKind,
    Observation,
    Step,
    StepRecord,
    VehicleState,
    WorldState,
)
from drive_il.viz import panels
from drive_il.viz.history import OverlayHistory
from drive_il.maps import TownMap
from drive_il.viz.lanes import LaneGeometry, lane_geometry_for_map

from ..maps.test_lane_chunks import check_lane_geometry


def test_demo_map_lanes(demo_world):
    geo = LaneGeometry.from_map(demo_world.map)
    check_lane_geometry(geo)
    kinds = {(c.left_marking, c.right_marking) for c in geo.chunks}
    assert ("Solid", "Broken") in kinds or ("Broken", "Solid") in kinds
    assert any(c.left_color == "Yellow" or c.right_color == "Yellow" for c in geo.chunks)
    # radius query agrees with brute force
    x, y = demo_world.route.xy[100]
    near = set(geo.near(x, y, 30.0).tolist())
    for i, ch in enumerate(geo.chunks):
        dmin = np.hypot(*(np.vstack((ch.left, ch.right)) - (x, y)).T).min()
        if dmin <= 30.0:
            assert i in near
    # a bare carla.Map is wrapped anew; its TownMap holds the geometry
    again = lane_geometry_for_map(demo_world.map)
    assert again is not geo and len(again) == len(geo)
    assert all(np.array_equal(a.left, b.left) for a, b in zip(again.chunks, geo.chunks))
    town = TownMap.from_carla_map(demo_world.map)
    assert lane_geometry_for_map(town) is town.lane_geometry is lane_geometry_for_map(town)


def test_lookup_finds_the_loaded_town_of_a_map():
    from drive_il.maps import load_town
    town = load_town("circuit")
    assert lane_geometry_for_map(town.map) is town.lane_geometry


def test_world_to_panel_heading_up():
    # ego at (10, 5) heading +y (yaw 90 deg): forward is +y, right is -x
    pts = np.array([[10.0, 15.0], [0.0, 5.0], [10.0, 5.0]])
    p = panels.world_to_panel(pts, 10.0, 5.0, math.pi / 2, 100.0, 200.0, 2.0)
    assert p[0] == pytest.approx([100.0, 180.0])   # 10 m ahead: up
    assert p[1] == pytest.approx([120.0, 200.0])   # 10 m to the right: right
    assert p[2] == pytest.approx([100.0, 200.0])


def test_birdseye_draws_the_target_point_where_the_ego_frame_puts_it():
    surf = pygame.Surface((200, 200))
    theme = panels.Theme()
    rect = pygame.Rect(0, 0, 200, 200)
    ego = VehicleState(x=50.0, y=-20.0, yaw=1.0)
    cx, cy = rect.centerx, rect.y + int(rect.height * 0.62)         # the ego's pixel in the panel
    panels.draw_birdseye(surf, rect, ego=ego, theme=theme, scale=4.0)
    before = pygame.surfarray.array3d(surf).copy()
    panels.draw_birdseye(surf, rect, ego=ego, theme=theme, scale=4.0, target_point=(10.0, 5.0))
    after = pygame.surfarray.array3d(surf)                           # (x, y, 3)
    changed = np.argwhere((after != before).any(axis=2))
    assert len(changed)
    # the ring is centred 10 m up and 5 m right of the ego (4 px/m): (cx + 20, cy - 40)
    ring = changed[np.hypot(changed[:, 0] - (cx + 20), changed[:, 1] - (cy - 40)) <= 7.5]
    colours = {tuple(after[x, y]) for x, y in ring}
    assert len(ring) > 30 and tuple(theme.route) in colours and tuple(theme.fg) in colours
    # a ring, not a disc: inside it, off the line from the ego, nothing is drawn
    assert (after[cx + 22, cy - 39] == before[cx + 22, cy - 39]).all()


def test_drift_colours():
    assert panels.deviation_colour(0.0)[1] > 200 and panels.deviation_colour(0.0)[0] < 100   # green
    assert panels.deviation_colour(1.0)[0] == 255 and panels.deviation_colour(1.0)[1] < 60   # red
    assert panels.deviation_colour(5.0) == panels.deviation_colour(1.0)


def test_drawing_stays_in_its_rectangle(demo_world):
    """The panel functions draw inside the rectangle they are given, nowhere else."""
    surf = pygame.Surface((400, 300))
    theme = panels.Theme()
    step = demo_world.reset(0)
    ego = step.world_state.ego
    rect = pygame.Rect(100, 60, 200, 150)
    trail = np.array([[ego.x - 5, ego.y], [ego.x, ego.y]])
    calls = [
        lambda: panels.draw_birdseye(surf, rect, ego=ego, theme=theme, lanes=LaneGeometry.from_map(demo_world.map),
                                     route=demo_world.route, expert_path=demo_world.route.xy[:30],
                                     trail_xy=trail, trail_deviation=np.array([0.2, 1.5]),
                                     actors=step.world_state.actors),
        lambda: panels.draw_strip_chart(surf, rect, t=np.linspace(0, 5, 50), lateral_deviation=np.sin(np.linspace(0, 5, 50)),
                                        intervention=np.arange(50) > 40, now=5.0, threshold=1.0, theme=theme),
        lambda: panels.draw_steering_gauges(surf, rect, [("a", 0.5, (255, 0, 0)), ("b", None, (0, 255, 0))],
                                            theme, throttle=0.3, brake=0.0),
        lambda: panels.draw_hud(surf, rect, [("speed", "10 km/h", None)] * 30, theme),
        lambda: panels.draw_camera(surf, rect, step.observation.frames["center"], theme),
    ]
    for draw in calls:
        surf.fill((1, 2, 3))
        draw()
        a = pygame.surfarray.array3d(surf).transpose(1, 0, 2)
        inside = np.zeros(a.shape[:2], bool)
        inside[rect.top:rect.bottom, rect.left:rect.right] = True
        assert (a[~inside] == (1, 2, 3)).all()
        assert (a[inside] != (1, 2, 3)).any()


def _rec(t: float, x: float, deviation: float, interv: bool = False, driver: str = "learner", events=()):
    ego = VehicleState(x=x, y=0.0, yaw=0.0, speed=5.0)
    step = Step(observation=Observation(frames={}, speed=5.0, sim_time=t),
                world_state=WorldState(ego=ego, sim_time=t, dt=0.1))
    return StepRecord(step=step, executed=Control(), expert=Control(0.1), learner=Control(0.2), driver=driver,
                      intervention=interv, lateral_deviation=deviation, events=tuple(events))


def test_history_counts_and_ring():
    h = OverlayHistory.for_seconds(1.0, 0.1)   # 11 steps kept
    assert h.capacity == 11
    flags = [False] * 5 + [True] * 3 + [False] * 4 + [True] * 2 + [False] * 16
    for i, f in enumerate(flags):
        ev = (Event(kind=EventKind.COLLISION, frame=i, sim_time=0.1 * i),) if i == 20 else ()
        h.append(_rec(0.1 * i, float(i), 0.01 * i, f, "expert" if f else "learner", ev))
    assert h.count == 30 and h.interventions == 2 and h.collisions == 1
    assert h.recent("x").tolist() == [float(i) for i in range(19, 30)]   # oldest first
    assert h.recent("x", 3).tolist() == [27.0, 28.0, 29.0]
    assert h.distance == pytest.approx(29.0)
    assert h.elapsed == pytest.approx(3.0)
    assert h.autonomy == pytest.approx(0.0)                      # 2 x 6 s > 3 s
    assert [m.kind for m in h.markers] == ["intervention", "intervention", "collision"]
    h2 = OverlayHistory.for_seconds(1.0, 0.1)
    for i in range(600):
        h2.append(_rec(0.1 * i, float(i), 0.0, i in (100, 101)))
    assert h2.interventions == 1
    assert h2.autonomy == pytest.approx((1 - 6.0 / 60.0) * 100)  # DAVE-2 definition
