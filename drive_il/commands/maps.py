"""``drive-il maps list|export|pull``: the towns the embedded world can drive in.

- ``list``: every town that resolves (``--maps-dir``, ``$DRIVE_IL_MAPS_DIR``,
  ``~/.local/share/drive_il/maps``, then the generated ``circuit`` and ``grid``; the
  procedural towns ``procedural:<seed>`` are not listed, there is one per seed), where it
  comes from, its driving-lane length, junctions and generated spawn points.
- ``export NAME --out FILE.xodr``: write a town's OpenDRIVE (e.g. a generated town, to
  load it into CARLA with ``client.generate_opendrive_world(text)``).
- ``turns NAME [NAME...]``: the geometry of the junction turns random routes take in
  each town (junction length, where the arc begins after the entry, its smallest
  radius: mean and range), per command with the towns side by side: what a learner
  trained in one town must transfer to another. A range ``procedural:0-49`` is one
  column aggregated over its towns (the procedural distribution).
- ``pull``: save the towns of a running CARLA server (``world.get_map().to_opendrive()``)
  as ``<maps_dir>/<Town>.xodr``, so the embedded world drives on the same roads.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

log = logging.getLogger(__name__)

DEFAULT_PULL_DIR = Path("~/.local/share/drive_il/maps")


def register(sub) -> None:
    p = sub.add_parser("maps", help="list, export and pull OpenDRIVE towns",
                       description="Towns for the embedded world: list them, export a generated "
                                   "town's OpenDRIVE, or pull the towns of a CARLA server.")
    msub = p.add_subparsers(dest="maps_command", metavar="ACTION")

    lp = msub.add_parser("list", help="list the towns, their source and spawn-point counts")
    _maps_dir_arg(lp)
    lp.set_defaults(func=run_list)

    ep = msub.add_parser("export", help="write a town's OpenDRIVE (.xodr) to a file")
    ep.add_argument("name", help="town name (e.g. circuit, grid, Town01, procedural:17) or an .xodr path")
    ep.add_argument("--out", required=True, metavar="FILE.xodr",
                    help="output file ('-' for standard output)")
    _maps_dir_arg(ep)
    ep.set_defaults(func=run_export)

    tp = msub.add_parser("turns", help="junction-turn geometry of towns (length, arc start, radius)",
                         description="Plan random routes in each town (turn commands on the junction) and "
                                     "print, per command, the distinct junctions crossed: their length along "
                                     "the route, where the arc begins after the entry and its smallest radius.")
    tp.add_argument("towns", nargs="+", metavar="NAME",
                    help="town names (e.g. Town01 Town02 procedural:7), .xodr paths, or a range of "
                         "procedural towns (procedural:0-49: aggregated over its towns)")
    tp.add_argument("--routes", type=int, default=60,
                    help="random routes per town; a range shares them, >= 3 per town (default 60)")
    tp.add_argument("--length", type=float, default=400.0, help="route length [m] (default 400)")
    tp.add_argument("--seed", type=int, default=0, help="first route seed (default 0)")
    _maps_dir_arg(tp)
    tp.set_defaults(func=run_turns)

    pp = msub.add_parser("pull", help="save a CARLA server's towns as .xodr files",
                         description="Connect to a CARLA 0.9.16 server, load each town and save "
                                     "world.get_map().to_opendrive() as <maps_dir>/<Town>.xodr.")
    pp.add_argument("--host", default="localhost", help="CARLA server host (default localhost)")
    pp.add_argument("--port", type=int, default=2000, help="CARLA RPC port (default 2000)")
    pp.add_argument("--timeout", type=float, default=10.0,
                    help="client time-out [s] for connecting and each request (default 10)")
    pp.add_argument("--load-timeout", type=float, default=120.0,
                    help="time-out [s] for loading one town on the server (default 120)")
    pp.add_argument("--town", action="append", default=None, metavar="NAME",
                    help="town to pull (repeatable; default: every town of the server)")
    pp.add_argument("--maps-dir", type=Path, default=None,
                    help="where to save (default: $DRIVE_IL_MAPS_DIR, then "
                         "~/.local/share/drive_il/maps, created if needed)")
    pp.set_defaults(func=run_pull)

    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _maps_dir_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--maps-dir", type=Path, default=None,
                   help="folder of OpenDRIVE towns (*.xodr); default: $DRIVE_IL_MAPS_DIR, "
                        "then ~/.local/share/drive_il/maps")


# --------------------------------------------------------------------------- list
def run_list(args: argparse.Namespace) -> int:
    from ..errors import MapError
    from ..maps import towns as maps

    d = maps.resolve_maps_dir(args.maps_dir)
    if d is None:
        print("maps directory: none (use --maps-dir, $DRIVE_IL_MAPS_DIR or `drive-il maps pull`)")
    else:
        print(f"maps directory: {d}{'' if d.is_dir() else ' (does not exist)'}")
    print(f"{'town':<16} {'source':<10} {'lanes km':>8} {'junctions':>9} {'spawn pts':>9}  file")
    for name in maps.available_towns(args.maps_dir):
        try:
            town = maps.load_town(name, args.maps_dir)
        except MapError as e:
            print(f"{name:<16} {'error':<10} {'':>8} {'':>9} {'':>9}  {e}")
            continue
        wps = town.lane_samples.waypoints(2.0)
        km = sum(1 for w in wps if not w.is_junction) * 2.0 / 1000.0
        junctions = len({w.junction_id for w in wps if w.is_junction})
        n_spawn = len(town.spawn_points)
        source = "generated" if town.generated else "file"
        print(f"{town.name:<16} {source:<10} {km:>8.2f} {junctions:>9d} {n_spawn:>9d}  "
              f"{town.path if town.path else '-'}")
    return 0


# --------------------------------------------------------------------------- export
def run_export(args: argparse.Namespace) -> int:
    from ..maps import towns as maps

    town = maps.load_town(args.name, args.maps_dir)  # validates: the file written parses
    if args.out == "-":
        sys.stdout.write(town.xodr)
        return 0
    out = Path(args.out).expanduser()
    _write_atomic(out, town.xodr)
    n_roads = town.xodr.count("<road ")
    print(f"wrote {out} ({town.name}, {n_roads} roads, {len(town.xodr.encode()) / 1024:.0f} KiB)")
    return 0


# --------------------------------------------------------------------------- turns
def _town_turns(town, routes: int, length: float, seed: int) -> dict[str, list[dict]]:
    """The distinct junction turns of ``routes`` random routes in ``town``, by command."""
    import numpy as np

    from ..routing import junction_turns, random_route

    seen: dict[tuple, dict] = {}
    for k in range(routes):
        route = random_route(town, np.random.default_rng(seed + k), length, junction_lead=0.0)
        for t in junction_turns(route):
            seen.setdefault((round(t["x"]), round(t["y"]), t["command"]), t)
    by_cmd: dict[str, list[dict]] = {}
    for t in seen.values():
        by_cmd.setdefault(t["command"], []).append(t)
    return by_cmd


def run_turns(args: argparse.Namespace) -> int:
    import numpy as np

    from ..errors import ConfigError
    from ..maps import towns as maps

    if args.routes < 1:
        raise ConfigError(f"--routes: expected an integer >= 1, got {args.routes}")
    if not args.length > 0:
        raise ConfigError(f"--length: expected a route length > 0 m, got {args.length}")
    groups = [(spec, maps.expand_towns(spec)) for spec in args.towns]  # bad specs fail first
    rows: dict[str, list[tuple[str, list[dict]]]] = {}
    labels: list[str] = []
    empty: dict[str, int] = {}
    for spec, names in groups:
        # a range shares the route budget: at least 3 routes per town
        per_town = args.routes if len(names) == 1 else max(3, -(-args.routes // len(names)))
        merged: dict[str, list[dict]] = {}
        label = spec if len(names) > 1 else None
        for name in names:
            town = maps.load_town(name, args.maps_dir, cache=None if len(names) > 1 else maps.TOWNS)
            label = label or town.name
            for cmd, ts in _town_turns(town, per_town, args.length, args.seed).items():
                merged.setdefault(cmd, []).extend(ts)
        labels.append(label)
        if not merged:
            empty[label] = per_town
        for cmd, ts in merged.items():
            rows.setdefault(cmd, []).append((label, ts))
    width = max([10] + [len(lb) for lb in labels])
    print(f"{'town':<{width}} {'command':<10} {'n':>4} {'length [m]':>10} {'arc start after entry [m]':>26} "
          f"{'smallest radius [m]':>24}")
    for label in (lb for lb in labels if lb in empty):
        print(f"{label:<{width}} no junction on {empty[label]} random routes per town")
    for cmd in sorted(rows):  # one block per command: the towns side by side
        for label, ts in rows[cmd]:
            ln = np.array([t["length"] for t in ts])
            arcs = np.array([t["arc_start"] for t in ts if t["arc_start"] is not None])
            rad = np.array([t["min_radius"] for t in ts if t["min_radius"] is not None])
            arc = f"{arcs.mean():.1f} ({arcs.min():.1f} to {arcs.max():.1f})" if len(arcs) else "-"
            r = f"{rad.mean():.1f} ({rad.min():.1f} to {rad.max():.1f})" if len(rad) else "-"
            print(f"{label:<{width}} {cmd:<10} {len(ts):>4} {ln.mean():>10.1f} {arc:>26} {r:>24}")
    return 0


def _write_atomic(path: Path, text: str) -> None:
    from ..errors import MapError
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".partial")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as e:
        raise MapError(f"cannot write {path}: {e.strerror or e}") from None


# --------------------------------------------------------------------------- pull
def _connect(host: str, port: int, timeout: float):
    """A connected carla.Client, or SimulatorConnectionError within ``timeout``."""
    import carla

    from ..errors import SimulatorConnectionError
    from ..sim.carla.probe import require_carla

    hint = (f"cannot reach a CARLA server at {host}:{port} within {timeout:g} s: is a CARLA "
            f"0.9.16 server running? check --host/--port")
    try:
        require_carla(host, port, timeout)  # a non-CARLA peer would abort the C++ client
        client = carla.Client(host, port)
        client.set_timeout(timeout)
        version = client.get_server_version()
    except RuntimeError as e:
        raise SimulatorConnectionError(f"{hint} ({str(e).splitlines()[0] if str(e) else 'no reply'})") from None
    log.info("connected to CARLA server %s at %s:%d (client %s)", version, host, port,
             client.get_client_version())
    return client


def _basename(map_path: str) -> str:
    """'/Game/Carla/Maps/Town01' or 'Carla/Maps/Town01' -> 'Town01'."""
    return map_path.rstrip("/").rsplit("/", 1)[-1]


def run_pull(args: argparse.Namespace) -> int:
    from ..errors import MapError, SimulatorConnectionError
    from ..maps import towns as maps

    if args.timeout <= 0:
        from ..errors import ConfigError
        raise ConfigError(f"--timeout: expected a positive number of seconds, got {args.timeout}")
    client = _connect(args.host, args.port, args.timeout)
    try:
        available = {_basename(m): m for m in client.get_available_maps()}
        world = client.get_world()
        current = _basename(world.get_map().name)
    except RuntimeError as e:
        raise SimulatorConnectionError(
            f"CARLA server at {args.host}:{args.port} stopped answering: {str(e).splitlines()[0]}") from None
    wanted = args.town or sorted(available)
    lower = {k.lower(): k for k in available}
    unknown = [t for t in wanted if t.lower() not in lower]
    if unknown:
        raise MapError(f"--town {', '.join(unknown)}: not on the CARLA server at "
                       f"{args.host}:{args.port}; it has {', '.join(sorted(available))}")
    out_dir = maps.resolve_maps_dir(args.maps_dir) or DEFAULT_PULL_DIR.expanduser()
    # Pull the currently loaded town first: it needs no (slow) load_world.
    ordered = sorted((lower[t.lower()] for t in wanted), key=lambda t: (t != current, t))
    for town in ordered:
        t0 = time.perf_counter()
        try:
            if town != current:
                client.set_timeout(max(args.load_timeout, args.timeout))
                world = client.load_world(town)
                client.set_timeout(args.timeout)
                current = town
            text = world.get_map().to_opendrive()
        except RuntimeError as e:
            raise SimulatorConnectionError(
                f"CARLA server at {args.host}:{args.port} failed on {town}: "
                f"{str(e).splitlines()[0]} (a slow load? raise --load-timeout)") from None
        maps.parse_xodr(text, name=town, source=f"{town} from {args.host}:{args.port}")
        path = out_dir / f"{town}.xodr"
        _write_atomic(path, text)
        print(f"{town:<16} -> {path} ({len(text.encode()) / 1024:.0f} KiB, "
              f"{time.perf_counter() - t0:.1f} s)")
    print(f"server now has {current} loaded; load towns with --maps-dir {out_dir}"
          if args.maps_dir is None and out_dir == DEFAULT_PULL_DIR.expanduser()
          else f"server now has {current} loaded")
    return 0
