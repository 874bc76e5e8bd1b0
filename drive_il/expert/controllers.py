"""Low-level controllers of the expert: lateral (steering) and longitudinal (speed).

Lateral: **pure pursuit with curvature feed-forward**, about the rear axle.

Why pure pursuit and not Stanley or a PID on the cross-track error:

* The expert must give a sensible label from *any* state (DAgger, Ross et al. 2011):
  1.5 m off centre, 25 deg off heading, on the next lane, at rest. Pure pursuit
  (Coulter, "Implementation of the Pure Pursuit Path Tracking Algorithm", CMU-RI-TR-92-01,
  1992) steers onto the circular arc that joins the rear axle to a point on the route a
  lookahead distance ahead. The return path is therefore a smooth arc that reaches the
  route *ahead* of the car, never a sharp turn towards the nearest route point, and it
  is well defined at zero speed. Stanley (Thrun et al., "Stanley: The robot that won the
  DARPA Grand Challenge", J. Field Robotics 23(9), 2006, eq. 8:
  ``delta = psi + atan(k e / v)``) saturates to full lock at low speed for any
  cross-track error, and a PID on the cross-track error has no notion of where the road
  goes: both cut back sharply (across the road edge) from large offsets.
* Its output is a curvature ``kappa = 2 y / Ld^2`` — exactly DAVE-2's label, the inverse
  turning radius (Bojarski et al. 2016) — and ALVINN's target is the curvature that
  brings the vehicle back to the road centre a fixed distance ahead (Pomerleau 1989): the
  same geometry, so the labels are natural for both learners.
* Its known weakness, cutting corners (steady error ~ Ld^2 / 2R on a curve of radius R,
  Snider, "Automatic Steering Methods for Autonomous Automobile Path Tracking",
  CMU-RI-TR-09-08, 2009, sec. 2.2), is removed by a **curvature feed-forward**: the
  command is ``kappa_ff + kappa_pp(actual pose) - kappa_pp(ideal pose)``, where the ideal
  pose is the car exactly on the route at its projection, with the steady-state heading
  of a kinematic bicycle on that curvature. On the route the two pure-pursuit terms
  cancel and the feed-forward alone holds the curve with zero error; off the route the
  difference is the pure-pursuit correction (the same linearised gains as plain pure
  pursuit). The feed-forward is read ``preview_time`` ahead to cover the steering lag.
* The tracked point is the vehicle's reference point (bounding-box centre), where the lateral deviation
  is measured: for a rear-axle curvature ``kr`` the centre, ``h = L/2`` ahead, runs on a
  circle of radius ``sqrt(1/kr^2 + h^2)``, so the feed-forward uses
  ``kr = kc / sqrt(1 - (h kc)^2)`` for a route curvature ``kc``, and the centre's
  velocity leads the heading by ``atan(h kr)``.
* The lookahead grows with speed, ``Ld = min_lookahead + lookahead_time * v`` (capped),
  as in Coulter (1992) and Snider (2009) sec. 2.2.

The steering angle is ``atan(L kappa)`` (kinematic bicycle; Rajamani 2012, sec. 2.2),
normalised by the vehicle's maximum road-wheel angle (CARLA's ``steer``). The pure-pursuit
curvature and the steer <-> curvature conversion live in :mod:`drive_il.control`.

Longitudinal: a PID on the speed error (CARLA's ``PIDLongitudinalController``,
``agents/navigation/controller.py``, gains K_P 1.0, K_I 0.05, K_D 0 on km/h, here in m/s
hence x 3.6) with an anti-windup clamp, mapped to throttle (>= 0) or brake (< 0) with
CARLA's caps (max throttle 0.75; brake, ours, 0.5). The learners reuse it as their cruise
controller (:class:`LongitudinalController`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

from ..control import pure_pursuit_curvature

__all__ = [
    "LongitudinalController",
    "LongitudinalGains",
    "rear_curvature",
    "tracking_curvature",
]


class LongitudinalGains(Protocol):
    """Anything carrying the longitudinal gains (an :class:`ExpertConfig` does)."""

    speed_kp: float
    speed_ki: float
    speed_kd: float
    speed_integral_limit: float
    max_throttle: float
    max_brake: float


@dataclass
class LongitudinalController:
    """PID speed controller with CARLA's control semantics.

    Use (expert, and learners as a cruise controller — issue 5)::

        lon = LongitudinalController(load_expert_config("default"))
        lon.reset()                                   # at each episode start
        throttle, brake = lon.control(speed, target_speed, dt)

    The PID acts on ``e = target_speed - speed`` [m/s]:
    ``u = kp e + ki integral(e dt) + kd de/dt`` with the integral term clamped to
    ``+-speed_integral_limit`` (anti-windup). ``u >= 0`` gives ``throttle = min(u,
    max_throttle)``, ``u < 0`` gives ``brake = min(-u, max_brake)``. A target of
    (almost) zero at (almost) rest holds the car with ``max_brake``.

    Args:
        config: the gains (an ``ExpertConfig`` or any object with the attributes of
            :class:`LongitudinalGains`).
    """

    config: LongitudinalGains
    _integral: float = 0.0
    _last_error: float | None = None

    def reset(self) -> None:
        """Clear the integral and derivative memory (episode start)."""
        self._integral = 0.0
        self._last_error = None

    def control(self, speed: float, target_speed: float, dt: float) -> tuple[float, float]:
        """One control step.

        Args:
            speed: current longitudinal speed [m/s].
            target_speed: desired speed [m/s] (>= 0).
            dt: time since the previous call [s] (> 0).

        Returns:
            (throttle, brake), each in [0, 1], at most one of them non-zero.
        """
        c = self.config
        if target_speed <= 0.05 and speed <= 0.3:
            self._integral = 0.0
            self._last_error = None
            return 0.0, c.max_brake
        e = target_speed - speed
        if c.speed_ki > 0.0:
            lim = c.speed_integral_limit
            self._integral = min(lim, max(-lim, self._integral + c.speed_ki * e * dt))
        d = 0.0 if (self._last_error is None or dt <= 0.0) else (e - self._last_error) / dt
        self._last_error = e
        u = c.speed_kp * e + self._integral + c.speed_kd * d
        if u >= 0.0:
            return min(u, c.max_throttle), 0.0
        return 0.0, min(-u, c.max_brake)


def rear_curvature(kc: float, h: float) -> float:
    """Rear-axle curvature [1/m] that makes the point ``h`` [m] ahead of the rear axle
    run on a circle of curvature ``kc`` (kinematic bicycle)."""
    hk = h * kc
    if hk * hk >= 0.81:  # radius below ~1.1 h: clamp
        hk = math.copysign(0.9, hk)
        return hk / h / math.sqrt(1.0 - hk * hk)
    return kc / math.sqrt(1.0 - hk * hk)


def tracking_curvature(rear_x: float, rear_y: float, yaw: float, *, proj_x: float, proj_y: float, path_yaw: float,
                       target_x: float, target_y: float, path_curvature: float, preview_curvature: float,
                       half_wheelbase: float, speed: float, recovery_lateral_accel: float) -> float:
    """The expert's lateral law (module docstring): the rear-axle curvature [1/m]
    ``kappa_ff + clip(kappa_pp(actual) - kappa_pp(ideal))``, + = right.

    Shared by the expert (on the route, world frame) and the learner's path follower (on
    its predicted path, ego frame: :class:`drive_il.policies.path.PathFollower`).

    Args:
        rear_x, rear_y, yaw: the rear axle [m] and heading [rad] of the car.
        proj_x, proj_y: the car's reference point projected onto the path [m].
        path_yaw: the path's direction there [rad].
        target_x, target_y: the pure-pursuit target on the path [m].
        path_curvature: the path's curvature at the projection [1/m] (sets the ideal
            pose's steady-state heading).
        preview_curvature: the path's curvature ``preview_time`` ahead [1/m] (the
            feed-forward).
        half_wheelbase: h, the reference point's distance ahead of the rear axle [m].
        speed: [m/s]; above 1 m/s the correcting part is capped at
            ``recovery_lateral_accel / v^2``.
        recovery_lateral_accel: [m/s^2].
    """
    h = half_wheelbase
    k_act = pure_pursuit_curvature(rear_x, rear_y, yaw, target_x, target_y)
    kr0 = rear_curvature(path_curvature, h)
    yi = path_yaw - math.atan(h * kr0)
    k_ideal = pure_pursuit_curvature(proj_x - h * math.cos(yi), proj_y - h * math.sin(yi), yi, target_x, target_y)
    k_fb = k_act - k_ideal
    if speed > 1.0:
        kmax = recovery_lateral_accel / (speed * speed)
        if k_fb > kmax:
            k_fb = kmax
        elif k_fb < -kmax:
            k_fb = -kmax
    return rear_curvature(preview_curvature, h) + k_fb
