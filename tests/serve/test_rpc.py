"""msgpack-rpc server and stream server over loopback (no carla client)."""

from __future__ import annotations

import socket
import struct
import threading
import time

import msgpack
import pytest

from drive_il.serve.rpc import RpcServer, UnknownFunction
from drive_il.serve.streams import StreamServer


def _call(sock, unpacker, msgid, method, *params):
    sock.sendall(msgpack.packb([0, msgid, method, [[False], *params]], use_bin_type=True))
    while True:
        for msg in unpacker:
            return msg
        data = sock.recv(65536)
        assert data, "server closed the connection"
        unpacker.feed(data)


@pytest.fixture
def rpc():
    order = []
    closed = threading.Event()

    def handler(conn, method, params):
        if method == "echo":
            order.append(params[1])
            return [[1, params[1]]]
        if method == "boom":
            raise ValueError("bad")
        raise UnknownFunction(method)

    srv = RpcServer("127.0.0.1", 0, handler, on_close=lambda c: closed.set())
    srv.start()
    yield srv, order, closed
    srv.stop()


def test_requests_answered_in_order_and_errors(rpc):
    srv, order, closed = rpc
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as s:
        u = msgpack.Unpacker(raw=False)
        # a burst of requests in one write: answered in order
        s.sendall(b"".join(msgpack.packb([0, i, "echo", [[True], i]]) for i in range(50)))
        got = []
        while len(got) < 50:
            u.feed(s.recv(65536))
            got += list(u)
        assert [m[1] for m in got] == list(range(50)) and order == list(range(50))
        assert all(m[0] == 1 and m[2] is None and m[3] == [[1, m[1]]] for m in got)
        unknown = _call(s, u, 99, "nope", 1, 2)
        assert unknown[1] == 99 and "nope" in unknown[2] and unknown[3] is None
        failed = _call(s, u, 100, "boom")
        assert "bad" in failed[2]
        assert _call(s, u, 101, "echo", "still alive")[3] == [[1, "still alive"]]
    assert closed.wait(5)


def test_stream_subscribe_and_publish():
    ss = StreamServer("127.0.0.1", 0)
    ss.start()
    try:
        sid = ss.new_stream()
        assert ss.publish(sid, [b"lost"]) == 0  # no subscriber yet: dropped
        with socket.create_connection(("127.0.0.1", ss.port), timeout=5) as c:
            c.sendall(struct.pack("<I", sid))
            deadline = time.monotonic() + 5
            while not ss.has_subscribers(sid) and time.monotonic() < deadline:
                time.sleep(0.01)
            assert ss.publish(sid, [b"ab", b"cd"]) == 1
            head = c.recv(4, socket.MSG_WAITALL)
            assert struct.unpack("<I", head)[0] == 4
            assert c.recv(4, socket.MSG_WAITALL) == b"abcd"
        deadline = time.monotonic() + 5
        while ss.has_subscribers(sid) and time.monotonic() < deadline:
            ss.publish(sid, [b"x"])
            time.sleep(0.01)
        assert not ss.has_subscribers(sid)  # the closed subscriber was dropped
    finally:
        ss.stop()
