"""``drive-il serve`` limits: message size, connection cap, idle time-out, threads,
temporary maps, actors of a client that is gone, non-loopback warning.

Every socket here talks to 127.0.0.1; every wait is bounded.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import struct
import threading
import time

import msgpack
import pytest

from drive_il.serve.rpc import RpcServer, UnknownFunction
from drive_il.serve.server import bind_warning, is_loopback

LOOP = "127.0.0.1"


def _call(sock: socket.socket, unpacker, msgid: int, method: str, *params, timeout: float = 10.0):
    """One request, its answer (bounded by ``timeout``)."""
    sock.settimeout(timeout)
    sock.sendall(msgpack.packb([0, msgid, method, [[False], *params]], use_bin_type=True))
    while True:
        for msg in unpacker:
            return msg
        data = sock.recv(1 << 16)
        assert data, "server closed the connection"
        unpacker.feed(data)


def _closed_by_server(sock: socket.socket, timeout: float = 5.0) -> bool:
    """True when the server closes ``sock`` within ``timeout`` (EOF or reset)."""
    sock.settimeout(timeout)
    try:
        while True:
            data = sock.recv(1 << 16)
            if not data:
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False


def _wait(pred, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.02)
    return pred()


def _echo(conn, method, params):
    if method == "echo":
        return [[1, params[1]]]
    raise UnknownFunction(method)


@pytest.fixture
def make_rpc():
    servers = []

    def make(**limits):
        closed = []
        srv = RpcServer(LOOP, 0, _echo, on_close=closed.append, **limits)
        srv.start()
        servers.append(srv)
        return srv, closed

    yield make
    for s in servers:
        s.stop()


# --------------------------------------------------------------------------- messages
def test_oversized_message_closes_the_connection_with_one_warning(make_rpc, caplog):
    srv, closed = make_rpc(max_message=64 << 10)
    with socket.create_connection((LOOP, srv.port), timeout=5) as ok, \
            socket.create_connection((LOOP, srv.port), timeout=5) as big, \
            socket.create_connection((LOOP, srv.port), timeout=5) as wide:
        # a message just under the limit is served
        text = "x" * (60 << 10)
        assert _call(ok, msgpack.Unpacker(raw=False), 1, "echo", text)[3] == [[1, text]]
        with caplog.at_level(logging.WARNING, logger="drive_il.serve"):
            # a 1 MiB string, sent in pieces: the buffer never holds more than the limit
            big.sendall(b"\x94\x00\x01\xa4echo\x92\x91\xc2\xdb" + struct.pack(">I", 1 << 20))
            try:
                for _ in range(16):
                    big.sendall(b"y" * (64 << 10))
            except (ConnectionResetError, BrokenPipeError):
                pass
            assert _closed_by_server(big)
            # an array header announcing more items than the limit allows
            wide.sendall(b"\x94\x00\x02\xa4echo\xdd" + struct.pack(">I", 10_000_000))
            assert _closed_by_server(wide)
            assert _wait(lambda: len(closed) == 2)
        warnings = [r.getMessage() for r in caplog.records if "--max-message-mb" in r.getMessage()]
        assert len(warnings) == 2 and all("over 65536 bytes" in w for w in warnings), warnings
        # the other connection is still served
        assert _call(ok, msgpack.Unpacker(raw=False), 2, "echo", "still")[3] == [[1, "still"]]


def test_limits_are_checked():
    with pytest.raises(ValueError, match="max_connections"):
        RpcServer(LOOP, 0, _echo, max_connections=0)
    with pytest.raises(ValueError, match="idle_timeout"):
        RpcServer(LOOP, 0, _echo, idle_timeout=-1)


# --------------------------------------------------------------------------- connections
def test_connections_over_the_cap_are_closed_at_once(make_rpc):
    n = 4
    srv, _closed = make_rpc(max_connections=n)
    socks = [socket.create_connection((LOOP, srv.port), timeout=5) for _ in range(n)]
    try:
        for i, s in enumerate(socks):  # all N are served
            assert _call(s, msgpack.Unpacker(raw=False), i, "echo", i)[3] == [[1, i]]
        with socket.create_connection((LOOP, srv.port), timeout=5) as extra:
            assert _closed_by_server(extra, 5.0)  # the N+1-th
        assert srv.refused == 1 and srv.connections == n
        for i, s in enumerate(socks):  # the N are still served
            assert _call(s, msgpack.Unpacker(raw=False), 10 + i, "echo", i)[3] == [[1, i]]
        socks.pop().close()  # one leaves: a new one is served
        assert _wait(lambda: srv.connections == n - 1)
        with socket.create_connection((LOOP, srv.port), timeout=5) as late:
            assert _call(late, msgpack.Unpacker(raw=False), 99, "echo", "in")[3] == [[1, "in"]]
    finally:
        for s in socks:
            s.close()


def test_idle_connections_are_closed_busy_ones_kept(make_rpc, caplog):
    srv, closed = make_rpc(idle_timeout=1.0)
    with caplog.at_level(logging.WARNING, logger="drive_il.serve"), \
            socket.create_connection((LOOP, srv.port), timeout=5) as idle, \
            socket.create_connection((LOOP, srv.port), timeout=5) as busy:
        u = msgpack.Unpacker(raw=False)
        t_end = time.monotonic() + 2.5
        i = 0
        while time.monotonic() < t_end:  # a client calling every 50 ms (a 20 Hz tick)
            assert _call(busy, u, i, "echo", i)[3] == [[1, i]]
            i += 1
            time.sleep(0.05)
        assert _closed_by_server(idle, 2.0)
        assert [c.peer[1] for c in closed] == [idle.getsockname()[1]]
        assert _call(busy, u, i, "echo", "alive")[3] == [[1, "alive"]]
    assert any("--idle-timeout" in r.getMessage() for r in caplog.records)


def test_idle_timeout_zero_never_closes(make_rpc):
    srv, closed = make_rpc(idle_timeout=0)
    with socket.create_connection((LOOP, srv.port), timeout=5) as s:
        time.sleep(1.2)
        assert _call(s, msgpack.Unpacker(raw=False), 1, "echo", 1)[3] == [[1, 1]]
    assert _wait(lambda: len(closed) == 1)


# --------------------------------------------------------------------------- the whole server
@pytest.fixture
def carla_server():
    """An in-process CarlaServer on free loopback ports (circuit town), started."""
    pytest.importorskip("carla")
    from drive_il.serve import CarlaServer
    srv = CarlaServer(host=LOOP, port=0, stream_port=0, town="circuit", max_connections=100)
    srv.start()
    yield srv
    srv.stop()


def test_threads_stay_bounded_with_many_idle_connections(carla_server):
    srv = carla_server
    before = threading.active_count()
    socks = []
    try:
        for _ in range(80):
            socks.append(socket.create_connection((LOOP, srv.port), timeout=5))
            s = socket.create_connection((LOOP, srv.stream_port), timeout=5)
            s.sendall(struct.pack("<I", srv.world.broadcast))
            socks.append(s)
        assert _wait(lambda: srv.rpc.connections == 80 and srv.streams.subscribers(srv.world.broadcast) == 80,
                     10.0)
        assert threading.active_count() <= before + 1, threading.enumerate()
        u = msgpack.Unpacker(raw=False)
        assert _call(socks[0], u, 1, "version")[3] == [[1, "0.9.16"]]  # still serving
    finally:
        for s in socks:
            s.close()
    assert _wait(lambda: srv.rpc.connections == 0 and srv.streams.connections == 0)


def _spawn(sock, msgid: int, world, index: int) -> int:
    tf = world.spawn_transforms()[index]
    reply = _call(sock, msgpack.Unpacker(raw=False), msgid, "spawn_actor", [0, "vehicle.audi.a2", []], tf)
    assert reply[2] is None and reply[3][0][0] == 1, reply
    return reply[3][0][1][0]


def test_actors_of_a_client_that_is_gone_are_destroyed(carla_server, caplog):
    srv = carla_server
    w = srv.world
    # a lone client: its actors go with its connection, even while a stream connection
    # from the same address is still open (streams do not identify a client)
    stream = socket.create_connection((LOOP, srv.stream_port), timeout=5)
    stream.sendall(struct.pack("<I", w.broadcast))
    a = socket.create_connection((LOOP, srv.port), timeout=5)
    lone = _spawn(a, 1, w, 0)
    assert lone in w.actors
    with caplog.at_level(logging.WARNING, logger="drive_il.serve"):
        a.close()
        assert _wait(lambda: lone not in w.actors)
    assert any("destroyed the 1 actor it spawned" in r.getMessage() for r in caplog.records)
    stream.close()
    # two connections from one address (maybe one client): the actors of the first to go
    # stay while the other is open, then all go
    b = socket.create_connection((LOOP, srv.port), timeout=5)
    c = socket.create_connection((LOOP, srv.port), timeout=5)
    vb, vc = _spawn(b, 2, w, 10), _spawn(c, 3, w, 20)
    b.close()
    assert _wait(lambda: srv.rpc.connections == 1)
    time.sleep(0.2)
    assert vb in w.actors and vc in w.actors
    # a connection that spawned nothing comes and goes: nothing changes
    with socket.create_connection((LOOP, srv.port), timeout=5) as d:
        _call(d, msgpack.Unpacker(raw=False), 4, "version")
    assert _wait(lambda: srv.rpc.connections == 1)
    time.sleep(0.2)
    assert vb in w.actors and vc in w.actors
    c.close()
    assert _wait(lambda: vb not in w.actors and vc not in w.actors)
    assert [x.type_id for x in w.actors.values()] == ["spectator"]


# --------------------------------------------------------------------------- temporary maps
def _xodr(name: str) -> str:
    from drive_il.maps import town_text
    return town_text(name)[1]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_opendrive_maps_in_a_private_folder_removed_on_exit(tmp_path, monkeypatch, sig):
    pytest.importorskip("carla")
    if signal.getsignal(sig) is signal.SIG_IGN:
        # a background job of a non-interactive shell (``pytest ... &``) starts with SIGINT
        # ignored, and the server inherits that: it would never see the signal
        pytest.skip(f"{sig.name} is ignored in this process, and so in the server it starts")
    from drive_il.serve.process import ServerProcess
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # the child's tempfile.gettempdir()
    srv = ServerProcess(town="circuit", log_level="INFO", log_file=tmp_path / "server.log",
                        startup_timeout=90.0)
    srv.start()
    try:
        with socket.create_connection((LOOP, srv.port), timeout=5) as s:
            u = msgpack.Unpacker(raw=False)
            for i, name in enumerate(("circuit", "grid")):
                assert _call(s, u, i, "copy_opendrive_to_file", _xodr(name), [])[3] == [[False]]
            assert _call(s, u, 9, "load_new_episode", "OpenDriveMap", True, timeout=60)[3] == [[False]]
            dirs = [p for p in tmp_path.iterdir() if p.is_dir()]
            assert [p.name.startswith("drive_il_serve-") for p in dirs] == [True], dirs
            files = list(dirs[0].iterdir())
            # one file: the second text replaced the first
            assert [f.name for f in files] == ["OpenDriveMap.xodr"]
            assert files[0].read_text(encoding="utf-8") == _xodr("grid")
        os.kill(srv.pid, sig)
        srv.proc.wait(90)  # generous: a loaded 2-core machine once took over 30 s
        assert srv.proc.returncode in (0, 130), srv.log_file.read_text()[-2000:]
        assert not dirs[0].exists()
    finally:
        srv.stop()


def test_scratch_dir_removed_by_stop(carla_server):
    d = carla_server.scratch_dir()
    (d / "x.xodr").write_text("x")
    assert d.is_dir() and d.name.startswith("drive_il_serve-")
    carla_server.stop()
    assert not d.exists()
    carla_server.stop()  # idempotent


# --------------------------------------------------------------------------- non-loopback
def test_bind_warning_only_for_non_loopback_addresses():
    for host in ("127.0.0.1", "127.0.0.9", "localhost", "::1", "[::1]"):
        assert is_loopback(host) and bind_warning(host) is None, host
    for host in ("0.0.0.0", "", "::", "192.168.1.20", "10.0.0.1", "example.org"):
        w = bind_warning(host)
        assert w and "\n" not in w and "no authentication" in w, host


def test_binding_every_interface_warns_once(caplog):
    pytest.importorskip("carla")
    from drive_il.serve import CarlaServer
    with caplog.at_level(logging.WARNING, logger="drive_il.serve"):
        # bound on an ephemeral port, never started, no connection made
        srv = CarlaServer(host="0.0.0.0", port=0, stream_port=0, town="circuit")
        srv.stop()
        loop = CarlaServer(host=LOOP, port=0, stream_port=0, town="circuit")
        loop.stop()
    lines = [r.getMessage() for r in caplog.records if "no authentication" in r.getMessage()]
    assert len(lines) == 1 and "every interface" in lines[0], lines


# --------------------------------------------------------------------------- flags
def test_serve_flags(capsys):
    from drive_il.cli import build_parser, main
    args = build_parser().parse_args(["serve", "--max-connections", "3", "--idle-timeout", "2.5",
                                      "--max-message-mb", "8"])
    assert (args.max_connections, args.idle_timeout, args.max_message_mb) == (3, 2.5, 8)
    d = build_parser().parse_args(["serve"])
    assert (d.max_connections, d.idle_timeout, d.max_message_mb) == (64, 600.0, 64)
    for bad in (["--max-connections", "0"], ["--idle-timeout", "-1"], ["--max-message-mb", "0"]):
        assert main(["serve", "--port", "1", *bad]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and bad[0] in err[0], err
