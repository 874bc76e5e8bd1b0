"""``drive-il routes import ROUTES.xml --out SCENARIO.toml``: CARLA leaderboard routes
into a scenario file."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("routes", help="import CARLA leaderboard route XML into a scenario")
    rsub = p.add_subparsers(dest="routes_cmd", metavar="ACTION")
    ip = rsub.add_parser("import", help="leaderboard route XML -> scenario TOML with [[routes]]")
    ip.add_argument("xml", type=Path, help="leaderboard route file (<routes><route id town><waypoint .../>)")
    ip.add_argument("--out", type=Path, default=None, help="scenario TOML to write (default: <xml stem>.toml)")
    ip.add_argument("--town", default=None, help="keep only the routes of this town")
    ip.add_argument("--ids", nargs="*", default=None, help="keep only these route ids")
    ip.add_argument("--name", default=None, help="scenario name (default: the XML file's stem)")
    ip.add_argument("--base", type=Path, default=None,
                    help="scenario whose other settings (cameras, weather, ...) the new one copies")
    ip.set_defaults(func=run_import)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def run_import(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..routing.leaderboard import read_route_xml, routes_to_toml
    from ..scenario import load_scenario

    routes = read_route_xml(args.xml)
    if args.town:
        routes = [r for r in routes if r.town == args.town]
    if args.ids:
        routes = [r for r in routes if r.route_id in set(args.ids)]
    if not routes:
        raise ConfigError(f"{args.xml}: no route left after --town/--ids filtering")
    name = args.name or args.xml.stem
    base = args.base.read_text() if args.base else None
    text = routes_to_toml(routes, name=name, source=str(args.xml), base=base)
    out = args.out or args.xml.with_suffix(".toml")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    load_scenario(out)  # validates what we wrote
    print(f"wrote {out}: {len(routes)} route(s) on {routes[0].town}")
    print(f"drive them: drive-il drive {out} --episodes {len(routes)}")
    return 0
