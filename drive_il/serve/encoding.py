"""CARLA 0.9.16 wire types <-> msgpack layouts and packed stream records.

The layouts are those the pip ``carla==0.9.16`` client library sends and expects
(``../shared/docs/CARLA_WIRE_0.9.16.md``; re-derived from the wheel's debug information
with ``gdb -batch -ex "ptype /o 'carla::rpc::EpisodeSettings'" libcarla...so``):

* RPC results are wrapped: ``Response<T>`` success ``[[1, value]]``, error
  ``[[0, [message]]]``; ``Response<void>`` success ``[[False]]``, error
  ``[[True, [message]]]``.
* Structs are msgpack arrays in field order; optionals ``[False]`` / ``[True, v]``;
  variants ``[index, value]``; enums ints; byte vectors msgpack ``bin``.
* Stream records (world snapshots, sensor data) are little-endian packed C structs:
  a 48-byte sensor header ``<QQd6f`` (sensor type, frame, timestamp, sensor world
  transform), then the type's payload.

Units at this boundary are CARLA's: metres, degrees, km/h for speed limits.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

__all__ = [
    "ACTOR_STATE",
    "LIGHT_STATE",
    "WALKER_STATE",
    "ATTR_BOOL",
    "ATTR_FLOAT",
    "ATTR_INT",
    "ATTR_RGB",
    "ATTR_STRING",
    "CMD_AUTOPILOT",
    "CMD_DESTROY",
    "CMD_ENABLE_GRAVITY",
    "CMD_LIGHT_STATE",
    "CMD_LOCATION",
    "CMD_SIMULATE_PHYSICS",
    "CMD_SPAWN",
    "CMD_TARGET_VELOCITY",
    "CMD_TRANSFORM",
    "CMD_TRAFFIC_LIGHT_STATE",
    "CMD_VEHICLE_CONTROL",
    "CMD_WALKER_CONTROL",
    "CMD_WALKER_STATE",
    "COLLISION_SENSOR",
    "COMMAND_NAMES",
    "DEPTH_CAMERA",
    "DEPTH_RANGE",
    "EPISODE_HEADER",
    "GNSS_SENSOR",
    "IMU_SENSOR",
    "LANE_INVASION_SENSOR",
    "RGB_CAMERA",
    "SEMANTIC_CAMERA",
    "SENSOR_HEADER",
    "WEATHER_FIELDS",
    "WORLD_OBSERVER",
    "EpisodeSettings",
    "actor_definition",
    "actor_record",
    "attribute_definition",
    "bounding_box",
    "depth_bgra",
    "err",
    "err_void",
    "gnss_payload",
    "imu_payload",
    "labels_bgra",
    "location",
    "ok",
    "ok_void",
    "pack_actor_state",
    "pack_image_header",
    "pack_sensor_header",
    "parse_description",
    "parse_token",
    "token_bytes",
    "transform",
    "vehicle_control",
    "weather_from_list",
    "weather_to_list",
]

# --------------------------------------------------------------------------- responses


def ok(value: Any) -> list:
    """``Response<T>`` success."""
    return [[1, value]]


def err(message: str) -> list:
    """``Response<T>`` error (the client raises ``RuntimeError(message)``)."""
    return [[0, [str(message)]]]


def ok_void() -> list:
    """``Response<void>`` success."""
    return [[False]]


def err_void(message: str) -> list:
    """``Response<void>`` error."""
    return [[True, [str(message)]]]


# --------------------------------------------------------------------------- tokens
_TOKEN = struct.Struct("<IHBB16s")


def token_bytes(stream_id: int, port: int, host: str = "127.0.0.1") -> bytes:
    """24-byte stream token: ``u32 stream_id, u16 port, u8 protocol (1 tcp),
    u8 address type (1 ipv4), 16 address bytes`` (IPv4 in network order, zero padded).
    """
    addr = socket.inet_aton(host) + bytes(12)
    return _TOKEN.pack(int(stream_id) & 0xFFFFFFFF, int(port), 1, 1, addr)


def parse_token(data: bytes) -> tuple[int, int, str]:
    """(stream id, port, ipv4 address) of a 24-byte token."""
    sid, port, _proto, _atype, addr = _TOKEN.unpack(bytes(data))
    return sid, port, socket.inet_ntoa(addr[:4])


# --------------------------------------------------------------------------- settings


@dataclass
class EpisodeSettings:
    """``carla.WorldSettings`` (``carla::rpc::EpisodeSettings``, 11 fields on the wire)."""

    synchronous_mode: bool = False
    no_rendering_mode: bool = False
    fixed_delta_seconds: float | None = None
    substepping: bool = True
    max_substep_delta_time: float = 0.01
    max_substeps: int = 10
    max_culling_distance: float = 0.0
    deterministic_ragdolls: bool = True
    tile_stream_distance: float = 3000.0
    actor_active_distance: float = 2000.0
    spectator_as_ego: bool = True

    def to_msgpack(self) -> list:
        fd = self.fixed_delta_seconds
        return [bool(self.synchronous_mode), bool(self.no_rendering_mode),
                [False] if fd is None else [True, float(fd)], bool(self.substepping),
                float(self.max_substep_delta_time), int(self.max_substeps),
                float(self.max_culling_distance), bool(self.deterministic_ragdolls),
                float(self.tile_stream_distance), float(self.actor_active_distance),
                bool(self.spectator_as_ego)]

    @classmethod
    def from_msgpack(cls, v: Sequence[Any]) -> EpisodeSettings:
        """Raises:
            ValueError: not an 11-field settings array.
        """
        if not isinstance(v, (list, tuple)) or len(v) < 11:
            raise ValueError(f"EpisodeSettings: expected 11 fields, got {v!r}")
        fd = v[2]
        fixed = float(fd[1]) if isinstance(fd, (list, tuple)) and fd and fd[0] else None
        return cls(synchronous_mode=bool(v[0]), no_rendering_mode=bool(v[1]),
                   fixed_delta_seconds=fixed, substepping=bool(v[3]),
                   max_substep_delta_time=float(v[4]), max_substeps=int(v[5]),
                   max_culling_distance=float(v[6]), deterministic_ragdolls=bool(v[7]),
                   tile_stream_distance=float(v[8]), actor_active_distance=float(v[9]),
                   spectator_as_ego=bool(v[10]))


#: ``carla.WeatherParameters`` fields in the client's (wire) order.
WEATHER_FIELDS = ("cloudiness", "precipitation", "precipitation_deposits", "wind_intensity",
                  "sun_azimuth_angle", "sun_altitude_angle", "fog_density", "fog_distance",
                  "fog_falloff", "wetness", "scattering_intensity", "mie_scattering_scale",
                  "rayleigh_scattering_scale", "dust_storm")


def weather_to_list(w: dict[str, float]) -> list[float]:
    return [float(w.get(k, 0.0)) for k in WEATHER_FIELDS]


def weather_from_list(v: Sequence[Any]) -> dict[str, float]:
    """Raises:
        ValueError: not 14 numbers.
    """
    if not isinstance(v, (list, tuple)) or len(v) < len(WEATHER_FIELDS):
        raise ValueError(f"WeatherParameters: expected {len(WEATHER_FIELDS)} floats, got {v!r}")
    return {k: float(x) for k, x in zip(WEATHER_FIELDS, v)}


def vehicle_control(v: Sequence[Any]) -> tuple[float, float, float, bool, bool, bool, int]:
    """``[throttle, steer, brake, hand_brake, reverse, manual_gear_shift, gear]``, clamped
    to CARLA's ranges (throttle, brake in [0, 1]; steer in [-1, 1])."""
    t, s, b = float(v[0]), float(v[1]), float(v[2])
    return (min(max(t, 0.0), 1.0), min(max(s, -1.0), 1.0), min(max(b, 0.0), 1.0),
            bool(v[3]), bool(v[4]), bool(v[5]), int(v[6]))


