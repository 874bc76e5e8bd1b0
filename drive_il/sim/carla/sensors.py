"""The ego's sensors on a CARLA server and frame matching.

:class:`SensorRig` spawns the camera rig (``sensor.camera.rgb``), a
``sensor.other.collision`` and a ``sensor.other.lane_invasion`` sensor on the ego. Every
sensor's callback only puts its data into its own queue (it runs in the client's
thread). After ``world.tick()`` returns frame F, each camera's queue is read until the
image of frame F (older ones are dropped); a camera that has none within the time-out
raises :class:`~drive_il.errors.SensorTimeoutError`. Collision and lane-invasion events
of frames <= F are reported as :class:`~drive_il.types.Event` with frames and times
counted from the episode's first frame; a collision once per contact onset with each
actor, as the embedded world.
"""

from __future__ import annotations

import logging
import queue
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...errors import SensorTimeoutError, SimulatorConnectionError
from ...scenario import CameraConfig, Scenario
from ...types import Event, EventKind
from .convert import (
    Physics,
    camera_transform,
    enum_name,
    image_to_rgb,
    impulse_magnitude,
    one_line,
)

__all__ = ["Sensor", "SensorRig"]

log = logging.getLogger(__name__)


@dataclass
class Sensor:
    """One spawned sensor and its queue (the callback only enqueues)."""

    name: str
    kind: str  # "camera", "collision", "lane_invasion"
    actor: Any
    queue: "queue.Queue[Any]"
    config: CameraConfig | None = None


def drain(q: "queue.Queue[Any]", frame: int) -> list[Any]:
    """Events of frames <= ``frame`` (later ones stay queued)."""
    out, later = [], []
    while True:
        try:
            ev = q.get_nowait()
        except queue.Empty:
            break
        (out if int(ev.frame) <= frame else later).append(ev)
    for ev in later:
        q.put(ev)
    return out


