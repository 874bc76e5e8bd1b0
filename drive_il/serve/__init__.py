"""A CARLA 0.9.16-compatible server over the embedded world (``drive-il serve``).

The unmodified ``carla`` client connects to it as to a CARLA server: see
:mod:`drive_il.serve.server` (world, RPCs), :mod:`drive_il.serve.rpc` (msgpack-rpc),
:mod:`drive_il.serve.streams` (snapshot and sensor streams) and
:mod:`drive_il.serve.encoding` (wire layouts).
"""

from .server import CarlaServer

__all__ = ["CarlaServer"]
