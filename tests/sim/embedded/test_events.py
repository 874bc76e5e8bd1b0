"""Events: SAT collisions, off-road onset, lane invasions with marking types."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

from drive_il.sim.embedded.events import (CollisionDetector, EventDetector, LaneInvasionDetector,
                                          obb_overlap)
from drive_il.types import EventKind

L, W = 4.8, 1.9


@pytest.fixture(scope="module")
def circuit():
    from drive_il.maps import load_town
    return load_town("circuit").map


@pytest.fixture(scope="module")
def grid():
    from drive_il.maps import load_town
    return load_town("grid").map


def _pose(wp):
    t = wp.transform
    return t.location.x, t.location.y, math.radians(t.rotation.yaw)


def _straight_wp(carla_map, marking: str):
    """A lane-centre waypoint of lane -1 outside junctions whose lane keeps ``marking``
    on its left for 20 m both ways (a straight-ish stretch)."""
    for wp in carla_map.generate_waypoints(5.0):
        if wp.lane_id != -1 or wp.is_junction or wp.left_lane_marking.type.name != marking:
            continue
        around = wp.next(20.0) + wp.previous(20.0)
        if around and all(w.left_lane_marking.type.name == marking and w.road_id == wp.road_id
                          for w in around):
            return wp
    pytest.skip(f"no lane with {marking} marking")


# ----------------------------------------------------------------------------- SAT
def test_obb_overlap_axis_aligned_and_rotated():
    assert obb_overlap(0, 0, 0, L, W, 4.0, 0, 0, L, W)
    assert not obb_overlap(0, 0, 0, L, W, 4.9, 0, 0, L, W)
    assert not obb_overlap(0, 0, 0, L, W, 0, 2.0, 0, L, W)
    assert obb_overlap(0, 0, 0, L, W, 0, 1.8, 0, L, W)
    # T-bone: B across A's nose
    assert obb_overlap(0, 0, 0, L, W, 3.0, 0, math.pi / 2, L, W)
    assert not obb_overlap(0, 0, 0, L, W, 3.5, 0, math.pi / 2, L, W)


def test_obb_diagonal_near_miss_where_bounding_circles_overlap():
    # a 2x2 box and a 2x2 box turned 45 deg whose corner points at it: the bounding
    # circles (radius sqrt 2) overlap at 2.5 m, the boxes only below 1 + sqrt 2 m
    a = (0.0, 0.0, 0.0, 2.0, 2.0)
    assert 2.5 < 2 * math.sqrt(2)
    assert not obb_overlap(*a, 2.5, 0.0, math.pi / 4, 2.0, 2.0)
    assert not obb_overlap(2.5, 0.0, math.pi / 4, 2.0, 2.0, *a)
    assert obb_overlap(*a, 2.3, 0.0, math.pi / 4, 2.0, 2.0)
    assert obb_overlap(2.3, 0.0, math.pi / 4, 2.0, 2.0, *a)


def test_obb_overlap_is_symmetric():
    import numpy as np
    rng = np.random.default_rng(1)
    for _ in range(300):
        a = (*rng.uniform(-3, 3, 2), rng.uniform(-4, 4), *rng.uniform(1, 5, 2))
        b = (*rng.uniform(-3, 3, 2), rng.uniform(-4, 4), *rng.uniform(1, 5, 2))
        assert obb_overlap(*a, *b) == obb_overlap(*b, *a)


def test_collision_reported_once_per_contact_onset():
    det = CollisionDetector(length=L, width=W)
    other = SimpleNamespace(actor_id=7, x=10.0, y=0.0, yaw=0.0, length=L, width=W)
    far = SimpleNamespace(actor_id=8, x=100.0, y=0.0, yaw=0.0, length=L, width=W)
    kinds = []
    for x in [0, 2, 4, 5.5, 6, 7, 6, 0, 0, 6]:
        ev = det.detect(float(x), 0.0, 0.0, [other, far], frame=x, sim_time=0.0)
        kinds.append([e.other_actor for e in ev])
    assert kinds == [[], [], [], [7], [], [], [], [], [], [7]]


# ----------------------------------------------------------------------------- lane invasion
def _sweep(det, wp, offsets, yaw_offset=0.0):
    """Move the ego sideways across the lane at ``wp`` (offset + = right); returns the
    marking tuples reported per position."""
    x0, y0, yaw = _pose(wp)
    rx, ry = -math.sin(yaw), math.cos(yaw)
    out = []
    for i, o in enumerate(offsets):
        ev = det.detect(x0 + o * rx, y0 + o * ry, yaw + yaw_offset, frame=i, sim_time=0.05 * i)
        out.append([e.marking for e in ev if e.kind is EventKind.LANE_INVASION])
    return out


@pytest.mark.parametrize("marking", ["Broken", "SolidSolid"])
def test_lane_change_across_centre_line_reports_its_type_once(circuit, marking):
    wp = _straight_wp(circuit, marking)
    det = LaneInvasionDetector(circuit, length=L, width=W)
    x, y, yaw = _pose(wp)
    det.reset(x, y, yaw)
    # 0 -> -3.5 m: across the centre line to the opposite lane's centre, and back
    offs = [-0.25 * i for i in range(15)]
    got = _sweep(det, wp, offs)
    flat = [m for ms in got for m in ms]
    assert flat == [(marking,)]
    # the footprint (half width 0.95 m) reaches the line (1.75 m left) at 0.8 m
    first = next(i for i, ms in enumerate(got) if ms)
    assert offs[first] == pytest.approx(-0.8, abs=0.25)
    back = _sweep(det, wp, list(reversed(offs)))
    assert [m for ms in back for m in ms] == [(marking,)]


def test_edge_line_and_no_event_while_staying_in_lane(circuit):
    wp = _straight_wp(circuit, "Broken")
    det = LaneInvasionDetector(circuit, length=L, width=W)
    det.reset(*_pose(wp))
    inside = _sweep(det, wp, [0.0, 0.3, 0.6, 0.7, 0.5, 0.0, -0.5, -0.7, 0.0])
    assert all(not m for m in inside)
    edge = _sweep(det, wp, [0.0, 0.5, 0.9, 1.2, 2.0, 2.5, 1.0, 0.0])
    assert [m for ms in edge for m in ms] == [(wp.right_lane_marking.type.name,)] == [("Solid",)]


def test_driving_along_lane_centre_reports_nothing(circuit):
    det = EventDetector(circuit, length=L, width=W)
    wp = circuit.generate_waypoints(10.0)[0]
    det.reset(*_pose(wp))
    events = []
    for i in range(800):  # 800 m: through every road and section of the loop
        nxt = wp.next(1.0)
        assert nxt
        wp = nxt[0]
        events += det.detect(*_pose(wp), [], frame=i, sim_time=0.0)
    assert events == []


def test_turning_through_junctions_reports_no_lane_invasion(grid):
    det = EventDetector(grid, length=L, width=W)
    start = next(w for w in grid.generate_waypoints(5.0) if not w.is_junction and w.lane_id == -1)
    det.reset(*_pose(start))
    wp = start
    events, junction_steps, k = [], 0, 0
    for i in range(1500):
        nxt = wp.next(0.5)
        assert nxt
        # take the last branch (a turn where there is one): exercise junction lanes
        wp = nxt[k % len(nxt)] if len(nxt) > 1 else nxt[0]
        if len(nxt) > 1:
            k += 1
        junction_steps += wp.is_junction
        events += det.detect(*_pose(wp), [], frame=i, sim_time=0.0)
    assert junction_steps > 50
    assert [e for e in events if e.kind is EventKind.LANE_INVASION] == []


def test_off_road_needs_lane_test_and_drivable_layer_to_agree(circuit):
    road = {"on": True}
    wp = _straight_wp(circuit, "Broken")
    det = EventDetector(circuit, length=L, width=W, is_drivable=lambda x, y: road["on"])
    x0, y0, yaw = _pose(wp)
    rx, ry = -math.sin(yaw), math.cos(yaw)
    det.reset(x0, y0, yaw)
    seq = []
    # (offset right of the lane centre [m], raster says drivable)
    for off, on in [(0.0, False),   # a raster seam on the lane: on the road
                    (3.0, True),    # beside the lane but on drivable asphalt: on the road
                    (3.0, False),   # off both: off road (onset)
                    (3.5, False),   # still off: no new event
                    (0.0, True),    # back
                    (3.0, False)]:  # off again: a new onset
        road["on"] = on
        seq.append([e.kind for e in det.detect(x0 + off * rx, y0 + off * ry, yaw, [], 0, 0.0)
                    if e.kind is EventKind.OFF_ROAD])
    assert seq == [[], [], [EventKind.OFF_ROAD], [], [], [EventKind.OFF_ROAD]]


def test_off_road_lane_test_without_raster(circuit):
    wp = _straight_wp(circuit, "Broken")
    det = EventDetector(circuit, length=L, width=W)
    det.reset(*_pose(wp))
    x0, y0, yaw = _pose(wp)
    rx, ry = -math.sin(yaw), math.cos(yaw)
    kinds = []
    # the lane's right edge is 1.75 m right of its centre; back on the road 0.2 m inside
    offsets = [0.0, 1.0, 1.6, 2.2, 3.0, 6.0, 1.7, 1.9, 1.4, 1.9, 0.0]
    for o in offsets:
        ev = det.detect(x0 + o * rx, y0 + o * ry, yaw, [], 0, 0.0)
        kinds.append([e.kind for e in ev if e.kind is EventKind.OFF_ROAD])
    off = [EventKind.OFF_ROAD]
    assert kinds == [[], [], [], off, [], [], [], [], [], off, []]


def test_town01_lane_change(town01_map):
    wp = _straight_wp(town01_map, "Broken")
    det = LaneInvasionDetector(town01_map, length=L, width=W)
    det.reset(*_pose(wp))
    got = _sweep(det, wp, [-0.25 * i for i in range(17)])
    assert [m for ms in got for m in ms] == [("Broken",)]
