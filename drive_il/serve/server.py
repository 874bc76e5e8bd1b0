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

Tick pacing: while the world is in synchronous mode and a client-side Traffic Manager
is registered, ``tick_cue`` answers the coming frame's number at once and the step runs
:data:`TM_TICK_PACE_S` later, on the server's pacing thread (as on a real server, the
client's ``world.tick()`` returns once that frame's snapshot arrives). The 0.9.16
client's ``TrafficManagerLocal::SynchronousTick`` can miss the wake-up of its own
Traffic Manager thread when a snapshot follows the Traffic Manager's previous cycle
within a fraction of a millisecond (a client-side race, carla#9172: ``world.tick()``
then never returns); the pause gives that thread time to wait for its next cycle,
while the server keeps answering its calls. A promised step runs before anything else
ticks (another ``tick_cue``, a batch with a tick, the asynchronous timer). Without a
Traffic Manager, ticks are not paced.

Robustness: a client connection that ends takes its Traffic Manager registrations
with it, and if it had put the world into synchronous mode the world goes back to
asynchronous mode (the next client is not left facing a frozen world). The actors it
spawned are destroyed once no RPC connection from its address remains (see
:meth:`CarlaServer._on_close`; unlike a real CARLA server, where they stay). Calls the
server does not serve are logged and answered as a real server answers them: an
unknown function with an rpclib error, a known but unsupported feature with a CARLA
``Response`` error naming it.

Limits: connections (``max_connections`` RPC connections, four times as many stream
connections), message size and idle time (:mod:`.rpc`); OpenDRIVE text sent by clients
lives in a temporary folder of this server, removed by :meth:`CarlaServer.stop`. There
is no authentication: listening on an address other than loopback logs a warning
(:func:`bind_warning`).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import shutil
import tempfile
import threading
import time
import weakref
from pathlib import Path
from typing import Any

from . import encoding as E
from .actors import Vehicle
from .autopilot import LaneFollower, TrafficManagerRegistry, make_follower
from .blueprints import blueprint_definitions
from .handlers import SERVER_VERSION, UNSUPPORTED, Handlers
from .rpc import (
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_MESSAGE,
    Connection,
    RpcServer,
    UnknownFunction,
)
from .streams import StreamServer
from .world import ASYNC_TICK_HZ, ServerWorld

__all__ = ["TM_TICK_PACE_S", "CarlaServer", "bind_warning", "is_loopback"]

log = logging.getLogger(__name__)

#: [s] how long after its ``tick_cue`` a step runs while a Traffic Manager is registered
#: in synchronous mode (see the module's "Tick pacing").
TM_TICK_PACE_S = 0.002


def is_loopback(host: str) -> bool:
    """Whether listening on ``host`` (an address, "localhost" or "" for every
    interface) reaches this machine's own clients only."""
    h = str(host).strip().strip("[]")
    if h.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(h.split("%", 1)[0]).is_loopback
    except ValueError:  # "" (every interface) or a host name: assume reachable
        return False


