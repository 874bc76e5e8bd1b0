"""CLI wiring: help works, bad input is one line and a non-zero exit."""

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def run(*args, cwd=REPO):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=cwd, timeout=120)


def test_run_sim_help():
    cp = run("run_sim.py", "--help")
    assert cp.returncode == 0 and "SCENARIO" in cp.stdout.upper() and "--backend" in cp.stdout


def test_main_job_defaults_to_unseen_procedural_towns():
    """`python run_sim.py` with no argument trains on procedural towns and tests on other
    seeds; every other command's default stays scenarios/default.toml."""
    from drive_il.cli import build_parser
    from drive_il.maps import expand_towns
    from drive_il.scenario import load_scenario

    parser = build_parser()
    assert parser.parse_args(["dagger"]).scenario is None
    sc = load_scenario(parser.parse_args(["run"]).scenario)
    test = sc.test_scenario()
    train_towns = {t for spec in sc.towns for t in expand_towns(spec)}
    test_towns = {t for spec in test.towns for t in expand_towns(spec)}
    assert train_towns and test_towns and not train_towns & test_towns
    assert all(t.startswith("procedural:") for t in train_towns | test_towns)
    assert sc.test.unseen_weathers and not set(sc.test.unseen_weathers) & {sc.weather, *sc.test.weathers}


def test_drive_il_help_lists_commands():
    cp = run("-m", "drive_il", "--help")
    assert cp.returncode == 0
    for cmd in ("drive", "collect", "eval", "dagger", "report", "bench", "routes"):
        assert cmd in cp.stdout


@pytest.mark.parametrize("content, fragment", [
    ('twon = "circuit"\n', "field 'twon': unknown key"),
    ('[pipeline]\nbeta = 2.0\n', "field 'pipeline.beta'"),
])
def test_bad_scenario_is_one_line(tmp_path, content, fragment):
    p = tmp_path / "typo.toml"
    p.write_text(content)
    cp = run("-m", "drive_il", "drive", str(p))
    assert cp.returncode == 2
    lines = cp.stderr.strip().splitlines()
    assert len(lines) == 1 and str(p) in lines[0] and fragment in lines[0]


