"""The Simulator protocol shared by the embedded world and the CARLA backend.

A simulator runs one episode at a time with a fixed time step ``dt``. Both worlds expose
the road network as a real ``carla.Map`` so the expert, the route planner, the metrics
and the overlay are written once against ``carla.Map`` / ``carla.Waypoint``.

    sim = make_simulator("embedded")
    step = sim.reset(scenario, seed=3)
    while ...:
        step = sim.step(control)
    sim.close()
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

from ..routing.episode import StartPose  # the start override is chosen with the route
from ..scenario import Scenario
from ..types import Control, Route, Step

if TYPE_CHECKING:  # pragma: no cover
    import carla

__all__ = ["Simulator", "StartPose"]


@runtime_checkable
class Simulator(Protocol):
    """One world, one ego vehicle, a fixed time step.

    Attributes:
        backend: "embedded" or "carla".
        map: the current town as a ``carla.Map`` (valid after ``reset``).
        scenario: the scenario of the current episode (None before ``reset``).
        route: the route of the current episode (None before ``reset``).
    """

    backend: str

    @property
    def map(self) -> "carla.Map": ...

    @property
    def scenario(self) -> Scenario | None: ...

    @property
    def route(self) -> Route | None: ...

    def reset(self, scenario: Scenario, seed: int, *, route: Route | None = None,
              start: StartPose | None = None) -> Step:
        """Start an episode.

        Args:
            scenario: where and how to drive.
            seed: the episode seed; the same scenario and seed give bit-identical
                frames and poses on the embedded world.
            route: use this route instead of planning one from the scenario.
            start: override the ego's start pose (default: the route's first waypoint,
                at rest).

        Returns:
            The first Step (no events).

        Raises:
            MapError: the town cannot be loaded.
            ScenarioError: the start is off the road or the goal unreachable.
        """
        ...

    def step(self, control: Control) -> Step:
        """Apply ``control`` for one ``dt`` and return the next Step."""
        ...

    def close(self) -> None:
        """Release everything (CARLA: restore asynchronous mode, destroy actors)."""
        ...
