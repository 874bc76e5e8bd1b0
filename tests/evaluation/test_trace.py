"""The per-intervention trace on hand-built episodes."""

import math
from types import SimpleNamespace

import pytest

from drive_il.evaluation.trace import (InterventionTrace, classify, classify_speed, collision_counts,
                                      collision_geometry, format_collisions, format_timeouts, format_trace,
                                      timeout_counts)
from drive_il.types import (ActorState, Control, Event, EventKind, Observation, RoadOption, Route, RouteWaypoint,
                            Step, StepRecord, VehicleState, WalkerState, WorldState)

ROUTE = Route(tuple(RouteWaypoint(x=float(i), y=0.0, yaw=0.0, is_junction=20 <= i < 30,
                                  command=RoadOption.LEFT if 20 <= i < 30 else RoadOption.LANEFOLLOW)
                    for i in range(60)), spacing=1.0)


def _rec(i, *, lat=0.0, inter=False, ls=0.0, es=0.0, events=(), cmd=None, speed=5.0, actors=(), walkers=(),
         yaw=0.0, lv=math.nan, ev=math.nan, stop=None):
    s = float(i) * 0.25
    c = cmd if cmd is not None else ROUTE.waypoints[int(s)].command
    step = Step(observation=Observation(frames={}, speed=speed, command=c),
                world_state=WorldState(ego=VehicleState(x=s, y=lat, yaw=yaw), actors=tuple(actors),
                                       walkers=tuple(walkers), route=ROUTE, dt=0.05))
    return StepRecord(step=step, executed=Control(), expert=Control(steer=es), learner=Control(steer=ls),
                      driver="expert" if inter else "learner", intervention=inter, lateral_deviation=lat,
                      heading_error=math.radians(-10.0) if inter else 0.0, route_progress=s, events=tuple(events),
                      learner_target_speed=lv, expert_target_speed=ev, expert_stop_reason=stop,
                      in_junction=ROUTE.waypoints[int(s)].is_junction)


def _run(records, threshold=1.0, episode=3, collisions=False, termination=None):
    tr = InterventionTrace(threshold=threshold, window=0.5, collisions=collisions)
    tr.on_episode_start(SimpleNamespace(episode=episode, seed=77), None)
    for r in records:
        tr.on_step(r)
    tr.on_episode_end(None if termination is None else SimpleNamespace(termination=termination))
    assert not tr._hist       # no frames travel back from a worker
    return tr.rows


@pytest.mark.parametrize("ls,es,kind", [(-0.4, 0.0, "early-turn"), (0.0, 0.05, "other"), (0.5, 0.8, "under-steer"),
                                        (-0.9, -0.5, "over-steer"), (0.4, -0.5, "wrong-way"), (0.52, 0.5, "other"),
                                        (0.02, 0.3, "late-turn")])
def test_classify(ls, es, kind):
    assert classify(ls, es) == kind


@pytest.mark.parametrize("lv,ev,kind", [(4.1, 0.0, "no-stop"), (0.3, 0.29, "no-stop"), (0.29, 0.0, "same"),
                                        (4.1, 0.3, "faster"), (4.5, 3.4, "faster"), (4.4, 3.4, "same"),
                                        (2.0, 3.5, "slower"), (0.0, 3.0, "slower"), (None, 3.0, "-"),
                                        (3.0, None, "-")])
def test_classify_speed(lv, ev, kind):
    assert classify_speed(lv, ev) == kind


def test_classify_speed_bad_margin():
    for bad in (-0.1, math.nan, math.inf):
        with pytest.raises(ValueError, match="margin must be a finite number >= 0"):
            classify_speed(1.0, 2.0, margin=bad)


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


@pytest.mark.parametrize("fwd,right,yaw,geometry", [
    (4.6, 0.0, 0.0, "rear-end"), (4.0, -1.1, -147.0, "head-on"), (4.0, 1.0, 213.0, "head-on"),
    (3.0, 2.5, 90.0, "crossing"), (4.3, 2.2, 34.0, "rear-end"), (0.5, 2.0, 0.0, "side"),
    (-4.5, 0.3, 0.0, "from-behind"), (2.0, 0.5, None, "walker-ahead"), (0.0, -1.5, None, "walker-side"),
    (-2.0, 0.0, None, "walker-behind")])
