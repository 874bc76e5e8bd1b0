"""The served world's computed sensors: GNSS, IMU, and the depth and semantic cameras' blueprints.

What CARLA 0.9.16's ``sensor.other.gnss`` and ``sensor.other.imu`` measure, computed
from the vehicle state (no physics engine here), and the blueprint definitions of the
sensors this module adds to the library (:func:`sensor_definitions`), with CARLA's
attribute names and defaults:

* **GNSS** (:class:`GnssModel`): the sensor's world location through the map's geo
  reference (the OpenDRIVE header's ``geoReference``), with the client library's own
  ``carla.Map.transform_to_geolocation`` (LibCarla's ``GeoLocation::Transform``, the
  code a CARLA server runs), plus CARLA's noise model: per axis ``bias + N(0, stddev)``
  (``noise_lat_*``, ``noise_lon_*`` [deg], ``noise_alt_*`` [m], seeded by ``noise_seed``).
* **IMU** (:class:`ImuModel`), in the sensor's frame (CARLA's: x forward, y right,
  z up): accelerometer [m/s^2] = the parent's acceleration (longitudinal ``dv/dt`` and
  centripetal ``v * yaw_rate``; the sensor's offset from the reference point is
  ignored) plus gravity, +9.81 on z at rest, as CARLA's ``ComputeAccelerometer``;
  gyroscope [rad/s] = the parent's yaw rate about z (positive turning right: CARLA's
  frame is left-handed), CARLA's noise ``bias + N(0, stddev)``; compass [rad] = the
  heading from north (-y), in [0, 2 pi): ``(yaw + pi / 2) mod 2 pi`` for a level
  sensor, as CARLA's ``ComputeCompass``. A free IMU (no parent) measures gravity only.
* ``sensor.camera.depth`` and ``sensor.camera.semantic_segmentation`` are rendered by
  :meth:`drive_il.sim.embedded.camera.Camera.render_depth_labels` and encoded by
  :func:`~drive_il.serve.encoding.depth_bgra` / :func:`~drive_il.serve.encoding.labels_bgra`.
* ``sensor.lidar.ray_cast`` is listed but not modelled: spawning it fails with
  :data:`LIDAR_REFUSED`. So are the other sensors of CARLA 0.9.16 that its
  ``manual_control.py`` looks up (:data:`UNMODELLED_SENSORS`: instance segmentation,
  optical flow, normals, DVS and Cosmos cameras, radar): spawning one fails with
  :func:`unmodelled_refusal`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import encoding as E

__all__ = ["DEPTH_CAMERA_ID", "GNSS_ID", "GRAVITY", "IMU_ID", "LIDAR_ID", "LIDAR_REFUSED",
           "SEMANTIC_CAMERA_ID", "UNMODELLED_SENSORS", "GnssModel", "ImuModel", "rotation_matrix",
           "sensor_definitions", "unmodelled_refusal"]

GNSS_ID = "sensor.other.gnss"
IMU_ID = "sensor.other.imu"
DEPTH_CAMERA_ID = "sensor.camera.depth"
SEMANTIC_CAMERA_ID = "sensor.camera.semantic_segmentation"
LIDAR_ID = "sensor.lidar.ray_cast"
#: [m/s^2] CARLA's gravity constant of the IMU.
GRAVITY = 9.81
#: The error a client sees on spawning a lidar.
LIDAR_REFUSED = ("sensor.lidar.ray_cast: lidar is not modelled by the drive-il embedded server "
                 "(the blueprint is listed, spawning it is refused; see docs/carla.md)")
#: CARLA 0.9.16 sensors listed (with their attributes, so that scripts which look them up
#: and set them run) but not modelled: spawning one is refused (:func:`unmodelled_refusal`).
UNMODELLED_SENSORS = ("sensor.camera.instance_segmentation", "sensor.camera.optical_flow",
                      "sensor.camera.normals", "sensor.camera.dvs",
                      "sensor.camera.cosmos_visualization", "sensor.other.radar")


def unmodelled_refusal(bp_id: str) -> str:
    """The error a client sees on spawning a listed but unmodelled sensor."""
    return (f"{bp_id}: this sensor is not modelled by the drive-il embedded server "
            "(the blueprint is listed, spawning it is refused; see docs/carla.md)")


_GNSS_NOISE = ("noise_alt_bias", "noise_alt_stddev", "noise_lat_bias", "noise_lat_stddev",
               "noise_lon_bias", "noise_lon_stddev")
_IMU_NOISE = tuple(f"noise_{k}_{a}" for k in ("accel_stddev", "gyro_bias", "gyro_stddev")
                   for a in "xyz")
_LENS = (("lens_circle_falloff", "5.0"), ("lens_circle_multiplier", "0.0"), ("lens_k", "-1.0"),
         ("lens_kcube", "0.0"), ("lens_x_size", "0.08"), ("lens_y_size", "0.08"))
_LIDAR_FLOAT = (("range", "10.0"), ("rotation_frequency", "10.0"), ("upper_fov", "10.0"),
                ("lower_fov", "-30.0"), ("horizontal_fov", "360.0"),
                ("atmosphere_attenuation_rate", "0.004"), ("dropoff_general_rate", "0.45"),
                ("dropoff_intensity_limit", "0.8"), ("dropoff_zero_intensity", "0.4"),
                ("noise_stddev", "0.0"), ("sensor_tick", "0.0"))
_RADAR_FLOAT = (("horizontal_fov", "30.0"), ("vertical_fov", "30.0"), ("range", "100.0"),
                ("sensor_tick", "0.0"))


def sensor_definitions(first_uid: int, skip: Sequence[str] = ()) -> list:
    """``ActorDefinition`` lists of the GNSS, IMU, depth, semantic segmentation,
    lidar and :data:`UNMODELLED_SENSORS` blueprints (uids from ``first_uid``; ids in ``skip`` left out)."""
    A = E.attribute_definition
    defs = []

    def add(bp_id: str, attrs: list) -> None:
        if bp_id in skip:
            return
        defs.append(E.actor_definition(first_uid + len(defs), bp_id, bp_id.replace(".", ","), attrs))

    role = A("role_name", E.ATTR_STRING, "front")
    tick = A("sensor_tick", E.ATTR_FLOAT, "0.0")
    seed = A("noise_seed", E.ATTR_INT, "0")
    add(GNSS_ID, [role, tick, seed] + [A(k, E.ATTR_FLOAT, "0.0") for k in _GNSS_NOISE])
    add(IMU_ID, [role, tick, seed] + [A(k, E.ATTR_FLOAT, "0.0") for k in _IMU_NOISE])
    cam = [role, A("image_size_x", E.ATTR_INT, "800"), A("image_size_y", E.ATTR_INT, "600"),
           A("fov", E.ATTR_FLOAT, "90.0"), tick] + [A(k, E.ATTR_FLOAT, v) for k, v in _LENS]
    add(DEPTH_CAMERA_ID, cam)
    add(SEMANTIC_CAMERA_ID, cam)
    add(LIDAR_ID, [role, A("channels", E.ATTR_INT, "32"),
                   A("points_per_second", E.ATTR_INT, "56000"), seed]
        + [A(k, E.ATTR_FLOAT, v) for k, v in _LIDAR_FLOAT])
    for bp_id in UNMODELLED_SENSORS:
        if bp_id == "sensor.other.radar":
            add(bp_id, [role, A("points_per_second", E.ATTR_INT, "1500"), seed]
                + [A(k, E.ATTR_FLOAT, v) for k, v in _RADAR_FLOAT])
        else:
            add(bp_id, cam)
    return defs


def _attr(attrs: dict[str, str], key: str) -> float:
    """A float attribute (0 when absent).

    Raises:
        ValueError: not a finite number.
    """
    try:
        v = float(attrs.get(key, "0") or 0.0)
    except ValueError:
        raise ValueError(f"attribute {key}={attrs.get(key)!r} is not a number") from None
    if not math.isfinite(v):
        raise ValueError(f"attribute {key}={attrs.get(key)!r} is not finite")
    return v


def _rng(attrs: dict[str, str]) -> np.random.Generator:
    try:
        seed = int(float(attrs.get("noise_seed", "0") or 0))
    except ValueError:
        raise ValueError(f"attribute noise_seed={attrs.get('noise_seed')!r} is not an integer") from None
    return np.random.default_rng(abs(seed))


def rotation_matrix(pitch_deg: float, yaw_deg: float, roll_deg: float) -> np.ndarray:
    """3x3 rotation of a CARLA ``Rotation`` (columns: the rotated x forward, y right,
    z up axes in the world frame), as ``carla.Transform.get_matrix``."""
    cp, sp = math.cos(math.radians(pitch_deg)), math.sin(math.radians(pitch_deg))
    cy, sy = math.cos(math.radians(yaw_deg)), math.sin(math.radians(yaw_deg))
    cr, sr = math.cos(math.radians(roll_deg)), math.sin(math.radians(roll_deg))
    return np.array([[cp * cy, cy * sp * sr - sy * cr, -cy * sp * cr - sy * sr],
                     [cp * sy, sy * sp * sr + cy * cr, -sy * sp * cr + cy * sr],
                     [sp, -cp * sr, cp * cr]])


class GnssModel:
    """A ``sensor.other.gnss``: geolocation of the sensor with CARLA's noise.

    Args:
        attrs: the blueprint attributes (noise, ``noise_seed``).

    Raises:
        ValueError: a noise attribute that is not a finite number.
    """

    def __init__(self, attrs: dict[str, str]) -> None:
        self.noise = {k: _attr(attrs, k) for k in _GNSS_NOISE}
        self.rng = _rng(attrs)

    def measure(self, carla_map: Any, x: float, y: float, z: float) -> tuple[float, float, float]:
        """(latitude [deg], longitude [deg], altitude [m]) at world location (x, y, z)."""
        import carla
        g = carla_map.transform_to_geolocation(carla.Location(float(x), float(y), float(z)))
        n = self.noise
        lat = g.latitude + n["noise_lat_bias"] + self._normal(n["noise_lat_stddev"])
        lon = g.longitude + n["noise_lon_bias"] + self._normal(n["noise_lon_stddev"])
        alt = g.altitude + n["noise_alt_bias"] + self._normal(n["noise_alt_stddev"])
        return lat, lon, alt

    def _normal(self, sd: float) -> float:
        return float(self.rng.normal(0.0, sd)) if sd > 0.0 else 0.0


class ImuModel:
    """A ``sensor.other.imu``: accelerometer, gyroscope and compass with CARLA's noise.

    Args:
        attrs: the blueprint attributes (noise, ``noise_seed``).

    Raises:
        ValueError: a noise attribute that is not a finite number.
    """

    def __init__(self, attrs: dict[str, str]) -> None:
        v = {k: _attr(attrs, k) for k in _IMU_NOISE}
        self.accel_sd = np.array([v[f"noise_accel_stddev_{a}"] for a in "xyz"])
        self.gyro_bias = np.array([v[f"noise_gyro_bias_{a}"] for a in "xyz"])
        self.gyro_sd = np.array([v[f"noise_gyro_stddev_{a}"] for a in "xyz"])
        self.rng = _rng(attrs)

    def measure(self, rotation: tuple[float, float, float], *, yaw: float = 0.0,
                speed: float = 0.0, accel: float = 0.0,
                yaw_rate: float = 0.0) -> tuple[np.ndarray, np.ndarray, float]:
        """(accelerometer [m/s^2], gyroscope [rad/s], compass [rad]) of a sensor with
        world rotation ``rotation`` (pitch, yaw, roll) [deg] on a vehicle with heading
        ``yaw`` [rad], speed [m/s], longitudinal acceleration [m/s^2] and yaw rate
        [rad/s] (all 0 for a free sensor)."""
        c, s = math.cos(yaw), math.sin(yaw)
        lat = speed * yaw_rate  # centripetal, to the right (+y) for a right turn
        acc_w = np.array([accel * c - lat * s, accel * s + lat * c, GRAVITY])
        R = rotation_matrix(*rotation)
        acc = R.T @ acc_w
        gyro = R.T @ np.array([0.0, 0.0, yaw_rate])
        if self.accel_sd.any():
            acc = acc + self.rng.normal(0.0, 1.0, 3) * self.accel_sd
        gyro = gyro + self.gyro_bias
        if self.gyro_sd.any():
            gyro = gyro + self.rng.normal(0.0, 1.0, 3) * self.gyro_sd
        fx, fy = R[0, 0], R[1, 0]  # the sensor's forward axis, projected on the ground
        if math.hypot(fx, fy) < 1e-9:
            compass = 0.0
        else:
            compass = (math.atan2(fy, fx) + 0.5 * math.pi) % (2.0 * math.pi)
        return acc, gyro, compass
