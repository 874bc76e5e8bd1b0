"""``drive-il bench sim`` smoke runs (tiny budget, in a subprocess; no timing asserted), the
plain configurations and ``--urban`` (NoCrash dense Town01 with walkers and lights)."""

from __future__ import annotations

import os
import subprocess
import sys


def test_bench_sim_smoke():
    out = subprocess.run([sys.executable, "-m", "drive_il", "bench", "sim", "--steps", "50", "--no-pin"],
                         capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stderr
    lines = [ln for ln in out.stdout.splitlines() if "steps/s" in ln]
    assert len(lines) == 4, out.stdout
    assert "physics" in lines[0]
    for ln, size in zip(lines[1:], ["66x200", "66x200", "600x800"]):
        assert size in ln and "ratio" in ln, ln


def test_bench_sim_rejects_tiny_budget():
    out = subprocess.run([sys.executable, "-m", "drive_il", "bench", "sim", "--steps", "3"],
                         capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 2 and "--steps" in out.stderr


def test_bench_sim_urban_smoke(maps_dir):
    """``--urban``: NoCrash dense traffic with walkers and traffic lights on Town01,
    physics and one 66x200 camera (no timing asserted)."""
    out = subprocess.run([sys.executable, "-m", "drive_il", "bench", "sim", "--urban", "--steps", "50", "--no-pin",
                          "--maps-dir", str(maps_dir)], capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stderr
    assert "NoCrash dense: 100 vehicles, 250 walkers" in out.stdout, out.stdout
    assert "traffic lights" in out.stdout and " 0 traffic lights" not in out.stdout
    lines = [ln for ln in out.stdout.splitlines() if "steps/s" in ln]
    assert len(lines) == 2 and "physics" in lines[0] and "66x200" in lines[1], out.stdout


def test_bench_sim_urban_without_town01_says_so(tmp_path):
    out = subprocess.run([sys.executable, "-m", "drive_il", "bench", "sim", "--urban", "--steps", "50",
                          "--maps-dir", str(tmp_path)], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "DRIVE_IL_MAPS_DIR": str(tmp_path)}, check=False)
    assert out.returncode == 0, out.stderr
    assert "Town01 is not available" in out.stdout and "skipped" in out.stdout
    assert "steps/s" not in out.stdout
