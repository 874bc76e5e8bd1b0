"""Builders that wire presets and files into drivers and observers for the commands.

Kept apart from :mod:`drive_il.cli` (parsing only) so the DAgger loop, the evaluation
and the main job build drivers the same way as ``drive-il drive``. Heavy parts (torch,
pygame) are imported lazily.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .scenario import Scenario

__all__ = ["make_expert", "make_learner", "make_human", "make_recorder", "make_overlay"]


def make_expert(scenario: Scenario, *, preset: str | None = None):
    """The rule-based expert for ``scenario`` (preset: name in ``experts/`` or a path;
    default: the scenario's ``expert``).

    Raises:
        ConfigError: unknown preset or bad preset file.
    """
    from .expert import Expert, load_expert_config
    cfg = load_expert_config(preset or scenario.expert)
    return Expert(config=cfg, vehicle=scenario.vehicle)


def make_learner(checkpoint: str | Path, scenario: Scenario):
    """A PolicyDriver from a checkpoint (a run directory or a checkpoint directory),
    checked against the scenario's camera rig.

    Raises:
        CheckpointError: missing/corrupt checkpoint, other architecture or format
            version, camera rig the model does not expect.
    """
    from .policies.driver import PolicyDriver
    return PolicyDriver.from_checkpoint(checkpoint, scenario=scenario)


def make_human(*, calibration: str | Path | None = None, joystick: int | None = None) -> Any:
    """A human driver (keyboard, gamepad or wheel through pygame)."""
    from .viz.human import HumanDriver
    return HumanDriver(calibration=Path(calibration) if calibration else None, joystick=joystick,
                       keyboard=True)


def make_recorder(out_dir: str | Path, **kwargs: Any):
    """The episode recorder writing HDF5 episodes into ``out_dir``."""
    from .data.recorder import EpisodeRecorder
    return EpisodeRecorder(Path(out_dir), **kwargs)


def make_overlay(*, show: bool = True, record_screens: str | Path | None = None,
                 threshold: float = 1.0, simulator: Any = None, gif: str | Path | None = None,
                 camera: str = "center", realtime: bool = False):
    """The pygame overlay observer (lane boundaries from ``simulator.map``, read at
    every episode start)."""
    from .viz.overlay import Overlay
    return Overlay(show=show, record_screens=Path(record_screens) if record_screens else None,
                   threshold=threshold, simulator=simulator, gif=Path(gif) if gif else None,
                   camera=camera, realtime=realtime)
