"""The rule-based planner expert: local planning, controllers, presets (route planning
is :mod:`drive_il.routing`).

``from drive_il.expert import Expert, ExpertConfig, load_expert_config``; the classes are
imported lazily.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "Expert",
    "ExpertConfig",
    "LongitudinalController",
    "load_expert_config",
]

_LAZY = {
    "Expert": ("expert", "Expert"),
    "ExpertConfig": ("config", "ExpertConfig"),
    "load_expert_config": ("config", "load_expert_config"),
    "LongitudinalController": ("controllers", "LongitudinalController"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib
        mod, attr = _LAZY[name]
        return getattr(importlib.import_module(f".{mod}", __name__), attr)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
