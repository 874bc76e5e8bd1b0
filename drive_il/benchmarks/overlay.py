"""``drive-il bench overlay``: the overlay's drawing cost per frame.

Draws the full overlay (camera, gauges, bird's-eye with lanes, strip chart, HUD) off
screen at the given size for pre-computed StepRecords, on one core (the process is
pinned to one CPU where the OS allows), and compares with a bare baseline measured
in the same run: ``surface.fill`` + the camera frame turned into a surface, scaled
to the same rectangle and blitted. Figures are medians over the frames of the CPU
time of the drawing thread (``time.thread_time``: what drawing costs, not what other
processes on a shared machine take from it), with the CPU 95th percentile and the
wall-clock median beside them. Target (DESIGN.md / issue 7): <= 5 ms per frame
at 1280x720.

Configurations: the demo road (:mod:`drive_il.viz.demo`: the embedded world, the
expert and a drifting learner through the rollout) and, with ``--xodr``, a real town
(e.g. ``../shared/maps/Town04.xodr``) driven the same way along a random route, so that
the lane-chunk query and the road drawing see a dense map.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

NAME = "overlay"
HELP = "overlay drawing cost per frame vs a bare fill + camera blit"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--frames", type=int, default=300, help="frames drawn per configuration (default 300)")
    p.add_argument("--size", default="1280x720", help="window size WxH (default 1280x720)")
    p.add_argument("--camera", default="66x200", help="camera frame HxW (default 66x200)")
    p.add_argument("--xodr", type=Path, action="append", default=[],
                   help="also bench on this OpenDRIVE town (repeatable)")
    p.add_argument("--smooth", action="store_true", help="bilinear camera scaling")


def _pair(s: str, what: str) -> tuple[int, int]:
    from ..errors import ConfigError

    try:
        a, b = (int(v) for v in s.lower().split("x"))
    except ValueError:
        raise ConfigError(f"--{what}: expected AxB with integers, got {s!r}") from None
    if a <= 0 or b <= 0:
        raise ConfigError(f"--{what}: expected positive sizes, got {s!r}")
    return a, b


def run(args: argparse.Namespace) -> int:
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    pinned = ""
    if hasattr(os, "sched_setaffinity"):
        try:
            cpu = sorted(os.sched_getaffinity(0))[0]
            os.sched_setaffinity(0, {cpu})
            pinned = f"cpu {cpu}"
        except OSError:  # pragma: no cover
            pinned = "not pinned"
    from ..viz.benchmark import overlay_cost
    from ..viz.demo import DemoWorld, run_demo

    size = _pair(args.size, "size")
    cam_hw = _pair(args.camera, "camera")
    n = max(10, int(args.frames))
    configs = []
    for name, town in (("demo road", None), *((Path(x).stem, Path(x)) for x in args.xodr)):
        world = DemoWorld(camera=cam_hw, town=town)  # MapError: a missing or bad .xodr
        try:
            configs.append((name, world.map, run_demo(world, [], steps=n, seed=0)))
        finally:
            world.close()

    print(f"overlay bench: {size[0]}x{size[1]}, camera {cam_hw[1]}x{cam_hw[0]}, {n} frames, one core ({pinned})")
    for name, carla_map, records in configs:
        ov, base = overlay_cost(records, carla_map=carla_map, size=size, smooth=args.smooth)
        ok = "ok" if ov.cpu_median <= 5.0 else "ABOVE TARGET"
        print(f"{name:>12}: overlay {ov.cpu_median:5.2f} ms/frame CPU (p95 {ov.cpu_p95:5.2f}, wall "
              f"{ov.wall_median:5.2f}); baseline fill+camera blit {base.cpu_median:5.2f} ms/frame CPU (wall "
              f"{base.wall_median:5.2f}); ratio {ov.cpu_median / max(base.cpu_median, 1e-9):4.1f}x; "
              f"target <= 5 ms: {ok}")
    return 0

