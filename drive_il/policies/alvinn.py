"""ALVINN: Autonomous Land Vehicle In a Neural Network (Pomerleau 1989).

D. A. Pomerleau, "ALVINN: An Autonomous Land Vehicle in a Neural Network", NIPS 1988 /
CMU-CS AIP-77 (1989); and "Efficient Training of Artificial Neural Networks for
Autonomous Navigation", Neural Computation 3(1), 1991.

The network (faithful to the 1989 paper, see REFERENCES.md)::

    30x32 video retina (blue band)  ->  29 hidden units (sigmoid)  ->  45 direction units (sigmoid)

* Input: a single 30x32 channel, by default the blue band of the camera frame
  (:mod:`drive_il.policies.preprocessing`, ``color_space = "blue"``), scaled by a fixed
  ``x / 255`` layer. The 1989 range-finder retina and the road-intensity feedback unit
  are not modelled (the simulator gives no range image).
* Hidden layer: 29 units by default; the 1991 follow-up used 4-5 (``hidden_units``).
* Output: ``output_units`` (45) direction units spanning the steering range linearly,
  unit 0 = full left (steer -``steer_range``), middle unit = straight ahead, last unit =
  full right. (The paper's units are a linear code of turn curvature; we code the
  ``steer`` command, a monotonic function of curvature, so that the same units fit every
  vehicle; 1/r labels are converted with :mod:`drive_il.policies.labels`.)
* Target (``target``): the 1989 "hill" over 9 units centred on the correct unit,
  0.10 0.32 0.61 0.89 1.00 0.89 0.61 0.32 0.10 and zero elsewhere (``"hill"``), or the
  1991 Gaussian exp(-(i - d)^2 / 10) (``"gaussian"``). A label between two units is
  encoded at its fractional position (the hill is linearly interpolated).
* Decoding (``decode``): the 1989 paper steers towards the highest unit; the 1991
  paper takes the peak of a fitted Gaussian. ``"gaussian"`` (default) fits a Gaussian
  through the highest unit and its two neighbours (a parabola through their
  logarithms), which recovers the continuous peak with sub-unit resolution;
  ``"parabola"`` fits a parabola to the raw activations; ``"argmax"`` is the paper's
  highest unit.

The loss is the mean squared error between the output units and the target (the
back-propagation network of the paper); see :class:`drive_il.training.losses.AlvinnLoss`.

With a path head (a preset's ``[output] kind = "path"``) the output layer has K (or 2K)
linear units instead of the direction units and ``forward`` returns (B, K, 2) points
[m] (:mod:`drive_il.policies.path`); the hidden layer is unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from ..config import validate_fields
from ..types import STOP_REASONS
from .path import PathDecoder, PursuitParams, path_steer_batch
from .presets import OutputConfig
from .speed import SpeedHead, SpeedHeadMixin

__all__ = ["HILL_1989", "Alvinn", "AlvinnConfig", "decode_units", "encode_targets"]

#: The 1989 paper's 9-unit target "hill" (Pomerleau 1989).
HILL_1989: tuple[float, ...] = (0.10, 0.32, 0.61, 0.89, 1.00, 0.89, 0.61, 0.32, 0.10)


@dataclass(frozen=True)
class AlvinnConfig:
    """ALVINN architecture.

    Attributes:
        hidden_units: hidden layer size (29 in 1989; 4-5 in 1991).
        output_units: direction units spanning the steering range (45 in 1989, 30 in 1991).
        steer_range: the outer units stand for steer = -steer_range / +steer_range.
        target: ``"hill"`` (1989) or ``"gaussian"`` (1991).
        gaussian_width: denominator of the 1991 target exp(-(i - d)^2 / width) [units^2].
        decode: ``"gaussian"``, ``"parabola"`` or ``"argmax"`` (see module docstring).
    """

    hidden_units: int = field(default=29, metadata={"range": (1, 4096)})
    output_units: int = field(default=45, metadata={"range": (5, 1001)})
    steer_range: float = field(default=1.0, metadata={"range": (0.01, 1.0)})
    target: str = field(default="hill", metadata={"choices": ("hill", "gaussian")})
    gaussian_width: float = field(default=10.0, metadata={"range": (0.1, 1000.0)})
    decode: str = field(default="gaussian", metadata={"choices": ("gaussian", "parabola", "argmax")})


    def __post_init__(self) -> None:
        validate_fields(self)


def _steer_to_position(steer: torch.Tensor, cfg: AlvinnConfig) -> torch.Tensor:
    """Fractional unit index d in [0, K-1] of a steer value."""
    k = cfg.output_units - 1
    s = torch.clamp(steer / cfg.steer_range, -1.0, 1.0)
    return (s + 1.0) * 0.5 * k


def _position_to_steer(pos: torch.Tensor, cfg: AlvinnConfig) -> torch.Tensor:
    k = cfg.output_units - 1
    return torch.clamp((pos / k) * 2.0 - 1.0, -1.0, 1.0) * cfg.steer_range


def encode_targets(steer: torch.Tensor, cfg: AlvinnConfig) -> torch.Tensor:
    """Target activations of the direction units for steer labels.

    Args:
        steer: (B,) steer labels in [-1, 1] (+ = right).
        cfg: the architecture (units, range, target kind).

    Returns:
        (B, output_units) float32 targets in [0, 1].
    """
    steer = torch.as_tensor(steer, dtype=torch.float32)
    d = _steer_to_position(steer, cfg)[:, None]                       # (B, 1)
    i = torch.arange(cfg.output_units, dtype=torch.float32, device=steer.device)[None, :]  # (1, K)
    off = i - d                                                       # (B, K)
    if cfg.target == "gaussian":
        return torch.exp(-(off ** 2) / cfg.gaussian_width)
    hill = torch.tensor(HILL_1989, dtype=torch.float32, device=steer.device)
    half = (len(HILL_1989) - 1) // 2
    x = off + half                        # position within the hill profile
    x0 = torch.floor(x)
    frac = x - x0
    x0 = x0.long()

    def at(j: torch.Tensor) -> torch.Tensor:
        ok = (j >= 0) & (j < len(HILL_1989))
        return torch.where(ok, hill[j.clamp(0, len(HILL_1989) - 1)], torch.zeros((), device=j.device))

    return at(x0) * (1.0 - frac) + at(x0 + 1) * frac


def decode_units(units: torch.Tensor, cfg: AlvinnConfig) -> torch.Tensor:
    """Continuous steer from direction-unit activations.

    Args:
        units: (B, output_units) activations.
        cfg: the architecture (decode method, range).

    Returns:
        (B,) steer in [-steer_range, steer_range].
    """
    units = units.float()
    k = units.shape[1]
    peak = units.argmax(dim=1)                                     # (B,)
    pos = peak.float()
    if cfg.decode != "argmax":
        lo = (peak - 1).clamp(0, k - 1)
        hi = (peak + 1).clamp(0, k - 1)
        ym = units.gather(1, lo[:, None]).squeeze(1)
        y0 = units.gather(1, peak[:, None]).squeeze(1)
        yp = units.gather(1, hi[:, None]).squeeze(1)
        if cfg.decode == "gaussian":
            eps = 1e-6
            ym, y0, yp = (torch.log(t.clamp_min(eps)) for t in (ym, y0, yp))
        denom = ym - 2.0 * y0 + yp
        delta = torch.where(denom < -1e-9, 0.5 * (ym - yp) / denom, torch.zeros_like(denom))
        delta = delta.clamp(-0.5, 0.5)
        inside = (peak > 0) & (peak < k - 1)
        pos = pos + torch.where(inside, delta, torch.zeros_like(delta))
    return _position_to_steer(pos, cfg)


class _Scale(nn.Module):
    """Fixed input scaling x / 255 (not trained)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * (1.0 / 255.0)


