"""``drive-il report RUN``: markdown + PNG plots of a DAgger run."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("report", help="write RUN/report.md with tables and plots of a DAgger run")
    p.add_argument("run", type=Path, help="run directory (drive-il dagger --out, or runs/<name>/dagger)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import DataError
    from ..evaluation.report import write_report
    if not args.run.is_dir():
        raise DataError(f"{args.run}: no such run directory")
    out = write_report(args.run)
    print(f"wrote {out} (plots in {out.parent / 'plots'})")
    return 0
