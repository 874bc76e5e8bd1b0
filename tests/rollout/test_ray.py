"""Rollouts on Ray actors (issue 18): the same episodes as the local pool, and a killed
actor's episode re-run. Skipped without the optional extra (``pip install -e '.[ray]'``;
CI installs it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install -e '.[ray]'")

from drive_il.data.storage import EpisodeReader, list_episodes  # noqa: E402
from drive_il.data.tools import verify_dir  # noqa: E402
from drive_il.expert.expert import Expert  # noqa: E402
from drive_il.rollout import CollectSpec, Drivers, RolloutSpec, collect  # noqa: E402
from drive_il.rollout.parallel import SimRecipe, make_pool  # noqa: E402
from drive_il.scenario import load_scenario  # noqa: E402


@pytest.fixture
def ray_pool():
    pool = make_pool(2, SimRecipe(), ray="auto")
    yield pool
    pool.close()
    if ray.is_initialized():
        ray.shutdown()


def test_ray_actors_record_the_same_episodes_as_this_process(tmp_path, ray_pool):
    from drive_il.sim import make_simulator
    sc = load_scenario(None).replace(episode_seconds=4.0)
    spec = CollectSpec(episodes=3, first_seed=7, rollout=RolloutSpec())
    expert = Expert.for_scenario(sc)
    sim = make_simulator()
    collect(sim, sc, tmp_path / "one", spec, Drivers(expert=expert), progress=False)
    res = collect(None, sc, tmp_path / "ray", spec, Drivers(expert=expert), progress=False, pool=ray_pool)
    assert [r.info.seed for r in res.results] == [7, 8, 9]
    assert "Ray actor" in ray_pool.describe()
    for a, b in zip(list_episodes(tmp_path / "one"), list_episodes(tmp_path / "ray"), strict=True):
        with EpisodeReader(a) as ra, EpisodeReader(b) as rb:
            for k in ("expert", "executed", "pose", "command", "lateral_deviation"):
                np.testing.assert_array_equal(np.asarray(ra.steps[k]), np.asarray(rb.steps[k]))
    assert verify_dir(tmp_path / "ray").ok


def test_dagger_on_ray_with_a_killed_actor_completes(tmp_path):
    """``drive-il dagger --ray auto`` with an actor SIGKILLed mid-episode (episode 1 of
    every phase, first attempt): the run finishes, says what it re-ran, and every data
    directory holds each episode once and verifies."""
    run = tmp_path / "run"
    env = {**os.environ, "DRIVE_IL_FAULT_KILL": "1:25", "SDL_VIDEODRIVER": "dummy", "OMP_NUM_THREADS": "1"}
    env.pop("RAY_ADDRESS", None)
    cmd = [sys.executable, "-m", "drive_il", "dagger", "--out", str(run), "--ray", "auto", "--workers", "2",
           "--bc-episodes", "2", "--dagger-rounds", "1", "--dagger-episodes", "2", "--epochs", "1",
           "--eval-seeds", "1", "--eval-episodes", "2", "--no-bc-matched", "--max-train-frames", "150",
           "--no-progress"]
    # files, not pipes: Ray's own processes may keep inherited pipes open after the run
    with open(tmp_path / "out.txt", "w") as out, open(tmp_path / "err.txt", "w") as err:
        rc = subprocess.run(cmd, env=env, stdout=out, stderr=err, timeout=600).returncode
    stdout, stderr = (tmp_path / "out.txt").read_text(), (tmp_path / "err.txt").read_text()
    assert rc == 0, stdout[-2000:] + stderr[-3000:]
    assert "re-run after a worker died" in stdout and "Ray actor died" in stdout
    for i in (0, 1):
        d = run / f"round_{i:03d}" / "data"
        names = sorted(x.name for x in d.iterdir() if x.name.startswith("episode_"))
        assert names == ["episode_000000.h5", "episode_000001.h5"], names
        assert verify_dir(d).ok
        assert len((d / "manifest.jsonl").read_text().splitlines()) == 2
        summary = json.loads((run / f"round_{i:03d}" / "round.json").read_text())
        assert summary["episodes"] == 2