def test_collision_geometry(fwd, right, yaw, geometry):
    assert collision_geometry(fwd, right, yaw) == geometry


def test_collision_rows_say_what_was_hit_and_from_where():
    # ego at (x, 0) heading +x (yaw 0); a car standing 4 m ahead and 1 m to the left of it, facing back at us
    # (a car waiting at its stop line after a wide turn), then a walker on the right
    car = ActorState(actor_id=7, x=24.0, y=-1.0, yaw=math.radians(-150.0), speed=0.0)
    recs = [_rec(i, ls=0.3, es=0.6, lv=4.4, ev=3.4) for i in range(80)]
    recs.append(_rec(80, ls=0.3, es=0.6, actors=(car,), lv=4.5, ev=3.5,
                     events=(Event(EventKind.COLLISION, 80, 4.0, other_actor=7),
                             Event(EventKind.LANE_INVASION, 80, 4.0))))
    recs += [_rec(i) for i in range(81, 100)]
    ped = WalkerState(actor_id=900, x=27.0, y=1.5, yaw=0.0, speed=1.2)
    recs.append(_rec(100, actors=(car,), walkers=(ped,), events=(Event(EventKind.COLLISION, 100, 5.0, other_actor=900),
                                                                  Event(EventKind.WALKER_COLLISION, 100, 5.0,
                                                                        other_actor=900))))
    recs.append(_rec(101, events=(Event(EventKind.OFF_ROAD, 101, 5.05),)))
    recs.append(_rec(102, events=(Event(EventKind.RED_LIGHT, 102, 5.1, other_actor=3),)))
    assert _run(recs) == []                      # no interventions, no collision rows by default
    rows = _run(recs, collisions=True)
    assert [r["cause"] for r in rows] == ["vehicle", "walker", "layout"]
    car_row, ped_row, lay_row = rows
    assert car_row["s"] == 20.0 and car_row["junction"] is True and car_row["command"] == "LEFT"
    assert car_row["geometry"] == "head-on" and car_row["kind"] == "under-steer"
    assert car_row["other"] == {"actor": 7, "forward": 4.0, "right": -1.0, "rel_yaw_deg": -150.0, "speed": 0.0}
    # means over the 0.5 s window (10 steps) and the contact's step
    assert car_row["learner_target_speed"] == pytest.approx(4.41) and car_row["expert_target_speed"] == 3.41
    assert car_row["speed_kind"] == "same"                   # 1.0 m/s apart: not more than SPEED_MARGIN
    assert ped_row["geometry"] == "walker-ahead" and ped_row["other"]["actor"] == 900
    assert ped_row["other"]["rel_yaw_deg"] is None and ped_row["other"]["speed"] == 1.2
    assert ped_row["learner_target_speed"] is None           # no speed head in its window
    assert ped_row["speed_kind"] == "-"
    assert lay_row["geometry"] == "-" and lay_row["other"] is None
    # an actor the world state does not list: the row stays, without "other"
    ghost = [_rec(0, events=(Event(EventKind.COLLISION, 0, 0.0, other_actor=55),))]
    assert _run(ghost, collisions=True)[0]["other"] is None
    text = format_collisions([{**r, "town": "Town02", "density": "dense", "weather": "WetSunset"} for r in rows])
    lines = text.splitlines()
    assert lines[0].split()[:4] == ["town", "traffic", "weather", "route"]
    first = lines[1].split()
    assert first[:3] == ["Town02", "dense", "WetSunset"] and "head-on" in first and "+4.0/-1.0" in first
    assert first[-6:] == ["+4.0/-1.0", "-150", "0.0", "4.4", "3.4", "-"]   # no stop reasons recorded
    assert first[first.index("head-on") + 1:first.index("head-on") + 3] == ["under-steer", "same"]
    assert "speed kind" in lines[0]
    assert lines[-6] == "by cause: vehicle 1, walker 1, layout 1"
    assert lines[-5].startswith("by geometry: ") and "head-on 1" in lines[-5]
    assert "standing" not in lines[-5]                  # the head-on car stands, but it is no rear-end
    assert lines[-3:-1] == ["by speed_kind: - 2, same 1", "by expert_stop: - 3"]
    # rear-ends: into a standing vehicle (< 0.3 m/s), into a moving one, the hit actor unknown
    rear = [{"cause": "vehicle", "geometry": "rear-end", "kind": "other", "command": "LANEFOLLOW",
             "other": {"speed": v}} for v in (0.0, 0.29, 0.3, 4.0)]
    rear.append({"cause": "vehicle", "geometry": "rear-end", "kind": "other", "command": "LANEFOLLOW", "other": None})
    rear.append({"cause": "vehicle", "geometry": "head-on", "kind": "other", "command": "LANEFOLLOW",
                 "other": {"speed": 0.0}})
    assert collision_counts(rear)[1] == "by geometry: rear-end 5 (2 into a standing vehicle, < 0.3 m/s), head-on 1"
    assert format_collisions([]) == "no collisions" and collision_counts([]) == []


