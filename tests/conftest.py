"""Shared fixtures: headless pygame, the shared CARLA towns, small scenarios."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")

REPO = Path(__file__).resolve().parent.parent
SHARED_MAPS = REPO.parent / "shared" / "maps"


def shared_maps_dir() -> Path | None:
    """../shared/maps beside the checkout, or None where it is absent."""
    return SHARED_MAPS if (SHARED_MAPS / "Town01.xodr").exists() else None


@pytest.fixture(scope="session")
def maps_dir() -> Path:
    """The shared CARLA towns (Town01, Town02, Town04); skips where absent."""
    d = shared_maps_dir()
    if d is None:
        pytest.skip(f"real CARLA towns not available: {SHARED_MAPS} is absent")
    return d


@pytest.fixture(scope="session")
def town01_map(maps_dir):
    """carla.Map of Town01 parsed offline."""
    import carla
    return carla.Map("Town01", (maps_dir / "Town01.xodr").read_text())
