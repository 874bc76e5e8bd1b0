"""``drive-il serve``: a CARLA 0.9.16-compatible server backed by the embedded world.

The pip ``carla`` client connects to ``HOST:PORT`` as to a CARLA server; sensor data
and world snapshots are pushed on ``--stream-port`` (default: any free port, named in
the tokens the client receives). Runs until interrupted (Ctrl-C or SIGTERM).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path


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
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import signal

    from ..serve import CarlaServer

    logging.getLogger("drive_il").setLevel(getattr(logging, args.log_level))
    server = CarlaServer(host=args.host, port=args.port, stream_port=args.stream_port,
                         maps_dir=args.maps_dir, town=args.town, seed=args.seed)

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
