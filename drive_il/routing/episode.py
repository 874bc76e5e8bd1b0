"""Episode set-up shared by the embedded world and the CARLA backend: which route and
which start pose a scenario and a seed give.

Rule (both backends, so the same scenario and seed mean the same drive):

* an explicit ``route`` argument wins;
* else, when the scenario lists routes, episode seed ``seed`` uses
  ``scenario.routes[(seed - scenario.seed) % len(scenario.routes)]`` (episode i of a run
  has seed ``scenario.seed + i``, so episode i drives route i, wrapping around), planned
  with A* on the lane graph (:func:`drive_il.routing.planner.plan_route`);
* else a random route of ``scenario.route_length`` metres drawn from
  ``numpy.random.default_rng(seed)`` (:func:`drive_il.routing.planner.random_route`),
  beginning at the given start pose when there is one (in the lane whose direction
  matches its heading).

The start is the route's first waypoint at rest unless a :class:`StartPose` is given; a
given start must lie on a driving lane (within half a lane width + 1 m of its centre,
:func:`drive_il.maps.spawns.nearest_driving_waypoint`), else :class:`ScenarioError`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..maps.spawns import nearest_driving_waypoint
from ..scenario import Scenario
from ..types import Route
from .planner import plan_route, random_route

if TYPE_CHECKING:  # pragma: no cover
    from ..maps.towns import TownMap

__all__ = ["EpisodeSetup", "StartPose", "check_start_on_road", "plan_episode", "route_index"]


@dataclass(frozen=True, slots=True)
class StartPose:
    """Override of the ego's start: world pose and speed.

    Attributes:
        x, y: [m], world frame (vehicle reference point).
        yaw: [rad].
        speed: [m/s].
    """

    x: float
    y: float
    yaw: float
    speed: float = 0.0


@dataclass(frozen=True, slots=True)
class EpisodeSetup:
    """Route and start of one episode.

    Attributes:
        route: the route the ego is asked to follow.
        start: the ego's start pose (vehicle reference point) and speed.
        route_index: index into ``scenario.routes`` (None: random route or given route).
        seed: the episode seed.
    """

    route: Route
    start: StartPose
    route_index: int | None
    seed: int


def route_index(scenario: Scenario, seed: int) -> int | None:
    """Index of the scenario route that episode seed ``seed`` uses, or None when the
    scenario lists no routes (random routes)."""
    n = len(scenario.routes)
    return None if n == 0 else (int(seed) - int(scenario.seed)) % n


def check_start_on_road(town: "TownMap", start: StartPose) -> None:
    """Raise :class:`~drive_il.errors.ScenarioError` (one line) if ``start`` is off the
    driving lanes of ``town``."""
    nearest_driving_waypoint(town.map, start.x, start.y)


def plan_episode(town: "TownMap", scenario: Scenario, seed: int, *,
                 route: Route | None = None, start: StartPose | None = None) -> EpisodeSetup:
    """Route and start pose for ``scenario`` with episode seed ``seed`` (module rule).

    Args:
        town: the scenario's town.
        scenario: the scenario.
        seed: the episode seed.
        route: use this route (no planning).
        start: override the start pose (checked to be on the road).

    Returns:
        The EpisodeSetup.

    Raises:
        ScenarioError: a route's start, via or goal off the road, the goal unreachable,
            or ``start`` off the road (one line).
    """
    if start is not None:
        check_start_on_road(town, start)
    idx = None
    if route is None:
        idx = route_index(scenario, seed)
        if idx is not None:
            spec = scenario.routes[idx]
            yaw = None if spec.start_yaw_deg is None else math.radians(spec.start_yaw_deg)
            route = plan_route(town, spec.start, spec.goal, via=spec.via, start_yaw=yaw,
                               junction_lead=scenario.command_lead)
        elif start is not None:  # a random route that begins where the ego starts
            route = random_route(town, np.random.default_rng(int(seed)), scenario.route_length,
                                 start_xy=(start.x, start.y), start_yaw=start.yaw,
                                 junction_lead=scenario.command_lead)
        else:
            route = random_route(town, np.random.default_rng(int(seed)), scenario.route_length,
                                 junction_lead=scenario.command_lead)
    if start is None:
        w = route.waypoints[0]
        start = StartPose(x=float(w.x), y=float(w.y), yaw=float(w.yaw), speed=0.0)
    return EpisodeSetup(route=route, start=start, route_index=idx, seed=int(seed))
