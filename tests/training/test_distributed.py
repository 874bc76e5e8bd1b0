"""Multi-process training (DistributedDataParallel, gloo on the CPU).

The contract: N processes compute the single-process run up to float rounding. Each rank
takes every N-th index of the single-process global batch, the loss is a batch mean and
DDP averages the gradients (the models have no BatchNorm; dropout is 0 in the presets
used), so the weights and the mean training loss of ``drive-il train --nproc 2`` equal
those of a plain run within a stated tolerance:

* final mean training loss: relative difference <= 1e-4 (measured: ~1e-8);
* weights after 2 epochs: max |difference| <= 1e-5 (measured: ~1e-7).

A 1-process torchrun run (``WORLD_SIZE=1``) is the plain code path: bitwise equal.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from drive_il.data.synthetic import write_synthetic_episodes
from drive_il.errors import ConfigError
from drive_il.policies.checkpoint import load_checkpoint
from drive_il.training.distributed import DistContext, launch_command, rank_batches
from drive_il.training.trainer import BCDataset, epoch_batches, train_loader

LOSS_RTOL = 1e-4
WEIGHT_ATOL = 1e-5


# ---- the epoch order and its shares


class _Index:
    def __call__(self, raw, rng):
        return {"index": np.asarray(raw["i"], dtype=np.int64)}


def _index_dataset(n, *, labels=False):
    base = [{"i": i} for i in range(n)]
    if labels:
        class Base(list):
            pass
        base = Base(base)
        rng = np.random.default_rng(0)
        base.labels = {"steer": rng.uniform(-1, 1, n), "command": rng.integers(1, 5, n)}
    return BCDataset(base, _Index(), seed=3)


@pytest.mark.parametrize("balance", [False, True])
@pytest.mark.parametrize("workers", [0, 2])
def test_rank_shares_of_each_step_are_the_single_process_batch(balance, workers):
    ds = _index_dataset(37, labels=balance)
    tc = SimpleNamespace(batch_size=8, num_workers=workers, balance_steering=balance, balance_power=1.0,
                         balance_commands=balance)
    for epoch in (0, 1):
        single = [b["index"].tolist() for b in train_loader(ds, tc, seed=5, epoch=epoch)]
        glob = epoch_batches(ds, tc, seed=5, epoch=epoch)
        assert glob == single and len(glob) == 37 // 8
        shares = [rank_batches(glob, r, 2) for r in range(2)]
        for k, batch in enumerate(glob):
            assert sorted(shares[0][k] + shares[1][k]) == sorted(batch)
            assert len(shares[0][k]) == len(shares[1][k]) == 4
    assert tc.num_workers == workers                           # the preset is left alone


def test_context_from_env_and_single_process_pass_through():
    ctx = DistContext.from_env({})
    assert (ctx.rank, ctx.world_size, ctx.local_rank, ctx.enabled, ctx.is_main) == (0, 1, 0, False, True)
    assert ctx.setup("cpu") == torch.device("cpu") and ctx.backend is None
    assert ctx.all_reduce([1.0, 2.0]) == [1.0, 2.0] and ctx.broadcast_object({"a": 1}) == {"a": 1}
    assert ctx.main_only(lambda: 7) == 7
    ctx.barrier()
    ctx.destroy()
    two = DistContext.from_env({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"})
    assert two.enabled and not two.is_main
    for bad in ({"WORLD_SIZE": "x"}, {"RANK": "2", "WORLD_SIZE": "2"}):
        with pytest.raises(ConfigError) as e:
            DistContext.from_env(bad)
        assert "\n" not in str(e.value)
    cmd = launch_command(3, ["train", "--out", "r"])
    assert cmd[1:6] == ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node=3", "-m"]
    assert cmd[6:] == ["drive_il", "train", "--out", "r"]


def test_batch_not_divisible_by_world_size_is_one_line(tmp_path, monkeypatch):
    from drive_il.policies.registry import build_policy, load_model_preset
    from drive_il.training.trainer import fit

    monkeypatch.setenv("WORLD_SIZE", "3")
    monkeypatch.setenv("RANK", "0")
    preset = load_model_preset("alvinn")                       # batch_size 32
    with pytest.raises(ConfigError) as e:
        fit(policy=build_policy(preset), preset=preset, train_data=[{}], val_data=None, out_dir=tmp_path / "r",
            device="cpu", progress=False)
    assert "\n" not in str(e.value) and "batch_size 32 is not divisible by the 3 processes" in str(e.value)


# ---- end to end: drive-il train --nproc N against a plain run


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp")
    write_synthetic_episodes(root / "data", 3, steps=12, n_cameras=1, seed=3)
    from drive_il.policies.registry import resolve_model_preset
    text = resolve_model_preset("alvinn").read_text()
    for a, b in (("batch_size = 32", "batch_size = 8"), ("val_fraction = 0.1", "val_fraction = 0.34"),
                 ("balance_steering = true", "balance_steering = false"), ("threads = 0", "threads = 1"),
                 ("image_log_every = 5", "image_log_every = 1")):
        assert a in text
        text = text.replace(a, b)
    (root / "tiny.toml").write_text(text)
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    plain = _run(root, "plain", env)
    return root, env, plain


def _run(root, name, env, *extra):
    out = root / name
    r = subprocess.run([sys.executable, "-m", "drive_il", "train", "--data", str(root / "data"), "--model",
                        str(root / "tiny.toml"), "--out", str(out), "--epochs", "2", "--seed", "0", "--device", "cpu",
                        "--no-progress", *extra], capture_output=True, text=True, timeout=150, env=env, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    doc = json.loads((out / "train.json").read_text())
    m, _ = load_checkpoint(out / "last")
    return SimpleNamespace(out=out, doc=doc, weights=m.state_dict(), stdout=r.stdout)


def test_two_processes_equal_one_within_tolerance(setup):
    """2 gloo processes vs 1: final mean training loss within rel 1e-4, weights within
    max |diff| 1e-5 (see the module docstring)."""
    root, env, plain = setup
    ddp = _run(root, "ddp2", env, "--nproc", "2")
    assert ddp.doc["world_size"] == 2 and plain.doc["world_size"] == 1
    assert ddp.doc["train_samples"] == plain.doc["train_samples"] == 24
    assert "2 processes" in ddp.stdout and ddp.stdout.count("trained ") == 1     # rank 0 alone reports
    for a, b in zip(plain.doc["history"], ddp.doc["history"]):
        assert abs(a["train_loss"] - b["train_loss"]) <= LOSS_RTOL * abs(a["train_loss"])
        assert abs(a["val_loss"] - b["val_loss"]) <= LOSS_RTOL * abs(a["val_loss"])
    diff = max(float((plain.weights[k] - ddp.weights[k]).abs().max()) for k in plain.weights)
    assert diff <= WEIGHT_ATOL, diff
    assert ddp.doc["samples_per_s"] > 0 and 0 <= ddp.doc["data_wait_fraction"] <= 1
    assert (ddp.out / "best" / "model.safetensors").exists() and any((ddp.out / "tb").iterdir())


def test_one_process_torchrun_is_the_plain_run_exactly(setup):
    root, env, plain = setup
    one = _run(root, "ddp1", env, "--nproc", "1")
    assert all(torch.equal(plain.weights[k], one.weights[k]) for k in plain.weights)
    keys = ("train_loss", "val_loss", "val_steer_error_deg")
    assert [[h[k] for k in keys] for h in one.doc["history"]] == [[h[k] for k in keys] for h in plain.doc["history"]]


def test_nproc_not_dividing_the_batch_is_one_line(setup):
    root, env, _ = setup
    r = subprocess.run([sys.executable, "-m", "drive_il", "train", "--data", str(root / "data"), "--model",
                        str(root / "tiny.toml"), "--out", str(root / "bad"), "--device", "cpu", "--nproc", "3"],
                       capture_output=True, text=True, timeout=60, env=env, check=False)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "--nproc 3: the preset's training.batch_size 8 is not divisible by 3" in r.stderr


def test_train_throughput_ddp_reports_a_failed_run_in_one_line(setup, tmp_path):
    from drive_il.errors import DriveILError
    from drive_il.training.distributed import train_throughput_ddp

    root, _, _ = setup
    with pytest.raises(DriveILError) as e:
        train_throughput_ddp([root / "data"], root / "tiny.toml", 3, out_dir=tmp_path / "t")
    assert "\n" not in str(e.value) and "not divisible by 3" in str(e.value)
