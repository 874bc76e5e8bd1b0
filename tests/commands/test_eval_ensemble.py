"""``drive-il eval --checkpoint A --checkpoint B``: the checkpoints drive as one ensemble
(the mean of their outputs), on both protocols and with workers; its reports get their own
names; members that cannot form an ensemble are one line, exit 2."""

import json

import pytest

from drive_il.cli import main

SCENARIO = """
name = "ens_tiny"
town = "grid"
route_length = 40.0

[test]
seed = 5
route_length = 40.0
episodes = 1
"""


@pytest.fixture
def setup(tmp_path):
    pytest.importorskip("torch")
    from drive_il.scenario import load_scenario
    from tests.rollout.test_parallel import _untrained_checkpoint
    p = tmp_path / "ens_tiny.toml"
    p.write_text(SCENARIO)
    sc = load_scenario(str(p))
    a = _untrained_checkpoint(tmp_path, sc, seed=0, run="a")
    b = _untrained_checkpoint(tmp_path, sc, seed=1, run="b")
    return p, a, b


def _figures(report):
    return [(e["disagreement_mean"], e["lateral_deviation_mean"]) for e in report["episodes"]]


def test_two_checkpoints_evaluate_as_one_ensemble(setup, tmp_path):
    p, a, b = setup
    reports = {}
    for name, cks, workers in (("a", [a], 1), ("ens", [a, b], 1), ("ens2", [a, b], 2)):
        argv = ["eval", "--scenario", str(p), "--seeds", "1", "--workers", str(workers)]
        for c in cks:
            argv += ["--checkpoint", str(c)]
        assert main(argv) == 0
        stem = "ens_tiny-test-grid-ClearNoon" + ("-ensemble2" if len(cks) > 1 else "")
        path = a / "eval" / f"{stem}.json"
        reports[name] = json.loads(path.read_text())
        path.unlink()
    assert reports["ens"]["checkpoint"] == f"{a}+{b}"
    assert reports["a"]["checkpoint"] == str(a)
    # the ensemble drives differently from its first member, the same with 1 and 2 workers
    assert _figures(reports["ens"]) != _figures(reports["a"])
    assert _figures(reports["ens"]) == _figures(reports["ens2"])
    assert not (b / "eval").exists()  # reports go to the first member's directory


def test_ensemble_on_the_nocrash_protocol(setup, capsys):
    p, a, b = setup
    assert main(["eval", str(p), "--protocol", "nocrash", "--checkpoint", str(a), "--checkpoint", str(b),
                 "--routes", "1", "--densities", "empty", "--weather-sets", "new"]) == 0
    data = json.loads((a / "eval" / "nocrash-ens_tiny-test-ensemble2.json").read_text())
    assert len(data["episodes"]) == 2
    assert f"{a}+{b}" in capsys.readouterr().out


def test_members_of_other_architectures_are_one_line_exit_2(setup, tmp_path, capsys):
    from drive_il.scenario import load_scenario
    from tests.rollout.test_parallel import _untrained_checkpoint
    p, a, _ = setup
    other = _untrained_checkpoint(tmp_path, load_scenario(str(p)), run="alvinn", preset="alvinn")
    assert main(["eval", "--scenario", str(p), "--seeds", "1", "--checkpoint", str(a),
                 "--checkpoint", str(other)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(other) in err[0] and "ensemble" in err[0], err
