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
* :class:`PathLoss` (a path head, :mod:`drive_il.policies.path`): L1 on the points [m]
  (TransFuser, Chitta et al. 2022, and LBC, Chen et al. 2019, train their waypoints
  with L1), or smooth L1 (Girshick, "Fast R-CNN", 2015) with ``output.loss``; on the
  lateral offsets only for a lateral-only head (x is derived from them), on both
  coordinates with ``predict_x``. Mean over points (and coordinates) and samples.

Metrics (all batch means): ``loss``; ``steer_mae`` (|steer_pred - steer_label|, steer
units); ``steer_error_deg`` (the same error as road-wheel angle in degrees,
``|d steer| * max_steer_angle``, see :mod:`drive_il.policies.labels`); for the
curvature loss also ``curvature_mae`` [1/m]. For the path loss the predicted steer is
the expert's pure pursuit along the predicted path at the sample's speed
(:func:`drive_il.policies.path.path_steer_batch`, the default expert preset's
look-ahead unless another is given), so the steering keys stay; ``curvature_mae`` is
that pursuit's curvature against the label's 1/r, plus ``path_error_m`` (mean distance
between predicted and label points [m]), ``path_lateral_mae`` [m] and
``path_final_error_m`` (distance at the farthest point [m]).

* :class:`SpeedLoss` (a speed head, ``[output] speed = true``;
  :mod:`drive_il.policies.speed`): wraps the lateral loss and adds
  ``speed_loss_weight * mean |v_pred - v_label|`` [m/s], the mean over the samples whose
  label ``target_speed`` is finite (NaN labels, e.g. from episode files of schema
  version 1, are masked out; a batch without any label adds 0). L1 as the lateral losses
  of LBC and TransFuser; CILRS (Codevilla et al. ICCV 2019) trains its speed branch with
  L1 too. ``[output] speed_loss = "quantile"`` replaces the L1 with the pinball loss of
  quantile regression at ``speed_quantile`` tau (Koenker & Bassett 1978), times 2 so that
  tau = 0.5 is the L1: ``2 max(tau u, (tau - 1) u)``, u = label - prediction [m/s]; the
  head then predicts the tau-quantile of the label given its inputs (tau < 0.5: the
  slower of "stop" and "go" where one frame leads to either). Metrics: the lateral
  loss's, plus ``speed_mae`` [m/s] (|prediction - label| whatever the loss, over the
  labelled samples; 0 when none) and ``lateral_loss``; ``loss`` is the total.

  With an obstacle-gap head (``[output] obstacle_gap = true``) it also adds
  ``gap_loss_weight * mean |g_pred - min(max(g_label, 0), gap_range)|`` [m] over the
  samples whose ``obstacle_gap`` label is not NaN (+inf, nothing ahead, trains as
  ``gap_range``), and the metric ``gap_mae`` [m] (the same mean).

  With a stop-reason head (``[output] stop_reason_head = true``) it adds
  ``stop_reason_loss_weight`` x the cross-entropy [nats] of the head's logits against the
  batch's ``stop_reason`` codes (:data:`~drive_il.types.STOP_REASONS`), over the samples
  whose reason is known (:data:`~drive_il.types.STOP_REASON_UNKNOWN` is masked out), and
  the metrics ``stop_reason_ce`` [nats] and ``stop_reason_acc`` (the share of known
  samples whose most likely class is the label; 0 when none is known).
