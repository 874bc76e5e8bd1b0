"""Offline evaluation (``drive_il.training.offline``, ``drive-il eval --protocol offline``):
the turn-depth gain by hand, the report against the checkpoint run frame by frame, and
bad input."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from drive_il.cli import main
from drive_il.data.recorder import EpisodeRecorder
from drive_il.data.storage import EpisodeReader
from drive_il.data.synthetic import synthetic_episode, synthetic_rig
from drive_il.data.tools import STAND_SPEED
from drive_il.errors import CheckpointError, DataError
from drive_il.policies.checkpoint import load_checkpoint
from drive_il.policies.preprocessing import preprocess
from drive_il.policies.registry import load_model_preset
from drive_il.training.offline import PATH_BINS, _depth_rows, evaluate_offline, format_offline, offline_reports
from drive_il.training.trainer import train_policy


def test_depth_rows_by_hand():
    label = np.array([0.1, -0.2, 1.0, 2.0, -1.5, 3.0])
    pred = np.array([0.5, 0.0, 0.5, 1.0, -0.75, 3.0])
    rows = _depth_rows("RIGHT", label, pred, PATH_BINS)
    assert [(r.lo, r.hi, r.frames) for r in rows] == [(0.0, 0.3, 2), (1.0, 2.0, 2), (2.0, math.inf, 2)]
    small, turn, deep = rows
    # gain = sum(p l) / sum(l^2): (0.05 + 0) / (0.01 + 0.04) = 1.0; half the label: 0.5
    assert small.gain == pytest.approx(1.0) and small.pred_mean_abs == pytest.approx(0.25)
    assert turn.gain == pytest.approx(0.5) and turn.label_mean_abs == pytest.approx(1.25)
    assert turn.mae == pytest.approx((0.5 + 0.75) / 2)
    assert deep.gain == pytest.approx((2.0 + 9.0) / (4.0 + 9.0)) and deep.mae == pytest.approx(0.5)


def _reason(t):
    """The synthetic episodes' stop reason at step t: a red light or a vehicle where the
    label is 0 m/s (every third step), else none."""
    return ("red_light" if (t // 6) % 2 == 0 else "vehicle") if t % 3 == 0 else ""


def _episodes(d, n_eps=2, steps=24, rig=None):
    """Synthetic episodes with speed labels: 0 m/s on every third step (a red light or a
    vehicle, :func:`_reason`), else 6 m/s."""
    rec = EpisodeRecorder(d)
    for e in range(n_eps):
        ep = synthetic_episode(episode=e, seed=e, steps=steps, rig=rig)
        rec.on_episode_start(ep.info, ep.first)
        for t, r in enumerate(ep.iter_records()):
            rec.on_step(dataclasses.replace(r, expert_target_speed=0.0 if t % 3 == 0 else 6.0,
                                            expert_stop_reason=_reason(t)))
        rec.on_episode_end(ep.result())


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("offline")
    data = tmp / "data"
    _episodes(data)
    base = load_model_preset("dave2_command_speed")
    preset = base.replace(
        augmentation=dataclasses.replace(base.augmentation, side_cameras=False),
        training=dataclasses.replace(base.training, batch_size=8, epochs=1, val_fraction=0.0, image_log_every=0,
                                     threads=1, balance_standing=False))
    res = train_policy(data_dirs=[data], model_config=preset, out_dir=tmp / "run", seed=0, progress=False,
                       device="cpu")
    return tmp, data, res.last


def test_report_matches_the_checkpoint_frame_by_frame(trained):
    _, data, ck = trained
    rep = evaluate_offline(ck, [data], every=2)
    policy, info = load_checkpoint(ck)
    steer_err, commands, v_pred, v_label, reasons = [], [], [], [], []
    for p in sorted(data.glob("*.h5")):
        with EpisodeReader(p) as r:
            steps = r.steps
            expert, speed, cmd, target = (np.asarray(steps[k]) for k in ("expert", "speed", "command", "target_speed"))
            frames = np.stack([r.frame("center", t) for t in range(len(speed))])
        for t in range(0, len(speed), 2):
            x = torch.from_numpy(preprocess(frames[t], info.preprocessing))[None]
            with torch.no_grad():
                out, v = policy(x, torch.tensor([int(cmd[t])]), torch.tensor([float(speed[t])]), with_speed=True)
            s = float(policy.output_to_steer(out.reshape(-1), wheelbase=torch.tensor([2.9]),
                                             max_steer_angle=torch.tensor([math.radians(35.0)]))[0])
            steer_err.append(abs(s - float(expert[t, 0])))
            commands.append(int(cmd[t]))
            v_pred.append(float(v.reshape(-1)[0]))
            v_label.append(float(target[t]))
            reasons.append(_reason(t))
    assert rep.frames == len(steer_err) == 24 and rep.every == 2 and rep.episodes == 2
    rows = {r.command: r for r in rep.rows}
    assert rows["all"].frames == rep.frames and sum(r.frames for c, r in rows.items() if c != "all") == rep.frames
    assert rows["all"].steer_mae == pytest.approx(np.mean(steer_err), abs=1e-5)
    vp, vl = np.array(v_pred), np.array(v_label)
    assert rep.speed["speed_mae"] == pytest.approx(np.abs(vp - vl).mean(), abs=1e-5)
    stand = vl < STAND_SPEED
    assert rep.speed["standing_frames"] == int(stand.sum()) == 8
    assert rep.speed["standing_moving_share"] == pytest.approx(float((vp[stand] >= STAND_SPEED).mean()))
    # the standing frames split by the expert's stop reason (steps/stop_reason)
    rs = np.array(reasons)
    assert set(rep.standing_by_reason) == {"red_light", "vehicle"}
    for name, row in rep.standing_by_reason.items():
        m = stand & (rs == name)
        assert row["frames"] == int(m.sum()) == 4
        assert row["moving_share"] == pytest.approx(float((vp[m] >= STAND_SPEED).mean()))
        assert row["pred_mean"] == pytest.approx(float(vp[m].mean()), abs=1e-5)
    # a 1/r head: the depth table bins |steer|, every command, and covers every frame
    assert rep.output == "native" and sum(d.frames for d in rep.depth) == rep.frames
    text = format_offline(rep)
    assert "turn depth" in text and "standing (label < 0.3 m/s): 8 frames" in text
    assert "by the expert's stop reason: red_light 4 frames" in text
    json.dumps(rep.to_dict())                                         # NaN-free JSON


def test_cli_writes_the_json_and_rejects_bad_input(trained, capsys):
    tmp, data, ck = trained
    out = tmp / "offline.json"
    assert main(["eval", "--protocol", "offline", "--checkpoint", str(ck), "--data", str(data), "--out", str(out)]) == 0
    got = json.loads(out.read_text())
    assert got["frames"] == 48 and got["rows"][-1]["command"] == "all"
    assert "would creep" in capsys.readouterr().out
    for argv, msg in ((["--data", str(tmp / "missing")], "data directory not found"),
                      ([], "give --data"),
                      (["--data", str(data), "--every", "0"], "--every: expected an integer >= 1")):
        assert main(["eval", "--protocol", "offline", "--checkpoint", str(ck), *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert msg in err and len(err.splitlines()) == 1
    assert main(["eval", "--checkpoint", str(ck), "--data", str(data)]) == 2
    assert "only with --protocol offline" in capsys.readouterr().err


def test_data_of_another_camera_is_refused(trained, tmp_path):
    _, _, ck = trained
    other = tmp_path / "wide"
    rig = [dict(synthetic_rig(1)[0], fov_deg=100.0)]
    _episodes(other, n_eps=1, steps=8, rig=rig)
    with pytest.raises(CheckpointError, match="fov_deg = 100"):
        evaluate_offline(ck, [other])
    with pytest.raises(DataError, match="no finished episodes"):
        evaluate_offline(ck, [tmp_path])
    with pytest.raises(ValueError, match="every"):
        evaluate_offline(ck, [other], every=0)


def test_a_path_head_reports_lateral_errors_and_turn_depth(tmp_path):
    from drive_il.data.dataset import EpisodeDataset

    data = tmp_path / "data"
    _episodes(data, n_eps=2, steps=40)
    base = load_model_preset("dave2_path")
    preset = base.replace(
        augmentation=dataclasses.replace(base.augmentation, side_cameras=False),
        training=dataclasses.replace(base.training, batch_size=8, epochs=1, val_fraction=0.0, image_log_every=0,
                                     threads=1))
    res = train_policy(data_dirs=[data], model_config=preset, out_dir=tmp_path / "run", seed=0, progress=False,
                       device="cpu")
    rep = evaluate_offline(res.last, [data], reference_distance=4.6)
    policy, info = load_checkpoint(res.last)
    d = info.preset.output.path_distances
    assert rep.output == "path" and rep.reference_distance == min(d, key=lambda x: abs(x - 4.6)) and not rep.speed
    ds = EpisodeDataset(data, path_distances=d)
    err, cmds = [], []
    for i in range(len(ds)):
        s = ds[i]
        x = torch.from_numpy(preprocess(s["image"], info.preprocessing))[None]
        with torch.no_grad():
            out = policy(x, torch.tensor([int(s["command"])]), torch.tensor([float(s["speed"])]))
        err.append(np.abs(out.reshape(-1, 2)[:, 1].numpy() - s["path"][:, 1]).mean())
        cmds.append(int(s["command"]))
    rows = {r.command: r for r in rep.rows}
    assert rows["all"].frames == 80 and rows["all"].path_lateral_mae == pytest.approx(np.mean(err), abs=1e-5)
    turns = sum(1 for c in cmds if c in (1, 2))
    assert turns == 20                                               # the synthetic LEFT stretch
    assert {x.command for x in rep.depth} <= {"LEFT", "RIGHT"} and sum(x.frames for x in rep.depth) == turns
    assert "path lateral MAE [m]" in format_offline(rep)


def test_report_shows_the_stored_offline_evaluations(trained, capsys):
    tmp, data, ck = trained
    run = ck.parent
    assert main(["eval", "--protocol", "offline", "--checkpoint", str(run), "--data", str(data)]) == 0
    stored = sorted((run / "eval").glob("offline-*.json"))
    assert len(stored) == 1
    printed = capsys.readouterr().out
    table = printed[:printed.index("\nwrote ")]                      # what eval printed
    [(path, rep)] = offline_reports(tmp)                              # found below the directory given
    assert path == stored[0] and rep.to_dict() == json.loads(path.read_text())   # the JSON round trip
    assert main(["report", str(run)]) == 0
    out = capsys.readouterr().out
    assert table in out                                               # the same table as eval printed
    md = (run / "report.md").read_text()
    assert f"## Offline evaluation: `eval/{stored[0].name}`" in md and table in md
    bad = run / "eval" / "offline-broken.json"
    bad.write_text(json.dumps({"checkpoint": "x"}))
    try:
        assert main(["report", str(run)]) == 2
        err = capsys.readouterr().err.strip()
        assert "offline-broken.json: not an offline report" in err and len(err.splitlines()) == 1
    finally:
        bad.unlink()


def _speed_episodes(data, edit):
    """Two synthetic episodes of 12 steps whose speed label is 0 m/s every third step, 6 m/s
    otherwise; ``edit(t, record) -> record`` sets the other labels of step t."""
    rec = EpisodeRecorder(data)
    for e in range(2):
        ep = synthetic_episode(episode=e, seed=e, steps=12)
        rec.on_episode_start(ep.info, ep.first)
        for t, r in enumerate(ep.iter_records()):
            rec.on_step(edit(t, dataclasses.replace(r, expert_target_speed=0.0 if t % 3 == 0 else 6.0)))
        rec.on_episode_end(ep.result())


def _train_speed_head(tmp_path, data, **output):
    """``dave2_command_speed`` with ``output``'s settings, one epoch on ``data``: its last checkpoint."""
    base = load_model_preset("dave2_command_speed")
    preset = base.replace(
        output=dataclasses.replace(base.output, **output),
        augmentation=dataclasses.replace(base.augmentation, side_cameras=False),
        training=dataclasses.replace(base.training, batch_size=8, epochs=1, val_fraction=0.0, image_log_every=0,
                                     threads=1, balance_standing=False))
    return train_policy(data_dirs=[data], model_config=preset, out_dir=tmp_path / "run", seed=0, progress=False,
                        device="cpu").last


