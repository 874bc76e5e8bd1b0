"""``drive-il data info DIR [DIR...]``, ``drive-il data verify DIR [DIR...]`` and
``drive-il data repair DIR [DIR...]``.

``info`` summarises recorded demonstrations (episodes, frames, hours, km, per town and
weather, DAgger rounds, expert steering histogram, partial and damaged files).
``verify`` opens every file and checks it against the schema and the manifest, reading
every chunk (HDF5 checks each chunk's fletcher32 checksum, so flipped bits in frames or
labels are found); it prints OK or one line per problem and exits 1 when it finds any
(partial files count). ``repair`` rebuilds the manifest from the finished files
(:func:`drive_il.data.tools.repair_dir`) and prints one line per change; exit 0.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("data", help="inspect and verify recorded episodes",
                       description="Inspect (info) and check (verify) episode directories.")
    dsub = p.add_subparsers(dest="data_command", metavar="ACTION")
    pi = dsub.add_parser("info", help="episodes, frames, hours, km, towns, weathers, steering histogram")
    pi.add_argument("dirs", nargs="+", type=Path, metavar="DIR", help="episode directories")
    pi.set_defaults(func=run_info)
    pv = dsub.add_parser("verify", help="open every file, check schema, shapes and manifest; exit 1 on problems")
    pv.add_argument("dirs", nargs="+", type=Path, metavar="DIR", help="episode directories")
    pv.add_argument("--quick", action="store_true", help="do not read every frame (metadata, shapes and labels only)")
    pv.set_defaults(func=run_verify)
    pr = dsub.add_parser("repair", help="rebuild the manifest from the finished episode files (one line per change)",
                         description="Make manifest.jsonl agree with the finished episode files: add the lines "
                                     "of files it misses (rebuilt from their attributes), drop torn lines, "
                                     "lines of missing files and repeated lines, rebuild lines that disagree "
                                     "with their file. Damaged and partial files are reported and left alone. "
                                     "Prints one line per change; exit 0.")
    pr.add_argument("dirs", nargs="+", type=Path, metavar="DIR", help="episode directories")
    pr.set_defaults(func=run_repair)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def run_info(args: argparse.Namespace) -> int:
    from ..data.tools import data_info, format_info

    info = data_info(args.dirs)
    for line in format_info(info):
        print(line)
    return 0


def run_verify(args: argparse.Namespace) -> int:
    from ..data.storage import list_episodes
    from ..data.tools import rig_problem, verify_dir

    bad = 0
    reports = []
    for d in args.dirs:
        rep = verify_dir(d, read_frames=not args.quick)
        reports.append(rep)
        if rep.ok:
            print(f"{d}: OK ({rep.checked} episodes)")
        else:
            bad += 1
            for line in rep.problems:
                print(line)
            print(f"{d}: {len(rep.problems)} problem(s) in {rep.checked} episodes"
                  + (f", {len(rep.partial)} partial file(s)" if rep.partial else ""))
    if len(args.dirs) > 1:  # the directories must form one dataset (e.g. BC data + DAgger rounds)
        problem = rig_problem([p for d in args.dirs for p in list_episodes(d)])
        if problem:
            bad += 1
            print(problem)
    return 1 if bad else 0


def run_repair(args: argparse.Namespace) -> int:
    from ..data.tools import format_repair, repair_dir

    for d in args.dirs:
        for line in format_repair(repair_dir(d)):
            print(line)
    return 0
