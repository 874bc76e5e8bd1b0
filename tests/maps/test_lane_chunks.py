"""Lane chunks for the bird's-eye panel, from a town's lane sampler."""

from __future__ import annotations

import math

import numpy as np
import pytest

from drive_il.geometry import to_local
from drive_il.maps import TownMap, load_town
from drive_il.maps.lane_chunks import LaneGeometry
from drive_il.types import Route, RouteWaypoint

carla = pytest.importorskip("carla")


def check_lane_geometry(geo: LaneGeometry) -> None:
    """Chunks with boundaries half a lane width either side, and a consistent point index."""
    assert len(geo) > 0
    for ch in geo.chunks[:: max(1, len(geo) // 50)]:
        assert ch.left.shape == ch.right.shape == ch.centre.shape
        # boundaries lie half a lane width left and right of the centre line
        d = ch.centre[1] - ch.centre[0]
        yaw = math.atan2(d[1], d[0])
        _, rl = to_local(*ch.left[0], *ch.centre[0], yaw)
        _, rr = to_local(*ch.right[0], *ch.centre[0], yaw)
        assert rl < 0 < rr
        assert rr - rl == pytest.approx(np.hypot(*(ch.right[0] - ch.left[0])), rel=0.02)
        assert 1.5 < rr - rl < 6.0
    # point_index gathers each chunk's left then right boundary
    idx = np.arange(0, len(geo), 3)
    pts = geo.points[geo.point_index(idx)]
    expect = np.vstack([np.vstack((geo.chunks[i].left, geo.chunks[i].right)) for i in idx])
    assert np.array_equal(pts, expect)


def test_circuit_lanes_and_markings():
    town = load_town("circuit")
    geo = town.lane_geometry
    check_lane_geometry(geo)
    assert geo.name == "circuit"
    kinds = {(c.left_marking, c.right_marking) for c in geo.chunks}
    assert ("Broken", "Solid") in kinds and ("SolidSolid", "Solid") in kinds
    assert any(c.left_color == "Yellow" for c in geo.chunks)
    # the centre line is drawn once: by the lanes of negative id only
    assert {c.draw_left for c in geo.chunks} == {True, False}
    # at most 12 points a chunk, consecutive chunks of a lane share an end point
    assert max(len(c.centre) for c in geo.chunks) <= 12
    same_lane = np.nonzero(np.diff(geo.lane) == 0)[0]
    assert len(same_lane) and all((geo.chunks[i].centre[-1] == geo.chunks[i + 1].centre[0]).all()
                                  for i in same_lane)


def test_from_map_equals_the_towns_geometry():
    town = load_town("grid")
    bare = LaneGeometry.from_map(town.map)
    assert bare is not town.lane_geometry and len(bare) == len(town.lane_geometry)
    for a, b in zip(bare.chunks, town.lane_geometry.chunks):
        assert np.array_equal(a.left, b.left) and a.right_marking == b.right_marking
    longer = LaneGeometry.from_map(town.map, chunk_points=400)
    assert len(longer) < len(bare)


def test_from_route_without_a_map():
    wps = tuple(RouteWaypoint(x=float(x), y=0.0, yaw=0.0, lane_width=3.0) for x in range(30))
    geo = LaneGeometry.from_route(Route(wps, spacing=1.0))
    assert geo.name == "route" and len(geo) == 3
    assert np.allclose(geo.chunks[0].left[:, 1], -1.5) and np.allclose(geo.chunks[0].right[:, 1], 1.5)


def test_town01_lanes(town01_map):
    geo = TownMap.from_carla_map(town01_map).lane_geometry
    check_lane_geometry(geo)
    assert len(geo) > 200
