"""Navigation commands (CARLA's ``RoadOption``) along a dense route, and the geometry of
the junctions a route crosses.

- inside a junction, and on the ``junction_lead`` metres (default 10 m; a scenario's
  ``command_lead``) leading into it,
  the command is LEFT, RIGHT or STRAIGHT from the heading change across the junction
  (|change| < 30 deg: STRAIGHT; + = towards CARLA's +y = RIGHT). CARLA's agents set it on
  the junction segment only; a lead gives a command-conditioned learner (Codevilla et
  al. 2018) time to slow for the turn, but a long one blurs when to turn: on the
  Town01 -> Town02 split a 10 m lead made DAVE-2 turn ~3 m early at Town02's tighter
  junctions, a 2 m lead did not (``scenarios/town01_train_town02_test.toml``);
- CHANGELANELEFT / CHANGELANERIGHT on the waypoints of a planned lane change;
- LANEFOLLOW elsewhere.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..geometry import polyline_curvature
from ..types import RoadOption, Route

__all__ = ["STRAIGHT_DEG", "junction_turns", "route_commands"]

STRAIGHT_DEG = 30.0
"""|heading change| [deg] below which crossing a junction is STRAIGHT."""


def route_commands(yaw: np.ndarray, junction: np.ndarray, lane_change: np.ndarray, s: np.ndarray,
                   lead: float) -> np.ndarray:
    """The RoadOption of every route point (module docstring).

    Args:
        yaw: (n,) unwrapped heading [rad].
        junction: (n,) bool, the point lies in a junction.
        lane_change: (n,) int, ``RoadOption.CHANGELANELEFT`` / ``CHANGELANERIGHT`` on the
            points of a lane change, 0 elsewhere.
        s: (n,) arc length [m].
        lead: [m] before a junction on which its turn command is set.

    Returns:
        (n,) int64 RoadOption values.
    """
    n = len(yaw)
    cmd = np.full(n, int(RoadOption.LANEFOLLOW), dtype=np.int64)
    cmd[lane_change == RoadOption.CHANGELANELEFT] = int(RoadOption.CHANGELANELEFT)
    cmd[lane_change == RoadOption.CHANGELANERIGHT] = int(RoadOption.CHANGELANERIGHT)
    i = 0
    while i < n:
        if not junction[i]:
            i += 1
            continue
        j = i
        while j + 1 < n and junction[j + 1]:
            j += 1
        before = yaw[i - 1] if i > 0 else yaw[i]
        after = yaw[j + 1] if j + 1 < n else yaw[j]
        turn = float(after - before)  # unwrapped yaw: the signed total turn
        if abs(turn) < math.radians(STRAIGHT_DEG):
            c = RoadOption.STRAIGHT
        elif turn > 0:
            c = RoadOption.RIGHT
        else:
            c = RoadOption.LEFT
        lo = int(np.searchsorted(s, s[i] - lead, side="left"))
        # the lead never overwrites an earlier junction's command
        k = i - 1
        while k >= lo and not junction[k] and cmd[k] in (int(RoadOption.LANEFOLLOW),):
            k -= 1
        cmd[k + 1:j + 1] = int(c)
        i = j + 1
    return cmd


def junction_turns(route: Route, *, curvature_threshold: float = 0.05) -> list[dict[str, Any]]:
    """The geometry of every junction a route crosses: how long the junction is, where
    in it the turn's arc begins and how tight the arc is. Used to compare towns (a
    learner trained in one town judges a turn's onset from the look of its junctions).

    Args:
        route: a dense route (its waypoints' ``is_junction`` and ``command``).
        curvature_threshold: |curvature| [1/m] above which the route counts as turning
            (0.05 = a 20 m radius).

    Returns:
        One dict per junction crossed: ``command`` (RoadOption name of its first
        waypoint), ``x``, ``y`` (entry point [m]), ``length`` (along the route from the entry to
        the first waypoint after the junction [m]), ``arc_start`` (from the entry to the first point of |curvature| >
        threshold [m], negative when the arc begins before the entry; None for a route
        that does not turn there), ``min_radius`` ([m], None when it does not turn).
        Junctions cut by the route's start or end are left out.
    """
    j = np.array([w.is_junction for w in route.waypoints], bool)
    k = np.abs(polyline_curvature(route.xy))
    out: list[dict[str, Any]] = []
    n = len(j)
    i = 1
    while i < n:
        if j[i] and not j[i - 1]:
            e = i
            while e < n and j[e]:
                e += 1
            if e >= n:
                break
            lo, hi = max(i - 3, 0), min(e + 3, n)
            turning = np.flatnonzero(k[lo:hi] > curvature_threshold)
            w = route.waypoints[i]
            out.append({
                "command": w.command.name, "x": float(w.x), "y": float(w.y),
                "length": float(route.s[e] - route.s[i]),
                "arc_start": float(route.s[lo + turning[0]] - route.s[i]) if len(turning) else None,
                "min_radius": float(1.0 / k[lo:hi].max()) if len(turning) else None,
            })
            i = e
        i += 1
    return out