# --------------------------------------------------------------------------- geometry


def location(x: float, y: float, z: float) -> list[float]:
    return [float(x), float(y), float(z)]


def transform(x: float, y: float, z: float, pitch: float = 0.0, yaw: float = 0.0,
              roll: float = 0.0) -> list:
    """``[location, rotation]``, rotation ``[pitch, yaw, roll]`` in degrees."""
    return [[float(x), float(y), float(z)], [float(pitch), float(yaw), float(roll)]]


def bounding_box(cx: float, cy: float, cz: float, ex: float, ey: float, ez: float,
                 actor_id: int = 0) -> list:
    """``[location, extent, rotation, actor_id]`` relative to the actor."""
    return [[float(cx), float(cy), float(cz)], [float(ex), float(ey), float(ez)],
            [0.0, 0.0, 0.0], int(actor_id)]


# --------------------------------------------------------------------------- blueprints
ATTR_BOOL, ATTR_INT, ATTR_FLOAT, ATTR_STRING, ATTR_RGB = 1, 2, 3, 4, 5


def attribute_definition(name: str, type_: int, value: str, recommended: Sequence[str] = (),
                         modifiable: bool = True, restrict: bool = False) -> list:
    """``[id, type, value, [recommended], is_modifiable, restrict_to_recommended]``."""
    return [name, int(type_), str(value), [str(r) for r in recommended], bool(modifiable),
            bool(restrict)]


