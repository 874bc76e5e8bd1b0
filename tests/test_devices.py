"""drive_il.devices: ``--device`` resolution, its one-line errors, and the autocast context."""

from __future__ import annotations

import contextlib
import logging
import subprocess
import sys

import pytest
import torch

from drive_il import devices
from drive_il.devices import autocast_context, is_cuda, resolve_device
from drive_il.errors import ConfigError

NO_CUDA = not torch.cuda.is_available()


def test_cpu_and_auto_resolve():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(" CPU ") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    want = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == want and resolve_device(None).type == want
    assert is_cuda("cuda:1") and is_cuda(torch.device("cuda")) and not is_cuda("cpu") and not is_cuda(None)


@pytest.mark.parametrize("spec", ["bogus", "gpu", "cuda:x", "cuda:-1", "cuda:", "mps"])
def test_unknown_device_is_one_line_naming_flag_and_value(spec):
    with pytest.raises(ConfigError) as e:
        resolve_device(spec, flag="--device")
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"--device {spec}:") and "auto, cpu, cuda or cuda:N" in msg


def test_non_string_spec_is_refused():
    with pytest.raises(ConfigError, match="--device 3"):
        resolve_device(3)


@pytest.mark.skipif(not NO_CUDA, reason="this machine has CUDA")
@pytest.mark.parametrize("spec", ["cuda", "cuda:0", "CUDA:1"])
def test_cuda_without_cuda_is_one_line(spec):
    with pytest.raises(ConfigError) as e:
        resolve_device(spec, flag="--device")
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"--device {spec}: CUDA is not available")
    assert torch.__version__ in msg and "use --device cpu or auto" in msg


def test_cuda_index_checked_against_device_count(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda") == torch.device("cuda")
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    assert resolve_device("auto") == torch.device("cuda")
    with pytest.raises(ConfigError) as e:
        resolve_device("cuda:2", flag="--device")
    assert "\n" not in str(e.value) and "cuda:0..cuda:1" in str(e.value) and "--device cuda:2" in str(e.value)


def test_autocast_is_a_no_op_on_cpu_and_warns_once_with_amp(monkeypatch, caplog):
    monkeypatch.setattr(devices, "_warned_cpu_amp", False)
    with caplog.at_level(logging.WARNING, logger="drive_il.devices"):
        assert isinstance(autocast_context(torch.device("cpu"), False), contextlib.nullcontext)
        assert not caplog.records
        for _ in range(3):
            ctx = autocast_context(torch.device("cpu"), True)
            assert isinstance(ctx, contextlib.nullcontext)
            with ctx:
                y = torch.ones(2, 2) @ torch.ones(2, 2)
            assert y.dtype == torch.float32
    assert len([r for r in caplog.records if "--amp" in r.getMessage()]) == 1


def test_autocast_on_cuda_is_bfloat16():
    with pytest.warns(UserWarning) if NO_CUDA else contextlib.nullcontext():
        ctx = autocast_context(torch.device("cuda"), True)
    assert isinstance(ctx, torch.autocast) and ctx.fast_dtype == torch.bfloat16
    assert isinstance(autocast_context(torch.device("cuda"), False), contextlib.nullcontext)


def _train(tmp_path, *extra):
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    return subprocess.run([sys.executable, "-m", "drive_il", "train", "--data", str(data), "--model", "alvinn",
                           "--out", str(tmp_path / "run"), "--no-progress", *extra],
                          capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.skipif(not NO_CUDA, reason="this machine has CUDA")
def test_train_command_device_cuda_without_cuda_exits_2_with_one_line(tmp_path):
    r = _train(tmp_path, "--device", "cuda")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert r.stderr.startswith("drive-il: error: --device cuda: CUDA is not available")


@pytest.mark.parametrize("extra, want", [(("--device", "bogus"), "--device bogus: unknown device"),
                                         (("--nproc", "0"), "--nproc 0: expected an integer >= 1")])
def test_train_command_bad_device_or_nproc_exits_2_with_one_line(tmp_path, extra, want):
    r = _train(tmp_path, *extra)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert r.stderr.startswith(f"drive-il: error: {want}")
