"""``drive-il serve``: a CARLA 0.9.16-compatible server backed by the embedded world.

The pip ``carla`` client connects to ``HOST:PORT`` as to a CARLA server; sensor data
and world snapshots are pushed on ``--stream-port`` (default: any free port, named in
the tokens the client receives). Runs until interrupted (Ctrl-C or SIGTERM).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import NoReturn

from .common import check_port, check_range


def register(sub) -> None:
    p = sub.add_parser("serve", help="serve the embedded world over the CARLA 0.9.16 protocol",
                       description="A CARLA-compatible server: the unmodified `carla` client "
                                   "connects, loads towns, spawns vehicles and sensors, ticks.")
    p.add_argument("--port", type=int, default=2000, help="RPC port (default 2000)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--stream-port", type=int, default=0,
                   help="sensor/snapshot stream port (default: a free port)")
    p.add_argument("--maps-dir", type=Path, default=None,
                   help="folder of OpenDRIVE towns (default: $DRIVE_IL_MAPS_DIR, then "
                        "~/.local/share/drive_il/maps; generated towns always)")
    p.add_argument("--town", default=None,
                   help="first town (default Town01 when the maps folder has it, else circuit)")
    p.add_argument("--seed", type=int, default=0, help="seed of the server-side randomness")
    p.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"),
                   help="log level (DEBUG logs every request)")
    p.add_argument("--max-connections", type=int, default=64, metavar="N",
                   help="RPC connections served at once; more are closed at once (default 64; "
                        "stream connections: 4 x N)")
    p.add_argument("--idle-timeout", type=float, default=600.0, metavar="S",
                   help="close an RPC connection without traffic for S seconds (default 600; "
                        "0: never)")
    p.add_argument("--max-message-mb", type=int, default=64, metavar="MB",
                   help="largest message a client may send, e.g. an OpenDRIVE map with "
                        "generate_opendrive_world (default 64); larger: connection closed")
    p.set_defaults(func=run)


def _listen_error(args: argparse.Namespace, e: OSError, flag: str = "--port") -> NoReturn:
    """Raise a one-line ConfigError for a socket that cannot listen (else re-raise ``e``)."""
    import errno
    import socket

    from ..errors import ConfigError
    if e.errno == errno.EADDRINUSE:
        port = args.stream_port if flag == "--stream-port" else args.port
        raise ConfigError(f"cannot listen on {args.host}:{port} ({flag}): the port is in use; "
                          f"stop the other server or choose another {flag}") from None
    if isinstance(e, socket.gaierror) or e.errno == errno.EADDRNOTAVAIL:
        raise ConfigError(f"--host {args.host}: cannot listen there ({e.strerror or e})") from None
    if e.errno == errno.EACCES:
        raise ConfigError(f"cannot listen on {args.host}:{args.port}: permission denied "
                          f"(ports below 1024 need privileges)") from None
    raise e


def run(args: argparse.Namespace) -> int:
    import signal
    import socket

    from ..serve import CarlaServer

    check_port("--port", args.port)
    check_port("--stream-port", args.stream_port, allow_zero=True)
    check_range("--max-connections", args.max_connections, 1)
    check_range("--max-message-mb", args.max_message_mb, 1, 4000)
    if not 0.0 <= args.idle_timeout < float("inf"):
        from ..errors import ConfigError
        raise ConfigError(f"--idle-timeout {args.idle_timeout}: expected seconds >= 0 (0: never)")
    for flag, port in (("--port", args.port), ("--stream-port", args.stream_port)):
        if port:  # fail before building the world
            try:
                socket.create_server((args.host, port)).close()
            except OSError as e:
                _listen_error(args, e, flag)
    logging.getLogger("drive_il").setLevel(getattr(logging, args.log_level))
    try:
        server = CarlaServer(host=args.host, port=args.port, stream_port=args.stream_port,
                             maps_dir=args.maps_dir, town=args.town, seed=args.seed,
                             max_connections=args.max_connections, idle_timeout=args.idle_timeout,
                             max_message=args.max_message_mb << 20)
    except OSError as e:
        _listen_error(args, e)

    def _term(signum, frame):  # SIGTERM: stop like Ctrl-C
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _term)
    print(f"drive-il serve: CARLA 0.9.16 protocol on {server.host}:{server.port} "
          f"(streams {server.stream_port}), town {server.world.town.name}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0
