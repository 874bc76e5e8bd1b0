"""Kinematic bicycle model of a mid-size car with CARLA's control semantics.

The model (Rajamani, *Vehicle Dynamics and Control*, 2nd ed., 2012, sec. 2.2; the
kinematic bicycle with the rear axle as reference, as in Kong et al., "Kinematic and
dynamic vehicle models for autonomous driving control design", IV 2015) integrates

    dx/dt = v cos(yaw),  dy/dt = v sin(yaw),  dyaw/dt = v tan(delta) / L

for the **rear-axle centre** (x, y), where L is the wheelbase and delta the road-wheel
angle (+ = right; CARLA's yaw grows from +x towards +y, so a right turn increases yaw).
The public pose (:class:`~drive_il.types.VehicleState`) is the bounding-box centre, as
CARLA's ``actor.get_location()``: the rear axle plus ``L / 2`` forward.

Within one fixed step ``dt`` the road-wheel angle is taken constant (the mean of its
values at the start and end of the step) and the travelled distance is
``(v0 + v1) / 2 * dt`` (exact under constant acceleration). The rear axle then moves on
the exact circular arc of curvature ``tan(delta) / L`` (a straight segment when the
curvature is ~0), so constant steering drives a circle of radius ``L / tan(delta)`` and a
constant speed covers ``v t`` with no integration error.

Controls (``carla.VehicleControl`` semantics):

* ``steer`` in [-1, 1] times ``max_steer_angle`` is the commanded road-wheel angle; the
  actual angle follows it through a first-order lag (``steer_time_constant``, exact
  discretisation ``1 - exp(-dt / tau)``) and a rate limit (``max_steer_rate_deg``).
* ``throttle`` gives a drive acceleration ``throttle * min(max_acceleration,
  max_power_per_mass / |v|)`` (traction- then power-limited), forwards or, with
  ``reverse``, backwards (reverse speed capped at :data:`REVERSE_MAX_SPEED`).
* ``brake`` gives a deceleration ``brake * max_deceleration`` against the motion;
  ``hand_brake`` adds :data:`HAND_BRAKE_DECELERATION`.
* Aerodynamic drag ``c_d v^2`` (``drag_coefficient`` = 0.5 rho Cd A / m) and rolling
  resistance ``c_r g`` oppose the motion. Resistive forces only ever bring the car to
  rest: braking never makes it roll backwards.
* Top speed ``max_speed``.

This is the per-step hot path: pure Python floats and ``math``; no numpy, no allocation
other than the returned :class:`VehicleState` (built only when asked for).
"""

from __future__ import annotations

import math

from ...scenario import VehicleConfig
from ...types import Control, VehicleState

__all__ = ["BicycleModel", "GRAVITY", "HAND_BRAKE_DECELERATION", "REVERSE_MAX_SPEED"]

#: Standard gravity [m/s^2].
GRAVITY = 9.81
#: Deceleration added by the hand brake [m/s^2]: rear wheels locked, about half the car's
#: weight on them with a tyre-road friction of ~0.8 (0.5 * 0.8 * g ~ 4 m/s^2).
HAND_BRAKE_DECELERATION = 4.0
#: Reverse gear top speed [m/s] (~29 km/h).
REVERSE_MAX_SPEED = 8.0
#: Below this curvature [1/m] (radius > 10 km) a step is integrated as a straight line.
_STRAIGHT_CURVATURE = 1e-9
#: Below this speed [m/s] the car counts as at rest for the resistive forces.
_REST_SPEED = 1e-6


