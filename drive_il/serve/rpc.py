"""msgpack-rpc over TCP, as rpclib (the CARLA client's RPC library) speaks it.

Messages (msgpack-rpc specification): request ``[0, msgid, method, params]``,
response ``[1, msgid, error, result]``, notification ``[2, method, params]``. One
thread per connection reads its requests and answers them **in order** (a vehicle
control sent asynchronously must not be applied after the tick that follows it).

Errors: a method the handler does not know, or an exception inside it, is answered
with a non-nil ``error`` (the CARLA client then raises ``RuntimeError: rpc::rpc_error
during call in function NAME``); features the handler knows but does not support
answer a CARLA ``Response`` error in ``result`` instead (see :mod:`.encoding`).
"""

from __future__ import annotations

import itertools
import logging
import socket
import threading
from collections.abc import Callable
from typing import Any

import msgpack

__all__ = ["Connection", "RpcServer", "UnknownFunction"]

log = logging.getLogger(__name__)

_REQUEST, _RESPONSE, _NOTIFY = 0, 1, 2


class UnknownFunction(Exception):
    """Raised by a handler for a method name it does not serve."""


class Connection:
    """One client connection (passed to the handler with every call).

    Attributes:
        id: sequential connection number (1, 2, ...).
        peer: the client's (host, port).
        closed: set when the connection ended.
    """

    def __init__(self, cid: int, sock: socket.socket, peer: Any) -> None:
        self.id = cid
        self.sock = sock
        self.peer = peer
        self.closed = threading.Event()

    def __repr__(self) -> str:
        return f"Connection({self.id}, {self.peer})"


Handler = Callable[[Connection, str, list], Any]


class RpcServer:
    """A threaded msgpack-rpc server.

    Args:
        host, port: where to listen (port 0: any free port; see :attr:`port`).
        handler: ``handler(conn, method, params) -> result`` (a msgpack-able object);
            raises :class:`UnknownFunction` for unknown methods.
        on_close: ``on_close(conn)`` after a connection ended.
    """

    def __init__(self, host: str, port: int, handler: Handler,
                 on_close: Callable[[Connection], None] | None = None) -> None:
        self._handler = handler
        self._on_close = on_close
        self._sock = socket.create_server((host, port), reuse_port=False, backlog=64)
        self.host, self.port = self._sock.getsockname()[:2]
        self._ids = itertools.count(1)
        self._conns: dict[int, Connection] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._accept_loop, name="rpc-accept", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        try:
            self._sock.close()
        except OSError:
            pass
        with self._lock:
            conns = list(self._conns.values())
        for c in conns:
            try:
                c.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    @property
    def connections(self) -> int:
        with self._lock:
            return len(self._conns)

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                sock, peer = self._sock.accept()
            except OSError:
                if self._stopping.is_set():
                    return
                continue
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = Connection(next(self._ids), sock, peer)
            with self._lock:
                self._conns[conn.id] = conn
            log.info("rpc: client %d connected from %s:%s", conn.id, *peer[:2])
            threading.Thread(target=self._serve, args=(conn,), name=f"rpc-{conn.id}",
                             daemon=True).start()

    def _serve(self, conn: Connection) -> None:
        sock = conn.sock
        unpacker = msgpack.Unpacker(raw=False, strict_map_key=False, max_buffer_size=1 << 30)
        packer = msgpack.Packer(use_bin_type=True)
        handler = self._handler
        try:
            while True:
                data = sock.recv(1 << 16)
                if not data:
                    break
                unpacker.feed(data)
                out = []
                for msg in unpacker:
                    reply = self._handle(conn, handler, msg)
                    if reply is not None:
                        out.append(packer.pack(reply))
                if out:
                    sock.sendall(out[0] if len(out) == 1 else b"".join(out))
        except (OSError, ValueError, msgpack.UnpackException) as e:
            if not self._stopping.is_set():
                log.info("rpc: client %d: connection ended (%s)", conn.id, e)
        finally:
            conn.closed.set()
            with self._lock:
                self._conns.pop(conn.id, None)
            try:
                sock.close()
            except OSError:
                pass
            log.info("rpc: client %d disconnected", conn.id)
            if self._on_close is not None:
                try:
                    self._on_close(conn)
                except Exception:
                    log.exception("rpc: clean-up after client %d failed", conn.id)

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
