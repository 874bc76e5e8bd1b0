"""``drive-il view``: replaying an episode file with the overlay, keys, bad files."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pygame
import pytest

from drive_il.cli import main
from drive_il.viz.demo import run_demo
from drive_il.viz.overlay import Overlay
from drive_il.viz.viewer import EpisodeReplay, Viewer

h5py = pytest.importorskip("h5py")


@pytest.fixture(scope="module")
def episode(tmp_path_factory, demo_world):
    from drive_il.data.recorder import EpisodeRecorder

    d = tmp_path_factory.mktemp("episodes")
    rec = EpisodeRecorder(d)
    records = run_demo(demo_world, [rec], steps=120, seed=4, human_steps=range(40, 60), learner_bias=0.06)
    return rec.last_path, records


def test_replay_gives_back_the_records(episode):
    from drive_il.data.storage import EpisodeReader

    path, records = episode
    with EpisodeReader(path) as reader:
        rp = EpisodeReplay(reader)
        assert len(rp) == len(records)
        for t in (0, 45, 119):
            a, b = rp.record(t), records[t]
            assert a.driver == b.driver and a.intervention == b.intervention
            assert a.lateral_deviation == pytest.approx(b.lateral_deviation, abs=1e-5)
            assert a.executed.steer == pytest.approx(b.executed.steer, abs=1e-6)
            assert a.learner.steer == pytest.approx(b.learner.steer, abs=1e-6)
            assert a.step.world_state.ego.x == pytest.approx(b.step.world_state.ego.x)
            assert np.array_equal(a.step.observation.frames["center"], b.step.observation.frames["center"])
        assert rp.route is not None and len(rp.route) == len(records[0].step.world_state.route)
        assert rp.info().beta == records[0].beta


def test_view_command_headless(episode, tmp_path, capsys):
    path, _ = episode
    shots = tmp_path / "screens"
    rc = main(["view", str(path), "--max-frames", "12", "--record-screens", str(shots), "--speed", "4",
               "--size", "640x360"])
    assert rc == 0
    pngs = sorted(shots.glob("*.png"))
    assert len(pngs) == 12
    assert pygame.image.load(str(pngs[-1])).get_size() == (640, 360)
    assert "12 frames shown" in capsys.readouterr().out


def test_keys(episode, pump):
    from drive_il.data.storage import EpisodeReader

    path, records = episode
    with EpisodeReader(path) as reader:
        rp = EpisodeReplay(reader)
        ov = Overlay(show=True, size=(640, 360), pump=pump, quit_keys=(pygame.K_ESCAPE, pygame.K_q))
        v = Viewer(rp, ov, realtime=False)
        ov.on_episode_start(rp.info(), rp.step(0))
        v._seek(0)
        n = len(rp)
        v.handle_key(pygame.K_SPACE)
        assert v.paused
        v.handle_key(pygame.K_RIGHT)
        v.handle_key(pygame.K_RIGHT)
        assert v.t == 2
        v.handle_key(pygame.K_LEFT)
        assert v.t == 1 and ov.history.count == 2      # history rebuilt up to the step shown
        v.handle_key(pygame.K_5)
        assert v.t == round(0.5 * (n - 1)) and ov.history.count == v.t + 1
        assert ov.history.recent("lateral_deviation")[-1] == pytest.approx(records[v.t].lateral_deviation, abs=1e-5)
        assert ov.history.human_interventions == 1             # the takeover at 40-59 was replayed
        v.handle_key(pygame.K_END)
        assert v.t == n - 1
        v.handle_key(pygame.K_PAGEUP)                      # 10 s back = 200 steps: clipped
        assert v.t == 0
        v.handle_key(pygame.K_PAGEDOWN)
        assert v.t == n - 1
        v.handle_key(pygame.K_HOME)
        assert v.t == 0
        s = v.speed
        v.handle_key(pygame.K_UP)
        assert v.speed == 2 * s
        v.handle_key(pygame.K_DOWN)
        v.handle_key(pygame.K_DOWN)
        assert v.speed == s / 2
        # through the event loop: jump to 30 %, pause, then quit
        for k in (pygame.K_3, pygame.K_SPACE, pygame.K_q):
            pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=k, mod=0, unicode="", scancode=0))
        v2 = Viewer(rp, ov, realtime=False)
        frames = v2.run()
        assert ov.quit_requested
        assert v2.t == round(0.3 * (n - 1)) and v2.paused
        assert frames <= 3
        ov.close()


def _bump_schema(src, dst, version=99):
    import shutil

    shutil.copy(src, dst)
    with h5py.File(dst, "r+") as f:
        f.attrs["schema_version"] = version
    return dst


def test_other_schema_version_one_line(episode, tmp_path, capsys):
    path, _ = episode
    bad = _bump_schema(path, tmp_path / "episode_000000.h5")
    assert main(["view", str(bad), "--max-frames", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("drive-il: error: ") and str(bad) in err[0] and "schema version 99" in err[0]


def test_other_schema_version_subprocess(episode, tmp_path):
    path, _ = episode
    bad = _bump_schema(path, tmp_path / "episode_000001.h5", version=0)
    env = dict(os.environ, SDL_VIDEODRIVER="dummy", PYGAME_HIDE_SUPPORT_PROMPT="1")
    p = subprocess.run([sys.executable, "-m", "drive_il.cli", "view", str(bad), "--max-frames", "1"],
                       capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "schema version 0" in lines[0]


def test_unknown_camera_and_missing_file(episode, tmp_path, capsys):
    path, _ = episode
    assert main(["view", str(path), "--camera", "left", "--max-frames", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert "no camera 'left'" in err and "center" in err and "\n" not in err
    assert main(["view", str(tmp_path / "nope.h5")]) == 2
    assert "not found" in capsys.readouterr().err