def test_an_obstacle_gap_head_reports_the_gap_and_the_capped_speed(tmp_path):
    from drive_il.policies.speed import gap_speed_cap

    data = tmp_path / "data"
    gap_of = {0: 4.5, 1: math.inf, 2: 40.0}          # the range clips 40 m to 30 m; one NaN (unknown) step
    _speed_episodes(data, lambda t, r: dataclasses.replace(
        r, expert_stop_reason=_reason(t), expert_obstacle_gap=math.nan if t == 5 else gap_of[t % 3]))
    ck = _train_speed_head(tmp_path, data, obstacle_gap=True)
    rep = evaluate_offline(ck, [data])
    policy, info = load_checkpoint(ck)
    vp, vl, gp, gl = [], [], [], []
    for p in sorted(data.glob("*.h5")):
        with EpisodeReader(p) as r:
            steps = r.steps
            speed, cmd, target, obstacle = (np.asarray(steps[k]) for k in ("speed", "command", "target_speed",
                                                                           "obstacle"))
            for t in range(len(speed)):
                x = torch.from_numpy(preprocess(r.frame("center", t), info.preprocessing))[None]
                with torch.no_grad():
                    _, v, g = policy(x, torch.tensor([int(cmd[t])]), torch.tensor([float(speed[t])]),
                                     with_speed=True, with_gap=True)
                vp.append(float(v[0]))
                gp.append(float(g[0]))
                vl.append(float(target[t]))
                gl.append(float(obstacle[t, 0]))
    vp, vl, gp, gl = map(np.array, (vp, vl, gp, gl))
    has = ~np.isnan(gl)
    clipped = np.clip(gl[has], 0.0, 30.0)
    assert rep.speed["gap_frames"] == int(has.sum()) == 22
    assert rep.speed["gap_mae"] == pytest.approx(np.abs(gp[has] - clipped).mean(), abs=1e-4)
    near = clipped < 15.0
    assert rep.speed["gap_near_frames"] == int(near.sum()) == 8
    assert rep.speed["gap_near_mae"] == pytest.approx(np.abs(gp[has][near] - clipped[near]).mean(), abs=1e-4)
    # the standing figures are those of the capped target; the speed head's own beside them
    o = info.preset.output
    assert o.gap_stop_distance == 6.0
    capped = np.minimum(vp, gap_speed_cap(gp, stop_distance=o.gap_stop_distance, deceleration=o.gap_deceleration))
    stand = vl < STAND_SPEED
    assert rep.speed["standing_moving_share"] == pytest.approx(float((capped[stand] >= STAND_SPEED).mean()))
    assert rep.speed["standing_moving_share_uncapped"] == pytest.approx(float((vp[stand] >= STAND_SPEED).mean()))
    assert rep.speed["speed_mae"] == pytest.approx(np.abs(capped - vl).mean(), abs=1e-4)
    assert "obstacle gap: 22 labelled frames" in format_offline(rep)
    json.dumps(rep.to_dict())