def test_dagger_bad_arguments(tmp_path):
    cp = run("-m", "drive_il", "dagger", "--rounds", "0", "--out", str(tmp_path / "r"))
    assert cp.returncode == 2 and "--rounds" in cp.stderr and len(cp.stderr.strip().splitlines()) == 1
    cp = run("-m", "drive_il", "dagger", "--beta", "1.5", "--out", str(tmp_path / "r"))
    assert cp.returncode == 2 and "--beta" in cp.stderr and len(cp.stderr.strip().splitlines()) == 1
    cp = run("-m", "drive_il", "dagger", "--seed", "-3", "--out", str(tmp_path / "r"))
    assert cp.returncode == 2 and "--seed" in cp.stderr and len(cp.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_missing_maps_directory_is_one_line(tmp_path):
    cp = run("run_sim.py", "scenarios/town01_train_town02_test.toml", "--maps-dir", str(tmp_path / "nope"),
             "--out", str(tmp_path / "run"))
    assert cp.returncode == 2
    lines = cp.stderr.strip().splitlines()
    assert len(lines) == 1 and "--maps-dir" in lines[0] and "nope" in lines[0], cp.stderr


def test_unreachable_carla_host_is_one_line(tmp_path):
    cp = run("run_sim.py", "--backend", "carla", "--port", "1", "--timeout", "1", "--out", str(tmp_path / "run"))
    assert cp.returncode == 2
    lines = cp.stderr.strip().splitlines()
    assert len(lines) == 1 and "localhost:1" in lines[0], cp.stderr


def test_dagger_seed_sets_the_run_seed_not_the_test_routes(tmp_path, monkeypatch):
    import drive_il.dagger.loop as loop
    from drive_il.cli import main

    seen = {}

    def fake_run_dagger(*, scenario, test_scenario, config, **kw):
        seen.update(seed=scenario.seed, config_seed=config.seed, test_seed=test_scenario.seed)

    monkeypatch.setattr(loop, "run_dagger", fake_run_dagger)
    assert main(["dagger", "--seed", "1000", "--out", str(tmp_path / "r"), "--no-progress"]) == 0
    from drive_il.scenario import load_scenario
    default = load_scenario(None)
    assert seen == {"seed": 1000, "config_seed": 1000, "test_seed": default.test_scenario().seed}


def _pipeline(*argv):
    from drive_il.cli import build_parser
    from drive_il.commands.dagger import pipeline_config
    from drive_il.scenario import load_scenario
    return pipeline_config(build_parser().parse_args(list(argv)), load_scenario(None))[0]


@pytest.mark.parametrize("command", ["dagger", "run"])
def test_pipeline_flags_are_generated_with_the_old_spellings_as_aliases(command):
    from drive_il.pipeline import PipelineConfig
    from drive_il.scenario import load_scenario

    base = load_scenario(None).pipeline
    assert _pipeline(command) == base
    old = _pipeline(command, "--rounds", "2", "--episodes-per-round", "5", "--schedule", "linear",
                    "--threshold", "0.8", "--no-warm-start", "--no-bc-matched")
    new = _pipeline(command, "--dagger-rounds", "2", "--dagger-episodes", "5", "--beta-schedule", "linear",
                    "--intervention-threshold", "0.8", "--no-warm-start", "--no-bc-matched")
    assert old == new == PipelineConfig(**{**vars(base), "dagger_rounds": 2, "dagger_episodes": 5,
                                           "beta_schedule": "linear", "intervention_threshold": 0.8,
                                           "warm_start": False, "bc_matched": False})
    every = _pipeline(command, "--model", "alvinn", "--expert", "cautious", "--bc-episodes", "3", "--beta", "0.3",
                      "--mixing", "episode", "--mode", "gated", "--gate-threshold", "0.7", "--epochs", "2",
                      "--dagger-epochs", "1", "--eval-seeds", "2", "--eval-episodes", "4", "--seed", "7",
                      "--max-train-frames", "100", "--warm-start", "--bc-matched")
    assert every == PipelineConfig(model="alvinn", expert="cautious", bc_episodes=3, dagger_rounds=base.dagger_rounds,
                                   dagger_episodes=base.dagger_episodes, beta_schedule=base.beta_schedule, beta=0.3,
                                   mixing="episode", mode="gated", gate_threshold=0.7, warm_start=True, epochs=2,
                                   dagger_epochs=1, eval_seeds=2, eval_episodes=4, intervention_threshold=1.0,
                                   bc_matched=True, seed=7, max_train_frames=100)


def test_epochs_alone_trains_every_round_with_it():
    assert _pipeline("dagger", "--epochs", "3").dagger_epochs is None  # as before issue 15
    assert _pipeline("dagger", "--epochs", "3", "--dagger-epochs", "1").dagger_epochs == 1
    assert _pipeline("dagger").dagger_epochs == 2  # the default scenario's [pipeline]


# ---------------------------------------------------------------- issue 16: one line, exit 2
def _one_line(cp, *fragments):
    lines = cp.stderr.strip().splitlines()
    assert cp.returncode == 2 and len(lines) == 1, (cp.returncode, cp.stderr)
    for f in fragments:
        assert f in lines[0], (f, lines[0])
    return lines[0]


@pytest.mark.parametrize("argv, fragment", [
    (["drive", "--max-steps", "-5"], "--max-steps -5"),
    (["drive", "--seed", "-3"], "--seed -3"),
    (["drive", "--backend", "carla", "--port", "99999"], "--port 99999"),
    (["drive", "--backend", "carla", "--tm-port", "0"], "--tm-port 0"),
    (["serve", "--port", "99999"], "--port 99999"),
    (["serve", "--port", "0"], "--port 0"),
    (["serve", "--stream-port", "70000"], "--stream-port 70000"),
])
def test_bad_numbers_are_one_line(argv, fragment):
    _one_line(run("-m", "drive_il", *argv), fragment)


def test_serve_on_a_port_in_use_is_one_line():
    import socket
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        cp = run("-m", "drive_il", "serve", "--host", "127.0.0.1", "--port", str(port), "--town", "circuit")
        _one_line(cp, f"127.0.0.1:{port}", "in use")


def test_closed_stdout_pipe_ends_quietly(tmp_path):
    """``drive-il data info D | head -0``: the reader is gone before the first write."""
    import os
    from drive_il.data.synthetic import write_synthetic_episodes
    d = tmp_path / "data"
    write_synthetic_episodes(d, 2, steps=5, n_cameras=1, height=8, width=12)
    r, w = os.pipe()
    os.close(r)  # nobody will read: the first flush of stdout fails with EPIPE
    try:
        cp = subprocess.run([sys.executable, "-m", "drive_il", "data", "info", str(d)], stdout=w,
                            stderr=subprocess.PIPE, text=True, cwd=REPO, timeout=120)
    finally:
        os.close(w)
    assert cp.returncode == 141, cp.stderr
    assert cp.stderr == "", cp.stderr


def test_stdout_closed_after_one_line_ends_quietly(tmp_path):
    """``drive-il data info D | head -1`` on output longer than the pipe's buffer."""
    from drive_il.data.synthetic import write_synthetic_episodes
    dirs = []
    for k in range(3):
        dirs.append(tmp_path / f"d{k}")
        write_synthetic_episodes(dirs[-1], 1, steps=3, n_cameras=1, height=8, width=12)
    # the same directories many times over: more output than a pipe holds (64 KiB)
    proc = subprocess.Popen([sys.executable, "-m", "drive_il", "data", "info", *map(str, dirs * 400)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO)
    proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) in (0, 141), err
    assert "Traceback" not in err and "BrokenPipe" not in err, err


def test_scenario_name_escaping_the_run_directory_is_one_line(tmp_path):
    p = tmp_path / "evil.toml"
    p.write_text('name = "../../../x"\ntown = "circuit"\n')
    _one_line(run("-m", "drive_il", "eval", "--checkpoint", str(tmp_path / "run"), "--scenario", str(p)),
              str(p), "field 'name'")
    _one_line(run("-m", "drive_il", "drive", str(p)), str(p), "field 'name'")


@pytest.mark.parametrize("town, stem", [("Town01", "Town01"), ("../maps/Town01.xodr", "Town01"),
                                        ("/abs/maps/Town02.XODR", "Town02"), ("..", "town"),
                                        ("a b:c", "a_b_c")])
def test_eval_report_names_the_town_by_a_safe_stem(town, stem):
    from drive_il.commands.eval import town_stem
    assert town_stem(town) == stem
