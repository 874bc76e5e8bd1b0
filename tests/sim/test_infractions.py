"""The red-light rule (CARLA leaderboard's RunningRedLightTest) on hand-built cases."""

from __future__ import annotations

import math

import pytest

from drive_il.sim.infractions import RedLightRule, segments_cross
from drive_il.types import EventKind, TrafficLight, TrafficLightState

R, Y, G = TrafficLightState.RED, TrafficLightState.YELLOW, TrafficLightState.GREEN
LENGTH = 4.5  # ego length [m]; the rear segment runs from 1.8 m to 3.25 m behind the centre


def light(state: TrafficLightState, light_id: int = 7) -> TrafficLight:
    """A head controlling lane (1, -1) driving +x; stop line across it at x = 0
    (right edge, y = +1.75, first)."""
    return TrafficLight(light_id=light_id, x=0.0, y=2.5, yaw=0.0, state=state,
                        stop_line=((0.0, 1.75), (0.0, -1.75)), lanes=((1, -1),))


def lane_at(x: float, y: float):
    """Lane (1, -1) before the line, the junction's connecting lane (900, -1) after it,
    the oncoming lane (1, 1) at y < -1.75, lane (2, -1) at y > 1.75 (another approach)."""
    if y < -1.75:
        return (1, 1)
    if y > 1.75:
        return (2, -1)
    return (1, -1) if x < 0.0 else (900, -1)


def drive(states, *, x0=-15.0, x1=15.0, step=0.5, y=0.0, yaw=0.0, rule=None, lanes=lane_at):
    """Drive along y from x0 to x1; ``states(x)`` gives the light's state at each pose."""
    rule = rule or RedLightRule(length=LENGTH, lane_at=lanes)
    x = x0
    rule.reset(x, y, yaw, [light(states(x))])
    events = []
    k = 0
    while (x < x1) if step > 0 else (x > x1):
        x += step
        k += 1
        events += rule.update(x, y, yaw, [light(states(x))], k, 0.05 * k)
    return events


def test_crossing_on_red_is_one_event():
    ev = drive(lambda x: R)
    assert len(ev) == 1 and ev[0].kind is EventKind.RED_LIGHT and ev[0].other_actor == 7
    # reported when the rear segment reaches the line: centre 1.8 m past it
    assert ev[0].frame == math.ceil((15.0 + 1.8) / 0.5)


@pytest.mark.parametrize("state", [G, Y, TrafficLightState.OFF, TrafficLightState.UNKNOWN])
def test_crossing_on_green_yellow_or_off_is_no_event(state):
    assert drive(lambda x: state) == []


def test_stopping_before_the_line_is_no_event():
    assert drive(lambda x: R, x1=-0.5) == []       # centre stops 0.5 m before the line
    assert drive(lambda x: R, x1=1.5) == []        # front past the line, rear not


def test_crossing_another_lanes_line_is_no_event():
    assert drive(lambda x: R, y=2.5) == []                      # the lane beside, other approach
    assert drive(lambda x: R, x0=15.0, x1=-15.0, step=-0.5, y=-3.0, yaw=math.pi) == []  # oncoming
    assert drive(lambda x: R, lanes=lambda x, y: (5, -1)) == []  # a lane the light does not control


def test_wrong_way_over_the_line_is_no_event():
    # reversing heading: driving -x with yaw pi across the line on the controlled lane
    assert drive(lambda x: R, x0=15.0, x1=-15.0, step=-0.5, yaw=math.pi) == []


def test_turning_red_while_over_the_line_is_no_event():
    # green until the centre is 2.5 m past the line (rear segment on it), then red
    assert drive(lambda x: G if x < 2.5 else R) == []


def test_fast_car_jumping_over_the_line_is_caught():
    assert len(drive(lambda x: R, step=6.0)) == 1  # 120 m/s at 20 Hz


def test_each_crossing_counts_once_and_a_second_pass_again():
    rule = RedLightRule(length=LENGTH, lane_at=lane_at)
    assert len(drive(lambda x: R, rule=rule)) == 1
    assert len(drive(lambda x: R, rule=rule)) == 1  # reset, loop back, through again on red
    # standing with the rear segment on the line: one event only
    rule.reset(-15.0, 0.0, 0.0, [light(R)])
    ev = []
    for k in range(1, 100):
        x = min(-15.0 + 0.5 * k, 2.5)
        ev += rule.update(x, 0.0, 0.0, [light(R)], k, 0.05 * k)
    assert len(ev) == 1


def test_lights_far_away_are_skipped_and_no_lights_no_events():
    rule = RedLightRule(length=LENGTH, lane_at=lambda x, y: pytest.fail("no lane query expected"))
    rule.reset(100.0, 0.0, 0.0)
    for k in range(10):
        assert rule.update(100.0 + k, 0.0, 0.0, [light(R)], k, 0.0) == []
        assert rule.update(100.0 + k, 0.0, 0.0, [], k, 0.0) == []


def test_bad_length_is_one_line_error():
    with pytest.raises(ValueError, match="length"):
        RedLightRule(length=0.0, lane_at=lane_at)


def test_segments_cross():
    assert segments_cross(0, 0, 2, 0, 1, -1, 1, 1)
    assert not segments_cross(0, 0, 0.9, 0, 1, -1, 1, 1)
    assert segments_cross(0, 0, 1, 0, 1, -1, 1, 1)          # touching
    assert segments_cross(0, 0, 2, 0, 1, 0, 3, 0)           # collinear overlap
    assert not segments_cross(0, 0, 1, 0, 2, 0, 3, 0)       # collinear apart
    assert not segments_cross(0, 0, 2, 2, 0, 1, 1, 2)       # parallel