class SensorRig:
    """The sensors of the current episode (see the module docstring).

    Args:
        carla: the ``carla`` module (or a test double).
        timeout: how long to wait for a camera's image of a frame [s].
        where: the server, ``host:port``, for messages.
    """

    def __init__(self, carla: Any, *, timeout: float, where: str) -> None:
        self._carla = carla
        self.timeout = timeout
        self.where = where
        self._sensors: list[Sensor] = []
        self._contacts: dict[int, int] = {}  # other actor id -> last frame with a hit
        self._frame0 = 0
        self._dt = 0.05

    def attach(self, world: Any, ego: Any, scenario: Scenario, physics: Physics) -> None:
        """Spawn the scenario's cameras, then the collision and lane-invasion sensors,
        attached to ``ego``."""
        carla = self._carla
        lib = world.get_blueprint_library()
        for cam in scenario.cameras:
            bp = lib.find("sensor.camera.rgb")
            bp.set_attribute("image_size_x", str(int(cam.width)))
            bp.set_attribute("image_size_y", str(int(cam.height)))
            bp.set_attribute("fov", f"{float(cam.fov_deg):g}")
            if bp.has_attribute("sensor_tick"):
                bp.set_attribute("sensor_tick", "0.0")
            if bp.has_attribute("role_name"):
                bp.set_attribute("role_name", cam.name)
            tf = camera_transform(carla, cam, physics)
            self._add(world.spawn_actor(bp, tf, attach_to=ego), cam.name, "camera", cam)
        for kind, bp_id in (("collision", "sensor.other.collision"),
                            ("lane_invasion", "sensor.other.lane_invasion")):
            bp = lib.find(bp_id)
            self._add(world.spawn_actor(bp, carla.Transform(), attach_to=ego), kind, kind, None)

    def _add(self, actor: Any, name: str, kind: str, cfg: CameraConfig | None) -> None:
        q: queue.Queue[Any] = queue.Queue()
        self._sensors.append(Sensor(name=name, kind=kind, actor=actor, queue=q, config=cfg))
        actor.listen(q.put)  # the callback runs in the client's thread: enqueue only

    def begin(self, frame0: int, dt: float) -> None:
        """The episode starts at server frame ``frame0`` with step ``dt`` [s]: contacts
        and markings of the spawn (events of frames <= ``frame0``) are not the episode's."""
        self._frame0, self._dt = int(frame0), float(dt)
        for s in self._sensors:
            if s.kind != "camera":
                drain(s.queue, frame0)
        self._contacts = {}

    def actor_ids(self) -> list[int]:
        """Ids of the spawned sensors."""
        return [s.actor.id for s in self._sensors if s.actor is not None]

    def forget(self) -> None:
        """Drop the sensors without calling the server (a lost connection)."""
        self._sensors = []

    def destroy(self) -> None:
        """Stop, then destroy every sensor; each one even when another fails."""
        sensors, self._sensors = self._sensors, []
        for s in sensors:
            try:
                s.actor.stop()
            except RuntimeError as e:
                log.warning("stopping sensor %s: %s", s.name, one_line(e))
        for s in sensors:
            try:
                s.actor.destroy()
            except RuntimeError as e:
                log.warning("destroying sensor %s: %s", s.name, one_line(e))

    # ------------------------------------------------------------------ per frame
    def read_cameras(self, frame: int) -> dict[str, np.ndarray]:
        """The image of ``frame`` from every camera, as RGB (older images dropped).

        Raises:
            SensorTimeoutError: a camera had no image of ``frame`` within the time-out,
                or skipped it.
        """
        deadline = time.monotonic() + self.timeout
        out: dict[str, np.ndarray] = {}
        for s in self._sensors:
            if s.kind != "camera":
                continue
            while True:
                try:
                    img = s.queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    raise SensorTimeoutError(
                        f"camera {s.name!r} produced no image for frame {frame} within {self.timeout:g} s "
                        f"(CARLA server at {self.where}; a GPU too slow for the rig, or a lost "
                        f"connection?)") from None
                f = int(img.frame)
                if f < frame:
                    continue
                if f > frame:
                    raise SensorTimeoutError(
                        f"camera {s.name!r} skipped frame {frame} (its next image is frame {f}): "
                        f"is another client ticking the CARLA server at {self.where}?")
                rgb = image_to_rgb(img)
                cfg = s.config
                if cfg is not None and rgb.shape[:2] != (cfg.height, cfg.width):
                    raise SimulatorConnectionError(
                        f"camera {s.name!r} gave a {rgb.shape[0]}x{rgb.shape[1]} image, the rig asks "
                        f"for {cfg.height}x{cfg.width}")
                out[s.name] = rgb
                break
        return out

    def events(self, frame: int) -> list[Event]:
        """Collision and lane-invasion events of server frames <= ``frame``."""
        out: list[Event] = []
        for s in self._sensors:
            if s.kind == "collision":
                out.extend(self._collision_events(drain(s.queue, frame)))
            elif s.kind == "lane_invasion":
                out.extend(self._lane_event(ev) for ev in drain(s.queue, frame))
        return out

    def _rel(self, frame: int) -> tuple[int, float]:
        f = int(frame) - self._frame0
        return f, f * self._dt

    def _collision_events(self, raw: list[Any]) -> list[Event]:
        """One Event per contact onset with each other actor, as the embedded world
        reports them: CARLA's sensor fires at every physics hit, i.e. on every frame of
        a lasting contact and possibly several times within one frame (the strongest
        impulse of the frame is kept). A contact that resumes after at least one frame
        without hits is a new one. A pedestrian (``other_actor.type_id`` "walker.*")
        is a :attr:`~drive_il.types.EventKind.WALKER_COLLISION`."""
        hits: dict[tuple[int, int], float] = {}  # (frame, other id) -> impulse [N s]
        walkers: set[int] = set()  # other ids that are pedestrians ("walker.*" type ids)
        for ev in raw:
            other = getattr(ev, "other_actor", None)
            mag = impulse_magnitude(ev)
            key = (int(ev.frame), int(other.id) if other is not None else -1)
            hits[key] = max(hits.get(key, 0.0), float(mag))
            if other is not None and str(getattr(other, "type_id", "")).startswith("walker."):
                walkers.add(key[1])
        out: list[Event] = []
        for (frame, oid), mag in sorted(hits.items()):
            last = self._contacts.get(oid)
            self._contacts[oid] = frame
            if last is not None and frame - last <= 1:
                continue
            f, t = self._rel(frame)
            kind = EventKind.WALKER_COLLISION if oid in walkers else EventKind.COLLISION
            out.append(Event(kind=kind, frame=f, sim_time=t, other_actor=oid, impulse=mag))
        return out

    def _lane_event(self, ev: Any) -> Event:
        f, t = self._rel(ev.frame)
        names = tuple(enum_name(m.type) for m in ev.crossed_lane_markings)
        return Event(kind=EventKind.LANE_INVASION, frame=f, sim_time=t, marking=names)
