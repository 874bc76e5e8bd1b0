import math

import numpy as np
import pytest

from drive_il.metrics import METRIC_KEYS, EpisodeTrace, aggregate, autonomy, count_onsets, per_km, summarize


def trace(n=200, dt=0.05, lateral=None, inter=None, coll=None, learner=True, speed=10.0):
    x = np.arange(n) * speed * dt
    lat = np.zeros(n) if lateral is None else np.asarray(lateral, float)
    z = np.zeros(n, bool)
    return EpisodeTrace(
        dt=dt, route_length=float(x[-1]) + 0.0, x=x, y=np.zeros(n), lateral_deviation=lat,
        heading_error=np.zeros(n), route_progress=x, expert_steer=np.zeros(n),
        learner_steer=(np.full(n, 0.1) if learner else np.full(n, np.nan)), executed_steer=np.zeros(n),
        intervention=(z if inter is None else np.asarray(inter, bool)),
        collision=(z if coll is None else np.asarray(coll, bool)), off_road=z, lane_invasion=z,
        speed=np.full(n, speed))


def test_onsets():
    assert count_onsets(np.array([0, 1, 1, 0, 1, 0, 0, 1], bool)) == 3
    assert count_onsets(np.array([1, 1], bool)) == 1
    assert count_onsets(np.array([], bool)) == 0


def test_autonomy_dave2_formula():
    # 2 interventions in 600 s: (1 - 12/600) * 100 = 98 %
    assert autonomy(2, 600.0) == pytest.approx(98.0)
    assert autonomy(0, 10.0) == 100.0
    assert autonomy(10, 6.0) == 0.0  # clipped


def test_per_km_guard():
    assert per_km(3, 1500.0) == pytest.approx(2.0)
    assert per_km(1, 0.0) == pytest.approx(1000.0)


def test_summarize_hand_built_episode():
    n = 400  # 20 s at 10 m/s = 199.5 m
    lat = np.zeros(n)
    lat[100:120] = 1.5
    lat[300:310] = -2.0
    inter = np.zeros(n, bool)
    inter[100:130] = True
    inter[300:320] = True
    coll = np.zeros(n, bool)
    coll[305] = True
    s = summarize(trace(n, lateral=lat, inter=inter, coll=coll))
    dist = (n - 1) * 0.5
    assert s["distance"] == pytest.approx(dist)
    assert s["interventions"] == 2
    assert s["autonomy"] == pytest.approx((1 - 2 * 6 / (n * 0.05)) * 100)
    assert s["interventions_per_km"] == pytest.approx(2 / (dist / 1000))
    assert s["lateral_deviation_max"] == pytest.approx(2.0)
    assert s["lateral_deviation_mean"] == pytest.approx((20 * 1.5 + 10 * 2.0) / n)
    assert s["distance_to_first_intervention"] == pytest.approx(100 * 0.5)
    assert s["collisions"] == 1 and s["driving_score"] == pytest.approx(100 * 0.6)
    assert s["disagreement_mean"] == pytest.approx(0.1)
    assert s["route_completion"] == pytest.approx(100.0)


def test_no_learner_gives_nan_disagreement_and_aggregate():
    a = summarize(trace(100, learner=False))
    assert math.isnan(a["disagreement_mean"])
    inter = np.zeros(100, bool)
    inter[50:60] = True
    b = summarize(trace(100, inter=inter))
    agg = aggregate([a, b])
    assert agg["episodes"] == 2 and agg["interventions"] == 1
    assert agg["autonomy"] == pytest.approx((1 - 6 / 10.0) * 100)
    assert agg["distance"] == pytest.approx(a["distance"] + b["distance"])


def test_trace_length_mismatch_raises():
    t = trace(10)
    with pytest.raises(ValueError, match="lateral_deviation has length 3"):
        EpisodeTrace(dt=0.05, route_length=1, x=t.x, y=t.y, lateral_deviation=np.zeros(3),
                     heading_error=t.heading_error, route_progress=t.route_progress, expert_steer=t.expert_steer,
                     learner_steer=t.learner_steer, executed_steer=t.executed_steer, intervention=t.intervention,
                     collision=t.collision, off_road=t.off_road, lane_invasion=t.lane_invasion)


