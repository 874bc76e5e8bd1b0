"""The client session with a CARLA server: connecting and probing, the world and its town,
synchronous mode, the Traffic Manager, reconnection and putting the server back.

:class:`Connection` owns the ``carla.Client``, the ``carla.World`` and its ``carla.Map``
and every server-wide setting the backend changes, so that :meth:`Connection.release`
can undo them: the world's settings go back to asynchronous mode (a synchronous server
without its ticking client waits forever) and the Traffic Manager leaves synchronous
mode. A lost connection is forgotten without calling it (each call would wait the
time-out); the actors of the lost session are destroyed after the next connection.
"""

from __future__ import annotations

import logging
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ...errors import MapError, SimulatorConnectionError
from .convert import one_line
from .probe import require_carla

__all__ = ["SERVER_VERSION", "MAX_DT", "Connection", "connect_schedule", "same_town"]

log = logging.getLogger(__name__)

#: The CARLA version this backend is written and tested against (client and server).
SERVER_VERSION = "0.9.16"

#: Largest fixed step CARLA allows for stable physics substepping [s].
MAX_DT = 0.1

_CHECK_LINE = ("is CarlaUE4.sh/CarlaUnreal.sh {v} running there, and are --host/--port right "
               "(each server needs its own --port and --tm-port)?")


def connect_schedule(timeout: float, attempts: int = 3, first_backoff: float = 0.5
                     ) -> list[tuple[float, float]]:
    """Split a connection time-out into attempts with exponential back-off.

    Each attempt creates a fresh ``carla.Client`` whose ``set_timeout`` is the attempt's
    share; the pauses between attempts double (0.5 s, 1 s, 2 s, ...) but never take more
    than a third of the budget. The sum of attempt time-outs and pauses is ``timeout``.

    Args:
        timeout: the overall budget [s] (> 0).
        attempts: number of attempts (>= 1).
        first_backoff: first pause [s].

    Returns:
        ``[(attempt_timeout_s, pause_after_s), ...]``; the last pause is 0.
    """
    attempts = max(1, int(attempts))
    timeout = float(timeout)
    pauses = [first_backoff * 2 ** i for i in range(attempts - 1)]
    total = sum(pauses)
    if total > timeout / 3.0 and total > 0:
        pauses = [p * (timeout / 3.0) / total for p in pauses]
    per = (timeout - sum(pauses)) / attempts
    return [(per, pauses[i] if i < attempts - 1 else 0.0) for i in range(attempts)]


def same_town(map_name: str, town: str) -> bool:
    """'Carla/Maps/Town01' and '/Game/Carla/Maps/Town01_Opt' are both 'Town01'."""
    base = str(map_name).rsplit("/", 1)[-1]
    return base == town or base == f"{town}_Opt"


def set_async(world: Any) -> None:
    """Put ``world`` in asynchronous mode (variable step) if it is not."""
    s = world.get_settings()
    if s.synchronous_mode:
        s.synchronous_mode = False
        s.fixed_delta_seconds = None
        world.apply_settings(s)


