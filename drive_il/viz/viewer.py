"""Replay of a recorded episode with the overlay (``drive-il view EPISODE.h5``).

:class:`EpisodeReplay` turns the rows of an episode file
(:class:`drive_il.data.storage.EpisodeReader`) back into
:class:`~drive_il.types.StepRecord` values, so the replay is drawn by the very
:class:`~drive_il.viz.overlay.Overlay` that runs live. Camera frames are read lazily
(only the frame shown is read from disk). What the file does not hold is left out:
the expert's intended path (not recorded) and other vehicles.

Keys (:class:`Viewer`):

=====================  =========================================================
Space                  pause / play
Right / Left           one step forward / back (pauses)
Up / Down              play faster / slower (x2 / /2, 1/8 to 16)
1 ... 9, 0             jump to 10 % ... 90 %, and to the start
PageUp / PageDown      jump 10 s back / forward
Home / End             first / last step
q, Esc                 quit
=====================  =========================================================

Playback is paced to ``speed`` x real time, except under ``SDL_VIDEODRIVER=dummy``
(headless: as fast as drawing allows). ``max_frames`` stops after that many frames
have been presented (tests, batch screenshots).
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pygame

from ..errors import DataError
from ..types import (
    Control,
    EpisodeInfo,
    Event,
    EventKind,
    Observation,
    RoadOption,
    Route,
    RouteWaypoint,
    Step,
    StepRecord,
    VehicleState,
    WorldState,
)
from .overlay import Overlay

__all__ = ["EpisodeReplay", "Viewer"]

log = logging.getLogger(__name__)

_SPEEDS = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)


class _LazyFrames(Mapping):
    """camera -> frame, read from the file on access."""

    def __init__(self, reader: Any, t: int, cameras: tuple[str, ...]) -> None:
        self._r, self._t, self._cams = reader, t, cameras

    def __getitem__(self, cam: str) -> np.ndarray:
        if cam not in self._cams:
            raise KeyError(cam)
        return self._r.frame(cam, self._t)

    def __iter__(self) -> Iterator[str]:
        return iter(self._cams)

    def __len__(self) -> int:
        return len(self._cams)


def _control(row: np.ndarray) -> Control:
    return Control.clipped(float(row[0]), float(row[1]), float(row[2]))


class EpisodeReplay:
    """Random access to an episode file as StepRecords.

    Args:
        reader: an open :class:`drive_il.data.storage.EpisodeReader`.
        cameras: cameras whose frames the records expose (default: all).

    Raises:
        DataError: the file has no steps, or lacks a per-step array.
    """

    def __init__(self, reader: Any, *, cameras: tuple[str, ...] | None = None) -> None:
        self.reader = reader
        meta = reader.meta
        self.meta = meta
        self.cameras = tuple(cameras) if cameras is not None else tuple(reader.cameras)
        try:
            st = reader.steps
            self.frame_no = np.asarray(st["frame"])
            self.sim_time = np.asarray(st["sim_time"], dtype=np.float64)
            self.speed = np.asarray(st["speed"], dtype=np.float64)
            self.pose = np.asarray(st["pose"], dtype=np.float64)
            self.command = np.asarray(st["command"])
            self.executed = np.asarray(st["executed"], dtype=np.float64)
            self.expert = np.asarray(st["expert"], dtype=np.float64)
            self.learner = np.asarray(st["learner"], dtype=np.float64)
            self.intervention = np.asarray(st["intervention"], dtype=bool)
            self.noise = np.asarray(st["noise"], dtype=bool)
            self.driver = np.asarray(st["driver"])
            self.lateral = np.asarray(st["lateral_deviation"], dtype=np.float64)
            self.heading = np.asarray(st["heading_error"], dtype=np.float64)
            self.progress = np.asarray(st["route_progress"], dtype=np.float64)
            self.flags = {k: np.asarray(st[k], dtype=bool) for k in ("collision", "off_road", "lane_invasion")
                          if k in st}
        except KeyError as e:
            raise DataError(f"{reader.path}: per-step array {e.args[0]!r} missing") from None
        self.n = len(self.frame_no)
        if self.n == 0:
            raise DataError(f"{reader.path}: the episode has no steps")
        try:
            self.driver_names = list(reader.driver_names)
        except Exception:  # pragma: no cover - older writers
            self.driver_names = ["expert", "learner", "human"]
        self.route = self._route()
        veh = meta.vehicle or {}
        self._veh = {k: float(veh[k]) for k in ("length", "width", "height", "wheelbase") if k in veh}
        self._veh["max_steer_angle"] = meta.max_steer_angle

    def _route(self) -> Route | None:
        r = self.reader.route
        if not r or "xy" not in r or len(r["xy"]) < 2:
            return None
        xy, yaw = r["xy"], r.get("yaw")
        if yaw is None:
            d = np.diff(xy, axis=0)
            yaw = np.concatenate([np.arctan2(d[:, 1], d[:, 0]), [math.atan2(d[-1, 1], d[-1, 0])]])
        cmds = r.get("commands", np.full(len(xy), int(RoadOption.LANEFOLLOW)))
        wps = []
        for (x, y), h, c in zip(xy.tolist(), np.asarray(yaw).tolist(), np.asarray(cmds).tolist()):
            try:
                cmd = RoadOption(int(c))
            except ValueError:
                cmd = RoadOption.VOID
            wps.append(RouteWaypoint(x=x, y=y, yaw=h, command=cmd))
        spacing = float(np.mean(np.hypot(*np.diff(xy, axis=0).T))) if len(xy) > 1 else 1.0
        return Route(waypoints=tuple(wps), spacing=spacing)

    def __len__(self) -> int:
        return self.n

    def info(self) -> EpisodeInfo:
        """The episode's EpisodeInfo, from the file's metadata."""
        m = self.meta
        return EpisodeInfo(scenario=m.scenario, town=m.town, seed=m.seed, episode=m.episode, weather=m.weather,
                           backend=m.backend, dt=m.dt, cameras=tuple(m.cameras), vehicle=dict(m.vehicle or {}),
                           route=self.route, expert_preset=m.expert_preset, driver=m.driver or "expert",
                           dagger_round=m.dagger_round, beta=m.beta, noise=dict(m.noise or {}),
                           scenario_source=m.scenario_source)

    def step(self, t: int) -> Step:
        """The Step of row ``t`` (frames read lazily)."""
        m = self.meta
        x, y, z, yaw = self.pose[t]
        ego = VehicleState(x=float(x), y=float(y), z=float(z), yaw=float(yaw), speed=float(self.speed[t]),
                           **self._veh)
        try:
            cmd = RoadOption(int(self.command[t]))
        except ValueError:
            cmd = RoadOption.VOID
        frame, sim_time = int(self.frame_no[t]), float(self.sim_time[t])
        ws = WorldState(ego=ego, route=self.route, frame=frame, sim_time=sim_time, dt=m.dt, town=m.town,
                        weather=m.weather or "ClearNoon")
        obs = Observation(frames=_LazyFrames(self.reader, t, self.cameras), speed=float(self.speed[t]),
                          command=cmd, frame=frame, sim_time=sim_time)
        return Step(observation=obs, world_state=ws)

    def record(self, t: int) -> StepRecord:
        """The StepRecord of row ``t``."""
        if not 0 <= t < self.n:
            raise IndexError(f"step {t} outside [0, {self.n})")
        step = self.step(t)
        lr = self.learner[t]
        learner = None if not np.isfinite(lr).all() else _control(lr)
        code = int(self.driver[t])
        driver = self.driver_names[code] if 0 <= code < len(self.driver_names) else "expert"
        events = []
        for name, kind in (("collision", EventKind.COLLISION), ("off_road", EventKind.OFF_ROAD),
                           ("lane_invasion", EventKind.LANE_INVASION)):
            if name in self.flags and self.flags[name][t]:
                events.append(Event(kind=kind, frame=step.world_state.frame, sim_time=step.world_state.sim_time))
        m = self.meta
        return StepRecord(step=step, executed=_control(self.executed[t]), expert=_control(self.expert[t]),
                          learner=learner, driver=driver, intervention=bool(self.intervention[t]),
                          noise=bool(self.noise[t]), lateral_deviation=float(self.lateral[t]),
                          heading_error=float(self.heading[t]), route_progress=float(self.progress[t]),
                          events=tuple(events), expert_path=None, beta=m.beta, dagger_round=m.dagger_round)


class Viewer:
    """Plays an :class:`EpisodeReplay` through an :class:`Overlay` (keys: module docstring).

    Args:
        replay: the episode.
        overlay: the overlay to draw with (``raise_on_quit=False`` is set).
        speed: initial playback speed (x real time).
        max_frames: stop after presenting this many frames (None: until quit; at the
            end of the episode the viewer pauses on the last frame, or returns when
            headless).
        realtime: pace playback (default: unless ``SDL_VIDEODRIVER=dummy``).

    Attributes:
        t: the step shown.
        paused: playback paused.
        frames_presented: frames drawn and presented.
    """

    def __init__(self, replay: EpisodeReplay, overlay: Overlay, *, speed: float = 1.0,
                 max_frames: int | None = None, realtime: bool | None = None) -> None:
        self.replay = replay
        self.overlay = overlay
        overlay.raise_on_quit = False
        self.speed = float(speed)
        self.max_frames = max_frames
        self.realtime = (os.environ.get("SDL_VIDEODRIVER", "") != "dummy") if realtime is None else realtime
        self.t = 0
        self.paused = False
        self.frames_presented = 0
        self._fed = -1  # last row fed to the overlay's history

    # ------------------------------------------------------------------ history
    def _seek(self, t: int) -> None:
        """Make the overlay's history end at row ``t`` (replaying from the start if
        going back)."""
        t = max(0, min(self.replay.n - 1, t))
        if t <= self._fed:
            self.overlay.on_episode_start(self.replay.info(), self.replay.step(0))
            self._fed = -1
        for i in range(self._fed + 1, t + 1):
            self.overlay.update(self.replay.record(i))
        self._fed = t
        self.t = t

    def _status(self) -> str:
        r = self.replay
        t_now = r.sim_time[self.t] - r.sim_time[0]
        t_end = r.sim_time[-1] - r.sim_time[0]
        state = "PAUSED" if self.paused else f"play x{self.speed:g}"
        return f"replay {state}  {t_now:6.1f}/{t_end:.1f} s  step {self.t + 1}/{r.n}"

    def _show(self) -> None:
        self.overlay.status_text = self._status()
        rec = self.overlay.last_record if self.overlay.last_record is not None else self.replay.record(self.t)
        self.overlay.render(rec)
        self.overlay.present()
        self.frames_presented += 1

    # ------------------------------------------------------------------ keys
    def handle_key(self, key: int) -> None:
        """Apply one key press (see module docstring)."""
        n, dt = self.replay.n, max(self.replay.meta.dt, 1e-3)
        if key == pygame.K_SPACE:
            self.paused = not self.paused
        elif key == pygame.K_RIGHT:
            self.paused = True
            self._seek(self.t + 1)
        elif key == pygame.K_LEFT:
            self.paused = True
            self._seek(self.t - 1)
        elif key == pygame.K_UP:
            self.speed = next((s for s in _SPEEDS if s > self.speed + 1e-9), _SPEEDS[-1])
        elif key == pygame.K_DOWN:
            self.speed = next((s for s in reversed(_SPEEDS) if s < self.speed - 1e-9), _SPEEDS[0])
        elif pygame.K_0 <= key <= pygame.K_9:
            d = key - pygame.K_0
            self._seek(int(round(d / 10.0 * (n - 1))))
        elif key == pygame.K_PAGEUP:
            self._seek(self.t - int(round(10.0 / dt)))
        elif key == pygame.K_PAGEDOWN:
            self._seek(self.t + int(round(10.0 / dt)))
        elif key == pygame.K_HOME:
            self._seek(0)
        elif key == pygame.K_END:
            self._seek(n - 1)

    # ------------------------------------------------------------------ loop
    def run(self) -> int:
        """Play until quit (or ``max_frames``). Returns the frames presented."""
        ov = self.overlay
        r = self.replay
        ov.on_episode_start(r.info(), r.step(0))
        self._fed = -1
        self._seek(0)
        dirty = True
        dt = max(r.meta.dt, 1e-3)
        wall0, t0 = time.perf_counter(), 0
        while True:
            if dirty:
                self._show()
                dirty = False
                if self.max_frames is not None and self.frames_presented >= self.max_frames:
                    break
            before = (self.t, self.paused, self.speed)
            for e in ov.poll():
                if e.type == pygame.KEYDOWN:
                    self.handle_key(e.key)
            if ov.quit_requested:
                break
            if (self.t, self.paused, self.speed) != before:
                dirty = True
                wall0, t0 = time.perf_counter(), self.t
                continue
            if self.paused:
                time.sleep(1.0 / 60.0)
                continue
            if self.t >= r.n - 1:
                if not self.realtime:
                    break
                self.paused = True
                dirty = True
                continue
            if self.realtime:
                target = t0 + int((time.perf_counter() - wall0) * self.speed / dt)
                if target <= self.t:
                    time.sleep(min(dt / self.speed, 0.02))
                    continue
                self._seek(min(target, r.n - 1))
            else:
                self._seek(self.t + max(1, int(round(self.speed))) if self.speed >= 1 else self.t + 1)
            dirty = True
        return self.frames_presented


def view_episode(path: str | Path, *, camera: str | None = None, speed: float = 1.0,
                 record_screens: str | Path | None = None, gif: str | Path | None = None,
                 max_frames: int | None = None, maps_dir: str | Path | None = None,
                 size: tuple[int, int] = (1280, 720), threshold: float = 1.0, show: bool = True,
                 realtime: bool | None = None) -> int:
    """Open ``path`` and replay it (``drive-il view``). Returns the frames presented.

    The town's ``carla.Map`` is loaded with :func:`drive_il.sim.maps.load_town` for the
    lane boundaries; where it cannot be found the route's own lane is drawn.

    Raises:
        DataError: unreadable file, unknown schema version, no such camera, no steps.
    """
    from ..data.storage import EpisodeReader

    with EpisodeReader(path) as reader:
        cams = tuple(reader.cameras)
        if camera is not None and camera not in cams:
            raise DataError(f"{path}: no camera {camera!r} (cameras: {', '.join(cams) or 'none'})")
        cam = camera or ("center" if "center" in cams else (cams[0] if cams else "center"))
        replay = EpisodeReplay(reader, cameras=(cam,) if cams else ())
        carla_map = None
        if reader.meta.town:
            try:
                from ..maps import load_town

                carla_map = load_town(reader.meta.town, maps_dir).map
            except Exception as e:  # MapError or a missing maps helper: route only
                log.warning("town %r not loaded (%s); drawing the route's lane only", reader.meta.town, e)
        ov = Overlay(size=size, camera=cam, show=show, record_screens=record_screens, gif=gif,
                     threshold=threshold, carla_map=carla_map, raise_on_quit=False,
                     title=f"drive_il view {Path(path).name}", quit_keys=(pygame.K_ESCAPE, pygame.K_q))
        try:
            return Viewer(replay, ov, speed=speed, max_frames=max_frames, realtime=realtime).run()
        finally:
            ov.close()


__all__ += ["view_episode"]
