"""Routing: A* over a town's lane graph, random routes, navigation commands, the route and
start of an episode, and the route's sparse plan and target point (what a CARLA
leaderboard agent is told of its route).

Layer: above :mod:`drive_il.maps` (the lane graph is ``town.lane_graph``), below the
simulators, which call :func:`plan_episode` at every reset.
"""

from __future__ import annotations

from .commands import junction_turns, route_commands
from .episode import EpisodeSetup, StartPose, check_start_on_road, plan_episode, route_index
from .planner import lane_graph_of, plan_route, random_route
from .target import SparseRoute, sparse_route_indices

__all__ = [
    "EpisodeSetup",
    "SparseRoute",
    "StartPose",
    "check_start_on_road",
    "junction_turns",
    "lane_graph_of",
    "plan_episode",
    "plan_route",
    "random_route",
    "route_commands",
    "route_index",
    "sparse_route_indices",
]