def test_a_rear_end_the_expert_would_have_stopped_for_is_a_no_stop():
    # the expert stops (target 0) for a standing car 3 m ahead; the learner keeps its 4 m/s and
    # steers 0.05 less than the expert: a steering "kind" of its own, but the speed is what failed
    car = ActorState(actor_id=4, x=13.0, y=0.0, yaw=0.0, speed=0.0)
    recs = [_rec(i, ls=0.15, es=0.21, lv=4.0, ev=0.0, stop="vehicle" if i > 34 else "walker") for i in range(40)]
    recs.append(_rec(40, ls=0.15, es=0.21, lv=4.0, ev=0.0, actors=(car,), stop="vehicle",
                     events=(Event(EventKind.COLLISION, 40, 2.0, other_actor=4),)))
    (row,) = _run(recs, collisions=True)
    assert row["geometry"] == "rear-end" and row["kind"] == "under-steer" and row["speed_kind"] == "no-stop"
    assert row["expert_stop"] == "vehicle"           # most of the window: "walker" before
    assert collision_counts([row])[3:5] == ["by speed_kind: no-stop 1", "by expert_stop: vehicle 1"]
    assert format_collisions([row]).splitlines()[1].split()[-1] == "vehicle"


def test_an_intervention_after_a_collision_says_what_was_hit():
    car = ActorState(actor_id=3, x=4.0, y=0.0, yaw=0.0, speed=2.0)
    recs = [_rec(i) for i in range(10)]
    recs.append(_rec(10, actors=(car,), events=(Event(EventKind.COLLISION, 10, 0.5, other_actor=3),)))
    recs.append(_rec(11, lat=0.2, inter=True))
    (row,) = _run(recs)                          # the takeover's row (the step after the contact's)
    assert row["cause"] == "collision" and row["geometry"] == "rear-end" and row["other"]["actor"] == 3


def _stand_episode(ahead=(), stop=""):
    """5 m/s for 1 s; stood 2 s; 5 m/s for 1 s; stood 6 s at s = 15 m (the longest; the
    learner asks for 0 m/s, the expert for 4); 5 m/s for 0.5 s."""
    recs = [_rec(i) for i in range(20)]
    recs += [_rec(20, speed=0.0, lv=1.0, ev=0.0, stop="vehicle") for _ in range(40)]
    recs += [_rec(i) for i in range(21, 41)]
    recs += [_rec(60, speed=0.1, lv=0.0, ev=4.0, stop=stop, actors=ahead) for _ in range(120)]
    recs += [_rec(i) for i in range(61, 71)]
    return recs


