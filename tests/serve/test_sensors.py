"""GNSS, IMU, depth and semantic segmentation sensors of ``drive-il serve``, read by the
real ``carla`` 0.9.16 client; lidar refused with one clear error."""

from __future__ import annotations

import itertools
import math
import queue
from contextlib import contextmanager

import numpy as np
import pytest

from drive_il.serve import encoding as E
from drive_il.serve.sensors import ImuModel

carla = pytest.importorskip("carla")

DT = 0.05


# --------------------------------------------------------------------------- offline


def test_depth_encoding_round_trip():
    d = np.array([[0.0, 0.5, 2.6846, 123.456], [999.9, 1000.0, 5000.0, 1e-4]])
    bgra = E.depth_bgra(d)
    assert bgra.dtype == np.uint8 and bgra.shape == (2, 4, 4)
    assert (bgra[..., 3] == 255).all()
    assert np.allclose(_decode_depth(bgra), np.minimum(d, 1000.0), atol=1e-4)
    lab = E.labels_bgra(np.array([[1, 14], [11, 24]], np.uint8))
    assert lab[..., 2].tolist() == [[1, 14], [11, 24]] and not lab[..., :2].any()


def test_imu_model_turning_right():
    imu = ImuModel({})
    # heading south (yaw 90 deg), 10 m/s, turning right at 0.2 rad/s, accelerating 1 m/s^2
    acc, gyro, compass = imu.measure((0.0, 90.0, 0.0), yaw=math.pi / 2, speed=10.0,
                                     accel=1.0, yaw_rate=0.2)
    assert acc == pytest.approx([1.0, 2.0, 9.81], abs=1e-9)   # forward, centripetal right, gravity
    assert gyro == pytest.approx([0.0, 0.0, 0.2], abs=1e-12)
    assert compass == pytest.approx(math.pi)                   # south
    # north-bound: compass 0; a sensor looking left (north) on an east-bound car feels
    # the forward acceleration on its right axis (+y)
    assert ImuModel({}).measure((0.0, -90.0, 0.0), yaw=-math.pi / 2)[2] == pytest.approx(0.0)
    acc, _g, c = ImuModel({}).measure((0.0, -90.0, 0.0), yaw=0.0, accel=2.0)
    assert acc == pytest.approx([0.0, 2.0, 9.81], abs=1e-9) and c == pytest.approx(0.0)
    # noise: bias on the gyroscope, seeded
    a = ImuModel({"noise_gyro_bias_z": "0.5", "noise_accel_stddev_x": "1", "noise_seed": "3"})
    b = ImuModel({"noise_gyro_bias_z": "0.5", "noise_accel_stddev_x": "1", "noise_seed": "3"})
    ma, mb = a.measure((0.0, 0.0, 0.0)), b.measure((0.0, 0.0, 0.0))
    assert ma[1][2] == pytest.approx(0.5) and ma[0][0] == mb[0][0] != 0.0


# --------------------------------------------------------------------------- with the client


def _decode_depth(bgra: np.ndarray) -> np.ndarray:
    b = bgra.astype(np.float64)
    return (b[..., 2] + b[..., 1] * 256.0 + b[..., 0] * 65536.0) / (256.0 ** 3 - 1.0) * 1000.0


def _pixels(image) -> np.ndarray:
    return np.frombuffer(bytes(image.raw_data), np.uint8).reshape(image.height, image.width, 4)


@contextmanager
def _sync_world(server):
    client = carla.Client("127.0.0.1", server.port)
    client.set_timeout(60.0)
    world = client.get_world()
    s = world.get_settings()
    s.synchronous_mode, s.fixed_delta_seconds = True, DT
    world.apply_settings(s)
    actors: list = []
    try:
        yield world, actors
    finally:
        for a in reversed(actors):
            if a.type_id.startswith("sensor."):
                a.stop()
            a.destroy()
        s.synchronous_mode = False
        world.apply_settings(s)


def _listen(world, actors, parent, bp_id: str, tf=None, **attrs) -> queue.Queue:
    bp = world.get_blueprint_library().find(bp_id)
    for k, v in attrs.items():
        bp.set_attribute(k, str(v))
    s = world.spawn_actor(bp, tf or carla.Transform(carla.Location(x=1.5, z=2.0)), attach_to=parent)
    actors.append(s)
    q: queue.Queue = queue.Queue()
    s.listen(q.put)
    return q


def _by_frame(q: queue.Queue, frame: int, timeout: float = 10.0):
    while True:
        m = q.get(timeout=timeout)
        if m.frame >= frame:
            assert m.frame == frame, f"expected frame {frame}, got {m.frame}"
            return m


def test_blueprints_listed(server):
    lib = carla.Client("127.0.0.1", server.port).get_world().get_blueprint_library()
    for bp_id in ("sensor.camera.depth", "sensor.camera.semantic_segmentation"):
        bp = lib.find(bp_id)
        for a in ("image_size_x", "image_size_y", "fov", "sensor_tick", "role_name"):
            assert bp.has_attribute(a), (bp_id, a)
    assert lib.find("sensor.other.gnss").has_attribute("noise_lat_stddev")
    assert lib.find("sensor.other.imu").has_attribute("noise_gyro_bias_z")
    assert lib.find("sensor.lidar.ray_cast").has_attribute("channels")
    assert len(lib.filter("sensor.other.*")) >= 4


