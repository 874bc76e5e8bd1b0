"""The termination rules, checked on hand-made StepRecords."""

import numpy as np
import pytest

from drive_il.rollout import Termination, TerminationRules
from drive_il.types import (Control, Event, EventKind, Observation, Route, RouteWaypoint, Step, StepRecord,
                            VehicleState, WorldState)

ROUTE = Route(tuple(RouteWaypoint(x=float(s), y=0.0, yaw=0.0) for s in np.arange(0.0, 101.0, 1.0)))


def rec(s=10.0, lateral=0.0, events=(), frame=0):
    st = Step(Observation(frames={}, speed=5.0, frame=frame), WorldState(ego=VehicleState(x=s, y=lateral, yaw=0.0)))
    return StepRecord(step=st, executed=Control(), expert=Control(), route_progress=s, lateral_deviation=lateral,
                      events=tuple(Event(k, frame, 0.0) for k in events))


def term(rescuable=False, human=False, **rules):
    return Termination(TerminationRules(**rules), route=ROUTE, dt=0.05, rescuable=rescuable, human=human)


def test_route_completed_near_the_end_on_the_last_segments():
    t = term()
    # 101 route points: the last three segments are 98, 99, 100 m; margin 1.5 m
    assert t.check(rec(s=98.4), segment=98, speed_after=5.0) is None
    assert t.check(rec(s=98.6), segment=98, speed_after=5.0) == "route_completed"
    assert t.check(rec(s=98.6), segment=97, speed_after=5.0) is None
    assert t.check(rec(s=98.6), segment=40, speed_after=5.0) is None  # a loop passing near the end


@pytest.mark.parametrize("kind, reason", [(EventKind.COLLISION, "collision"), (EventKind.OFF_ROAD, "off_road")])
def test_failures_end_only_without_takeover_and_not_for_a_human(kind, reason):
    assert term().check(rec(events=(kind,)), 10, 5.0) == reason
    assert term(rescuable=True).check(rec(events=(kind,)), 10, 5.0) is None
    assert term(human=True).check(rec(events=(kind,)), 10, 5.0) is None
    assert term().check(rec(events=(EventKind.LANE_INVASION,)), 10, 5.0) is None


def test_off_route_beyond_the_distance():
    assert term().check(rec(lateral=7.9), 10, 5.0) is None
    assert term().check(rec(lateral=-8.1), 10, 5.0) == "off_route"
    assert term(human=True).check(rec(lateral=8.1), 10, 5.0) == "off_route"
    assert term(rescuable=True).check(rec(lateral=20.0), 10, 5.0) is None
    assert term(off_route_distance=2.0).check(rec(lateral=2.5), 10, 5.0) == "off_route"


def test_stuck_after_standing_for_the_duration():
    t = term(stuck_seconds=1.0)  # 20 steps of 0.05 s
    reasons = [t.check(rec(), 10, 0.05) for _ in range(20)]
    assert reasons == [None] * 19 + ["stuck"]
    t = term(stuck_seconds=1.0)  # moving once (step 10) restarts the count
    reasons = [t.check(rec(), 10, 1.0 if i == 10 else 0.05) for i in range(31)]
    assert reasons == [None] * 30 + ["stuck"]


def test_waiting_the_expert_asks_for_is_not_being_stuck():
    """Standing at a red light (the expert's target speed 0) does not count; standing
    while the expert wants to drive does, and so does an unknown (NaN) target."""
    import dataclasses
    t = term(stuck_seconds=1.0)
    waiting = dataclasses.replace(rec(), expert_target_speed=0.0)
    assert [t.check(waiting, 10, 0.0) for _ in range(200)] == [None] * 200
    driving = dataclasses.replace(rec(), expert_target_speed=6.0)
    assert [t.check(driving, 10, 0.0) for _ in range(20)] == [None] * 19 + ["stuck"]


def test_stop_predicate_ends_the_episode():
    t = term(stop=lambda r: r.step.observation.frame >= 3)
    assert [t.check(rec(frame=i), 10, 5.0) for i in range(4)] == [None, None, None, "stopped"]
