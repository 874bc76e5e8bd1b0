"""Run ``drive-il serve`` in a child process (tests, benchmarks, scripts).

The server must live in its own process: the ``carla`` client holds the GIL while it
waits for an answer, so a server thread in the client's process would starve.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["ServerProcess", "free_port"]

log = logging.getLogger(__name__)


def free_port(host: str = "127.0.0.1", *, avoid: set[int] | tuple = ()) -> int:
    """A TCP port that is free now on ``host`` (the OS's choice, not in ``avoid``)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
        if port not in avoid:
            return port
    raise RuntimeError("no free TCP port found")


class ServerProcess:
    """``drive-il serve`` as a child process, stopped by its pid.

    Example::

        with ServerProcess(town="circuit") as srv:
            client = carla.Client("127.0.0.1", srv.port)

    Args:
        port: RPC port (default: a free one).
        stream_port: stream port (default: a free one).
        town: first town.
        maps_dir: folder of OpenDRIVE towns.
        log_level: the server's log level.
        log_file: where the server's output goes (default: discarded).
        startup_timeout: [s] to wait for the server to listen.

    Raises:
        RuntimeError: the server exited or did not listen within ``startup_timeout``.
    """

    def __init__(self, *, port: int | None = None, stream_port: int | None = None,
                 town: str = "circuit", maps_dir: str | Path | None = None,
                 log_level: str = "WARNING", log_file: str | Path | None = None,
                 startup_timeout: float = 30.0, extra_args: tuple[str, ...] = ()) -> None:
        self.host = "127.0.0.1"
        self.port = int(port) if port else free_port()
        self.stream_port = int(stream_port) if stream_port else free_port(avoid={self.port})
        self.town = town
        self.maps_dir = maps_dir
        self.log_level = log_level
        self.log_file = Path(log_file) if log_file else None
        self.startup_timeout = float(startup_timeout)
        self.extra_args = tuple(extra_args)
        self.proc: subprocess.Popen | None = None

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    def start(self) -> ServerProcess:
        cmd = [sys.executable, "-m", "drive_il", "serve", "--host", self.host,
               "--port", str(self.port), "--stream-port", str(self.stream_port),
               "--town", self.town, "--log-level", self.log_level, *self.extra_args]
        if self.maps_dir is not None:
            cmd += ["--maps-dir", str(self.maps_dir)]
        out = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL  # noqa: SIM115
        env = dict(os.environ)
        repo = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = repo + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        try:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
        finally:
            if out is not subprocess.DEVNULL:
                out.close()
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"drive-il serve exited with code {self.proc.returncode} "
                                   f"before listening on port {self.port}"
                                   + (f" (log: {self.log_file})" if self.log_file else ""))
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"drive-il serve did not listen on port {self.port} within "
                           f"{self.startup_timeout:.0f} s")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 5.0) -> int | None:
        """SIGTERM the server by its pid, SIGKILL after ``timeout`` s; returns its exit code."""
        p = self.proc
        if p is None:
            return None
        if p.poll() is None:
            try:
                os.kill(p.pid, signal.SIGTERM)
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(p.pid, signal.SIGKILL)
                p.wait(timeout)
            except ProcessLookupError:
                pass
        return p.returncode

    def __enter__(self) -> ServerProcess:  # noqa: PYI034
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
