"""The stream server: world snapshots and sensor data pushed to CARLA clients.

CARLA's streaming protocol (as the 0.9.16 client speaks it): every stream is named by
a 24-byte token (:func:`drive_il.serve.encoding.token_bytes`: stream id, port,
protocol, address). To subscribe, the client opens one TCP connection to the token's
address and port and writes the 4-byte little-endian stream id; from then on the server
pushes messages ``[u32 length][payload]`` on that connection. Data published before a
subscriber exists is dropped, as on a real server.

One thread (a ``selectors`` loop) accepts connections, reads their stream ids and
notices their end (the client closes a connection on ``sensor.stop()`` or when it
exits); at most ``max_connections`` connections are open at once (more are closed at
once), and one that does not name its stream within :data:`SEND_TIMEOUT` seconds is
closed. Publishing happens on the caller's thread, with a send time-out: a subscriber
that does not read for :data:`SEND_TIMEOUT` seconds is dropped rather than stalling
the simulation. Sockets are closed on the loop's thread only (other threads shut them
down), so a descriptor is never reused under a running ``select``.
"""

from __future__ import annotations

import itertools
import logging
import select
import socket
import struct
import threading
import time
from collections.abc import Iterable

from .encoding import token_bytes
from .listener import Listener

__all__ = ["DEFAULT_MAX_STREAM_CONNECTIONS", "SEND_TIMEOUT", "StreamServer"]

log = logging.getLogger(__name__)

#: [s] a subscriber that takes longer than this to accept one message is dropped.
SEND_TIMEOUT = 5.0
#: Most stream connections open at once (a client opens one per sensor it listens to,
#: and one for the world snapshots).
DEFAULT_MAX_STREAM_CONNECTIONS = 256
_LEN = struct.Struct("<I")


class _Subscriber:
    __slots__ = ("alive", "deadline", "head", "lock", "sock", "stream_id")

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.sock = sock
        self.lock = threading.Lock()  # held while sending and while closing
        self.stream_id = 0  # 0: not subscribed yet (the 4-byte id not read)
        self.head = b""
        self.deadline = deadline
        self.alive = True


