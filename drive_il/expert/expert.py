"""The rule-based expert: the teacher whose steering every learner imitates.

It reads only ``step.world_state`` (privileged: the ego's pose and speed, the route,
the other vehicles), never pixels. Per step it

1. projects the ego onto the route near its last projection (:class:`RouteTracker`);
2. steers with pure pursuit plus curvature feed-forward about the rear axle towards a
   route point a speed-dependent lookahead ahead (see :mod:`.controllers` for why), the
   correcting part capped by a lateral-acceleration limit at speed and the change from
   the vehicle's current road-wheel angle capped per second;
3. picks a target speed from the route's precomputed speed profile (speed limit or
   cruise speed, curves, junctions, route end), lowered for the nearest vehicle on the
   path ahead (time gap, stop gap), the nearest walker in or entering the lane (a
   stopped obstacle) and a red or stoppable yellow traffic light (a stop
   ``stop_line_margin`` before its stop line), and tracks it with a PID
   (:class:`~.controllers.LongitudinalController`). The target speed is the learner's
   speed label; :attr:`Expert.stop_reason` says what set it.

Traffic lights (``WorldState.traffic_lights``): the lights controlling the route are
found once per route (:meth:`RouteTracker.light_stops`: by the lanes at each junction
entry, else by the route crossing a stop line). For the nearest such stop line ahead
of the front bumper (within ``detection_range``):

* RED: stop, unless the car cannot stop before the line even at its emergency
  deceleration (``emergency_brake * max_deceleration``; a state only a learner reaches):
  then it clears the junction rather than stopping inside it;
* YELLOW: stop when it can stop at the stop point with at most ``comfort_decel``
  (``v^2 / (2 (gap - stop_line_margin)) <= comfort_decel``), else go on (the
  dilemma-zone rule of the kinematic yellow-interval model; ITE, "Determining Vehicle
  Signal Change and Clearance Intervals", 1994) -- unless, at its present speed, the
  red-light test point would not clear the line in the yellow time left
  (``TrafficLight.yellow_time - elapsed``) and it can still stop before the line at its
  emergency deceleration: then it stops. Once it decided to stop for a yellow
  it keeps stopping for that light (no change of mind while the PID lags the braking
  curve) as long as its emergency deceleration still stops it before the line;
* GREEN, OFF, UNKNOWN: go. A light is behind the car once the leaderboard's red-light
  test point (0.8 half-lengths behind the centre) has passed its stop line; a car whose
  front is over the line but whose test point is not holds there when the light turns
  red and it can still stop before that point crosses (crossing on red from there is an
  infraction too), and at yellow when it crept over the line in a queue (below 0.5
  m/s), when it had decided to stop for that yellow, or when the test point would not
  clear the line before the red at the speed the traffic ahead allows. A car that went
  on at the dilemma decision does not stop with its front over the line (it did before:
  the straddling car's own light was then beside its camera through the red; README,
  "Standing with the light out of view").

With ``light_view_angle`` set (an expert preset's option, off in the shipped ones), the
stop point of a light whose head stands far to the side (a wide road) moves back until
the head is within that angle of the lane direction, as seen from the front bumper, so a
camera learner keeps seeing the light it waits for; the extra distance is given up where
the car could not stop before it at 1.4 ``comfort_decel``, below the full-brake threshold
(:meth:`Expert._moved_back`), and the stop's ``gap`` (the recorded obstacle gap) is to
the moved line.

The stop is a stopped obstacle at the stop point with the constant-deceleration
braking curve ``v = sqrt(2 comfort_decel free)`` (the route-end stop's profile; no
time gap to a fixed line), full brake (``emergency_brake``) when it needs more than
1.5 ``comfort_decel``, as for a stopping lead vehicle.

Because the steering aims at a point on the route *ahead* and the projection never
jumps back along the route, the label is a smooth return to the lane from any state:
off centre, off heading, on the neighbouring lane, at rest (DAgger relabels exactly
such states; Ross, Gordon, Bagnell 2011). The label depends on the state only (plus the
speed PID's integral): it is deterministic.

Cost: no ``carla.Map`` call per step; a scalar projection near the last one (numpy
over ~70 segments only when the car jumped) and scalar arithmetic: about 20-30 us per
step without traffic, 40-110 us with 25 NPC vehicles on Town01 (2-vCPU machine). Lights
and walkers cost nothing when the world has none; on Town01 with NoCrash's dense traffic
(100 vehicles, the ~30 walkers within 90 m that the world state carries, 36 lights)
about 85 us per step (CPU time), of which ~35 us the vehicles, ~25 us the walkers and a
few us the lights (the lights' stop lines on the route are found once per route).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from ..scenario import VehicleConfig
from ..types import Control, Step, TrafficLight, TrafficLightState
from .config import ExpertConfig
from ..control import curvature_to_steer
from .controllers import LongitudinalController, tracking_curvature
from ..sim.infractions import REAR_NEAR
from .local_planner import Lead, RouteTracker, lead_vehicle, walker_obstacle

if TYPE_CHECKING:  # pragma: no cover
    import carla

__all__ = ["Expert"]

#: A light's stop moved back for the view (``light_view_angle``) is given up where the car
#: could not stop before it at this many ``comfort_decel`` (below the 1.5 at which the
#: expert brakes in full).
_VIEW_DECEL = 1.4


class Expert:
    """Rule-based route-following expert (a :class:`~drive_il.driver.Driver`).

    Args:
        config: the expert preset.
        vehicle: the ego vehicle (wheelbase, maximum steering angle).
        carla_map: the town (optional; the expert needs only the route in the world
            state, which the simulator plans on this map).

    Attributes:
        name: "expert".
        target_speed: the target speed of the last step [m/s]: the route's speed
            profile lowered for lights, walkers and vehicles. This is the learner's
            speed label (what a speed head learns to predict).
        stop_reason: what lowered the target speed below the route's speed profile at
            the last step: "red_light", "yellow_light", "walker", "vehicle", or "" (the
            profile itself: cruise, curve, junction, route end).
        obstacle: the obstacle named by ``stop_reason`` (a :class:`Lead`: ``gap`` from
            the front bumper [m], ``speed`` along the route [m/s], ``actor_id``, ``kind``),
            or None when ``stop_reason`` is "".
        max_deceleration: the emergency deceleration ``emergency_brake *
            vehicle.max_deceleration`` [m/s^2] (red-light and takeover rules).
        lateral_deviation: signed distance of the ego from the route at the last step
            [m], + = right.
        heading_error: ego yaw minus route direction at the last step [rad].
        route_progress: arc length of the ego's projection on the route [m].
        lead: the nearest vehicle on the path ahead at the last step (or None).
    """

    name = "expert"

    @classmethod
    def for_scenario(cls, scenario: Any, *, preset: str | None = None) -> "Expert":
        """The expert of ``scenario``: its expert preset (``preset``, a name in ``experts/``
        or a path; default the scenario's ``expert``) on its vehicle.

        Raises:
            ConfigError: unknown preset or bad preset file.
        """
        from .config import load_expert_config
        return cls(config=load_expert_config(preset or scenario.expert), vehicle=scenario.vehicle)

    def __init__(self, *, config: ExpertConfig, vehicle: VehicleConfig,
                 carla_map: carla.Map | None = None) -> None:
        self.config = config
        self.vehicle = vehicle
        self.carla_map = carla_map
        self._L = float(vehicle.wheelbase)
        self._h = 0.5 * self._L
        self._max_angle = math.radians(vehicle.max_steer_deg)
        self._length = float(vehicle.length)
        self._width = float(vehicle.width)
        self._lon = LongitudinalController(config)
        self._tracker: RouteTracker | None = None
        self._route = None
        self._pose = (0.0, 0.0, 0.0)
        self._target = (0.0, 0.0)
        self._s0 = 0.0
        self._lookahead = config.min_lookahead
        self.target_speed = 0.0
        self.lateral_deviation = 0.0
        self.heading_error = 0.0
        self.route_progress = 0.0
        self.lead: Lead | None = None
        self.stop_reason = ""
        self.obstacle: Lead | None = None
        self.max_deceleration = float(config.emergency_brake * vehicle.max_deceleration)
        self._light_sig: tuple | None = None
        self._light_stops: list[tuple[float, int, float]] = []   # (s of the line, light id, view extra [m])
        self._view_latch: tuple[int, float] | None = None   # (light id, its stop moved back [m])
        self._light_pos: dict[int, int] = {}
        self._committed: int | None = None

    # ------------------------------------------------------------------ Driver API

    def reset(self, step: Step) -> None:
        """Prepare for a new episode: precompute the route arrays, clear the PID.

        The steering geometry (wheelbase, maximum road-wheel angle, length) is taken
        from the ego's state, so labels match the car actually driven (on a CARLA
        server these come from the blueprint's physics, not from the scenario).
        """
        ego = step.world_state.ego
        if ego.wheelbase > 0 and ego.max_steer_angle > 0:
            self._L = float(ego.wheelbase)
            self._h = 0.5 * self._L
            self._max_angle = float(ego.max_steer_angle)
            self._length = float(ego.length)
            self._width = float(ego.width)
        self._lon.reset()
        self._route = None
        self._tracker = None
        self.lead = None
        self.stop_reason = ""
        self.obstacle = None
        self._committed = None
        self._bind_route(step)

    def _bind_route(self, step: Step) -> None:
        route = step.world_state.route
        if route is None:
            self._tracker = None
            self._route = None
            return
        self._tracker = RouteTracker(route, self.config)
        self._route = route
        self._light_sig = None
        self._view_latch = None
        ego = step.world_state.ego
        self._tracker.locate(ego.x, ego.y, ego.yaw, first=True)

    def act(self, step: Step) -> Control:
        """The expert's control for this state (see module docstring).

        Without a route it brakes to a stop with the wheels straight.
        """
        ws = step.world_state
        if ws.route is not self._route:
            self._bind_route(step)
        tr = self._tracker
        ego = ws.ego
        cfg = self.config
        if tr is None:
            self.target_speed = 0.0
            self.stop_reason = ""
            self.obstacle = None
            return Control(0.0, 0.0, cfg.max_brake)
        dt = ws.dt if ws.dt > 0 else 0.05
        yaw = ego.yaw
        p = tr.locate(ego.x, ego.y, yaw)
        s0 = p.s
        v = max(0.0, ego.speed)
        h = self._h
        # --- lateral: pure pursuit + curvature feed-forward about the rear axle -------
        ld = cfg.min_lookahead + cfg.lookahead_time * v
        ld = min(ld, cfg.max_lookahead)
        tx, ty, _ = tr.point_at(s0 + ld)
        k = tracking_curvature(ego.x - h * math.cos(yaw), ego.y - h * math.sin(yaw), yaw, proj_x=p.x, proj_y=p.y,
                               path_yaw=yaw - p.heading_error, target_x=tx, target_y=ty,
                               path_curvature=tr.curvature_at(s0),
                               preview_curvature=tr.curvature_at(s0 + v * cfg.preview_time), half_wheelbase=h,
                               speed=v, recovery_lateral_accel=cfg.recovery_lateral_accel)
        steer = curvature_to_steer(k, self._L, self._max_angle, clip=False)
        ms = cfg.max_steer
        steer = ms if steer > ms else (max(steer, -ms))
        if cfg.max_steer_rate > 0.0:
            cur = ego.steer_angle / self._max_angle
            r = cfg.max_steer_rate * dt
            if steer > cur + r:
                steer = cur + r
            elif steer < cur - r:
                steer = cur - r
            steer = 1.0 if steer > 1.0 else (max(steer, -1.0))
        # --- longitudinal ------------------------------------------------------------
        vt = tr.speed_at(s0)
        v_profile = vt
        emergency = False
        reason = ""
        obstacle = None
        lead = lead_vehicle(tr, ws.actors, ego_x=ego.x, ego_y=ego.y, ego_yaw=yaw, ego_s=s0,
                            ego_speed=v,
                            ego_length=self._length, ego_width=self._width, config=cfg) if ws.actors else None
        if lead is not None:
            v_lead, emergency = self._follow(lead, v)
            vt = min(vt, v_lead)
            if v_lead < v_profile:
                reason, obstacle = "vehicle", lead
        if ws.walkers:
            walker = walker_obstacle(tr, ws.walkers, ego_x=ego.x, ego_y=ego.y, ego_yaw=yaw, ego_s=s0,
                                     ego_speed=v, ego_length=self._length, config=cfg)
            if walker is not None:
                v_w, em = self._follow(walker, v)
                emergency = emergency or em
                if v_w < vt:
                    vt, reason, obstacle = v_w, "walker", walker
        if ws.traffic_lights:
            stop = self._light_stop(ws.traffic_lights, s0 + 0.5 * self._length, v, v_allowed=vt)
            if stop is None:
                self._view_latch = None
            else:
                free = stop.gap - cfg.stop_line_margin
                b = cfg.comfort_decel
                if free <= 0.0:
                    v_l, em = 0.0, v > 0.5
                else:
                    v_l, em = math.sqrt(2.0 * b * free), v * v / (2.0 * free) > 1.5 * b
                emergency = emergency or em
                if v_l < vt:
                    vt, reason, obstacle = v_l, stop.kind, stop
        throttle, brake = self._lon.control(v, vt, dt)
        if emergency:
            throttle, brake = 0.0, cfg.emergency_brake
        # --- bookkeeping for the overlay / metrics (cheap) ---------------------------
        self.target_speed = vt
        self.lead = lead
        self.stop_reason = reason
        self.obstacle = obstacle
        self.lateral_deviation = p.lateral
        self.heading_error = p.heading_error
        self.route_progress = s0
        self._pose = (ego.x, ego.y, yaw)
        self._target = (tx, ty)
        self._s0 = s0
        self._lookahead = ld
        return Control(steer, throttle, brake)

    def _follow(self, lead: Lead, v: float) -> tuple[float, bool]:
        """Target speed [m/s] behind an obstacle ``lead`` and whether to brake fully:
        a time gap ``time_gap`` to a moving one, a stop ``stop_gap`` behind it along the
        braking curve at ``comfort_decel`` (IDM-like; see :mod:`.local_planner`), full
        brake when that needs more than 1.5 ``comfort_decel`` (or the gap is gone)."""
        cfg = self.config
        free = lead.gap - cfg.stop_gap
        b = cfg.comfort_decel
        emergency = False
        if free <= 0.0:
            v_lead = 0.0
            emergency = v > 0.5
        else:
            v_brake = math.sqrt(lead.speed * lead.speed + 2.0 * b * free)
            v_gap = lead.speed + (free - cfg.time_gap * v) / cfg.time_gap
            v_lead = max(0.0, min(v_brake, v_gap))
            if v > lead.speed:
                emergency = (v * v - lead.speed * lead.speed) / (2.0 * free) > 1.5 * b
        return v_lead, emergency

    def _light_stop(self, lights: tuple[TrafficLight, ...], s_front: float, v: float, *,
                    v_allowed: float = math.inf) -> Lead | None:
        """The traffic light the car must stop for (see the module docstring), as a
        ``Lead`` (``gap`` front bumper to stop line [m], kind "red_light" or
        "yellow_light"), or None.

        Args:
            lights: the world's traffic lights (their stop lines on this route are
                found once per route and set of lights).
            s_front: arc length of the front bumper on the route [m].
            v: speed [m/s] (>= 0).
            v_allowed: the target speed before the lights [m/s] (the route's speed profile
                lowered for the vehicles and walkers ahead): a car over the line at yellow
                clears it at no more than this.
        """
        sig = (len(lights), lights[0].light_id, lights[0].stop_line, lights[-1].light_id)
        if sig != self._light_sig:
            self._light_pos = {light.light_id: k for k, light in enumerate(lights)}
            self._light_stops = [(s_line, lid, self._view_extra(lights[self._light_pos[lid]], s_line))
                                 for s_line, lid in self._tracker.light_stops(lights)]
            self._light_sig = sig
        cfg = self.config
        pos = self._light_pos
        # the leaderboard's red-light test point (drive_il.sim.infractions.RedLightRule):
        # REAR_NEAR half-lengths behind the centre
        s_rear = s_front - 0.5 * self._length * (1.0 + REAR_NEAR)
        for s_line, lid, extra in self._light_stops:
            gap = s_line - s_front
            if s_line < s_rear:  # the rear is past this stop line: the light is behind
                if lid == self._committed:
                    self._committed = None
                continue
            if gap > cfg.detection_range:
                break
            k = pos.get(lid, -1)
            if not 0 <= k < len(lights) or lights[k].light_id != lid:  # the tuple was reordered
                self._light_pos = pos = {light.light_id: j for j, light in enumerate(lights)}
                k = pos.get(lid, -1)
                if k < 0:
                    continue
            state = lights[k].state
            if gap < 0.0:  # the front is over the line, the red-light test point is not
                stoppable = v * v <= 2.0 * self.max_deceleration * (s_line - s_rear)
                if state == TrafficLightState.RED and (v < 0.5 or stoppable):
                    return Lead(gap=gap, speed=0.0, actor_id=lid, kind="red_light")
                # yellow: hold where it crept over the line in a queue, or where it had
                # decided to stop; a car that went on at the dilemma decision goes on unless
                # the test point would not clear the line before the red at the speed the
                # traffic ahead allows
                if state == TrafficLightState.YELLOW and (v < 0.5 or (stoppable and (
                        lid == self._committed or (s_line - s_rear) > min(v, v_allowed) * (
                            lights[k].yellow_time - lights[k].elapsed)))):
                    return Lead(gap=gap, speed=0.0, actor_id=lid, kind="yellow_light")
                continue
            if state == TrafficLightState.RED:
                if v < 0.5 or v * v <= 2.0 * self.max_deceleration * gap:
                    return self._moved_back(Lead(gap=gap, speed=0.0, actor_id=lid, kind="red_light"), extra, v)
                continue  # cannot stop before the line any more: clear the junction
            if state == TrafficLightState.YELLOW:
                free = gap - cfg.stop_line_margin
                if v < 0.5 or (free > 0.0 and v * v <= 2.0 * cfg.comfort_decel * free):
                    self._committed = lid
                    return self._moved_back(Lead(gap=gap, speed=0.0, actor_id=lid, kind="yellow_light"), extra, v)
                hard = v * v <= 2.0 * self.max_deceleration * gap
                if lid == self._committed and hard:
                    return self._moved_back(Lead(gap=gap, speed=0.0, actor_id=lid, kind="yellow_light"), extra, v)
                # the dilemma zone: go on when the red-light test point clears the line
                # before the yellow ends (at the present speed), else stop, harder
                if hard and (s_line - s_rear) > v * (lights[k].yellow_time - lights[k].elapsed):
                    self._committed = lid
                    return self._moved_back(Lead(gap=gap, speed=0.0, actor_id=lid, kind="yellow_light"), extra, v)
                continue
            if lid == self._committed:
                self._committed = None
        return None

    def _view_extra(self, light: TrafficLight, s_line: float) -> float:
        """How much farther back than ``stop_line_margin`` [m] the expert stops for
        ``light`` (whose stop line lies at route arc length ``s_line``) to keep its head
        within ``light_view_angle`` of the lane direction (``ExpertConfig``); 0 when off."""
        cfg = self.config
        if cfg.light_view_angle <= 0.0:
            return 0.0
        x, y, yaw = self._tracker.point_at(s_line)
        c, s = math.cos(yaw), math.sin(yaw)
        dx, dy = light.x - x, light.y - y
        need = dx * c + dy * s + abs(dy * c - dx * s) / math.tan(math.radians(cfg.light_view_angle))
        return max(0.0, min(need, cfg.max_stop_line_margin) - cfg.stop_line_margin)

    def _moved_back(self, stop: Lead, extra: float, v: float) -> Lead:
        """``stop`` with its line moved ``extra`` [m] back (:meth:`_view_extra`), less
        where the car at ``v`` [m/s] could not stop before it at :data:`_VIEW_DECEL`
        ``comfort_decel`` (below 1.5 ``comfort_decel``, the expert's full-brake
        threshold): the stop point is then as far back as the car can stop at that
        deceleration (never nearer the line than ``stop_line_margin``), so the moved
        line never makes the expert brake in full.
        (At ``comfort_decel`` itself the braking curve's lag behind the target would
        give the extra up step by step.) ``Lead.gap`` is to the moved line: the expert
        stops ``stop_line_margin`` before it, and the recorded obstacle gap (the
        learner's gap label) is to it too. The amount is decided when the stop first
        comes up and kept while the expert keeps stopping for that light."""
        if extra <= 0.0:
            return stop
        latch = self._view_latch
        if latch is not None and latch[0] == stop.actor_id:
            e = latch[1]   # fixed for this stop: a stop point that moves with the car would let it creep
        else:
            cfg = self.config
            e = max(0.0, min(extra, stop.gap - cfg.stop_line_margin - v * v / (2.0 * _VIEW_DECEL * cfg.comfort_decel)))
            self._view_latch = (stop.actor_id, e)
        if e <= 0.0:
            return stop
        return Lead(gap=stop.gap - e, speed=stop.speed, actor_id=stop.actor_id, kind=stop.kind)

    # ------------------------------------------------------------------ overlay

    @property
    def intended_path(self) -> np.ndarray:
        """(K, 2) the expert's planned path [m] (world x, y) from the last ``act``: a
        cubic Hermite curve from the ego (along its heading) to the lookahead point
        (along the route), then the route for a further 20 m. Computed on demand (not
        in ``act``). Empty (0, 2) before the first ``act`` or without a route."""
        tr = self._tracker
        if tr is None:
            return np.zeros((0, 2))
        x0, y0, yaw0 = self._pose
        tx, ty = self._target
        s_t = self._s0 + self._lookahead
        _, _, tyaw = tr.point_at(s_t)
        L = math.hypot(tx - x0, ty - y0)
        t = np.linspace(0.0, 1.0, 12)
        t2, t3 = t * t, t * t * t
        h00, h10, h01, h11 = 2 * t3 - 3 * t2 + 1, t3 - 2 * t2 + t, -2 * t3 + 3 * t2, t3 - t2
        hx = h00 * x0 + h10 * L * math.cos(yaw0) + h01 * tx + h11 * L * math.cos(tyaw)
        hy = h00 * y0 + h10 * L * math.sin(yaw0) + h01 * ty + h11 * L * math.sin(tyaw)
        ss = np.arange(1, 21, dtype=np.float64) + s_t
        ss = ss[ss <= tr.length]
        rest = np.array([tr.point_at(float(s))[:2] for s in ss]).reshape(-1, 2)
        return np.vstack([np.stack([hx, hy], 1), rest])
