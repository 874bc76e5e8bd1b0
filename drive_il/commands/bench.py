"""``drive-il bench TARGET``: measured figures and ratios (see drive_il.benchmarks)."""

from __future__ import annotations

import importlib
import pkgutil


def register(sub) -> None:
    p = sub.add_parser("bench", help="benchmarks: sim, town, traffic, record, data, train, overlay, serve, scale",
                       description="Print measured figures and ratios to a baseline measured in the same run.")
    bsub = p.add_subparsers(dest="target", metavar="TARGET")
    from .. import benchmarks
    for info in sorted(pkgutil.iter_modules(benchmarks.__path__), key=lambda m: m.name):
        mod = importlib.import_module(f"{benchmarks.__name__}.{info.name}")
        if not hasattr(mod, "NAME"):
            continue
        bp = bsub.add_parser(mod.NAME, help=getattr(mod, "HELP", ""))
        mod.add_arguments(bp)
        bp.set_defaults(func=mod.run)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])
