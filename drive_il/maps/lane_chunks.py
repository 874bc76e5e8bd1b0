"""Lane chunks of a town for the overlay's bird's-eye panel (numpy only, no pygame).

The road-grid walk of a town's :class:`~drive_il.maps.sampling.LaneSampler` (driving
lanes sampled with ``carla.Map.generate_waypoints(spacing)``, grouped per OpenDRIVE lane
``(road_id, section_id, lane_id)``, ordered by ``s`` and completed to the lane end with
``Waypoint.next_until_lane_end``) gives each lane's centre line, its two boundaries
(centre +- lane_width / 2 along the right vector of the waypoint's heading) and its lane
markings (``carla.LaneMarkingType`` and ``carla.LaneMarkingColor`` names). They are cut
into short chunks with a bounding circle, so that the panel only transforms and draws
the chunks near the ego vehicle. A town's is
:attr:`drive_il.maps.towns.TownMap.lane_geometry`.

The same structure is built from a :class:`drive_il.types.Route` where no map is
available (the boundaries of the route's own lane, markings unknown).

Frames: CARLA's world frame (x forward/east, y right/south); the right unit vector of
heading ``yaw`` is ``(-sin yaw, cos yaw)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from ..types import Route

if TYPE_CHECKING:  # pragma: no cover
    import carla

    from .sampling import LaneRun, LaneSampler

__all__ = ["LaneChunk", "LaneGeometry"]


@dataclass(frozen=True, slots=True)
class LaneChunk:
    """A short piece of one lane.

    Attributes:
        centre: (n, 2) centre line [m], world frame, in driving order.
        left: (n, 2) left boundary [m] (seen in the driving direction).
        right: (n, 2) right boundary [m].
        left_marking: ``carla.LaneMarkingType`` name of the left boundary ("Solid",
            "Broken", "SolidSolid", "NONE", ...), or "" when unknown.
        right_marking: same for the right boundary.
        left_color: ``carla.LaneMarkingColor`` name ("Standard", "White", "Yellow", ...).
        right_color: same for the right boundary.
        is_junction: the lane lies inside a junction.
        draw_left: the left boundary is drawn with this chunk (False where the lane
            on the left is a driving lane that draws it: the same boundary is then
            drawn once).
    """

    centre: np.ndarray
    left: np.ndarray
    right: np.ndarray
    left_marking: str = ""
    right_marking: str = ""
    left_color: str = "Standard"
    right_color: str = "Standard"
    is_junction: bool = False
    draw_left: bool = True


@dataclass(slots=True)
class LaneGeometry:
    """All lane chunks of a map with a bounding circle each, for radius queries.

    Attributes:
        name: the map name (or "route").
        chunks: the chunks.
        centres: (M, 2) bounding-circle centres [m].
        radii: (M,) bounding-circle radii [m].
        points: (P, 2) every chunk's left then right boundary points, concatenated [m]
            (one transform per frame for all visible chunks).
        offsets: (M + 1,) start of each chunk's points in :attr:`points`.
        lane: (M,) lane number of each chunk (consecutive chunks of one lane share it
            and can be drawn as one polygon).
    """

    name: str
    chunks: list[LaneChunk]
    centres: np.ndarray = field(init=False)
    radii: np.ndarray = field(init=False)
    points: np.ndarray = field(init=False)
    offsets: np.ndarray = field(init=False)
    lane: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        if self.chunks:
            pts = [np.vstack((c.left, c.right)) for c in self.chunks]
            lo = np.array([p.min(axis=0) for p in pts])
            hi = np.array([p.max(axis=0) for p in pts])
            self.centres = 0.5 * (lo + hi)
            self.radii = 0.5 * np.hypot(*(hi - lo).T)
            self.points = np.vstack(pts)
            self.offsets = np.concatenate(([0], np.cumsum([len(p) for p in pts]))).astype(np.int64)
        else:
            self.centres = np.zeros((0, 2))
            self.radii = np.zeros(0)
            self.points = np.zeros((0, 2))
            self.offsets = np.zeros(1, dtype=np.int64)
        # lane number of each chunk: consecutive chunks of one lane share an end point
        lane = np.zeros(len(self.chunks), dtype=np.int64)
        k = 0
        for i in range(1, len(self.chunks)):
            a, b = self.chunks[i - 1], self.chunks[i]
            if not (a.centre[-1] == b.centre[0]).all():
                k += 1
            lane[i] = k
        self.lane = lane

    def __len__(self) -> int:
        return len(self.chunks)

    def near(self, x: float, y: float, radius: float) -> np.ndarray:
        """Indices of the chunks whose bounding circle meets the disc (x, y, radius) [m]."""
        if not self.chunks:
            return np.zeros(0, dtype=np.int64)
        d = np.hypot(self.centres[:, 0] - x, self.centres[:, 1] - y)
        return np.nonzero(d <= radius + self.radii)[0]

    def point_index(self, idx: np.ndarray) -> np.ndarray:
        """Indices into :attr:`points` of the chunks ``idx`` (each chunk: its left
        boundary then its right boundary), concatenated in order."""
        if len(idx) == 0:
            return np.zeros(0, dtype=np.int64)
        starts = self.offsets[idx]
        lens = self.offsets[idx + 1] - starts
        total = int(lens.sum())
        # ranges [start, start + len) concatenated without a Python loop
        shift = np.repeat(starts - np.concatenate(([0], np.cumsum(lens)[:-1])), lens)
        return np.arange(total, dtype=np.int64) + shift

    # ------------------------------------------------------------------ builders
    @classmethod
    def from_samples(cls, lanes: "LaneSampler", *, spacing: float = 2.0,
                     chunk_points: int = 12) -> "LaneGeometry":
        """Every driving lane of a town's sampler (its road grid every ``spacing`` m).

        Args:
            lanes: the town's lane sampler.
            spacing: waypoint spacing [m].
            chunk_points: at most this many points per chunk (consecutive chunks share
                an end point); a chunk also ends where a lane marking changes, so each
                chunk has one marking per side.

        Returns:
            The lane geometry (Town01: ~180 lanes).
        """
        return cls.from_runs(lanes.lane_runs(spacing), name=lanes.name, chunk_points=chunk_points)

    @classmethod
    def from_map(cls, carla_map: "carla.Map", *, spacing: float = 2.0, chunk_points: int = 12) -> "LaneGeometry":
        """Every driving lane of a ``carla.Map`` that has no TownMap (see
        :meth:`from_samples`; a TownMap's is :attr:`~drive_il.maps.towns.TownMap.lane_geometry`)."""
        from .sampling import LaneSampler
        return cls.from_samples(LaneSampler(carla_map), spacing=spacing, chunk_points=chunk_points)

    @classmethod
    def from_runs(cls, runs: Sequence["LaneRun"], *, name: str, chunk_points: int = 12) -> "LaneGeometry":
        """Chunks of sampled lanes (see :meth:`from_samples`).

        Args:
            runs: the lanes, in driving order.
            name: the map name.
            chunk_points: at most this many points per chunk.
        """
        chunks: list[LaneChunk] = []
        for run in runs:
            n = len(run)
            arr = np.empty((n, 4))
            lm: list[tuple[str, str, str, str]] = []
            for i in range(n):
                arr[i] = (run.x[i], run.y[i], math.radians(run.yaw[i]), run.width[i])
                left, right = run.left_marking[i], run.right_marking[i]
                lm.append((left[0], right[0], left[1], right[1]))
            centre = arr[:, :2]
            half = 0.5 * arr[:, 3:4]
            rvec = np.column_stack((-np.sin(arr[:, 2]), np.cos(arr[:, 2])))
            left = centre - half * rvec
            right = centre + half * rvec
            # chunks of at most chunk_points points, cut where a marking changes
            starts = [0]
            for i in range(1, n - 1):
                if lm[i] != lm[i - 1] or i - starts[-1] >= chunk_points - 1:
                    starts.append(i)
            for k, a in enumerate(starts):
                b = (starts[k + 1] if k + 1 < len(starts) else n - 1) + 1
                m = lm[a]
                chunks.append(LaneChunk(centre=centre[a:b].copy(), left=left[a:b].copy(),
                                        right=right[a:b].copy(), left_marking=m[0],
                                        right_marking=m[1], left_color=m[2], right_color=m[3],
                                        is_junction=run.is_junction,
                                        draw_left=_draws_left(run.lane_id, int(run.left_driving[a]))))
        return cls(name=name, chunks=chunks)

    @classmethod
    def from_route(cls, route: Route, *, chunk_points: int = 12) -> "LaneGeometry":
        """The lane of a route alone (boundaries at +- lane_width / 2, markings unknown).

        Used where no ``carla.Map`` is at hand (e.g. replaying an episode file whose
        town cannot be loaded).
        """
        xy = np.asarray(route.xy, dtype=np.float64)
        yaw = np.asarray(route.yaw, dtype=np.float64)
        half = 0.5 * np.array([w.lane_width for w in route.waypoints])[:, None]
        rvec = np.column_stack((-np.sin(yaw), np.cos(yaw)))
        left, right = xy - half * rvec, xy + half * rvec
        n = len(xy)
        chunks = []
        for a in range(0, n - 1, chunk_points - 1):
            b = min(n, a + chunk_points)
            chunks.append(LaneChunk(centre=xy[a:b].copy(), left=left[a:b].copy(),
                                    right=right[a:b].copy(),
                                    is_junction=bool(route.waypoints[a].is_junction)))
        return cls(name="route", chunks=chunks)



def _draws_left(lane_id: int, left_driving: int) -> bool:
    """Whether a lane draws its left boundary: not when the lane on its left is a
    driving lane of the same direction (whose right boundary it is), nor when it is an
    oncoming driving lane and this lane has a positive id (the negative side draws the
    shared centre line). ``left_driving``: the left driving lane's id, 0 for none."""
    if left_driving == 0:
        return True
    same_direction = (left_driving > 0) == (lane_id > 0)
    return not same_direction and lane_id < 0
