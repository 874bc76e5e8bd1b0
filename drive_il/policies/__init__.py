"""Learners: ALVINN (Pomerleau 1989) and DAVE-2 (Bojarski et al. 2016), their
command-conditioned variant (Codevilla et al. 2018), preprocessing shared by training
and driving, self-describing checkpoints and the driving policy.

Modules (imported lazily: ``import drive_il.policies`` does not import torch):

* :mod:`.preprocessing` — ``PreprocessConfig``, ``preprocess``, ``preprocess_batch``;
* :mod:`.labels` — ``steer_error_deg`` (1/r <-> steer itself: :mod:`drive_il.control`);
* :mod:`.alvinn`, :mod:`.dave2` — the networks and their configs;
* :mod:`.path` — the path head's geometry (points in the ego frame, pure pursuit along them);
* :mod:`.speed` — ``SpeedHead``, the learned target speed (``[output] speed = true``, CILRS);
* :mod:`.registry` — ``ARCHITECTURES``, ``ModelPreset``, ``load_model_preset``, ``build_policy``;
* :mod:`.checkpoint` — ``save_checkpoint``, ``load_checkpoint``, ``check_camera_rig``;
* :mod:`.driver` — ``PolicyDriver`` (the learner as a Driver).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "PreprocessConfig": "preprocessing", "preprocess": "preprocessing", "preprocess_batch": "preprocessing",
    "steer_error_deg": "labels",
    "ARCHITECTURES": "registry", "ModelPreset": "registry", "load_model_preset": "registry",
    "build_policy": "registry",
    "save_checkpoint": "checkpoint", "load_checkpoint": "checkpoint", "check_camera_rig": "checkpoint",
    "CheckpointInfo": "checkpoint", "VehicleParams": "checkpoint",
    "PolicyDriver": "driver",
    "SpeedHead": "speed",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    mod = _EXPORTS.get(name)
    if mod is None:
        raise AttributeError(f"module 'drive_il.policies' has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{mod}"), name)
