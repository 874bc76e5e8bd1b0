"""Pedestrians on a CARLA server, spawned the way CARLA's
``PythonAPI/examples/generate_traffic.py`` spawns them (CARLA 0.9.16 Python API):

1. ``world.set_pedestrians_seed(seed)`` (the client's navigation draws its random
   locations from it), then one spawn location per walker from
   ``world.get_random_location_from_navigation()`` (None where the town has no
   navigation mesh: fewer walkers, a warning);
2. a random ``walker.pedestrian.*`` blueprint each (``is_invincible = "false"``),
   spawned in one ``apply_batch_sync`` of ``SpawnActor`` commands, then one tick;
3. a ``controller.ai.walker`` attached to each walker (a second batch), a tick, and
   one more so the controllers are in the snapshot before they start;
4. ``world.set_pedestrians_cross_factor(p)`` (the share of walkers allowed to cross
   roads), then per controller ``start()``, ``go_to_location(random nav location)``
   and ``set_max_speed(speed [m/s])``.

At the end of an episode the controllers are stopped first, then controllers and
walkers are destroyed in one ``apply_batch`` of ``DestroyActor``. Every random choice
draws from the episode's ``numpy.random.Generator``.

The batches are applied with ``do_tick=False`` and followed by ``world.tick()``,
never ``apply_batch_sync(batch, True)`` as ``generate_traffic.py`` does: in the
0.9.16 Python API, ``Client.apply_batch_sync`` keeps the GIL while its tick waits for
the world snapshot (``ApplyBatchCommandsSync`` in ``PythonAPI/carla/source/libcarla/
Client.cpp`` has no ``ReleaseGIL``, ``World.tick`` does). A sensor callback of the
previous frame that arrives meanwhile (the ego's camera, ``listen``) then waits for
the GIL on a streaming thread, the tick's snapshot is not taken in, and the tick
times out (traced with gdb: the main thread spinning in ``SynchronizeFrame``, the
camera callback in ``PyGILState_Ensure``, the server idle with the frame published;
about 1 episode start in 50 on a loaded 2-core machine).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...errors import ScenarioError
from ...types import WalkerState
from .convert import one_line

__all__ = ["WALKER_CONTROLLER", "WALKER_FILTER", "WALKER_STREAM", "WalkerCrowd", "destroy_walkers",
           "spawn_walkers", "walker_count"]

log = logging.getLogger(__name__)

#: Blueprint filter of CARLA's pedestrians and the id of their AI controller.
WALKER_FILTER = "walker.pedestrian.*"
WALKER_CONTROLLER = "controller.ai.walker"
#: Second entry of the walkers' rng seed: ``default_rng([seed, WALKER_STREAM])`` (a
#: stream independent of the route's and the traffic's).
WALKER_STREAM = 19
#: Spread of the walkers' maximum speeds around the scenario's walker_speed (uniform, +-).
SPEED_SPREAD = 0.15


@dataclass
class WalkerCrowd:
    """The walkers of one episode: ids of walkers and of their controllers (same
    order), and each walker's maximum speed [m/s]."""

    walker_ids: list[int] = field(default_factory=list)
    controller_ids: list[int] = field(default_factory=list)
    speeds: list[float] = field(default_factory=list)
    _actors: list[Any] = field(default_factory=list)  # walker actors, once in a snapshot

    def all_ids(self) -> list[int]:
        return list(self.controller_ids) + list(self.walker_ids)

    def states(self, world: Any, carla_map: Any, carla: Any) -> tuple[WalkerState, ...]:
        """Every live walker in SI units: the footprint centre at ground level
        (``location.z - extent.z``: CARLA's walker origin is the capsule centre), the
        walking direction and speed from the velocity, ``on_road`` when a driving lane
        is under it (``map.get_waypoint(project_to_road=False, lane_type=Driving)``)."""
        if not self.walker_ids:
            return ()
        if len(self._actors) != len(self.walker_ids):
            self._actors = sorted(world.get_actors(list(self.walker_ids)), key=lambda a: int(a.id))
        driving = carla.LaneType.Driving
        out = []
        for a in self._actors:
            if not a.is_alive:
                continue
            tf = a.get_transform()
            loc, bb = tf.location, a.bounding_box
            v = a.get_velocity()
            speed = math.hypot(float(v.x), float(v.y))
            yaw = math.atan2(float(v.y), float(v.x)) if speed > 1e-3 else math.radians(float(tf.rotation.yaw))
            yaw = (yaw + math.pi) % (2.0 * math.pi) - math.pi
            z = float(loc.z + bb.location.z - bb.extent.z)
            on_road = carla_map.get_waypoint(carla.Location(x=loc.x, y=loc.y, z=loc.z),
                                             project_to_road=False, lane_type=driving) is not None
            out.append(WalkerState(actor_id=int(a.id), x=float(loc.x), y=float(loc.y), z=z, yaw=yaw,
                                   speed=speed, radius=float(max(bb.extent.x, bb.extent.y)),
                                   height=2.0 * float(bb.extent.z), on_road=bool(on_road)))
        return tuple(out)


