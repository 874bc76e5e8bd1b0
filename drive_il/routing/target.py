"""Target points: the route as the sparse plan a CARLA leaderboard agent is given.

The CARLA leaderboard (1.0) hands an agent its route not densely but as a **sparse global
plan**: the dense route (1 m apart) downsampled to the points where the road option
changes (junction entries and exits, lane changes) and, between them, at most a sample
factor in metres apart (``downsample_route`` in the leaderboard's
``route_manipulation.py``; 50 m here). TransFuser (Chitta et al., PAMI 2022) and the
camera agents after it feed the network the **target point**: the next point of that plan
at least 7.5 m ahead (its ``RoutePlanner`` ``min_distance``), in the ego frame. A discrete
command says *that* a turn comes; the target point at a junction's exit also says *where*
the turn goes. "Hidden Biases of End-to-End Driving Models" (Jaeger et al., ICCV 2023)
discuss the target point as a source of shortcut learning in TransFuser.

Here (:class:`SparseRoute`):

* the plan keeps route point 0, every point whose command differs from the one before
  it (the start of a junction's command, with the scenario's ``command_lead``, and the
  first point after the junction), a point whenever the arc length since the last kept
  one would exceed ``max_spacing`` (:data:`SPARSE_SPACING`, 50 m), and the last point;
* the target point is the first plan point whose arc length is more than
  ``min_distance`` (:data:`TARGET_MIN_DISTANCE`, 7.5 m) beyond the car's projection onto
  the route (the last plan point once none is), in the car's frame (CARLA axes: x
  forward, y right [m]). Arc length instead of TransFuser's Euclidean pop keeps it a
  function of the state (no memory), so the same formula labels recorded episodes
  (:class:`drive_il.data.dataset.EpisodeDataset`) and drives the learner (the worlds'
  :class:`~drive_il.types.Observation` ``target_point``).

Both worlds and the data set call this one implementation (pure Python floats and
``bisect``; ~2 us per step).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence

import numpy as np

from ..geometry import to_local

__all__ = ["SPARSE_SPACING", "TARGET_MIN_DISTANCE", "SparseRoute", "sparse_route_indices"]

SPARSE_SPACING = 50.0
"""Largest arc length [m] between two points of the sparse plan (the role of CARLA
leaderboard's ``downsample_route`` sample factor on its 1 m route; our choice)."""

TARGET_MIN_DISTANCE = 7.5
"""A plan point closer than this along the route [m] is passed (TransFuser's route planner
``min_distance``)."""


def sparse_route_indices(s: Sequence[float] | np.ndarray, commands: Sequence[int] | np.ndarray,
                         max_spacing: float = SPARSE_SPACING) -> np.ndarray:
    """Indices of the dense route's points kept in the sparse plan (module docstring).

    Args:
        s: (N,) arc length of the route's points [m], non-decreasing.
        commands: (N,) RoadOption values of the points.
        max_spacing: largest arc length between two kept points [m] (> 0) where the
            dense route allows it (a kept point is always a route point).

    Returns:
        (M,) int64 increasing indices, 0 and N - 1 included (M >= 1).

    Raises:
        ValueError: lengths differ, an empty route, or ``max_spacing`` <= 0.
    """
    s = np.asarray(s, dtype=np.float64).reshape(-1)
    c = np.asarray(commands).reshape(-1)
    if len(s) != len(c) or len(s) == 0:
        raise ValueError(f"sparse_route_indices: {len(s)} arc lengths and {len(c)} commands (need equal, >= 1)")
    if not max_spacing > 0:
        raise ValueError(f"sparse_route_indices: max_spacing must be > 0 m, got {max_spacing!r}")
    keep = [0]
    for i in range(1, len(s)):
        if c[i] != c[i - 1]:
            keep.append(i)
        elif s[i] - s[keep[-1]] > max_spacing and i - 1 > keep[-1]:
            keep.append(i - 1)
    if keep[-1] != len(s) - 1:
        keep.append(len(s) - 1)
    return np.asarray(keep, dtype=np.int64)


class SparseRoute:
    """The sparse plan of a dense route and the target point of a state along it.

    Args:
        xy: (N, 2) route points [m], world frame; s: (N,) their arc lengths [m];
            commands: (N,) RoadOption values (a :class:`~drive_il.types.Route`'s arrays,
            or an episode file's ``/route`` group).
        max_spacing: see :func:`sparse_route_indices`.
        min_distance: see :meth:`target_point`.

    Raises:
        ValueError: as :func:`sparse_route_indices`; ``min_distance`` < 0.
    """

    __slots__ = ("_s", "_x", "_y", "indices", "min_distance")

    def __init__(self, xy: np.ndarray, s: np.ndarray, commands: np.ndarray, *,
                 max_spacing: float = SPARSE_SPACING, min_distance: float = TARGET_MIN_DISTANCE) -> None:
        xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        s = np.asarray(s, dtype=np.float64).reshape(-1)
        if len(xy) != len(s):
            raise ValueError(f"SparseRoute: {len(xy)} points and {len(s)} arc lengths")
        if not min_distance >= 0:
            raise ValueError(f"SparseRoute: min_distance must be >= 0 m, got {min_distance!r}")
        self.indices = sparse_route_indices(s, commands, max_spacing)
        self._x = [float(v) for v in xy[self.indices, 0]]
        self._y = [float(v) for v in xy[self.indices, 1]]
        self._s = [float(v) for v in s[self.indices]]
        self.min_distance = float(min_distance)

    @classmethod
    def of_route(cls, route, **kwargs) -> SparseRoute:
        """The sparse plan of a :class:`~drive_il.types.Route`."""
        return cls(route.xy, route.s, route.commands, **kwargs)

    @property
    def points(self) -> np.ndarray:
        """(M, 2) the plan's points [m], world frame."""
        return np.column_stack([self._x, self._y])

    def target_point(self, x: float, y: float, yaw: float, s_ego: float) -> tuple[float, float]:
        """The target point of the car at ``(x, y)`` [m] with heading ``yaw`` [rad], whose
        projection onto the route lies at arc length ``s_ego`` [m]: the first plan point
        more than ``min_distance`` beyond ``s_ego`` (the last one if none), as
        ``(forward, right)`` [m] in the car's frame (CARLA axes,
        :func:`drive_il.geometry.to_local`)."""
        k = min(bisect_right(self._s, s_ego + self.min_distance), len(self._s) - 1)
        return to_local(self._x[k], self._y[k], x, y, yaw)

    def target_points(self, pose: np.ndarray, s_ego: np.ndarray) -> np.ndarray:
        """:meth:`target_point` of every row of ``pose`` (T, >=2: x, y [m] and, in the
        last column, yaw [rad]; an episode file's ``pose``) at ``s_ego`` (T,) [m]:
        (T, 2) float64 (forward, right) [m]."""
        pose = np.asarray(pose, dtype=np.float64)
        s_ego = np.asarray(s_ego, dtype=np.float64).reshape(-1)
        out = np.empty((len(s_ego), 2), dtype=np.float64)
        for t in range(len(s_ego)):
            out[t] = self.target_point(float(pose[t, 0]), float(pose[t, 1]), float(pose[t, -1]), float(s_ego[t]))
        return out
