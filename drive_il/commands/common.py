"""Options shared by the commands that drive: scenario, maps directory, backend."""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["add_device_args", "add_parallel_args", "close_pool", "resolve_device_arg", "add_scenario_arg", "make_pool_from_args", "sim_recipe", "add_sim_args", "make_sim", "load_scenario_arg", "check_port",
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


def add_scenario_arg(p: argparse.ArgumentParser, *, positional: bool = True, default: str = "default") -> None:
    """SCENARIO (a TOML file or a name in scenarios/); default: ``scenarios/<default>.toml``
    (None when it is the default scenario, which :func:`drive_il.scenario.load_scenario`
    loads for None)."""
    help_ = f"scenario TOML file or name in scenarios/ (default: scenarios/{default}.toml)"
    value = None if default == "default" else default
    if positional:
        p.add_argument("scenario", nargs="?", default=value, help=help_)
    else:
        p.add_argument("--scenario", default=value, help=help_)


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
    return sim_recipe(args).build()


def checked_sim(args: argparse.Namespace, scenario):
    """The simulator of ``args`` after checking ``scenario``'s towns (an unknown town
    fails here, before any episode, with the simulator closed).

    Raises:
        MapError / ScenarioError: a town of the scenario cannot be loaded (one line).
    """
    from ..rollout.towns import check_towns
    sim = make_sim(args)
    try:
        check_towns(sim, scenario)
    except BaseException:
        sim.close()
        raise
    return sim


def learner_from_args(args: argparse.Namespace, scenario):
    """The learner of ``--checkpoint`` (a list: the flag is repeatable) on ``--device``
    (with ``--path-follower`` and ``--curve-governor`` where the command has them):
    one checkpoint as a :class:`~drive_il.policies.driver.PolicyDriver`, several as one
    :class:`~drive_il.policies.ensemble.EnsembleDriver` (the mean of their outputs).

    Raises:
        CheckpointError: an unreadable checkpoint, members that cannot form an ensemble,
            or a rig the scenario does not have.
    """
    device = resolve_device_arg(args)
    kw: dict = {} if device == "cpu" else {"device": device}
    if getattr(args, "path_follower", None) is not None:
        kw["path_follower"] = args.path_follower
    if getattr(args, "curve_governor", None) is not None:
        kw["curve_governor"] = args.curve_governor
    if len(args.checkpoint) > 1:
        from ..policies.ensemble import EnsembleDriver
        return EnsembleDriver.from_checkpoints(args.checkpoint, scenario=scenario, **kw)
    from ..policies.driver import PolicyDriver
    return PolicyDriver.from_checkpoint(args.checkpoint[0], scenario=scenario, **kw)


def add_device_args(p: argparse.ArgumentParser, *, amp: bool = False) -> None:
    """``--device auto|cpu|cuda|cuda:N`` (and ``--amp`` with ``amp=True``).

    The value is checked by :func:`drive_il.devices.resolve_device` when the command
    runs (``--device cuda`` without CUDA: one line, exit 2)."""
    g = p.add_argument_group("device")
    g.add_argument("--device", default="auto", metavar="auto|cpu|cuda|cuda:N",
                   help="where the network runs: auto (CUDA when available, default), cpu, cuda or cuda:N")
    if amp:
        g.add_argument("--amp", action="store_true",
                       help="mixed precision on CUDA (bfloat16 autocast; ignored on the CPU with a warning)")


def resolve_device_arg(args: argparse.Namespace) -> str:
    """The checked ``--device`` as a string ("cpu", "cuda:0", ...).

    Raises:
        ConfigError: an unknown device, or CUDA asked for where there is none (one line).
    """
    spec = getattr(args, "device", "auto") or "auto"
    if spec == "cpu":
        return "cpu"
    from ..devices import resolve_device
    return str(resolve_device(spec))


def add_parallel_args(p: argparse.ArgumentParser) -> None:
    """``--workers N``, ``--ray auto|ADDRESS`` and ``--carla-servers host:port,...``."""
    g = p.add_argument_group("parallel rollouts")
    g.add_argument("--workers", type=int, default=1,
                   help="rollout workers, each owning a simulator (default 1: this process); episodes keep "
                        "their seeds, so the results are the same for any N")
    g.add_argument("--ray", default=None, metavar="auto|ADDRESS",
                   help="run the workers as Ray actors: auto (the running cluster, else a local one) or a "
                        "cluster address (needs pip install -e '.[ray]')")
    g.add_argument("--carla-servers", default=None, metavar="HOST:PORT[,HOST:PORT...]",
                   help="--backend carla: one server per worker (worker i uses server i mod n; an entry may "
                        "add :TM_PORT, else server i's Traffic Manager port is --tm-port + i)")


def sim_recipe(args: argparse.Namespace):
    """The :class:`~drive_il.rollout.parallel.SimRecipe` of the parsed simulator options
    (the workers build their simulators from it).

    Raises:
        ConfigError: as :func:`make_sim`, and a bad ``--carla-servers`` list.
    """
    from ..errors import ConfigError
    from ..rollout.parallel import SimRecipe, parse_servers
    check_port("--port", getattr(args, "port", 2000))
    check_port("--tm-port", getattr(args, "tm_port", 8000))
    md = getattr(args, "maps_dir", None)
    if md is not None and not Path(md).is_dir():
        raise ConfigError(f"--maps-dir {md}: no such directory (a folder of OpenDRIVE towns *.xodr)")
    servers = parse_servers(getattr(args, "carla_servers", None), tm_port=getattr(args, "tm_port", 8000))
    backend = getattr(args, "backend", "embedded")
    if servers and backend != "carla":
        raise ConfigError("--carla-servers: needs --backend carla (the embedded world needs no server)")
    return SimRecipe(backend=backend, maps_dir=None if md is None else str(Path(md).resolve()),
                     host=getattr(args, "host", "localhost"), port=getattr(args, "port", 2000),
                     tm_port=getattr(args, "tm_port", 8000), timeout=getattr(args, "timeout", 10.0),
                     servers=servers)


def close_pool(pool) -> None:
    """Print one line per episode re-run after a worker died, then close ``pool``
    (None: nothing to do)."""
    if pool is None:
        return
    for line in pool.retried:
        print(f"re-run after a worker died: {line}", flush=True)
    pool.close()


def make_pool_from_args(args: argparse.Namespace):
    """The rollout pool of ``--workers``/``--ray``/``--carla-servers``, or None
    (``--workers 1`` without Ray: this process drives).

    Raises:
        ConfigError: ``--workers`` < 1, Ray missing or unreachable, bad servers.
    """
    from ..rollout.parallel import make_pool
    check_range("--workers", getattr(args, "workers", 1), 1)
    return make_pool(getattr(args, "workers", 1), sim_recipe(args), ray=getattr(args, "ray", None))
