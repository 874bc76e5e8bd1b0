"""Command line: ``drive-il COMMAND ...`` (also ``python run_sim.py``).

Argument parsing and wiring only. Each command lives in its own module under
``drive_il/commands/`` and defines ``register(subparsers)``; modules are discovered, so
adding a command never edits this file. Heavy imports (torch, pygame, carla) happen
inside the command's run function, not at registration.

A :class:`drive_il.errors.DriveILError` (bad input, missing file, unreachable server)
is printed as one line ``drive-il: error: ...`` and exits with status 2; Ctrl-C exits
with 130; a reader that stops reading stdout early (``drive-il data info D | head``)
ends the command quietly with status 141 (128 + SIGPIPE), as Unix tools do.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import pkgutil
import sys
from typing import Sequence

from . import __version__
from .errors import DriveILError

__all__ = ["main", "build_parser"]

log = logging.getLogger("drive_il")


def build_parser() -> argparse.ArgumentParser:
    """The full parser with every discovered command."""
    parser = argparse.ArgumentParser(
        prog="drive-il",
        description="Driving imitation learning: expert, demonstrations, ALVINN/DAVE-2, "
                    "behaviour cloning and DAgger on an embedded OpenDRIVE world or CARLA.",
    )
    parser.add_argument("--version", action="version", version=f"drive_il {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    from . import commands
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_") or info.name == "common":
            continue
        mod = importlib.import_module(f"{commands.__name__}.{info.name}")
        register = getattr(mod, "register", None)
        if register is not None:
            register(sub)
    return parser


def _silence_stdout() -> None:
    """Point stdout at /dev/null: the reader is gone, and Python's final flush must not
    report a second BrokenPipeError."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # stdout without a file descriptor (tests)
        pass


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``drive-il`` console script. Returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING - 10 * min(args.verbose, 2),
        format="%(levelname)s %(name)s: %(message)s",
    )
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        rc = func(args)
        sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
    except BrokenPipeError:
        _silence_stdout()
        return 141
    except DriveILError as e:
        print(f"drive-il: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("drive-il: interrupted", file=sys.stderr)
        return 130
    return int(rc or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
