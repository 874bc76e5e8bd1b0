"""The listening side shared by the RPC server and the stream server: one listening
socket, one ``selectors`` selector and a wake-up socket pair, served from one thread,
with a cap on open connections.

Both :class:`~drive_il.serve.rpc.RpcServer` and
:class:`~drive_il.serve.streams.StreamServer` own a :class:`Listener` and run their own
loop over :meth:`Listener.select`; what a connection is and how it is read stays theirs.
"""

from __future__ import annotations

import logging
import selectors
import socket
import time
from collections.abc import Callable
from typing import Any

__all__ = ["Listener", "RateLimitedLog"]

#: Connections accepted per readiness event at most (the rest wait for the next one).
_ACCEPT_BATCH = 256
#: The selector key data of the wake-up socket.
_WAKE = object()


class RateLimitedLog:
    """A warning logged at most once per ``period`` seconds (the others are counted)."""

    def __init__(self, logger: logging.Logger, period: float = 10.0) -> None:
        self._log = logger
        self._period = float(period)
        self._next = 0.0
        self._skipped = 0

    def warning(self, msg: str, *args: Any) -> None:
        now = time.monotonic()
        if now < self._next:
            self._skipped += 1
            return
        if self._skipped:
            msg += f" ({self._skipped} more since the last such warning)"
            self._skipped = 0
        self._next = now + self._period
        self._log.warning(msg, *args)


class Listener:
    """A non-blocking listening socket on ``(host, port)`` and the selector of its
    connections.

    Args:
        host, port: where to listen (port 0: a free port).
        name: prefix of log lines ("rpc", "streams").
        logger: where warnings go.

    Attributes:
        selector: the ``selectors`` selector; the owner registers its connections here.
        host, port: the bound address.
        refused: connections closed at once because the cap was reached.

    Raises:
        OSError: the address cannot be bound.
    """

    def __init__(self, host: str, port: int, *, name: str, logger: logging.Logger) -> None:
        self.name = name
        self._log = logger
        self._sock = socket.create_server((host, port), reuse_port=False, backlog=64)
        self._sock.setblocking(False)
        self.host, self.port = self._sock.getsockname()[:2]
        self.selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._refused = RateLimitedLog(logger)
        self.refused = 0

    def start(self) -> None:
        """Watch the listening socket and the wake-up pair (call before the loop runs)."""
        self.selector.register(self._sock, selectors.EVENT_READ, None)
        self.selector.register(self._wake_r, selectors.EVENT_READ, _WAKE)

    def wake(self) -> None:
        """Make a :meth:`select` in progress return now (from any thread)."""
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass

    def select(self, timeout: float) -> list[tuple[Any, int]]:
        """Wait up to ``timeout`` [s]; returns (key data, event mask) of the ready
        sockets: data None for the listening socket (call :meth:`accept`), the owner's
        data for its connections. Wake-ups are consumed here."""
        ready = []
        for key, mask in self.selector.select(timeout):
            if key.data is _WAKE:
                try:
                    self._wake_r.recv(4096)
                except OSError:
                    pass
            else:
                ready.append((key.data, mask))
        return ready

    def accept(self, full: Callable[[], bool], on_socket: Callable[[socket.socket, Any], Any],
               refusal: str) -> None:
        """Accept the pending connections: while ``full()`` is true a connection is
        closed at once and counted in :attr:`refused` (one rate-limited warning,
        ``refusal`` completes "<name>: refused a connection from HOST:PORT: "); else it is
        made non-blocking with TCP_NODELAY and registered for reading with the data
        ``on_socket(sock, peer)`` returns."""
        for _ in range(_ACCEPT_BATCH):
            try:
                sock, peer = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:  # e.g. out of file descriptors: keep serving the others
                self._log.warning("%s: cannot accept a connection: %s", self.name, e)
                return
            if full():
                self.refused += 1
                self._refused.warning(f"{self.name}: refused a connection from %s:%s: {refusal}",
                                      peer[0], peer[1])
                try:
                    sock.close()
                except OSError:
                    pass
                continue
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.selector.register(sock, selectors.EVENT_READ, on_socket(sock, peer))

    def close(self) -> None:
        """Close the listening socket, the wake-up pair and the selector (connections
        are the owner's to close first)."""
        for s in (self._sock, self._wake_r, self._wake_w):
            try:
                s.close()
            except OSError:
                pass
        try:
            self.selector.close()
        except (OSError, RuntimeError):
            pass
