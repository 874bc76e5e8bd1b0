"""A CARLA 0.9.16-compatible server over the embedded world (``drive-il serve``).

The unmodified ``carla`` client connects to it as to a CARLA server. Modules, by job:
:mod:`~drive_il.serve.server` (the server: sockets, clock, dispatch),
:mod:`~drive_il.serve.handlers` (the RPC handlers), :mod:`~drive_il.serve.world`
(the served world: actors, weather, tick, sensors), :mod:`~drive_il.serve.actors`
(actor records), :mod:`~drive_il.serve.blueprints` (the blueprint library),
:mod:`~drive_il.serve.autopilot` (lane follower, Traffic Manager registry),
:mod:`~drive_il.serve.lights` (the town's traffic lights as ``traffic.traffic_light``
actors), :mod:`~drive_il.serve.navmesh` (the walkers' navigation mesh for the client),
:mod:`~drive_il.serve.rpc` (msgpack-rpc), :mod:`~drive_il.serve.streams` (snapshot
and sensor streams), :mod:`~drive_il.serve.encoding` (wire layouts) and
:mod:`~drive_il.serve.process` (the server in a child process).
"""

from .server import CarlaServer

__all__ = ["CarlaServer"]
