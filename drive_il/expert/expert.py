"""The rule-based expert: the teacher whose steering every learner imitates.

It reads only ``step.world_state`` (privileged: the ego's pose and speed, the route,
the other vehicles), never pixels. Per step it

1. projects the ego onto the route near its last projection (:class:`RouteTracker`);
2. steers with pure pursuit plus curvature feed-forward about the rear axle towards a
   route point a speed-dependent lookahead ahead (see :mod:`.controllers` for why), the
   correcting part capped by a lateral-acceleration limit at speed and the change from
   the vehicle's current road-wheel angle capped per second;
3. picks a target speed from the route's precomputed speed profile (speed limit or
   cruise speed, curves, junctions, route end) and the nearest vehicle on the path
   ahead (time gap, stop gap), and tracks it with a PID
   (:class:`~.controllers.LongitudinalController`).

Because the steering aims at a point on the route *ahead* and the projection never
jumps back along the route, the label is a smooth return to the lane from any state:
off centre, off heading, on the neighbouring lane, at rest (DAgger relabels exactly
such states; Ross, Gordon, Bagnell 2011). The label depends on the state only (plus the
speed PID's integral): it is deterministic.

Cost: no ``carla.Map`` call per step; a scalar projection near the last one (numpy
over ~70 segments only when the car jumped) and scalar arithmetic: about 20-30 us per
step without traffic, 40-110 us with 25 NPC vehicles on Town01 (2-vCPU machine).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from ..scenario import VehicleConfig
from ..types import Control, Step
from .config import ExpertConfig
from ..control import curvature_to_steer, pure_pursuit_curvature
from .controllers import LongitudinalController, rear_curvature
from .local_planner import Lead, RouteTracker, lead_vehicle

if TYPE_CHECKING:  # pragma: no cover
    import carla

__all__ = ["Expert"]


class Expert:
    """Rule-based route-following expert (a :class:`~drive_il.driver.Driver`).

    Args:
        config: the expert preset.
        vehicle: the ego vehicle (wheelbase, maximum steering angle).
        carla_map: the town (optional; the expert needs only the route in the world
            state, which the simulator plans on this map).

    Attributes:
        name: "expert".
        target_speed: the target speed of the last step [m/s].
        lateral_deviation: signed distance of the ego from the route at the last step
            [m], + = right.
        heading_error: ego yaw minus route direction at the last step [rad].
        route_progress: arc length of the ego's projection on the route [m].
        lead: the obstacle the last step reacted to (or None).
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
        self._lon.reset()
        self._route = None
        self._tracker = None
        self.lead = None
        self._bind_route(step)

    def _bind_route(self, step: Step) -> None:
        route = step.world_state.route
        if route is None:
            self._tracker = None
            self._route = None
            return
        self._tracker = RouteTracker(route, self.config)
        self._route = route
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
        cy, sy = math.cos(yaw), math.sin(yaw)
        k_act = pure_pursuit_curvature(ego.x - h * cy, ego.y - h * sy, yaw, tx, ty)
        kr0 = rear_curvature(tr.curvature_at(s0), h)
        path_yaw = yaw - p.heading_error
        yi = path_yaw - math.atan(h * kr0)
        k_ideal = pure_pursuit_curvature(p.x - h * math.cos(yi), p.y - h * math.sin(yi), yi, tx, ty)
        k_fb = k_act - k_ideal
        if v > 1.0:
            kmax = cfg.recovery_lateral_accel / (v * v)
            if k_fb > kmax:
                k_fb = kmax
            elif k_fb < -kmax:
                k_fb = -kmax
        k_ff = rear_curvature(tr.curvature_at(s0 + v * cfg.preview_time), h)
        steer = curvature_to_steer(k_ff + k_fb, self._L, self._max_angle, clip=False)
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
        emergency = False
        lead = lead_vehicle(tr, ws.actors, ego_x=ego.x, ego_y=ego.y, ego_yaw=yaw, ego_s=s0,
                            ego_speed=v,
                            ego_length=self._length, config=cfg) if ws.actors else None
        if lead is not None:
            free = lead.gap - cfg.stop_gap
            b = cfg.comfort_decel
            if free <= 0.0:
                v_lead = 0.0
                emergency = v > 0.5
            else:
                v_brake = math.sqrt(lead.speed * lead.speed + 2.0 * b * free)
                v_gap = lead.speed + (free - cfg.time_gap * v) / cfg.time_gap
                v_lead = max(0.0, min(v_brake, v_gap))
                if v > lead.speed:
                    emergency = (v * v - lead.speed * lead.speed) / (2.0 * free) > 1.5 * b
            vt = min(vt, v_lead)
        throttle, brake = self._lon.control(v, vt, dt)
        if emergency:
            throttle, brake = 0.0, cfg.emergency_brake
        # --- bookkeeping for the overlay / metrics (cheap) ---------------------------
        self.target_speed = vt
        self.lead = lead
        self.lateral_deviation = p.lateral
        self.heading_error = p.heading_error
        self.route_progress = s0
        self._pose = (ego.x, ego.y, yaw)
        self._target = (tx, ty)
        self._s0 = s0
        self._lookahead = ld
        return Control(steer, throttle, brake)

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
