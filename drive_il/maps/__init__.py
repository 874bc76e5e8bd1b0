"""The map model: towns resolved by name and parsed with ``carla.Map``, and everything
derived from their road networks.

* :mod:`.towns`: name resolution, parsing, :class:`TownMap` (the map model: it owns the
  derived data below, built lazily and once), the :class:`TownCache`;
* :mod:`.spawns`: spawn points, the driving lane nearest to a point;
* :mod:`.opendrive_gen`: the generated towns (``circuit``, ``grid``);
* :mod:`.procedural`: procedural towns ``procedural:<seed>`` and :func:`expand_towns`;
* :mod:`.sampling`: the lane sampler, the one walk over a town's waypoints;
* :mod:`.geometry`: lane surfaces and markings as polygons (what the raster paints);
* :mod:`.lane_graph`: the lane graph that :mod:`drive_il.routing` searches;
* :mod:`.lane_chunks`: lane chunks for the overlay's bird's-eye panel;
* :mod:`.signals`: traffic-light heads, stop lines and groups (:func:`signal_layout`);
* :mod:`.sidewalks`: the pedestrian network: sidewalks, corners, crossings
  (:func:`sidewalk_network`).

Layer: imports only the core modules (types, geometry, errors, ...), numpy, cv2 and carla.
"""

from __future__ import annotations

from .sidewalks import Crossing, SidewalkNetwork, sidewalk_network
from .signals import SignalHead, SignalLayout, signal_layout
from .spawns import SpawnPoint, nearest_driving_waypoint, spawn_points
from .towns import (
    MAPS_DIR_ENV,
    TOWNS,
    TownCache,
    TownMap,
    available_towns,
    expand_towns,
    find_town_file,
    load_town,
    load_xodr,
    parse_xodr,
    resolve_maps_dir,
    town_for_map,
    town_text,
)

__all__ = [
    "MAPS_DIR_ENV",
    "TOWNS",
    "Crossing",
    "SidewalkNetwork",
    "SignalHead",
    "SignalLayout",
    "SpawnPoint",
    "TownCache",
    "TownMap",
    "available_towns",
    "expand_towns",
    "find_town_file",
    "load_town",
    "load_xodr",
    "nearest_driving_waypoint",
    "parse_xodr",
    "resolve_maps_dir",
    "sidewalk_network",
    "signal_layout",
    "spawn_points",
    "town_for_map",
    "town_text",
]
