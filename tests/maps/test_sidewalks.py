"""The pedestrian network of drive_il.maps.sidewalks: sidewalks off the driving lanes,
corners, crossings joining both sides, mid-block crossings, memoisation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from drive_il.maps import load_town
from drive_il.maps.sidewalks import CORNER, SIDEWALK, build_network, sidewalk_network


def _on_driving(carla_map, x: float, y: float) -> bool:
    import carla
    return carla_map.get_waypoint(carla.Location(float(x), float(y), 0.0), False,
                                  carla.LaneType.Driving) is not None


def _components(net) -> int:
    """Connected components of nodes joined by edges and crossings."""
    parent = list(range(len(net.node_xy)))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    pairs = [tuple(e) for e in net.edge_nodes.tolist()] + [(c.node_a, c.node_b) for c in net.crossings]
    for a, b in pairs:
        parent[find(a)] = find(b)
    return len({find(i) for i in range(len(parent))})


def _check_network(town, *, connected: bool = True) -> None:
    net = sidewalk_network(town)
    assert sidewalk_network(town) is net  # memoised on the town
    assert net.num_edges > 0 and (net.edge_kind == SIDEWALK).any()
    # every node continues somewhere: no walker is stuck at a node
    assert all(len(e) >= 1 for e in net.node_edges)
    # sidewalk and corner paths never run on a driving lane
    m = town.map
    for e in range(net.num_edges):
        P = net.polyline(e)
        for p in list(P[:: max(1, len(P) // 8)]) + [P[-1]]:
            assert not _on_driving(m, *p), (e, int(net.edge_kind[e]), p)
    # crossings join the two sides of one road, across its driving lanes
    for c in net.crossings:
        sides = set()
        for node in (c.node_a, c.node_b):
            es = [e for e, _ in net.node_edges[node] if net.edge_kind[e] == SIDEWALK]
            assert es and all(int(net.edge_road[e]) == c.road_id for e in es)
            sides |= {int(net.edge_side[e]) for e in es}
        assert sides == {1, -1}
        mid = (0.6 * c.a[0] + 0.4 * c.b[0], 0.6 * c.a[1] + 0.4 * c.b[1])  # in a lane
        assert _on_driving(m, *mid)
        assert 0.0 < c.curb_a < c.length and 0.0 < c.curb_b < c.length
    if connected:
        assert _components(net) == 1


def test_grid_network():
    town = load_town("grid")
    _check_network(town)
    net = sidewalk_network(town)
    # 16 junctions of the 4 x 4 grid: every road end at a junction has a crossing
    assert len(net.crossings) == 48 and (net.edge_kind == CORNER).sum() == 48
    assert all(len(e) == 2 for e in net.node_edges)  # closed loops round the blocks


def test_procedural_network():
    _check_network(load_town("procedural:3"), connected=False)


def test_circuit_has_sidewalk_loops_and_no_crossings():
    net = sidewalk_network(load_town("circuit"))
    assert len(net.crossings) == 0 and net.sidewalk_length > 1000.0
    assert all(len(e) == 2 for e in net.node_edges)  # roads joined end to start


def test_town01_network(maps_dir):
    town = load_town(maps_dir / "Town01.xodr")
    _check_network(town)
    net = sidewalk_network(town)
    # Town01: every road end at its 12 junctions has a corner and a crossing
    assert len(net.crossings) == 36 and (net.edge_kind == CORNER).sum() == 36
    assert all(len(e) == 2 for e in net.node_edges)


def test_town04_network_builds_with_fallback_paths(maps_dir):
    net = build_network(load_town(maps_dir / "Town04.xodr"))
    assert net.sidewalk_length > 5000.0 and len(net.crossings) > 0


def test_midblock_crossing_is_perpendicular_and_ends_on_the_other_side():
    net = sidewalk_network(load_town("grid"))
    e = int(np.flatnonzero((net.edge_kind == SIDEWALK) & (net.edge_opposite >= 0)
                           & (net.edge_length > 40.0))[0])
    s = 0.5 * float(net.edge_length[e])
    c = net.midblock_crossing(e, s)
    assert c is not None and c.to_edge == net.edge_opposite[e]
    x, y, heading = net.point_at(e, s)
    assert c.a == pytest.approx((x, y))
    bx, by, _ = net.point_at(c.to_edge, c.to_s)
    assert c.b == pytest.approx((bx, by))
    ux, uy = (c.b[0] - c.a[0]) / c.length, (c.b[1] - c.a[1]) / c.length
    assert abs(ux * math.cos(heading) + uy * math.sin(heading)) < 0.05  # perpendicular
    # the road between: lanes + shoulders, narrower than 20 m, its middle driving lane
    assert 5.0 < c.length < 20.0
    assert _on_driving(load_town("grid").map, 0.6 * c.a[0] + 0.4 * c.b[0], 0.6 * c.a[1] + 0.4 * c.b[1])
    # reversed junction crossings swap the ends
    j = net.crossings[0]
    r = j.reversed()
    assert (r.a, r.b, r.node_a, r.node_b) == (j.b, j.a, j.node_b, j.node_a)
    assert net.crossings_at(j.node_b)[0].a == j.b
