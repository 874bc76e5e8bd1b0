"""Map geometry: lane quads, junction hulls and marking strips from a town's sampler."""

from __future__ import annotations

import numpy as np
import pytest

from drive_il.maps import TownMap, load_town
from drive_il.maps.geometry import LaneClass, MapGeometry, extract_geometry

carla = pytest.importorskip("carla")


def test_geometry_of_town01_has_sidewalks_and_markings(town01_map):
    g = TownMap.from_carla_map(town01_map).map_geometry
    classes = set(np.unique(g.quad_class).tolist())
    assert {LaneClass.DRIVING, LaneClass.SIDEWALK, LaneClass.SHOULDER} <= classes
    kinds = {m.kind for m in g.markings}
    assert "Broken" in kinds and "Curb" in kinds
    assert len(g.junction_hulls) > 5


def test_grid_geometry():
    town = load_town("grid")
    g = town.map_geometry
    assert isinstance(g, MapGeometry)
    assert g.quads.shape[1:] == (4, 2) and len(g.quad_class) == len(g.quads)
    xmin, ymin, xmax, ymax = g.bounds
    assert xmin <= g.quads[..., 0].min() and g.quads[..., 1].max() <= ymax
    assert len(g.junction_hulls) == 16 and len(g.junction_aprons) == 16  # 4 x 4 nodes
    # no paint inside junctions, only curbs
    for m in g.markings:
        assert m.xy.shape == m.right.shape and len(m.s) == len(m.xy) >= 2
        assert np.allclose(np.hypot(*m.right.T), 1.0)
    # the same samples give the same polygons
    again = extract_geometry(town.lane_samples)
    assert np.array_equal(again.quads, g.quads) and len(again.markings) == len(g.markings)