def actor_definition(uid: int, bp_id: str, tags: str, attributes: Sequence[list]) -> list:
    """``[uid, id, "tag,tag", [attributes]]``."""
    return [int(uid), bp_id, tags, list(attributes)]


def parse_description(v: Sequence[Any]) -> tuple[int, str, dict[str, tuple[int, str]]]:
    """``[uid, id, [[attr id, type, value], ...]]`` -> (uid, blueprint id,
    {attr: (type, value)}).

    Raises:
        ValueError: malformed description.
    """
    if not isinstance(v, (list, tuple)) or len(v) < 3:
        raise ValueError(f"ActorDescription: expected [uid, id, attributes], got {v!r}")
    attrs = {}
    for a in v[2] or ():
        attrs[str(a[0])] = (int(a[1]), a[2].decode() if isinstance(a[2], bytes) else str(a[2]))
    return int(v[0]), str(v[1]), attrs


def actor_record(actor_id: int, parent_id: int, description: list, bbox: list,
                 semantic_tags: bytes = b"", stream_token: bytes = b"") -> list:
    """``carla::rpc::Actor``: ``[id, parent_id, description, bounding_box,
    semantic_tags bin, stream_token bin]``; ``description`` is ``[uid, id, [[id, type,
    value]...]]``."""
    return [int(actor_id), int(parent_id), description, bbox, bytes(semantic_tags),
            bytes(stream_token)]


# --------------------------------------------------------------------------- commands
CMD_SPAWN = 0
CMD_DESTROY = 1
CMD_VEHICLE_CONTROL = 2
CMD_WALKER_CONTROL = 4
CMD_TRANSFORM = 6
CMD_WALKER_STATE = 7
CMD_TARGET_VELOCITY = 8
CMD_SIMULATE_PHYSICS = 14
CMD_ENABLE_GRAVITY = 15
CMD_AUTOPILOT = 16
CMD_LIGHT_STATE = 18
CMD_LOCATION = 19
CMD_TRAFFIC_LIGHT_STATE = 21
#: ``carla::rpc::Command`` variant alternatives, in order (index = wire tag).
COMMAND_NAMES = (
    "SpawnActor", "DestroyActor", "ApplyVehicleControl", "ApplyVehicleAckermannControl",
    "ApplyWalkerControl", "ApplyVehiclePhysicsControl", "ApplyTransform", "ApplyWalkerState",
    "ApplyTargetVelocity", "ApplyTargetAngularVelocity", "ApplyImpulse", "ApplyForce",
    "ApplyAngularImpulse", "ApplyTorque", "SetSimulatePhysics", "SetEnableGravity",
    "SetAutopilot", "ShowDebugTelemetry", "SetVehicleLightState", "ApplyLocation",
    "ConsoleCommand", "SetTrafficLightState",
)

# --------------------------------------------------------------------------- streams
#: Sensor registry indices of the 0.9.16 client (the header's sensor type).
COLLISION_SENSOR = 0
DEPTH_CAMERA = 1
GNSS_SENSOR = 4
IMU_SENSOR = 5
LANE_INVASION_SENSOR = 6
RGB_CAMERA = 13
SEMANTIC_CAMERA = 14
WORLD_OBSERVER = 17

#: Sensor header: sensor type, frame, timestamp [s], sensor transform (x, y, z, pitch,
#: yaw, roll) -- 48 bytes.
SENSOR_HEADER = struct.Struct("<QQd6f")
#: World snapshot episode header: episode id, platform timestamp [s], delta seconds,
#: map origin (3 x i32), simulation state flags -- 36 bytes.
EPISODE_HEADER = struct.Struct("<Qdf3iI")
#: One ActorDynamicState (119 bytes): id, actor_state, transform (6 f), velocity,
#: angular velocity, acceleration (3 f each), then the 54-byte vehicle union: control
#: (throttle, steer, brake, hand_brake, reverse, manual_gear_shift, gear), speed_limit
#: [km/h], traffic_light_state, has_traffic_light, traffic_light_id, failure_state,
#: 24 padding bytes.
ACTOR_STATE = struct.Struct("<IB6f3f3f3f3f???ifB?IB24x")
#: RGB image header after the sensor header: width, height, fov [deg].
IMAGE_HEADER = struct.Struct("<IIf")

