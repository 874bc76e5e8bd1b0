"""``drive-il data info``: the per-command steering table and the procedural towns summed
in one row (issue 17: which towns a command branch learns its turns from)."""

from __future__ import annotations

import numpy as np
import pytest

from drive_il.data.storage import EpisodeReader, list_episodes
from drive_il.data.synthetic import write_synthetic_episodes
from drive_il.data.tools import command_table, data_info, format_info, town_family


def test_steering_per_command_and_town_family(tmp_path):
    d = tmp_path / "d"
    write_synthetic_episodes(d, 2, steps=60, height=16, width=24, seed=0, town="Town01")
    write_synthetic_episodes(tmp_path / "p5", 1, steps=60, height=16, width=24, seed=5, town="procedural:5")
    write_synthetic_episodes(tmp_path / "p9", 1, steps=60, height=16, width=24, seed=9, town="procedural:9")
    dirs = [d, tmp_path / "p5", tmp_path / "p9"]
    want: dict[tuple[str, str], list[np.ndarray]] = {}
    for dd in dirs:
        for p in list_episodes(dd):
            with EpisodeReader(p) as r:
                fam = "procedural" if r.meta.town.startswith("procedural:") else r.meta.town
                c, s = np.asarray(r.steps["command"]), np.asarray(r.steps["expert"][:, 0])
                want.setdefault((fam, "LEFT"), []).append(s[c == 1])
                want.setdefault((fam, "LANEFOLLOW"), []).append(s[c == 4])
    info = data_info(dirs)
    assert set(info.commands) == set(want)
    for k, v in want.items():
        np.testing.assert_array_equal(info.commands[k], np.concatenate(v))
    assert len(info.commands[("Town01", "LEFT")]) == 2 * 20 and len(info.commands[("procedural", "LEFT")]) == 2 * 20
    lines = format_info(info)
    town_line = next(line for line in lines if line.startswith("per town:"))
    assert "Town01: 2 ep" in town_line and "procedural (2 towns): 2 ep" in town_line
    assert "procedural:5" not in town_line
    table = command_table(info.commands)
    assert table[0].split()[:3] == ["command", "towns", "steps"]
    rows = [line.split() for line in table[1:]]
    assert [r[:2] for r in rows] == [["LEFT", "Town01"], ["LEFT", "procedural"],
                                      ["LANEFOLLOW", "Town01"], ["LANEFOLLOW", "procedural"]]
    v = info.commands[("Town01", "LEFT")]
    assert rows[0][2] == "40" and float(rows[0][3]) == pytest.approx(v.mean(), abs=1e-3)
    assert float(rows[0][5]) == pytest.approx(np.percentile(np.abs(v), 90), abs=1e-3)
    assert any(line.strip() == table[1].strip() for line in lines)


def test_town_family():
    assert town_family("procedural:17") == "procedural"
    assert town_family("Town02") == "Town02" and town_family("") == "?"


def test_standing_and_starting_off_steps(tmp_path):
    h5py = pytest.importorskip("h5py")
    write_synthetic_episodes(tmp_path, 2, steps=60, height=16, width=24, seed=0, town="Town01")
    first = list_episodes(tmp_path)[0]
    with h5py.File(first, "r+") as f:               # the first episode stands still throughout
        f["steps/speed"][...] = 0.0
    with EpisodeReader(first) as r:
        target = np.asarray(r.steps["target_speed"])
    assert (target == 0.0).sum() == 10 and (target > 2.0).sum() == 50   # synthetic: a stop in steps 50-59
    info = data_info([tmp_path])
    # standing: label and speed below 0.3 m/s (the first episode's 10 stop steps; the second
    # one moves at its label's speed); starting off: label > 2 m/s while below 0.5 m/s
    assert info.speed_label_steps == 120 and info.standing_steps == 10 and info.starting_steps == 50
    line = next(line for line in format_info(info) if line.startswith("  standing"))
    assert "10 (8.3%)" in line and "50 (41.7%)" in line
