"""``drive-il bench serve``: ticks/s through the CARLA protocol (``drive-il serve``).

The real ``carla`` 0.9.16 client in this process drives ``drive-il serve`` in a child
process: synchronous mode with a fixed ``dt`` of 0.05 s, one vehicle with constant
throttle, and one ``sensor.camera.rgb`` (200x88 by default) whose images are read
through ``camera.listen`` into a queue. One timed tick is ``world.tick()`` (RPC
``tick_cue``: the server steps, renders and pushes the world snapshot and the image)
plus waiting for that frame's image. Configurations:

* ``protocol, no camera``: ticks only (snapshot stream, no sensor);
* ``protocol, 1 camera HxW``: ticks and images.

The baseline, measured in the same run: the in-process embedded world
(:class:`~drive_il.sim.embedded.world.EmbeddedSimulator`) stepping with the same
camera. The ratio is protocol ticks/s over embedded steps/s (1.0: the protocol costs
nothing). Target (issue 9): >= 500 ticks/s with one 200x88 camera.

Timing: chunks of 50 ticks, the median chunk gives the rate.
"""

from __future__ import annotations

import argparse
import queue
import time
from pathlib import Path

NAME = "serve"
HELP = "ticks/s through the CARLA protocol (drive-il serve + carla client) vs the in-process world"

_CHUNK = 50


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--town", default="circuit", help="town (default circuit)")
    p.add_argument("--maps-dir", type=Path, default=None, help="folder of OpenDRIVE towns")
    p.add_argument("--ticks", type=int, default=1000, help="timed ticks per configuration (default 1000)")
    p.add_argument("--width", type=int, default=200, help="camera width [px] (default 200)")
    p.add_argument("--height", type=int, default=88, help="camera height [px] (default 88)")
    p.add_argument("--timeout", type=float, default=10.0, help="client time-out [s] (default 10)")
    p.add_argument("--server-log", type=Path, default=None, help="file for the server's log")


def _median_rate(fn, n: int) -> float:
    import numpy as np
    chunks = []
    done = 0
    while done < n:
        k = min(_CHUNK, n - done)
        t0 = time.perf_counter()
        for _ in range(k):
            fn()
        chunks.append((time.perf_counter() - t0) / k)
        done += k
    return 1.0 / float(np.median(chunks))


def _embedded_rate(args, ticks: int) -> float:
    from ..scenario import CameraConfig, Scenario
    from ..sim.embedded.world import EmbeddedSimulator
    from ..types import Control
    cam = CameraConfig(name="center", width=args.width, height=args.height, fov_deg=90.0,
                       x=1.5, z=2.0, pitch_deg=0.0)
    sc = Scenario(name="bench-serve", town=args.town, cameras=(cam,), route_length=400.0)
    sim = EmbeddedSimulator(maps_dir=args.maps_dir, render=True)
    sim.reset(sc, 0)
    c = Control(throttle=0.3)
    for _ in range(5):
        sim.step(c)
    rate = _median_rate(lambda: sim.step(c), ticks)
    sim.close()
    return rate


def _protocol_rates(args, ticks: int) -> tuple[float, float]:
    import carla

    from ..errors import SimulatorConnectionError
    from ..serve.process import ServerProcess

    with ServerProcess(town=args.town, maps_dir=args.maps_dir, log_file=args.server_log,
                       log_level="INFO" if args.server_log else "WARNING") as srv:
        client = carla.Client("127.0.0.1", srv.port)
        client.set_timeout(args.timeout)
        world = client.get_world()
        original = world.get_settings()
        s = world.get_settings()
        s.synchronous_mode = True
        s.fixed_delta_seconds = 0.05
        world.apply_settings(s)
        lib = world.get_blueprint_library()
        ego = world.spawn_actor(lib.find("vehicle.tesla.model3"), world.get_map().get_spawn_points()[0])
        ego.apply_control(carla.VehicleControl(throttle=0.3))
        for _ in range(5):
            world.tick()
        no_cam = _median_rate(world.tick, ticks)
        bp = lib.find("sensor.camera.rgb")
        bp.set_attribute("image_size_x", str(args.width))
        bp.set_attribute("image_size_y", str(args.height))
        bp.set_attribute("fov", "90")
        cam = world.spawn_actor(bp, carla.Transform(carla.Location(x=1.5, z=2.0)), attach_to=ego)
        q: queue.Queue = queue.Queue()
        cam.listen(q.put)
        timeout = args.timeout

        def one() -> None:
            f = world.tick()
            while True:
                img = q.get(timeout=timeout)
                if img.frame >= f:
                    if img.frame != f:
                        raise SimulatorConnectionError(f"image of frame {img.frame} after tick {f}")
                    return

        for _ in range(10):
            world.tick()
        try:
            while True:
                q.get_nowait()
        except queue.Empty:
            pass
        with_cam = _median_rate(one, ticks)
        cam.stop()
        client.apply_batch_sync([carla.command.DestroyActor(cam.id), carla.command.DestroyActor(ego.id)])
        world.apply_settings(original)
    return no_cam, with_cam


def run(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    if args.ticks < _CHUNK:
        raise ConfigError(f"--ticks: at least {_CHUNK}, got {args.ticks}")
    import cv2
    cv2.setNumThreads(1)
    ticks = int(args.ticks)
    size = f"{args.height}x{args.width}"
    print(f"serve bench: town {args.town}, {ticks} ticks per configuration, dt 0.05 s, "
          f"camera {args.width}x{args.height} (carla client in this process, drive-il serve in a child)")
    emb = _embedded_rate(args, ticks)
    no_cam, with_cam = _protocol_rates(args, ticks)
    print(f"{'embedded in-process, 1 camera ' + size:>38}: {emb:8.0f} steps/s ({1e6 / emb:7.1f} us/step)")
    print(f"{'protocol, no camera':>38}: {no_cam:8.0f} ticks/s ({1e6 / no_cam:7.1f} us/tick)")
    print(f"{'protocol, 1 camera ' + size:>38}: {with_cam:8.0f} ticks/s ({1e6 / with_cam:7.1f} us/tick); "
          f"ratio {with_cam / emb:4.2f} to the in-process world; target >= 500 ticks/s "
          f"{'met' if with_cam >= 500 else 'NOT met'}")
    return 0