"""


from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch

from ..policies.speed import gap_target
from ..types import STOP_REASON_UNKNOWN

__all__ = ["AlvinnLoss", "CurvatureLoss", "LossOutput", "PathLoss", "SpeedLoss", "make_loss"]


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


class PathLoss:
    """L1 (or smooth L1) on a path head's points [m] (module docstring).

    Args:
        output: the preset's :class:`~drive_il.policies.presets.OutputConfig`.
        pursuit: the pure-pursuit settings of the steering metrics (default: the default
            expert preset's).
    """

    def __init__(self, output, pursuit=None) -> None:
        from ..policies.path import PursuitParams

        self.distances = tuple(output.path_distances)
        self.predict_x = bool(output.predict_x)
        self.kind = output.loss
        self.beta = float(output.smooth_l1_beta)
        self.pursuit = pursuit if pursuit is not None else PursuitParams.from_expert()

    def __call__(self, policy, output: torch.Tensor, batch: Mapping[str, torch.Tensor]) -> LossOutput:
        from ..policies.path import path_steer_batch

        pred = output.float()                                    # (B, K, 2) [m]
        target = batch["path"].to(pred.dtype)                    # (B, K, 2) [m]
        p, t = (pred, target) if self.predict_x else (pred[..., 1], target[..., 1])
        if self.kind == "smooth_l1":
            loss = torch.nn.functional.smooth_l1_loss(p, t, beta=self.beta)
        else:
            loss = torch.nn.functional.l1_loss(p, t)
        with torch.no_grad():
            steer, kappa = path_steer_batch(pred, self.distances, batch["speed"].to(pred.dtype),
                                            batch["wheelbase"], batch["max_steer_angle"], self.pursuit)
            m, deg = _steer_metrics(steer, batch)
            m["curvature_mae"] = float((kappa - batch["curvature"].reshape(-1)).abs().mean())
            dist = (pred - target).norm(dim=-1)                  # (B, K)
            m["path_error_m"] = float(dist.mean())
            m["path_lateral_mae"] = float((pred[..., 1] - target[..., 1]).abs().mean())
            m["path_final_error_m"] = float(dist[:, -1].mean())
        m["loss"] = float(loss.detach())
        return LossOutput(loss, m, steer, deg)


class SpeedLoss:
    """The lateral loss plus the speed head's masked L1 (module docstring).

    Args:
        lateral: the loss object of the lateral output.
        weight: ``speed_loss_weight`` [per m/s].
        quantile: tau of the pinball loss; 0.5 (default) is the L1 loss.
        gap_weight: ``gap_loss_weight`` [per m] of an obstacle-gap head; None: no gap
            head.
        gap_range: the gap head's range [m] (labels are clipped to [0, gap_range]).
        reason_weight: ``stop_reason_loss_weight`` [per nat] of a stop-reason head;
            None: no such head.

    Attributes:
        forward_kwargs: what the trainer passes to the model's forward
            (``with_speed=True``: the model returns ``(lateral, speed (B,) [m/s])``;
            with a gap head also ``with_gap=True``: ``(lateral, speed, gap (B,) [m])``;
            with a stop-reason head ``with_reason=True``: ``(lateral, speed, gap or None,
            logits (B, 5))``).

    Raises:
        KeyError: (call) the batch has no ``target_speed`` (the dataset was opened
            without speed labels), or, with a gap head, no ``obstacle_gap``, or, with a
            stop-reason head, no ``stop_reason``.
    """

    def __init__(self, lateral, weight: float = 0.1, quantile: float = 0.5, *,
                 gap_weight: float | None = None, gap_range: float = 30.0,
                 reason_weight: float | None = None) -> None:
        if not 0.0 < quantile < 1.0:
            raise ValueError(f"quantile must be in (0, 1), got {quantile!r}")
        if not gap_range > 0:
            raise ValueError(f"gap_range must be > 0 m, got {gap_range!r}")
        self.lateral = lateral
        self.weight = float(weight)
        self.quantile = float(quantile)
        self.gap_weight = None if gap_weight is None else float(gap_weight)
        self.gap_range = float(gap_range)
        self.reason_weight = None if reason_weight is None else float(reason_weight)
        self.forward_kwargs = {"with_speed": True}
        if self.gap_weight is not None:
            self.forward_kwargs["with_gap"] = True
        if self.reason_weight is not None:
            self.forward_kwargs["with_reason"] = True

    def __call__(self, policy, output, batch: Mapping[str, torch.Tensor]) -> LossOutput:
        if self.reason_weight is not None:
            lateral, pred, gap, logits = output
        elif self.gap_weight is not None:
            lateral, pred, gap = output
        else:
            lateral, pred = output
        lo = self.lateral(policy, lateral, batch)
        if "target_speed" not in batch:
            raise KeyError("target_speed: a speed head needs speed labels (EpisodeDataset(speed_labels=True))")
        label = batch["target_speed"].reshape(-1).float()          # (B,) [m/s], NaN = no label
        pred = pred.reshape(-1).float()                            # (B,) [m/s]
        valid = torch.isfinite(label)
        n = valid.sum()
        u = (torch.where(valid, label, torch.zeros_like(label)) - pred) * valid   # label - prediction
        speed_l1 = u.abs().sum() / n.clamp(min=1)
        if self.quantile == 0.5:
            speed_loss = speed_l1
        else:
            tau = self.quantile
            speed_loss = 2.0 * torch.maximum(tau * u, (tau - 1.0) * u).sum() / n.clamp(min=1)
        loss = lo.loss + self.weight * speed_loss
        m = dict(lo.metrics)
        m["lateral_loss"] = m["loss"]
        m["speed_mae"] = float(speed_l1.detach())
        if self.gap_weight is not None:
            if "obstacle_gap" not in batch:
                raise KeyError("obstacle_gap: an obstacle-gap head needs gap labels (EpisodeDataset(gap_labels=True))")
            # (B,) [m], +inf = none, NaN = unknown -> clipped to [0, gap_range], known mask
            g, ok = gap_target(batch["obstacle_gap"].reshape(-1).float(), self.gap_range)
            gap_l1 = ((g - gap.reshape(-1).float()).abs() * ok).sum() / ok.sum().clamp(min=1)
            loss = loss + self.gap_weight * gap_l1
            m["gap_mae"] = float(gap_l1.detach())
        if self.reason_weight is not None:
            if "stop_reason" not in batch:
                raise KeyError("stop_reason: a stop-reason head needs reason labels (EpisodeDataset(reason_labels=True))")
            code = batch["stop_reason"].reshape(-1).long()              # (B,), 255 = unknown
            known = code != STOP_REASON_UNKNOWN
            k = known.sum()
            ce = torch.nn.functional.cross_entropy(logits.float(), torch.where(known, code, 0),
                                                   reduction="none")    # (B,) [nats]
            reason_ce = (ce * known).sum() / k.clamp(min=1)
            loss = loss + self.reason_weight * reason_ce
            m["stop_reason_ce"] = float(reason_ce.detach())
            with torch.no_grad():
                hit = (logits.argmax(dim=1) == code) & known
                m["stop_reason_acc"] = float(hit.sum() / k.clamp(min=1))
        m["loss"] = float(loss.detach())
        return LossOutput(loss, m, lo.steer, lo.steer_error_deg)


def make_loss(policy, *, pursuit=None):
    """The loss object for a policy's ``output_kind`` (``pursuit``: the
    :class:`~drive_il.policies.path.PursuitParams` of a path head's steering metrics),
    wrapped in :class:`SpeedLoss` when the policy has a speed head."""
    kind = getattr(policy, "output_kind", "")
    if kind == "path":
        lateral = PathLoss(policy.output_config, pursuit)
    elif kind == "curvature":
        lateral = CurvatureLoss(getattr(policy.config, "output_scale", 10.0))
    elif kind == "steer_units":
        lateral = AlvinnLoss()
    else:
        raise ValueError(f"no loss for output kind {kind!r}")
    if getattr(policy, "has_speed_head", False):
        out = policy.output_config   # speed_quantile is 0.5 (the L1) unless speed_loss = "quantile"
        gap = getattr(policy, "has_gap_head", False)
        reason = getattr(policy, "has_reason_head", False)
        return SpeedLoss(lateral, out.speed_loss_weight, out.speed_quantile,
                         gap_weight=out.gap_loss_weight if gap else None, gap_range=out.gap_range,
                         reason_weight=out.stop_reason_loss_weight if reason else None)
    return lateral
