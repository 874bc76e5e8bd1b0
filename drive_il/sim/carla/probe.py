"""Ask a port whether a CARLA server answers there, before the ``carla`` client does.

The C++ ``carla`` client aborts the whole process (``clmdep_msgpack::v1::type_error``,
exit 134, no clean-up) when the peer answers with bytes that are not msgpack-rpc (an
HTTP server, a proxy). :func:`probe_version` makes the client's first call itself,
``version`` (msgpack-rpc request ``[0, msgid, "version", [[false]]]``, the first
parameter being CARLA's call metadata ``[is_async]``), over a socket of its own, and
checks the answer ``[1, msgid, nil, [[1, "0.9.16"]]]`` (CARLA's ``Response<string>``;
a bare string is accepted too) before a ``carla.Client`` is created.
"""

from __future__ import annotations

import socket
import time

import msgpack

from ...errors import ConfigError, SimulatorConnectionError

__all__ = ["NotCarlaError", "probe_version", "require_carla"]

_REQUEST, _RESPONSE = 0, 1
_MSGID = 0x0D11
_MAX_ANSWER = 1 << 16  # a version answer is a few dozen bytes


class NotCarlaError(SimulatorConnectionError):
    """The peer answered, but not as a CARLA server does."""


def _show(data: bytes) -> str:
    """The first bytes of an answer, for a message."""
    head = bytes(data[:40])
    return repr(head) + ("..." if len(data) > 40 else "")


def _version_of(result: object) -> str | None:
    """The version string of a ``version`` result (``[[1, "x"]]`` or ``"x"``), else None."""
    if isinstance(result, str):
        return result
    if (isinstance(result, (list, tuple)) and len(result) == 1 and isinstance(result[0], (list, tuple))
            and len(result[0]) == 2 and result[0][0] == 1 and isinstance(result[0][1], str)):
        return result[0][1]
    return None


def probe_version(host: str, port: int, timeout: float) -> str:
    """The server version that ``host:port`` answers to a msgpack-rpc ``version`` call.

    Args:
        host, port: the RPC endpoint.
        timeout: the budget for connecting and for the answer [s].

    Returns:
        the version string (e.g. ``"0.9.16"``).

    Raises:
        NotCarlaError: the peer answered with something other than a msgpack-rpc
            answer to ``version`` (garbage, another protocol, a wrong answer), or closed
            the connection without answering; one line naming ``host:port``.
        OSError: nobody to talk to: refused, unreachable, unknown host
            (``socket.gaierror``), or no answer within ``timeout`` (``TimeoutError``).
    """
    where = f"{host}:{port}"
    deadline = time.monotonic() + max(0.05, float(timeout))
    request = msgpack.packb([_REQUEST, _MSGID, "version", [[False]]], use_bin_type=True)
    with socket.create_connection((host, int(port)), timeout=max(0.05, float(timeout))) as sock:
        sock.sendall(request)
        unpacker = msgpack.Unpacker(raw=False, strict_map_key=False, max_buffer_size=_MAX_ANSWER)
        seen = b""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{where} accepted the connection but did not answer a "
                                   f"'version' call within {timeout:g} s")
            sock.settimeout(left)
            try:
                data = sock.recv(4096)
            except ConnectionResetError:
                data = b""
            except (TimeoutError, socket.timeout):
                raise TimeoutError(f"{where} accepted the connection but did not answer a "
                                   f"'version' call within {timeout:g} s") from None
            if not data:
                answered = f"{_show(seen)} then closed the connection" if seen else \
                    "nothing and closed the connection"
                raise NotCarlaError(f"{where} is not a CARLA server (answered {answered}); "
                                    f"check --host/--port")
            seen += data
            try:
                unpacker.feed(data)
                msg = unpacker.unpack()
            except msgpack.OutOfData:
                if len(seen) >= _MAX_ANSWER:
                    raise NotCarlaError(f"{where} is not a CARLA server (answered {_show(seen)}, "
                                        f"{len(seen)} bytes without a complete message); "
                                        f"check --host/--port") from None
                continue
            except (ValueError, msgpack.UnpackException) as e:
                raise NotCarlaError(f"{where} is not a CARLA server (answered {_show(seen)}: "
                                    f"not msgpack-rpc, {type(e).__name__}); check --host/--port") from None
            break
    version = None
    if isinstance(msg, (list, tuple)) and len(msg) == 4 and msg[0] == _RESPONSE and msg[1] == _MSGID:
        if msg[2] is None:
            version = _version_of(msg[3])
    if version is None:
        raise NotCarlaError(f"{where} is not a CARLA server (answered {_show(seen)}, not a "
                            f"msgpack-rpc answer to 'version'); check --host/--port")
    return version


def require_carla(host: str, port: int, timeout: float) -> str:
    """:func:`probe_version` for callers that retry on the ``carla`` client's own errors:
    nobody to talk to becomes the ``RuntimeError`` the client would raise (its text says
    "resolve" for an unknown host), a peer that is not CARLA raises :class:`NotCarlaError`.

    Raises:
        ConfigError: ``port`` is not a TCP port (1..65535).
        NotCarlaError: see :func:`probe_version`.
        RuntimeError: refused, unreachable, unknown host or no answer in time.
    """
    if not 1 <= int(port) <= 65535:
        raise ConfigError(f"--port {port}: expected a port 1..65535")
    try:
        return probe_version(host, port, timeout)
    except socket.gaierror as e:
        raise RuntimeError(f"resolve: {e}") from None
    except OSError as e:  # refused, unreachable, no answer in time
        raise RuntimeError(str(e) or type(e).__name__) from None