def test_report_verdict_is_pareto():
    from drive_il.evaluation.report import verdict
    d = {"autonomy": 100.0, "interventions_per_km": 0.0, "lateral_deviation_mean": 0.05}
    assert "ahead of" in verdict(d, {**d, "lateral_deviation_mean": 0.2}, weather="w")
    assert "level with" in verdict(d, dict(d), weather="w")
    assert "behind" in verdict(d, {**d, "autonomy": 100.0, "lateral_deviation_mean": 0.01}, weather="w")
    assert "mixed" in verdict(d, {**d, "autonomy": 99.0, "lateral_deviation_mean": 0.01}, weather="w")


def test_metric_keys_are_summary_and_aggregate_keys():
    s = summarize(trace(50))
    a = aggregate([s, s])
    assert len(set(METRIC_KEYS)) == len(METRIC_KEYS)
    assert set(METRIC_KEYS) <= set(s) and set(METRIC_KEYS) <= set(a)


def test_trace_from_step_row_columns():
    from drive_il.types import Control, Observation, Step, StepRecord, VehicleState, WorldState, step_columns
    rows = []
    for i in range(20):
        ego = VehicleState(x=0.5 * i, y=0.0, yaw=0.0, speed=10.0)
        st = Step(Observation(frames={}, speed=10.0, frame=i), WorldState(ego=ego))
        rows.append(StepRecord(step=st, executed=Control(0.2), expert=Control(0.1), learner=Control(0.2),
                               driver="expert" if 5 <= i < 10 else "learner", intervention=5 <= i < 10,
                               lateral_deviation=0.1 * i, route_progress=0.5 * i, in_junction=i > 15).row())
    tr = EpisodeTrace.from_columns(step_columns(rows), dt=0.05, route_length=20.0)
    assert tr.steps == 20 and tr.in_junction.sum() == 4
    s = summarize(tr)
    assert s["interventions"] == 1 and s["distance"] == pytest.approx(9.5)
    assert s["lateral_deviation_max"] == pytest.approx(1.9) and s["disagreement_mean"] == pytest.approx(0.1)
    assert s["route_completion"] == pytest.approx(100 * 9.5 / 20)
    empty = EpisodeTrace.from_columns(step_columns([]), dt=0.05, route_length=20.0)
    assert summarize(empty)["steps"] == 0 and empty.in_junction.shape == (0,)


def test_old_metric_names_are_upgraded_on_read():
    from drive_il.metrics import upgrade_keys
    old = {"eval": {"ClearNoon": {"autonomy": 97.0, "drift_mean": 0.1, "drift_p95": 0.3, "drift_max": 0.9}},
           "interventions": [{"cause": "drift", "drift": -1.05, "kind": "early-turn"}, {"cause": "collision"}]}
    new = upgrade_keys(old)
    assert new["eval"]["ClearNoon"] == {"autonomy": 97.0, "lateral_deviation_mean": 0.1,
                                        "lateral_deviation_p95": 0.3, "lateral_deviation_max": 0.9}
    assert new["interventions"][0] == {"cause": "lateral_deviation", "lateral_deviation": -1.05, "kind": "early-turn"}
    assert new["interventions"][1] == {"cause": "collision"}
    assert upgrade_keys(new) == new  # today's data passes unchanged
    assert old["eval"]["ClearNoon"]["drift_mean"] == 0.1  # a copy: the input is not changed


def test_leaderboard_driving_score_exact():
    from drive_il.metrics import PENALTIES, driving_score
    assert PENALTIES == {"walker": 0.50, "vehicle": 0.60, "layout": 0.65, "red_light": 0.70}
    assert driving_score(100.0) == 100.0
    assert driving_score(80.0, vehicle=1, walker=1, layout=1, red_light=2) == pytest.approx(80 * 0.6 * 0.5 * 0.65 * 0.49)
    assert driving_score(50.0, red_light=1) == pytest.approx(35.0)
    # without walker, layout and red-light infractions: bit-identical to the score before them
    for c in (0.0, 37.123456789, 100.0):
        for v in range(4):
            assert driving_score(c, vehicle=v) == c * (0.6 ** v)
    with pytest.raises(ValueError, match="red_light must be a count >= 0"):
        driving_score(10.0, red_light=-1)


