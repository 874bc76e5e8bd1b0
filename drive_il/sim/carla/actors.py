"""Spawning and clean-up of the vehicles on a CARLA server.

The ego (blueprint from the scenario, ``role_name = "hero"``) is spawned with its
bounding-box centre on the start, lifted :data:`SPAWN_LIFT`; NPC traffic runs on the
Traffic Manager's autopilot (synchronous, seeded with ``set_random_device_seed``) and is
spawned with ``apply_batch_sync`` (SpawnActor then SetAutopilot). Vehicles are destroyed
through ``apply_batch`` (``DestroyActor``): ``vehicle.destroy()`` on a Traffic-Manager
vehicle can abort the client.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np

from ...errors import ScenarioError
from ...scenario import Scenario
from ...types import Route
from ..base import StartPose
from .convert import KMH_PER_MPS, Physics, one_line, origin_of, transform

__all__ = ["SPAWN_LIFT", "Pose", "destroy_vehicles", "place_ego", "set_npc_speeds",
           "spawn_ego", "spawn_points", "spawn_traffic", "start_pose"]

log = logging.getLogger(__name__)

#: Height the ego and the NPCs are lifted above the road when spawned [m] (CARLA's
#: spawn points use the same margin so a vehicle never spawns inside the ground).
SPAWN_LIFT = 0.5

Pose = tuple[float, float, float, float]  # x, y, z [m], yaw [rad] of the reference point


def start_pose(carla: Any, carla_map: Any, route: Route, start: StartPose | None) -> Pose:
    """The ego's start: the route's first waypoint, or ``start`` at the road's height."""
    w0 = route.waypoints[0]
    if start is None:
        return w0.x, w0.y, w0.z, w0.yaw
    z = w0.z
    try:
        wp = carla_map.get_waypoint(carla.Location(x=start.x, y=start.y, z=w0.z))
        if wp is not None:
            z = float(wp.transform.location.z)
    except RuntimeError:
        pass
    return start.x, start.y, z, start.yaw


def spawn_ego(carla: Any, world: Any, scenario: Scenario, pose: Pose) -> Any:
    """The ego vehicle at ``pose`` (its actor origin there; see :func:`place_ego`).

    Raises:
        ScenarioError: unknown blueprint, or the place is occupied.
    """
    lib = world.get_blueprint_library()
    try:
        bp = lib.find(scenario.vehicle.blueprint)
    except (IndexError, RuntimeError, KeyError):
        raise ScenarioError(f"{scenario.source or scenario.name}: vehicle.blueprint "
                            f"{scenario.vehicle.blueprint!r} is not a blueprint of the CARLA server") from None
    if bp.has_attribute("role_name"):
        bp.set_attribute("role_name", "hero")
    x, y, z, yaw = pose
    ego = world.try_spawn_actor(bp, transform(carla, x, y, z + SPAWN_LIFT, yaw))
    if ego is None:
        raise ScenarioError(f"cannot spawn the ego {scenario.vehicle.blueprint} at x={x:.2f} y={y:.2f} "
                            f"yaw={math.degrees(yaw):.1f} deg on {scenario.town}: the place is occupied "
                            f"(another client's actor?) or off the map")
    return ego


def place_ego(carla: Any, ego: Any, physics: Physics, pose: Pose) -> None:
    """Move the ego so its reference point (bounding-box centre) is on ``pose``."""
    if abs(physics.offset_x) < 1e-3 and abs(physics.offset_y) < 1e-3:
        return
    x, y, z, yaw = pose
    ox, oy = origin_of(physics, x, y, yaw)
    ego.set_transform(transform(carla, ox, oy, z + SPAWN_LIFT, yaw))


def spawn_points(carla: Any, carla_map: Any, town: Any) -> list[Any]:
    """The map's spawn points; an OpenDRIVE-only world has none: then the
    :class:`~drive_il.maps.towns.TownMap`'s generated ones, lifted."""
    pts = list(carla_map.get_spawn_points())
    if pts:
        return pts
    return [transform(carla, p.x, p.y, p.z + SPAWN_LIFT, p.yaw) for p in town.spawn_points]


