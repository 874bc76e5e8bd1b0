"""DAgger rounds on disk: a killed run resumes from the last finished round; bad input."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

TINY = """
name = "tiny"
town = "circuit"
episode_seconds = 4.0
route_length = 60.0
target_speed = 6.0

[test]
seed = 10000
episodes = 1

[pipeline]
model = "alvinn"
bc_episodes = 1
dagger_rounds = 2
dagger_episodes = 1
epochs = 1
eval_seeds = 1
"""


def dagger_cmd(scenario: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "drive_il", "dagger", "--scenario", str(scenario), "--out", str(out),
            "--no-progress", *extra]


@pytest.mark.slow
def test_killed_run_resumes_from_last_finished_round(tmp_path):
    sc = tmp_path / "tiny.toml"
    sc.write_text(TINY)
    out = tmp_path / "run"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(dagger_cmd(sc, out, "--no-bc-matched"), cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    # kill -9 as soon as round 1 has started (round 0 finished, round 1 collecting or training)
    deadline = time.time() + 300
    r0 = out / "round_000" / "round.json"
    while time.time() < deadline and not (r0.exists() and (out / "round_001").exists()):
        if proc.poll() is not None:
            pytest.fail(f"dagger exited early: {proc.stdout.read()}")
        time.sleep(0.2)
    assert r0.exists(), "round 0 did not finish in time"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "round_002" / "round.json").exists()
    before = r0.read_text()
    mtime = r0.stat().st_mtime_ns
    cp = subprocess.run(dagger_cmd(sc, out, "--no-bc-matched"), cwd=REPO, env=env, capture_output=True,
                        text=True, timeout=600)
    assert cp.returncode == 0, cp.stdout + cp.stderr
    assert "round 0: finished earlier" in cp.stdout
    assert r0.read_text() == before and r0.stat().st_mtime_ns == mtime  # not redone
    rounds = [json.loads((out / f"round_{i:03d}" / "round.json").read_text()) for i in range(3)]
    assert [r["round"] for r in rounds] == [0, 1, 2]
    assert rounds[1]["beta"] == pytest.approx(0.5) and rounds[2]["beta"] == pytest.approx(0.25)
    assert rounds[2]["total_labelled_frames"] > rounds[0]["total_labelled_frames"]
    # the report reads what the run wrote
    cp = subprocess.run([sys.executable, "-m", "drive_il", "report", str(out)], cwd=REPO, capture_output=True,
                        text=True, timeout=120)
    assert cp.returncode == 0, cp.stderr
    text = (out / "report.md").read_text()
    assert "| 2 |" in text and (out / "plots" / "rounds.png").exists()
    assert "## Where the expert took over" in text


def _one_line_town_error(tmp_path, test_toml: str, town: str) -> None:
    """``drive-il dagger --test-scenario`` with a test file naming an unavailable town:
    exit 2 and one line naming it."""
    sc = tmp_path / "s.toml"
    sc.write_text(TINY + '\n')
    t = tmp_path / "t.toml"
    t.write_text(test_toml)
    cp = subprocess.run(dagger_cmd(sc, tmp_path / "run", "--test-scenario", str(t), "--maps-dir", str(tmp_path)),
                        cwd=REPO, capture_output=True, text=True, timeout=120)
    assert cp.returncode == 2, cp.stdout + cp.stderr
    lines = cp.stderr.strip().splitlines()
    assert len(lines) == 1 and town in lines[0]


def test_unavailable_test_town_is_one_line(tmp_path):
    _one_line_town_error(tmp_path, 'name = "t"\ntown = "NoSuchTown"\n', "NoSuchTown")


def test_test_scenario_file_is_driven_with_its_test_table(tmp_path):
    """``--test-scenario FILE`` drives FILE's [test] town (as ``drive-il eval FILE``), not
    its training town: an unavailable [test] town is the one-line error."""
    _one_line_town_error(tmp_path, 'name = "t"\ntown = "circuit"\n\n[test]\ntown = "NoSuchTestTown"\n',
                         "NoSuchTestTown")


def test_run_directory_of_another_configuration_is_refused(tmp_path):
    from drive_il.dagger.loop import run_dagger
    from drive_il.errors import ConfigError
    from drive_il.pipeline import PipelineConfig
    from drive_il.scenario import Scenario

    out = tmp_path / "run"
    out.mkdir()
    (out / "dagger.json").write_text(json.dumps({"scenario": {"name": "other"}}))
    sc = Scenario()
    with pytest.raises(ConfigError, match="made with another configuration"):
        run_dagger(scenario=sc, test_scenario=sc.test_scenario(), config=PipelineConfig(), out_dir=out,
                   make_sim=lambda: pytest.fail("the simulator must not be built"), make_expert=lambda s: None)


def test_gated_filter_keeps_round0_and_takeovers_only():
    from drive_il.dagger.loop import _gated_filter
    assert _gated_filter({"dagger_round": None, "intervention": False})
    assert _gated_filter({"dagger_round": 0, "intervention": False})
    assert not _gated_filter({"dagger_round": 2, "intervention": False})
    assert _gated_filter({"dagger_round": 2, "intervention": True})


#: The "dagger" record of a dagger.json written before issue 15 (DaggerConfig's names).
LEGACY = {"model": "alvinn", "rounds": 2, "bc_episodes": 2, "episodes_per_round": 1,
          "schedule": {"kind": "exponential", "beta": 0.5, "rounds": 2}, "mixing": "step", "mode": "mixture",
          "gate_threshold": 0.6, "warm_start": True, "epochs": 2, "dagger_epochs": 1, "eval_seeds": 1,
          "eval_episodes": None, "intervention_threshold": 1.0, "eval_weathers": [], "bc_matched": True,
          "seed": 0, "max_train_frames": None}


def test_a_run_recorded_before_the_pipeline_config_still_reads_and_resumes():
    from drive_il.config import to_dict
    from drive_il.dagger.loop import _same_run
    from drive_il.pipeline import PipelineConfig, pipeline_from_record

    new = PipelineConfig(model="alvinn", dagger_rounds=2, bc_episodes=2, dagger_episodes=1, epochs=2,
                         dagger_epochs=1, eval_seeds=1, seed=0)
    assert pipeline_from_record(LEGACY) == new
    assert pipeline_from_record(to_dict(new)) == new
    test = {"test": {"episodes": 2}}
    old_pl = {"model": "alvinn", "bc_episodes": 2, "dagger_rounds": 2, "dagger_episodes": 1}
    old = {"scenario": {"name": "s", "pipeline": old_pl}, "test_scenario": test, "dagger": LEGACY}
    now = {"scenario": {"name": "s", "pipeline": to_dict(pipeline_from_record(old_pl))}, "test_scenario": test,
           "dagger": to_dict(new)}
    assert _same_run(old, now)
    assert _same_run({**old, "dagger": {**LEGACY, "eval_episodes": 2}}, now)  # drive-il run recorded it
    assert not _same_run(old, {**now, "dagger": to_dict(PipelineConfig(dagger_rounds=3, seed=0))})
