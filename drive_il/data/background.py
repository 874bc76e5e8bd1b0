"""Episode writing in a helper process, so that recording costs the driving loop only a
memory copy per frame.

Writing a 66x200 frame to a file costs 40-150 us of system time on the reference
machines (mostly the kernel's write path), which would take the drive's main process
below the 70% speed target with three cameras. With ``EpisodeRecorder(...,
background=True)`` the frames of each step are copied into a ring of slots in shared
memory (``multiprocessing.shared_memory``) and a writer process (spawned once per
recorder) writes them with the same :class:`~drive_il.data.storage.EpisodeWriter` on
another core. Flow control: a semaphore counts free slots; the main process waits only
when the writer falls a whole ring behind.

Crash semantics are those of the synchronous writer: the file is ``*.partial`` until
the writer process renamed it at the end of the episode. If the driving process dies
(kill -9), the writer sees its pipe close and exits, leaving the partial file (readers
ignore it, ``data verify`` reports it, a resumed collection rewrites it). The writer
ignores SIGINT: Ctrl-C reaches the driving process, which then finishes or discards
the episode.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import signal
from multiprocessing.shared_memory import SharedMemory
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import DataError
from .storage import EpisodeWriter, PartialEpisodeFile

__all__ = ["WriterProcess", "BackgroundEpisodeWriter"]

log = logging.getLogger(__name__)

_REPLY_TIMEOUT_S = 600.0  # finishing an episode writes its step arrays and renames: seconds at most


def _layout(shapes: Mapping[str, tuple[int, int]]) -> tuple[list[tuple[str, int, int, int, int]], int]:
    """Per camera (name, offset, nbytes, h, w) inside one slot, and the slot size."""
    out, off = [], 0
    for name, (h, w) in shapes.items():
        n = int(h) * int(w) * 3
        out.append((name, off, n, int(h), int(w)))
        off += n
    return out, max(off, 1)


def _writer_main(conn, shm_name: str, n_slots: int, slot_bytes: int, free, fsync: bool) -> None:
    """The writer process: executes "start", "frames", "end" and "close" messages."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    shm = SharedMemory(name=shm_name)
    ring = np.ndarray((n_slots * slot_bytes,), dtype=np.uint8, buffer=shm.buf)
    writer: EpisodeWriter | None = None
    layout: list[tuple[str, int, int, int, int]] = []
    error: str | None = None
    try:
        while True:
            try:
                msg = conn.recv()
            except (EOFError, OSError):  # the driving process is gone: leave the partial file
                break
            kind = msg[0]
            if kind == "frames":
                _, t0, t1 = msg
                for t in range(t0, t1):
                    base = (t % n_slots) * slot_bytes
                    if writer is not None and error is None:
                        try:
                            for name, off, n, h, w in layout:
                                writer.write_frame(name, t, ring[base + off: base + off + n].reshape(h, w, 3))
                        except Exception as e:  # report at the end of the episode
                            error = f"{writer.partial_path}: writing frame {t} failed ({e})"
                    free.release()
            elif kind == "start":
                _, path, info, shapes, capacity = msg
                error = None
                layout = _layout(shapes)[0]
                try:
                    writer = EpisodeWriter(path, info, shapes, route=getattr(info, "route", None),
                                           capacity=capacity, fsync=fsync)
                    conn.send(("ok", None))
                except Exception as e:
                    writer = None
                    conn.send(("error", str(e)))
            elif kind == "end":
                _, steps, termination, summary, driver_names = msg
                if writer is None:
                    conn.send(("error", error or "no episode in progress"))
                    continue
                if error is not None:
                    writer.abort()
                    writer = None
                    conn.send(("error", error))
                    continue
                try:
                    path = writer.finish(steps, termination=termination, summary=summary,
                                         driver_names=driver_names)
                    conn.send(("ok", str(path)))
                except Exception as e:
                    writer.abort()
                    conn.send(("error", f"{writer.partial_path}: finishing failed ({e})"))
                writer = None
            elif kind == "close":
                if writer is not None:
                    writer.abort()
                    writer = None
                break
    finally:
        del ring
        shm.close()