def test_leaderboard_infractions_per_km_uses_completed_route():
    from drive_il.metrics import infractions_per_km
    assert infractions_per_km(2, 50.0, 2000.0) == pytest.approx(2.0)    # 2 / (0.5 x 2 km)
    assert infractions_per_km(1, 0.0, 2000.0) == pytest.approx(1000.0)  # max(..., 0.001)


def test_count_infractions_from_step_events():
    from drive_il.metrics import Infractions, count_infractions
    from drive_il.types import Event, EventKind

    def ev(kind, actor=-1):
        return Event(kind=kind, frame=0, sim_time=0.0, other_actor=actor)
    steps = [(), (ev(EventKind.COLLISION, 5),), (ev(EventKind.RED_LIGHT, 2), ev(EventKind.LANE_INVASION)),
             (ev(EventKind.WALKER_COLLISION, 9), ev(EventKind.COLLISION, 9)), (ev(EventKind.OFF_ROAD),),
             (ev(EventKind.RED_LIGHT, 3),)]
    got = count_infractions(steps)
    assert got == Infractions(vehicle=1, walker=1, layout=1, red_light=2)
    assert got.collisions == 3
    assert count_infractions([e for s in steps for e in s]) == Infractions(vehicle=2, walker=1, layout=1, red_light=2)
    assert got + got == Infractions(2, 2, 2, 4)


def test_summarize_counts_red_lights_and_walker_collisions():
    n = 200
    base = trace(n)
    red = np.zeros(n, bool)
    red[[20, 120]] = True
    walker = np.zeros(n, bool)
    walker[150] = True
    from dataclasses import replace
    s = summarize(replace(base, red_light=red, walker_collision=walker))
    assert s["red_lights"] == 2 and s["walker_collisions"] == 1
    assert s["red_lights_per_km"] == pytest.approx(2 / (s["distance"] / 1000))
    assert s["driving_score"] == pytest.approx(100 * 0.7 ** 2 * 0.5)
    plain = summarize(base)
    assert plain["red_lights"] == 0 and plain["driving_score"] == 100.0
    agg = aggregate([s, plain, {k: v for k, v in plain.items() if k not in ("red_lights", "walker_collisions")}])
    assert agg["red_lights"] == 2 and agg["walker_collisions"] == 1
    with pytest.raises(ValueError, match="red_light has length 3"):
        replace(base, red_light=np.zeros(3, bool))


def test_trace_reads_red_light_and_walker_columns():
    n = 10
    cols = {k: np.zeros(n) for k in ("x", "y", "lateral_deviation", "heading_error", "route_progress", "expert_steer",
                                     "learner_steer", "executed_steer", "speed")}
    cols.update({k: np.zeros(n, bool) for k in ("intervention", "collision", "off_road", "lane_invasion")})
    old = EpisodeTrace.from_columns(cols, dt=0.05, route_length=10.0)  # a file without the columns
    assert not old.red_light.any() and old.walker_collision.shape == (n,)
    red = np.zeros(n, bool)
    red[4] = True
    tr = EpisodeTrace.from_columns({**cols, "red_light": red, "walker_collision": red}, dt=0.05, route_length=10.0)
    s = summarize(tr)
    assert s["red_lights"] == 1 and s["walker_collisions"] == 1


def test_collision_kind_names_walker_before_vehicle_before_layout():
    from drive_il.metrics import Infractions
    assert Infractions().collision_kind is None and Infractions(red_light=3).collision_kind is None
    assert Infractions(layout=1).collision_kind == "layout"
    assert Infractions(vehicle=1, layout=1).collision_kind == "vehicle"
    assert Infractions(vehicle=2, walker=1, layout=1).collision_kind == "walker"