def walker_count(traffic: Any, town: str, lane_length_m: float | None) -> tuple[int, int]:
    """(vehicles, walkers) of a scenario's ``[traffic]``: its own counts for density
    "custom", else NoCrash's for the town (:func:`drive_il.sim.density.traffic_counts`;
    ``lane_length_m``: the town's driving-lane length, read for towns other than
    Town01/Town02).

    Raises:
        ScenarioError: the counts cannot be had (no lane length for a scaled town).
    """
    from ..density import traffic_counts  # noqa: PLC0415
    try:
        v, w = traffic_counts(traffic, town, float("nan") if lane_length_m is None else lane_length_m)
    except ValueError as e:
        raise ScenarioError(f"traffic.density {traffic.density!r} on {town}: {e}") from None
    return int(v), int(w)


def spawn_walkers(carla: Any, client: Any, world: Any, n: int, *, rng: np.random.Generator,
                  seed: int, speed: float, cross_factor: float) -> WalkerCrowd:
    """Spawn ``n`` walkers with their AI controllers (see the module docstring).

    Args:
        n: walkers wanted (fewer when the navigation gives fewer locations or a spawn
            fails; a warning says how many).
        rng: the episode's generator (blueprints, speeds).
        seed: ``world.set_pedestrians_seed`` (the navigation's random locations).
        speed: mean maximum walking speed [m/s] (scenario ``walker_speed``).
        cross_factor: ``set_pedestrians_cross_factor``, in [0, 1].

    Returns:
        The :class:`WalkerCrowd` (empty when ``n`` is 0).

    Raises:
        ScenarioError: the server has no ``walker.pedestrian.*`` blueprints.
    """
    crowd = WalkerCrowd()
    if n <= 0:
        return crowd
    if hasattr(world, "set_pedestrians_seed"):
        world.set_pedestrians_seed(int(seed) & 0x7FFFFFFF)
    locations = []
    for _ in range(int(n)):
        loc = world.get_random_location_from_navigation()
        if loc is not None:
            locations.append(loc)
    if len(locations) < n:
        log.warning("the navigation of the CARLA server gave %d of %d walker locations", len(locations), n)
    lib = world.get_blueprint_library()
    bps = sorted(lib.filter(WALKER_FILTER), key=lambda b: b.id)
    if not bps:
        raise ScenarioError("the CARLA server has no walker.pedestrian.* blueprints")
    SpawnActor, DestroyActor = carla.command.SpawnActor, carla.command.DestroyActor
    batch, speeds = [], []
    for loc in locations:
        bp = bps[int(rng.integers(len(bps)))]
        if bp.has_attribute("is_invincible"):
            bp.set_attribute("is_invincible", "false")
        batch.append(SpawnActor(bp, carla.Transform(loc, carla.Rotation())))
        speeds.append(float(np.clip(speed * rng.uniform(1.0 - SPEED_SPREAD, 1.0 + SPEED_SPREAD), 0.3, 3.0)))
    walkers, kept = [], []
    responses = client.apply_batch_sync(batch, False)
    world.tick()  # not do_tick=True: see the module docstring (GIL)
    for r, s in zip(responses, speeds):
        if r.error:
            log.info("walker spawn failed: %s", r.error)
        else:
            walkers.append(int(r.actor_id))
            kept.append(s)
    ctrl_bp = lib.find(WALKER_CONTROLLER)
    results = client.apply_batch_sync([SpawnActor(ctrl_bp, carla.Transform(), w) for w in walkers], False)
    world.tick()
    bad = []
    for w, s, r in zip(walkers, kept, results):
        if r.error:
            log.info("walker controller spawn failed: %s", r.error)
            bad.append(w)
        else:
            crowd.walker_ids.append(w)
            crowd.controller_ids.append(int(r.actor_id))
            crowd.speeds.append(s)
    if bad:
        client.apply_batch([DestroyActor(w) for w in bad])
    if len(crowd.walker_ids) < n:
        log.warning("%d of %d walkers spawned", len(crowd.walker_ids), n)
    world.tick()  # the controllers must be in the snapshot before they start
    world.set_pedestrians_cross_factor(float(cross_factor))
    by_id = {int(a.id): a for a in world.get_actors(list(crowd.controller_ids))}
    for cid, s in zip(crowd.controller_ids, crowd.speeds):
        c = by_id.get(cid)
        if c is None:
            continue
        c.start()
        target = world.get_random_location_from_navigation()
        if target is not None:
            c.go_to_location(target)
        c.set_max_speed(s)
    return crowd


def destroy_walkers(carla: Any, client: Any, world: Any, crowd: WalkerCrowd | None) -> None:
    """Stop the controllers, then destroy controllers and walkers in one batch
    (logged, not raised, on failure)."""
    if crowd is None or not crowd.walker_ids and not crowd.controller_ids:
        return
    try:
        for c in world.get_actors(list(crowd.controller_ids)):
            c.stop()
    except RuntimeError as e:
        log.warning("stopping %d walker controllers: %s", len(crowd.controller_ids), one_line(e))
    try:
        client.apply_batch([carla.command.DestroyActor(i) for i in crowd.all_ids()])
    except RuntimeError as e:
        log.warning("destroying %d walkers: %s", len(crowd.walker_ids), one_line(e))
    crowd.walker_ids, crowd.controller_ids, crowd.speeds, crowd._actors = [], [], [], []
