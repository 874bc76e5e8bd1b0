"""The CARLA-compatible server: sockets, the world's clock, dispatch to the handlers.

:class:`CarlaServer` answers the RPCs of the pip ``carla==0.9.16`` client
(``carla.Client``, ``carla.World``, the client-side Traffic Manager) and pushes world
snapshots and sensor data on the stream server, so unmodified CARLA client scripts
drive the embedded world (wire facts: ``../shared/docs/CARLA_WIRE_0.9.16.md``). It
wires the parts: the msgpack-rpc endpoint (:mod:`.rpc`) calls the handlers
(:mod:`.handlers`) under one lock; the handlers work on the current
:class:`~drive_il.serve.world.ServerWorld` (:mod:`.world`), whose actors
(:mod:`.actors`) come from the blueprint library (:mod:`.blueprints`) and whose
autopilot vehicles are driven by the lane follower (:mod:`.autopilot`).

One tick (``tick_cue`` in synchronous mode, or the server's own 20 Hz timer in
asynchronous mode) runs :meth:`ServerWorld.step` -- the world snapshot and the
sensor data are pushed before ``tick_cue`` answers, so the client finds frame F's
snapshot and images once the tick returns F.

Robustness: a client connection that ends takes its Traffic Manager registrations
with it, and if it had put the world into synchronous mode the world goes back to
asynchronous mode (the next client is not left facing a frozen world). Its actors stay
(as on a real CARLA server). Calls the server does not serve are logged and answered
as a real server answers them: an unknown function with an rpclib error, a known but
unsupported feature with a CARLA ``Response`` error naming it.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from pathlib import Path
from typing import Any

from . import encoding as E
from .actors import Vehicle
from .autopilot import LaneFollower, TrafficManagerRegistry, make_follower
from .blueprints import blueprint_definitions
from .handlers import SERVER_VERSION, UNSUPPORTED, Handlers
from .rpc import Connection, RpcServer, UnknownFunction
from .streams import StreamServer
from .world import ASYNC_TICK_HZ, ServerWorld

__all__ = ["CarlaServer"]

log = logging.getLogger(__name__)


class CarlaServer:
    """The server: RPC and stream endpoints over a :class:`ServerWorld`.

    Args:
        host: address to listen on (loopback by default).
        port: RPC port (0: a free one; see :attr:`port`).
        stream_port: stream port (0: a free one).
        maps_dir: folder of OpenDRIVE towns (default as :func:`drive_il.maps.load_town`).
        town: the town of the first episode (default Town01 when the maps folder has
            it, else the generated "circuit").
        seed: seed of the server-side randomness.

    Attributes:
        world: the current episode's world.
        settings: the episode settings (synchronous mode, fixed delta).
        sync_owner: id of the connection that put the world into synchronous mode (0: none).
        traffic_managers: the client-side Traffic Managers registered with the server.
        definitions: the blueprint library (``ActorDefinition`` lists).
        calls: {RPC name: number of calls}.
    """

    def __init__(self, *, host: str = "127.0.0.1", port: int = 2000, stream_port: int = 0,
                 maps_dir: str | Path | None = None, town: str | None = None, seed: int = 0) -> None:
        from ..maps import available_towns
        self.maps_dir = maps_dir
        self.seed = int(seed)
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self.streams = StreamServer(host, stream_port)
        self.stream_port = self.streams.port
        self.settings = E.EpisodeSettings()
        self.sync_owner = 0
        self.traffic_managers = TrafficManagerRegistry()
        self.definitions = blueprint_definitions()
        self._rasters: dict[str, Any] = {}
        self._episodes = 0
        if town is None:
            names = available_towns(maps_dir)
            town = "Town01" if "Town01" in names else "circuit"
        self.world = self.new_world(town)
        # listen only once the first world (and its raster) is ready
        self.rpc = RpcServer(host, port, self._dispatch, on_close=self._on_close)
        self.host, self.port = self.rpc.host, self.rpc.port
        self._timer: threading.Thread | None = None
        self.handlers = Handlers(self)
        self._methods = self.handlers.registry()
        self.calls: dict[str, int] = {}

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self.streams.start()
        self.rpc.start()
        self._timer = threading.Thread(target=self._async_loop, name="async-tick", daemon=True)
        self._timer.start()
        log.info("serving CARLA %s on %s:%d (streams on port %d), town %s",
                 SERVER_VERSION, self.host, self.port, self.stream_port, self.world.town.name)

    def stop(self) -> None:
        self._stop.set()
        self.rpc.stop()
        self.streams.stop()

    def serve_forever(self) -> None:
        self.start()
        try:
            while not self._stop.wait(1.0):
                pass
        finally:
            self.stop()

    # ------------------------------------------------------------------ episodes
    def new_world(self, name: str) -> ServerWorld:
        """A new episode's world on town ``name`` (a name or an .xodr path); the
        current world stays until :meth:`switch`.

        Raises:
            MapError: unknown or corrupt town.
        """
        from ..maps import load_town
        town = load_town(name, self.maps_dir)
        self._episodes += 1
        first = self.world.frame + 1 if getattr(self, "world", None) is not None else 0
        episode_id = (self.seed * 1_000_003 + self._episodes) & 0xFFFFFFFFFFFF or 1
        world = ServerWorld(town, episode_id=episode_id, streams=self.streams, first_frame=first,
                            seed=self.seed + self._episodes, raster_cache=self._rasters)
        world.raster()  # built now, not inside the first tick with a camera (client time-out)
        return world

    def switch(self, world: ServerWorld, reset_settings: bool) -> None:
        """Make ``world`` the current one (it keeps the weather; the old world's actors
        and streams go); ``reset_settings``: back to asynchronous default settings."""
        old = self.world
        world.set_weather(old.weather)
        old.destroy_all()
        self.world = world
        if reset_settings:
            self.settings = E.EpisodeSettings()
            self.sync_owner = 0

    def _follower(self, v: Vehicle) -> LaneFollower:
        return make_follower(self.world.town.map, seed=self.seed, vehicle_id=v.id, episode=self._episodes)

    # ------------------------------------------------------------------ clock
    def tick(self) -> int:
        """Advance the world one step; returns the new frame."""
        with self._lock:
            w = self.world
            dt = self.settings.fixed_delta_seconds or 1.0 / ASYNC_TICK_HZ
            w.step(dt, followers=self._follower)
            return w.frame

    def _async_loop(self) -> None:
        period = 1.0 / ASYNC_TICK_HZ
        nxt = time.monotonic()
        while not self._stop.is_set():
            nxt += period
            if not self.settings.synchronous_mode:
                try:
                    self.tick()
                except Exception:
                    log.exception("asynchronous tick failed")
            delay = nxt - time.monotonic()
            if delay < -1.0:
                nxt = time.monotonic()
            elif delay > 0:
                self._stop.wait(delay)

    # ------------------------------------------------------------------ dispatch
    def _dispatch(self, conn: Connection, method: str, params: list) -> Any:
        fn = self._methods.get(method)
        self.calls[method] = self.calls.get(method, 0) + 1
        args = params[1:]  # params[0] is the call's metadata [is_async]
        if fn is None:
            if method in UNSUPPORTED:
                log.warning("client %d asked for %s (%s): not supported by this server",
                            conn.id, method, UNSUPPORTED[method])
                return E.err(f"{method}: {UNSUPPORTED[method]} is not supported by the "
                             f"drive-il embedded server")
            raise UnknownFunction(method)
        log.debug("client %d: %s%r", conn.id, method, tuple(args) if len(repr(args)) < 200 else "(...)")
        with self._lock:
            return fn(conn, *args)

    def _on_close(self, conn: Connection) -> None:
        with self._lock:
            for port in self.traffic_managers.ports_of(conn.id):
                log.info("client %d gone: forgetting its Traffic Manager on port %d", conn.id, port)
                self.traffic_managers.remove(port)
            if self.sync_owner == conn.id and self.settings.synchronous_mode:
                log.warning("client %d left the world in synchronous mode: back to asynchronous",
                            conn.id)
                self.settings = dataclasses.replace(self.settings, synchronous_mode=False)
                self.sync_owner = 0
