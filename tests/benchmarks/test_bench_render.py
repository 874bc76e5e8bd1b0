"""The renderer's timing helpers (drive_il.benchmarks.render); no timing asserted."""

from __future__ import annotations

import numpy as np

from drive_il.benchmarks.render import bare_remap_baseline, bench_render
from drive_il.scenario import CameraConfig
from drive_il.sim.embedded.raster import MapRaster
from drive_il.types import ActorState


def _raster() -> MapRaster:
    """A 40 m x 40 m grey ground with a pyramid (no map needed)."""
    import cv2

    img = np.full((400, 400, 4), 90, np.uint8)
    levels = [img]
    while min(levels[-1].shape[:2]) > 48:
        levels.append(cv2.pyrDown(levels[-1]))
    return MapRaster(levels=levels, res=0.1, x0=-20.0, y0=-20.0, digest="grey", border_value=(0, 0, 0, 0))


def test_bare_remap_baseline_warps_into_the_frame():
    run = bare_remap_baseline(66, 200, _raster())
    out = run()
    assert out.shape == (66, 200, 4) and out.dtype == np.uint8
    assert (out[-1] == 90).all()               # bottom row: ground inside the raster
    assert run() is out                        # the buffer is reused


def test_bench_render_returns_a_rate():
    raster = _raster()
    assert bench_render(CameraConfig(), 20, raster=raster) > 0
    car = ActorState(actor_id=1, x=6.0, y=0.0, yaw=0.0)
    assert bench_render(CameraConfig(), 5, raster=raster, actors=(car,)) > 0
