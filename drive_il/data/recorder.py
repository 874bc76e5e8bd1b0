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

Cost per step: one direct chunk write per camera frame plus appending one tuple of
scalars to a list; the scalars are turned into arrays and written once at the end of
the episode. On the 2-vCPU reference machine a 66x200 frame costs 30-100 us of the
driving thread when it is quiet (more when the machine is loaded: the write path of
the kernel needs CPU too). ``background=True`` moves the writes to a helper process
(:mod:`drive_il.data.background`): the driving thread then only copies each frame into
shared memory (~6 us). ``drive-il bench record [--sim]`` measures both. Storage
layout: see :mod:`drive_il.data.storage`.

Usage (what ``drive_il.collect`` does)::

    with EpisodeRecorder(out_dir, background=True) as rec:   # close() stops the writer
        for j in episodes_to_drive:
            run_episode(sim, scenario, seed + j, expert=expert, observers=[rec], episode=j)
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from ..types import EpisodeInfo, EpisodeResult, EventKind, Step, StepRecord
from .storage import DRIVER_NAMES, EpisodeWriter, episode_filename

__all__ = ["EpisodeRecorder", "records_to_arrays"]

log = logging.getLogger(__name__)

_NAN3 = (float("nan"), float("nan"), float("nan"))
_COLLISION, _OFF_ROAD, _LANE = EventKind.COLLISION, EventKind.OFF_ROAD, EventKind.LANE_INVASION


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
            False, or it cannot be created.
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
        self._rows: list[tuple] = []
        self._cams: tuple[str, ...] = ()
        self._driver_codes: dict[str, int] = {}
        self._driver_names: list[str] = []
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
        self._writer = self._make_writer(path, info, shapes)
        self._cams = tuple(shapes)
        self._rows = []
        self._driver_names = list(DRIVER_NAMES)
        self._driver_codes = {n: i for i, n in enumerate(self._driver_names)}
        self.path = path

    def on_step(self, record: StepRecord) -> None:
        """Write this step's frames and buffer its scalars."""
        w = self._writer
        if w is None:
            return
        t = len(self._rows)
        step = record.step
        obs = step.observation
        w.write_step(t, obs.frames)
        ego = step.world_state.ego
        ex, e, ln = record.executed, record.expert, record.learner
        code = self._driver_codes.get(record.driver)
        if code is None:
            code = len(self._driver_names)
            self._driver_names.append(record.driver)
            self._driver_codes[record.driver] = code
        col = off = lane = False
        for ev in record.events:
            k = ev.kind
            if k is _COLLISION:
                col = True
            elif k is _OFF_ROAD:
                off = True
            elif k is _LANE:
                lane = True
        self._rows.append((
            obs.frame, obs.sim_time, ego.speed, ego.x, ego.y, ego.z, ego.yaw, int(obs.command),
            ex.steer, ex.throttle, ex.brake,
            e.steer, e.throttle, e.brake,
            *((ln.steer, ln.throttle, ln.brake) if ln is not None else _NAN3),
            record.intervention, record.noise, code,
            record.lateral_deviation, record.heading_error, record.route_progress,
            col, off, lane,
        ))

    def on_episode_end(self, result: EpisodeResult) -> Path | None:
        """Finish the file (rename into place, manifest line).

        Returns:
            The finished file, or None when no episode was being recorded.
        """
        w = self._writer
        if w is None:
            return None
        try:
            arrays = records_to_arrays(self._rows)
            path = w.finish(arrays, termination=result.termination, summary=result.summary,
                            driver_names=self._driver_names)
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


def records_to_arrays(rows: list[tuple]) -> dict[str, np.ndarray]:
    """Turn the recorder's per-step tuples into the STEP_FIELDS arrays (length T)."""
    n = len(rows)
    if n == 0:
        m = np.zeros((0, 26), dtype=np.float64)
    else:
        m = np.array(rows, dtype=np.float64)  # (T, 26); exact for int64 frames < 2**53
    return {
        "frame": m[:, 0].astype(np.int64),
        "sim_time": m[:, 1],
        "speed": m[:, 2].astype(np.float32),
        "pose": m[:, 3:7],
        "command": m[:, 7].astype(np.int8),
        "executed": m[:, 8:11].astype(np.float32),
        "expert": m[:, 11:14].astype(np.float32),
        "learner": m[:, 14:17].astype(np.float32),
        "intervention": m[:, 17] != 0,
        "noise": m[:, 18] != 0,
        "driver": m[:, 19].astype(np.uint8),
        "lateral_deviation": m[:, 20].astype(np.float32),
        "heading_error": m[:, 21].astype(np.float32),
        "route_progress": m[:, 22].astype(np.float32),
        "collision": m[:, 23] != 0,
        "off_road": m[:, 24] != 0,
        "lane_invasion": m[:, 25] != 0,
    }
