"""The speed head: a learned target speed next to the lateral output of any architecture.

A preset's ``[output] speed = true`` (:class:`~drive_il.policies.presets.OutputConfig`)
adds a :class:`SpeedHead` to the network. Its input is the network's image features
(DAVE-2's flattened convolutional trunk; ALVINN's hidden layer) concatenated with an
encoding of the **measured speed** (one FC layer over ``v / speed_scale``), and it has
one branch per navigation-command head of a branched model (one for the others), as
CILRS (Codevilla et al., "Exploring the Limitations of Behavior Cloning for Autonomous
Driving", ICCV 2019) feeds the measured speed to the network and adds a speed-prediction
branch. Ours predicts the expert's **target speed** (the episode files' ``target_speed``
label, 0 where the expert stops for a red light or a pedestrian) rather than CILRS's
regulariser, the measured speed; the learner then tracks it with the expert's
longitudinal controller (:class:`~drive_il.policies.driver.PolicyDriver`).
``[output] speed_measured_input = false`` drops the measured-speed input
(``measured_input=False``): the head then predicts from the image features alone, which
avoids CILRS's "inertia problem" (a car that stands reads "I stand" and stays standing;
Codevilla et al., ICCV 2019, Sec. 5).

Each branch is DAVE-2's fully connected stack (100/50/10) and one unit that predicts
``v / speed_scale`` (``hidden=()``: the unit alone, as ALVINN's output units sit on its
hidden layer); :meth:`SpeedHead.forward` returns v [m/s], unclipped (the driver
clips it to >= 0 and reads < ``stop_speed`` as stop).

Modules with a speed head return ``(lateral, speed)`` from
``forward(image, command, speed, with_speed=True)``, ``speed`` (B,) [m/s]; without
``with_speed`` their forward returns the lateral output alone, as before.

**Obstacle-gap head** (``[output] obstacle_gap = true``): the same module, a second
:class:`SpeedHead` named ``gap_head`` on the image features alone
(``measured_input=False``, ``scale = gap_range``), predicts the gap [m] to what the
expert slows for; ``forward(..., with_speed=True, with_gap=True)`` returns
``(lateral, speed (B,) [m/s], gap (B,) [m])``. :func:`gap_speed_cap` turns a gap into
the highest speed from which the car still stops ``stop_distance`` short of it (the
expert's stopped-obstacle braking curve); the driver and the offline evaluation cap the
speed head's target with it.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
from torch import nn

__all__ = ["SpeedHead", "SpeedHeadMixin", "gap_speed_cap", "gap_target"]


def gap_target(gap, gap_range: float):
    """The obstacle-gap head's training target and which labels are known: ``(target,
    known)`` for gap labels [m] (a numpy array or a torch tensor, any shape; +inf =
    nothing ahead, NaN = unknown), the target ``min(max(gap, 0), gap_range)`` (+inf ->
    ``gap_range``) and 0 where unknown, ``known`` = not NaN (bool, same kind and shape).
    The one clipping the loss (:class:`drive_il.training.losses.SpeedLoss`) and the
    offline evaluation (:mod:`drive_il.training.offline`) use."""
    import numpy as np
    if isinstance(gap, np.ndarray):
        known = ~np.isnan(gap)
        return np.clip(np.where(known, gap, 0.0), 0.0, float(gap_range)), known
    known = ~torch.isnan(gap)
    return torch.where(known, gap, torch.zeros_like(gap)).clamp(0.0, float(gap_range)), known


def gap_speed_cap(gap, *, stop_distance: float, deceleration: float):
    """The highest speed [m/s] from which a car decelerating at ``deceleration`` [m/s^2]
    stops ``stop_distance`` [m] short of an obstacle ``gap`` [m] ahead:
    ``sqrt(2 b max(0, gap - d0))`` -- the expert's braking curve behind a stopped obstacle
    (:meth:`drive_il.expert.expert.Expert._follow` with a lead speed of 0, and its
    red-light stop). ``gap`` is a float or a numpy array (elementwise); +inf gives +inf,
    NaN gives NaN."""
    if isinstance(gap, (float, int)):  # the driver's per-step scalar: no numpy round trip
        g = float(gap) - float(stop_distance)
        return g if math.isnan(g) else math.sqrt(2.0 * float(deceleration) * max(0.0, g))
    import numpy as np
    free = np.maximum(np.asarray(gap, dtype=np.float64) - float(stop_distance), 0.0)
    out = np.sqrt(2.0 * float(deceleration) * free)
    return float(out) if out.ndim == 0 else out


class SpeedHead(nn.Module):
    """Target-speed branches over image features and the measured speed.

    Args:
        n_features: width F of the image features.
        n_branches: branches (one per command head of a branched model, else 1).
        activation: factory of the activation module (the architecture's).
        hidden: widths of the hidden FC layers of a branch (DAVE-2's 100/50/10).
        dropout: dropout before each hidden FC layer.
        speed_features: width of the measured-speed encoding (one FC layer + activation).
        scale: ``speed_scale`` [m/s]: the input is ``v / scale``, the unit predicts
            ``v_target / scale``.
        measured_input: take the measured speed as an input (CILRS); False: the image
            features alone (``speed`` is then ignored).

    Forward:
        features (B, F), speed (B,) measured [m/s] (None = 0), branch (B,) long branch
        index (None = 0) -> (B,) target speed [m/s] of each sample's branch.
    """

    def __init__(self, n_features: int, n_branches: int = 1, *, activation: Callable[[], nn.Module] = nn.ReLU,
                 hidden: Sequence[int] = (100, 50, 10), dropout: float = 0.0, speed_features: int = 32,
                 scale: float = 10.0, measured_input: bool = True) -> None:
        super().__init__()
        if n_branches < 1:
            raise ValueError(f"n_branches must be >= 1, got {n_branches}")
        self.scale = float(scale)
        self.measured_input = bool(measured_input)
        self.speed_in = (nn.Sequential(nn.Linear(1, speed_features), activation()) if self.measured_input
                         else None)
        n_in = n_features + (speed_features if self.measured_input else 0)
        self.branches = nn.ModuleList(_mlp(n_in, hidden, activation, dropout) for _ in range(n_branches))

    def forward(self, features: torch.Tensor, speed: torch.Tensor | None = None,
                branch: torch.Tensor | None = None) -> torch.Tensor:
        b = features.shape[0]
        if self.speed_in is None:
            h = features                                                                      # (B, F)
        else:
            sp = (torch.zeros(b, 1, device=features.device) if speed is None
                  else speed.reshape(b, 1).to(device=features.device, dtype=torch.float32))
            h = torch.cat([features, self.speed_in(sp / self.scale).to(features.dtype)], dim=1)   # (B, F + S)
        if len(self.branches) == 1:
            return self.branches[0](h).reshape(b) * self.scale                                 # (B,) [m/s]
        outs = torch.cat([br(h) for br in self.branches], dim=1)                              # (B, n_branches)
        idx = (torch.zeros(b, dtype=torch.long, device=outs.device) if branch is None
               else branch.reshape(b).long())
        return outs.gather(1, idx[:, None]).reshape(b) * self.scale                           # (B,) [m/s]


def _mlp(n_in: int, hidden: Sequence[int], activation: Callable[[], nn.Module], dropout: float) -> nn.Sequential:
    layers: list[nn.Module] = []
    for w in hidden:
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        layers += [nn.Linear(n_in, int(w)), activation()]
        n_in = int(w)
    layers.append(nn.Linear(n_in, 1))
    return nn.Sequential(*layers)


class SpeedHeadMixin:
    """``has_speed_head`` / ``uses_speed`` of a policy module with an optional
    ``speed_head`` (None without one): the measured speed is an input whenever a speed
    head with ``measured_input`` runs (CILRS), or when ``speed_input`` feeds it to the
    steering heads too."""

    speed_head: "SpeedHead | None"

    def _speed_input(self) -> bool:
        """Whether the steering heads take the measured speed (architectures with a
        ``speed_input`` option override this)."""
        return False

    @property
    def has_speed_head(self) -> bool:
        return self.speed_head is not None

    @property
    def has_gap_head(self) -> bool:
        """The module predicts the obstacle gap (``[output] obstacle_gap = true``)."""
        return getattr(self, "gap_head", None) is not None

    @property
    def has_reason_head(self) -> bool:
        """The module classifies the expert's stop reason (``[output] stop_reason_head =
        true``, an auxiliary training task)."""
        return getattr(self, "reason_head", None) is not None

    @property
    def uses_speed(self) -> bool:
        return self._speed_input() or (self.speed_head is not None and self.speed_head.measured_input)

    def _speed_outputs(self, out: torch.Tensor, features: torch.Tensor, speed: torch.Tensor | None,
                       with_gap: bool, with_reason: bool, branch: torch.Tensor | None = None) -> tuple:
        """The tail of ``forward(..., with_speed=True)``, the same for every architecture.

        Args:
            out: (B, ...) the lateral output.
            features: (B, F) the features the heads read.
            speed: (B,) measured speed [m/s] or None.
            with_gap, with_reason: the extra outputs asked for.
            branch: (B,) int64 command branch of each sample (branched models), or None.

        Returns:
            ``(out, v)``; with ``with_gap`` ``(out, v, g)``; with ``with_reason`` ``(out, v,
            g, logits)``: v (B,) target speed [m/s], g (B,) obstacle gap [m], logits (B, 5)
            stop reasons, each None where the module has no such head.
        """
        v = self.speed_head(features, speed, branch) if self.speed_head is not None else None
        if not (with_gap or with_reason):
            return out, v
        gap_head = getattr(self, "gap_head", None)
        g = gap_head(features, None, branch) if gap_head is not None else None
        if not with_reason:
            return out, v, g
        reason_head = getattr(self, "reason_head", None)
        return out, v, g, (reason_head(features) if reason_head is not None else None)
