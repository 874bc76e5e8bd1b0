"""The NoCrash protocol: time limit, success rule, driving score, the condition grid, the
table and the report round trip (hand-built episodes; one small embedded run)."""

import json
import math
import pickle
from types import SimpleNamespace

import pytest

from drive_il.evaluation.nocrash import (DENSITIES, NEW_WEATHERS, ROUTES, TRAIN_WEATHERS, NoCrashObserver,
                                         NoCrashReport, NoCrashStop, condition_summary, conditions, format_table,
                                         markdown_table, nocrash_spec, outcome, run_nocrash, time_limit)
from drive_il.evaluation.report import nocrash_reports, write_report
from drive_il.metrics import Infractions
from drive_il.rollout import write_json
from drive_il.scenario import WEATHER_PRESETS, Scenario
from drive_il.scenario import TestConfig as SplitConfig  # not a pytest class
from drive_il.types import (Control, Event, EventKind, Observation, RoadOption, Route, RouteWaypoint, Step,
                            StepRecord, VehicleState, WorldState)

ROUTE = Route(tuple(RouteWaypoint(x=float(i), y=0.0, yaw=0.0, command=RoadOption.LANEFOLLOW) for i in range(101)),
              spacing=1.0)  # 100 m: time limit 0.1 km / 5 km/h x 3600 s/h + 20 s = 92 s


def _rec(t, events=(), dt=0.05):
    step = Step(observation=Observation(frames={}, speed=5.0, command=RoadOption.LANEFOLLOW, sim_time=t * dt),
                world_state=WorldState(ego=VehicleState(x=0.0, y=0.0, yaw=0.0), route=ROUTE, sim_time=t * dt, dt=dt))
    return StepRecord(step=step, executed=Control(), expert=Control(), events=tuple(events))


def _ev(kind, actor=-1):
    return Event(kind=kind, frame=0, sim_time=0.0, other_actor=actor)


def _episode(termination, completion, events_at=None, steps=100):
    """Drive a NoCrashObserver over ``steps`` hand-built records, events at given steps."""
    ob = NoCrashObserver()
    ob.on_episode_start(SimpleNamespace(), _rec(0).step)
    for t in range(steps):
        ob.on_step(_rec(t, (events_at or {}).get(t, ())))
    ob.on_episode_end(SimpleNamespace(termination=termination, summary={"route_completion": completion}))
    return ob.row["nocrash"]


def test_time_limit_is_the_carla08_nocrash_formula():
    # CARLA100.calculate_time_out: km / 5 km/h x 3600 + 20 s
    assert time_limit(400.0) == pytest.approx(308.0)
    assert time_limit(1000.0) == pytest.approx(740.0)
    assert time_limit(0.0) == pytest.approx(20.0)
    with pytest.raises(ValueError, match="route_length_m"):
        time_limit(-1.0)


def test_weathers_are_carla08_ids_1_3_6_8_and_10_14():
    assert TRAIN_WEATHERS == ("ClearNoon", "WetNoon", "HardRainNoon", "ClearSunset")
    assert NEW_WEATHERS == ("WetSunset", "SoftRainSunset")
    assert set(TRAIN_WEATHERS + NEW_WEATHERS) <= set(WEATHER_PRESETS)
    # CARLA 0.8 numbering: preset k is id k + 1 in WEATHER_PRESETS' order
    assert [WEATHER_PRESETS.index(w) + 1 for w in TRAIN_WEATHERS + NEW_WEATHERS] == [1, 3, 6, 8, 10, 14]


def test_success_rule():
    assert outcome("route_completed", Infractions()) == "success"
    assert outcome("route_completed", Infractions(red_light=3)) == "success"  # counted, not a failure
    assert outcome("route_completed", Infractions(vehicle=1)) == "vehicle"   # a collision on the last step
    assert outcome("collision", Infractions(vehicle=1)) == "vehicle"
    assert outcome("stopped", Infractions(walker=1)) == "walker"
    assert outcome("off_road", Infractions(layout=1)) == "layout"
    assert outcome("off_route", Infractions()) == "off_route"
    assert outcome("stopped", Infractions()) == "timeout"   # NoCrashStop's time limit
    assert outcome("timeout", Infractions()) == "timeout"   # the step-limit backstop


