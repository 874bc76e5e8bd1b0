"""When an episode ends: the termination rules of a rollout, in the order they are checked.

1. ``route_completed``: the ego's projection is within ``completion_margin`` [m] of the
   route's end and on one of its last three segments.
2. Failures, only when no takeover can rescue the car (no DAVE-2 takeover configured):
   ``collision`` and ``off_road`` (events of the step; not while a human drives the
   whole episode), ``off_route`` (|lateral deviation| > ``off_route_distance``).
3. ``stuck``: the ego has stayed below ``stuck_speed`` for ``stuck_seconds``. Steps at
   which the expert itself asks to stand (its target speed below ``stuck_speed``: a red
   light, a walker crossing, a queue behind a stopped vehicle) do not count: that is
   waiting, not being stuck (a real deadlock then ends as ``timeout``).
4. ``stopped``: the caller's ``stop`` predicate holds (tests, scripted drives).

Otherwise the episode runs into its step limit: ``timeout``. An exception ends it as
``interrupted`` (KeyboardInterrupt) or ``failed`` (lost backend, bug).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..types import Route, StepRecord

__all__ = ["TERMINATIONS", "TerminationRules", "Termination"]

#: Why an episode can end.
TERMINATIONS = ("route_completed", "timeout", "collision", "off_road", "off_route", "stuck", "stopped",
                "interrupted", "failed")


@dataclass(frozen=True)
class TerminationRules:
    """Settings of the termination rules (see the module docstring).

    Attributes:
        completion_margin: [m] before the route's end that counts as arrived.
        off_route_distance: [m] of |lateral deviation| that ends an episode without
            interventions.
        stuck_speed: [m/s] below which the ego counts as standing.
        stuck_seconds: [s] of standing that end the episode.
        stop: optional predicate on each StepRecord; True ends the episode ("stopped").

    Raises:
        ValueError: a distance or duration that is not > 0.
    """

    completion_margin: float = 1.5
    off_route_distance: float = 8.0
    stuck_speed: float = 0.1
    stuck_seconds: float = 20.0
    stop: Callable[[StepRecord], bool] | None = None

    def __post_init__(self) -> None:
        for name in ("completion_margin", "off_route_distance", "stuck_speed", "stuck_seconds"):
            v = getattr(self, name)
            if not v > 0:
                raise ValueError(f"TerminationRules.{name} must be > 0, got {v!r}")


class Termination:
    """The rules applied to one episode (holds the standing-time counter).

    Args:
        rules: the settings.
        route: the episode's route.
        dt: control step [s].
        rescuable: a takeover can rescue the car (failures do not end the episode).
        human: a human drives the whole episode (collisions and off-road do not end it).
    """

    def __init__(self, rules: TerminationRules, *, route: Route, dt: float, rescuable: bool,
                 human: bool) -> None:
        self.rules = rules
        self._end_s = route.length - rules.completion_margin
        self._last_segments = len(route.xy) - 3
        self._dt = dt
        self._fail = not rescuable
        self._crash = not rescuable and not human
        self._slow = 0

    def check(self, record: StepRecord, segment: int, speed_after: float) -> str | None:
        """The termination reason after this step, or None to go on.

        Args:
            record: the step just executed.
            segment: index of the route segment the ego was projected on.
            speed_after: ego speed after the step [m/s].
        """
        r = self.rules
        if record.route_progress >= self._end_s and segment >= self._last_segments:
            return "route_completed"
        if self._crash and record.collision:
            return "collision"
        if self._crash and record.off_road:
            return "off_road"
        if self._fail and abs(record.lateral_deviation) > r.off_route_distance:
            return "off_route"
        if abs(speed_after) >= r.stuck_speed:
            self._slow = 0
        elif not record.expert_target_speed < r.stuck_speed:  # NaN (unknown) counts
            self._slow += 1
        if self._slow * self._dt >= r.stuck_seconds:
            return "stuck"
        if r.stop is not None and r.stop(record):
            return "stopped"
        return None
