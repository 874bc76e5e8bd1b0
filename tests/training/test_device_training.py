"""Training and driving on an explicit device (CPU here; the CUDA path is the same code
with batches copied to the GPU): ``device``/``amp`` leave the CPU arithmetic as it was,
checkpoints are device-independent, ``PolicyDriver(device=...)`` drives from them."""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import pytest
import torch

from drive_il import devices
from drive_il.data.synthetic import write_synthetic_episodes
from drive_il.errors import ConfigError
from drive_il.policies.checkpoint import load_checkpoint
from drive_il.policies.driver import PolicyDriver
from drive_il.policies.registry import load_model_preset
from drive_il.training.trainer import train_policy
from drive_il.types import Observation


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("dev") / "data"
    write_synthetic_episodes(d, 3, steps=12, n_cameras=1, seed=5)
    return d


def _tiny(arch="alvinn", **training):
    p = load_model_preset(arch)
    tr = dataclasses.replace(p.training, batch_size=8, val_fraction=0.34, threads=1, **training)
    return p.replace(training=tr)


def _weights(run):
    m, _ = load_checkpoint(run / "last")
    return m.state_dict()


def _same(a, b):
    return all(torch.equal(a[k], b[k]) for k in a)


def test_explicit_cpu_and_amp_on_cpu_change_nothing(data, tmp_path, caplog, monkeypatch):
    monkeypatch.setattr(devices, "_warned_cpu_amp", False)
    base = train_policy(data_dirs=[data], model_config=_tiny(), out_dir=tmp_path / "a", epochs=2, seed=0,
                        progress=False, device="cpu")
    cpu = train_policy(data_dirs=[data], model_config=_tiny(), out_dir=tmp_path / "b", epochs=2, seed=0,
                       progress=False, device=torch.device("cpu"))
    with caplog.at_level(logging.WARNING, logger="drive_il.devices"):
        amp = train_policy(data_dirs=[data], model_config=_tiny(), out_dir=tmp_path / "c", epochs=2, seed=0,
                           progress=False, device="cpu", amp=True)
    assert sum("--amp" in r.getMessage() for r in caplog.records) == 1
    assert base.device == cpu.device == amp.device == "cpu" and amp.world_size == 1
    w = _weights(tmp_path / "a")
    assert _same(w, _weights(tmp_path / "b")) and _same(w, _weights(tmp_path / "c"))
    assert [h["train_loss"] for h in base.history] == [h["train_loss"] for h in amp.history]
    assert 0.0 <= amp.data_wait_fraction <= 1.0 and "data_wait_fraction" in amp.history[-1]


def test_bad_device_fails_before_reading_data(tmp_path):
    with pytest.raises(ConfigError, match="^device bogus: unknown device"):
        train_policy(data_dirs=[tmp_path / "nope"], model_config=_tiny(), out_dir=tmp_path / "r", device="bogus")


def test_checkpoints_hold_cpu_tensors_and_resume_on_an_explicit_device(data, tmp_path):
    preset = _tiny(lr_schedule="constant", balance_steering=False)
    train_policy(data_dirs=[data], model_config=preset, out_dir=tmp_path / "full", epochs=2, seed=0, progress=False,
                 device="cpu")
    train_policy(data_dirs=[data], model_config=preset, out_dir=tmp_path / "cut", epochs=1, seed=0, progress=False,
                 device="cpu")
    res = train_policy(data_dirs=[data], model_config=preset, out_dir=tmp_path / "cut", epochs=2, seed=0,
                       resume=True, progress=False, device=torch.device("cpu"))
    assert [h["epoch"] for h in res.history] == [1]
    a, b = _weights(tmp_path / "full"), _weights(tmp_path / "cut")
    assert all(v.device.type == "cpu" for v in b.values())
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_trained_checkpoint_drives_on_the_cpu(data, tmp_path):
    res = train_policy(data_dirs=[data], model_config=_tiny(), out_dir=tmp_path / "r", epochs=1, seed=0,
                       progress=False, device="cpu")
    from drive_il.data.dataset import EpisodeDataset

    frame = EpisodeDataset(data)[0]["image"]
    obs = Observation(frames={"center": frame}, speed=6.0)
    default = PolicyDriver.from_checkpoint(res.checkpoint)
    on_cpu = PolicyDriver.from_checkpoint(res.checkpoint, device="cpu")
    as_dev = PolicyDriver(load_checkpoint(res.checkpoint), device=torch.device("cpu"))
    s = default.predict_steer(obs)
    assert -1.0 <= s <= 1.0 and np.isfinite(s)
    assert on_cpu.predict_steer(obs) == s == as_dev.predict_steer(obs)
    assert on_cpu.device == torch.device("cpu") and next(on_cpu.policy.parameters()).device.type == "cpu"
    threads = torch.get_num_threads()
    on_cpu.predict_steer(obs)
    assert torch.get_num_threads() == threads
    with pytest.raises(ConfigError, match="device bogus"):
        PolicyDriver.from_checkpoint(res.checkpoint, device="bogus")
