"""Unit and frame conversions at the CARLA boundary.

Inside drive_il every value is SI, yaw is in radians and a vehicle's reference point is
the centre of its bounding box at ground level; CARLA speaks degrees (rotations, wheel
steer limits), km/h (Traffic Manager speeds), centimetres (wheel positions), BGRA images
and actor origins. This module converts between the two and nothing else: no RPC of its
own beyond reading the actor it is given.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...errors import SimulatorConnectionError
from ...scenario import CameraConfig, VehicleConfig
from ...types import ActorState, VehicleState

__all__ = [
    "KMH_PER_MPS",
    "Physics",
    "actor_state",
    "camera_transform",
    "enum_name",
    "image_to_rgb",
    "impulse_magnitude",
    "one_line",
    "origin_of",
    "read_physics",
    "transform",
    "vehicle_state",
    "yaw_rad",
]

log = logging.getLogger(__name__)

#: Traffic Manager speeds are in km/h.
KMH_PER_MPS = 3.6


def image_to_rgb(image: Any) -> np.ndarray:
    """A ``carla.Image`` (BGRA, 8 bits per channel) to an (H, W, 3) uint8 RGB array.

    Args:
        image: has ``width``, ``height`` and ``raw_data`` (H*W*4 bytes, B G R A).

    Returns:
        A new C-contiguous (H, W, 3) uint8 array (R, G, B), independent of the image.

    Raises:
        SimulatorConnectionError: the buffer size does not match width x height x 4.
    """
    h, w = int(image.height), int(image.width)
    buf = np.frombuffer(image.raw_data, dtype=np.uint8)
    if buf.size != h * w * 4:
        raise SimulatorConnectionError(
            f"camera image of frame {getattr(image, 'frame', '?')} has {buf.size} bytes, "
            f"expected {h}x{w}x4 = {h * w * 4} (BGRA)")
    return np.ascontiguousarray(buf.reshape(h, w, 4)[:, :, 2::-1])


def yaw_rad(rotation: Any) -> float:
    """A ``carla.Rotation``'s yaw [deg] in radians."""
    return math.radians(float(rotation.yaw))


def transform(carla: Any, x: float, y: float, z: float, yaw: float) -> Any:
    """A level ``carla.Transform`` at (x, y, z) [m] with heading ``yaw`` [rad]."""
    return carla.Transform(carla.Location(x=x, y=y, z=z),
                           carla.Rotation(pitch=0.0, yaw=math.degrees(yaw), roll=0.0))


def one_line(e: BaseException) -> str:
    """An exception's text (CARLA's are often multi-line) on one line."""
    return " ".join(str(e).split()) or type(e).__name__


def enum_name(v: Any) -> str:
    """The member name of a CARLA enum value (``carla.LaneMarkingType.Solid`` -> 'Solid')."""
    name = getattr(v, "name", None)
    return str(name) if name is not None else str(v).rsplit(".", 1)[-1]


def impulse_magnitude(event: Any) -> float:
    """|normal impulse| [N s] of a ``carla.CollisionEvent`` (0 when it has none)."""
    imp = getattr(event, "normal_impulse", None)
    return math.sqrt(imp.x ** 2 + imp.y ** 2 + imp.z ** 2) if imp is not None else 0.0


@dataclass(frozen=True)
class Physics:
    """What the backend reads once per episode from the ego's blueprint and physics."""

    length: float
    width: float
    height: float
    wheelbase: float
    max_steer_angle: float  # [rad]
    offset_x: float  # bounding-box centre in the actor frame [m]
    offset_y: float
    ground_dz: float  # bbox.location.z - bbox.extent.z [m]


