"""Scenarios that name several towns (issue 17): one town per episode, drawn from the
episode seed; evaluation per town and overall."""

from __future__ import annotations

import pytest

from drive_il.data.storage import EpisodeReader, list_episodes
from drive_il.errors import ConfigError, FieldError
from drive_il.expert.expert import Expert
from drive_il.rollout import CollectSpec, Drivers, RolloutSpec, collect
from drive_il.rollout.towns import episode_scenario, scenario_towns
from drive_il.scenario import load_scenario

pytest.importorskip("h5py")


def _sc(**kw):
    return load_scenario(None).replace(episode_seconds=3.0, **kw)


def test_the_town_is_drawn_from_the_episode_seed():
    sc = _sc(towns=("circuit", "grid"))
    towns = [episode_scenario(sc, s).town for s in range(40)]
    assert set(towns) == {"circuit", "grid"}
    assert towns == [episode_scenario(sc, s).town for s in range(40)]  # the same draw again
    assert all(episode_scenario(sc, s).towns == () for s in range(3))
    assert episode_scenario(_sc(), 3).town == "circuit"
    assert scenario_towns(sc) == ["circuit", "grid"] and scenario_towns(_sc()) == ["circuit"]


def test_bad_towns_lists_are_one_line():
    for towns, want in ((("procedural:abc",), "expected procedural:SEED"), (("procedural:7-3",), "empty range"),
                        (("grid", "grid"), "listed twice"), (("",), "expected town names")):
        with pytest.raises(FieldError, match=want) as e:
            _sc(towns=towns)
        assert "\n" not in str(e.value)


def test_collect_records_each_episodes_town_and_resumes(tmp_path):
    from drive_il.sim import make_simulator
    sc = _sc(towns=("circuit", "grid"))
    sim = make_simulator()
    spec = CollectSpec(episodes=6, first_seed=0, rollout=RolloutSpec())
    res = collect(sim, sc, tmp_path, CollectSpec(episodes=4, first_seed=0), Drivers(expert=Expert.for_scenario(sc)),
                  progress=False)
    res2 = collect(sim, sc, tmp_path, spec, Drivers(expert=Expert.for_scenario(sc)), progress=False)
    assert res2.skipped == [0, 1, 2, 3] and len(res2.results) == 2
    recorded = []
    for p in list_episodes(tmp_path):
        with EpisodeReader(p) as r:
            recorded.append(r.meta.town)
            assert r.meta.scenario_dict["towns"] == ["circuit", "grid"]
    assert recorded == [episode_scenario(sc, s).town for s in range(6)]
    assert set(recorded) == {"circuit", "grid"}
    assert [r.info.town for r in res.results] == recorded[:4]


def test_evaluation_reports_per_town(tmp_path):
    from drive_il.evaluation.evaluate import evaluate
    from drive_il.sim import make_simulator

    from .test_parallel import _untrained_checkpoint
    from drive_il.policies.driver import PolicyDriver
    sc = _sc(towns=("circuit", "grid"))
    learner = PolicyDriver.from_checkpoint(_untrained_checkpoint(tmp_path, sc), scenario=sc)
    rep = evaluate(make_simulator(), sc, learner=learner, expert=Expert.for_scenario(sc), seeds=1, episodes=6)
    towns = [e["town"] for e in rep.episodes]
    assert set(rep.per_town) == set(towns) == {"circuit", "grid"}
    for t, agg in rep.per_town.items():
        assert agg["episodes"] == towns.count(t)
    assert rep.aggregate["episodes"] == 6 and rep.town == "circuit, grid"
    # a test split with several towns
    test = _sc(test=_sc().test.__class__(towns=("grid", "circuit"))).test_scenario()
    assert test.towns == ("grid", "circuit") and test.town == "grid"


