"""NoCrash traffic densities (drive_il.sim.density) and their use at the world's reset."""

from __future__ import annotations

import math

import pytest

from drive_il.maps import load_town
from drive_il.scenario import CameraConfig, Scenario, TrafficConfig
from drive_il.sim.density import (
    NOCRASH_COUNTS,
    TOWN01_LANE_LENGTH,
    driving_lane_length,
    traffic_counts,
)


def test_custom_and_empty():
    tc = TrafficConfig(vehicles=7, walkers=11)
    assert traffic_counts(tc, "Town01", math.nan) == (7, 11)
    assert traffic_counts(TrafficConfig(density="empty", vehicles=7, walkers=11), "grid", 1.0) == (0, 0)


@pytest.mark.parametrize("town,density,expected", [
    ("Town01", "regular", (20, 50)), ("Town01", "dense", (100, 250)),
    ("Town02", "regular", (15, 50)), ("Town02", "dense", (70, 150)),
    ("/some/maps/Town02.xodr", "dense", (70, 150)), ("town01", "regular", (20, 50)),
])
def test_nocrash_counts_exact_for_town01_and_town02(town, density, expected):
    # the lane length is not read for the NoCrash towns
    assert traffic_counts(TrafficConfig(density=density), town, math.nan) == expected


def test_other_towns_scaled_by_driving_lane_length():
    dense = TrafficConfig(density="dense")
    assert traffic_counts(dense, "grid", TOWN01_LANE_LENGTH) == (100, 250)
    assert traffic_counts(dense, "grid", 2.0 * TOWN01_LANE_LENGTH) == (200, 500)
    assert traffic_counts(TrafficConfig(density="regular"), "x", 0.5 * TOWN01_LANE_LENGTH) == (10, 25)
    assert traffic_counts(dense, "x", 0.1) == (0, 0)
    for bad in (0.0, -5.0, math.nan, math.inf):
        with pytest.raises(ValueError, match="lane_length_m"):
            traffic_counts(dense, "procedural:3", bad)


def test_table_is_nocrash():
    assert NOCRASH_COUNTS[("Town01", "dense")] == (100, 250)
    assert NOCRASH_COUNTS[("Town02", "regular")] == (15, 50)


def test_town01_constant_is_measured_from_the_shared_map(maps_dir):
    town = load_town(maps_dir / "Town01.xodr")
    assert driving_lane_length(town) == pytest.approx(TOWN01_LANE_LENGTH, abs=0.5)
    assert driving_lane_length(town) is driving_lane_length(town)  # memoised
    t04 = load_town(maps_dir / "Town04.xodr")
    v, w = traffic_counts(TrafficConfig(density="dense"), "Town04", driving_lane_length(t04))
    assert v > 100 and w > 250  # Town04 has ~5.5 x Town01's lanes


def test_world_uses_the_density_at_reset():
    from drive_il.sim.embedded.world import EmbeddedSimulator
    grid = load_town("grid")
    want_v, want_w = traffic_counts(TrafficConfig(density="regular"), "grid", driving_lane_length(grid))
    assert (want_v, want_w) == (12, 31)
    sim = EmbeddedSimulator(render=False)
    sc = Scenario(town="grid", cameras=(CameraConfig(name="c", width=32, height=16),),
                  route_length=100.0, traffic=TrafficConfig(density="regular"))
    sim.reset(sc, seed=0)
    assert sim.walkers.count == want_w and len(sim.traffic.vehicles) == want_v
    sim.reset(Scenario(town="grid", cameras=sc.cameras, route_length=100.0,
                       traffic=TrafficConfig(density="empty", vehicles=5, walkers=5)), seed=0)
    assert sim.walkers is None and sim.traffic.vehicles == []