def test_gnss_and_imu_from_vehicle_state(server):
    with _sync_world(server) as (world, actors):
        sp = world.get_map().get_spawn_points()[0]
        ego = world.spawn_actor(world.get_blueprint_library().find("vehicle.tesla.model3"), sp)
        actors.append(ego)
        gnss = _listen(world, actors, ego, "sensor.other.gnss", sensor_tick=0.1)
        imu = _listen(world, actors, ego, "sensor.other.imu")
        f0 = world.tick()
        m = _by_frame(imu, f0)
        assert isinstance(m, carla.IMUMeasurement)
        assert m.accelerometer.z == pytest.approx(9.81, abs=1e-4)           # at rest: gravity
        assert abs(m.accelerometer.x) < 1e-4 and abs(m.gyroscope.z) < 1e-6
        yaw = m.transform.rotation.yaw
        assert m.compass == pytest.approx(math.radians((yaw + 90.0) % 360.0), abs=1e-4)
        g = _by_frame(gnss, f0)
        assert isinstance(g, carla.GnssMeasurement)
        ref = world.get_map().transform_to_geolocation(g.transform.location)
        assert g.latitude == pytest.approx(ref.latitude, abs=1e-8)
        assert g.longitude == pytest.approx(ref.longitude, abs=1e-8)
        assert g.altitude == pytest.approx(ref.altitude, abs=1e-3)
        # drive and turn right: the gyroscope follows the yaw rate (positive: CARLA's
        # frame is left-handed), the accelerometer feels the centripetal acceleration
        ego.apply_control(carla.VehicleControl(throttle=0.7, steer=0.4))
        frames = [world.tick() for _ in range(40)]
        m = _by_frame(imu, frames[-1])
        w = math.radians(ego.get_angular_velocity().z)
        v = ego.get_velocity().length()
        assert w > 0.05 and v > 1.0
        assert m.gyroscope.z == pytest.approx(w, rel=1e-3)
        assert m.accelerometer.y == pytest.approx(v * w, rel=0.02)
        assert m.accelerometer.z == pytest.approx(9.81, abs=1e-4)
        yaw = ego.get_transform().rotation.yaw
        assert m.compass == pytest.approx(math.radians((yaw + 90.0) % 360.0), abs=1e-3)
        # sensor_tick 0.1 s at 0.05 s per tick: every other frame
        got = []
        while True:
            try:
                got.append(gnss.get(timeout=2.0))
            except queue.Empty:
                break
        fr = [x.frame for x in got]
        assert fr and all(b - a == 2 for a, b in itertools.pairwise(fr)), fr
        assert len(fr) in (20, 21)
        last = got[-1]
        ref = world.get_map().transform_to_geolocation(last.transform.location)
        assert last.latitude == pytest.approx(ref.latitude, abs=1e-8)
        assert (last.latitude, last.longitude) != (g.latitude, g.longitude)  # it moved


def test_depth_and_semantic_cameras(server):
    with _sync_world(server) as (world, actors):
        lib = world.get_blueprint_library()
        sp = world.get_map().get_spawn_points()[0]
        ego = world.spawn_actor(lib.find("vehicle.tesla.model3"), sp)
        actors.append(ego)
        fwd = sp.get_forward_vector()
        ahead = carla.Transform(sp.location + carla.Location(x=10.0 * fwd.x, y=10.0 * fwd.y), sp.rotation)
        other = world.spawn_actor(lib.find("vehicle.tesla.model3"), ahead)
        actors.append(other)
        size = {"image_size_x": 200, "image_size_y": 150, "fov": 90}
        dq = _listen(world, actors, ego, "sensor.camera.depth", **size)
        sq = _listen(world, actors, ego, "sensor.camera.semantic_segmentation", **size)
        f = world.tick()
        depth_img, sem_img = _by_frame(dq, f), _by_frame(sq, f)
        assert (depth_img.width, depth_img.height, depth_img.fov) == (200, 150, 90.0)
        depth = _decode_depth(_pixels(depth_img))
        labels = _pixels(sem_img)[..., 2]
        f_px, cy = 100.0, 74.5
        # bottom row: the flat ground 2 m under the camera (planar depth)
        assert depth[149, 100] == pytest.approx(2.0 * f_px / (149 - cy), abs=1e-3)
        assert labels[149, 100] == 1                                         # road
        assert depth[0, 0] == pytest.approx(1000.0) and labels[0, 0] == 11   # sky
        # the car ahead: rear face at 10 - 4.69 / 2 - 1.5 m from the camera
        assert depth[100, 100] == pytest.approx(10.0 - 4.69 / 2 - 1.5, abs=0.02)
        assert labels[100, 100] == 14                                        # car
        assert {1, 11, 14, 24} <= set(np.unique(labels).tolist())         # 24: lane marks
        # the client's converters work on them
        sem_img.convert(carla.ColorConverter.CityScapesPalette)
        assert _pixels(sem_img)[100, 100, :3].tolist() == [142, 0, 0]        # car: (0, 0, 142) RGB
        raw = bytes(depth_img.raw_data)
        depth_img.convert(carla.ColorConverter.LogarithmicDepth)
        log_px = _pixels(depth_img)
        assert bytes(depth_img.raw_data) != raw
        assert log_px[0, 0, 2] == 255 and log_px[149, 100, 2] < log_px[100, 100, 2] < 255


def test_lidar_refused_with_one_clear_error(server):
    with _sync_world(server) as (world, actors):
        lib = world.get_blueprint_library()
        ego = world.spawn_actor(lib.find("vehicle.tesla.model3"), world.get_map().get_spawn_points()[0])
        actors.append(ego)
        with pytest.raises(RuntimeError, match="lidar is not modelled"):
            world.spawn_actor(lib.find("sensor.lidar.ray_cast"), carla.Transform(), attach_to=ego)
        with pytest.raises(RuntimeError, match="sensor_tick"):
            _listen(world, actors, ego, "sensor.other.imu", sensor_tick=-1)
        world.tick()  # the server still ticks