def test_observer_collision_fails_timeout_fails_red_light_succeeds_but_counts():
    ok = _episode("route_completed", 100.0, {10: (_ev(EventKind.RED_LIGHT, 7),), 50: (_ev(EventKind.RED_LIGHT, 9),)})
    assert ok["outcome"] == "success" and ok["success"] is True and ok["red_lights"] == 2
    assert ok["route_length"] == pytest.approx(100.0) and ok["time_limit"] == pytest.approx(92.0)
    assert ok["elapsed_s"] == pytest.approx(5.0)
    assert ok["driving_score"] == pytest.approx(100 * 0.7 ** 2)
    assert ok["red_lights_per_km"] == pytest.approx(2 / 0.1)
    crash = _episode("collision", 40.0, {30: (_ev(EventKind.COLLISION, 12),)}, steps=31)
    assert crash["outcome"] == "vehicle" and not crash["success"] and crash["vehicle"] == 1
    assert crash["driving_score"] == pytest.approx(40 * 0.6)
    late = _episode("stopped", 70.0)
    assert late["outcome"] == "timeout" and not late["success"]
    # a walker hit reported with a collision event on the same actor counts once, as a pedestrian
    ped = _episode("stopped", 20.0, {5: (_ev(EventKind.COLLISION, 3), _ev(EventKind.WALKER_COLLISION, 3))})
    assert ped["outcome"] == "walker" and ped["walker"] == 1 and ped["vehicle"] == 0
    assert ped["driving_score"] == pytest.approx(20 * 0.5)


def test_stop_rule_walker_collision_and_time_limit_and_pickles():
    stop = pickle.loads(pickle.dumps(NoCrashStop()))
    assert stop == NoCrashStop()
    assert not stop(_rec(0))
    assert stop(_rec(3, (_ev(EventKind.WALKER_COLLISION, 4),)))
    assert not stop(_rec(3, (_ev(EventKind.COLLISION, 4),)))  # the rollout's own rule ends those
    n = round(92.0 / 0.05)  # the step whose end reaches 92 s
    assert not stop(_rec(n - 2)) and stop(_rec(n - 1))


def test_spec_drives_alone_and_never_gets_stuck():
    sc = Scenario(route_length=400.0)
    spec = nocrash_spec("learner", sc)
    assert spec.interventions is None and spec.driver == "learner"
    assert math.isinf(spec.termination.stuck_seconds) and spec.termination.completion_margin == 2.0
    assert spec.max_steps * sc.dt >= time_limit(1600.0)
    assert nocrash_spec("expert", sc).driver == "expert"
    with pytest.raises(ValueError, match="driver"):
        nocrash_spec("mixture", sc)


def _row(outcome_, completion, length, *, vehicle=0, walker=0, layout=0, red=0, ds=None):
    return {"nocrash": {"outcome": outcome_, "route_completion": completion, "route_length": length,
                        "vehicle": vehicle, "walker": walker, "layout": layout, "red_lights": red,
                        "driving_score": ds if ds is not None else 0.0}}


def test_condition_summary_hand_built_episodes_exact():
    rows = [_row("success", 100.0, 500.0, red=1, ds=70.0),
            _row("vehicle", 50.0, 400.0, vehicle=1, ds=30.0),
            _row("walker", 25.0, 400.0, walker=1, ds=12.5),
            _row("timeout", 80.0, 500.0, ds=80.0)]
    s = condition_summary(rows)
    assert s["episodes"] == 4 and s["successes"] == 1 and s["success_rate"] == 25.0
    assert s["timeouts"] == 1 and s["vehicle"] == 1 and s["walker"] == 1 and s["layout"] == 0
    assert s["completed_km"] == pytest.approx(0.5 + 0.2 + 0.1 + 0.4)
    assert s["red_lights_per_km"] == pytest.approx(1 / 1.2)
    assert s["route_completion"] == pytest.approx(63.75)
    assert s["driving_score"] == pytest.approx((70 + 30 + 12.5 + 80) / 4)
    assert math.isnan(condition_summary([])["success_rate"])


def test_grid_is_25_routes_x_3_densities_x_2_weather_sets():
    sc = Scenario(name="nc", town="Town01", test=SplitConfig(town="Town02", seed=20000, route_length=400.0))
    grid = conditions(sc.test_scenario())
    assert len(grid) == 3 * (4 + 2)  # each weather of a set drives every route
    assert [c.density for c in grid[::6]] == list(DENSITIES)
    assert {(c.weather_set, c.weather) for c in grid} == ({("train", w) for w in TRAIN_WEATHERS}
                                                          | {("new", w) for w in NEW_WEATHERS})
    for c in grid:
        s = c.scenario
        assert (s.town, s.towns, s.seed, s.route_length) == ("Town02", (), 20000, 400.0)
        assert s.traffic.density == c.density and s.weather == c.weather
    assert ROUTES * len(grid) == 450
    two = conditions(sc.replace(towns=("Town01", "Town02")).test_scenario(), densities=("dense",),
                     weather_sets=("new",))
    assert [(c.town, c.scenario.town, c.weather) for c in two] == [("Town02", "Town02", "WetSunset"),
                                                                   ("Town02", "Town02", "SoftRainSunset")]
    with pytest.raises(ValueError, match="unknown density 'rush'"):
        conditions(sc.test_scenario(), densities=("rush",))
    with pytest.raises(ValueError, match="unknown weather set"):
        conditions(sc.test_scenario(), weather_sets=("night",))


