"""The RPC handlers: what the server answers to each call of the ``carla`` client.

:class:`Handlers` holds one method per served RPC, named as the call and grouped by
job (episode and map, blueprints and actors, lights and other no-op calls, sensors,
Traffic Manager, command batches); :meth:`Handlers.registry` maps the RPC names to
them (the methods marked with :func:`rpc`). Calls the server knows but does not model
are listed in :data:`UNSUPPORTED` (answered with a CARLA ``Response`` error naming
the feature); calls accepted without effect (debug drawing, forces, impulses) in
:data:`NO_OPS`. Handlers run under the server's lock, one call at a time, and work on
the server's current :class:`~drive_il.serve.world.ServerWorld`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from . import encoding as E
from .actors import Vehicle, Walker
from .autopilot import TrafficManagerRegistry
from .blueprints import is_walker_blueprint
from .streams import StreamServer

if TYPE_CHECKING:
    from .world import ServerWorld

__all__ = ["LARGE_DELTA_S", "NO_OPS", "OPENDRIVE_MAP", "SERVER_VERSION", "UNSUPPORTED", "Handlers",
           "ServerState", "rpc", "with_geo_reference"]

log = logging.getLogger(__name__)

#: The client version this server speaks (the client warns on a mismatch).
SERVER_VERSION = "0.9.16"
#: The level a client loads after sending OpenDRIVE text (``generate_opendrive_world``).
OPENDRIVE_MAP = "OpenDriveMap"

#: Calls the server knows and answers with a Response error (feature not modelled).
UNSUPPORTED = {
    "get_physics_control": "vehicle physics control",
    "apply_physics_control": "vehicle physics control",
    "get_navigation_mesh": "the navigation mesh as one blob (the client asks get_required_files)",
    "get_ackermann_controller_settings": "Ackermann control",
    "apply_ackermann_control_to_vehicle": "Ackermann control",
    "apply_ackermann_controller_settings": "Ackermann control",
    "start_recorder": "the recorder",
    "replay_file": "the replayer",
    "show_recorder_file_info": "the recorder",
    "show_recorder_collisions": "the recorder",
    "show_recorder_actors_blocked": "the recorder",
    "cast_ray": "ray casting",
    "project_point": "ray casting",
    "get_telemetry_data": "vehicle telemetry",
    "get_wheel_steer_angle": "wheel angles",
    "enable_chrono_physics": "Chrono physics",
    "enable_carsim": "CarSim",
}

#: Calls accepted and answered as done, without effect on the embedded world: {RPC name:
#: what CARLA would do}. Each is logged once per server (INFO), then silently.
NO_OPS = {
    "draw_debug_shape": "world.debug.draw_point/line/arrow/box/string (nothing is drawn)",
    "enable_actor_constant_velocity": "actor.enable_constant_velocity (the speed is not held)",
    "disable_actor_constant_velocity": "actor.disable_constant_velocity",
    "add_actor_impulse": "actor.add_impulse",
    "add_actor_impulse_at_location": "actor.add_impulse at a location",
    "add_actor_force": "actor.add_force",
    "add_actor_force_at_location": "actor.add_force at a location",
    "add_actor_angular_impulse": "actor.add_angular_impulse",
    "add_actor_torque": "actor.add_torque",
    "show_vehicle_debug_telemetry": "vehicle.show_debug_telemetry",
}
#: A fixed_delta_seconds above this [s] is accepted with a warning (CARLA warns too: its
#: physics sub-steps no longer cover the step; the kinematic model takes it in one step).
LARGE_DELTA_S = 0.1

_RPC_NAMES: list[str] = []


def rpc(fn: Callable) -> Callable:
    """Mark a :class:`Handlers` method as the handler of the RPC of its name."""
    _RPC_NAMES.append(fn.__name__)
    return fn


def with_geo_reference(xodr: str) -> str:
    """The OpenDRIVE text with a ``<geoReference>`` in its header (the client warns
    without one)."""
    if "geoReference" in xodr:
        return xodr
    geo = "<geoReference><![CDATA[+lat_0=0 +lon_0=0]]></geoReference>"
    i = xodr.find("<header")
    if i < 0:
        return xodr
    j = xodr.find(">", i)
    if xodr[j - 1] == "/":
        return xodr[:j - 1] + ">" + geo + "</header>" + xodr[j + 1:]
    return xodr[:j + 1] + geo + xodr[j + 1:]


class ServerState(Protocol):
    """What the handlers use of the server (:class:`~drive_il.serve.server.CarlaServer`)."""

    world: ServerWorld
    streams: StreamServer
    settings: E.EpisodeSettings
    sync_owner: int
    traffic_managers: TrafficManagerRegistry
    definitions: list
    maps_dir: Any

    def tick(self) -> int: ...

    def tick_cue(self) -> int: ...

    def scratch_dir(self) -> Path: ...

    def new_world(self, name: str) -> ServerWorld: ...

    def switch(self, world: ServerWorld, reset_settings: bool) -> None: ...


class Handlers:
    """The RPC handlers of one server.

    Each handler takes the calling :class:`~drive_il.serve.rpc.Connection` and the
    call's arguments (without the metadata), and returns the msgpack-able answer.
    """

    def __init__(self, server: ServerState) -> None:
        self.server = server
        self.opendrive_path: Path | None = None  # the text of the next "OpenDriveMap"
        self._no_ops_seen: set[str] = set()

    def registry(self) -> dict[str, Callable[..., Any]]:
        """{RPC name: bound handler}: the :func:`rpc` methods and the :data:`NO_OPS`."""
        table: dict[str, Callable[..., Any]] = {name: self._no_op(name) for name in NO_OPS}
        table.update({name: getattr(self, name) for name in _RPC_NAMES})
        return table

    def _no_op(self, name: str) -> Callable[..., Any]:
        """The handler of a :data:`NO_OPS` call: answers done, logs the first call."""
        def handler(conn, *args):
            if name not in self._no_ops_seen:
                self._no_ops_seen.add(name)
                log.info("client %d: %s accepted without effect (%s; not modelled by the "
                         "embedded world)", conn.id, name, NO_OPS[name])
            return E.ok_void()
        handler.__name__ = name
        return handler

    @property
    def world(self) -> ServerWorld:
        """The server's current world."""
        return self.server.world

    # ------------------------------------------------------------------ episode
    @rpc
    def version(self, conn):
        return E.ok(SERVER_VERSION)

    @rpc
    def get_episode_info(self, conn):
        w = self.world
        return E.ok([w.episode_id, [self.server.streams.token(w.broadcast)]])

    @rpc
    def get_episode_settings(self, conn):
        return E.ok(self.server.settings.to_msgpack())

    @rpc
    def set_episode_settings(self, conn, settings):
        try:
            s = E.EpisodeSettings.from_msgpack(settings)
        except (ValueError, TypeError, IndexError) as e:
            return E.err(f"set_episode_settings: {e}")
        dt = s.fixed_delta_seconds
        if dt is not None and not (math.isfinite(dt) and dt > 0.0):
            return E.err(f"fixed_delta_seconds {dt} must be a number of seconds > 0 "
                         f"(or None: variable time step)")
        if dt is not None and dt > LARGE_DELTA_S and dt != self.server.settings.fixed_delta_seconds:
            log.warning("client %d: fixed_delta_seconds %g s is large (over %g s): accepted; each "
                        "tick moves the world %g s in one step", conn.id, dt, LARGE_DELTA_S, dt)
        if s.synchronous_mode and not self.server.settings.synchronous_mode:
            self.server.sync_owner = conn.id
        elif not s.synchronous_mode:
            self.server.sync_owner = 0
        self.server.settings = s
        log.info("client %d: settings synchronous=%s fixed_delta_seconds=%s", conn.id,
                 s.synchronous_mode, s.fixed_delta_seconds)
        return E.ok(self.world.frame)

    @rpc
    def tick_cue(self, conn):
        return E.ok(self.server.tick_cue())

    @rpc
    def get_weather_parameters(self, conn):
        return E.ok(E.weather_to_list(self.world.weather))

    @rpc
    def set_weather_parameters(self, conn, weather):
        try:
            self.world.set_weather(E.weather_from_list(weather))
        except (ValueError, TypeError) as e:
            return E.err_void(f"set_weather_parameters: {e}")
        return E.ok_void()

    @rpc
    def get_map_info(self, conn):
        w = self.world
        return E.ok([f"Carla/Maps/{w.town.name}", w.spawn_transforms()])

    @rpc
    def get_map_data(self, conn):
        return E.ok(with_geo_reference(self.world.town.xodr))

    @rpc
    def get_required_files(self, conn, folder="", *args):
        """The files a client must fetch: the walkers' navigation mesh for the
        "Nav" folder (``WalkerNavigation``; :mod:`.navmesh`), nothing else (the map
        comes as OpenDRIVE text). A town without sidewalks has no mesh."""
        if "nav" not in str(folder).lower():
            return E.ok([])
        got = self._navmesh()
        return E.ok([got[0]] if got is not None else [])

    @rpc
    def request_file(self, conn, name="", *args):
        got = self._navmesh()
        if got is not None and str(name) == got[0]:
            return E.ok(got[1])
        return E.ok(b"")

    def _navmesh(self) -> tuple[str, bytes] | None:
        """(file name, contents) of the current town's navigation mesh, or None."""
        from .navmesh import navmesh_file
        try:
            return navmesh_file(self.world.town)
        except ValueError as e:
            log.warning("no walker navigation on %s: %s", self.world.town.name, e)
            return None

    @rpc
    def get_available_maps(self, conn):
        from ..maps import available_towns
        return E.ok([f"/Game/Carla/Maps/{t}" for t in available_towns(self.server.maps_dir)])

    @rpc
    def load_new_episode(self, conn, map_name, reset_settings=True, *layers):
        """``client.load_world(name)``; an empty name (``client.reload_world()``) is the
        current town, loaded anew (a new episode, its actors gone)."""
        from ..errors import DriveILError
        name = str(map_name).rsplit("/", 1)[-1]
        if not name:
            town = self.world.town
            name = str(town.path) if town.path is not None else town.name
        elif name == OPENDRIVE_MAP and self.opendrive_path is not None:
            name = str(self.opendrive_path)
        try:
            world = self.server.new_world(name)
        except DriveILError as e:
            log.warning("client %d: load_world(%r) failed: %s", conn.id, map_name, e)
            return E.err_void(f"map '{map_name}' not found")
        self.server.switch(world, bool(reset_settings))
        log.info("client %d: loaded %s (episode %d)", conn.id, name, world.episode_id)
        return E.ok_void()

    @rpc
    def copy_opendrive_to_file(self, conn, xodr, params=None):
        """Keep the OpenDRIVE text for the ``OpenDriveMap`` level the client loads next
        (``client.generate_opendrive_world`` = this call, then ``load_world("OpenDriveMap")``;
        the mesh generation parameters do not apply to the embedded world)."""
        import os
        text = str(xodr)
        # one file per server, in its own temporary folder (removed when it stops): a new
        # text replaces the previous one (written aside, then renamed over it)
        path = self.server.scratch_dir() / f"{OPENDRIVE_MAP}.xodr"
        part = path.with_name(path.name + ".part")
        part.write_text(text, encoding="utf-8")
        os.replace(part, path)
        self.opendrive_path = path
        log.info("client %d: OpenDRIVE text received (%d bytes)", conn.id, len(text))
        return E.ok_void()

    # ------------------------------------------------------------------ blueprints / actors
    @rpc
    def get_actor_definitions(self, conn):
        return E.ok(self.server.definitions)

    @rpc
    def get_spectator(self, conn):
        return E.ok(self.world.record(self.world.spectator))

    def _spawn(self, conn, description, transform, parent=0) -> Any:
        """The new actor, or raises ValueError."""
        uid, bp_id, typed = E.parse_description(description)
        attrs = {k: v for k, (_t, v) in typed.items()}
        types = {k: t for k, (t, _v) in typed.items()}
        w = self.world
        if bp_id.startswith("vehicle."):
            if parent:
                raise ValueError("vehicles cannot be attached to a parent")
            a = w.spawn_vehicle(bp_id, uid, attrs, transform, conn.id)
        elif bp_id.startswith("sensor."):
            a = w.spawn_sensor(bp_id, uid, attrs, transform, int(parent or 0), conn.id)
        elif bp_id.startswith("walker."):
            if parent:
                raise ValueError("walkers cannot be attached to a parent")
            a = w.spawn_walker(bp_id, uid, attrs, transform, conn.id)
        elif is_walker_blueprint(bp_id):  # controller.ai.walker
            a = w.spawn_controller(bp_id, uid, attrs, int(parent or 0), conn.id)
        else:
            raise ValueError(f"unknown blueprint {bp_id!r}")
        a.types = types
        log.info("client %d: spawned %s id %d%s", conn.id, bp_id, a.id,
                 f" on {parent}" if parent else "")
        return a

    @rpc
    def spawn_actor(self, conn, description, transform):
        try:
            return E.ok(self.world.record(self._spawn(conn, description, transform)))
        except (ValueError, TypeError, IndexError) as e:
            return E.err(str(e))

    @rpc
    def spawn_actor_with_parent(self, conn, description, transform, parent, *rest):
        try:
            return E.ok(self.world.record(self._spawn(conn, description, transform, parent)))
        except (ValueError, TypeError, IndexError) as e:
            return E.err(str(e))

    @rpc
    def destroy_actor(self, conn, actor_id):
        ok = self.world.destroy(int(actor_id))
        if not ok:
            return E.err(f"destroy_actor: actor {actor_id} not found")
        return E.ok(True)

    @rpc
    def set_actor_dead(self, conn, actor_id):
        self.world.destroy(int(actor_id))
        return E.ok_void()

    @rpc
    def get_actors_by_id(self, conn, ids):
        w = self.world
        return E.ok([w.record(w.actors[i]) for i in ids if i in w.actors])

    @rpc
    def get_actor_bounding_box(self, conn, actor_id):
        a = self.world.actors.get(int(actor_id))
        if a is None:
            return E.ok(E.bounding_box(0, 0, 0, 0, 0, 0, 0))
        return E.ok(a.bbox())

    # ------------------------------------------------------------------ actor state
    def _vehicle(self, actor_id) -> Vehicle | None:
        a = self.world.actors.get(int(actor_id))
        return a if isinstance(a, Vehicle) else None

    def _apply_control(self, v: Vehicle, control) -> None:
        v.control = E.vehicle_control(control)
        v.last_control_time = self.world.elapsed

    @rpc
    def apply_control_to_vehicle(self, conn, actor_id, control):
        v = self._vehicle(actor_id)
        if v is None:
            return E.err_void(f"apply_control_to_vehicle: actor {actor_id} is not a vehicle")
        self._apply_control(v, control)
        return E.ok_void()

    @rpc
    def set_actor_transform(self, conn, actor_id, transform):
        a = self.world.actors.get(int(actor_id))
        if a is None:
            return E.err_void(f"set_actor_transform: actor {actor_id} not found")
        self.world.set_transform(a, transform)
        return E.ok_void()

    @rpc
    def set_actor_location(self, conn, actor_id, loc):
        a = self.world.actors.get(int(actor_id))
        if a is None:
            return E.err_void(f"set_actor_location: actor {actor_id} not found")
        _x, _y, _z, p, yaw, r = self.world.world_transform(a) if not a.parent else a.rel
        self.world.set_transform(a, [loc, [p, yaw, r]])
        return E.ok_void()

    @rpc
    def set_actor_target_velocity(self, conn, actor_id, vec):
        v = self._vehicle(actor_id)
        if v is None:
            return E.err_void(f"set_actor_target_velocity: actor {actor_id} is not a vehicle")
        m = v.model
        vx, vy = float(vec[0]), float(vec[1])
        m.set_speed(vx * math.cos(m.yaw) + vy * math.sin(m.yaw))
        return E.ok_void()

    @rpc
    def apply_control_to_walker(self, conn, actor_id, control):
        a = self.world.actors.get(int(actor_id))
        if not isinstance(a, Walker):
            return E.err_void(f"apply_control_to_walker: actor {actor_id} is not a walker")
        try:
            self.world.walker_control(a, control)
        except (TypeError, ValueError, IndexError) as e:
            return E.err_void(f"apply_control_to_walker: {e}")
        return E.ok_void()

    @rpc
    def set_actor_simulate_physics(self, conn, actor_id, enabled):
        v = self._vehicle(actor_id)
        if v is not None:
            v.simulate_physics = bool(enabled)
        return E.ok_void()

    @rpc
    def set_actor_autopilot(self, conn, actor_id, enabled):
        v = self._vehicle(actor_id)
        if v is None:
            return E.err_void(f"set_actor_autopilot: actor {actor_id} is not a vehicle")
        v.autopilot = bool(enabled)
        return E.ok_void()

    @rpc
    def get_vehicle_light_states(self, conn):
        return E.ok([[v.id, v.light_state] for v in self.world.vehicles])

    @rpc
    def get_vehicle_light_state(self, conn, actor_id):
        """A ``carla::rpc::VehicleLightState``: the one-element array ``[flags]``."""
        v = self._vehicle(actor_id)
        if v is None:
            return E.err(f"get_vehicle_light_state: actor {actor_id} is not a vehicle")
        return E.ok([v.light_state])

    @rpc
    def set_vehicle_light_state(self, conn, actor_id, state):
        """``state``: a ``VehicleLightState`` (``[flags]``; a bare number is taken too)."""
        v = self._vehicle(actor_id)
        if v is None:
            return E.err_void(f"set_vehicle_light_state: actor {actor_id} is not a vehicle")
        try:
            v.light_state = _light_flags(state)
        except (TypeError, ValueError, IndexError) as e:
            return E.err_void(f"set_vehicle_light_state: {e}")
        return E.ok_void()

    # ------------------------------------------------------------------ sensors
    @rpc
    def get_sensor_token(self, conn, stream_id):
        """The token of a stream, by its id (the client asks before subscribing)."""
        w = self.world
        sid = int(stream_id)
        if sid == w.broadcast or any(s.stream == sid for s in w.sensors):
            self.server.streams.expect(sid)
            return E.ok([self.server.streams.token(sid)])
        return E.err(f"get_sensor_token: no stream {sid}")

    @rpc
    def is_sensor_enabled_for_ros(self, conn, *args):
        return E.ok(False)

    @rpc
    def enable_sensor_for_ros(self, conn, *args):
        return E.ok_void()

    @rpc
    def disable_sensor_for_ros(self, conn, *args):
        return E.ok_void()


    # ------------------------------------------------------------------ calls without effect here
    # (physics, vehicle/street lights, level objects, recorder: not modelled, answered as done)
    @rpc
    def set_actor_target_angular_velocity(self, conn, actor_id, vec):
        return E.ok_void()

    @rpc
    def set_actor_enable_gravity(self, conn, actor_id, enabled):
        return E.ok_void()

    @rpc
    def set_actor_collisions(self, conn, actor_id, enabled):
        return E.ok_void()

    @rpc
    def query_lights_state(self, conn, *args):
        return E.ok([])

    @rpc
    def update_lights_state(self, conn, *args):
        return E.ok_void()

    @rpc
    def update_day_night_cycle(self, conn, *args):
        return E.ok_void()

    @rpc
    def get_all_level_BBs(self, conn, *args):
        """``world.get_level_bbs(tag)``: the boxes of the level's static objects (buildings,
        poles, parked cars...); the embedded world has none, so always an empty list."""
        return E.ok([])

    @rpc
    def get_environment_objects(self, conn, *args):
        return E.ok([])

    @rpc
    def get_names_of_all_objects(self, conn):
        return E.ok([])

    # ------------------------------------------------------------------ traffic lights (.lights)
    def _light(self, actor_id) -> tuple[Any, int] | None:
        """(the world's ServedLights, light id) of a traffic-light actor id, or None."""
        if isinstance(actor_id, (list, tuple)):  # an actor record
            actor_id = actor_id[0]
        lights = self.world.lights
        if lights is None:
            return None
        lid = lights.light_of_actor(int(actor_id))
        return None if lid is None else (lights, lid)

    @rpc
    def set_traffic_light_state(self, conn, actor_id, state):
        got = self._light(actor_id)
        if got is None:
            return E.err_void(f"set_traffic_light_state: actor {actor_id} is not a traffic light")
        try:
            got[0].set_state(got[1], int(state))
        except (TypeError, ValueError) as e:
            return E.err_void(f"set_traffic_light_state: state {state!r} is not a carla.TrafficLightState "
                              f"(0 Red .. 4 Unknown): {e}")
        return E.ok_void()

    def _set_time(self, which: str, actor_id, seconds):
        from ..errors import DriveILError
        got = self._light(actor_id)
        if got is None:
            return E.err_void(f"set_traffic_light_{which}_time: actor {actor_id} is not a traffic light")
        try:
            got[0].set_time(which, float(seconds))
        except (TypeError, ValueError, DriveILError) as e:
            return E.err_void(f"set_traffic_light_{which}_time: {e}")
        return E.ok_void()

    @rpc
    def set_traffic_light_green_time(self, conn, actor_id, seconds):
        return self._set_time("green", actor_id, seconds)

    @rpc
    def set_traffic_light_yellow_time(self, conn, actor_id, seconds):
        return self._set_time("yellow", actor_id, seconds)

    @rpc
    def set_traffic_light_red_time(self, conn, actor_id, seconds):
        return self._set_time("red", actor_id, seconds)

    @rpc
    def freeze_traffic_light(self, conn, actor_id, frozen):
        got = self._light(actor_id)
        if got is None:
            return E.err_void(f"freeze_traffic_light: actor {actor_id} is not a traffic light")
        got[0].freeze(got[1], bool(frozen))
        return E.ok_void()

    @rpc
    def freeze_all_traffic_lights(self, conn, frozen=True, *args):
        if self.world.lights is not None:
            self.world.lights.freeze_all(bool(frozen))
        return E.ok_void()

    @rpc
    def reset_traffic_light_group(self, conn, actor_id):
        """The embedded controller runs every group on one clock: resetting a group
        resets them all (overrides and freezes dropped, cycles restarted)."""
        if self._light(actor_id) is None:
            return E.err_void(f"reset_traffic_light_group: actor {actor_id} is not a traffic light")
        self.world.lights.reset()
        return E.ok_void()

    @rpc
    def reset_all_traffic_lights(self, conn):
        if self.world.lights is not None:
            self.world.lights.reset()
        return E.ok_void()

    @rpc
    def get_group_traffic_lights(self, conn, actor_id):
        got = self._light(actor_id)
        if got is None:
            return E.err(f"get_group_traffic_lights: actor {actor_id} is not a traffic light")
        return E.ok(list(got[0].actors[got[1]].group))

    @rpc
    def get_light_boxes(self, conn, actor_id):
        got = self._light(actor_id)
        if got is None:
            return E.err(f"get_light_boxes: actor {actor_id} is not a traffic light")
        return E.ok(got[0].light_boxes(got[1]))

    @rpc
    def get_imui_gravity(self, conn):
        return E.ok(9.81)

    @rpc
    def set_imui_gravity(self, conn, g):
        return E.ok_void()

    @rpc
    def stop_recorder(self, conn):
        return E.ok_void()

    # ------------------------------------------------------------------ Traffic Manager
    @rpc
    def is_traffic_manager_running(self, conn, port):
        return E.ok(int(port) in self.server.traffic_managers)

    @rpc
    def add_traffic_manager_running(self, conn, ip_port):
        ip, port = str(ip_port[0]), int(ip_port[1])
        if not self.server.traffic_managers.add(ip, port, conn.id):
            return E.ok(False)
        log.info("client %d: Traffic Manager on %s:%d", conn.id, ip, port)
        return E.ok(True)

    @rpc
    def get_traffic_manager_running(self, conn, port):
        return E.ok(list(self.server.traffic_managers.address(int(port))))

    @rpc
    def destroy_traffic_manager(self, conn, port):
        return E.ok(self.server.traffic_managers.remove(int(port)))

    # ------------------------------------------------------------------ batches
    @rpc
    def apply_batch(self, conn, commands, do_tick_cue=False):
        out = [self._command(conn, c) for c in commands]
        if do_tick_cue:
            self.server.tick()
        return out

    def _command(self, conn, cmd) -> list:
        """One ``carla::rpc::Command``; returns its ``Response<ActorId>``."""
        try:
            index, fields = cmd[0]
        except (TypeError, ValueError, IndexError):
            return E.err(f"malformed command {cmd!r}")
        w = self.world
        try:
            if index == E.CMD_SPAWN:
                desc, tf, parent, *rest = fields
                pid = int(parent[1]) if isinstance(parent, (list, tuple)) and parent and parent[0] else 0
                a = self._spawn(conn, desc, tf, pid)
                for sub in (rest[2] if len(rest) >= 3 else ()) or ():
                    sub_idx, sub_fields = sub[0]
                    sub_fields = list(sub_fields)
                    if sub_fields and sub_fields[0] == 0:  # FutureActor
                        sub_fields[0] = a.id
                    r = self._command(conn, [[sub_idx, sub_fields]])
                    if r[0][0] == 0:
                        w.destroy(a.id)
                        return r
                return E.ok(a.id)
            aid = int(fields[0])
            if index == E.CMD_DESTROY:
                if not w.destroy(aid):
                    return E.err(f"DestroyActor: actor {aid} not found")
                return E.ok(aid)
            a = w.actors.get(aid)
            if a is None:
                return E.err(f"{E.COMMAND_NAMES[index] if index < len(E.COMMAND_NAMES) else index}: "
                             f"actor {aid} not found")
            if index == E.CMD_VEHICLE_CONTROL:
                if not isinstance(a, Vehicle):
                    return E.err(f"ApplyVehicleControl: actor {aid} is not a vehicle")
                self._apply_control(a, fields[1])
            elif index == E.CMD_AUTOPILOT:
                if not isinstance(a, Vehicle):
                    return E.err(f"SetAutopilot: actor {aid} is not a vehicle")
                a.autopilot = bool(fields[1])
            elif index == E.CMD_TRANSFORM:
                w.set_transform(a, fields[1])
            elif index == E.CMD_LOCATION:
                _x, _y, _z, p, yaw, r = w.world_transform(a) if not a.parent else a.rel
                w.set_transform(a, [fields[1], [p, yaw, r]])
            elif index == E.CMD_TARGET_VELOCITY:
                self.set_actor_target_velocity(conn, aid, fields[1])
            elif index == E.CMD_SIMULATE_PHYSICS:
                if isinstance(a, Vehicle):
                    a.simulate_physics = bool(fields[1])
            elif index == E.CMD_WALKER_STATE:
                if not isinstance(a, Walker):
                    return E.err(f"ApplyWalkerState: actor {aid} is not a walker")
                w.walker_state(a, fields[1], fields[2])
            elif index == E.CMD_WALKER_CONTROL:
                if not isinstance(a, Walker):
                    return E.err(f"ApplyWalkerControl: actor {aid} is not a walker")
                w.walker_control(a, fields[1])
            elif index == E.CMD_TRAFFIC_LIGHT_STATE:
                r = self.set_traffic_light_state(conn, aid, fields[1])
                if r[0][0]:
                    return E.err(r[0][1][0])
            elif index == E.CMD_LIGHT_STATE:
                if isinstance(a, Vehicle):
                    a.light_state = _light_flags(fields[1])
            elif index in (E.CMD_ENABLE_GRAVITY, 9, 10, 11, 12, 13, 17):
                pass  # forces, impulses, gravity, telemetry: no effect on the kinematic model
            else:
                name = E.COMMAND_NAMES[index] if 0 <= index < len(E.COMMAND_NAMES) else str(index)
                log.warning("client %d: batch command %s is not supported", conn.id, name)
                return E.err(f"{name} is not supported by the drive-il embedded server")
            return E.ok(aid)
        except (ValueError, TypeError, IndexError, KeyError) as e:
            return E.err(str(e))


def _light_flags(state: Any) -> int:
    """The flags of a ``VehicleLightState`` (``[flags]``, or a bare number) as a uint32."""
    if isinstance(state, (list, tuple)):
        state = state[0]
    if isinstance(state, bool) or not isinstance(state, int):
        raise TypeError(f"a vehicle light state is a number of flags, got {state!r}")
    return int(state) & 0xFFFFFFFF
