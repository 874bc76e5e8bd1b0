"""Joystick, gamepad and steering-wheel calibration (``drive-il calibrate``).

Wheels and pads differ in which axis is which, in which direction an axis moves and
where a pedal rests; wrong axis indices are the most common complaint with CARLA's
``manual_control_steeringwheel.py`` (which reads them from an ini file). Here the
mapping is a strict TOML file, by default ``~/.config/drive_il/controls.toml``::

    version = 1
    device = "Logitech G29 Driving Force Racing Wheel"   # informational
    num_axes = 6                                          # informational

    [steer]
    axis = 0          # raw axis index (pygame.joystick)
    invert = false    # true when turning right gives a negative raw value
    center = 0.0      # raw value at straight ahead
    dead_zone = 0.02  # fraction of the travel ignored around the centre
    gain = 1.0        # multiplies the normalised value (1 = full lock -> steer 1)
    curve = "linear"  # or "carla_g29": steer = tan(1.1 x)

    [throttle]        # [brake], [clutch] alike; axis = -1: not used
    axis = 2
    rest = 1.0        # raw value released
    full = -1.0       # raw value fully pressed
    dead_zone = 0.05
    curve = "linear"  # "quadratic" or "carla_g29"

    [buttons]         # -1: not used
    takeover = 0      # hands control to the human during learner rollouts
    reverse = 5
    hand_brake = 4

Mapping (pure functions, :func:`map_steer` / :func:`map_pedal`): the raw value is taken
relative to the centre (steer) or normalised from rest (0) to full (1) (pedals), a
dead zone is removed and rescaled, then the curve is applied and the result clipped to
``carla.VehicleControl``'s ranges.

The "carla_g29" curves are the formulas of CARLA's ``manual_control_steeringwheel.py``
for a Logitech G29 (see REFERENCES.md): steer = tan(1.1 * axis) and
pedal = 1.6 + (2.05 * log10(-0.7 * axis + 1.4) - 1.2) / 0.92 on the raw axis
(released = +1, pressed = -1), clipped to [0, 1]; here written on the normalised
pedal travel p = (1 - axis) / 2, i.e. 1.6 + (2.05 * log10(0.7 + 1.4 p) - 1.2) / 0.92.

Loading is strict (:mod:`drive_il.config`); :func:`check_device` rejects an axis or
button index that the connected device lacks with one line naming the file, the
field and the device's axis count (a :class:`~drive_il.errors.ConfigError`).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..config import load_toml, to_dict, validate_fields
from ..errors import ConfigError, DriveILError

__all__ = [
    "SteerAxis", "PedalAxis", "Buttons", "ControlsCalibration", "PRESETS",
    "default_calibration_path", "load_calibration", "save_calibration", "check_device",
    "map_steer", "map_pedal", "JoystickLike", "open_joystick", "NoJoystickError",
    "calibrate_interactive", "calibrate_from_samples", "sample_joystick",
]

log = logging.getLogger(__name__)

STEER_CURVES = ("linear", "carla_g29")
PEDAL_CURVES = ("linear", "quadratic", "carla_g29")


@dataclass(frozen=True)
class SteerAxis:
    """The steering axis (see module docstring)."""

    axis: int = field(default=0, metadata={"range": (-1, 63), "doc": "raw axis index, -1: none"})
    invert: bool = False
    center: float = field(default=0.0, metadata={"range": (-1.0, 1.0)})
    dead_zone: float = field(default=0.02, metadata={"range": (0.0, 0.5)})
    gain: float = field(default=1.0, metadata={"range": (0.1, 10.0)})
    curve: str = field(default="linear", metadata={"choices": STEER_CURVES})

    def __post_init__(self) -> None:
        validate_fields(self)


@dataclass(frozen=True)
class PedalAxis:
    """A pedal (or trigger, or half a stick axis): raw ``rest`` -> 0, raw ``full`` -> 1.

    Raises:
        ValueError: ``rest`` equals ``full``.
    """

    axis: int = field(default=-1, metadata={"range": (-1, 63), "doc": "raw axis index, -1: none"})
    rest: float = field(default=1.0, metadata={"range": (-1.0, 1.0)})
    full: float = field(default=-1.0, metadata={"range": (-1.0, 1.0)})
    dead_zone: float = field(default=0.05, metadata={"range": (0.0, 0.5)})
    curve: str = field(default="linear", metadata={"choices": PEDAL_CURVES})

    def __post_init__(self) -> None:
        validate_fields(self)
        if self.axis >= 0 and abs(self.full - self.rest) < 1e-3:
            raise ValueError(f"'rest' and 'full' must differ, got rest={self.rest!r} full={self.full!r}")


@dataclass(frozen=True)
class Buttons:
    """Button indices (-1: not used)."""

    takeover: int = field(default=-1, metadata={"range": (-1, 127)})
    reverse: int = field(default=-1, metadata={"range": (-1, 127)})
    hand_brake: int = field(default=-1, metadata={"range": (-1, 127)})

    def __post_init__(self) -> None:
        validate_fields(self)


@dataclass(frozen=True)
class ControlsCalibration:
    """A device mapping (see module docstring)."""

    version: int = field(default=1, metadata={"range": (1, 1)})
    device: str = ""
    num_axes: int = field(default=0, metadata={"range": (0, 64)})
    steer: SteerAxis = field(default_factory=SteerAxis)
    throttle: PedalAxis = field(default_factory=PedalAxis)
    brake: PedalAxis = field(default_factory=PedalAxis)
    clutch: PedalAxis = field(default_factory=PedalAxis)
    buttons: Buttons = field(default_factory=Buttons)

    def __post_init__(self) -> None:
        validate_fields(self)


#: Starting points; check them with ``drive-il calibrate`` (devices and drivers differ).
PRESETS: dict[str, ControlsCalibration] = {
    # Logitech G29 (PS3 mode) with the wheel_config.ini indices reported in
    # carla-simulator/carla#2575 (steering_wheel 0, clutch 1, throttle 2, brake 3,
    # handbrake 4, reverse 5; other write-ups give throttle 1, brake 2: indices vary
    # with driver and mode) and the G29 curves of manual_control_steeringwheel.py.
    "g29": ControlsCalibration(
        device="Logitech G29 Driving Force Racing Wheel", num_axes=6,
        steer=SteerAxis(axis=0, curve="carla_g29", dead_zone=0.0),
        throttle=PedalAxis(axis=2, rest=1.0, full=-1.0, dead_zone=0.0, curve="carla_g29"),
        brake=PedalAxis(axis=3, rest=1.0, full=-1.0, dead_zone=0.0, curve="carla_g29"),
        clutch=PedalAxis(axis=1, rest=1.0, full=-1.0, dead_zone=0.0),
        buttons=Buttons(takeover=0, hand_brake=4, reverse=5)),
    # An Xbox-style pad through SDL's joystick API on Linux: left stick X steers, right
    # trigger (axis 5) throttles, left trigger (axis 2) brakes; triggers rest at -1.
    "gamepad": ControlsCalibration(
        device="gamepad", num_axes=6,
        steer=SteerAxis(axis=0, dead_zone=0.08),
        throttle=PedalAxis(axis=5, rest=-1.0, full=1.0, dead_zone=0.05, curve="quadratic"),
        brake=PedalAxis(axis=2, rest=-1.0, full=1.0, dead_zone=0.05),
        buttons=Buttons(takeover=0, reverse=3, hand_brake=1)),
}


def default_calibration_path() -> Path:
    """``~/.config/drive_il/controls.toml`` (``$XDG_CONFIG_HOME`` respected)."""
    import os

    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "drive_il" / "controls.toml"


def load_calibration(path: str | Path) -> ControlsCalibration:
    """Load a calibration file strictly.

    Raises:
        ConfigError: missing file, bad TOML, unknown key, wrong type or range.
    """
    return load_toml(ControlsCalibration, path)


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(round(v, 4))
    s = str(v).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{s}"'


def save_calibration(calib: ControlsCalibration, path: str | Path) -> Path:
    """Write ``calib`` as TOML (the layout of the module docstring); creates folders."""
    d = to_dict(calib)
    lines = ["# drive_il controls calibration (drive-il calibrate); see drive_il/viz/calibration.py", ""]
    for k, v in d.items():
        if not isinstance(v, dict):
            lines.append(f"{k} = {_toml_value(v)}")
    for k, v in d.items():
        if isinstance(v, dict):
            lines += ["", f"[{k}]"] + [f"{kk} = {_toml_value(vv)}" for kk, vv in v.items()]
    p = Path(path).expanduser()
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return p


# ----------------------------------------------------------------------------- mapping
def _dead_zone(x: float, dz: float) -> float:
    a = abs(x)
    if a <= dz:
        return 0.0
    return math.copysign((a - dz) / (1.0 - dz), x) if dz < 1.0 else 0.0


def map_steer(raw: float, cfg: SteerAxis) -> float:
    """Raw axis value -> ``Control.steer`` in [-1, 1] (+1 = right)."""
    x = raw - cfg.center
    if cfg.invert:
        x = -x
    x = _dead_zone(max(-1.0, min(1.0, x)), cfg.dead_zone)
    if cfg.curve == "carla_g29":
        x = math.tan(1.1 * x)
    x *= cfg.gain
    return max(-1.0, min(1.0, x))


def map_pedal(raw: float, cfg: PedalAxis) -> float:
    """Raw axis value -> pedal in [0, 1] (0 when the axis is not used)."""
    if cfg.axis < 0:
        return 0.0
    p = (raw - cfg.rest) / (cfg.full - cfg.rest)
    p = max(0.0, min(1.0, p))
    p = max(0.0, _dead_zone(p, cfg.dead_zone))
    if cfg.curve == "quadratic":
        p = p * p
    elif cfg.curve == "carla_g29":
        p = 1.6 + (2.05 * math.log10(0.7 + 1.4 * p) - 1.2) / 0.92
    return max(0.0, min(1.0, p))


# ----------------------------------------------------------------------------- devices
class JoystickLike(Protocol):
    """The part of ``pygame.joystick.JoystickType`` drive_il uses (tests use a fake)."""

    def get_name(self) -> str: ...
    def get_numaxes(self) -> int: ...
    def get_numbuttons(self) -> int: ...
    def get_axis(self, i: int) -> float: ...
    def get_button(self, i: int) -> bool: ...
    def get_instance_id(self) -> int: ...


class NoJoystickError(DriveILError):
    """No joystick is connected (or not the one asked for)."""


def open_joystick(index: int = 0) -> JoystickLike:
    """Open joystick ``index`` through ``pygame.joystick``.

    Raises:
        NoJoystickError: none connected ("no joystick found; connect one or use
            --keyboard"), or ``index`` beyond the connected count.
    """
    import pygame

    from .events import ensure_pygame

    ensure_pygame(joystick=True)
    n = pygame.joystick.get_count()
    if n == 0:
        raise NoJoystickError("no joystick found; connect one or use --keyboard")
    if not 0 <= index < n:
        raise NoJoystickError(f"joystick {index} not found: {n} connected (indices 0-{n - 1})")
    js = pygame.joystick.Joystick(index)
    if hasattr(js, "init"):
        js.init()
    return js


def check_device(calib: ControlsCalibration, joystick: JoystickLike, source: str | Path) -> None:
    """Reject indices the device lacks.

    Raises:
        ConfigError: e.g. ``controls.toml: field 'throttle.axis': axis 7, but joystick
            'X' has 6 axes (0-5)``.
    """
    n_axes = joystick.get_numaxes()
    n_buttons = joystick.get_numbuttons()
    name = joystick.get_name()
    for fld in ("steer", "throttle", "brake", "clutch"):
        a = getattr(calib, fld).axis
        if a >= n_axes:
            raise ConfigError(f"{source}: field '{fld}.axis': axis {a}, but joystick '{name}' has "
                              f"{n_axes} axes (0-{n_axes - 1}); run drive-il calibrate")
    for fld in ("takeover", "reverse", "hand_brake"):
        b = getattr(calib.buttons, fld)
        if b >= n_buttons:
            raise ConfigError(f"{source}: field 'buttons.{fld}': button {b}, but joystick '{name}' has "
                              f"{n_buttons} buttons (0-{n_buttons - 1}); run drive-il calibrate")
    if calib.device and name and calib.device != name:
        log.warning("%s was calibrated for %r, connected: %r", source, calib.device, name)


# ----------------------------------------------------------------------------- calibrating
def sample_joystick(joystick: JoystickLike, seconds: float, *, rate: float = 100.0,
                    pump: Callable[[], None] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Read every axis and button for ``seconds`` [s] at ``rate`` [Hz].

    Returns:
        (axes (T, A) float64, buttons (T, B) bool), T >= 1.
    """
    if pump is None:
        import pygame

        pump = pygame.event.pump
    n_a, n_b = joystick.get_numaxes(), joystick.get_numbuttons()
    axes, buttons = [], []
    t_end = time.monotonic() + max(0.0, seconds)
    while True:
        pump()
        axes.append([joystick.get_axis(i) for i in range(n_a)])
        buttons.append([bool(joystick.get_button(i)) for i in range(n_b)])
        if time.monotonic() >= t_end:
            break
        time.sleep(1.0 / rate)
    return np.asarray(axes, dtype=np.float64).reshape(len(axes), n_a), \
        np.asarray(buttons, dtype=bool).reshape(len(buttons), n_b)


def calibrate_from_samples(axes: np.ndarray, *, name: str = "", buttons: np.ndarray | None = None) -> ControlsCalibration:
    """Guess a mapping from a few seconds of samples (``--non-interactive``).

    Heuristics (review the written file, or calibrate interactively):

    * axes resting near +-1 are pedals or triggers; those resting near 0 are sticks or
      the wheel;
    * steer: the centred axis that moved most during sampling (else the first);
    * pedals resting at +1 (wheel pedals): throttle, brake, clutch in index order;
      resting at -1 (pad triggers): throttle the higher index (right trigger), brake
      the lower;
    * no pedal-like axis: throttle and brake on the second centred axis (stick up =
      throttle, down = brake);
    * takeover button: the first button pressed during sampling, if any.

    Args:
        axes: (T, A) raw axis samples.
        name: the device name.
        buttons: (T, B) button samples.

    Raises:
        NoJoystickError: the device has no axis.
    """
    axes = np.atleast_2d(np.asarray(axes, dtype=np.float64))
    n = axes.shape[1]
    if n == 0:
        raise NoJoystickError(f"joystick '{name}' has no axes; use --keyboard")
    rest = np.median(axes, axis=0)
    span = axes.max(axis=0) - axes.min(axis=0)
    centred = [i for i in range(n) if abs(rest[i]) < 0.5]
    pedal_like = [i for i in range(n) if abs(rest[i]) >= 0.5]
    if centred:
        steer_axis = max(centred, key=lambda i: (span[i] > 0.2, span[i], -i))
    else:
        steer_axis = 0
    steer = SteerAxis(axis=steer_axis, center=float(round(rest[steer_axis], 3)) if abs(rest[steer_axis]) < 0.5 else 0.0)
    pedals = [i for i in pedal_like if i != steer_axis]
    up = [i for i in pedals if rest[i] > 0]
    down = [i for i in pedals if rest[i] < 0]
    throttle = brake = clutch = PedalAxis()
    if len(up) >= 2:
        throttle = PedalAxis(axis=up[0], rest=1.0, full=-1.0)
        brake = PedalAxis(axis=up[1], rest=1.0, full=-1.0)
        if len(up) >= 3:
            clutch = PedalAxis(axis=up[2], rest=1.0, full=-1.0)
    elif len(down) >= 2:
        throttle = PedalAxis(axis=down[-1], rest=-1.0, full=1.0)
        brake = PedalAxis(axis=down[-2], rest=-1.0, full=1.0)
    else:
        others = [i for i in centred if i != steer_axis]
        if others:
            a = 1 if 1 in others else others[0]
            throttle = PedalAxis(axis=a, rest=0.0, full=-1.0, dead_zone=0.08)
            brake = PedalAxis(axis=a, rest=0.0, full=1.0, dead_zone=0.08)
    takeover = -1
    if buttons is not None and buttons.size:
        pressed = np.nonzero(buttons.any(axis=0))[0]
        if len(pressed):
            takeover = int(pressed[0])
    return ControlsCalibration(device=name, num_axes=n, steer=steer, throttle=throttle, brake=brake,
                               clutch=clutch, buttons=Buttons(takeover=takeover))


def calibrate_interactive(joystick: JoystickLike, *, ask: Callable[[str], str] = input,
                          say: Callable[[str], None] = print, seconds: float = 0.6,
                          sampler: Callable[[JoystickLike, float], tuple[np.ndarray, np.ndarray]] | None = None
                          ) -> ControlsCalibration:
    """Ask the user to move each control in turn and detect the axes that moved.

    Steps: rest (everything released), steer fully right, throttle, brake, clutch
    (optional), takeover button (optional). The axis that moved most from rest is
    taken, its direction gives ``invert`` (steer) or ``rest``/``full`` (pedals); the
    steer ``gain`` makes the position held as "fully right" give steer = 1.

    Args:
        joystick: the device.
        ask: prompt function (``input``); its answer is ignored (Enter continues).
        say: output function.
        seconds: samples averaged per step [s].
        sampler: ``sample_joystick`` (tests inject scripted samples).

    Raises:
        DriveILError: nothing moved when the wheel or the throttle was asked for.
    """
    sampler = sampler or (lambda js, s: sample_joystick(js, s))
    name = joystick.get_name()
    n = joystick.get_numaxes()
    say(f"calibrating '{name}': {n} axes, {joystick.get_numbuttons()} buttons")

    def hold(prompt: str) -> tuple[np.ndarray, np.ndarray]:
        ask(prompt + " then press Enter ")
        a, b = sampler(joystick, seconds)
        return np.median(a, axis=0), b.any(axis=0)

    rest, _ = hold("Release every pedal, centre the wheel/sticks,")
    right, _ = hold("Turn the wheel (or push the stick) fully RIGHT and hold it,")
    d = right - rest
    steer_axis = int(np.argmax(np.abs(d)))
    if abs(d[steer_axis]) < 0.2:
        raise DriveILError(f"calibration of '{name}': no axis moved when steering right (largest change "
                           f"{abs(d[steer_axis]):.2f}); check the device")
    travel = abs(d[steer_axis])
    dz = SteerAxis.dead_zone
    norm = max((min(travel, 1.0) - dz) / (1.0 - dz), 1e-3)  # full right after the dead zone
    steer = SteerAxis(axis=steer_axis, invert=bool(d[steer_axis] < 0), center=float(round(rest[steer_axis], 3)),
                      dead_zone=dz, gain=float(round(min(10.0, max(0.1, 1.0 / norm)), 3)))
    used = {steer_axis}

    def pedal(label: str, optional: bool) -> PedalAxis:
        v, _ = hold(f"Press the {label} fully and hold it{' (or just press Enter if none)' if optional else ''},")
        dd = np.abs(v - rest)
        for i in used:
            dd[i] = 0.0
        i = int(np.argmax(dd))
        if dd[i] < 0.3:
            if optional:
                return PedalAxis()
            raise DriveILError(f"calibration of '{name}': no axis moved when the {label} was pressed "
                               f"(largest change {dd[i]:.2f})")
        used.add(i)
        return PedalAxis(axis=i, rest=float(round(rest[i], 3)), full=float(round(v[i], 3)))

    throttle = pedal("THROTTLE", False)
    brake = pedal("BRAKE", True)
    clutch = pedal("CLUTCH", True)
    _, pressed = hold("Press and hold the button that should hand control to you (TAKEOVER), or nothing,")
    takeover = int(np.nonzero(pressed)[0][0]) if pressed.any() else -1
    calib = ControlsCalibration(device=name, num_axes=n, steer=steer, throttle=throttle, brake=brake,
                                clutch=clutch, buttons=Buttons(takeover=takeover))
    return calib


def describe(calib: ControlsCalibration) -> str:
    """One line per control, for the command's output."""
    def p(name: str, a: PedalAxis) -> str:
        return f"{name:8s} axis {a.axis:2d}" + (f"  rest {a.rest:+.2f} full {a.full:+.2f}  curve {a.curve}"
                                                 if a.axis >= 0 else "  (not used)")
    s = calib.steer
    lines = [f"steer    axis {s.axis:2d}  invert {str(s.invert).lower()}  centre {s.center:+.3f}  "
             f"dead zone {s.dead_zone:.2f}  gain {s.gain:.2f}  curve {s.curve}",
             p("throttle", calib.throttle), p("brake", calib.brake), p("clutch", calib.clutch),
             f"buttons  takeover {calib.buttons.takeover}  reverse {calib.buttons.reverse}  "
             f"hand brake {calib.buttons.hand_brake}"]
    return "\n".join(lines)


__all__ += ["describe"]
