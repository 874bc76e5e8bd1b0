"""Fixtures for the data tests: small synthetic episodes written by the real recorder."""

from __future__ import annotations

import pytest

from drive_il.data.synthetic import write_synthetic_episodes


@pytest.fixture
def small_dir(tmp_path):
    """A directory with 3 finished 1-camera episodes of 30 steps (16x24 frames)."""
    d = tmp_path / "data"
    write_synthetic_episodes(d, 3, steps=30, n_cameras=1, height=16, width=24)
    return d
