"""``drive-il report RUN``: markdown + PNG plots of a DAgger run, the NoCrash tables of
``RUN/eval/nocrash-*.json`` and the offline evaluations of ``RUN/eval/offline-*.json``
(printed too)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("report", help="write RUN/report.md with tables and plots of a DAgger run, its NoCrash tables "
                                      "and its offline evaluations")
    p.add_argument("run", type=Path, help="run directory (drive-il dagger --out, or runs/<name>/dagger)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import DataError
    from ..evaluation.nocrash import format_table
    from ..evaluation.report import nocrash_reports, write_report
    from ..evaluation.trace import collision_counts, timeout_counts
    from ..training.offline import format_offline, offline_reports
    if not args.run.is_dir():
        raise DataError(f"{args.run}: no such run directory")
    offline = offline_reports(args.run)
    sections: list[str] = []
    for path, rep in offline:  # as drive-il eval --protocol offline printed them
        sections += ["", f"## Offline evaluation: `{path.relative_to(args.run)}`", "", "```", format_offline(rep), "```"]
    out = write_report(args.run, sections)
    for rep in nocrash_reports(args.run):  # the NoCrash tables, as drive-il eval printed them
        print(format_table(rep))
        for line in collision_counts(list(rep.collisions)):
            print(f"collisions {line}")
        for line in timeout_counts(list(rep.timeouts)):
            print(f"timeouts {line}")
    for _, rep in offline:
        print(format_offline(rep))
    plots = out.parent / "plots"
    print(f"wrote {out}" + (f" (plots in {plots})" if plots.is_dir() else ""))
    return 0