#: A walker's ActorDynamicState: the common part, then the union as
#: ``PackedWalkerControl`` (direction xyz, speed [m/s], jump), padded to 54 bytes.
WALKER_STATE = struct.Struct("<IB6f3f3f3f3ff?37x")
#: A traffic light's ActorDynamicState: the common part, then the union as
#: ``TrafficLightData``: sign_id char[32], green, yellow, red, elapsed time [s],
#: pole_index u32, time_is_frozen, state (carla.TrafficLightState number).
LIGHT_STATE = struct.Struct("<IB6f3f3f3f32s4fI?B")

assert SENSOR_HEADER.size == 48 and EPISODE_HEADER.size == 36 and ACTOR_STATE.size == 119
assert WALKER_STATE.size == 119 and LIGHT_STATE.size == 119


def pack_sensor_header(sensor_type: int, frame: int, timestamp: float,
                       tf: Sequence[float]) -> bytes:
    return SENSOR_HEADER.pack(sensor_type, frame, timestamp, *tf)


def pack_image_header(width: int, height: int, fov_deg: float) -> bytes:
    return IMAGE_HEADER.pack(int(width), int(height), float(fov_deg))


# --------------------------------------------------------------------------- measurements
#: [m] the depth that CARLA's 24-bit depth encoding maps to its largest code.
DEPTH_RANGE = 1000.0
_DEPTH_CODES = 256 ** 3 - 1


def gnss_payload(latitude: float, longitude: float, altitude: float) -> bytes:
    """``carla::geom::GeoLocation`` as the GNSS serializer packs it: msgpack
    ``[latitude, longitude, altitude]`` (doubles, degrees and metres)."""
    import msgpack
    return msgpack.packb([float(latitude), float(longitude), float(altitude)])


def imu_payload(accelerometer: Sequence[float], gyroscope: Sequence[float],
                compass: float) -> bytes:
    """The IMU serializer's data: msgpack ``[[ax, ay, az], [gx, gy, gz], compass]``
    (``Vector3D``s of floats [m/s^2], [rad/s]; compass a float [rad])."""
    import msgpack
    return msgpack.packb([[float(v) for v in accelerometer], [float(v) for v in gyroscope],
                          float(compass)], use_single_float=True)


def depth_bgra(depth: Any) -> Any:
    """(H, W) depth [m] -> (H, W, 4) uint8 BGRA in CARLA's depth encoding: the
    normalised depth ``d / 1000`` as a 24-bit code ``R + G * 256 + B * 65536``
    (``depth = (R + G*256 + B*65536) / (256^3 - 1) * 1000``), alpha 255."""
    import numpy as np
    d = np.clip(np.asarray(depth, dtype=np.float64), 0.0, DEPTH_RANGE)
    code = np.rint(d * (_DEPTH_CODES / DEPTH_RANGE)).astype(np.uint32)
    out = np.empty(d.shape + (4,), np.uint8)
    out[..., 2] = code & 0xFF           # R
    out[..., 1] = (code >> 8) & 0xFF    # G
    out[..., 0] = (code >> 16) & 0xFF   # B
    out[..., 3] = 255
    return out


def labels_bgra(labels: Any) -> Any:
    """(H, W) uint8 semantic tags -> (H, W, 4) uint8 BGRA with the tag in R (G = B =
    0, alpha 255), as CARLA's ``sensor.camera.semantic_segmentation`` sends it."""
    import numpy as np
    lab = np.asarray(labels, dtype=np.uint8)
    out = np.zeros(lab.shape + (4,), np.uint8)
    out[..., 2] = lab
    out[..., 3] = 255
    return out


_TL_UNKNOWN = 4  # carla.TrafficLightState.Unknown


def pack_actor_state(actor_id: int, tf: Sequence[float], vel: Sequence[float],
                     ang: Sequence[float], acc: Sequence[float],
                     control: Sequence[Any] | None = None, speed_limit: float = 0.0) -> bytes:
    """One ActorDynamicState; ``control`` (vehicles) = (throttle, steer, brake,
    hand_brake, reverse, manual_gear_shift, gear)."""
    if control is None:
        control = (0.0, 0.0, 0.0, False, False, False, 0)
    return ACTOR_STATE.pack(actor_id, 1, *tf, *vel, *ang, *acc, *control, speed_limit,
                            _TL_UNKNOWN, False, 0, 0)


def _check_fields() -> None:  # pragma: no cover - import-time sanity
    assert len(fields(EpisodeSettings)) == 11


_check_fields()
