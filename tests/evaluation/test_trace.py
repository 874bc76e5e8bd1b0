"""The per-intervention trace on hand-built episodes."""

import math
from types import SimpleNamespace

import numpy as np
import pytest

from drive_il.evaluation.trace import InterventionTrace, classify, format_trace
from drive_il.types import (Control, Event, EventKind, Observation, RoadOption, Route, RouteWaypoint, Step,
                            StepRecord, VehicleState, WorldState)

ROUTE = Route(tuple(RouteWaypoint(x=float(i), y=0.0, yaw=0.0, is_junction=20 <= i < 30,
                                  command=RoadOption.LEFT if 20 <= i < 30 else RoadOption.LANEFOLLOW)
                    for i in range(60)), spacing=1.0)


def _rec(i, *, lat=0.0, inter=False, ls=0.0, es=0.0, events=(), cmd=None, speed=5.0):
    s = float(i) * 0.25
    c = cmd if cmd is not None else ROUTE.waypoints[int(s)].command
    step = Step(observation=Observation(frames={}, speed=speed, command=c),
                world_state=WorldState(ego=VehicleState(x=s, y=lat, yaw=0.0), route=ROUTE, dt=0.05))
    return StepRecord(step=step, executed=Control(), expert=Control(steer=es), learner=Control(steer=ls),
                      driver="expert" if inter else "learner", intervention=inter, lateral_deviation=lat,
                      heading_error=math.radians(-10.0) if inter else 0.0, route_progress=s, events=tuple(events))


def _run(records, threshold=1.0, episode=3):
    tr = InterventionTrace(threshold=threshold, window=0.5)
    tr.on_episode_start(SimpleNamespace(episode=episode, seed=77), None)
    for r in records:
        tr.on_step(r)
    tr.on_episode_end(None)
    return tr.rows


@pytest.mark.parametrize("ls,es,kind", [(-0.4, 0.0, "early-turn"), (0.0, 0.05, "other"), (0.5, 0.8, "under-steer"),
                                        (-0.9, -0.5, "over-steer"), (0.4, -0.5, "wrong-way"), (0.52, 0.5, "other"),
                                        (0.02, 0.3, "late-turn")])
def test_classify(ls, es, kind):
    assert classify(ls, es) == kind


def test_one_row_per_onset_with_window_means():
    # learner turns left early (steer -0.4) for 10 steps while the expert goes straight, then |lateral deviation| > 1 m
    recs = [_rec(i) for i in range(80)]
    recs += [_rec(i, lat=-0.1 * (i - 79), ls=-0.4, es=0.0) for i in range(80, 90)]
    recs += [_rec(i, lat=-1.05, inter=True, ls=-0.4, es=0.1) for i in range(90, 100)]   # one takeover
    recs += [_rec(i) for i in range(100, 130)]
    recs += [_rec(i, lat=1.2, inter=True, ls=0.5, es=0.8, cmd=RoadOption.RIGHT) for i in range(130, 135)]
    rows = _run(recs)
    assert len(rows) == 2
    a, b = rows
    assert a["episode"] == 3 and a["seed"] == 77 and a["s"] == 22.5 and a["junction"] is True
    assert a["cause"] == "lateral_deviation" and a["command"] == "LEFT" and a["kind"] == "early-turn"
    assert a["learner_steer"] == pytest.approx(-0.4) and a["expert_steer"] == pytest.approx(0.0)
    assert a["steer_diff"] == pytest.approx(-0.4) and a["heading_deg"] == pytest.approx(-10.0)
    assert a["speed"] == 5.0 and a["lateral_deviation"] == -1.05
    assert b["command"] == "RIGHT" and b["junction"] is False and b["commands"][-1] == "RIGHT"
    # window of 0.5 s = 10 steps before the onset: all LANEFOLLOW, learner 0.0
    assert b["learner_steer"] == pytest.approx(0.0) and b["kind"] == "other"


def test_event_causes():
    recs = [_rec(i) for i in range(10)]
    recs.append(_rec(10, events=(Event(EventKind.COLLISION, 10, 0.5),)))
    recs.append(_rec(11, lat=0.2, inter=True))
    recs += [_rec(i) for i in range(12, 20)]
    recs.append(_rec(20, events=(Event(EventKind.OFF_ROAD, 20, 1.0),)))
    recs.append(_rec(21, lat=0.5, inter=True))
    assert [r["cause"] for r in _run(recs)] == ["collision", "off_road"]


def test_episode_start_resets_history():
    tr = InterventionTrace(threshold=1.0, window=0.5)
    tr.on_episode_start(SimpleNamespace(episode=0, seed=1), None)
    for i in range(5):
        tr.on_step(_rec(i, lat=1.5, inter=True))
    tr.on_episode_start(SimpleNamespace(episode=1, seed=2), None)
    tr.on_step(_rec(0, lat=1.5, inter=True))     # a takeover from the first step is a new onset
    assert [(r["episode"], r["seed"]) for r in tr.rows] == [(0, 1), (1, 2)]


def test_format_trace():
    assert format_trace([]) == "no interventions"
    recs = [_rec(i, ls=-0.4) for i in range(80)] + [_rec(i, lat=-1.1, inter=True) for i in range(80, 85)]
    text = format_trace(_run(recs))
    lines = text.splitlines()
    assert lines[0].split()[:4] == ["ep", "s", "[m]", "cause"]
    assert "early-turn" in lines[1] and "LEFT" in lines[1] and "-1.10" in lines[1]
    assert lines[-3] == "by cause: lateral_deviation 1" and lines[-1] == "by command: LEFT 1"


def test_bad_arguments():
    with pytest.raises(ValueError, match="must be > 0"):
        InterventionTrace(threshold=0.0)
