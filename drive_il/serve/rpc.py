"""msgpack-rpc over TCP, as rpclib (the CARLA client's RPC library) speaks it.

Messages (msgpack-rpc specification): request ``[0, msgid, method, params]``,
response ``[1, msgid, error, result]``, notification ``[2, method, params]``. One
thread serves every connection (a ``selectors`` loop) and answers each connection's
requests **in order** (a vehicle control sent asynchronously must not be applied after
the tick that follows it); handlers run on that thread, one call at a time.

Limits (``drive-il serve`` flags): at most ``max_connections`` connections (more are
closed at once), at most ``max_message`` bytes buffered for one unfinished message (a
connection that sends more is closed with a warning), and a connection without traffic
for ``idle_timeout`` seconds is closed. A connection whose answers are not read is not
read either (its unsent answers are all it holds).

Errors: a method the handler does not know, or an exception inside it, is answered
with a non-nil ``error`` (the CARLA client then raises ``RuntimeError: rpc::rpc_error
during call in function NAME``); features the handler knows but does not support
answer a CARLA ``Response`` error in ``result`` instead (see :mod:`.encoding`).
"""

from __future__ import annotations

import itertools
import logging
import selectors
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import msgpack

from .listener import Listener

__all__ = ["DEFAULT_IDLE_TIMEOUT", "DEFAULT_MAX_CONNECTIONS", "DEFAULT_MAX_MESSAGE", "Connection",
           "RpcServer", "UnknownFunction"]

log = logging.getLogger(__name__)

_REQUEST, _RESPONSE, _NOTIFY = 0, 1, 2
#: Largest message a client may send [bytes]: the largest legitimate one is
#: ``generate_opendrive_world`` with a town's OpenDRIVE text.
DEFAULT_MAX_MESSAGE = 64 << 20
#: Most RPC connections served at once.
DEFAULT_MAX_CONNECTIONS = 64
#: [s] a connection without traffic for this long is closed (0: never).
DEFAULT_IDLE_TIMEOUT = 600.0
_RECV = 1 << 16


class UnknownFunction(Exception):
    """Raised by a handler for a method name it does not serve."""


class Connection:
    """One client connection (passed to the handler with every call).

    Attributes:
        id: sequential connection number (1, 2, ...).
        peer: the client's (host, port).
        host: the client's address (``peer[0]``).
        closed: set when the connection ended.
    """

    def __init__(self, cid: int, sock: socket.socket, peer: Any, max_message: int = DEFAULT_MAX_MESSAGE) -> None:
        self.id = cid
        self.sock = sock
        self.peer = peer
        self.host = str(peer[0]) if isinstance(peer, (tuple, list)) and peer else str(peer)
        self.closed = threading.Event()
        self.unpacker = msgpack.Unpacker(raw=False, strict_map_key=False, max_buffer_size=max_message)
        self.out = bytearray()  # answers not yet sent
        self.last = time.monotonic()  # last traffic

    def __repr__(self) -> str:
        return f"Connection({self.id}, {self.peer})"


Handler = Callable[[Connection, str, list], Any]


