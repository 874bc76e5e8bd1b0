"""Contract tests over the model registry (LeRobot's tests/policies habit), plus the
paper-specific facts: DAVE-2's 252,219 parameters and layer shapes, ALVINN's targets."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from drive_il.policies.alvinn import (
    HILL_1989,
    AlvinnConfig,
    decode_units,
    encode_targets,
)
from drive_il.policies.checkpoint import VehicleParams, load_checkpoint, save_checkpoint
from drive_il.policies.dave2 import (
    Dave2,
    Dave2Branched,
    Dave2BranchedConfig,
    Dave2Config,
    count_parameters,
)
from drive_il.policies.registry import ARCHITECTURES, build_policy, load_model_preset
from drive_il.types import RoadOption

ARCHS = sorted(ARCHITECTURES)


def _inputs(preset, batch=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand((batch, *preset.preprocessing.shape), generator=g) * 255.0
    cmd = torch.tensor([int(RoadOption.LANEFOLLOW), int(RoadOption.LEFT), int(RoadOption.RIGHT)][:batch])
    speed = torch.full((batch,), 7.0)
    return x, cmd, speed


@pytest.mark.parametrize("arch", ARCHS)
def test_output_shape_and_steer_range(arch):
    preset = load_model_preset(arch)
    torch.manual_seed(0)
    m = build_policy(preset).eval()
    x, cmd, speed = _inputs(preset)
    with torch.no_grad():
        out = m(x, cmd, speed)
        steer = m.output_to_steer(out, wheelbase=2.9, max_steer_angle=math.radians(35))
    expected = (3, preset.model.output_units) if m.output_kind == "steer_units" else (3, 1)
    assert tuple(out.shape) == expected
    assert tuple(steer.shape) == (3,)
    assert torch.all(steer.abs() <= 1.0)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("arch", ARCHS)
def test_seed_determinism(arch):
    preset = load_model_preset(arch)
    outs = []
    for _ in range(2):
        torch.manual_seed(123)
        m = build_policy(preset).eval()
        with torch.no_grad():
            outs.append(m(*_inputs(preset)))
    torch.manual_seed(124)
    other = build_policy(preset).eval()
    with torch.no_grad():
        o3 = other(*_inputs(preset))
    assert torch.equal(outs[0], outs[1])
    assert not torch.equal(outs[0], o3)


@pytest.mark.parametrize("arch", ARCHS)
def test_save_load_round_trip_identical_outputs(arch, tmp_path):
    preset = load_model_preset(arch)
    torch.manual_seed(1)
    m = build_policy(preset).eval()
    rig = [dict(name="center", width=200, height=66, fov_deg=60.0, x=1.4, y=0.0, z=1.5, pitch_deg=-8.0, yaw_deg=0.0)]
    save_checkpoint(tmp_path / "ck", m, preset, vehicle=VehicleParams(2.7, 0.6), cameras=rig, training={"epoch": 3})
    m2, info = load_checkpoint(tmp_path / "ck")
    assert info.architecture == arch and info.vehicle == VehicleParams(2.7, 0.6)
    assert info.preset.to_dict() == preset.to_dict()
    assert info.training["epoch"] == 3 and info.camera["name"] == "center"
    x = _inputs(preset)
    with torch.no_grad():
        assert torch.equal(m(*x), m2(*x))
    # no pickle anywhere in the checkpoint
    for f in (tmp_path / "ck").iterdir():
        assert f.suffix in (".json", ".safetensors")


def test_dave2_has_252219_parameters_and_paper_shapes():
    m = Dave2(Dave2Config())
    assert count_parameters(m) == 252_219
    x = torch.zeros(2, 3, 66, 200)
    shapes = []
    h = m.normalize(x)
    for layer in m.trunk:
        h = layer(h)
        if isinstance(layer, torch.nn.Conv2d):
            shapes.append(tuple(h.shape[1:]))
    assert shapes == [(24, 31, 98), (36, 14, 47), (48, 5, 22), (64, 3, 20), (64, 1, 18)]
    assert h.shape == (2, 1152)
    assert [l.out_features for l in m.head if isinstance(l, torch.nn.Linear)] == [100, 50, 10, 1]


def test_dave2_normalisation_is_fixed_and_maps_to_unit_range():
    m = Dave2(Dave2Config())
    assert torch.allclose(m.normalize(torch.tensor([0.0, 127.5, 255.0])), torch.tensor([-1.0, 0.0, 1.0]))
    names = [n for n, _ in m.named_parameters()]
    assert not any(n.startswith("normalize") for n in names)


def test_branched_selects_the_head_of_the_command():
    torch.manual_seed(0)
    m = Dave2Branched(Dave2BranchedConfig()).eval()
    x = torch.rand(1, 3, 66, 200).repeat(7, 1, 1, 1) * 255
    cmds = torch.tensor([4, 1, 2, 3, 5, 6, -1])  # FOLLOW LEFT RIGHT STRAIGHT CLL CLR VOID
    with torch.no_grad():
        out = m(x, cmds).reshape(-1)
        feats = m.trunk(m.normalize(x[:1]))
        per_head = [float(h(feats)) / m.config.output_scale for h in m.heads]
    assert len(m.heads) == 4
    expected = [per_head[0], per_head[1], per_head[2], per_head[3], per_head[0], per_head[0], per_head[0]]
    assert np.allclose(out.numpy(), expected, atol=1e-6)
    assert len({round(v, 6) for v in per_head}) == 4  # the heads differ
    m6 = Dave2Branched(Dave2BranchedConfig(lane_change_heads=True, speed_input=True))
    assert len(m6.heads) == 6
    assert m6(torch.zeros(2, 3, 66, 200), torch.tensor([5, 6]), torch.tensor([3.0, 5.0])).shape == (2, 1)


@pytest.mark.parametrize("target", ["hill", "gaussian"])
@pytest.mark.parametrize("decode", ["gaussian", "parabola"])
def test_alvinn_decode_of_encode_recovers_steer(target, decode):
    cfg = AlvinnConfig(target=target, decode=decode)
    steer = torch.linspace(-0.97, 0.97, 301)
    back = decode_units(encode_targets(steer, cfg), cfg)
    unit = 2.0 / (cfg.output_units - 1)
    assert float((back - steer).abs().max()) < 0.05 * unit * (1 if decode == "gaussian" and target == "gaussian" else 10)
    # argmax decoding is within half a unit
    am = AlvinnConfig(target=target, decode="argmax")
    assert float((decode_units(encode_targets(steer, am), am) - steer).abs().max()) <= 0.5 * unit + 1e-6


def test_alvinn_hill_target_matches_the_paper_on_a_unit():
    cfg = AlvinnConfig(output_units=45, target="hill")
    t = encode_targets(torch.tensor([0.0]), cfg)[0]          # middle unit 22
    assert np.allclose(t[18:27].numpy(), HILL_1989, atol=1e-6)
    assert float(t[:18].abs().sum()) == 0.0 and float(t[27:].abs().sum()) == 0.0
    g = encode_targets(torch.tensor([0.0]), AlvinnConfig(target="gaussian"))[0]
    i = torch.arange(45.0)
    assert torch.allclose(g, torch.exp(-((i - 22) ** 2) / 10.0))


def test_alvinn_default_shape_and_units():
    preset = load_model_preset("alvinn")
    assert preset.preprocessing.shape == (1, 30, 32) and preset.preprocessing.color_space == "blue"
    m = build_policy(preset)
    assert m.hidden.in_features == 960 and m.hidden.out_features == 29 and m.output.out_features == 45
    small = build_policy(preset.replace(model=AlvinnConfig(hidden_units=4)))
    assert small.hidden.out_features == 4
