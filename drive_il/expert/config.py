"""Expert presets (``experts/*.toml``): speeds, lookahead, controller gains, gaps.

All values are SI: m, s, m/s, m/s^2; steering in CARLA's normalised units where the
field says so (1.0 = the vehicle's maximum road-wheel angle). Loading is strict
(:mod:`drive_il.config`): an unknown key, a wrong type or an out-of-range value is a
:class:`~drive_il.errors.ConfigError` naming the file and the field.

Example (``experts/default.toml``)::

    target_speed = 8.0          # [m/s] where the map gives no speed limit
    speed_limit_factor = 1.0    # drive at this fraction of the lane's speed limit
    lateral_accel_limit = 2.5   # [m/s^2] curve speed: v = sqrt(a / |curvature|)
    junction_speed = 5.0        # [m/s] turning through a junction

The longitudinal gains start from CARLA's ``agents/navigation`` LocalPlanner defaults
(K_P 1.0, K_I 0.05, K_D 0 on km/h; REFERENCES.md), converted to m/s (x 3.6).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..config import R, from_dict, read_toml, validate_fields
from ..errors import ConfigError, FieldError

__all__ = ["EXPERTS_DIR", "ExpertConfig", "load_expert_config"]

#: Repository folder with the shipped expert presets.
EXPERTS_DIR = Path(__file__).resolve().parent.parent.parent / "experts"


@dataclass(frozen=True)
class ExpertConfig:
    """Parameters of the rule-based expert (see :class:`drive_il.expert.Expert`).

    Attributes:
        name: preset name (recorded with the data).
        target_speed: cruise speed where the lane has no speed limit [m/s].
        speed_limit_factor: where the map gives a speed limit, drive at
            ``factor * limit`` [-] (never above ``max_speed``).
        max_speed: absolute cap of the desired speed [m/s].
        lateral_accel_limit: curve speed limit ``sqrt(a / |kappa|)`` [m/s^2].
        junction_speed: speed cap through a junction with a LEFT/RIGHT turn [m/s].
        junction_straight_speed: speed cap straight through a junction [m/s].
        comfort_decel: deceleration used to plan slowing down for curves, junctions,
            the route end and a lead vehicle [m/s^2].
        min_lookahead: pure-pursuit lookahead at rest [m].
        lookahead_time: lookahead growth with speed [s] (``Ld = min + time * v``).
        max_lookahead: lookahead cap [m].
        preview_time: the curvature feed-forward is read this far ahead to cover the
            steering lag [s].
        recovery_lateral_accel: cap on the lateral acceleration of the correcting
            (feedback) part of the steering [m/s^2]; limits how hard the expert swerves
            back at speed.
        max_steer: cap on |steer| [-] (1.0 = the vehicle's maximum angle).
        max_steer_rate: cap on the change of the label from the vehicle's *current*
            road-wheel angle, per second [1/s] (0 = no cap). Measured from the state,
            not the previous label, so the label is a function of the state alone.
        speed_kp, speed_ki, speed_kd: longitudinal PID gains on the speed error
            [1/(m/s)], [1/m], [s/m] (output in throttle/brake units).
        speed_integral_limit: anti-windup clamp of the integral term [-].
        max_throttle: [0, 1].
        max_brake: brake used by the PID [0, 1].
        emergency_brake: brake when the needed deceleration exceeds ``comfort_decel``
            by 50 % (a lead vehicle stopping) [0, 1].
        stop_gap: bumper-to-bumper gap kept to a stopped lead vehicle [m].
        time_gap: time headway to a moving lead vehicle [s].
        detection_range: lead vehicles are looked for this far along the route [m].
        corridor_margin: a vehicle counts as on the path when its centre is within
            half the lane width + this of the route [m] (can be negative).
        prediction_time: other vehicles are also checked at their predicted positions
            (constant velocity, every 0.5 s) up to this far in the future, against the
            time the ego reaches that point; catches vehicles crossing or cutting into
            the path at junctions [s].
        route_end_margin: the expert plans to stop this far beyond the route's end [m]
            (it passes the end at a crawl).
        stop_line_margin: for a red (or a stoppable yellow) light the expert stops with
            its front bumper this far before the stop line [m]. 1.5 m: the speed PID's
            stopping error on the embedded car is a few decimetres (tests), and the
            leaderboard's red-light infraction is the front crossing the line, so 1.5 m
            keeps a margin of several stopping errors while leaving the car visibly at
            the line (the 1-2 m drivers leave; a stop line sits ~1.2 m, 4 ft, before a
            crosswalk in the MUTCD, sec. 3B.16).
        light_view_angle: [deg], 0 = off. For a camera learner: the expert stops for a
            light so far back that its head stays within this angle of the lane
            direction at the stop line, seen from the front bumper (a camera behind the
            bumper sees it at a smaller angle) -- ``stop_line_margin`` becomes
            ``max(stop_line_margin, f + |r| / tan(angle))`` (f, r: the head's position
            forward of the stop line and to the side of the route there), at most
            ``max_stop_line_margin``. The extra distance is given up where the car could
            not stop before it at 1.4 ``comfort_decel`` (a light that turns red late:
            the expert then stops as far back as it can at that deceleration, and never
            brakes in full for it: that takes more than 1.5). A head far to the side of
            a wide road (two lanes and a sidewalk: 7 m) is out of a 100 deg camera's
            view from 4 m.
        max_stop_line_margin: cap of the margin that ``light_view_angle`` sets [m].
        walker_margin: a walker is in or entering the lane when its footprint circle
            comes within half the lane width + this of the route [m].
        walker_prediction_time: walkers are predicted at constant velocity (every
            0.5 s) up to this far in the future [s].
    """

    name: str = "default"
    target_speed: float = field(default=8.0, metadata=R(0.0, 60.0))
    speed_limit_factor: float = field(default=1.0, metadata=R(0.0, 1.5))
    max_speed: float = field(default=30.0, metadata=R(0.0, 80.0))
    lateral_accel_limit: float = field(default=2.5, metadata=R(0.1, 10.0))
    junction_speed: float = field(default=5.0, metadata=R(0.5, 40.0))
    junction_straight_speed: float = field(default=30.0, metadata=R(0.5, 80.0))
    comfort_decel: float = field(default=2.0, metadata=R(0.2, 8.0))
    min_lookahead: float = field(default=3.5, metadata=R(0.5, 50.0))
    lookahead_time: float = field(default=0.45, metadata=R(0.0, 5.0))
    max_lookahead: float = field(default=20.0, metadata=R(1.0, 100.0))
    preview_time: float = field(default=0.0, metadata=R(0.0, 2.0))
    recovery_lateral_accel: float = field(default=4.0, metadata=R(0.2, 20.0))
    max_steer: float = field(default=1.0, metadata=R(0.05, 1.0))
    max_steer_rate: float = field(default=6.0, metadata=R(0.0, 100.0))
    speed_kp: float = field(default=3.6, metadata=R(0.0, 100.0))
    speed_ki: float = field(default=0.18, metadata=R(0.0, 100.0))
    speed_kd: float = field(default=0.0, metadata=R(0.0, 100.0))
    speed_integral_limit: float = field(default=0.5, metadata=R(0.0, 10.0))
    max_throttle: float = field(default=0.75, metadata=R(0.0, 1.0))
    max_brake: float = field(default=0.5, metadata=R(0.0, 1.0))
    emergency_brake: float = field(default=1.0, metadata=R(0.0, 1.0))
    stop_gap: float = field(default=4.0, metadata=R(0.5, 50.0))
    time_gap: float = field(default=1.5, metadata=R(0.1, 10.0))
    detection_range: float = field(default=60.0, metadata=R(5.0, 500.0))
    corridor_margin: float = field(default=0.3, metadata=R(-2.0, 5.0))
    prediction_time: float = field(default=2.0, metadata=R(0.0, 5.0))
    route_end_margin: float = field(default=2.0, metadata=R(0.0, 50.0))
    stop_line_margin: float = field(default=1.5, metadata=R(0.0, 20.0))
    light_view_angle: float = field(default=0.0, metadata=R(0.0, 80.0))
    max_stop_line_margin: float = field(default=10.0, metadata=R(0.0, 50.0))
    walker_margin: float = field(default=0.25, metadata=R(-1.0, 5.0))
    walker_prediction_time: float = field(default=3.0, metadata=R(0.0, 10.0))

    def __post_init__(self) -> None:
        validate_fields(self)
        if self.max_lookahead < self.min_lookahead:
            raise FieldError("ExpertConfig", "max_lookahead", f"expected a number >= min_lookahead "
                             f"({self.min_lookahead}), got {self.max_lookahead}")
        if self.emergency_brake < self.max_brake:
            raise FieldError("ExpertConfig", "emergency_brake", f"expected a number >= max_brake "
                             f"({self.max_brake}), got {self.emergency_brake}")


def load_expert_config(name_or_path: str | Path | None = None) -> ExpertConfig:
    """Load an expert preset strictly.

    Args:
        name_or_path: a preset name looked up as ``experts/<name>.toml`` in the
            repository (e.g. "default", "cautious"), or a path to a TOML file.
            ``None`` = "default". The preset's ``name`` defaults to the file stem.

    Raises:
        ConfigError: the preset is not found, not valid TOML, has an unknown key, a
            wrong type or an out-of-range value (one line naming file and field).
    """
    if name_or_path is None:
        name_or_path = "default"
    p = Path(name_or_path)
    if not p.exists() and p.suffix == "" and len(p.parts) == 1:
        cand = EXPERTS_DIR / f"{p}.toml"
        if cand.exists():
            p = cand
        else:
            known = ", ".join(sorted(f.stem for f in EXPERTS_DIR.glob("*.toml"))) or "none"
            raise ConfigError(f"expert preset {str(name_or_path)!r} not found in {EXPERTS_DIR} "
                              f"(known presets: {known})")
    if not p.exists():
        raise ConfigError(f"{p}: expert preset file not found")
    data = read_toml(p)
    data.setdefault("name", p.stem)
    return from_dict(ExpertConfig, data, source=str(p))
