"""``drive-il bench town`` smoke run (tiny budget, in a subprocess; no timing asserted) and
its one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys


def _bench(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "drive_il", "bench", "town", *args], capture_output=True,
                          text=True, timeout=300, check=False, env=env)


def test_bench_town_smoke(tmp_path):
    """Every part and the baseline are printed per town; the process's own raster cache
    (``$DRIVE_IL_CACHE_DIR``) is neither used nor filled (cold caches in a temporary
    folder)."""
    env = {**os.environ, "DRIVE_IL_CACHE_DIR": str(tmp_path)}
    out = _bench("circuit", "--steps", "20", "--no-pin", env=env)
    assert out.returncode == 0, out.stderr
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("  ")]
    assert len(lines) == 1 and lines[0].split()[0] == "circuit", out.stdout
    for part in ("text", "parse", "lane polygons", "raster", "scenery", "next reset", "20 steps",
                 "% of a one-episode town"):
        assert part in lines[0], (part, lines[0])
    assert list(tmp_path.iterdir()) == []


def test_bench_town_bad_input_is_one_line():
    for args, what in ((["procedural:abc"], "procedural:abc"), (["circuit", "--steps", "0"], "--steps")):
        out = _bench(*args)
        assert out.returncode == 2, (args, out.stdout, out.stderr)
        err = out.stderr.strip().splitlines()
        assert len(err) == 1 and what in err[0], (args, out.stderr)
