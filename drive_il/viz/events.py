"""One reader of pygame's event queue, shared by the overlay, the human driver and the gate.

pygame has a single, process-wide event queue: two objects that each call
``pygame.event.get()`` would steal each other's events (the overlay would eat the key
that the human driver waits for). :class:`EventPump` drains the queue once and lets
every consumer read, through its own cursor, the events that arrived since it last
looked. :func:`default_pump` returns the process-wide pump (created on first use,
mirroring pygame's own process-wide queue); pass a pump explicitly where a test wants
isolation.
"""

from __future__ import annotations

import collections
import os

import pygame

__all__ = ["EventPump", "default_pump", "ensure_pygame"]


def ensure_pygame(*, video: bool = True, joystick: bool = False) -> None:
    """Initialise the pygame subsystems needed for events (idempotent).

    With no display (``DISPLAY`` unset on Linux) and no ``SDL_VIDEODRIVER`` chosen,
    the dummy video driver is selected so that headless runs work.
    """
    if video and not pygame.display.get_init():
        if (os.name == "posix" and not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY")
                and "SDL_VIDEODRIVER" not in os.environ and os.uname().sysname == "Linux"):
            os.environ["SDL_VIDEODRIVER"] = "dummy"
        pygame.display.init()
    if joystick and not pygame.joystick.get_init():
        pygame.joystick.init()


class EventPump:
    """Drains ``pygame.event.get()`` and hands each consumer the events it has not seen.

    Usage::

        pump = EventPump()
        cursor = pump.cursor()
        ...
        events, cursor = pump.poll(cursor)

    Args:
        maxlen: events kept for slow consumers (older ones are dropped).
    """

    def __init__(self, *, maxlen: int = 4096) -> None:
        self._buf: collections.deque[tuple[int, "pygame.event.Event"]] = collections.deque(maxlen=maxlen)
        self._next = 0

    def pump(self) -> None:
        """Move pending pygame events into the buffer."""
        ensure_pygame()
        for e in pygame.event.get():
            self._buf.append((self._next, e))
            self._next += 1

    def cursor(self) -> int:
        """The position after the newest event drained so far (a new consumer starts here)."""
        return self._next

    def poll(self, cursor: int) -> tuple[list["pygame.event.Event"], int]:
        """Drain the queue and return (events at or after ``cursor``, new cursor)."""
        self.pump()
        return [e for s, e in self._buf if s >= cursor], self._next


_DEFAULT: EventPump | None = None


def default_pump() -> EventPump:
    """The process-wide pump (pygame's queue is process-wide too)."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = EventPump()
    return _DEFAULT


def headless() -> bool:
    """Whether pygame draws off screen (``SDL_VIDEODRIVER=dummy``/``offscreen``)."""
    return os.environ.get("SDL_VIDEODRIVER", "") in ("dummy", "offscreen")


class Pacer:
    """Keeps a loop at real time: :meth:`wait` sleeps until ``dt`` [s] of wall time
    has passed since the previous call (a human cannot drive at 300 steps/s).
    It never sleeps to catch up: a slow step simply starts the next one late."""

    def __init__(self) -> None:
        self._last: float | None = None

    def wait(self, dt: float) -> None:
        import time

        now = time.perf_counter()
        if self._last is not None:
            left = dt - (now - self._last)
            if left > 0:
                time.sleep(left)
                now = time.perf_counter()
        self._last = now


__all__ += ["Pacer", "headless"]
