"""An ensemble of trained policies driving as one: the mean of their outputs.

DA-RB (Prakash et al., CVPR 2020) found that an ensemble of the DAgger iterations'
policies recovers part of what plain DAgger loses. :class:`EnsembleDriver` is a
:class:`~drive_il.policies.driver.PolicyDriver` whose network is
:class:`EnsembleModule`: every member sees the same preprocessed frame (and command and
speed, where it uses them) and the ensemble's output is the **mean of the members'
outputs**, decoded once: DAVE-2's mean 1/r (then converted to steer with the driven
vehicle, as for one policy), ALVINN's mean direction-unit activations (then decoded),
a path head's mean points (then followed by pure pursuit).
Speed control, the curve governor and ``predict_steer`` are the PolicyDriver's.

Members must share the architecture and the preprocessing (one input for all); the
DAgger rounds of one run always do. The driver's :attr:`members` lists the checkpoints.

Rollout workers (:mod:`drive_il.rollout.parallel`) rebuild a learner from its
checkpoints (``DriverRecipe``): an ensemble travels as the tuple of its members' paths.

Example::

    driver = EnsembleDriver.from_checkpoints(["runs/x/round_000/model", "runs/x/round_001/model"],
                                             scenario=scenario)
    control = driver.act(step)
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from ..errors import CheckpointError
from .checkpoint import CheckpointInfo, check_camera_rig, load_checkpoint
from .driver import PolicyDriver

__all__ = ["EnsembleDriver", "EnsembleModule"]


class EnsembleModule(nn.Module):
    """The mean of several policies' outputs (same architecture and input).

    Forward: image (B, C, H, W), command (B,) or None, speed (B,) or None,
    ``target_point`` (B, 2) [m] or None (given to the members that read it) -> the
    members' mean output ((B, 1) 1/r or (B, K) unit activations); ``with_speed=True``
    -> (that, the members' mean target speed (B,) [m/s], or None unless every member
    has a speed head); ``with_gap=True`` too -> (that, speed, the members' mean obstacle
    gap (B,) [m], or None unless every member has a gap head).
    """

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one policy")
        self.members = nn.ModuleList(members)
        first = members[0]
        self.output_kind = first.output_kind
        self.output_config = getattr(first, "output_config", None)
        self.architecture = getattr(first, "architecture", "")
        self.uses_command = any(bool(m.uses_command) for m in members)
        self.uses_speed = any(bool(m.uses_speed) for m in members)
        self.has_speed_head = all(bool(getattr(m, "has_speed_head", False)) for m in members)
        self.has_gap_head = all(bool(getattr(m, "has_gap_head", False)) for m in members)
        self.uses_target_point = any(bool(getattr(m, "uses_target_point", False)) for m in members)

    def _call(self, m: nn.Module, image: torch.Tensor, command: torch.Tensor | None, speed: torch.Tensor | None,
              target_point: torch.Tensor | None, with_speed: bool, with_gap: bool = False):
        extra = {"target_point": target_point} if getattr(m, "uses_target_point", False) else {}
        if with_speed:
            extra["with_speed"] = True
        if with_gap:
            extra["with_gap"] = True
        return m(image, command if m.uses_command else None, speed if m.uses_speed else None, **extra)

    def forward(self, image: torch.Tensor, command: torch.Tensor | None = None,
                speed: torch.Tensor | None = None, *, with_speed: bool = False, with_gap: bool = False,
                target_point: torch.Tensor | None = None):
        if not with_speed:
            outs = [self._call(m, image, command, speed, target_point, False) for m in self.members]
            return torch.stack([o.float() for o in outs]).mean(dim=0)
        gap = with_gap and self.has_gap_head
        res = [self._call(m, image, command, speed, target_point, True, gap) for m in self.members]
        lateral = torch.stack([r[0].float() for r in res]).mean(dim=0)
        v = (torch.stack([r[1].float() for r in res]).mean(dim=0)   # (B,) mean target speed [m/s]
             if self.has_speed_head else None)
        if not with_gap:
            return lateral, v
        return lateral, v, (torch.stack([r[2].float() for r in res]).mean(dim=0) if gap else None)   # (B,) [m]

    def output_to_steer(self, output: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        """Decode the mean output as the first member decodes its own."""
        return self.members[0].output_to_steer(output, **kwargs)


class EnsembleDriver(PolicyDriver):
    """Several checkpoints driving as one (see the module docstring).

    Args:
        members: checkpoint paths (run or checkpoint directories) or
            ``(module, CheckpointInfo)`` pairs; at least one.
        scenario, **kwargs: as for :class:`~drive_il.policies.driver.PolicyDriver`
            (the first member's vehicle is the default geometry).

    Attributes:
        members: the members' checkpoint paths (None for a member given as a module).

    Raises:
        CheckpointError: no member, an unreadable checkpoint, members of different
            architectures or preprocessing, a scenario rig a member cannot drive.
    """

    name = "learner"

    def __init__(self, members: Sequence[str | Path | tuple[Any, CheckpointInfo]], *, scenario: Any = None,
                 **kwargs: Any) -> None:
        if not members:
            raise CheckpointError("an ensemble needs at least one checkpoint")
        loaded = [load_checkpoint(m) if isinstance(m, (str, Path)) else m for m in members]
        first_info = loaded[0][1]
        for _, info in loaded[1:]:
            if info.architecture != first_info.architecture or info.preprocessing != first_info.preprocessing:
                raise CheckpointError(
                    f"{info.path}: an ensemble's members must share the architecture and the preprocessing "
                    f"({info.architecture} vs {first_info.architecture} of {first_info.path})")
            if getattr(info.preset, "output", None) != getattr(first_info.preset, "output", None):
                raise CheckpointError(
                    f"{info.path}: an ensemble's members must share the output ([output] of the preset: "
                    f"1/r or the same path head) with {first_info.path}")
        if scenario is not None:
            for _, info in loaded:
                check_camera_rig(info, scenario.cameras, source=f"scenario {scenario.name!r}")
        self.members: tuple[str | None, ...] = tuple(None if info.path is None else str(info.path)
                                                     for _, info in loaded)
        module = EnsembleModule([m for m, _ in loaded])
        # no checkpoint path: a rollout worker cannot rebuild it from a DriverRecipe
        info = dataclasses.replace(first_info, path=None,
                                   training={"ensemble": [m for m in self.members if m is not None]})
        super().__init__((module, info), scenario=scenario, **kwargs)

    @classmethod
    def from_checkpoints(cls, checkpoints: Sequence[str | Path], *, scenario: Any = None,
                         **kwargs: Any) -> EnsembleDriver:
        """Load the checkpoints and check them against the scenario's rig."""
        return cls(list(checkpoints), scenario=scenario, **kwargs)
