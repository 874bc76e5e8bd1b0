"""Driving by hand: keyboard, gamepad or steering wheel, and the human gate of HG-DAgger.

:class:`HumanDriver` implements the :class:`drive_il.rollout.driver.Driver` protocol
(``name = "human"``). Keys, as in CARLA's ``manual_control.py``:

========================  ===============================================
W / Up                    throttle (ramps up while held)
S / Down                  brake
A / Left, D / Right       steer (ramps while held, back to 0 on release)
Q                         toggle reverse
Space                     hand brake (while held)
Esc                       quit (``act`` raises ``KeyboardInterrupt``)
========================  ===============================================

A joystick (gamepad, wheel) is read through ``pygame.joystick`` with a
:class:`~drive_il.viz.calibration.ControlsCalibration` (axes, inversion, dead zones,
pedal curves; ``drive-il calibrate``). Where both are present, a held steering key
overrides the wheel and a pressed pedal key overrides the pedal axis.

Input is read from pygame *events* (KEYDOWN/KEYUP, JOYAXISMOTION, JOYBUTTONDOWN/UP)
through the shared :class:`~drive_il.viz.events.EventPump`, so the overlay, the driver
and the gate each see every event, and scripted ``pygame.event.post`` calls drive
it in tests. Ramps use the simulation step ``dt`` [s] (reproducible), not wall time.

:class:`HumanGate` is the hook for human-gated DAgger (HG-DAgger, Kelly et al., ICRA
2019): while a learner drives, a key (T or Enter), a joystick button (the
calibration's ``buttons.takeover``) or a steering input beyond a threshold hands
control to the human; ``gate.active(step)`` tells the rollout who drives and
``gate.control(step)`` gives the human's action, which the rollout records as the
label of the takeover segment, flagged as an intervention.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pygame

from ..errors import DriveILError
from ..types import Control, Step
from .calibration import (
    ControlsCalibration,
    JoystickLike,
    check_device,
    default_calibration_path,
    load_calibration,
    map_pedal,
    map_steer,
    open_joystick,
)
from .events import EventPump, Pacer, default_pump, ensure_pygame, headless

__all__ = ["HumanDriver", "HumanGate", "KeyboardRates", "HumanIntervention"]

log = logging.getLogger(__name__)

_THROTTLE_KEYS = (pygame.K_w, pygame.K_UP)
_BRAKE_KEYS = (pygame.K_s, pygame.K_DOWN)
_LEFT_KEYS = (pygame.K_a, pygame.K_LEFT)
_RIGHT_KEYS = (pygame.K_d, pygame.K_RIGHT)


@dataclass(frozen=True, slots=True)
class KeyboardRates:
    """Keyboard ramps (per second of simulation).

    Attributes:
        steer_rate: steer change per second while a steering key is held [1/s]
            (CARLA's manual_control: 5e-4 per millisecond = 0.5/s).
        steer_max: |steer| reached with the keyboard (CARLA: 0.7).
        throttle_rate: throttle increase per second while held [1/s].
        brake_rate: brake increase per second while held [1/s].
    """

    steer_rate: float = 0.5
    steer_max: float = 0.7
    throttle_rate: float = 2.0
    brake_rate: float = 5.0


class HumanDriver:
    """A human at the keyboard and/or a joystick (see module docstring).

    Args:
        calibration: the controls file; default ``~/.config/drive_il/controls.toml``
            when a joystick is used and that file exists, else the built-in gamepad
            preset.
        joystick: joystick index to use (None: no joystick unless ``calibration`` is
            given, then joystick 0).
        keyboard: read the keyboard.
        pump: event pump (default: the process-wide one).
        device: an already opened joystick-like object (tests pass a fake here;
            overrides ``joystick``).
        rates: keyboard ramps.
        realtime: ``act`` waits so that steps are ``dt`` of wall time apart (a human
            drives in real time); default: on, except under ``SDL_VIDEODRIVER=dummy``.

    Raises:
        NoJoystickError: a joystick was asked for and none is connected ("no joystick
            found; connect one or use --keyboard").
        ConfigError: the calibration file is invalid or names an axis or button the
            device lacks (one line naming the file, the field and the axis count).
        DriveILError: neither keyboard nor joystick.

    Attributes:
        name: "human".
        quit_requested: Esc was pressed (``act`` then raises KeyboardInterrupt).
        calibration: the mapping in use (None without a joystick).
        pump: the event pump it reads (a gate driving this human shares it).
        device: the joystick-like device (None: keyboard only).
        instance: the device's SDL instance id (None: keyboard only).
    """

    name = "human"

    def __init__(self, *, calibration: Path | str | None = None, joystick: int | None = None,
                 keyboard: bool = True, pump: EventPump | None = None, device: JoystickLike | None = None,
                 rates: KeyboardRates = KeyboardRates(), realtime: bool | None = None) -> None:
        self.keyboard = keyboard
        self.realtime = (not headless()) if realtime is None else realtime
        self._pacer = Pacer()
        self.rates = rates
        self.quit_requested = False
        self.pump = pump or default_pump()
        ensure_pygame(joystick=device is None and (joystick is not None or calibration is not None))
        self._cursor = self.pump.cursor()
        self.device: JoystickLike | None = None
        self.instance: int | None = None
        self.calibration: ControlsCalibration | None = None
        if device is None and (joystick is not None or calibration is not None):
            device = open_joystick(joystick if joystick is not None else 0)
        if device is not None:
            self.device = device
            self.calibration, source = self._load_calibration(calibration, device)
            check_device(self.calibration, device, source)
            self.instance = _instance_id(device)
            self._axes = [float(device.get_axis(i)) for i in range(device.get_numaxes())]
            self._buttons = [bool(device.get_button(i)) for i in range(device.get_numbuttons())]
        elif not keyboard:
            raise DriveILError("the human driver needs the keyboard or a joystick (--joystick N)")
        self._keys: set[int] = set()
        self._reset_state()

    @staticmethod
    def _load_calibration(path: Path | str | None, device: JoystickLike) -> tuple[ControlsCalibration, str]:
        from .calibration import PRESETS

        if path is not None:
            return load_calibration(path), str(path)
        default = default_calibration_path()
        if default.exists():
            return load_calibration(default), str(default)
        log.warning("no calibration file (%s); using the gamepad preset for %r - run drive-il calibrate",
                    default, device.get_name())
        return PRESETS["gamepad"], "<gamepad preset>"

    def _reset_state(self) -> None:
        self._steer_kb = 0.0
        self._throttle_kb = 0.0
        self._brake_kb = 0.0
        self.reverse = False
        self.hand_brake = False
        self.last_control = Control()

    # ------------------------------------------------------------------ Driver protocol
    def reset(self, step: Step) -> None:
        """New episode: controls back to rest, reverse off (held keys are kept)."""
        self._reset_state()

    def act(self, step: Step) -> Control:
        """Read the inputs and return the human's control.

        Raises:
            KeyboardInterrupt: Esc was pressed.
        """
        if self.keyboard and pygame.display.get_init() and pygame.display.get_surface() is None:
            # keyboard events need a focused window; open a small one when no overlay did
            pygame.display.set_mode((420, 60))
            pygame.display.set_caption("drive_il: human driver (keep this window focused)")
        dt = step.world_state.dt or 0.05
        if self.realtime:
            self._pacer.wait(dt)
        self.poll()
        if self.quit_requested:
            raise KeyboardInterrupt("human driver: Esc")
        return self._control(dt)

    # ------------------------------------------------------------------ inputs
    def poll(self) -> None:
        """Consume new events (keys, joystick axes and buttons)."""
        events, self._cursor = self.pump.poll(self._cursor)
        btn = self.calibration.buttons if self.calibration is not None else None
        for e in events:
            if e.type == pygame.KEYDOWN and self.keyboard:
                self._keys.add(e.key)
                if e.key == pygame.K_q:
                    self.reverse = not self.reverse
                elif e.key == pygame.K_ESCAPE:
                    self.quit_requested = True
            elif e.type == pygame.KEYUP and self.keyboard:
                self._keys.discard(e.key)
            elif e.type == pygame.QUIT:
                self.quit_requested = True
            elif self.device is not None and e.type in (pygame.JOYAXISMOTION, pygame.JOYBUTTONDOWN,
                                                          pygame.JOYBUTTONUP):
                if _event_instance(e) != self.instance:
                    continue
                if e.type == pygame.JOYAXISMOTION:
                    if 0 <= e.axis < len(self._axes):
                        self._axes[e.axis] = float(e.value)
                else:
                    down = e.type == pygame.JOYBUTTONDOWN
                    if 0 <= e.button < len(self._buttons):
                        self._buttons[e.button] = down
                    if down and btn is not None and e.button == btn.reverse:
                        self.reverse = not self.reverse

    def held(self, keys: tuple[int, ...]) -> bool:
        """Any of ``keys`` held (from KEYDOWN/KEYUP events)."""
        return any(k in self._keys for k in keys)

    def button(self, index: int) -> bool:
        """Joystick button ``index`` held (False without a joystick or for -1)."""
        return self.device is not None and 0 <= index < len(self._buttons) and self._buttons[index]

    def axis(self, index: int) -> float:
        """Raw joystick axis value (0 without a joystick or for -1)."""
        if self.device is None or not 0 <= index < len(self._axes):
            return 0.0
        return self._axes[index]

    def joystick_steer(self) -> float:
        """The wheel's steer in [-1, 1] (0 without a joystick)."""
        if self.calibration is None or self.calibration.steer.axis < 0:
            return 0.0
        return map_steer(self.axis(self.calibration.steer.axis), self.calibration.steer)

    def steer_input(self) -> float:
        """The steer the human asks for right now: a held steering key's ramp, else the
        wheel (used by :class:`HumanGate` for its threshold)."""
        if self.held(_LEFT_KEYS) or self.held(_RIGHT_KEYS):
            return self._steer_kb
        return self.joystick_steer()

    def _control(self, dt: float) -> Control:
        r = self.rates
        left, right = self.held(_LEFT_KEYS), self.held(_RIGHT_KEYS)
        if left and not right:
            self._steer_kb = min(self._steer_kb, 0.0) - r.steer_rate * dt
        elif right and not left:
            self._steer_kb = max(self._steer_kb, 0.0) + r.steer_rate * dt
        else:
            self._steer_kb = 0.0
        self._steer_kb = max(-r.steer_max, min(r.steer_max, self._steer_kb))
        self._throttle_kb = min(1.0, self._throttle_kb + r.throttle_rate * dt) if self.held(_THROTTLE_KEYS) else 0.0
        self._brake_kb = min(1.0, self._brake_kb + r.brake_rate * dt) if self.held(_BRAKE_KEYS) else 0.0

        steer = self._steer_kb if (left or right) else self.joystick_steer()
        cal = self.calibration
        throttle = self._throttle_kb if self.held(_THROTTLE_KEYS) or cal is None else \
            map_pedal(self.axis(cal.throttle.axis), cal.throttle)
        brake = self._brake_kb if self.held(_BRAKE_KEYS) or cal is None else \
            map_pedal(self.axis(cal.brake.axis), cal.brake)
        hand = self.held((pygame.K_SPACE,)) or (cal is not None and self.button(cal.buttons.hand_brake))
        self.hand_brake = hand
        self.last_control = Control.clipped(steer, throttle, brake, hand, self.reverse)
        return self.last_control


def _instance_id(device: Any) -> int:
    for attr in ("get_instance_id", "get_id"):
        f = getattr(device, attr, None)
        if f is not None:
            return int(f())
    return 0


def _event_instance(e: "pygame.event.Event") -> int:
    d = e.__dict__
    if "instance_id" in d:
        return int(d["instance_id"])
    return int(d.get("joy", 0))


@dataclass(frozen=True, slots=True)
class HumanIntervention:
    """One human takeover segment.

    Attributes:
        start_frame: first simulation frame driven by the human.
        end_frame: last one (None while it lasts).
        reason: "key", "button" or "steer".
    """

    start_frame: int
    end_frame: int | None
    reason: str


class HumanGate:
    """Who drives during a learner rollout: the learner, or a human who took over.

    InterventionMonitor starts when the takeover key is pressed (T or Enter by default), the
    calibration's takeover button is pressed, or |human steer input| exceeds
    ``steer_threshold``. It ends when the key or button is pressed again, or - for a
    takeover started by steering - once the steer input has stayed below half the
    threshold for ``release_after`` seconds of simulation (the human keeps driving
    through those seconds).

    Args:
        human: the human driver (default: keyboard only, sharing ``pump``).
        keys: pygame key codes that toggle the takeover.
        button: joystick button toggling it (default: the calibration's
            ``buttons.takeover``).
        steer_threshold: |steer| that takes over (None: off).
        release_after: [s], see above.
        realtime: ``active`` paces the rollout to real time so that the human can
            react (default: on, except under ``SDL_VIDEODRIVER=dummy``).

    Attributes:
        takeovers: the segments so far (:class:`HumanIntervention`).
    """

    def __init__(self, human: HumanDriver | None = None, *, keys: tuple[int, ...] = (pygame.K_t, pygame.K_RETURN),
                 button: int | None = None, steer_threshold: float | None = 0.25, release_after: float = 1.0,
                 pump: EventPump | None = None, realtime: bool | None = None) -> None:
        self.human = human if human is not None else HumanDriver(pump=pump)
        self.realtime = (not headless()) if realtime is None else realtime
        self._pacer = Pacer()
        self.pump = pump or self.human.pump
        self._cursor = self.pump.cursor()
        self.keys = tuple(keys)
        cal = self.human.calibration
        self.button = button if button is not None else (cal.buttons.takeover if cal is not None else -1)
        self.steer_threshold = steer_threshold
        self.release_after = release_after
        self.takeovers: list[HumanIntervention] = []
        self._active = False
        self._reason = ""
        self._calm = 0.0
        self._toggle = False
        self._last_frame: int | None = None

    @property
    def is_active(self) -> bool:
        """Whether the human drove at the last :meth:`active` call."""
        return self._active

    def reset(self, step: Step) -> None:
        """New episode: the learner drives again."""
        if self._active:
            self._end(step)
        self.human.reset(step)

    def active(self, step: Step) -> bool:
        """Update from the inputs and tell whether the human drives ``step``.

        A step whose frame number goes back (a new episode) ends an open takeover.
        """
        frame = step.world_state.frame
        if self.realtime and not self._active:  # while the human drives, act() paces
            self._pacer.wait(step.world_state.dt or 0.05)
        if self._last_frame is not None and frame < self._last_frame and self._active:
            self._active = False
            last = self.takeovers[-1]
            self.takeovers[-1] = HumanIntervention(last.start_frame, self._last_frame, last.reason)
        self._last_frame = frame
        events, self._cursor = self.pump.poll(self._cursor)
        self._toggle = False
        for e in events:
            if e.type == pygame.KEYDOWN and e.key in self.keys or (e.type == pygame.JOYBUTTONDOWN and self.button >= 0 and e.button == self.button
                  and self.human.device is not None and _event_instance(e) == self.human.instance):
                self._toggle = not self._toggle
        self.human.poll()
        steer = abs(self.human.steer_input())
        over = self.steer_threshold is not None and steer > self.steer_threshold
        if not self._active:
            if self._toggle:
                self._start(step, "key/button")
            elif over:
                self._start(step, "steer")
        else:
            if self._toggle:
                self._end(step)
            elif self._reason == "steer" and self.steer_threshold is not None:
                if steer < 0.5 * self.steer_threshold:
                    if self._calm >= self.release_after - 1e-9:
                        self._end(step)
                    else:
                        self._calm += step.world_state.dt or 0.05
                else:
                    self._calm = 0.0
        return self._active

    def control(self, step: Step) -> Control:
        """The human's control for ``step`` (call when :meth:`active` is true)."""
        return self.human.act(step)

    def _start(self, step: Step, reason: str) -> None:
        self._active = True
        self._reason = reason
        self._calm = 0.0
        self.takeovers.append(HumanIntervention(step.world_state.frame, None, reason))
        log.info("human takeover at frame %d (%s)", step.world_state.frame, reason)

    def _end(self, step: Step) -> None:
        self._active = False
        last = self.takeovers[-1]
        self.takeovers[-1] = HumanIntervention(last.start_frame, step.world_state.frame - 1, last.reason)
        log.info("control back to the learner at frame %d", step.world_state.frame)
