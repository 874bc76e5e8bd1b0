"""Behaviour cloning: augmentation with geometric label correction
(:mod:`.augment`), losses returning metrics (:mod:`.losses`), the data glue
(:mod:`.data_source`) and the training loop with checkpoints and TensorBoard
(:mod:`.trainer`: ``train_policy``, ``fit``, ``TrainResult``).

Imported lazily (``import drive_il.training`` does not import torch).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {"train_policy": "trainer", "fit": "trainer", "TrainResult": "trainer",
            "AugmentConfig": "augment", "SampleTransform": "augment"}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    mod = _EXPORTS.get(name)
    if mod is None:
        raise AttributeError(f"module 'drive_il.training' has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{mod}"), name)
