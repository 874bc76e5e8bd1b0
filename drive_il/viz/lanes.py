"""Lane geometry for the bird's-eye panel, looked up from the town that owns it.

The geometry itself (:class:`~drive_il.maps.lane_chunks.LaneGeometry`, chunks of lane
boundaries and markings) belongs to the map model and is built once per town
(:attr:`drive_il.maps.towns.TownMap.lane_geometry`); this module finds it for what the
overlay and the viewer hold: a :class:`~drive_il.maps.towns.TownMap`, or a bare
``carla.Map``. ``LaneChunk`` and ``LaneGeometry`` are imported here for the panels.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..maps.lane_chunks import LaneChunk, LaneGeometry
from ..maps.towns import town_for_map

if TYPE_CHECKING:  # pragma: no cover
    import carla

    from ..maps.towns import TownMap

__all__ = ["LaneChunk", "LaneGeometry", "lane_geometry_for_map"]


def lane_geometry_for_map(town: "TownMap | carla.Map | Any") -> LaneGeometry:
    """The lane geometry of a town.

    Args:
        town: a TownMap (its :attr:`~drive_il.maps.towns.TownMap.lane_geometry`, built
            once), or a ``carla.Map``: the town loaded with
            :func:`~drive_il.maps.towns.load_town` that holds this very map, else a new
            :meth:`~drive_il.maps.towns.TownMap.from_carla_map` (built anew each call:
            pass the TownMap to share it).

    Returns:
        The lane geometry.
    """
    lanes = getattr(town, "lane_geometry", None)
    if isinstance(lanes, LaneGeometry):
        return lanes
    return town_for_map(town).lane_geometry
