"""The auxiliary stop-reason head (``[output] stop_reason_head = true``): the preset's
checks, shapes per architecture, the other outputs unchanged, the masked cross-entropy
by hand, and the checkpoint round trip."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from drive_il.errors import ConfigError
from drive_il.policies.checkpoint import VehicleParams, load_checkpoint, save_checkpoint
from drive_il.policies.registry import (
    build_policy,
    load_model_preset,
    model_preset_from_dict,
)
from drive_il.training.losses import make_loss
from drive_il.types import STOP_REASON_UNKNOWN, STOP_REASONS, stop_reason_code

RIG = [{"name": "center", "width": 200, "height": 66, "fov_deg": 60.0, "x": 1.4, "y": 0.0, "z": 1.5,
        "pitch_deg": -8.0, "yaw_deg": 0.0}]


def _with_reason(preset, **kw):
    return preset.replace(output=dataclasses.replace(preset.output, speed=True, stop_reason_head=True, **kw))


def test_preset_checks():
    with pytest.raises(ConfigError, match="stop_reason_head.*speed = true"):
        model_preset_from_dict({"architecture": "dave2", "output": {"stop_reason_head": True}})
    with pytest.raises(ConfigError, match="stop_reason_loss_weight"):
        model_preset_from_dict({"architecture": "dave2", "output": {"speed": True, "stop_reason_head": True,
                                                                    "stop_reason_loss_weight": -1.0}})
    p = model_preset_from_dict({"architecture": "dave2", "output": {"speed": True, "stop_reason_head": True,
                                                                    "stop_reason_loss_weight": 0.3}})
    assert p.output.stop_reason_head and p.output.stop_reason_loss_weight == 0.3
    # written back only when on (presets without it read as before the head existed)
    assert p.to_dict()["output"]["stop_reason_head"] is True
    off = load_model_preset("dave2_path_wide_speed_gap")
    assert "stop_reason_head" not in off.to_dict()["output"]
    assert "stop_reason_loss_weight" not in off.to_dict()["output"]


@pytest.mark.parametrize("name", ["dave2", "dave2_path", "alvinn"])
def test_head_shapes_and_the_other_outputs_unchanged(name):
    base = load_model_preset(name)
    speed_only = base.replace(output=dataclasses.replace(base.output, speed=True, obstacle_gap=True))
    torch.manual_seed(0)
    plain = build_policy(speed_only)
    torch.manual_seed(0)
    m = build_policy(_with_reason(base, obstacle_gap=True))
    assert m.has_reason_head and not plain.has_reason_head
    # the head is built last: every other layer starts as without it
    sd = plain.state_dict()
    assert all(torch.equal(sd[k], m.state_dict()[k]) for k in sd)
    assert any(k.startswith("reason_head.") for k in m.state_dict())
    x = torch.rand(5, *base.preprocessing.shape) * 255
    cmd = torch.tensor([4, 1, 2, 3, -1])
    sp = torch.tensor([0.0, 2.0, 4.0, 6.0, 8.0])
    lat, v, g, logits = m(x, cmd, sp, with_speed=True, with_gap=True, with_reason=True)
    lat2, v2, g2 = m(x, cmd, sp, with_speed=True, with_gap=True)
    assert torch.equal(lat, lat2) and torch.equal(v, v2) and torch.equal(g, g2) and torch.equal(lat, m(x, cmd, sp))
    assert logits.shape == (5, len(STOP_REASONS)) and logits.dtype == torch.float32
    # one shared head on the image: neither the command nor the measured speed changes it
    _, _, _, l2 = m(x, torch.zeros(5, dtype=torch.long), sp + 5.0, with_speed=True, with_reason=True)
    assert torch.equal(logits, l2)
    assert plain(x, cmd, sp, with_speed=True, with_reason=True)[3] is None


def test_the_loss_is_the_masked_cross_entropy_by_hand():
    m = build_policy(_with_reason(load_model_preset("dave2")))
    loss_fn = make_loss(m)
    assert loss_fn.forward_kwargs == {"with_speed": True, "with_reason": True}
    b = 4
    lateral = torch.zeros(b, 1)
    speed = torch.full((b,), 5.0)
    logits = torch.tensor([[2.0, 0.0, 0.0, 0.0, 0.0],     # none, right
                           [0.0, 1.0, 0.0, 0.0, 0.0],     # red light, right
                           [0.0, 0.0, 0.0, 0.0, 3.0],     # vehicle predicted, label walker: wrong
                           [9.0, 0.0, 0.0, 0.0, 0.0]])    # unknown: masked out
    codes = [stop_reason_code(""), stop_reason_code("red_light"), stop_reason_code("walker"), STOP_REASON_UNKNOWN]
    batch = {"curvature": torch.zeros(b), "steer": torch.zeros(b), "expert_steer": torch.zeros(b),
             "max_steer_angle": torch.full((b,), math.radians(35)), "wheelbase": torch.full((b,), 2.9),
             "speed": torch.full((b,), 5.0), "target_speed": torch.full((b,), 5.0),
             "stop_reason": torch.tensor(codes, dtype=torch.int64)}
    out = loss_fn(m, (lateral, speed, None, logits), batch)
    lse = [math.log(math.exp(2.0) + 4.0), math.log(math.e + 4.0), math.log(math.exp(3.0) + 4.0)]
    want_ce = ((lse[0] - 2.0) + (lse[1] - 1.0) + (lse[2] - 0.0)) / 3.0
    assert out.metrics["stop_reason_ce"] == pytest.approx(want_ce, rel=1e-6)
    assert out.metrics["stop_reason_acc"] == pytest.approx(2.0 / 3.0)
    plain = loss_fn.lateral(m, lateral, batch)
    assert float(out.loss) == pytest.approx(plain.metrics["loss"] + 0.1 * want_ce, rel=1e-6)
    # a batch of unknown reasons adds nothing
    batch["stop_reason"] = torch.full((b,), STOP_REASON_UNKNOWN, dtype=torch.int64)
    out0 = loss_fn(m, (lateral, speed, None, logits), batch)
    assert out0.metrics["stop_reason_ce"] == 0.0 and out0.metrics["stop_reason_acc"] == 0.0
    assert float(out0.loss) == pytest.approx(plain.metrics["loss"])
    del batch["stop_reason"]
    with pytest.raises(KeyError, match="stop_reason"):
        loss_fn(m, (lateral, speed, None, logits), batch)


def test_checkpoint_round_trip(tmp_path):
    preset = _with_reason(load_model_preset("dave2_path"))
    torch.manual_seed(0)
    m = build_policy(preset)
    with torch.no_grad():
        m.reason_head[-1].weight.zero_()
        m.reason_head[-1].bias.copy_(torch.arange(len(STOP_REASONS), dtype=torch.float32))
    ck = save_checkpoint(tmp_path / "best", m, preset, vehicle=VehicleParams(2.9, math.radians(35)), cameras=RIG)
    m2, info = load_checkpoint(ck)
    assert m2.has_reason_head and info.preset.output.stop_reason_head
    _, _, _, logits = m2(torch.rand(2, 3, 66, 200) * 255, None, None, with_speed=True, with_reason=True)
    np.testing.assert_allclose(logits.detach().numpy(), [[0, 1, 2, 3, 4]] * 2)