def test_small_embedded_run_drives_the_same_routes_in_every_condition():
    from drive_il.expert.expert import Expert
    from drive_il.sim import make_simulator
    sc = Scenario(name="nc", town="grid", route_length=60.0, test=SplitConfig(seed=7))
    test = sc.test_scenario()
    sim = make_simulator("embedded")
    try:
        rep = run_nocrash(sim, test, learner=None, expert=Expert.for_scenario(test), driver="expert", routes=2,
                          densities=("empty", "regular"), weather_sets=("new",))
    finally:
        sim.close()
    assert len(rep.episodes) == 2 * 2 * 2 and len(rep.conditions) == 2
    by_seed: dict = {}
    for e in rep.episodes:
        by_seed.setdefault(e["seed"], set()).add(round(e["nocrash"]["route_length"], 6))
    assert sorted(by_seed) == [7, 8] and all(len(v) == 1 for v in by_seed.values())
    assert all(e["nocrash"]["outcome"] == "success" for e in rep.episodes)
    assert all(c["success_rate"] == 100.0 for c in rep.conditions)
    assert rep.policy == "expert" and rep.seed == 7


class _Reckless:
    """The expert's steer at full throttle: it never brakes (a learner that crashes)."""

    name = "learner"

    def __init__(self, scenario):
        from drive_il.expert.expert import Expert
        self.expert = Expert.for_scenario(scenario)

    def reset(self, step):
        self.expert.reset(step)

    def act(self, step):
        return Control(steer=self.expert.act(step).steer, throttle=1.0, brake=0.0)


def test_collisions_of_a_learner_are_traced_per_condition(tmp_path):
    from drive_il.evaluation.trace import format_collisions
    from drive_il.expert.expert import Expert
    from drive_il.sim import make_simulator
    test = Scenario(name="nc", town="grid", route_length=150.0, test=SplitConfig(seed=7)).test_scenario()
    sim = make_simulator("embedded")
    try:
        rep = run_nocrash(sim, test, learner=_Reckless(test), expert=Expert.for_scenario(test), routes=2,
                          densities=("dense",), weather_sets=("new",))
    finally:
        sim.close()
    failed = [e for e in rep.episodes if not e["nocrash"]["success"]]
    assert failed and len(rep.collisions) == len(failed)          # one row per collision; an episode ends at it
    for row, ep in zip(rep.collisions, failed):
        assert (row["town"], row["density"], row["weather"], row["seed"]) == ("grid", "dense", ep["weather"],
                                                                              ep["seed"])
        assert row["cause"] == ep["nocrash"]["outcome"]
        assert (row["other"] is None) == (row["cause"] == "layout")
    hits = [r for r in rep.collisions if r["cause"] == "vehicle"]
    assert hits and all(r["other"]["forward"] > 0 and r["geometry"] == "rear-end" for r in hits)
    assert all(r["speed"] > 10.0 and r["expert_target_speed"] < r["speed"] for r in hits)
    write_json(tmp_path / "eval" / "nocrash-nc-test.json", rep.to_dict())
    back = nocrash_reports(tmp_path)[0]
    assert [r["geometry"] for r in back.collisions] == [r["geometry"] for r in rep.collisions]
    assert "rear-end" in format_collisions(list(back.collisions))
    assert "Collisions (" in write_report(tmp_path).read_text()


class _Frozen:
    """A learner that never moves: every episode times out (NoCrash's time limit)."""

    name = "learner"

    def reset(self, step):
        pass

    def act(self, step):
        return Control(steer=0.0, throttle=0.0, brake=1.0)


