"""What the overlay remembers of an episode: recent trajectory, lateral deviation and counters.

:class:`OverlayHistory` is filled from :class:`drive_il.types.StepRecord` objects, one
per control step, and keeps fixed-size ring buffers of the last ``seconds`` of driving
(time, ego position, lateral deviation, steering, who drove, interventions) plus the
episode's counters. No pygame here; the drawing functions read it.

Definitions (DESIGN.md): an *intervention* is counted once per takeover segment (a run
of consecutive steps flagged ``intervention``); *autonomy* [%] is
:func:`drive_il.metrics.autonomy` (Bojarski et al. 2016, arXiv:1604.07316), the same
function the episode metrics use.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..metrics import autonomy
from ..types import EventKind, StepRecord

__all__ = ["OverlayHistory", "Marker", "DRIVER_CODES"]

#: Who drove, as stored in the history's ``driver`` buffer.
DRIVER_CODES = {"expert": 0, "learner": 1, "human": 2}


@dataclass(frozen=True, slots=True)
class Marker:
    """A point of interest on the bird's-eye panel.

    Attributes:
        x, y: [m] world frame.
        kind: "intervention" (expert took over), "human" (a human took over),
            "collision", "off_road".
        sim_time: [s].
    """

    x: float
    y: float
    kind: str
    sim_time: float


@dataclass(slots=True)
class OverlayHistory:
    """Ring buffers of the last ``capacity`` steps plus episode counters.

    Attributes:
        capacity: number of steps kept (>= 2).
        t, x, y, lateral_deviation, steer_exec, steer_expert, steer_learner: (capacity,) float64
            buffers (``steer_learner`` is NaN where no learner ran); read them through
            :meth:`recent`.
        intervention: (capacity,) bool.
        driver: (capacity,) int8 (:data:`DRIVER_CODES`, -1 for other names).
        count: steps recorded in the episode.
        interventions: takeover segments so far (rising edges of ``intervention``).
        human_interventions: segments driven by a human.
        collisions, off_road, lane_invasions: event counts.
        distance: path length driven [m].
        t0: sim time of the first step [s].
        dt: step [s].
        markers: intervention / event markers (the last 256).
    """

    capacity: int
    t: np.ndarray = field(init=False)
    x: np.ndarray = field(init=False)
    y: np.ndarray = field(init=False)
    lateral_deviation: np.ndarray = field(init=False)
    steer_exec: np.ndarray = field(init=False)
    steer_expert: np.ndarray = field(init=False)
    steer_learner: np.ndarray = field(init=False)
    intervention: np.ndarray = field(init=False)
    driver: np.ndarray = field(init=False)
    count: int = 0
    interventions: int = 0
    human_interventions: int = 0
    collisions: int = 0
    off_road: int = 0
    lane_invasions: int = 0
    distance: float = 0.0
    t0: float = 0.0
    dt: float = 0.05
    markers: list[Marker] = field(default_factory=list)
    _prev_intervention: bool = False
    _prev_human: bool = False

    def __post_init__(self) -> None:
        if self.capacity < 2:
            raise ValueError(f"OverlayHistory.capacity must be >= 2, got {self.capacity}")
        n = self.capacity
        for name in ("t", "x", "y", "lateral_deviation", "steer_exec", "steer_expert", "steer_learner"):
            setattr(self, name, np.zeros(n))
        self.intervention = np.zeros(n, dtype=bool)
        self.driver = np.zeros(n, dtype=np.int8)

    @classmethod
    def for_seconds(cls, seconds: float, dt: float) -> "OverlayHistory":
        """A history holding ``seconds`` [s] of steps of ``dt`` [s]."""
        h = cls(capacity=max(2, int(math.ceil(seconds / max(dt, 1e-3))) + 1))
        h.dt = dt
        return h

    def clear(self) -> None:
        """Forget everything (new episode)."""
        dt = self.dt
        self.__init__(capacity=self.capacity)  # type: ignore[misc]
        self.dt = dt

    def append(self, record: StepRecord) -> None:
        """Add one step."""
        ws = record.step.world_state
        ego = ws.ego
        i = self.count % self.capacity
        if self.count == 0:
            self.t0 = ws.sim_time
        else:
            j = (self.count - 1) % self.capacity
            self.distance += math.hypot(ego.x - self.x[j], ego.y - self.y[j])
        self.t[i] = ws.sim_time
        self.x[i] = ego.x
        self.y[i] = ego.y
        self.lateral_deviation[i] = record.lateral_deviation
        self.steer_exec[i] = record.executed.steer
        self.steer_expert[i] = record.expert.steer
        self.steer_learner[i] = record.learner.steer if record.learner is not None else math.nan
        self.intervention[i] = record.intervention
        self.driver[i] = DRIVER_CODES.get(record.driver, -1)
        human = record.driver == "human"
        if record.intervention and not self._prev_intervention:
            self.interventions += 1
            self._marker(Marker(ego.x, ego.y, "human" if human else "intervention", ws.sim_time))
        if human and not self._prev_human:
            self.human_interventions += 1
            if not record.intervention:
                self._marker(Marker(ego.x, ego.y, "human", ws.sim_time))
        self._prev_intervention = record.intervention
        self._prev_human = human
        for ev in record.events:
            if ev.kind is EventKind.COLLISION:
                self.collisions += 1
                self._marker(Marker(ego.x, ego.y, "collision", ws.sim_time))
            elif ev.kind is EventKind.OFF_ROAD:
                self.off_road += 1
                self._marker(Marker(ego.x, ego.y, "off_road", ws.sim_time))
            elif ev.kind is EventKind.LANE_INVASION:
                self.lane_invasions += 1
        self.count += 1

    def _marker(self, m: Marker) -> None:
        self.markers.append(m)
        if len(self.markers) > 256:
            del self.markers[: len(self.markers) - 256]

    def recent(self, name: str, n: int | None = None) -> np.ndarray:
        """The last ``n`` values (all kept when None) of buffer ``name``, oldest first."""
        k = min(self.count, self.capacity)
        if n is not None:
            k = min(k, n)
        buf = getattr(self, name)
        if k == 0:
            return buf[:0]
        end = self.count % self.capacity
        idx = (np.arange(end - k, end)) % self.capacity
        return buf[idx]

    @property
    def elapsed(self) -> float:
        """Driven time [s] (steps x dt, so a single step counts)."""
        if self.count == 0:
            return 0.0
        last = self.t[(self.count - 1) % self.capacity]
        return max(last - self.t0 + self.dt, self.dt)

    @property
    def autonomy(self) -> float:
        """Autonomy [%] (DAVE-2, :func:`drive_il.metrics.autonomy`); 100 before the first step."""
        return autonomy(self.interventions, self.elapsed)