def test_a_stop_reason_head_reports_its_accuracy_and_recall(tmp_path):
    from drive_il.training.offline import OfflineReport
    from drive_il.types import STOP_REASON_UNKNOWN, stop_reason_code, stop_reason_name

    data = tmp_path / "data"
    _speed_episodes(data, lambda t, r: dataclasses.replace(r, expert_stop_reason=None if t == 5 else _reason(t)))
    ck = _train_speed_head(tmp_path, data, stop_reason_head=True)
    rep = evaluate_offline(ck, [data])
    policy, info = load_checkpoint(ck)
    pred, lab = [], []
    for p in sorted(data.glob("*.h5")):
        with EpisodeReader(p) as r:
            steps = r.steps
            speed, cmd, why = (np.asarray(steps[k]) for k in ("speed", "command", "stop_reason"))
            for t in range(len(speed)):
                x = torch.from_numpy(preprocess(r.frame("center", t), info.preprocessing))[None]
                with torch.no_grad():
                    logits = policy(x, torch.tensor([int(cmd[t])]), torch.tensor([float(speed[t])]),
                                    with_speed=True, with_reason=True)[3]
                pred.append(int(logits.argmax()))
                lab.append(int(why[t]))
    pred, lab = np.array(pred), np.array(lab)
    known = lab != STOP_REASON_UNKNOWN
    assert rep.stop_reason["frames"] == int(known.sum()) == 22
    assert rep.stop_reason["accuracy"] == pytest.approx(float((pred[known] == lab[known]).mean()))
    for c in set(lab[known].tolist()):
        row = rep.stop_reason["recall"][stop_reason_name(c)]
        assert row["frames"] == int((lab == c).sum())
        assert row["recall"] == pytest.approx(float((pred[lab == c] == c).mean()))
    assert stop_reason_code("red_light") in set(lab.tolist())
    assert "stop reason: 22 frames with a known reason" in format_offline(rep)
    back = OfflineReport.from_dict(json.loads(json.dumps(rep.to_dict())))
    assert back.stop_reason == rep.stop_reason
