"""``drive-il eval SCENARIO --protocol nocrash``: a tiny expert run on the whole grid, the
stored JSON, ``drive-il report`` showing the table, and bad input as one line, exit 2."""

import json

import pytest

from drive_il.cli import main

SCENARIO = """
name = "nc_tiny"
town = "grid"
route_length = 30.0

[test]
seed = 3
route_length = 30.0
"""


@pytest.fixture
def scenario(tmp_path):
    p = tmp_path / "nc_tiny.toml"
    p.write_text(SCENARIO)
    return p


def test_expert_one_route_on_the_whole_grid_then_report(scenario, tmp_path, capsys):
    out = tmp_path / "expert" / "eval" / "nocrash-nc_tiny-test.json"
    assert main(["eval", str(scenario), "--protocol", "nocrash", "--expert", "--routes", "1", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "NoCrash (expert) on nc_tiny-test: 1 route(s)" in text
    assert f"wrote {out} (drive-il report {out.parent.parent} shows the table)" in text
    lines = [line.split() for line in text.splitlines() if line.startswith("grid ")]
    assert [(r[1], r[2]) for r in lines] == [(d, w) for d in ("empty", "regular", "dense") for w in ("train", "new")]
    assert all(r[3] == "100.0" for r in lines)  # the expert reaches every goal of an empty grid town
    assert [r[4] for r in lines] == ["4", "2"] * 3  # 4 training weathers, 2 new ones, 1 route each
    data = json.loads(out.read_text())
    assert data["protocol"] == "nocrash" and data["policy"] == "expert" and len(data["episodes"]) == 18
    assert {e["seed"] for e in data["episodes"]} == {3}  # the same route in every condition
    assert main(["report", str(out.parent.parent)]) == 0
    shown = capsys.readouterr().out
    assert "NoCrash (expert) on nc_tiny-test" in shown and "grid  dense    new" in shown
    assert "## NoCrash: expert" in (out.parent.parent / "report.md").read_text()


@pytest.mark.parametrize("argv,message", [
    (["--protocol", "bogus", "--expert"], "--protocol: expected one of interventions, nocrash, offline, got 'bogus'"),
    (["--protocol", "nocrash", "--expert", "--densities", "empty,rush"],
     "--densities: expected a comma-separated subset of empty,regular,dense, got 'empty,rush'"),
    (["--protocol", "nocrash", "--expert", "--weather-sets", "night"], "--weather-sets: expected"),
    (["--protocol", "nocrash"], "give --checkpoint RUN (a learner) or --expert, exactly one"),
    (["--protocol", "nocrash", "--expert", "--routes", "0"], "--routes: expected an integer >= 1, got 0"),
    (["--expert"], "--checkpoint: required"),
])
def test_bad_input_is_one_line_exit_2(scenario, capsys, argv, message):
    assert main(["eval", str(scenario), *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_unknown_density_in_the_scenario_is_one_line_exit_2(tmp_path, capsys):
    p = tmp_path / "bad.toml"
    p.write_text(SCENARIO + '\n[traffic]\ndensity = "rush"\n')
    assert main(["eval", str(p), "--protocol", "nocrash", "--expert", "--routes", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "density" in err[0] and "rush" in err[0]


@pytest.mark.parametrize("name,town", [("nocrash_town01", "Town01"), ("nocrash_town02", "Town02")])
def test_shipped_nocrash_scenarios_load(name, town):
    from drive_il.evaluation.nocrash import conditions
    from drive_il.scenario import load_scenario
    sc = load_scenario(name)
    test = sc.test_scenario()
    assert sc.town == "Town01" and test.town == town and test.traffic.density == "regular"
    assert sc.lights.enabled and test.route_length >= 300.0
    assert len(conditions(test)) == 18


def test_shipped_town02_scenario_drives_town02_with_lights(maps_dir):
    from drive_il.evaluation.nocrash import run_nocrash
    from drive_il.expert.expert import Expert
    from drive_il.scenario import load_scenario
    from drive_il.sim import make_simulator
    test = load_scenario("nocrash_town02").test_scenario().replace(route_length=40.0)  # short routes: a fast test
    sim = make_simulator("embedded", maps_dir=str(maps_dir))
    try:
        rep = run_nocrash(sim, test, learner=None, expert=Expert.for_scenario(test), driver="expert", routes=1,
                          densities=("empty",), weather_sets=("new",))
    finally:
        sim.close()
    assert [c["town"] for c in rep.conditions] == ["Town02"] and len(rep.episodes) == 2
    assert {e["drawn_town"] for e in rep.episodes} == {"Town02"}
    assert all(e["nocrash"]["route_length"] >= 40.0 for e in rep.episodes)


def test_learner_checkpoint_same_figures_for_1_and_2_workers(scenario, tmp_path, capsys):
    pytest.importorskip("torch")
    from drive_il.scenario import load_scenario
    from tests.rollout.test_parallel import _untrained_checkpoint
    ckpt = _untrained_checkpoint(tmp_path, load_scenario(str(scenario)))
    got = {}
    for workers in (1, 2):
        out = tmp_path / f"w{workers}.json"
        assert main(["eval", str(scenario), "--protocol", "nocrash", "--checkpoint", str(ckpt), "--routes", "1",
                     "--densities", "empty", "--weather-sets", "new", "--workers", str(workers),
                     "--out", str(out), "--trace"]) == 0
        data = json.loads(out.read_text())
        got[workers] = ([(e["seed"], e["weather"], e["termination"], e["nocrash"]) for e in data["episodes"]],
                        data["conditions"], data["collisions"])
        text = capsys.readouterr().out
        assert "NoCrash (" + str(ckpt) in text
        assert f"wrote {out}\n" in text + "\n" and "shows the table" not in text   # report does not read w1.json
        # --trace: one line per collision (the untrained policy leaves the road) and the counts
        failed = [e for e in data["episodes"] if not e["nocrash"]["success"]]
        assert len(data["collisions"]) == len(failed)
        assert ("by geometry: " in text) if failed else ("no collisions" in text)
    assert got[1] == got[2]
    assert len(got[1][0]) == 2 and got[1][0][0][3]["route_length"] > 0
    # drive-il report prints the collisions' counts under the table
    (tmp_path / "run" / "eval").mkdir(parents=True)
    (tmp_path / "run" / "eval" / "nocrash-nc_tiny-test.json").write_text((tmp_path / "w1.json").read_text())
    assert main(["report", str(tmp_path / "run")]) == 0
    shown = capsys.readouterr().out
    assert got[1][2] and "collisions by geometry: " in shown     # the untrained policy leaves the road
