"""A plain CARLA 0.9.16 client script (no drive_il imports), run against ``drive-il serve``.

Connect, synchronous mode (fixed dt 0.05 s), an ego vehicle with an RGB camera (200x88),
a collision sensor and a lane-invasion sensor, a parked vehicle 14 m ahead for the ego
to run into, Traffic Manager traffic (autopilot through the client's own Traffic
Manager on ``--tm-port``), N ticks reading every image through ``camera.listen``, then
clean-up (``apply_batch`` DestroyActor, Traffic Manager and world back to asynchronous).
Prints one JSON line with what it saw.

``--hang-after K``: after K ticks, print ``HANGING`` and sleep (the test kills it there,
in the middle of an episode).
"""

import argparse
import json
import math
import queue
import sys
import time

import carla


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("port", type=int)
    p.add_argument("--tm-port", type=int, required=True)
    p.add_argument("--ticks", type=int, default=200)
    p.add_argument("--npcs", type=int, default=3)
    p.add_argument("--hang-after", type=int, default=-1)
    p.add_argument("--spawn-index", type=int, default=0)
    p.add_argument("--timeout", type=float, default=10.0)
    a = p.parse_args()

    client = carla.Client("127.0.0.1", a.port)
    client.set_timeout(a.timeout)
    out = {"version": client.get_server_version()}
    world = client.get_world()
    original = world.get_settings()
    settings = world.get_settings()
    settings.synchronous_mode = True
    settings.fixed_delta_seconds = 0.05
    world.apply_settings(settings)
    world.set_weather(carla.WeatherParameters.ClearNoon)
    cmap = world.get_map()
    out["map"] = cmap.name
    spawns = cmap.get_spawn_points()
    lib = world.get_blueprint_library()

    ego = parked = None
    for k in range(len(spawns)):  # free spawn points (another client's actors may be there)
        start = spawns[(a.spawn_index + 7 * k) % len(spawns)]
        fwd = start.get_forward_vector()
        parked_tf = carla.Transform(start.location + carla.Location(x=14.0 * fwd.x, y=14.0 * fwd.y),
                                    start.rotation)
        ego = world.try_spawn_actor(lib.find("vehicle.tesla.model3"), start)
        if ego is None:
            continue
        parked = world.try_spawn_actor(lib.find("vehicle.audi.a2"), parked_tf)
        if parked is not None:
            break
        client.apply_batch_sync([carla.command.DestroyActor(ego.id)], False)
    assert ego is not None and parked is not None, "no free spawn point"
    cam_bp = lib.find("sensor.camera.rgb")
    cam_bp.set_attribute("image_size_x", "200")
    cam_bp.set_attribute("image_size_y", "88")
    cam_bp.set_attribute("fov", "90")
    camera = world.spawn_actor(cam_bp, carla.Transform(carla.Location(x=1.5, z=2.0)), attach_to=ego)
    collision = world.spawn_actor(lib.find("sensor.other.collision"), carla.Transform(), attach_to=ego)
    lane = world.spawn_actor(lib.find("sensor.other.lane_invasion"), carla.Transform(), attach_to=ego)
    images: queue.Queue = queue.Queue()
    hits: queue.Queue = queue.Queue()
    camera.listen(images.put)
    collision.listen(lambda e: hits.put((e.frame, e.other_actor.id)))
    lane.listen(lambda e: None)

    tm = client.get_trafficmanager(a.tm_port)
    tm.set_synchronous_mode(True)
    tm.set_random_device_seed(0)
    SpawnActor, SetAutopilot, FutureActor = (carla.command.SpawnActor, carla.command.SetAutopilot,
                                             carla.command.FutureActor)
    vehicle_bps = [b for b in lib.filter("vehicle.*") if int(b.get_attribute("number_of_wheels")) == 4]
    batch = []
    for i in range(a.npcs):
        sp = spawns[(a.spawn_index + len(spawns) // 2 + 9 * i) % len(spawns)]
        batch.append(SpawnActor(vehicle_bps[i % len(vehicle_bps)], sp).then(SetAutopilot(FutureActor, True, a.tm_port)))
    # do_tick=False, then a tick: apply_batch_sync(..., True) with Traffic Manager vehicles
    # was seen to stall the 0.9.16 client in about 1 run of 10 (cause not found)
    npc_ids = [r.actor_id for r in client.apply_batch_sync(batch, False) if not r.error]
    world.tick()
    npc_start = {v.id: v.get_location() for v in world.get_actors(npc_ids)}
    out["npcs"] = len(npc_ids)

    ego.apply_control(carla.VehicleControl(throttle=0.6))
    mismatches = []
    ticks = 0
    t0 = time.perf_counter()
    for i in range(a.ticks):
        if i == a.hang_after:
            print("HANGING", flush=True)
            time.sleep(3600)
        frame = world.tick()
        image = images.get(timeout=a.timeout)
        while image.frame < frame:  # only images of frames before the loop may precede
            image = images.get(timeout=a.timeout)
        if image.frame != frame or image.width != 200 or image.height != 88 \
                or len(image.raw_data) != 200 * 88 * 4:
            mismatches.append((frame, image.frame, image.width, image.height))
        ticks += 1
    out["ticks_per_s"] = ticks / (time.perf_counter() - t0)
    out["ticks"] = ticks
    out["mismatches"] = mismatches
    out["last_image_std"] = float(__import__("numpy").frombuffer(image.raw_data, "uint8").std())
    out["collisions"] = []
    while not hits.empty():
        out["collisions"].append(hits.get())
    out["parked_id"] = parked.id
    loc = ego.get_location()
    out["ego_moved"] = math.hypot(loc.x - start.location.x, loc.y - start.location.y)
    out["npc_moved"] = [math.hypot(v.get_location().x - npc_start[v.id].x,
                                   v.get_location().y - npc_start[v.id].y)
                        for v in world.get_actors(npc_ids)]
    out["actors_during"] = len(world.get_actors())

    camera.stop()
    collision.stop()
    lane.stop()
    ids = npc_ids + [camera.id, collision.id, lane.id, ego.id, parked.id]
    results = client.apply_batch_sync([carla.command.DestroyActor(x) for x in ids], False)
    world.tick()
    out["destroy_errors"] = [r.error for r in results if r.error]
    tm.set_synchronous_mode(False)
    world.apply_settings(original)
    out["settings_restored"] = not world.get_settings().synchronous_mode
    world.wait_for_tick()
    out["actors_after"] = sorted(x.type_id for x in world.get_actors())
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
