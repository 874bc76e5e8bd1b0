"""``drive-il view EPISODE.h5``: replay a recorded episode with the overlay.

Keys: Space pause, Right/Left step, Up/Down speed, 1-9/0 jump to 10-90 %/start,
PageUp/PageDown 10 s back/forward, Home/End, q/Esc quit. Headless with
``SDL_VIDEODRIVER=dummy`` and ``--max-frames N`` (see :mod:`drive_il.viz.viewer`).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser(
        "view", help="replay a recorded episode with the overlay",
        description="Replay an episode file (HDF5) with the pygame overlay. Keys: space pause, "
                    "right/left step, up/down speed, 1-9/0 jump, PageUp/PageDown 10 s, q/Esc quit.")
    p.add_argument("episode", type=Path, help="episode file (episode_NNNNNN.h5)")
    p.add_argument("--camera", default=None, help="camera to show (default: center, else the first)")
    p.add_argument("--speed", type=float, default=1.0, help="playback speed x real time (default 1)")
    p.add_argument("--record-screens", type=Path, default=None, metavar="DIR",
                   help="save every presented overlay frame as PNG into DIR")
    p.add_argument("--gif", type=Path, default=None, metavar="FILE", help="also write an animated GIF")
    p.add_argument("--max-frames", type=int, default=None, metavar="N",
                   help="stop after N presented frames (headless runs, tests)")
    p.add_argument("--intervention-threshold", "--threshold", dest="intervention_threshold", type=float, default=1.0,
                   help="intervention threshold |lateral deviation| [m] (default 1.0; --threshold is the old spelling)")
    p.add_argument("--size", default="1280x720", help="window size WxH (default 1280x720)")
    p.add_argument("--maps-dir", type=Path, default=None, help="folder of OpenDRIVE towns (lane boundaries)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import ConfigError

    if not (args.speed > 0):
        raise ConfigError(f"--speed: expected a number > 0, got {args.speed}")
    if args.max_frames is not None and args.max_frames < 1:
        raise ConfigError(f"--max-frames: expected an integer >= 1, got {args.max_frames}")
    if not (args.intervention_threshold > 0):
        raise ConfigError(f"--intervention-threshold: expected a number > 0 [m], got {args.intervention_threshold}")
    try:
        w, h = (int(v) for v in args.size.lower().split("x"))
        if w < 320 or h < 240:
            raise ValueError
    except ValueError:
        raise ConfigError(f"--size: expected WxH of at least 320x240, got {args.size!r}") from None
    from ..viz.viewer import view_episode

    n = view_episode(args.episode, camera=args.camera, speed=args.speed, record_screens=args.record_screens,
                     gif=args.gif, max_frames=args.max_frames, maps_dir=args.maps_dir, size=(w, h),
                     threshold=args.intervention_threshold)
    if args.record_screens is not None:
        print(f"{n} frames shown; screens in {args.record_screens}")
    return 0
