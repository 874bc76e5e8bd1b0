"""NoCrash traffic densities: how many vehicles and pedestrians a town gets.

NoCrash (Codevilla, Santana, Lopez, Gaidon, "Exploring the Limitations of Behavior
Cloning for Autonomous Driving", ICCV 2019; the CARLA 0.8 benchmark's conditions) runs
every route under three traffic conditions with these counts (vehicles / pedestrians):

========  =========  =========
town      regular    dense
========  =========  =========
Town01    20 / 50    100 / 250
Town02    15 / 50    70 / 150
========  =========  =========

and "empty" = 0 / 0. Other towns get Town01's counts scaled by their total driving-lane
length relative to Town01's (:data:`TOWN01_LANE_LENGTH`), rounded to the nearest
integer. Backend-independent: the embedded world and the CARLA backend both call
:func:`traffic_counts` at reset.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..scenario import TrafficConfig

__all__ = ["NOCRASH_COUNTS", "TOWN01_LANE_LENGTH", "driving_lane_length", "traffic_counts"]

#: (town, condition) -> (vehicles, pedestrians) of NoCrash (Codevilla et al. 2019).
NOCRASH_COUNTS: dict[tuple[str, str], tuple[int, int]] = {
    ("Town01", "empty"): (0, 0), ("Town01", "regular"): (20, 50), ("Town01", "dense"): (100, 250),
    ("Town02", "empty"): (0, 0), ("Town02", "regular"): (15, 50), ("Town02", "dense"): (70, 150),
}

#: Town01's total driving-lane length [m]: :func:`driving_lane_length` of
#: ``/work/shared/maps/Town01.xodr`` (CARLA 0.9 Town01), i.e. the summed centre-line
#: length of every driving lane outside junctions, sampled every 2 m
#: (``LaneSampler.lane_runs(2.0)``, each lane completed to its end). Measured once:
#: 4936.4 m (Town02: 2168.1 m, Town04: 26973.6 m). A test on the shared maps checks it.
TOWN01_LANE_LENGTH = 4936.4

_CONDITIONS = ("custom", "empty", "regular", "dense")


def driving_lane_length(town: Any) -> float:
    """Total centre-line length [m] of the driving lanes of ``town`` outside junctions
    (a :class:`~drive_il.maps.towns.TownMap`; memoised on it)."""
    def build() -> float:
        total = 0.0
        for r in town.lane_samples.lane_runs(2.0):
            if not r.is_junction:
                total += float(np.hypot(np.diff(r.x), np.diff(r.y)).sum())
        return total
    return town.memo(("driving_lane_length", 2.0), build)


def traffic_counts(traffic: TrafficConfig, town_name: str, lane_length_m: float) -> tuple[int, int]:
    """(vehicles, walkers) for a scenario's traffic on a town.

    Args:
        traffic: the scenario's ``[traffic]``; ``density`` "custom" keeps its
            ``vehicles`` / ``walkers``, "empty" gives 0 / 0, "regular" / "dense" NoCrash's
            counts (module docstring).
        town_name: the town ("Town01", "Town02" exactly -- or a path whose stem is one
            of them -- get NoCrash's counts; others are scaled).
        lane_length_m: the town's total driving-lane length [m]
            (:func:`driving_lane_length`; read only for scaled towns).

    Returns:
        (vehicles, walkers), integers >= 0.

    Raises:
        ValueError: an unknown density, or a scaled town with a lane length that is not
            a positive finite number.
    """
    density = traffic.density
    if density not in _CONDITIONS:
        raise ValueError(f"traffic.density must be one of {', '.join(_CONDITIONS)}, got {density!r}")
    if density == "custom":
        return int(traffic.vehicles), int(traffic.walkers)
    if density == "empty":
        return 0, 0
    name = str(town_name).replace("\\", "/").rsplit("/", 1)[-1]
    if name.lower().endswith(".xodr"):
        name = name[:-5]
    for town in ("Town01", "Town02"):
        if name.lower() == town.lower():
            return NOCRASH_COUNTS[(town, density)]
    L = float(lane_length_m)
    if not (math.isfinite(L) and L > 0.0):
        raise ValueError(f"lane_length_m must be a positive number of metres for town "
                         f"{town_name!r}, got {lane_length_m!r}")
    v, w = NOCRASH_COUNTS[("Town01", density)]
    k = L / TOWN01_LANE_LENGTH
    return round(v * k), round(w * k)