def test_an_unknown_town_in_a_list_stops_collect_before_any_episode(tmp_path):
    import os
    import subprocess
    import sys
    sc = tmp_path / "bad.toml"
    sc.write_text('name = "x"\ntowns = ["circuit", "NoSuchTown"]\n')
    env = {**os.environ, "SDL_VIDEODRIVER": "dummy", "DRIVE_IL_MAPS_DIR": str(tmp_path)}
    p = subprocess.run([sys.executable, "-m", "drive_il", "collect", str(sc), "--episodes", "2", "--out",
                        str(tmp_path / "d")], env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 2
    err = p.stderr.strip()
    assert len(err.splitlines()) == 1 and "unknown town 'NoSuchTown'" in err, err
    assert not (tmp_path / "d").exists() or list_episodes(tmp_path / "d") == []


def test_cycle_draw_takes_the_entries_in_turn():
    uniform = _sc(towns=("circuit", "grid", "procedural:0-9"))
    cycle = uniform.replace(town_draw="cycle")
    entries = [episode_scenario(cycle, s).town for s in range(100, 106)]
    # seed mod 3: 100 -> grid (1), 101 -> the range (2), 102 -> circuit (0), ...
    assert entries[0] == "grid" and entries[2] == "circuit" and entries[3] == "grid" and entries[5] == "circuit"
    assert entries[1].startswith("procedural:") and entries[4].startswith("procedural:")
    # a round of 6 consecutive seeds holds each entry twice, whatever the first seed
    for first in (0, 7, 100_000, 2_000_013):
        got = [episode_scenario(cycle, s).town for s in range(first, first + 6)]
        assert got.count("circuit") == got.count("grid") == 2
    # the range's town comes from the same rng as under the uniform draw
    for s in range(60):
        u, c = episode_scenario(uniform, s).town, episode_scenario(cycle, s).town
        if u.startswith("procedural:") and c.startswith("procedural:"):
            assert u == c
    # the uniform draw does not hold the entries in turn (seeds 0-5 of this list)
    assert [episode_scenario(uniform, s).town for s in range(100, 106)] != entries


def test_town_draw_is_checked_and_read_from_toml(tmp_path):
    p = tmp_path / "s.toml"
    p.write_text('name = "x"\ntowns = ["circuit", "grid"]\ntown_draw = "cycle"\n')
    assert load_scenario(p).town_draw == "cycle"
    p.write_text('name = "x"\ntowns = ["circuit", "grid"]\ntown_draw = "turns"\n')
    with pytest.raises(ConfigError, match=r"s\.toml: field 'town_draw'") as e:
        load_scenario(p)
    assert "\n" not in str(e.value) and "cycle" in str(e.value)


def test_training_weathers_are_drawn_per_episode_and_recorded(tmp_path):
    from drive_il.sim import make_simulator
    nocrash_train = ("ClearNoon", "WetNoon", "HardRainNoon", "ClearSunset")
    sc = _sc(towns=("circuit", "grid"), weathers=nocrash_train)
    drawn = [episode_scenario(sc, s) for s in range(40)]
    assert {d.weather for d in drawn} == set(nocrash_train)
    assert all(d.weathers == () and d.towns == () for d in drawn)
    assert [d.weather for d in drawn] == [episode_scenario(sc, s).weather for s in range(40)]
    # the town draw is the same with or without a weathers list (streams of their own)
    assert [d.town for d in drawn] == [episode_scenario(sc.replace(weathers=()), s).town for s in range(40)]
    # weathers alone (one town)
    one = _sc(weathers=("WetNoon", "ClearSunset"))
    assert {episode_scenario(one, s).weather for s in range(20)} == {"WetNoon", "ClearSunset"}
    assert episode_scenario(one, 0).town == "circuit"
    # the test variant drives its own weather, never the training list
    assert sc.test_scenario().weathers == () and sc.test_scenario("WetSunset").weather == "WetSunset"
    # recorded: each episode file names its drawn weather
    collect(make_simulator(), sc, tmp_path, CollectSpec(episodes=3, first_seed=0), Drivers(expert=Expert.for_scenario(sc)),
            progress=False)
    got = []
    for p in list_episodes(tmp_path):
        with EpisodeReader(p) as r:
            got.append(r.meta.weather)
    assert got == [episode_scenario(sc, s).weather for s in range(3)]


def _one_line_errors(tmp_path, build, cases, toml, toml_match):
    """Each (value, message) of ``cases`` raises a one-line FieldError from ``build``;
    the scenario TOML ``toml`` a one-line ConfigError naming the file."""
    for value, want in cases:
        with pytest.raises(FieldError, match=want) as e:
            build(value)
        assert "\n" not in str(e.value)
    p = tmp_path / "s.toml"
    p.write_text(toml)
    with pytest.raises(ConfigError, match=toml_match) as e:
        load_scenario(p)
    assert "\n" not in str(e.value)
    return p


def test_bad_weathers_lists_are_one_line(tmp_path):
    _one_line_errors(tmp_path, lambda w: _sc(weathers=w),
                     ((("Sunny",), r"field 'weathers': expected one of \[.*'ClearNoon'.*\], got 'Sunny'"),
                      (("WetNoon", "WetNoon"), "field 'weathers': 'WetNoon' is listed twice")),
                     'name = "x"\nweathers = ["ClearNoon", "Foggy"]\n', r"s\.toml: .*weathers.*Foggy")


def test_training_densities_are_drawn_per_episode_and_recorded(tmp_path):
    import dataclasses

    from drive_il.sim import make_simulator
    sc = _sc(towns=("circuit", "grid"), weathers=("ClearNoon", "WetNoon"))
    mixed = sc.replace(traffic=dataclasses.replace(sc.traffic, densities=("empty", "regular", "dense")))
    drawn = [episode_scenario(mixed, s) for s in range(40)]
    assert {d.traffic.density for d in drawn} == {"empty", "regular", "dense"}
    assert all(d.traffic.densities == () for d in drawn)
    assert [d.traffic.density for d in drawn] == [episode_scenario(mixed, s).traffic.density for s in range(40)]
    # town and weather draws are unchanged by a densities list (streams of their own)
    assert [(d.town, d.weather) for d in drawn] == [(e.town, e.weather) for e in
                                                    (episode_scenario(sc, s) for s in range(40))]
    # without a list every episode drives ``density``
    assert {episode_scenario(sc, s).traffic.density for s in range(5)} == {sc.traffic.density}
    # the test variant drives ``density``, never the training list
    t = mixed.test_scenario()
    assert t.traffic.densities == () and t.traffic.density == sc.traffic.density
    # recorded: each episode file (and its manifest line) names its drawn condition
    collect(make_simulator(), mixed, tmp_path, CollectSpec(episodes=3, first_seed=0),
            Drivers(expert=Expert.for_scenario(mixed)), progress=False)
    got = []
    for p in list_episodes(tmp_path):
        with EpisodeReader(p) as r:
            got.append(r.meta.density)
    want = [episode_scenario(mixed, s).traffic.density for s in range(3)]
    assert got == want
    import json
    lines = [json.loads(x) for x in (tmp_path / "manifest.jsonl").read_text().splitlines()]
    assert [x["density"] for x in sorted(lines, key=lambda x: x["episode"])] == want
    from collections import Counter

    from drive_il.data.tools import data_info, format_info
    info = data_info([tmp_path])
    assert {k: v[0] for k, v in info.densities.items()} == dict(Counter(want))
    line = next(x for x in format_info(info) if x.startswith("per traffic:"))
    assert all(f"{d}: {n} ep" in line for d, n in Counter(want).items())


def test_bad_densities_lists_are_one_line(tmp_path):
    import dataclasses
    traffic = _sc().traffic
    p = _one_line_errors(
        tmp_path, lambda d: dataclasses.replace(traffic, densities=d),
        ((("busy",), r"field 'densities': expected one of \['empty', 'regular', 'dense'\], got 'busy'"),
         (("dense", "dense"), "field 'densities': 'dense' is listed twice")),
        'name = "x"\n[traffic]\ndensities = ["regular", "rush"]\n', r"s\.toml: .*densities.*rush")
    p.write_text('name = "x"\n[traffic]\ndensities = ["regular", "dense"]\n')
    assert load_scenario(p).traffic.densities == ("regular", "dense")