def spawn_traffic(carla: Any, client: Any, world: Any, tm: Any, tm_port: int, scenario: Scenario,
                  seed: int, points: list[Any], x0: float, y0: float) -> tuple[list[int], dict[int, float]]:
    """NPC vehicles on the Traffic Manager's autopilot (synchronous, seeded), at spawn
    points at least ``traffic.min_spawn_distance`` from the ego's start (x0, y0) and
    from each other.

    Returns:
        The NPCs' actor ids and their desired speeds [m/s] (for :func:`set_npc_speeds`
        after the first tick).

    Raises:
        ScenarioError: the server has no four-wheeled vehicle blueprints.
    """
    tr = scenario.traffic
    rng = np.random.default_rng([seed, 0x7E4F])
    tm.set_synchronous_mode(True)
    tm.set_random_device_seed(int(seed))
    if hasattr(tm, "set_global_distance_to_leading_vehicle"):
        tm.set_global_distance_to_leading_vehicle(float(tr.min_gap))
    cands = [t for t in points
             if math.hypot(t.location.x - x0, t.location.y - y0) >= tr.min_spawn_distance]
    cands.sort(key=lambda t: (round(t.location.x, 2), round(t.location.y, 2)))
    chosen: list[Any] = []
    for i in rng.permutation(len(cands)):  # keep NPCs apart from each other too
        t = cands[int(i)]
        if all(math.hypot(t.location.x - c.location.x, t.location.y - c.location.y)
               >= tr.min_spawn_distance for c in chosen):
            chosen.append(t)
        if len(chosen) == tr.vehicles:
            break
    if len(chosen) < tr.vehicles:
        log.warning("only %d of %d NPC spawn points are free on %s", len(chosen), tr.vehicles, scenario.town)
    bps = [b for b in world.get_blueprint_library().filter("vehicle.*")
           if not b.has_attribute("number_of_wheels")
           or int(b.get_attribute("number_of_wheels").as_int()) == 4]
    bps.sort(key=lambda b: b.id)
    if not bps:
        raise ScenarioError("the CARLA server has no four-wheeled vehicle blueprints for traffic")
    SpawnActor, SetAutopilot = carla.command.SpawnActor, carla.command.SetAutopilot
    FutureActor = carla.command.FutureActor
    batch = []
    for t in chosen:
        bp = bps[int(rng.integers(len(bps)))]
        if bp.has_attribute("role_name"):
            bp.set_attribute("role_name", "autopilot")
        if bp.has_attribute("color"):
            colors = list(bp.get_attribute("color").recommended_values)
            if colors:
                bp.set_attribute("color", colors[int(rng.integers(len(colors)))])
        batch.append(SpawnActor(bp, t).then(SetAutopilot(FutureActor, True, tm_port)))
    responses = client.apply_batch_sync(batch, False)
    errors = [r.error for r in responses if r.error]
    ids = [int(r.actor_id) for r in responses if not r.error]
    if errors:
        log.warning("%d of %d NPCs failed to spawn: %s", len(errors), len(batch), errors[0])
    lo, hi = tr.target_speed * (1 - tr.speed_spread), tr.target_speed * (1 + tr.speed_spread)
    return ids, {i: float(rng.uniform(lo, hi)) for i in ids}


def set_npc_speeds(world: Any, tm: Any, speeds: dict[int, float]) -> None:
    """Desired NPC speeds [m/s], once the NPCs are in the world's snapshot (after a tick)."""
    if not speeds or not hasattr(tm, "set_desired_speed"):
        return
    for actor in world.get_actors(list(speeds)):
        tm.set_desired_speed(actor, speeds[actor.id] * KMH_PER_MPS)  # km/h at the boundary


def destroy_vehicles(carla: Any, client: Any, ids: list[int]) -> None:
    """Destroy vehicles in one batch (logged, not raised, on failure)."""
    if not ids:
        return
    try:
        client.apply_batch_sync([carla.command.DestroyActor(i) for i in ids], False)
    except RuntimeError as e:
        log.warning("destroying %d vehicles: %s", len(ids), one_line(e))
