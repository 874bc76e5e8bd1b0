"""The episode recorder: an observer of the rollout that writes episode files.

Composition, not subclassing (imitation's ``TrajectoryAccumulator``): the rollout loop
(``drive_il.rollout``) calls, for every episode,

* :meth:`EpisodeRecorder.on_episode_start` with the :class:`~drive_il.types.EpisodeInfo`
  and the first :class:`~drive_il.types.Step`,
* :meth:`EpisodeRecorder.on_step` with a :class:`~drive_il.types.StepRecord` per control
  step,
* :meth:`EpisodeRecorder.on_episode_end` with the :class:`~drive_il.types.EpisodeResult`
  (finishes the file: rename of ``*.partial`` into place, manifest line), or
  :meth:`EpisodeRecorder.on_episode_abort` / :meth:`EpisodeRecorder.discard` (e.g. on
  Ctrl-C) to delete the partial file.

Cost per step: one checksummed chunk write per camera frame plus appending the step's
:class:`~drive_il.types.StepRow` (the per-step record schema: named scalars) to a list;
at the end of the episode the rows become columns (:func:`~drive_il.types.step_columns`),
grouped into the file's arrays by name (:data:`~drive_il.types.STEP_FILE_COLUMNS`) and
written once. On the 2-vCPU reference machine a 66x200 frame costs 30-100 us of the
driving thread when it is quiet (more when the machine is loaded: the write path of
the kernel needs CPU too). ``background=True`` moves the writes to a helper process
(:mod:`drive_il.data.background`): the driving thread then only copies each frame into
shared memory (~6 us). ``drive-il bench record [--sim]`` measures both. Storage
layout: see :mod:`drive_il.data.storage`.

Usage (what :func:`drive_il.rollout.collect` does)::

    with EpisodeRecorder(out_dir, background=True) as rec:   # close() stops the writer
        for j in episodes_to_drive:
            run_episode(sim, scenario, seed + j, Drivers(expert=expert), observers=[rec], episode=j)
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from ..types import EpisodeInfo, EpisodeResult, Step, StepRecord, StepRow, file_arrays_from_columns, step_columns
from .storage import DRIVER_NAMES, PARTIAL_SUFFIX, EpisodeWriter, episode_filename

__all__ = ["EpisodeRecorder", "io_reason", "rows_to_arrays"]

log = logging.getLogger(__name__)


class EpisodeRecorder:
    """Writes each episode of a rollout to ``out_dir/episode_NNNNNN.h5``.

    Args:
        out_dir: the data directory (created when missing).
        fsync: fsync each finished file and the manifest (survives power loss; a killed
            process never loses a finished episode either way).
        overwrite: replace an existing finished file of the same episode index
            (default: refuse, so that a resumed collection never destroys data).
        capacity: initial frame capacity of a file (grows as needed).
        background: write in a helper process (:mod:`drive_il.data.background`): the
            driving loop only copies each frame into shared memory; use it when
            collecting (call :meth:`close` at the end, or use ``with``).
        ring_steps: steps of frames the shared-memory ring holds (background mode).

    Attributes:
        out_dir: the data directory.
        path: the file being written (the final name), or None between episodes.
        last_path: the last finished file, or None.

    Raises:
        DataError: (``on_episode_start``) the episode file exists and ``overwrite`` is
            False, or it cannot be created; (``on_step``, ``on_episode_end``) a write
            failed (disk full, I/O error): the partial file was removed first, finished
            files are never touched.
    """

    def __init__(self, out_dir: str | Path, *, fsync: bool = False, overwrite: bool = False,
                 capacity: int = 512, background: bool = False, ring_steps: int = 64) -> None:
        self.out_dir = Path(out_dir)
        self._background = background
        self._ring_steps = ring_steps
        self._proc: Any = None
        self._fsync = fsync
        self._overwrite = overwrite
        self._capacity = capacity
        self._writer: Any = None  # EpisodeWriter or BackgroundEpisodeWriter
        self._rows: list[StepRow] = []
        self._cams: tuple[str, ...] = ()
        self.path: Path | None = None
        self.last_path: Path | None = None

    # ------------------------------------------------------------------ observer
    def on_episode_start(self, info: EpisodeInfo, first: Step) -> None:
        """Create ``episode_NNNNNN.h5.partial`` for ``info.episode``; the camera rig
        (names and image sizes) is taken from ``first.observation.frames``."""
        if self._writer is not None:
            log.warning("recorder: episode %s started before the previous one ended; discarding it",
                        info.episode)
            self.discard()
        path = self.out_dir / episode_filename(info.episode)
        if path.exists() and not self._overwrite:
            raise DataError(f"{path}: episode already recorded (delete it or record into another directory)")
        frames = first.observation.frames
        shapes = {}
        for name, fr in frames.items():
            if fr.ndim != 3 or fr.shape[2] != 3 or fr.dtype != np.uint8:
                raise DataError(f"camera {name!r}: expected (H, W, 3) uint8 frames, got {fr.shape} {fr.dtype}")
            shapes[name] = fr.shape[:2]
        try:
            self._writer = self._make_writer(path, info, shapes)
        except OSError as e:  # e.g. the disk filled up while laying out the new file
            partial = path.with_name(path.name + PARTIAL_SUFFIX)
            try:
                partial.unlink()
            except OSError:
                pass
            raise DataError(f"{partial}: cannot write the episode file ({io_reason(e)}); "
                            "the partial file was removed") from None
        self._cams = tuple(shapes)
        self._rows = []
        self.path = path

    def on_step(self, record: StepRecord) -> None:
        """Write this step's frames and buffer its row of scalars."""
        w = self._writer
        if w is None:
            return
        try:
            w.write_step(len(self._rows), record.step.observation.frames)
        except OSError as e:  # disk full, I/O error: no half-written episode stays behind
            partial = getattr(w, "partial_path", self.path)
            self.discard("write failed")
            raise DataError(f"{partial}: cannot write the episode file ({io_reason(e)}); "
                            "the partial file was removed") from None
        self._rows.append(record.row())

    def on_episode_end(self, result: EpisodeResult) -> Path | None:
        """Finish the file (rename into place, manifest line).

        Returns:
            The finished file, or None when no episode was being recorded.
        """
        w = self._writer
        if w is None:
            return None
        try:
            arrays, names = rows_to_arrays(self._rows)
            path = w.finish(arrays, termination=result.termination, summary=result.summary,
                            driver_names=names)
        except OSError as e:
            w.abort()
            final = w.path
            if final.exists():  # renamed into place, but the manifest line was not appended
                raise DataError(f"{final}: episode finished, but its manifest line could not be appended "
                                f"({io_reason(e)}); resuming the collection or `drive-il data repair` "
                                "adds it") from None
            raise DataError(f"{w.partial_path}: cannot finish the episode file ({io_reason(e)}); "
                            "the partial file was removed") from None
        except BaseException:
            w.abort()
            raise
        finally:
            self._writer = None
            self._rows = []
            self.path = None
        self.last_path = path
        return path

    def discard(self, reason: str = "") -> None:
        """Delete the episode in progress (its ``*.partial`` file); idempotent.

        Args:
            reason: why (logged), e.g. "interrupted".
        """
        if self._writer is not None:
            log.info("recorder: discarding %s%s", self.path, f" ({reason})" if reason else "")
        w = self._writer
        self._writer = None
        self._rows = []
        self.path = None
        if w is not None:
            w.abort()

    def on_episode_abort(self, reason: str = "") -> None:
        """The rollout's abort hook (Ctrl-C, backend lost): same as :meth:`discard`."""
        self.discard(reason)

    def close(self) -> None:
        """Discard any unfinished episode and stop the writer process (background mode)."""
        self.discard()
        if self._proc is not None:
            self._proc.close()
            self._proc = None

    def _make_writer(self, path: Path, info: EpisodeInfo, shapes: dict[str, tuple[int, int]]):
        if not self._background:
            return EpisodeWriter(path, info, shapes, route=info.route, capacity=self._capacity, fsync=self._fsync)
        from .background import BackgroundEpisodeWriter, WriterProcess

        shapes = {k: (int(v[0]), int(v[1])) for k, v in shapes.items()}
        if self._proc is not None and (not self._proc.alive or self._proc.shapes != shapes):
            self._proc.close()
            self._proc = None
        if self._proc is None:
            self._proc = WriterProcess(shapes, n_slots=self._ring_steps, fsync=self._fsync)
        return BackgroundEpisodeWriter(self._proc, path, info, self._capacity)

    @property
    def steps_recorded(self) -> int:
        """Steps buffered in the episode in progress."""
        return len(self._rows)

    def __enter__(self) -> "EpisodeRecorder":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def rows_to_arrays(rows: list[StepRow]) -> tuple[dict[str, np.ndarray], list[str]]:
    """The episode file's per-step arrays (``drive_il.data.storage.STEP_FIELDS`` names,
    length T) from the rows, grouped by :data:`drive_il.types.STEP_FILE_COLUMNS`.

    Returns:
        (arrays, driver names): ``arrays["driver"]`` holds codes into the names, which
        start with ``DRIVER_NAMES`` and go on with other drivers in order of appearance.
    """
    columns = step_columns(rows)
    names = list(DRIVER_NAMES)
    codes = {n: i for i, n in enumerate(names)}
    for n in dict.fromkeys(columns["driver"].tolist()):
        if n not in codes:
            codes[n] = len(names)
            names.append(n)
    columns["driver"] = np.array([codes[n] for n in columns["driver"].tolist()], dtype=np.int64)
    return file_arrays_from_columns(columns), names


def io_reason(e: OSError) -> str:
    """A short reason for a failed write: the OS's words for its errno ("No space left
    on device"), also when HDF5 buried the errno in its message."""
    if e.errno:
        import os
        return os.strerror(e.errno)
    text = " ".join(str(e).split())
    m = re.search(r"error message = '([^']+)'", text)
    if m:
        return m.group(1)
    return text if len(text) <= 160 else text[:157] + "..."
