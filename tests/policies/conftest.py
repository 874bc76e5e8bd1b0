"""Shared fixtures of the policy tests: an untrained path-head checkpoint, and the
learner settings a rollout worker rebuilds a driver with."""

from __future__ import annotations

import math

import pytest

#: the checkpoint's vehicle: wheelbase [m], road-wheel angle at steer 1 [rad]
WHEELBASE, MAX_STEER_ANGLE = 2.9, math.radians(35.0)


@pytest.fixture
def path_checkpoint(tmp_path):
    """A checkpoint of an untrained ``dave2_path`` (seed 0) with one 66x200 camera
    ``center`` and the vehicle above: its ``best`` directory."""
    import torch

    from drive_il.policies.checkpoint import VehicleParams, save_checkpoint
    from drive_il.policies.registry import build_policy, load_model_preset

    preset = load_model_preset("dave2_path")
    torch.manual_seed(0)
    rig = [{"name": "center", "width": 200, "height": 66, "fov_deg": 60.0, "x": 1.4, "y": 0.0, "z": 1.5,
            "pitch_deg": -8.0, "yaw_deg": 0.0}]
    return save_checkpoint(tmp_path / "p" / "best", build_policy(preset), preset,
                           vehicle=VehicleParams(WHEELBASE, MAX_STEER_ANGLE), cameras=rig)


@pytest.fixture
def worker_learner_kwargs():
    """``f(learner) -> dict``: the keywords a rollout worker rebuilds ``learner`` with
    (``DriverRecipe.of(...).learner_kwargs``)."""
    from drive_il.rollout.arbitration import Drivers
    from drive_il.rollout.parallel.jobs import DriverRecipe

    class _Expert:
        config, vehicle = None, None

    return lambda learner: dict(DriverRecipe.of(Drivers(expert=_Expert(), learner=learner)).learner_kwargs)
