"""Fixtures of the visualisation tests: a fresh event pump, a fake joystick, the demo world."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")


class FakeJoystick:
    """Stands in for ``pygame.joystick.JoystickType`` (pygame cannot create virtual
    joysticks): the same methods, values set by the test. Axis motion during a
    rollout is delivered through posted JOYAXISMOTION events, as from a real device.

    Args:
        axes: initial raw axis values.
        buttons: number of buttons.
        script: optional list of axis vectors returned by successive full reads
            (``get_axis`` of the last axis advances the script), for calibration.
    """

    def __init__(self, axes=(0.0, 1.0, 1.0), buttons=4, name="Fake Wheel", instance_id=7, script=None):
        self.axes = list(axes)
        self.buttons = [False] * buttons
        self.name = name
        self.instance_id = instance_id
        self.script = list(script) if script else None
        self._reads = 0

    def get_name(self):
        return self.name

    def get_numaxes(self):
        return len(self.axes)

    def get_numbuttons(self):
        return len(self.buttons)

    def get_axis(self, i):
        if self.script is not None:
            row = self.script[min(self._reads, len(self.script) - 1)]
            if i == len(self.axes) - 1:
                self._reads += 1
            return row[i]
        return self.axes[i]

    def get_button(self, i):
        return self.buttons[i]

    def get_instance_id(self):
        return self.instance_id


@pytest.fixture
def fake_joystick():
    return FakeJoystick


@pytest.fixture
def pump():
    """A fresh EventPump over an empty pygame queue."""
    import pygame

    from drive_il.viz.events import EventPump, ensure_pygame

    ensure_pygame()
    pygame.event.clear()
    return EventPump()


@pytest.fixture(scope="session")
def demo_world():
    from drive_il.viz.demo import DemoWorld

    return DemoWorld()
