"""Data directories: the finished episode files (:func:`list_episodes`,
:func:`finished_episode_indices` for resuming), a checked listing of finished,
partial and damaged files (:func:`scan_dir`, :class:`ScanReport`), and the writer's
lock (:func:`locked_directory`: one process at a time writes a directory).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ...errors import DataError
from .reader import EpisodeReader
from .schema import EPISODE_SUFFIX, PARTIAL_SUFFIX, episode_index_from_path

__all__ = ["LOCK_NAME", "ScanReport", "finished_episode_indices", "list_episodes", "locked_directory", "scan_dir"]

#: The lock file a writer holds inside a demonstration directory (see :func:`locked_directory`).
LOCK_NAME = ".drive_il.lock"


def list_episodes(directory: str | Path) -> list[Path]:
    """Finished episode files (``*.h5``, not ``*.partial``) in ``directory``, sorted by
    name. Files are not opened (see :func:`scan_dir` for a checked listing).

    Raises:
        DataError: ``directory`` does not exist or is not a directory.
    """
    d = Path(directory)
    if not d.is_dir():
        raise DataError(f"{d}: no such data directory")
    return sorted(p for p in d.iterdir() if p.suffix == EPISODE_SUFFIX and p.is_file())


def finished_episode_indices(directory: str | Path) -> set[int]:
    """Indices of the finished episodes in ``directory`` (from the file names), for
    resuming a collection run; an absent directory gives the empty set."""
    d = Path(directory)
    if not d.is_dir():
        return set()
    out = set()
    for p in list_episodes(d):
        i = episode_index_from_path(p)
        if i is not None:
            out.add(i)
    return out


@dataclass(frozen=True)
class ScanReport:
    """What a data directory holds.

    Attributes:
        directory: the directory.
        finished: readable finished episode files, sorted.
        partial: ``*.partial`` files (an episode in progress or left by a crash).
        damaged: (file, reason) for finished files that cannot be opened.
    """

    directory: Path
    finished: tuple[Path, ...]
    partial: tuple[Path, ...]
    damaged: tuple[tuple[Path, str], ...]


def scan_dir(directory: str | Path) -> ScanReport:
    """List finished, partial and damaged episode files (opens each finished file's
    header; cheap).

    Raises:
        DataError: ``directory`` does not exist.
    """
    d = Path(directory)
    files = list_episodes(d)
    partial = sorted(p for p in d.iterdir() if p.name.endswith(EPISODE_SUFFIX + PARTIAL_SUFFIX))
    finished, damaged = [], []
    for p in files:
        try:
            with EpisodeReader(p) as r:
                if not r.meta.complete:
                    raise DataError(f"{p}: episode file was not finished by its writer")
            finished.append(p)
        except DataError as e:
            damaged.append((p, str(e)))
    return ScanReport(d, tuple(finished), tuple(partial), tuple(damaged))


@contextlib.contextmanager
def locked_directory(directory: str | Path) -> Iterator[Path]:
    """Hold the writer's lock of a demonstration directory (``DIR/.drive_il.lock``, an
    OS file lock through ``filelock``) for the duration of the ``with`` block.

    Fails at once rather than waiting: a second writer would record the same episodes
    again (two processes resuming one directory pick the same missing episode). The
    kernel drops the lock of a killed process, so a crash never leaves it held. The
    lock file itself stays (empty; readers ignore it).

    Raises:
        DataError: another process holds the lock (one line naming the directory), or
            the lock file cannot be created.
    """
    from filelock import FileLock, Timeout

    d = Path(directory)
    lock = FileLock(str(d / LOCK_NAME), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise DataError(f"{d}: another process is writing this demonstration directory (it holds "
                        f"{d / LOCK_NAME}); wait for it to finish, or write into another directory") from None
    except OSError as e:
        raise DataError(f"{d}: cannot lock the demonstration directory ({e.strerror or e})") from None
    try:
        yield d
    finally:
        lock.release()