class Alvinn(SpeedHeadMixin, nn.Module):
    """ALVINN (Pomerleau 1989): one hidden layer, direction units out.

    Args:
        config: :class:`AlvinnConfig`.
        input_shape: (C, H, W) of the preprocessed input (1, 30, 32 in the paper).

    Forward:
        image (B, C, H, W) float in [0, 255] -> (B, output_units) sigmoid activations;
        with a speed head (``[output] speed = true``) and ``with_speed=True`` ->
        (that, (B,) target speed [m/s]; ``speed`` (B,) the measured speed [m/s]);
        ``with_gap=True`` too -> (that, speed, (B,) obstacle gap [m] or None without a
        gap head, ``[output] obstacle_gap``); ``with_reason=True`` (with ``with_speed``)
        -> (that, speed, gap or None, (B, 5) stop-reason logits or None without a
        stop-reason head, ``[output] stop_reason_head``: one linear layer on the hidden
        units).
    """

    architecture: ClassVar[str] = "alvinn"
    #: what ``forward`` returns: activations of the direction units.
    output_kind: ClassVar[str] = "steer_units"
    uses_command: ClassVar[bool] = False

    def __init__(self, config: AlvinnConfig, input_shape: tuple[int, int, int] = (1, 30, 32), *,
                 output: OutputConfig | None = None) -> None:
        super().__init__()
        self.config = config
        self.output_config = output if output is not None else OutputConfig()
        self.path_decoder = (PathDecoder(self.output_config.path_distances, self.output_config.predict_x)
                             if self.output_config.is_path else None)
        if self.path_decoder is not None:
            self.output_kind = "path"
        self.input_shape = tuple(int(v) for v in input_shape)
        n_in = int(np.prod(self.input_shape))
        self.normalize = _Scale()
        self.hidden = nn.Linear(n_in, config.hidden_units)
        n_out = self.output_config.num_outputs if self.path_decoder is not None else config.output_units
        self.output = nn.Linear(config.hidden_units, n_out)
        # [output] speed = true: one more unit on the hidden layer (with a 4-unit encoding
        # of the measured speed), drive_il.policies.speed
        self.speed_head = (SpeedHead(config.hidden_units, 1, activation=nn.Sigmoid, hidden=(), speed_features=4,
                                     scale=self.output_config.speed_scale,
                                     measured_input=self.output_config.speed_measured_input)
                           if self.output_config.speed else None)
        # [output] obstacle_gap = true: one more unit on the hidden layer (the gap [m])
        self.gap_head = (SpeedHead(config.hidden_units, 1, activation=nn.Sigmoid, hidden=(),
                                   scale=self.output_config.gap_range, measured_input=False)
                         if self.output_config.obstacle_gap else None)
        # [output] stop_reason_head = true: logits of the expert's stop reason (auxiliary)
        self.reason_head = (nn.Linear(config.hidden_units, len(STOP_REASONS))
                            if self.output_config.stop_reason_head else None)

    def forward(self, image: torch.Tensor, command: torch.Tensor | None = None,
                speed: torch.Tensor | None = None, *, with_speed: bool = False, with_gap: bool = False,
                with_reason: bool = False):
        x = self.normalize(image).flatten(1)          # (B, 960)
        h = torch.sigmoid(self.hidden(x))             # (B, hidden)
        if self.path_decoder is not None:
            out = self.path_decoder(self.output(h))   # (B, K, 2) [m]
        else:
            out = torch.sigmoid(self.output(h))       # (B, 45)
        if not with_speed:
            return out
        return self._speed_outputs(out, h, speed, with_gap, with_reason)

    def output_to_steer(self, output: torch.Tensor, *, wheelbase: Any = None,
                        max_steer_angle: Any = None, speed: torch.Tensor | None = None,
                        pursuit: PursuitParams | None = None) -> torch.Tensor:
        """(B, K) unit activations -> (B,) steer (vehicle parameters unused); a path
        head's (B, K, 2) points -> the steer of pure pursuit along them (as DAVE-2's)."""
        if self.output_kind == "path":
            if speed is None:
                speed = torch.zeros(output.shape[0], dtype=output.dtype, device=output.device)
            return path_steer_batch(output, self.output_config.path_distances, speed.reshape(-1), wheelbase,
                                    max_steer_angle, pursuit or PursuitParams.from_expert())[0]
        return decode_units(output, self.config)

    def encode_targets(self, steer: torch.Tensor) -> torch.Tensor:
        """(B,) steer labels -> (B, K) unit targets."""
        return encode_targets(steer, self.config)
