"""The stream server: world snapshots and sensor data pushed to CARLA clients.

CARLA's streaming protocol (as the 0.9.16 client speaks it): every stream is named by
a 24-byte token (:func:`drive_il.serve.encoding.token_bytes`: stream id, port,
protocol, address). To subscribe, the client opens one TCP connection to the token's
address and port and writes the 4-byte little-endian stream id; from then on the server
pushes messages ``[u32 length][payload]`` on that connection. Data published before a
subscriber exists is dropped, as on a real server.

One thread per subscriber connection waits for its end (the client closes it on
``sensor.stop()`` or when it exits); publishing happens on the caller's thread, with a
send time-out: a subscriber that does not read for :data:`SEND_TIMEOUT` seconds is
dropped rather than stalling the simulation.
"""

from __future__ import annotations

import itertools
import logging
import socket
import struct
import threading
from collections.abc import Iterable

from .encoding import token_bytes

__all__ = ["SEND_TIMEOUT", "StreamServer"]

log = logging.getLogger(__name__)

#: [s] a subscriber that takes longer than this to accept one message is dropped.
SEND_TIMEOUT = 5.0
_LEN = struct.Struct("<I")


class _Subscriber:
    __slots__ = ("alive", "sock", "stream_id")

    def __init__(self, sock: socket.socket, stream_id: int) -> None:
        self.sock = sock
        self.stream_id = stream_id
        self.alive = True


class StreamServer:
    """Serves numbered streams on one TCP port.

    Args:
        host, port: where to listen (port 0: any free port, see :attr:`port`).
        advertise: the IPv4 address written into tokens (default ``host``, or
            127.0.0.1 when ``host`` is a wildcard).
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, advertise: str | None = None) -> None:
        self._sock = socket.create_server((host, port), backlog=64)
        self.host, self.port = self._sock.getsockname()[:2]
        if advertise is None:
            advertise = "127.0.0.1" if host in ("", "0.0.0.0") else host
        self.advertise = advertise
        self._ids = itertools.count(1)
        self._subs: dict[int, list[_Subscriber]] = {}
        self._lock = threading.Lock()
        self._subscribed = threading.Condition(self._lock)
        self._expected: set[int] = set()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self._thread = threading.Thread(target=self._accept_loop, name="stream-accept", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        try:
            self._sock.close()
        except OSError:
            pass
        with self._lock:
            subs = [s for lst in self._subs.values() for s in lst]
            self._subs.clear()
        for s in subs:
            self._close(s)

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
                self._subscribed.wait_for(lambda: bool(self._subs.get(stream_id)), timeout)
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
                s.sock.sendall(msg)
                n += 1
            except OSError as e:
                log.info("stream %d: subscriber dropped (%s)", stream_id, e)
                self._drop(s)
        return n

    # ------------------------------------------------------------------ internals
    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                sock, _peer = self._sock.accept()
            except OSError:
                if self._stopping.is_set():
                    return
                continue
            threading.Thread(target=self._subscriber, args=(sock,), name="stream-sub",
                             daemon=True).start()

    def _subscriber(self, sock: socket.socket) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(SEND_TIMEOUT)
        try:
            head = b""
            while len(head) < 4:
                chunk = sock.recv(4 - len(head))
                if not chunk:
                    sock.close()
                    return
                head += chunk
        except OSError:
            sock.close()
            return
        (sid,) = _LEN.unpack(head)
        sub = _Subscriber(sock, sid)
        with self._lock:
            self._subs.setdefault(sid, []).append(sub)
            self._expected.discard(sid)
            self._subscribed.notify_all()
        log.info("stream %d: subscriber connected", sid)
        # wait for the client to close the connection
        while sub.alive and not self._stopping.is_set():
            try:
                data = sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                break
            if not data:
                break
        self._drop(sub)

    def _drop(self, sub: _Subscriber) -> None:
        with self._lock:
            lst = self._subs.get(sub.stream_id)
            if lst and sub in lst:
                lst.remove(sub)
                if not lst:
                    del self._subs[sub.stream_id]
        self._close(sub)

    @staticmethod
    def _close(sub: _Subscriber) -> None:
        if not sub.alive:
            return
        sub.alive = False
        try:
            sub.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            sub.sock.close()
        except OSError:
            pass