def bind_warning(host: str) -> str | None:
    """The one-line warning for listening on ``host``; None for a loopback address."""
    if is_loopback(host):
        return None
    where = "every interface" if str(host) in ("", "0.0.0.0", "::") else str(host)
    return (f"listening on {where} ({host or '*'}), not loopback: anyone who can reach this "
            f"address can control the server (there is no authentication); use --host 127.0.0.1 "
            f"unless you mean it")


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
        max_connections: RPC connections served at once (stream connections: four times
            as many); more are closed at once.
        idle_timeout: [s] an RPC connection without traffic for this long is closed (0: never).
        max_message: [bytes] the largest message a client may send (the OpenDRIVE text
            of ``generate_opendrive_world``); a connection sending more is closed.

    Attributes:
        world: the current episode's world.
        settings: the episode settings (synchronous mode, fixed delta).
        sync_owner: id of the connection that put the world into synchronous mode (0: none).
        traffic_managers: the client-side Traffic Managers registered with the server.
        definitions: the blueprint library (``ActorDefinition`` lists).
        calls: {RPC name: number of calls}.
    """

    def __init__(self, *, host: str = "127.0.0.1", port: int = 2000, stream_port: int = 0,
                 maps_dir: str | Path | None = None, town: str | None = None, seed: int = 0,
                 max_connections: int = DEFAULT_MAX_CONNECTIONS,
                 idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
                 max_message: int = DEFAULT_MAX_MESSAGE) -> None:
        from ..maps import available_towns
        self.maps_dir = maps_dir
        self.seed = int(seed)
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._scratch: Path | None = None
        self._scratch_cleanup: weakref.finalize | None = None
        # connections gone whose actors wait for the last connection from their address
        self._gone: dict[str, set[int]] = {}
        self.streams = StreamServer(host, stream_port, max_connections=4 * int(max_connections))
        self.stream_port = self.streams.port
        self.settings = E.EpisodeSettings()
        self.sync_owner = 0
        self.traffic_managers = TrafficManagerRegistry()
        self.definitions = blueprint_definitions()
        self._rasters: dict[str, Any] = {}
        # a step promised by tick_cue (see "Tick pacing"): (world, due time), run by _pacer
        self._promised: tuple[ServerWorld, float] | None = None
        self._pace = threading.Condition(self._lock)
        self._pacer: threading.Thread | None = None
        self._episodes = 0
        if town is None:
            names = available_towns(maps_dir)
            town = "Town01" if "Town01" in names else "circuit"
        self.world = self.new_world(town)
        # listen only once the first world (and its raster) is ready
        try:
            self.rpc = RpcServer(host, port, self._dispatch, on_close=self._on_close,
                                 max_connections=max_connections, idle_timeout=idle_timeout,
                                 max_message=max_message)
        except BaseException:
            self.streams.stop()
            raise
        self.host, self.port = self.rpc.host, self.rpc.port
        warning = bind_warning(self.host)
        if warning:
            log.warning("%s", warning)
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
        self._pacer = threading.Thread(target=self._pace_loop, name="tick-pacer", daemon=True)
        self._pacer.start()
        log.info("serving CARLA %s on %s:%d (streams on port %d), town %s",
                 SERVER_VERSION, self.host, self.port, self.stream_port, self.world.town.name)

    def stop(self) -> None:
        """Stop serving; removes the temporary folder (:meth:`scratch_dir`). Idempotent."""
        self._stop.set()
        with self._pace:
            self._pace.notify_all()
        self.rpc.stop()
        self.streams.stop()
        if self._scratch_cleanup is not None:
            self._scratch_cleanup()  # runs once

    def scratch_dir(self) -> Path:
        """This server's temporary folder (created on first use; removed by :meth:`stop`
        and at interpreter exit), for the OpenDRIVE text clients send."""
        if self._scratch is None:
            self._scratch = Path(tempfile.mkdtemp(prefix="drive_il_serve-"))
            self._scratch_cleanup = weakref.finalize(self, shutil.rmtree, str(self._scratch), True)
        return self._scratch

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
        """Advance the world one step (after a step ``tick_cue`` promised); returns the
        new frame."""
        with self._lock:
            self._keep_promise()
            return self._step()

    def tick_cue(self) -> int:
        """A client's ``tick_cue``: the frame it starts. Paced while a Traffic Manager is
        registered in synchronous mode (the step runs :data:`TM_TICK_PACE_S` later, see
        "Tick pacing"); else stepped at once."""
        with self._lock:
            if not (self.settings.synchronous_mode and len(self.traffic_managers)):
                return self.tick()
            self._keep_promise()
            self._promised = (self.world, time.monotonic() + TM_TICK_PACE_S)
            self._pace.notify_all()
            return self.world.frame + 1

    def _step(self) -> int:
        w = self.world
        dt = self.settings.fixed_delta_seconds or 1.0 / ASYNC_TICK_HZ
        w.step(dt, followers=self._follower)
        return w.frame

    def _keep_promise(self) -> None:
        """Run the step a ``tick_cue`` promised, if any (under the lock); a promise made
        on a world that is no longer the current one is dropped."""
        promised, self._promised = self._promised, None
        if promised is not None and promised[0] is self.world:
            try:
                self._step()
            except Exception:
                log.exception("paced tick failed")

    def _pace_loop(self) -> None:
        with self._pace:
            while not self._stop.is_set():
                if self._promised is None:
                    self._pace.wait(0.5)
                    continue
                delay = self._promised[1] - time.monotonic()
                if delay > 0.0:
                    self._pace.wait(delay)
                    continue
                self._keep_promise()

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
        """A connection ended: forget its Traffic Managers, undo its synchronous mode,
        and destroy the actors it spawned -- once no RPC connection from its address is
        left (a client is known by its RPC connection, the one that spawns; its stream
        connections do not count; several RPC connections from one address may be one
        client, whose actors stay until its last connection ends)."""
        with self._lock:
            for port in self.traffic_managers.ports_of(conn.id):
                log.info("client %d gone: forgetting its Traffic Manager on port %d", conn.id, port)
                self.traffic_managers.remove(port)
            if self.sync_owner == conn.id and self.settings.synchronous_mode:
                log.warning("client %d left the world in synchronous mode: back to asynchronous",
                            conn.id)
                self.settings = dataclasses.replace(self.settings, synchronous_mode=False)
                self.sync_owner = 0
            gone = self._gone.setdefault(conn.host, set())
            if any(a.owner == conn.id for a in self.world.actors.values()):
                gone.add(conn.id)
            if any(c.host == conn.host for c in self.rpc.open_connections()):
                return  # its client may still be there
            del self._gone[conn.host]
            ids = self.world.destroy_owned(gone) if gone else []
            if ids:
                log.warning("client %d gone (no connection from %s left): destroyed the %d actor%s "
                            "it spawned (%s)", conn.id, conn.host, len(ids), "s" * (len(ids) > 1),
                            ", ".join(map(str, ids[:20])) + (" ..." if len(ids) > 20 else ""))