class Connection:
    """One client session with a CARLA server (see the module docstring).

    Args:
        carla: the ``carla`` module (or a test double).
        host, port: the server's RPC endpoint.
        timeout: client time-out [s] for every RPC and the budget of one (re)connection.
        attempts: attempts per (re)connection, with exponential back-off.
        maps_dir: folder of OpenDRIVE towns for towns the server does not have.
        load_timeout: client time-out while the server loads or builds a town [s].
        probe: ``probe(host, port, timeout) -> version`` called before each
            ``carla.Client`` is created (:func:`.probe.require_carla`: a peer that is not
            a CARLA server would make the C++ client abort the process; it raises
            ``RuntimeError`` when nobody answers); default: probe when ``carla`` is the
            real client module, not with a test double.
    """

    def __init__(self, carla: Any, *, host: str, port: int, timeout: float, attempts: int,
                 maps_dir: Path | None, load_timeout: float,
                 probe: Callable[[str, int, float], str] | None | bool = True) -> None:
        self._carla = carla
        if probe is True:
            probe = require_carla if isinstance(carla, types.ModuleType) else None
        self._probe = probe or None
        self.host, self.port, self.timeout = host, port, timeout
        self.attempts, self.maps_dir, self.load_timeout = attempts, maps_dir, load_timeout
        self.client: Any = None
        self.world: Any = None
        self.lost = False
        self.server_version: str | None = None
        self._restore_settings: Any = None  # settings to put back on release
        self._tm: Any = None
        self._map: Any = None
        self._map_key: tuple[Any, str] | None = None
        self._generated_town: tuple[Any, str] | None = None  # (world id, town) we built
        self._stale_ids: list[int] = []  # actors of a lost connection, destroyed on reconnect
        self._touched = False  # we put the server into synchronous mode

    @property
    def where(self) -> str:
        """``host:port``, for messages."""
        return f"{self.host}:{self.port}"

    @property
    def connected(self) -> bool:
        """A client is connected and no loss has been detected."""
        return self.client is not None and not self.lost

    @property
    def needs_cleanup(self) -> bool:
        """Something is left on the server: actors of a lost session, or settings this
        session remembered to restore."""
        return bool(self._stale_ids) or self._restore_settings is not None

    @property
    def map(self) -> Any:
        """The world's ``carla.Map``: the last town loaded, else the server's current
        town (None when not connected).

        Raises:
            SimulatorConnectionError: the server does not answer.
        """
        if self._map is None and self.connected:
            try:
                self._map = self.world.get_map()
                self._map_key = (self.world.id, str(self._map.name).rsplit("/", 1)[-1])
            except RuntimeError as e:
                raise SimulatorConnectionError(
                    f"CARLA server at {self.where} does not answer: {one_line(e)}") from e
        return self._map

    # ------------------------------------------------------------------ connect
    def connect(self, budget: float | None = None, attempts: int | None = None) -> None:
        """Connect with retries and back-off; sets :attr:`client` and :attr:`world`.

        Raises:
            SimulatorConnectionError: no server answered within the budget.
        """
        carla = self._carla
        budget = self.timeout if budget is None else budget
        attempts = self.attempts if attempts is None else attempts
        t0 = time.monotonic()
        last: BaseException | None = None
        for i, (attempt_s, pause_s) in enumerate(connect_schedule(budget, attempts)):
            try:
                if self._probe is not None:  # RuntimeError: nobody there; NotCarlaError: at once
                    self._probe(self.host, self.port, max(0.05, attempt_s))
                client = carla.Client(self.host, self.port)
                client.set_timeout(max(0.05, attempt_s))
                server = str(client.get_server_version())
                client.set_timeout(self.timeout)
                world = client.get_world()
            except RuntimeError as e:  # time-out, refused, host not found
                last = e
                log.info("CARLA connect attempt %d to %s failed: %s", i + 1, self.where, one_line(e))
                if "resolve" in str(e).lower():  # an unknown host name will not appear later
                    break
                if pause_s > 0:
                    time.sleep(pause_s)
                continue
            self.client, self.world, self.lost = client, world, False
            self.server_version = server
            client_v = str(getattr(client, "get_client_version", lambda: SERVER_VERSION)())
            if server.split("-")[0] != client_v.split("-")[0]:
                log.warning("CARLA server %s and client %s differ: the wire format changes between "
                            "versions; use the client of the server's version (pip install carla==%s)",
                            server, client_v, server)
            log.info("connected to CARLA %s at %s in %.2f s", server, self.where, time.monotonic() - t0)
            if self._restore_settings is None:
                self._remember_settings(world)
            self._destroy_stale()
            return
        if last is not None and "resolve" in str(last).lower():
            raise SimulatorConnectionError(
                f"cannot resolve the CARLA host {self.host!r} (port {self.port}): check --host "
                f"({one_line(last)})")
        n = i + 1
        raise SimulatorConnectionError(
            f"cannot reach a CARLA server at {self.where} within {budget:g} s: "
            + _CHECK_LINE.format(v=SERVER_VERSION)
            + (f" (last of {n} attempt{'s' if n > 1 else ''}: {one_line(last)})" if last is not None else ""))

    def _remember_settings(self, world: Any) -> None:
        """Keep the settings to restore on release, always asynchronous: a server left in
        synchronous mode by a crashed client must not be put back into it."""
        s = world.get_settings()
        s.synchronous_mode = False
        if not getattr(s, "fixed_delta_seconds", None):
            s.fixed_delta_seconds = None
        self._restore_settings = s

    def answers(self) -> bool:
        """The connected server answers a version probe (a warning when it does not;
        the caller then forgets the session with :meth:`lose` and reconnects)."""
        try:
            self.client.get_server_version()
            return True
        except RuntimeError as e:
            log.warning("CARLA server at %s does not answer (%s): reconnecting", self.where, one_line(e))
            return False

    def lose(self, actor_ids: list[int]) -> None:
        """Forget the connection without calling it; ``actor_ids`` (the episode's
        actors) are destroyed after the reconnection if they survived."""
        self.lost = True
        self._stale_ids.extend(int(i) for i in actor_ids)
        self.client = self.world = self._tm = None
        self._map_key = None

    def _destroy_stale(self) -> None:
        if not self._stale_ids or self.client is None:
            return
        cmds = [self._carla.command.DestroyActor(i) for i in self._stale_ids]
        try:
            self.client.apply_batch(cmds)
        except RuntimeError as e:
            log.warning("could not destroy %d actors of the lost session: %s", len(cmds), one_line(e))
        self._stale_ids = []

    # ------------------------------------------------------------------ world
    def load_town(self, town: str) -> Any:
        """Make ``town`` the server's world (or keep it) and cache its ``carla.Map``:
        a town the server has is loaded, any other is built from OpenDRIVE
        (``generate_opendrive_world``)."""
        client = self.client
        world = client.get_world()
        key = (world.id, town)
        if self._map_key == key:
            self.world = world
            return world
        current = world.get_map()
        if same_town(current.name, town) or self._generated_town == key:
            self.world, self._map, self._map_key = world, current, key
            return world
        available = [str(m) for m in client.get_available_maps()]
        match = next((m for m in available if same_town(m, town)), None)
        set_async(world)  # loading in synchronous mode would wait for a tick
        old = self.timeout
        client.set_timeout(max(old, self.load_timeout))  # loading takes longer than one RPC
        try:
            if match is not None:
                log.info("loading %s on the CARLA server", match)
                world = client.load_world(town)
                generated = False
            else:
                xodr = self._xodr_text(town, available)
                log.info("building an OpenDRIVE world for %s on the CARLA server", town)
                params = self._carla.OpendriveGenerationParameters(
                    vertex_distance=2.0, max_road_length=50.0, wall_height=0.0,
                    additional_width=0.6, smooth_junctions=True, enable_mesh_visibility=True)
                world = client.generate_opendrive_world(xodr, params)
                generated = True
        finally:
            client.set_timeout(old)
        key = (world.id, town)
        self._generated_town = key if generated else None
        self.world, self._map, self._map_key = world, world.get_map(), key
        return world

    def _xodr_text(self, town: str, available: list[str]) -> str:
        """OpenDRIVE text of a town the server lacks: a generated town or an ``.xodr``
        of the maps directory (:func:`drive_il.maps.towns.town_text`)."""
        from ...maps.towns import town_text  # noqa: PLC0415
        try:
            return town_text(town, self.maps_dir)[1]
        except MapError as e:
            names = ", ".join(sorted({m.rsplit("/", 1)[-1] for m in available})) or "none"
            raise MapError(f"town {town!r} is not on the CARLA server at {self.where} (it has: "
                           f"{names}) and has no OpenDRIVE file here: {one_line(e)}") from None

    def set_synchronous(self, dt: float) -> None:
        """Synchronous mode with the fixed step ``dt`` [s] on :attr:`world` (from here
        on :meth:`release` puts the server back)."""
        settings = self.world.get_settings()
        settings.synchronous_mode = True
        settings.fixed_delta_seconds = dt
        self._touched = True
        self.world.apply_settings(settings)

    def traffic_manager(self, tm_port: int) -> Any:
        """The Traffic Manager on ``tm_port`` (started in this process on first use).

        Raises:
            SimulatorConnectionError: another process holds the port.
        """
        if self._tm is None:
            try:
                self._tm = self.client.get_trafficmanager(tm_port)
            except RuntimeError as e:
                if "bind" not in str(e).lower():
                    raise
                raise SimulatorConnectionError(
                    f"cannot start the Traffic Manager on port {tm_port} ({one_line(e)}): another "
                    f"process holds it; give each drive_il process its own --tm-port") from None
        return self._tm

    def release(self) -> None:
        """Take the Traffic Manager out of synchronous mode and put the world's settings
        back (asynchronous); failures are logged, not raised."""
        try:
            if self._tm is not None:
                self._tm.set_synchronous_mode(False)
        except RuntimeError as e:
            log.warning("Traffic Manager: %s", one_line(e))
        finally:
            self._restore_world()

    def _restore_world(self) -> None:
        if self.world is None or not self._touched:
            return
        try:
            s = self._restore_settings
            if s is None:
                set_async(self.world)
            else:
                self.world.apply_settings(s)
        except RuntimeError as e:
            log.warning("could not restore asynchronous mode on %s: %s", self.where, one_line(e))
