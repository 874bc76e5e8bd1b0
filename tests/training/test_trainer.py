"""Behaviour cloning end to end on synthetic episodes: checkpoints, TensorBoard,
resume, determinism, filters, and the ``drive-il train`` command."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from drive_il.data.synthetic import write_synthetic_episodes
from drive_il.policies.checkpoint import load_checkpoint
from drive_il.policies.registry import load_model_preset
from drive_il.training.trainer import train_policy


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("bc") / "data"
    write_synthetic_episodes(d, 4, steps=16, n_cameras=3, seed=3)
    return d


def _tiny(arch, **training):
    p = load_model_preset(arch)
    tr = dataclasses.replace(p.training, batch_size=16, val_fraction=0.25, threads=1, **training)
    return p.replace(training=tr)


def _weights(run):
    m, _ = load_checkpoint(run / "last")
    return {k: v.clone() for k, v in m.state_dict().items()}


def test_dave2_end_to_end_writes_checkpoints_and_tensorboard(data, tmp_path):
    res = train_policy(data_dirs=[data], model_config=_tiny("dave2"), out_dir=tmp_path / "run", epochs=2,
                       seed=0, progress=False)
    assert res.epochs == 2 and res.train_samples == 3 * 16 * 3 and res.val_samples == 16
    assert np.isfinite(res.best_val_loss) and res.val_steer_error_deg >= 0
    _, info = load_checkpoint(res.best, expected_architecture="dave2")
    assert info.vehicle.wheelbase > 0 and [c["name"] for c in info.cameras] == ["center", "left", "right"]
    assert info.training["epoch"] in (0, 1) and info.preset.architecture == "dave2"
    assert json.loads((tmp_path / "run" / "train.json").read_text())["epochs"] == 2

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    acc = EventAccumulator(str(tmp_path / "run" / "tb"), size_guidance={"images": 0, "histograms": 0})
    acc.Reload()
    tags = acc.Tags()
    for t in ("train/loss", "train/lr", "train/steer_error_deg", "val/loss", "val/steer_error_deg",
              "perf/samples_per_s"):
        assert t in tags["scalars"], t
    assert "val/frames" in tags["images"]
    assert "val/steer_error_deg_hist" in tags["histograms"]
    assert any("hparams" in t for t in tags["tensors"])


def test_same_seed_same_weights_other_seed_differs(data, tmp_path):
    runs = []
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        train_policy(data_dirs=[data], model_config=_tiny("alvinn"), out_dir=tmp_path / name, epochs=2, seed=seed,
                     progress=False)
        runs.append(_weights(tmp_path / name))
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])
    assert not all(torch.equal(runs[0][k], runs[2][k]) for k in runs[0])


def test_resume_continues_exactly(data, tmp_path):
    preset = _tiny("alvinn", lr_schedule="constant")
    train_policy(data_dirs=[data], model_config=preset, out_dir=tmp_path / "full", epochs=3, seed=0, progress=False)
    train_policy(data_dirs=[data], model_config=preset, out_dir=tmp_path / "cut", epochs=1, seed=0, progress=False)
    res = train_policy(data_dirs=[data], model_config=preset, out_dir=tmp_path / "cut", epochs=3, seed=0,
                       resume=True, progress=False)
    assert [h["epoch"] for h in res.history] == [1, 2]
    a, b = _weights(tmp_path / "full"), _weights(tmp_path / "cut")
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    # resuming a finished run trains nothing more
    again = train_policy(data_dirs=[data], model_config=preset, out_dir=tmp_path / "cut", epochs=3, seed=0,
                         resume=True, progress=False)
    assert again.history == () and again.checkpoint == tmp_path / "cut" / "best"


def test_warm_start_filter_and_max_frames(data, tmp_path):
    base = train_policy(data_dirs=[data], model_config=_tiny("alvinn"), out_dir=tmp_path / "r0", epochs=1,
                        seed=0, progress=False)
    seen = []

    def only_lanefollow(meta):
        seen.append(meta)
        return meta["command"] == 4

    res = train_policy(data_dirs=[data], model_config=_tiny("alvinn"), out_dir=tmp_path / "r1", epochs=1, seed=0,
                       init_from=base.checkpoint, sample_filter=only_lanefollow, max_frames=10, progress=False)
    assert res.train_samples == 10 * 3
    assert {"dagger_round", "intervention", "command", "frame"} <= set(seen[0])
    assert res.val_samples == sum(1 for m in seen if m["command"] == 4) - sum(
        1 for m in seen[: 3 * 16] if m["command"] == 4)


def test_train_command_in_a_subprocess(data, tmp_path):
    out = tmp_path / "cli"
    r = subprocess.run([sys.executable, "-m", "drive_il", "train", "--data", str(data), "--model", "alvinn",
                        "--out", str(out), "--epochs", "1", "--no-progress"], capture_output=True, text=True,
                       timeout=120, check=False)
    assert r.returncode == 0, r.stderr
    assert "val steering error" in r.stdout and (out / "best" / "model.safetensors").exists()
    bad = subprocess.run([sys.executable, "-m", "drive_il", "train", "--data", str(tmp_path / "nope"), "--model",
                          "alvinn", "--out", str(out)], capture_output=True, text=True, timeout=120,
                         check=False)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
    assert bad.stderr.startswith("drive-il: error:")


def test_steering_balance_weights_favour_rare_labels(data):
    from drive_il.data.dataset import EpisodeDataset
    from drive_il.training.data_source import Subset
    from drive_il.training.trainer import steering_balance_weights

    ds = EpisodeDataset(data)
    w = steering_balance_weights(ds)
    steer = ds.labels["steer"]
    assert w is not None and np.isclose(w.mean(), 1.0)
    edges = np.linspace(-1, 1, 22)
    b = np.clip(np.digitize(steer, edges) - 1, 0, 20)
    counts = np.bincount(b, minlength=21)
    rare, common = np.argmin(np.where(counts > 0, counts, 10**9)), np.argmax(counts)
    if rare != common:
        assert w[b == rare][0] > w[b == common][0]
    sub = Subset(ds, [0, 2, 4])
    assert len(steering_balance_weights(sub)) == 3
    assert steering_balance_weights([{"steer": 0.0}]) is None


def test_balanced_training_runs(data, tmp_path):
    res = train_policy(data_dirs=[data], model_config=_tiny("alvinn", balance_steering=True), out_dir=tmp_path / "b",
                       epochs=1, seed=0, progress=False)
    assert res.train_samples > 0 and np.isfinite(res.best_val_loss)


def test_command_and_softened_steering_weights():
    from types import SimpleNamespace

    from drive_il.training.trainer import command_balance_weights, sampling_weights, steering_balance_weights

    cmd = np.array([4] * 8 + [1] * 2, np.int8)                  # 8 LANEFOLLOW, 2 LEFT
    steer = np.array([0.0] * 8 + [-0.5] * 2)
    samples = SimpleNamespace(labels={"command": cmd, "steer": steer})
    w = command_balance_weights(samples)
    assert np.isclose(w.mean(), 1.0) and np.isclose(w[cmd == 4].sum(), w[cmd == 1].sum())
    full, half = steering_balance_weights(samples), steering_balance_weights(samples, power=0.5)
    assert np.isclose(full[-1] / full[0], 4.0) and np.isclose(half[-1] / half[0], 2.0)
    assert np.allclose(steering_balance_weights(samples, power=0.0), 1.0)
    off = SimpleNamespace(balance_steering=False, balance_commands=False)
    assert sampling_weights(samples, off) is None
    both = sampling_weights(samples, SimpleNamespace(balance_steering=True, balance_power=0.5, balance_commands=True))
    assert np.isclose(both.mean(), 1.0) and np.isclose(both[-1] / both[0], 2.0 * 4.0)
    assert command_balance_weights([{"command": 4}]) is None


def test_standing_balance_weights():
    from types import SimpleNamespace

    from drive_il.training.trainer import sampling_weights, standing_balance_weights

    # 10 moving frames, 8 standing with a stop label (one NaN), 2 standing that start off
    speed = np.array([5.0] * 10 + [0.0] * 8 + [0.1, 0.4])
    target = np.array([5.0] * 10 + [0.0] * 6 + [0.45, np.nan] + [4.0, 2.0])
    samples = SimpleNamespace(labels={"speed": speed, "target_speed": target})
    w = standing_balance_weights(samples)
    assert np.isclose(w.mean(), 1.0)
    moving, stop, go = w[:10], w[10:18], w[18:]
    assert np.allclose(moving, moving[0]) and np.allclose(stop, stop[0]) and np.allclose(go, go[0])
    # the two standing classes share the standing frames' weight equally; moving frames keep 1
    assert np.isclose(stop.sum(), go.sum()) and np.isclose(stop.sum() + go.sum(), 10 * moving[0])
    assert np.isclose(go[0] / moving[0], 2.5) and np.isclose(stop[0] / moving[0], 0.625)
    # a class absent: no change; no speed labels: None
    assert np.allclose(standing_balance_weights(SimpleNamespace(labels={"speed": speed[:18],
                                                                        "target_speed": target[:18]})), 1.0)
    assert standing_balance_weights(SimpleNamespace(labels={"speed": speed})) is None
    on = sampling_weights(samples, SimpleNamespace(balance_standing=True))
    assert np.allclose(on, w)
    assert sampling_weights(samples, SimpleNamespace(balance_standing=False)) is None
    # standing_go_share: the start-off frames carry that share of the standing frames' weight
    w3 = standing_balance_weights(samples, go_share=0.75)
    moving, stop, go = w3[:10], w3[10:18], w3[18:]
    assert np.isclose(w3.mean(), 1.0) and np.isclose(go.sum() / (go.sum() + stop.sum()), 0.75)
    assert np.isclose(stop.sum() + go.sum(), 10 * moving[0])
    assert np.isclose(go[0] / moving[0], 3.75) and np.isclose(stop[0] / moving[0], 0.3125)
    assert np.allclose(sampling_weights(samples, SimpleNamespace(balance_standing=True, standing_go_share=0.75)), w3)
    assert np.array_equal(standing_balance_weights(samples, go_share=0.5), w)
    for bad in (0.0, 1.0, -0.2):
        with pytest.raises(ValueError, match="standing_go_share"):
            standing_balance_weights(samples, go_share=bad)


def test_standing_balance_by_reason():
    from types import SimpleNamespace

    from drive_il.errors import DataError
    from drive_il.training.trainer import sampling_weights, standing_balance_weights

    # one episode: 4 moving frames; a red-light wait (4 stop + 1 start-off); a wait behind
    # a vehicle (4 stop + 1 start-off)
    speed = np.array([5.0] * 4 + [0.0] * 5 + [0.0] * 5)
    target = np.array([5.0] * 4 + [0.0] * 4 + [4.0] + [0.0] * 4 + [4.0])
    code = np.array([0] * 4 + [1] * 4 + [0] + [4] * 4 + [0])
    labels = {"speed": speed, "target_speed": target, "stop_reason": code,
              "episode": np.zeros(14, np.int64), "frame": np.arange(14)}
    samples = SimpleNamespace(labels=labels)
    w = standing_balance_weights(samples, reasons=("red_light",))
    moving, red_stop, red_go, veh = w[:4], w[4:8], w[8], w[9:]
    # only the red-light wait is balanced (its 5 frames: 2.5 each side); the vehicle wait keeps 1
    assert np.allclose(veh, moving[0]) and np.isclose(red_go / moving[0], 2.5)
    assert np.allclose(red_stop / moving[0], 2.5 / 4) and np.isclose(w.mean(), 1.0)
    # empty: every wait balanced, as without reasons
    assert np.allclose(standing_balance_weights(samples, reasons=()), standing_balance_weights(
        SimpleNamespace(labels={"speed": speed, "target_speed": target})))
    cfg = SimpleNamespace(balance_standing=True, balance_standing_reasons=("red_light",))
    assert np.allclose(sampling_weights(samples, cfg), w)
    # a subset out of time order (the training split) gets the weights of its frames' runs
    # (frame 13, the start-off behind the vehicle, records no reason itself)
    sub = SimpleNamespace(base=samples, indices=np.array([13, 9, 10, 0]))
    assert np.allclose(standing_balance_weights(sub, reasons=("vehicle",)), [1.5, 0.75, 0.75, 1.0])
    # episodes without stop reasons: a clear error, not a silent unbalanced run
    old = dict(labels, stop_reason=np.full(14, 255))
    with pytest.raises(DataError, match="stop reason"):
        standing_balance_weights(SimpleNamespace(labels=old), reasons=("red_light",))


def test_balance_standing_reasons_in_a_preset_is_checked(tmp_path):
    from drive_il.errors import ConfigError
    from drive_il.policies.presets import TrainConfig

    assert TrainConfig(balance_standing_reasons=("red_light", "none")).balance_standing_reasons == ("red_light", "none")
    with pytest.raises(ConfigError, match="balance_standing_reasons.*'green'"):
        TrainConfig(balance_standing_reasons=("green",))


def test_standing_go_share_in_a_preset_is_checked(tmp_path):
    from pathlib import Path

    from drive_il.errors import ConfigError
    from drive_il.policies.registry import load_model_preset

    shipped = load_model_preset("dave2_path_wide_speed")
    assert shipped.training.standing_go_share == 0.5
    base = Path(shipped.source).read_text()
    assert "\nstanding_go_share = 0.5 " in base
    good = tmp_path / "good.toml"
    good.write_text(base.replace("\nstanding_go_share = 0.5 ", "\nstanding_go_share = 0.75 "))
    assert load_model_preset(good).training.standing_go_share == 0.75
    bad = tmp_path / "bad.toml"
    bad.write_text(base.replace("\nstanding_go_share = 0.5 ", "\nstanding_go_share = 1.5 "))
    with pytest.raises(ConfigError) as err:
        load_model_preset(bad)
    msg = str(err.value)
    assert "\n" not in msg and "bad.toml" in msg and "standing_go_share" in msg, msg


def test_command_balanced_training_runs(data, tmp_path):
    res = train_policy(data_dirs=[data], model_config=_tiny("dave2_command", balance_commands=True,
                                                            balance_steering=True, balance_power=0.5),
                       out_dir=tmp_path / "c", epochs=1, seed=0, progress=False)
    assert res.train_samples > 0 and np.isfinite(res.best_val_loss)
