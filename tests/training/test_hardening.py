"""Issue 16: training refuses what would give a NaN or a lost model, in one line (exit 2).

NaN labels, a loss that becomes non-finite, ``--out`` naming a file, ``--resume`` with
nothing to resume, a full disk while writing a checkpoint, and a frame whose HDF5
checksum fails while training.
"""

from __future__ import annotations

import errno
import json

import numpy as np
import pytest
import torch

from drive_il.cli import main
from drive_il.data.synthetic import write_synthetic_episodes
from drive_il.policies import checkpoint as ckpt
from drive_il.policies.checkpoint import load_checkpoint


def _write(out, n, *, nan_at=None, steps=12):
    """``n`` synthetic episodes (1 camera, 16x24); episode 1 gets a NaN steering label at
    step ``nan_at`` (written into the file afterwards: ``Control`` refuses NaN)."""
    import h5py

    paths = write_synthetic_episodes(out, n, steps=steps, height=16, width=24, seed=10)
    if nan_at is not None:
        with h5py.File(paths[1], "r+") as f:
            f["steps/expert"][nan_at, 0] = np.nan
    return paths


def _train(data, out, *extra, model="alvinn"):
    return main(["train", "--data", str(data), "--model", model, "--out", str(out), "--no-progress", *extra])


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("drive-il: error:")
    return err[0]


@pytest.fixture(scope="module")
def good_data(tmp_path_factory):
    d = tmp_path_factory.mktemp("good") / "data"
    write_synthetic_episodes(d, 3, steps=12, height=16, width=24, seed=5)
    return d


@pytest.mark.parametrize("model", ["alvinn", "dave2"])
def test_nan_labels_are_refused_naming_file_and_step(tmp_path, capsys, model):
    paths = _write(tmp_path / "data", 3, nan_at=7)
    rc = _train(tmp_path / "data", tmp_path / "run", "--epochs", "1", model=model)
    line = _one_error_line(capsys)
    assert rc == 2
    assert str(paths[1]) in line and "step 7" in line and "nan" in line
    assert not (tmp_path / "run" / "best").exists() and not (tmp_path / "run" / "last").exists()


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(good_data, tmp_path, capsys, monkeypatch):
    from drive_il.training import losses

    saved = []
    real_make_loss, real_save_optimizer = losses.make_loss, ckpt.save_optimizer

    def make_loss(policy):
        inner = real_make_loss(policy)

        def loss(policy, output, batch):
            lo = inner(policy, output, batch)
            if saved:  # from the second epoch on: the loss diverges
                return losses.LossOutput(lo.loss * float("nan"), lo.metrics, lo.steer, lo.steer_error_deg)
            return lo
        return loss

    def save_optimizer(*a, **k):
        saved.append(1)
        return real_save_optimizer(*a, **k)

    monkeypatch.setattr(losses, "make_loss", make_loss)
    monkeypatch.setattr("drive_il.training.trainer.save_optimizer", save_optimizer)
    run = tmp_path / "run"
    rc = _train(good_data, run, "--epochs", "3")
    line = _one_error_line(capsys)
    assert rc == 2 and "epoch 2" in line and "loss is nan" in line and "keep the last finished epoch" in line
    for sub in ("last", "best"):
        policy, info = load_checkpoint(run / sub)
        assert info.training["epoch"] == 0
        assert all(torch.isfinite(v).all() for v in policy.state_dict().values())


def test_out_naming_an_existing_file(good_data, tmp_path, capsys):
    f = tmp_path / "run.txt"
    f.write_text("keep me")
    assert _train(good_data, f, "--epochs", "1") == 2
    assert "is a file" in _one_error_line(capsys)
    assert f.read_text() == "keep me"


def test_resume_without_a_run_is_an_error(good_data, tmp_path, capsys):
    assert _train(good_data, tmp_path / "never", "--epochs", "1", "--resume") == 2
    line = _one_error_line(capsys)
    assert "nothing to resume" in line and str(tmp_path / "never") in line
    assert not (tmp_path / "never" / "last").exists()


def test_disk_full_while_writing_a_checkpoint(good_data, tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    assert _train(good_data, run, "--epochs", "1") == 0
    capsys.readouterr()
    before = {p.name: p.read_bytes() for p in (run / "last").iterdir()}
    real = ckpt._write_file

    def full(path, data):
        real(path, data[: len(data) // 2])  # part of it reached the disk
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(ckpt, "_write_file", full)
    rc = _train(good_data, run, "--epochs", "2", "--resume")
    line = _one_error_line(capsys)
    assert rc == 2 and "No space left on device" in line and str(run / "last") in line
    monkeypatch.setattr(ckpt, "_write_file", real)
    after = {p.name: p.read_bytes() for p in (run / "last").iterdir()}
    assert after == before  # the epoch-1 checkpoint is intact, no temporary file left
    _, info = load_checkpoint(run / "last")
    assert info.training["epoch"] == 0
    # and training goes on from there once there is room
    assert _train(good_data, run, "--epochs", "2", "--resume") == 0
    assert json.loads((run / "train.json").read_text())["epochs"] == 2


def test_damaged_frame_during_training_is_one_line(tmp_path, capsys):
    import h5py

    paths = _write(tmp_path / "data", 3)
    for p in paths:  # frame 4 of every episode: the validation episode reads each frame
        with h5py.File(p, "r") as f:
            ci = f["frames/center"].id.get_chunk_info_by_coord((4, 0, 0, 0))
        raw = bytearray(p.read_bytes())
        for i in range(200):
            raw[ci.byte_offset + (i * 5) % ci.size] ^= 0xFF
        p.write_bytes(bytes(raw))
    rc = _train(tmp_path / "data", tmp_path / "run", "--epochs", "1")
    line = _one_error_line(capsys)
    assert rc == 2 and any(str(p) in line for p in paths) and "frame 4" in line
    # the same from a DataLoader worker (torch re-raises it with the worker's traceback)
    import dataclasses

    from drive_il.errors import DataError
    from drive_il.policies.registry import load_model_preset
    from drive_il.training.trainer import train_policy

    p = load_model_preset("alvinn")
    p = p.replace(training=dataclasses.replace(p.training, num_workers=1))
    with pytest.raises(DataError) as ei:
        train_policy(data_dirs=[tmp_path / "data"], model_config=p, out_dir=tmp_path / "run_w", epochs=1,
                     progress=False)
    msg = str(ei.value)
    assert "\n" not in msg and msg.startswith(str(tmp_path / "data")) and "frame 4" in msg
