"""TownMap is the map model: each derived object is built once, from one lane sampler,
and reached through the town (no module-level caches keyed by map identity)."""

from __future__ import annotations

import collections

import numpy as np
import pytest

from drive_il.maps import TownMap, load_town, opendrive_gen
from drive_il.maps import towns as towns_mod
from drive_il.maps.geometry import MapGeometry, extract_geometry
from drive_il.maps.lane_chunks import LaneGeometry
from drive_il.maps.lane_graph import LaneGraph
from drive_il.maps.sampling import LaneSampler
from drive_il.routing import random_route

carla = pytest.importorskip("carla")


class CountingMap:
    """A carla.Map that counts the calls that walk its waypoints."""

    def __init__(self, m):
        self._m = m
        self.calls = collections.Counter()

    def __getattr__(self, name):
        attr = getattr(self._m, name)
        if name in ("generate_waypoints", "get_topology", "get_waypoint_xodr", "to_opendrive"):
            def counted(*args, **kwargs):
                self.calls[(name, *args) if name == "generate_waypoints" else name] += 1
                return attr(*args, **kwargs)
            return counted
        return attr


@pytest.fixture
def counted_grid():
    text = opendrive_gen.generate("grid")
    m = CountingMap(carla.Map("grid", text))
    return TownMap(name="grid", map=m, xodr=text, digest=towns_mod._sha1(text)), m


def test_each_derived_object_is_built_once(counted_grid):
    town, _ = counted_grid
    for name, kind in (("lane_samples", LaneSampler), ("lane_graph", LaneGraph),
                       ("map_geometry", MapGeometry), ("lane_geometry", LaneGeometry),
                       ("spawn_points", tuple)):
        first = getattr(town, name)
        assert isinstance(first, kind)
        assert getattr(town, name) is first, name
    built = []
    assert town.memo("k", lambda: built.append(1) or object()) is town.memo("k", lambda: built.append(2))
    assert built == [1] and town.has_memo("k") and not town.has_memo("other")


def test_one_sampler_feeds_the_three_consumers(counted_grid):
    town, m = counted_grid
    graph, geometry, lanes = town.lane_graph, town.map_geometry, town.lane_geometry
    # one walk each: the road grid (shared by the raster's geometry and the overlay's
    # chunks), the topology (the lane graph), the cross-sections (the raster)
    assert m.calls[("generate_waypoints", 2.0)] == 1
    assert m.calls["get_topology"] == 1
    assert m.calls["to_opendrive"] == 0  # the town's own text is used
    n_xodr = m.calls["get_waypoint_xodr"]
    assert n_xodr > 0
    sampler = town.lane_samples
    assert sampler.waypoints(2.0) is sampler.waypoints(2.0)
    assert sampler.lane_runs(2.0) is sampler.lane_runs(2.0)
    assert sampler.topology_segments(1.0) is sampler.topology_segments(1.0)
    assert sampler.cross_sections(1.0) is sampler.cross_sections(1.0)
    # rebuilding each consumer from the town's sampler walks nothing again
    again = LaneGraph.from_samples(sampler)
    assert [s.xy.tolist() for s in again.segments] == [s.xy.tolist() for s in graph.segments]
    assert np.array_equal(extract_geometry(sampler).quads, geometry.quads)
    assert len(LaneGeometry.from_samples(sampler)) == len(lanes)
    assert m.calls[("generate_waypoints", 2.0)] == 1 and m.calls["get_topology"] == 1
    assert m.calls["get_waypoint_xodr"] == n_xodr
    # the overlay's lanes and the raster's section index come from the same grid walk
    keys = {(r.road_id, r.section_id) for r in sampler.lane_runs(2.0)}
    assert keys <= set(sampler.section_lanes(2.0))


def test_the_lane_graph_is_reached_through_the_town():
    town = load_town("circuit")
    assert town.lane_graph is load_town("CIRCUIT").lane_graph  # same cached town
    fresh = load_town("circuit", cache=None)  # another parse: its own graph
    assert fresh.lane_graph is not town.lane_graph
    a = random_route(town, np.random.default_rng(5), 200.0)
    b = random_route(fresh, np.random.default_rng(5), 200.0)
    assert a.waypoints == b.waypoints
    # no id()-keyed or module-level caches of derived data are left in the map layer
    import drive_il.maps.lane_chunks as chunks_mod
    import drive_il.maps.lane_graph as graph_mod
    for mod in (graph_mod, chunks_mod, towns_mod):
        names = [k for k in vars(mod) if "CACHE" in k.upper() and not k.startswith("__")]
        assert set(names) <= {"TownCache", "TOWN_CACHE_SIZE"}, (mod, names)


def test_a_server_map_becomes_a_town():
    text = opendrive_gen.generate("circuit")
    m = carla.Map("/Game/Carla/Maps/circuit", text)
    town = TownMap.from_carla_map(m)
    assert town.name == "circuit" and town.xodr == m.to_opendrive()
    ref = load_town("circuit")
    assert [s.length for s in town.lane_graph.segments] == [s.length for s in ref.lane_graph.segments]
    assert town.spawn_points == ref.spawn_points