class StreamServer:
    """Serves numbered streams on one TCP port.

    Args:
        host, port: where to listen (port 0: any free port, see :attr:`port`).
        advertise: the IPv4 address written into tokens (default ``host``, or
            127.0.0.1 when ``host`` is a wildcard).
        max_connections: stream connections open at once; more are closed at once.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, advertise: str | None = None,
                 max_connections: int = DEFAULT_MAX_STREAM_CONNECTIONS) -> None:
        if int(max_connections) < 1:
            raise ValueError(f"max_connections must be at least 1, got {max_connections}")
        self.max_connections = int(max_connections)
        self._listener = Listener(host, port, name="streams", logger=log)
        self.host, self.port = self._listener.host, self._listener.port
        if advertise is None:
            advertise = "127.0.0.1" if host in ("", "0.0.0.0") else host
        self.advertise = advertise
        self._ids = itertools.count(1)
        self._subs: dict[int, list[_Subscriber]] = {}
        self._open: set[_Subscriber] = set()  # every connection the loop watches
        self._lock = threading.Lock()
        self._subscribed = threading.Condition(self._lock)
        self._expected: set[int] = set()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._sel = self._listener.selector

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self._listener.start()
        self._thread = threading.Thread(target=self._loop, name="streams", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        if self._stopping.is_set():
            return
        self._stopping.set()
        with self._lock:
            self._subs.clear()
            self._expected.clear()
            self._subscribed.notify_all()
        t = self._thread
        if t is None:  # never started
            self._close_all()
            return
        self._wake()
        if t is not threading.current_thread():
            t.join(timeout)

    @property
    def connections(self) -> int:
        """Stream connections open now (subscribed or not yet)."""
        with self._lock:
            return len(self._open)

    @property
    def refused(self) -> int:
        """Connections closed at once because ``max_connections`` were open."""
        return self._listener.refused

    # ------------------------------------------------------------------ streams
    def new_stream(self) -> int:
        """A fresh stream id."""
        return next(self._ids)

    def token(self, stream_id: int) -> bytes:
        """The 24-byte token of a stream."""
        return token_bytes(stream_id, self.port, self.advertise)

    def expect(self, stream_id: int) -> None:
        """A client is about to subscribe to ``stream_id`` (it asked for its token)."""
        with self._lock:
            if not self._subs.get(stream_id):
                self._expected.add(stream_id)

    def wait_expected(self, stream_id: int, timeout: float) -> bool:
        """Wait up to ``timeout`` [s] for an expected subscriber of ``stream_id`` to
        connect (a client's ``listen()`` connects asynchronously, data published
        before that would be lost); returns whether the stream has a subscriber."""
        with self._lock:
            if stream_id in self._expected:
                self._subscribed.wait_for(lambda: bool(self._subs.get(stream_id))
                                          or self._stopping.is_set(), timeout)
                self._expected.discard(stream_id)
            return bool(self._subs.get(stream_id))

    def has_subscribers(self, stream_id: int) -> bool:
        return bool(self._subs.get(stream_id))

    def subscribers(self, stream_id: int) -> int:
        return len(self._subs.get(stream_id, ()))

    def close_stream(self, stream_id: int) -> None:
        """Disconnect every subscriber of a stream (its sensor was destroyed)."""
        with self._lock:
            subs = self._subs.pop(stream_id, [])
            self._expected.discard(stream_id)
        for s in subs:
            self._close(s)

    def publish(self, stream_id: int, parts: Iterable[bytes]) -> int:
        """Send one message (the concatenation of ``parts``) to every subscriber.

        Returns:
            The number of subscribers it reached.
        """
        subs = self._subs.get(stream_id)
        if not subs:
            return 0
        body = b"".join(parts)
        msg = _LEN.pack(len(body)) + body
        n = 0
        for s in list(subs):
            try:
                with s.lock:
                    if not s.alive:
                        continue
                    _send_all(s.sock, msg, SEND_TIMEOUT)
                n += 1
            except OSError as e:
                log.info("stream %d: subscriber dropped (%s)", stream_id, e or type(e).__name__)
                self._drop(s)
        return n

    # ------------------------------------------------------------------ the loop
    def _wake(self) -> None:
        self._listener.wake()

    def _loop(self) -> None:
        try:
            while not self._stopping.is_set():
                for data, _mask in self._listener.select(0.5):
                    if data is None:
                        self._accept()
                    else:
                        self._read(data)
                self._expire()
        except Exception:
            log.exception("streams: the connection loop failed")
        finally:
            self._close_all()

    def _accept(self) -> None:
        def full() -> bool:
            with self._lock:
                return len(self._open) >= self.max_connections

        def register(sock: socket.socket, peer: object) -> _Subscriber:
            sub = _Subscriber(sock, time.monotonic() + SEND_TIMEOUT)
            with self._lock:
                self._open.add(sub)
            return sub

        self._listener.accept(full, register, f"{self.max_connections} stream connections open")

    def _read(self, sub: _Subscriber) -> None:
        try:
            data = sub.sock.recv(4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data or not sub.alive:  # the client closed it, or another thread shut it down
            self._finish(sub)
            return
        if sub.stream_id:
            return  # a subscriber has nothing to say: ignore
        sub.head += data
        if len(sub.head) < 4:
            return
        (sid,) = _LEN.unpack(sub.head[:4])
        sub.head = b""
        if sid == 0:
            self._finish(sub)
            return
        sub.stream_id = sid
        with self._lock:
            self._subs.setdefault(sid, []).append(sub)
            self._expected.discard(sid)
            self._subscribed.notify_all()
        log.info("stream %d: subscriber connected", sid)

    def _expire(self) -> None:
        """Close connections that did not name their stream in time."""
        now = time.monotonic()
        with self._lock:
            late = [s for s in self._open if not s.stream_id and s.deadline < now]
        for s in late:
            self._finish(s)

    def _unsubscribe(self, sub: _Subscriber) -> None:
        """Take ``sub`` off its stream's subscriber list (hold ``self._lock``)."""
        lst = self._subs.get(sub.stream_id)
        if lst and sub in lst:
            lst.remove(sub)
            if not lst:
                del self._subs[sub.stream_id]

    def _drop(self, sub: _Subscriber) -> None:
        with self._lock:
            self._unsubscribe(sub)
        self._close(sub)

    def _close(self, sub: _Subscriber) -> None:
        """End a subscriber from any thread: shut its socket down; the loop closes it."""
        if not sub.alive:
            return
        sub.alive = False
        try:
            sub.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        if self._thread is None:  # no loop to close it
            self._finish(sub)

    def _finish(self, sub: _Subscriber) -> None:
        """On the loop's thread (or once it is gone): forget and close a connection."""
        with self._lock:
            self._unsubscribe(sub)
            self._open.discard(sub)
        sub.alive = False
        try:
            self._sel.unregister(sub.sock)
        except (KeyError, ValueError, RuntimeError):
            pass
        with sub.lock:  # not under a publish in progress (the descriptor could be reused)
            try:
                sub.sock.close()
            except OSError:
                pass

    def _close_all(self) -> None:
        with self._lock:
            subs = list(self._open)
        for s in subs:
            try:
                s.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._finish(s)
        self._listener.close()


def _send_all(sock: socket.socket, data: bytes, timeout: float) -> None:
    """``sock.sendall(data)`` on a non-blocking socket, within ``timeout`` seconds.

    Raises:
        TimeoutError: the peer did not take the data in time.
        OSError: the connection is gone.
    """
    view = memoryview(data)
    deadline = None
    poller = None
    while view:
        try:
            n = sock.send(view)
            view = view[n:]
            continue
        except (BlockingIOError, InterruptedError):
            pass
        now = time.monotonic()
        if deadline is None:
            deadline = now + timeout
            poller = select.poll()
            poller.register(sock, select.POLLOUT)
        left = deadline - now
        if left <= 0:
            raise TimeoutError(f"no progress sending for {timeout:g} s")
        events = poller.poll(left * 1000.0)
        for _fd, ev in events:
            if ev & (select.POLLERR | select.POLLHUP | select.POLLNVAL):
                raise ConnectionResetError("subscriber connection closed")