class BicycleModel:
    """A kinematic bicycle vehicle, advanced by :meth:`step` with a fixed ``dt``.

    Internal state is the rear-axle centre; :attr:`x`, :attr:`y` (properties) and
    :meth:`state` give the bounding-box centre.

    Args:
        config: the vehicle (wheelbase, bounding box, steering, engine, brakes, drag).
        x, y: initial bounding-box centre [m] (world frame).
        yaw: initial heading [rad].
        speed: initial signed longitudinal speed [m/s].
        z: ground height [m] (kept constant: the embedded world is flat).
    """

    __slots__ = (
        "wheelbase", "half_wheelbase", "length", "width", "height", "max_steer_angle",
        "steer_tau", "max_steer_rate", "max_acceleration", "max_power_per_mass",
        "max_deceleration", "drag", "rolling", "max_speed",
        "rx", "ry", "yaw", "speed", "steer_angle", "yaw_rate", "acceleration", "z",
        "odometer",
    )

    def __init__(self, config: VehicleConfig, *, x: float, y: float, yaw: float,
                 speed: float = 0.0, z: float = 0.0) -> None:
        self.wheelbase = float(config.wheelbase)
        self.half_wheelbase = 0.5 * self.wheelbase
        self.length = float(config.length)
        self.width = float(config.width)
        self.height = float(config.height)
        self.max_steer_angle = math.radians(config.max_steer_deg)
        self.steer_tau = float(config.steer_time_constant)
        self.max_steer_rate = math.radians(config.max_steer_rate_deg)
        self.max_acceleration = float(config.max_acceleration)
        self.max_power_per_mass = float(config.max_power_per_mass)
        self.max_deceleration = float(config.max_deceleration)
        self.drag = float(config.drag_coefficient)
        self.rolling = float(config.rolling_resistance) * GRAVITY
        self.max_speed = float(config.max_speed)
        self.z = float(z)
        self.odometer = 0.0
        self.rx = self.ry = self.yaw = self.speed = 0.0
        self.steer_angle = self.yaw_rate = self.acceleration = 0.0
        self.set_pose(x, y, yaw, speed)

    # -- pose -------------------------------------------------------------------------
    def set_pose(self, x: float, y: float, yaw: float, speed: float = 0.0,
                 steer_angle: float = 0.0) -> None:
        """Teleport: bounding-box centre (x, y) [m], heading [rad], speed [m/s];
        resets the road-wheel angle, yaw rate and acceleration."""
        yaw = float(yaw)
        self.yaw = yaw
        self.rx = float(x) - self.half_wheelbase * math.cos(yaw)
        self.ry = float(y) - self.half_wheelbase * math.sin(yaw)
        self.speed = float(speed)
        a = self.max_steer_angle
        self.steer_angle = min(a, max(-a, float(steer_angle)))
        self.yaw_rate = 0.0
        self.acceleration = 0.0

    def teleport(self, x: float, y: float, yaw: float, *, z: float | None = None,
                 speed: float = 0.0) -> None:
        """:meth:`set_pose` (road wheels straight) and, when given, the ground height
        ``z`` [m]."""
        self.set_pose(x, y, yaw, speed)
        if z is not None:
            self.z = float(z)

    def set_speed(self, speed: float) -> None:
        """Signed longitudinal speed [m/s]; pose, steering and yaw rate unchanged."""
        self.speed = float(speed)

    @property
    def x(self) -> float:
        """Bounding-box centre x [m]."""
        return self.rx + self.half_wheelbase * math.cos(self.yaw)

    @property
    def y(self) -> float:
        """Bounding-box centre y [m]."""
        return self.ry + self.half_wheelbase * math.sin(self.yaw)

    def state(self) -> VehicleState:
        """The public state (bounding-box centre reference)."""
        yaw = self.yaw
        h = self.half_wheelbase
        return VehicleState(
            x=self.rx + h * math.cos(yaw), y=self.ry + h * math.sin(yaw), yaw=yaw,
            speed=self.speed, z=self.z, steer_angle=self.steer_angle,
            yaw_rate=self.yaw_rate, acceleration=self.acceleration,
            length=self.length, width=self.width, height=self.height,
            wheelbase=self.wheelbase, max_steer_angle=self.max_steer_angle)

    # -- dynamics ---------------------------------------------------------------------
    def longitudinal(self, throttle: float, brake: float, hand_brake: bool,
                     reverse: bool, dt: float) -> float:
        """Advance the speed by ``dt`` and return the new speed [m/s] (also stored).

        The acceleration is evaluated at the speed at the start of the step (explicit
        Euler on v); a resistive deceleration that would reverse the motion stops the
        car at rest instead.
        """
        v = self.speed
        av = v if v >= 0.0 else -v
        # Drive acceleration: traction-limited at low speed, power-limited above.
        drive = 0.0
        if throttle > 0.0:
            limit = self.max_acceleration
            if av > 0.0:
                p = self.max_power_per_mass / av
                if p < limit:
                    limit = p
            drive = throttle * limit
            if reverse:
                drive = -drive
        # Resistive decelerations (magnitudes, against the motion).
        resist = brake * self.max_deceleration + self.rolling
        if hand_brake:
            resist += HAND_BRAKE_DECELERATION
        if av > _REST_SPEED:
            sgn = 1.0 if v > 0.0 else -1.0
            resist += self.drag * v * v
            v1 = v + (drive - sgn * resist) * dt
            if v1 * sgn < 0.0 and not (drive * sgn < 0.0 and drive * drive > resist * resist):
                v1 = 0.0  # resistances stop the car; they never push it backwards
        else:
            ad = drive if drive >= 0.0 else -drive
            if ad > resist:
                v1 = (drive - resist * (1.0 if drive > 0.0 else -1.0)) * dt
            else:
                v1 = 0.0
        if v1 > self.max_speed:
            v1 = self.max_speed
        elif v1 < -REVERSE_MAX_SPEED:
            v1 = -REVERSE_MAX_SPEED
        self.acceleration = (v1 - v) / dt
        self.speed = v1
        return v1

    def steer_toward(self, steer: float, dt: float) -> float:
        """Move the road-wheel angle toward ``steer * max_steer_angle`` through the
        first-order lag and the rate limit; returns the new angle [rad]."""
        target = steer * self.max_steer_angle
        d = self.steer_angle
        tau = self.steer_tau
        if tau > 0.0:
            nd = d + (target - d) * (1.0 - math.exp(-dt / tau))
        else:
            nd = target
        lim = self.max_steer_rate * dt
        ch = nd - d
        if ch > lim:
            nd = d + lim
        elif ch < -lim:
            nd = d - lim
        self.steer_angle = nd
        return nd

    def advance(self, distance: float, delta: float) -> None:
        """Move the rear axle ``distance`` [m] (signed) along the exact arc of constant
        road-wheel angle ``delta`` [rad]."""
        k = math.tan(delta) / self.wheelbase
        yaw0 = self.yaw
        if -_STRAIGHT_CURVATURE < k < _STRAIGHT_CURVATURE:
            self.rx += distance * math.cos(yaw0)
            self.ry += distance * math.sin(yaw0)
        else:
            yaw1 = yaw0 + distance * k
            # Integral of (cos, sin)(yaw0 + k s) ds over [0, distance].
            self.rx += (math.sin(yaw1) - math.sin(yaw0)) / k
            self.ry -= (math.cos(yaw1) - math.cos(yaw0)) / k
            # keep yaw in [-pi, pi)
            if yaw1 >= math.pi or yaw1 < -math.pi:
                yaw1 = (yaw1 + math.pi) % (2.0 * math.pi) - math.pi
            self.yaw = yaw1
        self.odometer += distance if distance >= 0.0 else -distance

    def step(self, control: Control, dt: float) -> None:
        """Apply ``control`` for ``dt`` seconds."""
        self.step_raw(control.steer, control.throttle, control.brake,
                      control.hand_brake, control.reverse, dt)

    def step_raw(self, steer: float, throttle: float, brake: float, hand_brake: bool,
                 reverse: bool, dt: float) -> None:
        """:meth:`step` on plain values (no Control object)."""
        d0 = self.steer_angle
        d1 = self.steer_toward(steer, dt)
        v0 = self.speed
        v1 = self.longitudinal(throttle, brake, hand_brake, reverse, dt)
        dist = 0.5 * (v0 + v1) * dt
        delta = 0.5 * (d0 + d1)
        self.advance(dist, delta)
        self.yaw_rate = 0.5 * (v0 + v1) * math.tan(delta) / self.wheelbase