class WriterProcess:
    """A spawned writer process and its ring of frame slots in shared memory.

    Args:
        shapes: camera name -> (H, W) (fixes the slot layout).
        n_slots: steps the ring holds.
        fsync: passed to the EpisodeWriter.
        notify_every: steps per "frames" message (the writer lags at most this much
            plus its own backlog).

    Raises:
        DataError: the process cannot be started.
    """

    def __init__(self, shapes: Mapping[str, tuple[int, int]], *, n_slots: int = 64, fsync: bool = False,
                 notify_every: int = 4) -> None:
        self.shapes = {str(k): (int(v[0]), int(v[1])) for k, v in shapes.items()}
        self.layout, self.slot_bytes = _layout(self.shapes)
        self.n_slots = max(2, int(n_slots))
        self.notify_every = max(1, min(int(notify_every), self.n_slots // 2))
        ctx = mp.get_context("spawn")  # never fork a process that may run threads (torch, carla)
        self._shm = SharedMemory(create=True, size=self.n_slots * self.slot_bytes)
        self._ring = np.ndarray((self.n_slots * self.slot_bytes,), dtype=np.uint8, buffer=self._shm.buf)
        self._free = ctx.Semaphore(self.n_slots)
        self._conn, child = ctx.Pipe(duplex=True)
        self._proc = ctx.Process(target=_writer_main, name="drive_il-episode-writer", daemon=True,
                                 args=(child, self._shm.name, self.n_slots, self.slot_bytes, self._free, fsync))
        try:
            self._proc.start()
        except Exception as e:
            self._release_shm()
            raise DataError(f"cannot start the episode writer process ({e})") from None
        child.close()
        self._sent = 0     # steps announced to the writer
        self._filled = 0   # steps copied into the ring
        self._closed = False

    # -- protocol ------------------------------------------------------------
    def _send(self, msg: tuple) -> None:
        try:
            self._conn.send(msg)
        except (OSError, ValueError) as e:
            raise DataError(f"episode writer process lost ({e})") from None

    def _reply(self, timeout: float = _REPLY_TIMEOUT_S) -> Any:
        if not self._conn.poll(timeout):
            raise DataError(f"episode writer process did not answer within {timeout:.0f} s")
        try:
            status, value = self._conn.recv()
        except (EOFError, OSError) as e:
            raise DataError(f"episode writer process lost ({e or 'pipe closed'})") from None
        if status != "ok":
            raise DataError(str(value))
        return value

    def start_episode(self, path: Path, info: Any, capacity: int) -> None:
        self._sent = self._filled = 0
        self._send(("start", str(path), info, self.shapes, capacity))
        self._reply()

    def put_step(self, t: int, frames: Mapping[str, np.ndarray]) -> None:
        """Copy the frames of step ``t`` into the ring (waits when the ring is full)."""
        if t != self._filled:
            raise ValueError(f"steps must come in order: expected {self._filled}, got {t}")
        while not self._free.acquire(timeout=5.0):
            if not self._proc.is_alive():
                raise DataError(f"episode writer process died (exit code {self._proc.exitcode})")
        base = (t % self.n_slots) * self.slot_bytes
        ring = self._ring
        for name, off, n, h, w in self.layout:
            fr = frames[name]
            if fr.shape != (h, w, 3) or fr.dtype != np.uint8:
                self._free.release()
                raise ValueError(f"camera {name!r}: expected a ({h}, {w}, 3) uint8 frame, got {fr.shape} {fr.dtype}")
            ring[base + off: base + off + n].reshape(h, w, 3)[...] = fr
        self._filled = t + 1
        if self._filled - self._sent >= self.notify_every:
            self._flush()

    def _flush(self) -> None:
        if self._filled > self._sent:
            self._send(("frames", self._sent, self._filled))
            self._sent = self._filled

    def end_episode(self, steps: Mapping[str, np.ndarray], termination: str, summary: Mapping[str, Any],
                    driver_names: Sequence[str]) -> Path:
        self._flush()
        self._send(("end", dict(steps), termination, dict(summary or {}), list(driver_names)))
        return Path(self._reply())

    @property
    def alive(self) -> bool:
        return not self._closed and self._proc.is_alive()

    def close(self, timeout: float = 30.0) -> None:
        """Stop the process (an unfinished episode is discarded) and free the ring."""
        if self._closed:
            return
        self._closed = True
        try:
            self._conn.send(("close",))
        except (OSError, ValueError):
            pass
        self._proc.join(timeout)
        if self._proc.is_alive():  # pragma: no cover - a stuck writer
            self._proc.terminate()
            self._proc.join(5.0)
        self._conn.close()
        self._release_shm()

    def kill(self) -> None:
        """Stop the process at once (after a protocol error) and free the ring."""
        self._closed = True
        if self._proc.is_alive():
            self._proc.terminate()
            self._proc.join(5.0)
        try:
            self._conn.close()
        except OSError:  # pragma: no cover
            pass
        self._release_shm()

    def _release_shm(self) -> None:
        try:
            del self._ring
        except AttributeError:
            pass
        try:
            self._shm.close()
            self._shm.unlink()
        except (FileNotFoundError, OSError):  # pragma: no cover
            pass


class BackgroundEpisodeWriter(PartialEpisodeFile):
    """The EpisodeWriter interface used by the recorder, backed by a :class:`WriterProcess`.

    Args:
        proc: the writer process (shared by the recorder's episodes).
        path: the final file name.
        info: the EpisodeInfo.
        capacity: initial frame capacity.
    """

    def __init__(self, proc: WriterProcess, path: Path, info: Any, capacity: int) -> None:
        super().__init__(path)
        self._proc = proc
        proc.start_episode(self.path, info, capacity)

    def write_step(self, t: int, frames: Mapping[str, np.ndarray]) -> None:
        self._proc.put_step(t, frames)

    def finish(self, steps: Mapping[str, np.ndarray], *, termination: str, summary: Mapping[str, Any] | None = None,
               driver_names: Sequence[str] = ()) -> Path:
        self._closed = True
        return self._proc.end_episode(steps, termination, summary or {}, driver_names)

    def abort(self) -> None:
        """Stop the writer process (it may be in the middle of a write, or the pipe in
        the middle of a message after Ctrl-C) and delete the partial file; the recorder
        starts a fresh process for its next episode."""
        if self._closed:
            return
        self._closed = True
        self._proc.kill()
        self._remove_partial()
