"""The msgpack-rpc ``version`` probe made before a ``carla.Client`` is created (issue 16):
a peer that is not a CARLA server is one line, never the C++ client's abort.

Every peer here listens on 127.0.0.1 on an ephemeral port, in this process (threads)
or as a ``drive-il serve`` child process.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import types
from pathlib import Path

import msgpack
import pytest

from drive_il.errors import SimulatorConnectionError
from drive_il.sim.carla.connection import Connection
from drive_il.sim.carla.probe import NotCarlaError, probe_version, require_carla

try:
    from .fake_carla import FakeServer
except ImportError:  # tests/ is not a package
    from fake_carla import FakeServer

REPO = Path(__file__).resolve().parents[3]


class Peer:
    """A one-shot-per-connection TCP peer on 127.0.0.1: ``reply(first_bytes) -> bytes``
    (None: stay silent until the client goes); the requests it saw are kept."""

    def __init__(self, reply) -> None:
        self.reply = reply
        self.requests: list[bytes] = []
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(10)
                try:
                    data = conn.recv(4096)
                    self.requests.append(data)
                    out = self.reply(data)
                    if out is None:
                        conn.recv(4096)  # silent: until the client closes
                    elif out:
                        conn.sendall(out)
                except OSError:
                    pass

    def close(self) -> None:
        self.sock.close()


HTTP_400 = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


def _answer(result, *, error=None, msgid=None):
    def reply(data: bytes) -> bytes:
        req = msgpack.unpackb(data, raw=False)
        return msgpack.packb([1, req[1] if msgid is None else msgid, error, result], use_bin_type=True)
    return reply


@pytest.fixture
def peer():
    peers = []

    def make(reply):
        peers.append(Peer(reply))
        return peers[-1]
    yield make
    for p in peers:
        p.close()


def test_a_carla_answer_gives_the_version_and_the_request_is_carlas(peer):
    p = peer(_answer([[1, "0.9.16"]]))
    assert probe_version("127.0.0.1", p.port, 2.0) == "0.9.16"
    msg = msgpack.unpackb(p.requests[0], raw=False)
    assert msg[0] == 0 and msg[2] == "version" and msg[3] == [[False]]  # [is_async] metadata


def test_a_bare_version_string_is_accepted(peer):
    assert probe_version("127.0.0.1", peer(_answer("0.9.15")).port, 2.0) == "0.9.15"


@pytest.mark.parametrize("reply, answered", [
    (lambda d: HTTP_400, "answered b'HTTP/1.1 400"),
    (lambda d: b"", "answered nothing and closed the connection"),
    (lambda d: b"\xc1\xc1\xc1 garbage", "not msgpack-rpc"),
    (lambda d: b"\x93\x01", "then closed the connection"),  # a truncated message
    (_answer(7), "not a msgpack-rpc answer to 'version'"),  # a wrong type would abort the client
    (_answer("0.9.16", msgid=99), "not a msgpack-rpc answer"),
    (_answer(None, error="no such function"), "not a msgpack-rpc answer"),
])
def test_a_peer_that_is_not_carla_is_one_line(peer, reply, answered):
    p = peer(reply)
    with pytest.raises(NotCarlaError) as e:
        probe_version("127.0.0.1", p.port, 2.0)
    msg = str(e.value)
    assert msg.startswith(f"127.0.0.1:{p.port} is not a CARLA server (") and answered in msg, msg
    assert "\n" not in msg


def test_a_silent_peer_times_out_and_a_closed_port_is_refused(peer):
    p = peer(lambda d: None)
    with pytest.raises(TimeoutError, match="did not answer"):
        probe_version("127.0.0.1", p.port, 0.3)
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ConnectionRefusedError):
        probe_version("127.0.0.1", port, 1.0)


def _connection(server: FakeServer, port: int, probe, timeout: float = 1.0) -> Connection:
    server.host, server.port = "127.0.0.1", port
    return Connection(server.module(), host="127.0.0.1", port=port, timeout=timeout, attempts=2,
                      maps_dir=None, load_timeout=5.0, probe=probe)


def test_connection_refuses_a_non_carla_peer_before_creating_a_client(peer):
    fake = FakeServer()
    p = peer(lambda d: HTTP_400)
    conn = _connection(fake, p.port, require_carla)
    with pytest.raises(NotCarlaError, match="is not a CARLA server"):
        conn.connect()
    assert fake.connect_attempts == [] and len(p.requests) == 1  # no retry, no carla.Client


def test_connection_retries_a_silent_peer_then_reports_the_budget(peer):
    fake = FakeServer()
    p = peer(lambda d: None)
    conn = _connection(fake, p.port, require_carla, timeout=0.6)
    with pytest.raises(SimulatorConnectionError, match=r"cannot reach a CARLA server .* did not answer"):
        conn.connect()
    assert fake.connect_attempts == []


def test_connection_connects_after_the_probe_answers(peer):
    fake = FakeServer()
    p = peer(_answer([[1, "0.9.16"]]))
    conn = _connection(fake, p.port, require_carla)
    conn.connect()
    assert conn.connected and fake.connect_attempts == [("127.0.0.1", p.port)]


def test_the_probe_is_on_for_the_real_client_and_off_for_test_doubles():
    kw = dict(host="127.0.0.1", port=2000, timeout=1.0, attempts=1, maps_dir=None, load_timeout=1.0)
    import carla
    assert Connection(carla, **kw)._probe is require_carla
    assert Connection(FakeServer().module(), **kw)._probe is None
    assert Connection(types.ModuleType("x"), probe=None, **kw)._probe is None


def test_drive_against_an_http_peer_is_one_line(peer):
    p = peer(lambda d: HTTP_400)
    cp = subprocess.run([sys.executable, "-m", "drive_il", "drive", "--backend", "carla", "--host", "127.0.0.1",
                         "--port", str(p.port), "--timeout", "3"],
                        capture_output=True, text=True, cwd=REPO, timeout=120)
    lines = cp.stderr.strip().splitlines()
    assert cp.returncode == 2 and len(lines) == 1, cp.stderr
    assert f"127.0.0.1:{p.port} is not a CARLA server (answered b'HTTP/1.1 400" in lines[0]


def test_drive_against_a_silent_http_server_is_one_line():
    """Python's own http.server waits for a line end that a msgpack request never sends."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        port = httpd.server_address[1]
        cp = subprocess.run([sys.executable, "-m", "drive_il", "drive", "--backend", "carla", "--host",
                             "127.0.0.1", "--port", str(port), "--timeout", "1"],
                            capture_output=True, text=True, cwd=REPO, timeout=120)
    finally:
        httpd.shutdown()
        httpd.server_close()
    lines = cp.stderr.strip().splitlines()
    assert cp.returncode == 2 and len(lines) == 1, cp.stderr
    assert f"127.0.0.1:{port}" in lines[0] and "did not answer" in lines[0]


def test_drive_il_serve_passes_the_probe(tmp_path):
    from drive_il.serve.process import ServerProcess
    srv = ServerProcess(town="circuit", log_file=tmp_path / "server.log", startup_timeout=90.0)
    srv.start()
    try:
        assert probe_version("127.0.0.1", srv.port, 10.0) == "0.9.16"
    finally:
        srv.stop()


@pytest.mark.parametrize("port, fragment", [(None, "is not a CARLA server (answered b'HTTP/1.1 400"),
                                            (99999, "--port 99999: expected a port 1..65535")])
def test_maps_pull_against_an_http_peer_or_a_bad_port_is_one_line(peer, tmp_path, port, fragment):
    p = peer(lambda d: HTTP_400)
    cp = subprocess.run([sys.executable, "-m", "drive_il", "maps", "pull", "--host", "127.0.0.1",
                         "--port", str(port or p.port), "--timeout", "3", "--maps-dir", str(tmp_path / "maps")],
                        capture_output=True, text=True, cwd=REPO, timeout=120)
    lines = cp.stderr.strip().splitlines()
    assert cp.returncode == 2 and len(lines) == 1 and fragment in lines[0], cp.stderr
