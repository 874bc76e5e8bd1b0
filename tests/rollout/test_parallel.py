"""Parallel rollouts (issue 18): the same episodes, labels and figures for any number of
workers; a worker killed mid-episode has its episode re-run, exactly once on disk."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import numpy as np
import pytest

from drive_il.data.storage import EpisodeReader, list_episodes
from drive_il.data.tools import verify_dir
from drive_il.expert.expert import Expert
from drive_il.rollout import CollectSpec, Drivers, RolloutSpec, collect
from drive_il.rollout.parallel import (DriverRecipe, EpisodeJob, ProcessPool, SimRecipe, make_pool,
                                       parse_servers)
from drive_il.scenario import load_scenario

pytest.importorskip("h5py")

#: The columns compared between runs: the labels and what the car did.
LABEL_COLUMNS = ("expert", "executed", "learner", "command", "speed", "pose", "lateral_deviation", "heading_error",
                 "intervention", "noise", "driver", "route_progress")


def _scenario():
    # the default scenario (a generated circuit): short episodes keep the tests fast
    return load_scenario(None).replace(episode_seconds=5.0)


def _labels(path):
    with EpisodeReader(path) as r:
        cols = {k: np.asarray(r.steps[k]).copy() for k in LABEL_COLUMNS}
        return r.meta.seed, r.meta.episode, cols, np.asarray(r.frames("center")[::25]).copy()


def _collect(out, workers, *, episodes=4, rollout=None, sc=None):
    sc = sc or _scenario()
    spec = CollectSpec(episodes=episodes, first_seed=100, rollout=rollout or RolloutSpec())
    expert = Expert.for_scenario(sc)
    pool = make_pool(workers, SimRecipe())
    try:
        sim = None
        if pool is None:
            from drive_il.sim import make_simulator
            sim = make_simulator()
        return collect(sim, sc, out, spec, Drivers(expert=expert), progress=False, pool=pool)
    finally:
        if pool is not None:
            pool.close()


def test_collect_is_the_same_for_1_2_and_3_workers(tmp_path):
    from drive_il.data.noise import NoiseConfig, NoiseInjector
    noise = NoiseInjector(NoiseConfig(episode_share=0.5, magnitude=0.3), np.random.default_rng(0))
    rollout = RolloutSpec(noise=noise)
    runs = {n: _collect(tmp_path / f"w{n}", n, rollout=rollout) for n in (1, 2, 3)}
    files = {n: list_episodes(tmp_path / f"w{n}") for n in runs}
    assert [p.name for p in files[1]] == [f"episode_{j:06d}.h5" for j in range(4)]
    for n in (2, 3):
        assert [p.name for p in files[n]] == [p.name for p in files[1]]
        assert [r.info.seed for r in runs[n].results] == [100, 101, 102, 103]
        for a, b in zip(files[1], files[n]):
            sa, ea, ca, fa = _labels(a)
            sb, eb, cb, fb = _labels(b)
            assert (sa, ea) == (sb, eb)
            assert ca.keys() == cb.keys() and len(ca["expert"]) > 20
            for k in ca:
                np.testing.assert_array_equal(ca[k], cb[k], strict=True, err_msg=f"{b.name} column {k} with {n} workers")
            np.testing.assert_array_equal(fa, fb)
        assert verify_dir(tmp_path / f"w{n}").ok
    assert any(r.info.noise.get("active") for r in runs[1].results)  # the noise coin was drawn per episode


def _untrained_checkpoint(tmp_path, sc, *, seed=0, run="run", preset="dave2"):
    """An untrained checkpoint of ``preset`` (weights drawn with ``seed``) for the
    scenario's first camera, in ``tmp_path/run/best``."""
    import torch

    from drive_il.policies.checkpoint import VehicleParams, save_checkpoint
    from drive_il.policies.registry import build_policy, load_model_preset
    preset = load_model_preset(preset)
    torch.manual_seed(seed)
    cam = sc.cameras[0]
    rig = [{k: getattr(cam, k) for k in ("name", "width", "height", "fov_deg", "x", "y", "z", "pitch_deg",
                                         "yaw_deg")}]
    return save_checkpoint(tmp_path / run / "best", build_policy(preset), preset,
                           vehicle=VehicleParams(sc.vehicle.wheelbase, math.radians(sc.vehicle.max_steer_deg)),
                           cameras=rig)


def _drop_clock(x):
    """Figures without the wall-clock rate, NaN made comparable."""
    if isinstance(x, (list, tuple)):
        return [_drop_clock(v) for v in x]
    return {k: ("nan" if isinstance(v, float) and v != v else v) for k, v in x.items() if k != "steps_per_s"}


