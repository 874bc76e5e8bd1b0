"""``drive-il calibrate``: map a joystick, gamepad or steering wheel to the controls.

Interactive by default (move each control when asked); ``--non-interactive`` guesses
from a few seconds of samples; ``--preset g29|gamepad`` writes a starting point.
Writes a TOML file (default ``~/.config/drive_il/controls.toml``) that
``drive-il drive --driver human`` loads strictly (see :mod:`drive_il.viz.calibration`).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser(
        "calibrate", help="map a joystick / wheel's axes, inversion, dead zones and pedal curves",
        description="Detect which axis steers, throttles, brakes (and clutches) and write a controls "
                    "TOML file read by --driver human.")
    p.add_argument("--out", type=Path, default=None,
                   help="file to write (default ~/.config/drive_il/controls.toml)")
    p.add_argument("--joystick", type=int, default=0, help="joystick index (default 0)")
    p.add_argument("--non-interactive", action="store_true",
                   help="guess from --seconds of samples (move the wheel meanwhile); review the file")
    p.add_argument("--seconds", type=float, default=3.0, help="sampling time for --non-interactive [s]")
    p.add_argument("--preset", choices=("g29", "gamepad"), default=None,
                   help="write a preset (no device needed unless --check)")
    p.add_argument("--check", type=Path, default=None, metavar="FILE",
                   help="only check FILE against the connected joystick")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..viz import calibration as cal

    out = args.out.expanduser() if args.out is not None else cal.default_calibration_path()
    if args.check is not None:
        calib = cal.load_calibration(args.check)
        js = cal.open_joystick(args.joystick)
        cal.check_device(calib, js, args.check)
        print(f"{args.check}: ok for joystick {args.joystick} '{js.get_name()}' ({js.get_numaxes()} axes)")
        return 0
    if args.preset is not None:
        calib = cal.PRESETS[args.preset]
    else:
        if not (0 < args.seconds <= 60):
            raise ConfigError(f"--seconds: expected a number in (0, 60], got {args.seconds}")
        js = cal.open_joystick(args.joystick)
        if args.non_interactive:
            axes, buttons = cal.sample_joystick(js, args.seconds)
            calib = cal.calibrate_from_samples(axes, name=js.get_name(), buttons=buttons)
        else:
            calib = cal.calibrate_interactive(js)
    path = cal.save_calibration(calib, out)
    print(cal.describe(calib))
    print(f"wrote {path}")
    return 0
