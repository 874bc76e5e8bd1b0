"""DAVE-2 / PilotNet (Bojarski et al. 2016) and its command-conditioned variant.

M. Bojarski et al., "End to End Learning for Self-Driving Cars", arXiv:1604.07316, 2016.

The network, as in the paper's Figure 4 (``Dave2``)::

    input 3@66x200 (YUV)                                 (B, 3, 66, 200), values [0, 255]
    normalisation (fixed, x / 127.5 - 1)                  (B, 3, 66, 200)
    conv 5x5 stride 2, 24  -> 24@31x98
    conv 5x5 stride 2, 36  -> 36@14x47
    conv 5x5 stride 2, 48  -> 48@5x22
    conv 3x3 stride 1, 64  -> 64@3x20
    conv 3x3 stride 1, 64  -> 64@1x18
    flatten 1152
    FC 100, FC 50, FC 10
    output 1: inverse turning radius 1/r [1/m] (+ = right)

252,219 parameters (tested). The paper gives no activation function; ReLU by default
(``activation = "elu"`` available). The last unit predicts ``output_scale * (1/r)``
(a fixed, dimensionless re-scaling so that its typical magnitude is ~1; the module
returns 1/r in 1/m). The loss is the mean squared error on 1/r
(:class:`drive_il.training.losses.CurvatureLoss`). The steer command follows from the
kinematic bicycle relation 1/r = tan(delta)/L (:mod:`drive_il.policies.labels`).

``Dave2Branched`` is the command-conditioned variant for routes through junctions
(Codevilla et al., "End-to-end Driving via Conditional Imitation Learning", ICRA 2018,
branched architecture): the DAVE-2 convolutional trunk is shared and one DAVE-2 fully
connected head (100/50/10/1) per navigation command predicts 1/r; the head of the
command in force is selected. Heads: LANEFOLLOW, LEFT, RIGHT, STRAIGHT; lane changes
(CHANGELANELEFT/RIGHT) use the LANEFOLLOW head unless ``lane_change_heads = true``; VOID
uses LANEFOLLOW. An optional speed input (``speed_input``, Codevilla's measurement
module, here one FC layer) is concatenated to the image features of every head.

**Path head** (a preset's ``[output] kind = "path"``,
:class:`~drive_il.policies.presets.OutputConfig`): the last FC layer of the head (of every
branch) has K (lateral offsets) or 2K (with x) units instead of one, and ``forward``
returns the path ahead as (B, K, 2) points (x forward, y right) [m] in the ego frame at
the arc lengths ``path_distances`` (:mod:`drive_il.policies.path`); everything before
the last layer is unchanged. The module's ``output_kind`` is then ``"path"``. A 1/r
model (no ``[output]`` table) is built exactly as before.

**Speed head** (``[output] speed = true``, :mod:`drive_il.policies.speed`): a
:class:`~drive_il.policies.speed.SpeedHead` on the trunk's features with the measured
speed as its input, one branch per command head (``Dave2Branched``) or one (``Dave2``);
``forward(..., with_speed=True)`` returns ``(lateral, target speed (B,) [m/s])``. It is
created after every other layer, so the other layers of a seeded model are initialised
as without it. The auxiliary **stop-reason head** (``[output] stop_reason_head = true``:
FC 100/50/10/5 on the shared features, logits of what the expert slows for) is created
last of all, for the same reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from ..config import validate_fields
from ..types import STOP_REASONS, RoadOption
from ..control import curvature_to_steer
from .path import PathDecoder, PursuitParams, path_steer_batch
from .presets import OutputConfig
from .speed import SpeedHead, SpeedHeadMixin

__all__ = ["Dave2", "Dave2Branched", "Dave2BranchedConfig", "Dave2Config", "head_commands"]


@dataclass(frozen=True)
class Dave2Config:
    """DAVE-2 architecture.

    Attributes:
        activation: ``"relu"`` or ``"elu"`` (the paper names none).
        dropout: dropout before each FC layer (0 = the paper's network).
        output_scale: the last unit predicts ``output_scale * (1/r)`` [m]; forward
            returns 1/r [1/m].
    """

    activation: str = field(default="relu", metadata={"choices": ("relu", "elu")})
    dropout: float = field(default=0.0, metadata={"range": (0.0, 0.9)})
    output_scale: float = field(default=10.0, metadata={"range": (0.01, 1000.0)})


    def __post_init__(self) -> None:
        validate_fields(self)


@dataclass(frozen=True)
class Dave2BranchedConfig:
    """Command-conditioned DAVE-2 (Codevilla et al. 2018 branches on DAVE-2's trunk).

    Attributes:
        activation: ``"relu"`` or ``"elu"``.
        dropout: dropout before each FC layer.
        output_scale: as :class:`Dave2Config`.
        lane_change_heads: separate heads for CHANGELANELEFT/CHANGELANERIGHT.
        speed_input: feed the measured speed [m/s] (divided by ``speed_norm``) to the heads.
        speed_features: width of the speed FC layer.
        speed_norm: speed normalisation [m/s].
        target_point_input: feed the route's target point (forward, right) [m] in the
            ego frame (divided by ``target_point_norm``; CARLA leaderboard's sparse plan,
            TransFuser's target point, :mod:`drive_il.routing.target`) through an FC layer
            to the heads (and the speed head), beside the image features.
        target_point_features: width of that FC layer.
        target_point_norm: target point normalisation [m].
    """

    activation: str = field(default="relu", metadata={"choices": ("relu", "elu")})
    dropout: float = field(default=0.0, metadata={"range": (0.0, 0.9)})
    output_scale: float = field(default=10.0, metadata={"range": (0.01, 1000.0)})
    lane_change_heads: bool = False
    speed_input: bool = False
    speed_features: int = field(default=32, metadata={"range": (1, 1024)})
    speed_norm: float = field(default=10.0, metadata={"range": (0.1, 100.0)})
    target_point_input: bool = False
    target_point_features: int = field(default=32, metadata={"range": (1, 1024)})
    target_point_norm: float = field(default=25.0, metadata={"range": (0.1, 1000.0)})


    def __post_init__(self) -> None:
        validate_fields(self)


def head_commands(lane_change_heads: bool) -> tuple[RoadOption, ...]:
    """The commands that own a head, in head order."""
    base = (RoadOption.LANEFOLLOW, RoadOption.LEFT, RoadOption.RIGHT, RoadOption.STRAIGHT)
    if lane_change_heads:
        return base + (RoadOption.CHANGELANELEFT, RoadOption.CHANGELANERIGHT)
    return base


class _Normalize(nn.Module):
    """DAVE-2's fixed normalisation layer: x / 127.5 - 1 (not trained)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * (1.0 / 127.5) - 1.0


def _act(name: str) -> nn.Module:
    return nn.ELU() if name == "elu" else nn.ReLU()


def _trunk(channels: int, activation: str) -> nn.Sequential:
    """DAVE-2's five convolutional layers + flatten."""
    return nn.Sequential(
        nn.Conv2d(channels, 24, 5, stride=2), _act(activation),   # (B, 24, 31, 98)
        nn.Conv2d(24, 36, 5, stride=2), _act(activation),         # (B, 36, 14, 47)
        nn.Conv2d(36, 48, 5, stride=2), _act(activation),         # (B, 48, 5, 22)
        nn.Conv2d(48, 64, 3), _act(activation),                   # (B, 64, 3, 20)
        nn.Conv2d(64, 64, 3), _act(activation),                   # (B, 64, 1, 18)
        nn.Flatten(),                                             # (B, 1152)
    )


def _head(n_in: int, activation: str, dropout: float, n_out: int = 1) -> nn.Sequential:
    """DAVE-2's fully connected layers 100/50/10 and the output unit(s)."""
    layers: list[nn.Module] = []
    for a, b in ((n_in, 100), (100, 50), (50, 10)):
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        layers += [nn.Linear(a, b), _act(activation)]
    layers.append(nn.Linear(10, n_out))
    return nn.Sequential(*layers)


def _speed_head(output: OutputConfig, n_features: int, n_branches: int, activation: str,
                dropout: float) -> SpeedHead | None:
    """The speed head of ``[output] speed = true`` (DAVE-2 FC widths), else None."""
    if not output.speed:
        return None
    return SpeedHead(n_features, n_branches, activation=lambda: _act(activation), dropout=dropout,
                     scale=output.speed_scale, measured_input=output.speed_measured_input)


def _gap_head(output: OutputConfig, n_features: int, n_branches: int, activation: str,
              dropout: float) -> SpeedHead | None:
    """The obstacle-gap head of ``[output] obstacle_gap = true`` (the speed head's module on
    the image features alone, ``scale = gap_range``), else None."""
    if not output.obstacle_gap:
        return None
    return SpeedHead(n_features, n_branches, activation=lambda: _act(activation), dropout=dropout,
                     scale=output.gap_range, measured_input=False)


def _reason_head(output: OutputConfig, n_features: int, activation: str, dropout: float) -> nn.Module | None:
    """The stop-reason head of ``[output] stop_reason_head = true``: DAVE-2's FC
    100/50/10 and one logit per :data:`~drive_il.types.STOP_REASONS` entry, on the
    shared features (not branched: a red light is red whatever the command), else None."""
    if not output.stop_reason_head:
        return None
    return _head(n_features, activation, dropout, len(STOP_REASONS))


def _flat_size(trunk: nn.Module, input_shape: tuple[int, int, int]) -> int:
    with torch.no_grad():
        return int(trunk(torch.zeros(1, *input_shape)).shape[1])


class _CurvatureOutput:
    """Shared conversion of a 1/r output (or, with a path head, of a path) to steer."""

    output_kind: ClassVar[str] = "curvature"

    def output_to_steer(self, output: torch.Tensor, *, wheelbase: Any, max_steer_angle: Any,
                        speed: torch.Tensor | None = None, pursuit: PursuitParams | None = None) -> torch.Tensor:
        """(B, 1) or (B,) 1/r [1/m] -> (B,) steer in [-1, 1] via atan(L/r)/max_steer.

        A path head's (B, K, 2) points -> (B,) steer of the expert's pure pursuit along
        them (:func:`drive_il.policies.path.path_steer_batch`; ``speed`` [m/s] sets the
        look-ahead, default 0; ``pursuit`` default: the default expert preset's)."""
        if self.output_kind == "path":
            if speed is None:
                speed = torch.zeros(output.shape[0], dtype=output.dtype, device=output.device)
            return path_steer_batch(output, self.output_config.path_distances, speed.reshape(-1), wheelbase,
                                    max_steer_angle, pursuit or PursuitParams.from_expert())[0]
        return curvature_to_steer(output.reshape(-1), wheelbase, max_steer_angle)


def _output_units(output: OutputConfig | None) -> tuple[OutputConfig, int, PathDecoder | None]:
    """(output settings, units of the last layer, the path decoder or None)."""
    output = output if output is not None else OutputConfig()
    if output.is_path:
        return output, output.num_outputs, PathDecoder(output.path_distances, output.predict_x)
    return output, 1, None


class Dave2(SpeedHeadMixin, _CurvatureOutput, nn.Module):
    """DAVE-2 (Bojarski et al. 2016), see the module docstring.

    Args:
        config: :class:`Dave2Config`.
        input_shape: (C, H, W) of the preprocessed input (3, 66, 200 in the paper).

        output: the preset's ``[output]`` settings (None: 1/r).

    Forward:
        image (B, C, H, W) float in [0, 255] -> (B, 1) inverse turning radius [1/m]
        (path head: (B, K, 2) points [m]); ``speed`` (B,) measured [m/s] feeds the
        speed head only; ``with_speed=True`` -> (that, (B,) target speed [m/s] or None
        without a speed head); ``with_gap=True`` too -> (that, speed, (B,) obstacle gap
        [m] or None without a gap head, ``[output] obstacle_gap``); ``with_reason=True``
        (with ``with_speed``) -> (that, speed, gap or None, (B, 5) stop-reason logits or
        None without a stop-reason head, ``[output] stop_reason_head``).
    """

    architecture: ClassVar[str] = "dave2"
    uses_command: ClassVar[bool] = False

    def __init__(self, config: Dave2Config, input_shape: tuple[int, int, int] = (3, 66, 200), *,
                 output: OutputConfig | None = None) -> None:
        super().__init__()
        self.config = config
        self.output_config, n_out, self.path_decoder = _output_units(output)
        if self.path_decoder is not None:
            self.output_kind = "path"
        self.input_shape = tuple(int(v) for v in input_shape)
        self.normalize = _Normalize()
        self.trunk = _trunk(self.input_shape[0], config.activation)
        n_feat = _flat_size(self.trunk, self.input_shape)
        self.head = _head(n_feat, config.activation, config.dropout, n_out)
        self._inv_scale = 1.0 / config.output_scale
        self.speed_head = _speed_head(self.output_config, n_feat, 1, config.activation, config.dropout)
        self.gap_head = _gap_head(self.output_config, n_feat, 1, config.activation, config.dropout)
        self.reason_head = _reason_head(self.output_config, n_feat, config.activation, config.dropout)

    def forward(self, image: torch.Tensor, command: torch.Tensor | None = None,
                speed: torch.Tensor | None = None, *, with_speed: bool = False, with_gap: bool = False,
                with_reason: bool = False):
        features = self.trunk(self.normalize(image))   # (B, 1152)
        if self.path_decoder is not None:
            out = self.path_decoder(self.head(features))   # (B, K, 2) [m]
        else:
            out = self.head(features) * self._inv_scale    # (B, 1) 1/r [1/m]
        if not with_speed:
            return out
        return self._speed_outputs(out, features, speed, with_gap, with_reason)


class Dave2Branched(SpeedHeadMixin, _CurvatureOutput, nn.Module):
    """Command-conditioned DAVE-2 (Codevilla et al. 2018 branches), see module docstring.

    Args:
        config: :class:`Dave2BranchedConfig`.
        input_shape: (C, H, W) of the preprocessed input.

    Forward:
        image (B, C, H, W) float in [0, 255], command (B,) int RoadOption values
        (None = LANEFOLLOW), speed (B,) [m/s] (used only with ``speed_input``),
        ``target_point`` (B, 2) [m] (required with ``target_point_input``, else unused)
        -> (B, 1) inverse turning radius [1/m] of the head of each sample's command
        (path head: (B, K, 2) points [m] of that head); ``with_speed=True`` -> (that,
        (B,) target speed [m/s] of the speed branch of the command, or None without a
        speed head); ``with_gap=True`` too -> (that, speed, (B,) obstacle gap [m] of the
        command's gap branch, or None without a gap head, ``[output] obstacle_gap``);
        ``with_reason=True`` (with ``with_speed``) -> (that, speed, gap or None, (B, 5)
        stop-reason logits of the one shared head or None, ``[output] stop_reason_head``).
    """

    architecture: ClassVar[str] = "dave2_branched"
    uses_command: ClassVar[bool] = True

    def _speed_input(self) -> bool:
        return bool(self.config.speed_input)

    @property
    def uses_target_point(self) -> bool:
        """The network reads the route's target point (``target_point_input``)."""
        return bool(self.config.target_point_input)

    def __init__(self, config: Dave2BranchedConfig, input_shape: tuple[int, int, int] = (3, 66, 200), *,
                 output: OutputConfig | None = None) -> None:
        super().__init__()
        self.config = config
        self.output_config, n_out, self.path_decoder = _output_units(output)
        if self.path_decoder is not None:
            self.output_kind = "path"
        self.input_shape = tuple(int(v) for v in input_shape)
        self.normalize = _Normalize()
        self.trunk = _trunk(self.input_shape[0], config.activation)
        n_feat = _flat_size(self.trunk, self.input_shape)
        if config.speed_input:
            self.speed_fc = nn.Sequential(nn.Linear(1, config.speed_features), _act(config.activation))
            n_feat += config.speed_features
        else:
            self.speed_fc = None
        if config.target_point_input:
            self.target_fc = nn.Sequential(nn.Linear(2, config.target_point_features), _act(config.activation))
            n_feat += config.target_point_features
        else:
            self.target_fc = None
        cmds = head_commands(config.lane_change_heads)
        self.heads = nn.ModuleList(_head(n_feat, config.activation, config.dropout, n_out) for _ in cmds)
        # RoadOption value (VOID=-1 .. 6) + 1 -> head index; anything else -> LANEFOLLOW (0).
        table = torch.zeros(8, dtype=torch.long)
        for i, c in enumerate(cmds):
            table[int(c) + 1] = i
        self.register_buffer("_head_of", table, persistent=False)
        self._inv_scale = 1.0 / config.output_scale
        self.speed_head = _speed_head(self.output_config, n_feat, len(cmds), config.activation, config.dropout)
        self.gap_head = _gap_head(self.output_config, n_feat, len(cmds), config.activation, config.dropout)
        self.reason_head = _reason_head(self.output_config, n_feat, config.activation, config.dropout)

    def head_index(self, command: torch.Tensor | None, batch: int) -> torch.Tensor:
        """(B,) head index of each sample's command."""
        if command is None:
            return torch.zeros(batch, dtype=torch.long, device=self._head_of.device)
        c = command.reshape(-1).long().clamp(-1, 6) + 1
        return self._head_of[c]

    def forward(self, image: torch.Tensor, command: torch.Tensor | None = None,
                speed: torch.Tensor | None = None, *, with_speed: bool = False, with_gap: bool = False,
                with_reason: bool = False, target_point: torch.Tensor | None = None):
        b = image.shape[0]
        features = self.trunk(self.normalize(image))                      # (B, 1152)
        if self.speed_fc is not None:
            sp = torch.zeros(b, 1, device=image.device) if speed is None else speed.reshape(b, 1).float()
            features = torch.cat([features, self.speed_fc(sp / self.config.speed_norm)], dim=1)
        if self.target_fc is not None:
            if target_point is None:
                raise ValueError("this model reads the route's target point (target_point_input = true); "
                                 "none was given")
            tp = target_point.reshape(b, 2).float() * (1.0 / self.config.target_point_norm)
            features = torch.cat([features, self.target_fc(tp)], dim=1)
        if self.path_decoder is not None:
            outs = torch.stack([h(features) for h in self.heads], dim=1)  # (B, n_heads, n_out)
            sel = outs[torch.arange(b, device=outs.device), self.head_index(command, b)]   # (B, n_out)
            out = self.path_decoder(sel)                                  # (B, K, 2) [m]
        else:
            outs = torch.cat([h(features) for h in self.heads], dim=1)   # (B, n_heads)
            idx = self.head_index(command, b)[:, None]                    # (B, 1)
            out = outs.gather(1, idx) * self._inv_scale                   # (B, 1) 1/r [1/m]
        if not with_speed:
            return out
        return self._speed_outputs(out, features, speed, with_gap, with_reason, self.head_index(command, b))


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


__all__ += ["count_parameters"]
