"""``--carla-servers host:port[:tm_port][,host:port[:tm_port]...]``: one CARLA server per
rollout worker (Roach collected from several CARLA servers in parallel the same way)."""

from __future__ import annotations

from ...errors import ConfigError

__all__ = ["parse_servers"]


def parse_servers(text: str | None, *, tm_port: int = 8000, flag: str = "--carla-servers"
                  ) -> tuple[tuple[str, int, int], ...]:
    """Parse a comma-separated list of CARLA servers.

    Args:
        text: e.g. ``"127.0.0.1:2000,127.0.0.1:3000"``; an entry may add its Traffic
            Manager port (``host:port:tm_port``), else server ``i`` gets ``tm_port + i``.
        tm_port: the first Traffic Manager port.

    Returns:
        ``((host, port, tm_port), ...)``; empty for None or "".

    Raises:
        ConfigError: an entry that is not ``host:port`` or ``host:port:tm_port`` with
            ports 1..65535, or the same server twice (one line naming the entry).
    """
    if not text:
        return ()
    out: list[tuple[str, int, int]] = []
    for i, raw in enumerate(text.split(",")):
        entry = raw.strip()
        parts = entry.rsplit(":", 2) if entry.count(":") >= 2 else entry.rsplit(":", 1)
        if len(parts) not in (2, 3) or not parts[0]:
            raise ConfigError(f"{flag}: {entry!r} is not host:port or host:port:tm_port")
        try:
            ports = [int(p) for p in parts[1:]]
        except ValueError:
            raise ConfigError(f"{flag}: {entry!r}: expected integer ports (host:port or host:port:tm_port)") from None
        if any(not 1 <= p <= 65535 for p in ports):
            raise ConfigError(f"{flag}: {entry!r}: ports must be 1..65535")
        tm = ports[1] if len(ports) == 2 else tm_port + i
        server = (parts[0], ports[0], tm)
        if any((h, p) == server[:2] for h, p, _ in out):
            raise ConfigError(f"{flag}: {parts[0]}:{ports[0]} is listed twice (one server per worker)")
        out.append(server)
    return tuple(out)
