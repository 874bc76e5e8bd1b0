"""``drive-il data info|verify``: reports, problems and one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import h5py

from drive_il.cli import main
from drive_il.data.synthetic import write_synthetic_episodes


def test_info_reports_episodes(small_dir, tmp_path, capsys):
    r1 = tmp_path / "round1"
    write_synthetic_episodes(r1, 2, steps=20, height=16, width=24, dagger_round=1, beta=0.5, noise_from=5)
    assert main(["data", "info", str(small_dir), str(r1)]) == 0
    out = capsys.readouterr().out
    assert "episodes: 5   steps: 130   frames: 130 (center 16x24)" in out
    assert "Town01: 5 ep" in out and "ClearNoon: 5 ep" in out
    assert "round 1: 2 ep (beta 0.5)" in out and "no round: 3 ep" in out
    assert "2 episodes with injected noise, 30 noisy steps" in out
    assert out.count("%\n") >= 10  # the histogram
    assert "partial files: 0" in out and "damaged files: 0" in out


def test_verify_ok_and_problems(small_dir, capsys):
    assert main(["data", "verify", str(small_dir)]) == 0
    assert capsys.readouterr().out.strip() == f"{small_dir}: OK (3 episodes)"
    # unknown schema version, truncated file, manifest out of step
    bad = small_dir / "episode_000000.h5"
    with h5py.File(bad, "r+") as f:
        f.attrs["schema_version"] = 7
    trunc = small_dir / "episode_000001.h5"
    with open(trunc, "r+b") as fh:
        fh.truncate(trunc.stat().st_size - 100)
    (small_dir / "episode_000002.h5").rename(small_dir / "episode_000009.h5")
    assert main(["data", "verify", "--quick", str(small_dir)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert any(str(bad) in ln and "schema version 7" in ln for ln in lines)
    assert any(str(trunc) in ln and "truncated" in ln for ln in lines)
    assert any("lists episode_000002.h5, which is not in the directory" in ln for ln in lines)
    assert any("episode_000009.h5: finished file missing from manifest" in ln for ln in lines)
    assert lines[-1].startswith(f"{small_dir}: ") and "problem(s)" in lines[-1]


def test_verify_catches_inconsistent_file(small_dir, capsys):
    p = small_dir / "episode_000001.h5"
    with h5py.File(p, "r+") as f:
        del f["steps/speed"]
        f["steps/speed"] = [1.0, 2.0]
    entries = [json.loads(x) for x in (small_dir / "manifest.jsonl").read_text().splitlines()]
    entries[0]["steps"] = 99
    (small_dir / "manifest.jsonl").write_text("".join(json.dumps(e) + "\n" for e in entries) + '{"torn')
    assert main(["data", "verify", str(small_dir)]) == 1
    out = capsys.readouterr().out
    assert f"{p}: steps/speed has shape (2,), expected (30,)" in out
    assert "episode_000000.h5 has 99 steps in the manifest but 30 in the file" in out
    assert "unreadable manifest line" in out


def test_verify_mixed_rigs_across_directories(small_dir, tmp_path, capsys):
    other = tmp_path / "other"
    write_synthetic_episodes(other, 1, steps=5, height=20, width=24)
    assert main(["data", "verify", str(small_dir), str(other)]) == 1
    last = capsys.readouterr().out.splitlines()[-1]
    assert last.startswith("mixed camera rigs: camera 'center' has height=16")
    assert str(small_dir / "episode_000000.h5") in last and str(other / "episode_000000.h5") in last


def _cli(*args):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([os.getcwd(), *sys.path])
    return subprocess.run([sys.executable, "-m", "drive_il", *args], capture_output=True, text=True,
                          env=env, timeout=120)


def test_cli_one_line_errors(tmp_path):
    r = _cli("data", "info", str(tmp_path))
    assert r.returncode != 0 and r.stdout == ""
    assert r.stderr.strip().splitlines() == [f"drive-il: error: no finished episodes in {tmp_path} (0 partial)"]
    r = _cli("data", "verify", str(tmp_path / "missing"))
    assert r.returncode != 0
    assert r.stderr.strip().splitlines() == [f"drive-il: error: {tmp_path / 'missing'}: no such data directory"]


def test_cli_collect_out_that_cannot_be_created_is_one_line(tmp_path):
    """Issue 16, defect 7: was a traceback (exit 1)."""
    bad = "/proc/drive_il_x" if os.path.isdir("/proc") else str(tmp_path / "f" / "x")
    if not os.path.isdir("/proc"):
        (tmp_path / "f").write_text("x")
    r = _cli("collect", "--episodes", "1", "--out", bad, "--no-progress")
    assert r.returncode == 2 and r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"drive-il: error: {bad}: cannot create the demonstration directory (")


def test_cli_collect_disk_full_is_one_line_and_keeps_finished_episodes(tmp_path, monkeypatch, capsys):
    """Issue 16, defect 7: OSError ENOSPC during `collect` was a traceback."""
    import errno

    from drive_il.data.storage import EpisodeWriter, list_episodes

    sc = tmp_path / "tiny.toml"
    sc.write_text('name = "tiny"\nroute_length = 30.0\nepisode_seconds = 1.0\n')
    out = tmp_path / "d"
    real = EpisodeWriter.write_frame

    def full(self, camera, t, frame):
        if self.path.name == "episode_000001.h5" and t == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, camera, t, frame)

    monkeypatch.setattr(EpisodeWriter, "write_frame", full)
    assert main(["collect", str(sc), "--episodes", "3", "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"drive-il: error: {out / 'episode_000001.h5.partial'}: cannot write the episode file (No space "
                   f"left on device); the partial file was removed; collection stopped at episode 1, the 1 finished "
                   f"episode(s) in {out} are kept (re-run the same collection to resume)"]
    assert sorted(p.name for p in out.glob("episode_*")) == ["episode_000000.h5"]
    assert [p.name for p in list_episodes(out)] == ["episode_000000.h5"]
    assert main(["data", "verify", str(out)]) == 0


def test_collect_noise_throttle_flag(capsys):
    import argparse

    from drive_il.commands.collect import noise_from_args
    from drive_il.scenario import Scenario

    def args(**kw):
        base = {"noise_share": None, "noise_kind": None, "noise_magnitude": None, "noise_duration": None,
                "noise_throttle": None}
        return argparse.Namespace(**{**base, **kw})

    cfg = noise_from_args(args(noise_share=1.0, noise_magnitude=0.0, noise_throttle=1.0), Scenario())
    assert (cfg.episode_share, cfg.magnitude, cfg.throttle_magnitude) == (1.0, 0.0, 1.0)
    assert main(["collect", "--episodes", "1", "--out", "/nonexistent/never", "--noise-share", "1",
                 "--noise-throttle", "1.5", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "throttle_magnitude" in err[0] and "1.5" in err[0], err
