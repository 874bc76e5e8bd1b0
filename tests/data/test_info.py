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
    # the waits they end: the synthetic files record no stop reason
    assert info.starting_reasons == {"unknown": 50}
    assert "  starting-off steps by the wait they end: unknown 50 (100.0%)" in format_info(info)


def test_standing_run_reasons_by_hand():
    from drive_il.data.tools import standing_run_reasons
    from drive_il.types import STOP_REASON_UNKNOWN as U

    # episode 0: moving, a red-light wait whose last frame (the start-off) has no reason,
    # moving, a wait behind a vehicle that began unnamed; episode 1 starts standing
    # (no reason: the episode's start), then an unknown-coded wait
    ep = np.array([0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1])
    sp = np.array([5, 0, 0, 0, 5, 0, 0, 0, 5, 0, 0, 5, 0, 0], float)
    code = np.array([0, 1, 1, 0, 0, 0, 4, 0, 0, 0, 0, 0, U, U])
    assert standing_run_reasons(ep, sp, code).tolist() == [0, 1, 1, 1, 0, 0, 4, 4, 0, 0, 0, 0, U, U]
    # a run does not carry over an episode boundary
    assert standing_run_reasons(np.array([0, 1]), np.zeros(2), np.array([1, 0])).tolist() == [1, 0]


def test_standing_gaps_by_stop_reason(tmp_path):
    h5py = pytest.importorskip("h5py")
    (p,) = write_synthetic_episodes(tmp_path, 1, steps=60, height=16, width=24, seed=0, town="Town01")
    with h5py.File(p, "r+") as f:                   # steps 50-59 stand: 5 behind a vehicle, 5 at a red light
        f["steps/speed"][50:] = 0.0
        f["steps/stop_reason"][50:55] = 4
        f["steps/stop_reason"][55:] = 1
        ob = f["steps/obstacle"][...]
        ob[50:55, 0] = [2.0, 3.0, 4.0, 5.0, 6.0]
        ob[55:, 0] = 1.0
        ob[59, 0] = np.nan                           # unknown gaps are left out
        f["steps/obstacle"][...] = ob
    info = data_info([tmp_path])
    assert info.standing_steps == 10
    assert sorted(info.standing_gaps) == ["red_light", "vehicle"]
    assert np.concatenate(info.standing_gaps["vehicle"]).tolist() == [2.0, 3.0, 4.0, 5.0, 6.0]
    assert len(np.concatenate(info.standing_gaps["red_light"])) == 4
    line = next(x for x in format_info(info) if x.startswith("  standing: gap"))
    assert line.endswith("red_light 1.0 / 1.0 / 1.0, vehicle 2.4 / 4.0 / 5.6")
