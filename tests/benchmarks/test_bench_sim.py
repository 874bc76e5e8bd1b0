"""``drive-il bench sim`` smoke run (tiny budget, in a subprocess; no timing asserted)."""

from __future__ import annotations

import subprocess
import sys


def test_bench_sim_smoke():
    out = subprocess.run([sys.executable, "-m", "drive_il", "bench", "sim", "--steps", "50", "--no-pin"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    lines = [ln for ln in out.stdout.splitlines() if "steps/s" in ln]
    assert len(lines) == 4, out.stdout
    assert "physics" in lines[0]
    for ln, size in zip(lines[1:], ["66x200", "66x200", "600x800"]):
        assert size in ln and "ratio" in ln, ln


def test_bench_sim_rejects_tiny_budget():
    out = subprocess.run([sys.executable, "-m", "drive_il", "bench", "sim", "--steps", "3"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "--steps" in out.stderr
