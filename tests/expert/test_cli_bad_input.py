"""Bad input reaches the user as one clear line and exit status 2 (``drive-il drive``):
unreachable goal, start off the road, unknown expert preset key."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

carla = pytest.importorskip("carla")

from drive_il.routing import random_route
from drive_il.maps import TownMap, opendrive_gen


@pytest.fixture(scope="module")
def circuit_points():
    """A start, a reachable goal and a goal on the opposite lane (unreachable: the
    circuit has no U-turn) of the generated circuit."""
    m = TownMap.from_carla_map(carla.Map("circuit", opendrive_gen.generate("circuit")))
    r = random_route(m, np.random.default_rng(0), 80.0)
    w = m.map.get_waypoint(carla.Location(float(r.xy[40, 0]), float(r.xy[40, 1]), 0.0))
    opp = w.get_left_lane()
    return (tuple(map(float, r.xy[0])), tuple(map(float, r.xy[-1])),
            (opp.transform.location.x, opp.transform.location.y))


def _scenario(tmp_path, start, goal) -> str:
    p = tmp_path / "bad.toml"
    p.write_text(f'name = "bad"\ntown = "circuit"\n\n[[routes]]\nstart = [{start[0]}, {start[1]}]\n'
                 f"goal = [{goal[0]}, {goal[1]}]\n")
    return str(p)


def _drive(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "drive_il", "drive", *args, "--max-steps", "3"],
                          capture_output=True, text=True, timeout=120, check=False)


def _one_error_line(res: subprocess.CompletedProcess) -> str:
    assert res.returncode == 2, (res.returncode, res.stdout, res.stderr)
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, res.stderr
    assert "Traceback" not in res.stderr
    return lines[0]


def test_unreachable_goal(tmp_path, circuit_points):
    start, _, opposite = circuit_points
    line = _one_error_line(_drive(_scenario(tmp_path, start, opposite)))
    assert "not reachable" in line and "circuit" in line


def test_start_off_the_road(tmp_path, circuit_points):
    start, goal, _ = circuit_points
    line = _one_error_line(_drive(_scenario(tmp_path, (start[0] + 300.0, start[1] + 300.0), goal)))
    assert "start" in line and "off the road" in line


def test_unknown_expert_preset_key(tmp_path, circuit_points):
    start, goal, _ = circuit_points
    preset = tmp_path / "typo.toml"
    preset.write_text("target_speeed = 6.0\n")
    line = _one_error_line(_drive(_scenario(tmp_path, start, goal), "--expert", str(preset)))
    assert "target_speeed" in line and "unknown key" in line