def read_physics(ego: Any, vehicle: VehicleConfig) -> Physics:
    """The ego's bounding box, wheelbase and steer limit in SI units: wheel positions
    are world coordinates in centimetres, steer limits in degrees; implausible values
    (and a vehicle without physics control) fall back to ``vehicle``'s."""
    bb = ego.bounding_box
    wheelbase, max_steer = vehicle.wheelbase, vehicle.max_steer_angle
    try:
        pc = ego.get_physics_control()
        wheels = list(pc.wheels)
        if len(wheels) >= 4:
            # WheelPhysicsControl.position is in world coordinates and centimetres
            fx = 0.5 * (wheels[0].position.x + wheels[1].position.x)
            fy = 0.5 * (wheels[0].position.y + wheels[1].position.y)
            rx = 0.5 * (wheels[2].position.x + wheels[3].position.x)
            ry = 0.5 * (wheels[2].position.y + wheels[3].position.y)
            wb = math.hypot(fx - rx, fy - ry) / 100.0
            if 0.5 < wb < 20.0:
                wheelbase = wb
            ms = max(float(wheels[0].max_steer_angle), float(wheels[1].max_steer_angle))
            if 1.0 < ms < 89.0:
                max_steer = math.radians(ms)
    except (RuntimeError, AttributeError) as e:
        log.warning("no physics control for %s (%s): using the scenario's wheelbase and max steer",
                    vehicle.blueprint, one_line(e))
    return Physics(length=2.0 * bb.extent.x, width=2.0 * bb.extent.y, height=2.0 * bb.extent.z,
                   wheelbase=float(wheelbase), max_steer_angle=float(max_steer),
                   offset_x=float(bb.location.x), offset_y=float(bb.location.y),
                   ground_dz=float(bb.location.z - bb.extent.z))


def origin_of(p: Physics, x: float, y: float, yaw: float) -> tuple[float, float]:
    """The actor origin (x, y) [m] that puts the reference point on (x, y) at ``yaw``."""
    c, s = math.cos(yaw), math.sin(yaw)
    return x - (p.offset_x * c - p.offset_y * s), y - (p.offset_x * s + p.offset_y * c)


def camera_transform(carla: Any, cam: CameraConfig, p: Physics) -> Any:
    """A camera mount (relative to the reference point) as a ``carla.Transform``
    relative to the actor origin, which is where CARLA attaches sensors."""
    return carla.Transform(
        carla.Location(x=cam.x + p.offset_x, y=cam.y + p.offset_y, z=cam.z + p.ground_dz),
        carla.Rotation(pitch=float(cam.pitch_deg), yaw=float(cam.yaw_deg), roll=0.0))


def vehicle_state(actor: Any, p: Physics) -> VehicleState:
    """The ego's state in SI units at its reference point."""
    tf = actor.get_transform()
    yaw = yaw_rad(tf.rotation)
    c, s = math.cos(yaw), math.sin(yaw)
    loc = tf.location
    x = loc.x + p.offset_x * c - p.offset_y * s
    y = loc.y + p.offset_x * s + p.offset_y * c
    vel = actor.get_velocity()
    acc = actor.get_acceleration()
    ang = actor.get_angular_velocity()
    ctrl = actor.get_control()
    return VehicleState(
        x=float(x), y=float(y), z=float(loc.z + p.ground_dz), yaw=yaw,
        speed=float(vel.x * c + vel.y * s),
        steer_angle=float(ctrl.steer) * p.max_steer_angle,
        yaw_rate=math.radians(float(ang.z)),
        acceleration=float(acc.x * c + acc.y * s),
        length=p.length, width=p.width, height=p.height,
        wheelbase=p.wheelbase, max_steer_angle=p.max_steer_angle)


def actor_state(actor: Any) -> ActorState:
    """Another vehicle's state in SI units at its bounding-box centre (colour from its
    ``color`` attribute, else dark red)."""
    tf = actor.get_transform()
    bb = actor.bounding_box
    yaw = yaw_rad(tf.rotation)
    c, s = math.cos(yaw), math.sin(yaw)
    vel = actor.get_velocity()
    loc = tf.location
    color = (160, 30, 30)
    try:
        rgb = actor.attributes.get("color", "")
        if rgb:
            r, g, b = (int(v) for v in str(rgb).split(","))
            color = (r, g, b)
    except (ValueError, AttributeError):
        pass
    return ActorState(
        actor_id=int(actor.id),
        x=float(loc.x + bb.location.x * c - bb.location.y * s),
        y=float(loc.y + bb.location.x * s + bb.location.y * c),
        z=float(loc.z + bb.location.z - bb.extent.z), yaw=yaw,
        speed=float(vel.x * c + vel.y * s),
        length=2.0 * float(bb.extent.x), width=2.0 * float(bb.extent.y),
        height=2.0 * float(bb.extent.z), color=color)
