"""The rule-based planner expert: route planning on the lane graph, local planning,
controllers, presets.

``from drive_il.expert import Expert, ExpertConfig, load_expert_config``. The route
planner (:mod:`drive_il.expert.route_planner`) is imported by the simulators to plan
episode routes; the expert classes are imported lazily so that importing the planner
stays light.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "Expert",
    "ExpertConfig",
    "LongitudinalController",
    "load_expert_config",
    "plan_route",
    "random_route",
]

_LAZY = {
    "Expert": ("expert", "Expert"),
    "ExpertConfig": ("config", "ExpertConfig"),
    "load_expert_config": ("config", "load_expert_config"),
    "LongitudinalController": ("controllers", "LongitudinalController"),
    "plan_route": ("route_planner", "plan_route"),
    "random_route": ("route_planner", "random_route"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib
        mod, attr = _LAZY[name]
        return getattr(importlib.import_module(f".{mod}", __name__), attr)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
