"""Traffic-rule infractions shared by both worlds (no ``carla`` import here).

**Running a red light** (:class:`RedLightRule`), the CARLA leaderboard's rule
(``RunningRedLightTest`` in scenario_runner's ``atomic_criteria.py``): a vehicle runs a
red light when a short segment along its axis at its rear -- from 0.8 half-lengths
behind its centre to one half-length + 1 m behind it -- crosses the stop line of a red
light that controls the lane that rear point is on, driving the lanes' way. There, the
stop line of each controlled lane is the segment +-0.4 lane widths either side of the
light's stop waypoint; the lane test compares the ``carla.Map.get_waypoint`` of the rear
point with the stop waypoints' road and lane ids; the heading test requires the vehicle's
forward vector to have a positive dot product with the stop waypoint's; and a light
already reported is not reported again.

Our implementation (the geometric test is our own): the light's stop line is the one
segment across all its lanes (:attr:`drive_il.types.TrafficLight.stop_line`), its lanes
are ``TrafficLight.lanes``; the rear segment is *swept*: it runs from the previous step's
far rear point to this step's near rear point (all the ground it passed over), so a car that jumps more than the segment's
length in one step (fast, or a long ``dt``) is still caught. The lane is looked up only
when the geometry hits (one lane query per crossing, not per step). An infraction is
reported once per crossing: the light stays "being crossed" while the swept segment
keeps touching its line and is reported again only after it has cleared it -- driving a
loop back through the same junction on red is a second infraction, which the
leaderboard's "last light id" memory would miss. States other than RED (GREEN, YELLOW,
OFF, UNKNOWN) are never infractions.

Frame: world x, y [m], yaw [rad]; lanes are OpenDRIVE (road_id, lane_id) pairs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from ..types import Event, EventKind, TrafficLight, TrafficLightState

__all__ = ["RedLightRule", "segments_cross", "REAR_NEAR", "REAR_FAR_MARGIN", "LIGHT_RANGE"]

#: Near end of the rear segment behind the centre, in half-lengths (leaderboard: 0.8).
REAR_NEAR = 0.8
#: Far end of the rear segment: one half-length plus this behind the centre [m] (leaderboard: 1 m).
REAR_FAR_MARGIN = 1.0
#: Lights whose stop-line midpoint is farther than this + half its length from the ego are
#: not tested [m] (broad phase, a grid of the lights' reach circles built once per set of
#: lights; the leaderboard tests lights within 15 m of the vehicle).
LIGHT_RANGE = 15.0

_RED = TrafficLightState.RED
_CELL = 2.0 * LIGHT_RANGE  # broad-phase grid cell [m]


def segments_cross(ax: float, ay: float, bx: float, by: float,
                   cx: float, cy: float, dx: float, dy: float) -> bool:
    """Do the closed segments AB and CD intersect (touching counts)? [m, any frame]

    Orientation test (signs of the 2-D cross products), collinear overlaps included.
    """
    def orient(px: float, py: float, qx: float, qy: float, rx: float, ry: float) -> float:
        return (qx - px) * (ry - py) - (qy - py) * (rx - px)

    d1 = orient(cx, cy, dx, dy, ax, ay)
    d2 = orient(cx, cy, dx, dy, bx, by)
    d3 = orient(ax, ay, bx, by, cx, cy)
    d4 = orient(ax, ay, bx, by, dx, dy)
    if ((d1 > 0.0 and d2 < 0.0) or (d1 < 0.0 and d2 > 0.0)) and \
            ((d3 > 0.0 and d4 < 0.0) or (d3 < 0.0 and d4 > 0.0)):
        return True

    def on(px: float, py: float, qx: float, qy: float, rx: float, ry: float) -> bool:
        return min(px, qx) <= rx <= max(px, qx) and min(py, qy) <= ry <= max(py, qy)

    return ((d1 == 0.0 and on(cx, cy, dx, dy, ax, ay)) or (d2 == 0.0 and on(cx, cy, dx, dy, bx, by))
            or (d3 == 0.0 and on(ax, ay, bx, by, cx, cy)) or (d4 == 0.0 and on(ax, ay, bx, by, dx, dy)))


class RedLightRule:
    """Red-light infractions of one vehicle over an episode (see module docstring).

    Args:
        length: the vehicle's bounding-box length [m].
        lane_at: ``f(x, y) -> (road_id, lane_id) | None``, the driving lane at a world
            point (the embedded world: ``carla.Map.get_waypoint``; any backend can pass
            its own). Called only when a red stop line is crossed.

    Raises:
        ValueError: ``length`` not positive.
    """

    __slots__ = ("half", "lane_at", "_prev", "_crossing", "_key", "_cells")

    def __init__(self, *, length: float,
                 lane_at: Callable[[float, float], tuple[int, int] | None]) -> None:
        if not (length > 0.0 and math.isfinite(length)):
            raise ValueError(f"RedLightRule: length must be > 0 m, got {length}")
        self.half = 0.5 * float(length)
        self.lane_at = lane_at
        self._prev: tuple[float, float] | None = None
        self._crossing: set[int] = set()
        self._key: tuple = ()
        # broad phase: grid cell -> positions in ``lights`` of the lights within reach
        self._cells: dict[tuple[int, int], list[int]] = {}

    def _index(self, lights: Sequence[TrafficLight]) -> None:
        """(Re)build the grid of the lights' reach circles (the lights' geometry is taken
        as unchanged while their count and first and last heads are)."""
        key = (len(lights), lights[0].light_id, lights[0].stop_line, lights[-1].light_id,
               lights[-1].stop_line)
        if key == self._key:
            return
        cells: dict[tuple[int, int], list[int]] = {}
        for k, lt in enumerate(lights):
            (p0x, p0y), (p1x, p1y) = lt.stop_line
            mx, my = 0.5 * (p0x + p1x), 0.5 * (p0y + p1y)
            reach = LIGHT_RANGE + 0.5 * math.hypot(p1x - p0x, p1y - p0y)
            for i in range(math.floor((mx - reach) / _CELL), math.floor((mx + reach) / _CELL) + 1):
                for j in range(math.floor((my - reach) / _CELL), math.floor((my + reach) / _CELL) + 1):
                    cells.setdefault((i, j), []).append(k)
        self._cells = cells
        self._key = key

    def _rear(self, x: float, y: float, yaw: float) -> tuple[float, float, float, float]:
        c, s = math.cos(yaw), math.sin(yaw)
        near, far = REAR_NEAR * self.half, self.half + REAR_FAR_MARGIN
        return x - near * c, y - near * s, x - far * c, y - far * s

    def reset(self, x: float, y: float, yaw: float,
              lights: Sequence[TrafficLight] = ()) -> None:
        """Start of an episode (or a teleport): lines under the rear segment now are
        not reported."""
        nx, ny, fx, fy = self._rear(x, y, yaw)
        self._prev = (fx, fy)
        self._crossing = {lt.light_id for lt in lights
                          if segments_cross(nx, ny, fx, fy, *lt.stop_line[0], *lt.stop_line[1])}

    def update(self, x: float, y: float, yaw: float, lights: Sequence[TrafficLight],
               frame: int, sim_time: float) -> list[Event]:
        """The infractions of the step that ended at pose (x, y [m], yaw [rad]).

        Returns:
            One ``Event(EventKind.RED_LIGHT, other_actor=light_id)`` per red light whose
            stop line the rear segment started to cross this step on a controlled lane.
        """
        nx, ny, fx, fy = self._rear(x, y, yaw)
        prev = self._prev
        self._prev = (fx, fy)
        if not lights:
            self._crossing = set()
            return []
        # swept rear segment: from last step's far point to this step's near point
        ax, ay = (prev if prev is not None else (fx, fy))
        bx, by = nx, ny
        c, s = math.cos(yaw), math.sin(yaw)
        now: set[int] = set()
        events: list[Event] = []
        self._index(lights)
        near = self._cells.get((math.floor(x / _CELL), math.floor(y / _CELL)), ())
        for k in near:
            lt = lights[k]
            (p0x, p0y), (p1x, p1y) = lt.stop_line
            if not (segments_cross(ax, ay, bx, by, p0x, p0y, p1x, p1y)
                    or segments_cross(nx, ny, fx, fy, p0x, p0y, p1x, p1y)):
                continue
            if math.cos(lt.yaw) * c + math.sin(lt.yaw) * s <= 0.0:
                continue  # driving against the controlled lanes
            lid = lt.light_id
            now.add(lid)
            if lid in self._crossing or lt.state != _RED:
                continue
            lane = self.lane_at(fx, fy)
            if lane is None or (int(lane[0]), int(lane[1])) not in lt.lanes:
                lane = self.lane_at(ax, ay)  # a fast car's far point may be past the line already
                if lane is None or (int(lane[0]), int(lane[1])) not in lt.lanes:
                    continue
            events.append(Event(kind=EventKind.RED_LIGHT, frame=frame, sim_time=sim_time,
                                other_actor=lid))
        self._crossing = now
        return events
