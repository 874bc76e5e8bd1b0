"""The CARLA server's traffic lights as :class:`~drive_il.types.TrafficLight` values.

At reset the static part of each ``traffic.traffic_light`` actor is read once
(CARLA Python API 0.9.16): the pole (``actor.get_transform()``), the light group
(``get_group_traffic_lights()``, one per signalised junction), the stop line built
across the lanes of ``get_stop_waypoints()`` (one waypoint per controlled lane, at the
stop line) and those lanes as (road_id, lane_id). Per tick only the state and the time
in it are read (``get_state()``, ``get_elapsed_time()``): the client answers both from
the tick's world snapshot, without an RPC per light.

Units are converted here: CARLA's rotations are in degrees, ours in radians; the
frame (x east, y south, left-handed) is already the same.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace
from typing import Any

from ...types import CARLA_YELLOW_TIME, TrafficLight, TrafficLightState
from .convert import one_line

__all__ = ["LIGHT_FILTER", "ServerLights", "stop_line_across"]

log = logging.getLogger(__name__)

#: Type id filter of CARLA's traffic-light actors.
LIGHT_FILTER = "traffic.traffic_light"


def stop_line_across(waypoints: list[Any]) -> tuple[tuple[float, float], tuple[float, float]]:
    """The stop line across the lanes of ``waypoints`` (``carla.Waypoint`` at the stop
    line, one per lane, all driving the same way).

    Each lane spans its centre +- half its ``lane_width`` [m] along the right-hand
    normal of its direction (CARLA's left-handed frame: right = (-sin yaw, cos yaw)).
    Returns ((x0, y0), (x1, y1)) [m]: the right-most edge point first, then the
    left-most (seen in the driving direction); ((0, 0), (0, 0)) without waypoints.
    """
    if not waypoints:
        return ((0.0, 0.0), (0.0, 0.0))
    yaw0 = math.radians(float(waypoints[0].transform.rotation.yaw))
    rx, ry = -math.sin(yaw0), math.cos(yaw0)  # right of the driving direction
    pts: list[tuple[float, float, float]] = []  # (offset to the right, x, y)
    ox, oy = float(waypoints[0].transform.location.x), float(waypoints[0].transform.location.y)
    for wp in waypoints:
        loc = wp.transform.location
        yaw = math.radians(float(wp.transform.rotation.yaw))
        nx, ny = -math.sin(yaw), math.cos(yaw)
        h = 0.5 * float(wp.lane_width)
        for sgn in (1.0, -1.0):
            x, y = float(loc.x) + sgn * h * nx, float(loc.y) + sgn * h * ny
            pts.append(((x - ox) * rx + (y - oy) * ry, x, y))
    right = max(pts)
    left = min(pts)
    return ((right[1], right[2]), (left[1], left[2]))


def _junction_of(wp: Any) -> int:
    """OpenDRIVE id of the junction just past a stop waypoint (-1 if none within 10 m)."""
    try:
        if wp.is_junction:
            return int(wp.junction_id)
        for nxt in wp.next(5.0) + wp.next(10.0):
            if nxt.is_junction:
                return int(nxt.junction_id)
    except (RuntimeError, AttributeError):
        pass
    return -1


@dataclass
class _Head:
    actor: Any
    static: TrafficLight


class ServerLights:
    """The traffic lights of the server's current world.

    Args:
        actors: the world's ``traffic.traffic_light`` actors (read at reset).

    The static geometry is read in the constructor; :meth:`states` reads the per-tick
    part. A light whose geometry cannot be read (an RPC error) is kept with its pole only.
    """

    def __init__(self, actors: list[Any]) -> None:
        heads: list[_Head] = []
        for a in sorted(actors, key=lambda a: int(a.id)):
            heads.append(_Head(actor=a, static=self._static(a)))
        self._heads = heads

    @classmethod
    def from_world(cls, world: Any) -> ServerLights:
        """The lights of ``world`` (``world.get_actors().filter("traffic.traffic_light")``)."""
        return cls(list(world.get_actors().filter(LIGHT_FILTER)))

    def __len__(self) -> int:
        return len(self._heads)

    @property
    def ids(self) -> list[int]:
        return [h.static.light_id for h in self._heads]

    @staticmethod
    def _static(a: Any) -> TrafficLight:
        tf = a.get_transform()
        loc = tf.location
        lid = int(a.id)
        yaw = math.radians(float(tf.rotation.yaw))
        group, line, lanes, junction = lid, ((0.0, 0.0), (0.0, 0.0)), (), -1
        try:
            group = min([lid] + [int(o.id) for o in a.get_group_traffic_lights()])
        except (RuntimeError, AttributeError) as e:
            log.warning("traffic light %d: no group (%s)", lid, one_line(e))
        try:
            wps = list(a.get_stop_waypoints())
        except (RuntimeError, AttributeError) as e:
            log.warning("traffic light %d: no stop waypoints (%s)", lid, one_line(e))
            wps = []
        if wps:
            line = stop_line_across(wps)
            lanes = tuple((int(w.road_id), int(w.lane_id)) for w in wps)
            yaw = math.radians(float(wps[0].transform.rotation.yaw))  # the controlled traffic's
            junction = _junction_of(wps[0])
        yaw = (yaw + math.pi) % (2.0 * math.pi) - math.pi
        yellow = CARLA_YELLOW_TIME
        try:
            yellow = float(a.get_yellow_time())
        except (RuntimeError, AttributeError) as e:
            log.warning("traffic light %d: no yellow time, taking CARLA's default 3 s (%s)", lid, one_line(e))
        return TrafficLight(light_id=lid, x=float(loc.x), y=float(loc.y), z=float(loc.z), yaw=yaw,
                            junction_id=junction, group_id=group, stop_line=line, lanes=lanes,
                            yellow_time=yellow)

    def states(self) -> tuple[TrafficLight, ...]:
        """Every light with its state now (``get_state``, ``get_elapsed_time``: from the
        client's snapshot of the last tick; no RPC)."""
        out = []
        for h in self._heads:
            a = h.actor
            try:
                st = TrafficLightState(int(a.get_state()))
            except ValueError:
                st = TrafficLightState.UNKNOWN
            out.append(replace(h.static, state=st, elapsed=float(a.get_elapsed_time())))
        return tuple(out)