class RpcServer:
    """A msgpack-rpc server: one thread, every connection in one ``selectors`` loop.

    Args:
        host, port: where to listen (port 0: any free port; see :attr:`port`).
        handler: ``handler(conn, method, params) -> result`` (a msgpack-able object);
            raises :class:`UnknownFunction` for unknown methods.
        on_close: ``on_close(conn)`` after a connection ended (on the server's thread).
        max_connections: connections served at once; more are closed at once.
        max_message: [bytes] the most one unfinished message may buffer; a connection
            that sends more is closed (one warning).
        idle_timeout: [s] a connection without traffic for this long is closed (0: never).

    Raises:
        ValueError: a limit out of range.
        OSError: the address cannot be bound.
    """

    def __init__(self, host: str, port: int, handler: Handler,
                 on_close: Callable[[Connection], None] | None = None, *,
                 max_connections: int = DEFAULT_MAX_CONNECTIONS,
                 max_message: int = DEFAULT_MAX_MESSAGE,
                 idle_timeout: float = DEFAULT_IDLE_TIMEOUT) -> None:
        if int(max_connections) < 1:
            raise ValueError(f"max_connections must be at least 1, got {max_connections}")
        if int(max_message) < 1024:
            raise ValueError(f"max_message must be at least 1024 bytes, got {max_message}")
        if not float(idle_timeout) >= 0.0:
            raise ValueError(f"idle_timeout must be >= 0 s (0: never), got {idle_timeout}")
        self._handler = handler
        self._on_close = on_close
        self.max_connections = int(max_connections)
        self.max_message = int(max_message)
        self.idle_timeout = float(idle_timeout)
        self._listener = Listener(host, port, name="rpc", logger=log)
        self.host, self.port = self._listener.host, self._listener.port
        self._ids = itertools.count(1)
        self._conns: dict[int, Connection] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._sel = self._listener.selector
        self._packer = msgpack.Packer(use_bin_type=True)
        self._next_sweep = 0.0

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self._listener.start()
        self._thread = threading.Thread(target=self._loop, name="rpc", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop listening and close every connection (``on_close`` runs for each)."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        t = self._thread
        if t is None:  # never started
            self._close_all()
            return
        self._listener.wake()
        if t is not threading.current_thread():
            t.join(timeout)

    @property
    def connections(self) -> int:
        with self._lock:
            return len(self._conns)

    @property
    def refused(self) -> int:
        """Connections closed at once because ``max_connections`` were open."""
        return self._listener.refused

    def open_connections(self) -> list[Connection]:
        """The connections open now."""
        with self._lock:
            return list(self._conns.values())

    # ------------------------------------------------------------------ the loop
    def _loop(self) -> None:
        try:
            while not self._stopping.is_set():
                for data, mask in self._listener.select(self._select_timeout()):
                    if data is None:
                        self._accept()
                    elif not data.closed.is_set():
                        if mask & selectors.EVENT_WRITE:
                            self._flush(data)
                        elif mask & selectors.EVENT_READ:
                            self._read(data)
                self._expire_idle()
        except Exception:  # a bug here must not leave a deaf server behind silently
            log.exception("rpc: the connection loop failed")
        finally:
            self._close_all()

    def _select_timeout(self) -> float:
        if self.idle_timeout <= 0:
            return 1.0
        return min(1.0, max(0.02, self.idle_timeout / 4))

    def _accept(self) -> None:
        def full() -> bool:
            with self._lock:
                return len(self._conns) >= self.max_connections

        def register(sock: socket.socket, peer: Any) -> Connection:
            conn = Connection(next(self._ids), sock, peer, self.max_message)
            with self._lock:
                self._conns[conn.id] = conn
            log.info("rpc: client %d connected from %s:%s", conn.id, *peer[:2])
            return conn

        self._listener.accept(full, register, f"{self.max_connections} connections open (--max-connections)")

    def _read(self, conn: Connection) -> None:
        try:
            data = conn.sock.recv(_RECV)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:
            self._end(conn, str(e))
            return
        if not data:
            self._end(conn, "")
            return
        conn.last = time.monotonic()
        try:
            conn.unpacker.feed(data)
        except msgpack.BufferFull:
            self._too_big(conn)
            return
        out = conn.out
        try:
            for msg in conn.unpacker:
                reply = self._handle(conn, self._handler, msg)
                if reply is not None:
                    out += self._packer.pack(reply)
        except ValueError as e:  # a declared length over the limit, or not msgpack
            if "exceeds max_" in str(e):
                self._too_big(conn)
            else:
                self._end(conn, f"not msgpack-rpc: {e}")
            return
        except msgpack.UnpackException as e:
            self._end(conn, f"not msgpack-rpc: {e}")
            return
        conn.last = time.monotonic()
        if out:
            self._flush(conn)

    def _too_big(self, conn: Connection) -> None:
        log.warning("rpc: client %d sent a message over %d bytes (--max-message-mb): closing "
                    "its connection", conn.id, self.max_message)
        self._end(conn, "message too large")

    def _flush(self, conn: Connection) -> None:
        """Send what the socket takes; read again only once every answer is sent."""
        out = conn.out
        try:
            while out:
                n = conn.sock.send(out)
                if n <= 0:
                    break
                del out[:n]
                conn.last = time.monotonic()
        except (BlockingIOError, InterruptedError):
            pass
        except OSError as e:
            self._end(conn, str(e))
            return
        want = selectors.EVENT_WRITE if out else selectors.EVENT_READ
        try:
            if self._sel.get_key(conn.sock).events != want:
                self._sel.modify(conn.sock, want, conn)
        except (KeyError, ValueError):
            pass

    def _expire_idle(self) -> None:
        if self.idle_timeout <= 0:
            return
        now = time.monotonic()
        if now < self._next_sweep:
            return
        self._next_sweep = now + self._select_timeout()
        limit = now - self.idle_timeout
        for conn in self.open_connections():
            if conn.last < limit and not conn.closed.is_set():
                log.warning("rpc: client %d idle for %.0f s (--idle-timeout): closing its connection",
                            conn.id, time.monotonic() - conn.last)
                self._end(conn, "idle")

    def _end(self, conn: Connection, reason: str) -> None:
        if conn.closed.is_set():
            return
        conn.closed.set()
        try:
            self._sel.unregister(conn.sock)
        except (KeyError, ValueError):
            pass
        with self._lock:
            self._conns.pop(conn.id, None)
        try:
            conn.sock.close()
        except OSError:
            pass
        conn.out.clear()
        if reason and not self._stopping.is_set():
            log.info("rpc: client %d: connection ended (%s)", conn.id, reason)
        log.info("rpc: client %d disconnected", conn.id)
        if self._on_close is not None:
            try:
                self._on_close(conn)
            except Exception:
                log.exception("rpc: clean-up after client %d failed", conn.id)

    def _close_all(self) -> None:
        for conn in self.open_connections():
            self._end(conn, "")
        self._listener.close()

    @staticmethod
    def _handle(conn: Connection, handler: Handler, msg: Any) -> list | None:
        if not isinstance(msg, (list, tuple)) or not msg:
            log.warning("rpc: client %d sent a malformed message %r", conn.id, msg)
            return None
        kind = msg[0]
        if kind == _REQUEST and len(msg) == 4:
            _, msgid, method, params = msg
        elif kind == _NOTIFY and len(msg) == 3:
            msgid, (method, params) = None, msg[1:]
        else:
            log.warning("rpc: client %d sent an unexpected message type %r", conn.id, kind)
            return None
        try:
            result = handler(conn, method, list(params or ()))
            error = None
        except UnknownFunction:
            log.warning("rpc: client %d called unknown function %r (%d arguments)",
                        conn.id, method, max(len(params or ()) - 1, 0))
            error, result = (f"rpclib: server could not find function '{method}' with "
                             f"argument count {len(params or ())}."), None
        except Exception as e:
            log.exception("rpc: client %d: %s failed", conn.id, method)
            error, result = f"{method}: {type(e).__name__}: {e}", None
        if msgid is None:
            return None
        return [_RESPONSE, msgid, error, result]