def test_evaluation_is_the_same_for_1_and_2_workers(tmp_path):
    pytest.importorskip("torch")
    from drive_il.evaluation.evaluate import evaluate
    from drive_il.policies.driver import PolicyDriver
    from drive_il.sim import make_simulator

    sc = _scenario().replace(episode_seconds=6.0)
    ckpt = _untrained_checkpoint(tmp_path, sc)
    learner = PolicyDriver.from_checkpoint(ckpt, scenario=sc)
    expert = Expert.for_scenario(sc)
    sim = make_simulator()
    one = evaluate(sim, sc, learner=learner, expert=expert, seeds=2, episodes=2)
    sim.close()
    with ProcessPool(2, SimRecipe()) as pool:
        two = evaluate(None, sc, learner=learner, expert=expert, seeds=2, episodes=2, pool=pool)
    # every figure but the wall-clock rate (steps_per_s) is the same
    assert _drop_clock(one.episodes) == _drop_clock(two.episodes)
    for a, b in ((one.aggregate, two.aggregate), (one.seed_mean, two.seed_mean), (one.seed_std, two.seed_std)):
        assert _drop_clock(a) == _drop_clock(b)
    assert one.profiles == two.profiles and one.interventions == two.interventions
    assert one.aggregate["interventions"] > 0  # an untrained learner needs the expert: the trace has rows


def test_a_worker_killed_mid_episode_has_its_episode_rerun(tmp_path, monkeypatch):
    monkeypatch.setenv("DRIVE_IL_FAULT_KILL", "2:40")  # SIGKILL at step 40 of episode 2, first attempt
    res = _collect(tmp_path / "d", 2, episodes=4)
    assert len(res.retried) == 1 and "episode 2 " in res.retried[0] and "killed by signal 9" in res.retried[0]
    names = sorted(p.name for p in (tmp_path / "d").iterdir() if p.name.startswith("episode_"))
    assert names == [f"episode_{j:06d}.h5" for j in range(4)]  # once each, no partial file left
    rep = verify_dir(tmp_path / "d")
    assert rep.ok, rep
    lines = (tmp_path / "d" / "manifest.jsonl").read_text().splitlines()
    assert len(lines) == 4
    monkeypatch.delenv("DRIVE_IL_FAULT_KILL")
    ref = _collect(tmp_path / "ref", 1, episodes=4)
    assert _drop_clock([r.summary for r in ref.results]) == _drop_clock([r.summary for r in res.results])


def test_collect_cli_with_workers_and_a_killed_worker(tmp_path):
    env = {**os.environ, "DRIVE_IL_FAULT_KILL": "1:30", "SDL_VIDEODRIVER": "dummy", "OMP_NUM_THREADS": "1"}
    p = subprocess.run([sys.executable, "-m", "drive_il", "collect", "--episodes", "3", "--out", str(tmp_path / "d"),
                        "--workers", "2", "--no-progress"], env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert "3 episodes recorded now" in p.stdout and "1 re-run after a worker died" in p.stdout
    v = subprocess.run([sys.executable, "-m", "drive_il", "data", "verify", str(tmp_path / "d")],
                       env=env, capture_output=True, text=True, timeout=120)
    assert v.returncode == 0, v.stdout + v.stderr


def test_bad_parallel_options_are_one_line(tmp_path):
    env = {**os.environ, "SDL_VIDEODRIVER": "dummy"}
    for extra, want in ((["--workers", "0"], "--workers 0: expected an integer >= 1"),
                        (["--carla-servers", "127.0.0.1:2000"], "--carla-servers: needs --backend carla"),
                        (["--backend", "carla", "--carla-servers", "127.0.0.1:x"], "expected integer ports")):
        p = subprocess.run([sys.executable, "-m", "drive_il", "collect", "--episodes", "1", "--out",
                            str(tmp_path / "d"), *extra], env=env, capture_output=True, text=True, timeout=120)
        assert p.returncode == 2, p.stderr
        err = p.stderr.strip()
        assert want in err and len(err.splitlines()) == 1, err


def test_parse_servers():
    assert parse_servers("127.0.0.1:2000,127.0.0.1:3000", tm_port=8000) == (("127.0.0.1", 2000, 8000),
                                                                            ("127.0.0.1", 3000, 8001))
    assert parse_servers("h:2000:9000") == (("h", 2000, 9000),)
    r = SimRecipe(backend="carla", servers=parse_servers("a:1,b:2"))
    assert (r.for_slot(3).host, r.for_slot(3).port, r.for_slot(3).tm_port) == ("b", 2, 8001)
    assert SimRecipe(tm_port=8000).for_slot(2).tm_port == 8002
    from drive_il.errors import ConfigError
    with pytest.raises(ConfigError, match="listed twice"):
        parse_servers("a:1,a:1")


def test_a_human_driver_cannot_go_to_a_worker():
    sc = _scenario()
    with pytest.raises(ValueError, match="human driver"):
        DriverRecipe.of(Drivers(expert=Expert.for_scenario(sc), human=object()))
    job = EpisodeJob(index=0, scenario=sc, seed=1, episode=0, spec=RolloutSpec())
    assert "episode 0 (seed 1" in job.describe()
    # a scenario with a towns list names the episode's drawn town, not the unused ``town``
    from drive_il.rollout.towns import episode_scenario
    multi = sc.replace(towns=("circuit", "grid"), town_draw="cycle")
    for seed in (4, 5):
        job = EpisodeJob(index=0, scenario=multi, seed=seed, episode=0, spec=RolloutSpec())
        assert f"(seed {seed}, {episode_scenario(multi, seed).town}, " in job.describe()
    assert "grid" in EpisodeJob(index=0, scenario=multi, seed=5, episode=0, spec=RolloutSpec()).describe()
