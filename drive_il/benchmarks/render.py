"""Timing helpers for the embedded renderer (:class:`drive_il.sim.embedded.camera.Camera`).

Not a ``drive-il bench`` target itself (no ``NAME``): ``drive-il bench sim`` uses
:func:`bare_remap_baseline` as the baseline of its camera configurations, and
:func:`bench_render` times the renderer alone.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from ..scenario import CameraConfig
    from ..sim.embedded.raster import MapRaster
    from ..sim.embedded.weather import WeatherLook
    from ..types import ActorState

__all__ = ["bare_remap_baseline", "bench_render"]


def bare_remap_baseline(height: int, width: int, raster: MapRaster) -> Callable[[], np.ndarray]:
    """A "bare minimal render" of the same frame size: one bilinear ``cv2.warpPerspective``
    of a fixed ground view (default camera mount and field of view, yaw 0.3 rad, at the
    raster's centre) from the raster's level 0 into an (H, W, 4) uint8 buffer.

    Args:
        height, width: frame size [px].
        raster: the map raster.

    Returns:
        A callable doing one such warp per call (for ratios in ``drive-il bench sim``);
        it returns the (H, W, 4) buffer (reused between calls).
    """
    import cv2
    import numpy as np

    from ..camera import PinholeCamera
    from ..scenario import CameraConfig

    lv = raster.levels[0]
    cx = (raster.width - 1) / 2.0
    cy = (raster.height - 1) / 2.0
    cam = PinholeCamera.from_config(CameraConfig(width=int(width), height=int(height)))
    Hm = cam.ground_homography(raster.x0 + cx * raster.res, raster.y0 + cy * raster.res, 0.3)
    S = np.array([[1 / raster.res, 0, -raster.x0 / raster.res], [0, 1 / raster.res, -raster.y0 / raster.res], [0, 0, 1.0]])
    M = S @ Hm
    dst = np.empty((int(height), int(width), 4), np.uint8)
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP

    def run() -> np.ndarray:
        return cv2.warpPerspective(lv, M, (int(width), int(height)), dst=dst, flags=flags,
                                   borderMode=cv2.BORDER_CONSTANT, borderValue=raster.border_value)

    return run


def bench_render(spec: CameraConfig, n: int = 2000, *, raster: MapRaster | None = None,
                 look: WeatherLook | None = None, actors: Sequence[ActorState] = ()) -> float:
    """Renders per second of one camera driving along a line (single thread).

    Args:
        spec: the camera.
        n: frames to render (timed, after one untimed frame).
        raster: the map raster (default: the generated "circuit" town).
        look: the weather (default ClearNoon).
        actors: vehicles to draw.

    Returns:
        Frames per second.
    """
    import cv2

    from ..sim.embedded.camera import Camera
    from ..sim.embedded.raster import MapRaster
    from ..sim.embedded.weather import WeatherLook
    from ..types import VehicleState

    cv2.setNumThreads(1)
    if raster is None:
        from ..maps import load_town

        raster = MapRaster.for_town(load_town("circuit"))
    cam = Camera(spec, raster, look or WeatherLook.from_preset("ClearNoon"))
    x0, y0, x1, y1 = raster.bounds
    xc, yc = 0.5 * (x0 + x1), 0.5 * (y0 + y1)
    egos = [VehicleState(x=xc + 0.05 * i, y=yc, yaw=0.01 * i) for i in range(64)]
    cam.render(egos[0], actors)
    t = time.perf_counter()
    for i in range(n):
        cam.render(egos[i & 63], actors, frame=i)
    return n / (time.perf_counter() - t)
