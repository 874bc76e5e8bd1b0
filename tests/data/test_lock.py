"""One writer per demonstration directory (issue 16, defect 3): a second ``collect`` on a
directory that another process is writing fails at once with one line, and a killed
writer never leaves the lock held."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from drive_il.data.storage import LOCK_NAME, list_episodes, locked_directory
from drive_il.errors import DataError
from drive_il.rollout import CollectSpec, Drivers, RolloutSpec, collect

from ..rollout.line_world import SC, Centering, LineSim

HOLDER = textwrap.dedent("""
    import sys, time
    from drive_il.data.storage import locked_directory
    with locked_directory(sys.argv[1]):
        print("locked", flush=True)
        sys.stdin.readline()
""")


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([os.getcwd(), *sys.path])
    env["SDL_VIDEODRIVER"] = "dummy"
    return env


@pytest.fixture
def holder(tmp_path):
    """Another process holding the lock of ``tmp_path / "data"``."""
    d = tmp_path / "data"
    d.mkdir()
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(d)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, env=_env())
    try:
        assert proc.stdout.readline().strip() == "locked"
        yield d, proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def _collect(out, n=2):
    return collect(LineSim(), SC, out, CollectSpec(episodes=n, rollout=RolloutSpec(max_steps=10)),
                   Drivers(expert=Centering()), progress=False)


def test_second_writer_fails_at_once(holder):
    d, _ = holder
    t0 = time.monotonic()
    with pytest.raises(DataError) as e:
        _collect(d)
    assert time.monotonic() - t0 < 5.0
    assert str(e.value) == (f"{d}: another process is writing this demonstration directory (it holds "
                            f"{d / LOCK_NAME}); wait for it to finish, or write into another directory")
    assert list_episodes(d) == [] and not (d / "manifest.jsonl").exists()


def test_lock_is_released_when_the_holder_ends_or_is_killed(holder):
    d, proc = holder
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    res = _collect(d)  # the kernel dropped the lock of the killed process
    assert [r.info.episode for r in res.results] == [0, 1]
    with locked_directory(d):  # and collect released its own
        pass


def test_collect_holds_the_lock_while_it_records(tmp_path):
    d = tmp_path / "data"
    seen = []

    class Probe:
        def on_episode_start(self, info, first):
            with pytest.raises(DataError, match="another process is writing"):
                with locked_directory(d):
                    pass
            seen.append(info.episode)

        def on_step(self, record):
            pass

        def on_episode_end(self, result):
            return None

    collect(LineSim(), SC, d, CollectSpec(episodes=2, rollout=RolloutSpec(max_steps=5)), Drivers(expert=Centering()),
            observers=[Probe()], progress=False)
    assert seen == [0, 1]


def test_cli_collect_on_a_locked_directory_is_one_line(holder):
    d, _ = holder
    r = subprocess.run([sys.executable, "-m", "drive_il", "collect", "--episodes", "1", "--out", str(d),
                        "--no-progress"], capture_output=True, text=True, env=_env(), timeout=300)
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines() == [
        f"drive-il: error: {d}: another process is writing this demonstration directory (it holds "
        f"{d / LOCK_NAME}); wait for it to finish, or write into another directory"]
    assert list_episodes(d) == []
