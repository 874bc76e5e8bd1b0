"""Behaviour-cloning losses: small objects that return the loss and its metrics.

As imitation's ``BehaviorCloningLossCalculator``: the model's ``forward`` returns
predictions; a loss object turns (predictions, batch) into a scalar loss and a dict of
metrics (floats) for logging, plus the predicted steer per sample.

* :class:`CurvatureLoss` (DAVE-2 and its branched variant; Bojarski et al. 2016): mean
  squared error on the inverse turning radius, both sides multiplied by ``scale`` [m]
  (10 m by default: 1/r of a few hundredths of 1/m becomes a number of order 0.1-1,
  which keeps the loss readable; the minimiser is unchanged).
* :class:`AlvinnLoss` (Pomerleau 1989): mean squared error between the direction units
  and the target hill (or 1991 Gaussian) of the label.

Metrics (all batch means): ``loss``; ``steer_mae`` (|steer_pred - steer_label|, steer
units); ``steer_error_deg`` (the same error as road-wheel angle in degrees,
``|d steer| * max_steer_angle``, see :mod:`drive_il.policies.labels`); for the
curvature loss also ``curvature_mae`` [1/m].
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch

__all__ = ["AlvinnLoss", "CurvatureLoss", "LossOutput", "make_loss"]


@dataclass(frozen=True)
class LossOutput:
    """Result of a loss object.

    Attributes:
        loss: scalar tensor (differentiable).
        metrics: name -> float (detached batch means).
        steer: (B,) predicted steer (detached).
        steer_error_deg: (B,) absolute steering error [deg of road-wheel angle] (detached).
    """

    loss: torch.Tensor
    metrics: dict[str, float]
    steer: torch.Tensor
    steer_error_deg: torch.Tensor


def _steer_metrics(pred_steer: torch.Tensor, batch: Mapping[str, torch.Tensor]) -> tuple[dict[str, float], torch.Tensor]:
    err = (pred_steer - batch["steer"]).abs()
    deg = err * batch["max_steer_angle"] * (180.0 / math.pi)
    return {"steer_mae": float(err.mean()), "steer_error_deg": float(deg.mean())}, deg


class CurvatureLoss:
    """MSE on 1/r (scaled by ``scale`` [m]) for policies whose output is 1/r [1/m].

    Args:
        scale: both prediction and label are multiplied by it before the MSE.
    """

    def __init__(self, scale: float = 10.0) -> None:
        self.scale = float(scale)

    def __call__(self, policy, output: torch.Tensor, batch: Mapping[str, torch.Tensor]) -> LossOutput:
        pred = output.reshape(-1)                                # (B,) 1/r [1/m]
        target = batch["curvature"].reshape(-1)                  # (B,)
        loss = torch.mean(((pred - target) * self.scale) ** 2)
        with torch.no_grad():
            steer = policy.output_to_steer(pred, wheelbase=batch["wheelbase"],
                                           max_steer_angle=batch["max_steer_angle"])
            m, deg = _steer_metrics(steer, batch)
            m["curvature_mae"] = float((pred - target).abs().mean())
        m["loss"] = float(loss.detach())
        return LossOutput(loss, m, steer, deg)


class AlvinnLoss:
    """MSE between ALVINN's direction units and the encoded steer label."""

    def __call__(self, policy, output: torch.Tensor, batch: Mapping[str, torch.Tensor]) -> LossOutput:
        target = policy.encode_targets(batch["steer"])           # (B, K)
        loss = torch.mean((output - target) ** 2)
        with torch.no_grad():
            steer = policy.output_to_steer(output)
            m, deg = _steer_metrics(steer, batch)
        m["loss"] = float(loss.detach())
        return LossOutput(loss, m, steer, deg)


def make_loss(policy):
    """The loss object for a policy's ``output_kind``."""
    kind = getattr(policy, "output_kind", "")
    if kind == "curvature":
        return CurvatureLoss(getattr(policy.config, "output_scale", 10.0))
    if kind == "steer_units":
        return AlvinnLoss()
    raise ValueError(f"no loss for output kind {kind!r}")
