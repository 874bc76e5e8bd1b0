"""The embedded world's traffic lights as CARLA ``traffic.traffic_light`` actors.

:class:`ServedLights` runs the town's signal layout
(:func:`drive_il.maps.signals.signal_layout`) with the embedded world's phase controller
(:class:`drive_il.sim.embedded.lights.LightController`, CARLA's defaults: green 10 s,
yellow 3 s, red 2 s all-red clearance, every group starting with its first head green as
CARLA at load) and serves one actor per head, as the CARLA 0.9.16 client reads them:

* the actor record: ``traffic.traffic_light``, its transform at the pole foot with its
  forward axis across the controlled lanes (CARLA's yaw: the driving direction + 90
  deg), and its bounding box = the trigger volume (the client's ``get_trigger_volume``
  and ``get_stop_waypoints``, which walks the box's x axis and finds each lane's
  waypoint): centred 1 m before the middle of the stop line, x half-extent half the stop
  line, 1.5 m along the lanes;
* the world snapshot (``TrafficLightData``): OpenDRIVE id, green / yellow / red time,
  elapsed time in the state, pole index in the group, frozen flag and state; the client
  answers ``get_state``, ``get_elapsed_time``, ``get_green_time`` & co., ``is_frozen``,
  ``get_pole_index`` and ``get_opendrive_id`` from it;
* RPCs: ``set_traffic_light_state`` (the state holds until the group's next phase change,
  or while frozen), ``freeze_traffic_light``, ``freeze_all_traffic_lights``,
  ``reset_traffic_light_group`` / ``reset_all_traffic_lights`` (overrides dropped,
  the groups' cycles restart), ``set_traffic_light_green_time`` / ``yellow`` / ``red``
  (the embedded controller has one timing for every group: a new time applies to all of
  them, logged), ``get_group_traffic_lights``, ``get_light_boxes``;
* each vehicle's ``traffic_light_state`` / ``has_traffic_light`` / ``traffic_light_id``
  in its snapshot (``vehicle.get_traffic_light_state()``, ``is_at_traffic_light()``,
  ``get_traffic_light()``): the light of the lane the vehicle is on
  (``carla.Map.get_waypoint`` of its centre, a controlled lane of the head) when the stop
  line is between 2 m behind and :data:`AT_LIGHT_AHEAD` ahead of its front bumper.

Units: SI and radians inside, degrees in the records (the CARLA boundary).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from typing import Any

from ..scenario import LightsConfig
from ..types import TrafficLight, TrafficLightState
from . import encoding as E
from .actors import TAG_TRAFFIC_LIGHT, Light, Vehicle

__all__ = ["AT_LIGHT_AHEAD", "AT_LIGHT_BEHIND", "ServedLights"]

log = logging.getLogger(__name__)

#: A vehicle is "at" a light when the stop line is at most this far ahead of its front
#: bumper [m] ...
AT_LIGHT_AHEAD = 10.0
#: ... or its front bumper is at most this far past the line [m].
AT_LIGHT_BEHIND = 2.0
#: Trigger volume: its centre this far before the stop line [m], half its length along
#: the lanes [m], half its height [m].
TRIGGER_BACK, TRIGGER_HALF_LENGTH, TRIGGER_HALF_HEIGHT = 1.0, 1.5, 1.0
_UNKNOWN = int(TrafficLightState.UNKNOWN)


class ServedLights:
    """The traffic lights of one served world.

    Args:
        town: the :class:`~drive_il.maps.TownMap`.
        config: timings (default CARLA's, no random offset).

    Attributes:
        heads: light id -> its :class:`~drive_il.maps.signals.SignalHead`.
        actors: light id -> its :class:`~drive_il.serve.actors.Light` (after :meth:`spawn`).
    """

    def __init__(self, town: Any, config: LightsConfig | None = None) -> None:
        from ..maps.signals import signal_layout
        from ..sim.embedded.lights import LightController
        self.town = town
        self.config = config or LightsConfig(enabled=True, random_offset=False)
        self.layout = signal_layout(town, self.config.min_roads)
        self._controller_cls = LightController
        self.controller = LightController(self.layout, self.config)
        self.heads = {h.light_id: h for h in self.layout.heads}
        self.actors: dict[int, Light] = {}
        self._by_actor: dict[int, int] = {}
        self._override: dict[int, tuple[TrafficLightState, TrafficLightState, float]] = {}
        self._frozen: dict[int, tuple[TrafficLightState, float]] = {}
        self._states: dict[int, TrafficLight] = {}
        self._refresh()

    def __len__(self) -> int:
        return len(self.heads)

    # ------------------------------------------------------------------ actors
    def spawn(self, add: Any) -> None:
        """Create one :class:`Light` per head with ``add(actor) -> actor`` (the world's
        id allocator), the group's actor ids filled in afterwards."""
        for lid, h in sorted(self.heads.items()):
            (x0, y0), (x1, y1) = h.stop_line
            mx, my = 0.5 * (x0 + x1), 0.5 * (y0 + y1)
            c, s = math.cos(h.yaw), math.sin(h.yaw)
            mx, my = mx - TRIGGER_BACK * c, my - TRIGGER_BACK * s
            yaw_actor = h.yaw + 0.5 * math.pi  # forward: across the lanes, to their right
            ca, sa = math.cos(yaw_actor), math.sin(yaw_actor)
            dx, dy = mx - h.x, my - h.y
            rel = (dx * ca + dy * sa, -dx * sa + dy * ca)  # the box centre in the actor frame
            half = max(0.5 * math.hypot(x1 - x0, y1 - y0), 0.5)
            a = Light(id=0, type_id="traffic.traffic_light", uid=0, tags=bytes([TAG_TRAFFIC_LIGHT]),
                      attrs={"role_name": "", "sign_id": h.opendrive_id or str(lid)},
                      rel=(h.x, h.y, h.z, 0.0, math.degrees(yaw_actor), 0.0), light_id=lid,
                      trigger=(rel[0], rel[1], TRIGGER_HALF_HEIGHT, half, TRIGGER_HALF_LENGTH,
                               TRIGGER_HALF_HEIGHT),
                      pole_index=int(h.index))
            a = add(a)
            self.actors[lid] = a
            self._by_actor[a.id] = lid
        for lid, a in self.actors.items():
            gid = self.heads[lid].group_id
            a.group = tuple(self.actors[m].id for m in self.layout.groups.get(gid, (lid,)))

    def light_of_actor(self, actor_id: int) -> int | None:
        return self._by_actor.get(int(actor_id))

    # ------------------------------------------------------------------ time
    def step(self, world: Any, dt: float) -> None:
        """Advance the cycles by ``dt`` [s] (frozen lights keep their state)."""
        self.controller.step(dt)
        self._refresh(dt)

    def _refresh(self, dt: float = 0.0) -> None:
        states = {}
        for t in self.controller.states():
            lid = t.light_id
            fr = self._frozen.get(lid)
            if fr is not None:
                st, el = fr[0], fr[1] + dt
                self._frozen[lid] = (st, el)
                t = dataclasses.replace(t, state=st, elapsed=el)
            else:
                ov = self._override.get(lid)
                if ov is not None:
                    want, base, el = ov
                    if t.state != base:  # the cycle moved on: the override ends
                        del self._override[lid]
                    else:
                        el += dt
                        self._override[lid] = (want, base, el)
                        t = dataclasses.replace(t, state=want, elapsed=el)
            states[lid] = t
        self._states = states

    def states(self) -> tuple[TrafficLight, ...]:
        """Every head now (``light_id`` order)."""
        return tuple(self._states[k] for k in sorted(self._states))

    # ------------------------------------------------------------------ RPC effects
    def set_state(self, lid: int, state: int) -> None:
        """``set_traffic_light_state``.

        Raises:
            ValueError: not a carla.TrafficLightState number (0..4).
        """
        st = TrafficLightState(int(state))
        cur = self._states[lid]
        if lid in self._frozen:
            self._frozen[lid] = (st, 0.0)
        else:
            base = next(t.state for t in self.controller.states() if t.light_id == lid)
            self._override[lid] = (st, base, 0.0)
        self._states[lid] = dataclasses.replace(cur, state=st, elapsed=0.0)

    def freeze(self, lid: int, frozen: bool) -> None:
        """``freeze_traffic_light``: a frozen light keeps its state until unfrozen."""
        if frozen:
            t = self._states[lid]
            self._frozen.setdefault(lid, (t.state, t.elapsed))
        else:
            fr = self._frozen.pop(lid, None)
            if fr is not None:  # keeps the state it had until its cycle changes phase
                base = next(t.state for t in self.controller.states() if t.light_id == lid)
                self._override[lid] = (fr[0], base, fr[1])

    def freeze_all(self, frozen: bool) -> None:
        for lid in self.heads:
            self.freeze(lid, frozen)

    def reset(self) -> None:
        """``reset_all_traffic_lights``: overrides and freezes dropped, cycles restarted."""
        self._override.clear()
        self._frozen.clear()
        self.controller = self._controller_cls(self.layout, self.config)
        self._refresh()

    def set_time(self, which: str, seconds: float) -> None:
        """``set_traffic_light_{green,yellow,red}_time``: the new time [s] applies to
        every group (one timing in the embedded controller); the cycles keep their clock.

        Raises:
            ValueError: not a valid duration.
        """
        field = {"green": "green_s", "yellow": "yellow_s", "red": "red_s"}[which]
        cfg = dataclasses.replace(self.config, **{field: float(seconds)})
        if cfg != self.config:
            log.info("traffic lights: %s time %g s applies to every light group", which, seconds)
            t = self.controller.time
            self.config = cfg
            self.controller = self._controller_cls(self.layout, cfg)
            self.controller.step(t)
            self._refresh()

    # ------------------------------------------------------------------ wire
    def pack_state(self, a: Light, tf: tuple) -> bytes:
        """The light's ActorDynamicState (``TrafficLightData`` union)."""
        t = self._states[a.light_id]
        c = self.config
        return E.LIGHT_STATE.pack(a.id, 1, *tf, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
                                  a.attrs["sign_id"].encode()[:31], c.green_s, c.yellow_s, c.red_s,
                                  t.elapsed, a.pole_index, a.light_id in self._frozen, int(t.state))

    def light_boxes(self, lid: int) -> list:
        """``get_light_boxes``: the lamp housing (0.3 x 0.3 x 0.9 m) atop the pole, in
        world coordinates."""
        h = self.heads[lid]
        return [[[h.x, h.y, h.z + h.height], [0.15, 0.15, 0.45], [0.0, math.degrees(h.yaw) + 180.0, 0.0],
                 self.actors[lid].id]]

    def of_vehicle(self, v: Vehicle) -> tuple[int, int]:
        """(carla.TrafficLightState number, light actor id) of the light the vehicle is
        at, (UNKNOWN, 0) when none (module docstring)."""
        import carla
        m = v.model
        lanes = self.layout.lane_light
        try:
            wp = self.town.map.get_waypoint(carla.Location(m.x, m.y, m.z), False, carla.LaneType.Driving)
        except RuntimeError:
            wp = None
        if wp is None:
            return _UNKNOWN, 0
        lid = lanes.get((int(wp.road_id), int(wp.lane_id)))
        if lid is None:
            return _UNKNOWN, 0
        h = self.heads[lid]
        (x0, y0), (x1, y1) = h.stop_line
        c, s = math.cos(h.yaw), math.sin(h.yaw)
        ahead = (0.5 * (x0 + x1) - m.x) * c + (0.5 * (y0 + y1) - m.y) * s - 0.5 * m.length
        if not -AT_LIGHT_BEHIND <= ahead <= AT_LIGHT_AHEAD:
            return _UNKNOWN, 0
        return int(self._states[lid].state), self.actors[lid].id
