"""The CARLA server backend: the same scenarios on a real CARLA 0.9.x server.

Modules, one job each: :mod:`.connection` (connecting and probing, the town,
synchronous mode, the Traffic Manager, reconnection), :mod:`.actors` (spawning and
clean-up of the vehicles), :mod:`.lights` (the server's traffic lights),
:mod:`.walkers` (pedestrians the ``generate_traffic.py`` way), :mod:`.sensors` (camera
rig, event sensors, frame matching),
:mod:`.convert` (units and frames at the CARLA boundary) and :mod:`.simulator`
(:class:`CarlaSimulator`, the episode behind the Simulator protocol).

:class:`CarlaSimulator` implements :class:`drive_il.sim.base.Simulator` on top of the
``carla`` Python client (0.9.16). Every part written against the embedded world (the
expert, the learners, the recorder, the metrics, the overlay) sees the same value types:
SI units, yaw in radians, RGB ``uint8`` frames, the ego's reference point at the centre
of its bounding box at ground level, and a ``carla.Map`` (here ``world.get_map()``).

Session, per :meth:`CarlaSimulator.reset` (CARLA Python API 0.9.16):

1. connect (``carla.Client(host, port)``, ``set_timeout``, ``get_server_version``) with
   retries and exponential back-off inside the overall time-out; reconnect when the
   connection was lost;
2. load the scenario's town (``client.load_world``), keep the current world when its
   map already is that town, or build an OpenDRIVE-only world
   (``client.generate_opendrive_world``) for a town the server does not have (the
   project's generated towns, an ``.xodr`` of the maps directory);
3. synchronous mode with the scenario's fixed ``dt`` (``carla.WorldSettings``; never
   above 0.1 s, CARLA's limit for stable physics substepping), one ticking client;
4. weather preset by name (``carla.WeatherParameters.<Name>``);
5. the route and start by the rule the embedded world uses
   (:func:`drive_il.routing.episode.plan_episode` on the server's town: a
   :class:`~drive_il.maps.towns.TownMap` wrapping ``world.get_map()``), the ego
   vehicle (blueprint from the scenario, ``role_name = "hero"``) with its bounding-box
   centre on the start, lifted 0.5 m, yaw in degrees at the boundary, then the camera
   rig (``sensor.camera.rgb``, mounts relative to the bounding-box centre at ground), a
   ``sensor.other.collision`` and a ``sensor.other.lane_invasion`` sensor;
6. NPC traffic through the Traffic Manager (synchronous, seeded with
   ``set_random_device_seed``), spawned with ``apply_batch_sync`` (SpawnActor then
   SetAutopilot); walkers with their ``controller.ai.walker`` (:mod:`.walkers`); the
   server's traffic lights read once (:mod:`.lights`), their states every tick into
   ``WorldState.traffic_lights``, red-light events by
   :class:`drive_il.sim.infractions.RedLightRule`.

Frame synchronisation: every sensor's callback only puts its data into its own queue.
After ``world.tick()`` returns frame F, each camera's queue is read until the image of
frame F (older ones are dropped); a camera that has none within the time-out raises
:class:`~drive_il.errors.SensorTimeoutError`. Collision and lane-invasion events of
frames <= F are reported with the step (a collision once per contact onset with each
actor, as the embedded world); off-road has no CARLA sensor and is detected with
``map.get_waypoint(location, project_to_road=False, lane_type=Driving)`` returning None,
reported when the ego leaves the road. Frames and times count from 0 at ``reset``
(:attr:`CarlaSimulator.server_frame` is CARLA's own frame number).

Robustness: a time-out or a lost server in the middle of an episode raises
:class:`~drive_il.errors.SimulatorLostError` from :meth:`CarlaSimulator.step`; the caller
fails the episode and calls :meth:`CarlaSimulator.reset`, which reconnects. On
:meth:`CarlaSimulator.close` (idempotent; also run at interpreter exit, on Ctrl-C in a
step or reset, and on unexpected errors) the sensors are stopped and destroyed, the
vehicles destroyed through ``apply_batch`` (``DestroyActor``: ``vehicle.destroy()`` on a
Traffic-Manager vehicle can abort the client), the Traffic Manager leaves synchronous
mode and the world goes back to asynchronous mode (a synchronous server without its
ticking client waits forever).

Ports: RPC 2000 and Traffic Manager 8000 by default; several servers on one machine need
distinct ``--port`` and ``--tm-port`` each (the Traffic Manager binds its port in the
client's process).

The ``carla`` client module is imported lazily, in the constructor, so ``drive_il``
imports without the CARLA client; tests inject a double through ``carla_module=``. (No
module of this package is named ``carla``: ``import carla`` is always the client.)
"""

from __future__ import annotations

from ...errors import SensorTimeoutError, SimulatorLostError
from .connection import SERVER_VERSION, connect_schedule
from .convert import image_to_rgb
from .simulator import CarlaSimulator

__all__ = [
    "CarlaSimulator",
    "SimulatorLostError",
    "SensorTimeoutError",
    "connect_schedule",
    "image_to_rgb",
    "SERVER_VERSION",
]