def test_a_timeout_row_describes_the_longest_standstill():
    recs = _stand_episode()
    assert _run(recs, termination="stopped") == []                        # collision rows only on request
    (row,) = _run(recs, collisions=True, termination="stopped")
    assert row["cause"] == "timeout" and row["kind"] == "standstill" and row["termination"] == "stopped"
    assert row["s"] == 15.0 and row["command"] == "LANEFOLLOW" and row["junction"] is False
    assert row["stood_s"] == pytest.approx(6.0) and row["seed"] == 77 and row["episode"] == 3
    assert row["learner_target_speed"] == 0.0 and row["expert_target_speed"] == 4.0
    assert row["expert_stop"] == "none" and row["ahead"] is None                 # the learner stood for nothing
    assert row["expert_moving"] == 100.0
    # what stood ahead: the nearest vehicle or walker in the corridor (30 m long, 2.5 m either side)
    far = ActorState(actor_id=1, x=15.0 + 20.0, y=0.5, yaw=0.0, speed=0.0)
    near = ActorState(actor_id=2, x=15.0 + 8.0, y=-1.0, yaw=0.0, speed=0.1)
    aside = ActorState(actor_id=3, x=15.0 + 3.0, y=4.0, yaw=0.0, speed=0.0)
    behind = ActorState(actor_id=4, x=15.0 - 5.0, y=0.0, yaw=0.0, speed=0.0)
    beyond = ActorState(actor_id=5, x=15.0 + 31.0, y=0.0, yaw=0.0, speed=0.0)
    (row,) = _run(_stand_episode((far, near, aside, behind, beyond), stop="vehicle"), collisions=True,
                  termination="timeout")
    assert row["ahead"] == {"forward": 8.0, "right": -1.0, "speed": 0.1, "walker": False}
    assert row["expert_stop"] == "vehicle"
    text = format_timeouts([{**row, "town": "Town02", "density": "dense", "weather": "WetSunset"}])
    lines = text.splitlines()
    assert lines[0].split()[:5] == ["town", "traffic", "weather", "route", "s"]
    assert lines[1].split() == ["Town02", "dense", "WetSunset", "77", "15.0", "standstill", "6.0", "LANEFOLLOW", "no",
                                "0.0", "4.0", "100", "vehicle", "+8.0/-1.0", "0.1"]
    assert lines[2:] == ["by kind: standstill 1", "by expert_stop: vehicle 1", "by command: LANEFOLLOW 1"]
    assert format_timeouts([]) == "no timeouts" and timeout_counts([]) == []
    assert format_trace([row]) == "no interventions"                           # printed by format_timeouts


def test_no_timeout_row_for_a_goal_a_collision_or_leaving_the_route():
    recs = _stand_episode()
    for term in ("route_completed", "off_route"):
        assert _run(recs, collisions=True, termination=term) == []
    car = ActorState(actor_id=7, x=30.0, y=0.0, yaw=0.0, speed=0.0)
    hit = recs + [_rec(200, actors=(car,), events=(Event(EventKind.COLLISION, 200, 10.0, other_actor=7),))]
    assert [r["cause"] for r in _run(hit, collisions=True, termination="collision")] == ["vehicle"]
    # never stood: too slow for the time limit
    (row,) = _run([_rec(i, speed=0.5) for i in range(50)], collisions=True, termination="stopped")
    assert row["kind"] == "slow" and row["s"] is None and row["stood_s"] == 0.0 and row["ahead"] is None
    assert "slow" in format_timeouts([row]).splitlines()[1].split()
    # a short last standstill: "slow", at the standstill
    (row,) = _run([_rec(i) for i in range(20)] + [_rec(20, speed=0.0) for _ in range(30)], collisions=True,
                  termination="stopped")
    assert row["kind"] == "slow" and row["stood_s"] == pytest.approx(1.5) and row["s"] == 5.0
    assert row["learner_target_speed"] is None and row["expert_stop"] == "-" and row["expert_moving"] is None
    # the expert moving for a part of the standstill (a light turned green): its share
    half = [_rec(20, speed=0.0, ev=0.0 if k < 30 else 3.0, stop="red_light" if k < 30 else "") for k in range(40)]
    (row,) = _run(half, collisions=True, termination="stopped")
    assert row["expert_moving"] == 25.0 and row["expert_stop"] == "red_light"
    assert row["expert_target_speed"] == pytest.approx(0.75)