def test_a_learner_that_times_out_gets_a_timeout_row(tmp_path):
    from drive_il.evaluation.trace import format_timeouts
    from drive_il.expert.expert import Expert
    from drive_il.sim import make_simulator
    test = Scenario(name="nc", town="grid", route_length=30.0, test=SplitConfig(seed=7)).test_scenario()
    sim = make_simulator("embedded")
    try:
        rep = run_nocrash(sim, test, learner=_Frozen(), expert=Expert.for_scenario(test), routes=1,
                          densities=("empty",), weather_sets=("new",))
    finally:
        sim.close()
    assert [e["nocrash"]["outcome"] for e in rep.episodes] == ["timeout"] * len(rep.episodes)
    assert rep.collisions == () and len(rep.timeouts) == len(rep.episodes)
    for row, ep in zip(rep.timeouts, rep.episodes):
        assert (row["town"], row["weather"], row["seed"]) == ("grid", ep["weather"], ep["seed"])
        assert row["cause"] == "timeout"
        # it stood from the start, the whole episode, where the expert would have driven on
        assert row["kind"] == "standstill" and row["s"] == 0.0
        assert row["stood_s"] == pytest.approx(ep["steps"] * test.dt, abs=2 * test.dt)
        assert row["expert_stop"] == "none" and row["expert_target_speed"] > 1.0 and row["ahead"] is None
        assert row["expert_moving"] > 90.0
    write_json(tmp_path / "eval" / "nocrash-nc-test.json", rep.to_dict())
    back = nocrash_reports(tmp_path)[0]
    assert back.timeouts == rep.timeouts
    assert "by expert_stop: none" in format_timeouts(list(back.timeouts))
    assert "Timeouts (" in write_report(tmp_path).read_text()


def _report():
    cond = {"town": "Town02", "density": "dense", "weather_set": "new", "weathers": list(NEW_WEATHERS),
            **condition_summary([_row("success", 100.0, 400.0, red=1, ds=70.0), _row("timeout", 50.0, 400.0, ds=50.0)])}
    empty = {"town": "Town02", "density": "empty", "weather_set": "new", "weathers": list(NEW_WEATHERS),
             **condition_summary([])}
    return NoCrashReport(scenario="nc-test", policy="expert", routes=1, route_length=400.0, seed=20000,
                         densities=("empty", "dense"), weather_sets={"new": NEW_WEATHERS},
                         conditions=(empty, cond), episodes=({"seed": 20000, "nocrash": {"outcome": "success"}},))


def test_table_rendering():
    text = format_table(_report())
    lines = text.splitlines()
    assert lines[0].startswith("NoCrash (expert) on nc-test: 1 route(s)")
    assert "success [%]" in lines[1] and "pedestrian coll." in lines[1] and "driving score" in lines[1]
    dense = next(line for line in lines if " dense " in line).split()
    # town traffic weathers success episodes timeouts vehicle pedestrian layout off-route red/km completion score
    assert dense == ["Town02", "dense", "new", "50.0", "2", "1", "0", "0", "0", "0", "1.67", "75.0", "60.0"]
    empty = next(line for line in lines if " empty " in line).split()
    assert empty[3] == "-" and empty[4] == "0"
    md = markdown_table(_report())
    assert "| Town02 | dense | new | 50.0 | 2 | 1 | 0 | 0 | 0 | 0 | 1.67 | 75.0 | 60.0 |" in md


def test_report_round_trip_and_report_md(tmp_path):
    rep = _report()
    write_json(tmp_path / "eval" / "nocrash-nc-test.json", rep.to_dict())
    back = nocrash_reports(tmp_path)
    assert len(back) == 1
    got = back[0]
    assert (got.scenario, got.policy, got.routes, got.seed, got.densities) == ("nc-test", "expert", 1, 20000,
                                                                                 ("empty", "dense"))
    assert got.weather_sets == {"new": NEW_WEATHERS}
    assert got.conditions[1] == rep.conditions[1]
    assert math.isnan(got.conditions[0]["success_rate"])  # NaN -> null -> NaN
    assert format_table(got) == format_table(rep)
    out = write_report(tmp_path)  # a directory with only NoCrash reports
    text = out.read_text()
    assert "## NoCrash: expert" in text and "| Town02 | dense | new | 50.0 |" in text
    with pytest.raises(ValueError, match="not a NoCrash report"):
        NoCrashReport.from_dict({"protocol": "interventions"})
    # a checkpoint's NoCrash report below the run directory is found too
    write_json(tmp_path / "round_002" / "model" / "best" / "eval" / "nocrash-nc-test.json", rep.to_dict())
    assert len(nocrash_reports(tmp_path)) == 2


def test_report_of_a_file_that_is_no_nocrash_report_is_one_line_error(tmp_path):
    from drive_il.errors import DataError
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "nocrash-x.json").write_text(json.dumps({"scenario": "x"}))
    with pytest.raises(DataError, match="nocrash-x.json: not a NoCrash report"):
        nocrash_reports(tmp_path)
