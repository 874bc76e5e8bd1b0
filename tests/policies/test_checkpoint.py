"""Bad checkpoints give one clear CheckpointError line (and a non-zero CLI exit)."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from drive_il.cli import main
from drive_il.errors import CheckpointError
from drive_il.policies.checkpoint import (
    VehicleParams,
    check_camera_rig,
    load_checkpoint,
    read_checkpoint_info,
    resolve_checkpoint,
    save_checkpoint,
)
from drive_il.policies.registry import build_policy, load_model_preset
from drive_il.scenario import CameraConfig

RIG = [dict(name="center", width=200, height=66, fov_deg=60.0, x=1.4, y=0.0, z=1.5, pitch_deg=-8.0, yaw_deg=0.0)]


def _save(path, arch="dave2"):
    preset = load_model_preset(arch)
    torch.manual_seed(0)
    return save_checkpoint(path, build_policy(preset), preset, vehicle=VehicleParams(), cameras=RIG)


def _one_line(e: BaseException) -> str:
    msg = str(e)
    assert "\n" not in msg and msg
    return msg


def test_run_directory_resolves_to_best_then_last(tmp_path):
    _save(tmp_path / "run" / "last")
    assert resolve_checkpoint(tmp_path / "run") == tmp_path / "run" / "last"
    _save(tmp_path / "run" / "best")
    assert resolve_checkpoint(tmp_path / "run") == tmp_path / "run" / "best"
    assert resolve_checkpoint(tmp_path / "run" / "best" / "model.safetensors") == tmp_path / "run" / "best"


def test_other_architecture(tmp_path):
    _save(tmp_path / "ck", "alvinn")
    with pytest.raises(CheckpointError, match="architecture 'alvinn', expected 'dave2'") as e:
        load_checkpoint(tmp_path / "ck", expected_architecture="dave2")
    _one_line(e.value)


def test_other_format_version(tmp_path):
    d = _save(tmp_path / "ck")
    cfg = json.loads((d / "config.json").read_text())
    cfg["format_version"] = 99
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="format version 99") as e:
        load_checkpoint(d)
    _one_line(e.value)


def test_corrupt_and_missing_weights(tmp_path):
    d = _save(tmp_path / "ck")
    data = (d / "model.safetensors").read_bytes()
    (d / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt weights") as e:
        load_checkpoint(d)
    _one_line(e.value)
    (d / "model.safetensors").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(CheckpointError, match="corrupt weights"):
        load_checkpoint(d)
    (d / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="weights file missing"):
        load_checkpoint(d)


def test_weights_of_another_architecture(tmp_path):
    d = _save(tmp_path / "ck", "dave2")
    a = _save(tmp_path / "al", "alvinn")
    shutil.copy(a / "model.safetensors", d / "model.safetensors")
    with pytest.raises(CheckpointError, match="do not fit architecture 'dave2'") as e:
        load_checkpoint(d)
    _one_line(e.value)


def test_not_a_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="not a checkpoint"):
        load_checkpoint(tmp_path / "empty")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="unreadable"):
        load_checkpoint(tmp_path / "bad")


def test_camera_rig_checks(tmp_path):
    info = read_checkpoint_info(_save(tmp_path / "ck"))
    check_camera_rig(info, [CameraConfig(name="center", width=200, height=66, fov_deg=60.0, x=1.4, z=1.5, pitch_deg=-8.0)])
    with pytest.raises(CheckpointError, match="reads camera 'center', which the scenario rig lacks") as e:
        check_camera_rig(info, [CameraConfig(name="front")])
    _one_line(e.value)
    with pytest.raises(CheckpointError, match="width = 320 px, the model was trained with width = 200"):
        check_camera_rig(info, [CameraConfig(name="center", width=320, height=66, fov_deg=60.0, x=1.4, z=1.5,
                                             pitch_deg=-8.0)])
    with pytest.raises(CheckpointError, match="pitch_deg"):
        check_camera_rig(info, [dict(RIG[0], pitch_deg=-15.0)])


def test_cli_reports_bad_checkpoint_in_one_line(tmp_path, capsys):
    from drive_il.data.synthetic import write_synthetic_episodes

    write_synthetic_episodes(tmp_path / "data", 2, steps=10)
    _save(tmp_path / "al", "alvinn")
    rc = main(["train", "--data", str(tmp_path / "data"), "--model", "dave2", "--out", str(tmp_path / "run"),
               "--init-from", str(tmp_path / "al"), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert len(err) == 1 and err[0].startswith("drive-il: error:") and "architecture 'alvinn'" in err[0]


def test_drive_command_rejects_a_rig_the_model_does_not_expect(tmp_path, capsys):
    ck = _save(tmp_path / "run" / "best")
    sc = tmp_path / "wide.toml"
    sc.write_text('name = "wide"\n[[cameras]]\nname = "center"\nwidth = 200\nheight = 66\nfov_deg = 90.0\n'
                  'x = 1.4\nz = 1.5\npitch_deg = -8.0\n')
    rc = main(["drive", str(sc), "--driver", "policy", "--checkpoint", str(ck.parent)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1
    assert "fov_deg = 90 deg, the model was trained with fov_deg = 60 deg" in err[0]


# --------------------------------------------------------------------------- issue 16


def test_identical_weights_give_identical_bytes(tmp_path):
    """safetensors writes its metadata in hash-map order (it differed between runs):
    written sorted, identical runs give identical files."""
    files = {(_save(tmp_path / f"ck{i}") / "model.safetensors").read_bytes() for i in range(8)}
    assert len(files) == 1
    from safetensors import safe_open

    with safe_open(str(tmp_path / "ck0" / "model.safetensors"), "pt") as f:
        assert f.metadata() == {"architecture": "dave2", "format": "drive_il.checkpoint"}


def test_flipped_weight_bytes_fail_the_digest(tmp_path):
    import struct

    d = _save(tmp_path / "ck", "alvinn")
    cfg = json.loads((d / "config.json").read_text())
    assert len(cfg["weights_sha256"]) == 64
    w = d / "model.safetensors"
    raw = bytearray(w.read_bytes())
    start = 8 + struct.unpack("<Q", raw[:8])[0]  # the tensor data, after the header
    for i in range(200):
        raw[start + 3 + 4 * i] ^= 0x01  # small changes of 200 weights: still finite, still "valid"
    w.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="SHA-256") as e:
        load_checkpoint(d)
    assert str(w) in _one_line(e.value)


def test_checkpoint_without_digest_still_loads(tmp_path):
    d = _save(tmp_path / "ck", "alvinn")
    cfg = json.loads((d / "config.json").read_text())
    del cfg["weights_sha256"]
    (d / "config.json").write_text(json.dumps(cfg))
    policy, info = load_checkpoint(d)
    assert info.weights_sha256 is None and sum(v.numel() for v in policy.state_dict().values()) > 0
    cfg["weights_sha256"] = "not a digest"
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="weights_sha256") as e:
        load_checkpoint(d)
    _one_line(e.value)


def test_non_finite_weights_are_refused(tmp_path):
    import hashlib

    from safetensors.torch import save_file

    d = _save(tmp_path / "ck", "alvinn")
    policy, _ = load_checkpoint(d)
    sd = {k: v.clone() for k, v in policy.state_dict().items()}
    first = next(k for k, v in sd.items() if v.is_floating_point())
    sd[first].fill_(float("nan"))
    save_file(sd, str(d / "model.safetensors"))  # as the NaN training runs wrote them
    cfg = json.loads((d / "config.json").read_text())
    cfg["weights_sha256"] = hashlib.sha256((d / "model.safetensors").read_bytes()).hexdigest()
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="non-finite") as e:
        load_checkpoint(d)
    assert first in _one_line(e.value)
    # and nothing saves them
    bad = build_policy(load_model_preset("alvinn"))
    with torch.no_grad():
        next(p for p in bad.parameters()).fill_(float("inf"))
    with pytest.raises(CheckpointError, match="non-finite") as e:
        save_checkpoint(tmp_path / "bad", bad, load_model_preset("alvinn"), vehicle=VehicleParams())
    _one_line(e.value)
    assert not (tmp_path / "bad" / "config.json").exists()


def test_disk_full_keeps_the_checkpoint_already_there(tmp_path, monkeypatch):
    import errno

    from drive_il.policies import checkpoint as ckpt

    d = _save(tmp_path / "ck", "alvinn")
    before = {p.name: p.read_bytes() for p in d.iterdir()}

    def full(path, data):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(ckpt, "_write_file", full)
    preset = load_model_preset("alvinn")
    with pytest.raises(CheckpointError, match="No space left on device") as e:
        save_checkpoint(d, build_policy(preset), preset, vehicle=VehicleParams())
    _one_line(e.value)
    assert {p.name: p.read_bytes() for p in d.iterdir()} == before
