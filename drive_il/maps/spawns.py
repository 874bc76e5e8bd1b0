"""Spawn points of a town, and the driving lane nearest to a point.

OpenDRIVE towns carry no spawn points (a CARLA server adds them from the Unreal level),
so :func:`spawn_points` generates them from driving-lane waypoints away from junctions
(a town's default set is :attr:`drive_il.maps.towns.TownMap.spawn_points`).

All poses are in CARLA's world frame (x forward, y right, z up), metres, yaw in radians.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import ScenarioError

if TYPE_CHECKING:  # pragma: no cover
    import carla

__all__ = ["SpawnPoint", "nearest_driving_waypoint", "spawn_points"]


@dataclass(frozen=True, slots=True)
class SpawnPoint:
    """A start pose on a driving lane, outside junctions.

    Attributes:
        x, y, z: [m], CARLA world frame (lane centre, road surface).
        yaw: [rad], CARLA world frame, direction of travel of the lane, in (-pi, pi].
        road_id, lane_id: the OpenDRIVE road and lane it lies on.
        s: [m] distance along the road's reference line.
    """

    x: float
    y: float
    z: float
    yaw: float
    road_id: int
    lane_id: int
    s: float = 0.0


def _is_driving(wp: "carla.Waypoint") -> bool:
    return str(wp.lane_type) == "Driving"


def _clear_of_junctions(wp: "carla.Waypoint", margin: float) -> bool:
    """True if every lane continuation within ``margin`` [m] both ways stays out of
    junctions and the lane does not end within it."""
    if margin <= 0:
        return True
    ahead, behind = wp.next(margin), wp.previous(margin)
    if not ahead or not behind:
        return False
    return not any(w.is_junction for w in ahead) and not any(w.is_junction for w in behind)


def spawn_points(carla_map: "carla.Map", *, spacing: float = 10.0, min_separation: float = 3.0,
                 junction_margin: float = 8.0) -> list[SpawnPoint]:
    """Spawn points generated from driving-lane waypoints.

    OpenDRIVE towns carry no spawn points (CARLA's server adds them from the level), so
    they are sampled every ``spacing`` metres along each driving lane
    (``carla.Map.generate_waypoints``), outside junctions and at least
    ``junction_margin`` from a junction or a lane end, and thinned so that no two are
    closer than ``min_separation``. The order is deterministic (road, lane, s).

    Args:
        carla_map: the town.
        spacing: [m] distance between samples along a lane (> 0).
        min_separation: [m] minimum distance between two spawn points (3 m keeps the
            two directions of a two-way road, 3.5-4 m apart, and drops overlaps).
        junction_margin: [m] clearance to junctions and lane ends along the lane.

    Returns:
        The spawn points (Town01 with the defaults: a few hundred).

    Raises:
        ValueError: ``spacing`` <= 0.
    """
    if not spacing > 0:
        raise ValueError(f"spacing must be > 0 m, got {spacing}")
    candidates = []
    for wp in carla_map.generate_waypoints(spacing):
        if not _is_driving(wp) or wp.is_junction or not _clear_of_junctions(wp, junction_margin):
            continue
        t = wp.transform
        yaw = math.atan2(math.sin(math.radians(t.rotation.yaw)), math.cos(math.radians(t.rotation.yaw)))
        candidates.append(SpawnPoint(x=float(t.location.x), y=float(t.location.y),
                                     z=float(t.location.z), yaw=yaw, road_id=int(wp.road_id),
                                     lane_id=int(wp.lane_id), s=float(wp.s)))
    candidates.sort(key=lambda p: (p.road_id, p.lane_id, round(p.s, 3), round(p.x, 3), round(p.y, 3)))
    if min_separation <= 0:
        return candidates
    kept: list[SpawnPoint] = []
    cell = min_separation
    grid: dict[tuple[int, int], list[SpawnPoint]] = {}
    for p in candidates:
        ci, cj = math.floor(p.x / cell), math.floor(p.y / cell)
        near = (q for di in (-1, 0, 1) for dj in (-1, 0, 1) for q in grid.get((ci + di, cj + dj), ()))
        if any(math.hypot(p.x - q.x, p.y - q.y) < min_separation for q in near):
            continue
        kept.append(p)
        grid.setdefault((ci, cj), []).append(p)
    return kept


def nearest_driving_waypoint(carla_map: "carla.Map", x: float, y: float, *, z: float = 0.0,
                             max_offset: float | None = None, margin: float = 1.0
                             ) -> "carla.Waypoint":
    """The driving-lane waypoint nearest to (x, y), or an error if the point is off the road.

    Args:
        carla_map: the town.
        x, y, z: [m] CARLA world frame.
        max_offset: [m] largest accepted distance to the lane centre; default half the
            lane width plus ``margin``.
        margin: [m] tolerance beyond the lane's half width.

    Returns:
        The carla.Waypoint at the centre of the nearest driving lane.

    Raises:
        ScenarioError: the point is farther than that from every driving lane.
    """
    import carla
    wp = carla_map.get_waypoint(carla.Location(x=float(x), y=float(y), z=float(z)),
                                project_to_road=True, lane_type=carla.LaneType.Driving)
    if wp is None:
        raise ScenarioError(f"start ({x:.2f}, {y:.2f}): the map has no driving lane")
    loc = wp.transform.location
    dist = math.hypot(loc.x - x, loc.y - y)
    limit = max_offset if max_offset is not None else wp.lane_width / 2.0 + margin
    if dist > limit:
        raise ScenarioError(
            f"start ({x:.2f}, {y:.2f}) is {dist:.1f} m from the nearest driving lane "
            f"(road {wp.road_id}, lane {wp.lane_id} at ({loc.x:.2f}, {loc.y:.2f})); "
            f"at most {limit:.1f} m allowed: the start is off the road")
    return wp
