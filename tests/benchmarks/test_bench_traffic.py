"""``drive-il bench traffic``: queue discharge at green lights (a subprocess on the
generated grid town; the figures' bounds are the NPC model's, see test_traffic.py)."""

from __future__ import annotations

import re
import subprocess
import sys


def _bench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "drive_il", "bench", "traffic", *args],
                          capture_output=True, text=True, timeout=300, check=False)


def test_bench_traffic_measures_queues_on_the_grid():
    out = _bench("--town", "grid", "--seconds", "60", "--seeds", "1")
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "traffic bench: grid, NoCrash dense" in text and "IDM s0 2 m, T 1 s, a 2.5 m/s^2" in text, text
    m = re.search(r"green phases: (\d+), (\d+) starting with >= 4 cars queued", text)
    assert m and int(m.group(1)) > 10 and int(m.group(2)) >= 1, text
    cars = float(re.search(r"per green \+ yellow \(queue >= 4\): ([\d.]+)", text).group(1))
    assert 2.0 <= cars <= 8.0
    heads = [float(h) for h in re.findall(r"\(3rd car on\): median ([\d.]+) s", text)]
    assert heads and all(1.0 <= h <= 4.0 for h in heads), text
    assert "x the HCM's 1.9 s" in text


def test_bench_traffic_bad_input_and_missing_town():
    out = _bench("--town", "grid", "--seeds", "a,b")
    assert out.returncode == 2 and "--seeds" in out.stderr and out.stderr.count("\n") == 1
    out = _bench("--town", "grid", "--seconds", "-1")
    assert out.returncode == 2 and "--seconds" in out.stderr
    out = _bench("--town", "Nowhere", "--seconds", "5")
    assert out.returncode == 0 and "Nowhere is not available" in out.stdout and "skipped" in out.stdout
