"""Options shared by the commands that drive: scenario, maps directory, backend."""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["add_scenario_arg", "add_sim_args", "make_sim", "load_scenario_arg", "check_port",
           "check_range"]


def check_port(flag: str, value: int, *, allow_zero: bool = False) -> int:
    """``value`` if it is a TCP port (1..65535; 0 too with ``allow_zero``: any free port).

    Raises:
        ConfigError: one line naming the flag and the value.
    """
    from ..errors import ConfigError
    lo = 0 if allow_zero else 1
    if not lo <= int(value) <= 65535:
        extra = " (0: any free port)" if allow_zero else ""
        raise ConfigError(f"{flag} {value}: expected a port {lo}..65535{extra}")
    return int(value)


def check_range(flag: str, value: int | None, lo: int, hi: int | None = None) -> None:
    """Nothing when ``value`` is None or within ``lo..hi``.

    Raises:
        ConfigError: one line naming the flag and the value.
    """
    from ..errors import ConfigError
    if value is None:
        return
    if value < lo or (hi is not None and value > hi):
        want = f"an integer >= {lo}" if hi is None else f"an integer {lo}..{hi}"
        raise ConfigError(f"{flag} {value}: expected {want}")


def add_scenario_arg(p: argparse.ArgumentParser, *, positional: bool = True) -> None:
    """SCENARIO (a TOML file or a name in scenarios/); default: the default scenario."""
    if positional:
        p.add_argument("scenario", nargs="?", default=None,
                       help="scenario TOML file or name in scenarios/ (default: scenarios/default.toml)")
    else:
        p.add_argument("--scenario", default=None,
                       help="scenario TOML file or name in scenarios/ (default: scenarios/default.toml)")


def add_sim_args(p: argparse.ArgumentParser) -> None:
    """--backend, --maps-dir and the CARLA connection options."""
    g = p.add_argument_group("simulator")
    g.add_argument("--backend", choices=("embedded", "carla"), default="embedded",
                   help="embedded world (default, no server) or a CARLA server")
    g.add_argument("--maps-dir", type=Path, default=None,
                   help="folder of OpenDRIVE towns (*.xodr); default: $DRIVE_IL_MAPS_DIR, "
                        "then ~/.local/share/drive_il/maps")
    g.add_argument("--host", default="localhost", help="CARLA server host (default localhost)")
    g.add_argument("--port", type=int, default=2000, help="CARLA RPC port (default 2000)")
    g.add_argument("--tm-port", type=int, default=8000, help="CARLA Traffic Manager port (default 8000)")
    g.add_argument("--timeout", type=float, default=10.0, help="CARLA client time-out [s] (default 10)")


def load_scenario_arg(args: argparse.Namespace):
    """The Scenario named by ``args.scenario`` (default scenario when None)."""
    from ..scenario import load_scenario
    return load_scenario(getattr(args, "scenario", None))


def make_sim(args: argparse.Namespace):
    """A Simulator from the parsed --backend/--maps-dir/--host/... options.

    Raises:
        ConfigError: ``--maps-dir`` names no directory, or ``--port``/``--tm-port`` is no
            TCP port.
    """
    from ..errors import ConfigError
    from ..sim import make_simulator
    check_port("--port", getattr(args, "port", 2000))
    check_port("--tm-port", getattr(args, "tm_port", 8000))
    md = getattr(args, "maps_dir", None)
    if md is not None and not Path(md).is_dir():
        raise ConfigError(f"--maps-dir {md}: no such directory (a folder of OpenDRIVE towns *.xodr)")
    return make_simulator(
        getattr(args, "backend", "embedded"),
        maps_dir=getattr(args, "maps_dir", None),
        host=getattr(args, "host", "localhost"),
        port=getattr(args, "port", 2000),
        tm_port=getattr(args, "tm_port", 8000),
        timeout=getattr(args, "timeout", 10.0),
    )
