"""Fixtures: ``drive-il serve`` in a child process on free ports, stopped by its pid."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from drive_il.serve.process import ServerProcess, free_port

HERE = Path(__file__).resolve().parent
PLAIN_CLIENT = HERE / "plain_client.py"


#: Lines of a served world's log shown under a failed test.
LOG_TAIL_LINES = 60


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed test shows the end of each ``drive-il serve`` log it used (the server
    runs in a child process, its log would otherwise be lost with the temporary folder:
    CI prints only pytest's report)."""
    outcome = yield
    rep = outcome.get_result()
    if rep.when != "call" or not rep.failed:
        return
    for name, value in getattr(item, "funcargs", {}).items():
        log_file = getattr(value, "log_file", None) if isinstance(value, ServerProcess) else None
        if log_file is not None and Path(log_file).is_file():
            lines = Path(log_file).read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
            rep.sections.append((f"drive-il serve log of fixture {name!r} (last {len(lines)} lines)",
                                 "\n".join(lines)))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A ``drive-il serve`` process on the generated "circuit" town (module scope);
    its log is ``server.log`` (``server.log_file``)."""
    log = tmp_path_factory.mktemp("serve") / "server.log"
    srv = ServerProcess(town="circuit", log_level="INFO", log_file=log, startup_timeout=90.0)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()
    assert srv.proc.returncode is not None


@pytest.fixture
def tm_port(server):
    """A free port for a Traffic Manager (distinct from the server's ports)."""
    return free_port(avoid={server.port, server.stream_port})


def server_log(server) -> str:
    return Path(server.log_file).read_text(errors="replace")


def run_plain_client(server, tm_port: int, *args: str, timeout: float = 90.0) -> dict:
    """Run tests/serve/plain_client.py against ``server``; its JSON summary."""
    r = subprocess.run([sys.executable, str(PLAIN_CLIENT), str(server.port), "--tm-port", str(tm_port), *args],
                       capture_output=True, text=True, timeout=timeout, check=False)
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
    assert r.returncode == 0 and lines, (
        f"client failed (rc {r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}\n"
        f"server log:\n{server_log(server)[-3000:]}")
    return json.loads(lines[-1])
