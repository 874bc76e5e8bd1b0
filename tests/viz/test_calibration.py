"""Controls calibration: mapping formulas, strict files, device checks, the command."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drive_il.cli import main
from drive_il.errors import ConfigError, DriveILError
from drive_il.viz import calibration as cal
from drive_il.viz.calibration import (
    PRESETS,
    ControlsCalibration,
    NoJoystickError,
    PedalAxis,
    SteerAxis,
    calibrate_from_samples,
    calibrate_interactive,
    check_device,
    load_calibration,
    map_pedal,
    map_steer,
    save_calibration,
)
from drive_il.viz.human import HumanDriver


def test_steer_mapping():
    s = SteerAxis(axis=0, dead_zone=0.1)
    assert map_steer(0.05, s) == 0.0                      # inside the dead zone
    assert map_steer(1.0, s) == 1.0 and map_steer(-1.0, s) == -1.0
    assert map_steer(0.55, s) == pytest.approx(0.5)        # (0.55 - 0.1) / 0.9
    assert map_steer(0.55, SteerAxis(axis=0, dead_zone=0.1, invert=True)) == pytest.approx(-0.5)
    assert map_steer(0.3, SteerAxis(axis=0, center=0.1, dead_zone=0.0)) == pytest.approx(0.2)
    g = SteerAxis(axis=0, dead_zone=0.0, curve="carla_g29")
    assert map_steer(0.2, g) == pytest.approx(math.tan(1.1 * 0.2))   # CARLA's steer = tan(1.1 x)
    assert map_steer(0.9, g) == 1.0                                   # clipped


def test_pedal_mapping():
    wheel = PedalAxis(axis=2, rest=1.0, full=-1.0, dead_zone=0.0)
    assert map_pedal(1.0, wheel) == 0.0 and map_pedal(-1.0, wheel) == 1.0
    assert map_pedal(0.0, wheel) == pytest.approx(0.5)
    trigger = PedalAxis(axis=5, rest=-1.0, full=1.0, dead_zone=0.1, curve="quadratic")
    assert map_pedal(-0.9, trigger) == 0.0                  # 5 % of travel < dead zone
    assert map_pedal(1.0, trigger) == 1.0
    assert map_pedal(0.5, PedalAxis()) == 0.0               # axis -1: unused
    # CARLA's G29 pedal: 1.6 + (2.05 log10(-0.7 a + 1.4) - 1.2) / 0.92 on the raw axis a
    g = PedalAxis(axis=2, rest=1.0, full=-1.0, dead_zone=0.0, curve="carla_g29")
    for a in (-1.0, -0.5, 0.0, 0.5, 1.0):
        expect = min(1.0, max(0.0, 1.6 + (2.05 * math.log10(-0.7 * a + 1.4) - 1.2) / 0.92))
        assert map_pedal(a, g) == pytest.approx(expect)


@settings(max_examples=60, deadline=None)
@given(raw=st.floats(-1.0, 1.0), dz=st.floats(0.0, 0.5), curve=st.sampled_from(cal.PEDAL_CURVES),
       rest=st.sampled_from((-1.0, 0.0, 1.0)))
def test_pedal_range_and_monotone(raw, dz, curve, rest):
    full = -1.0 if rest >= 0 else 1.0
    p = PedalAxis(axis=0, rest=rest, full=full, dead_zone=dz, curve=curve)
    v = map_pedal(raw, p)
    assert 0.0 <= v <= 1.0
    further = raw + 0.05 * (full - rest)
    if -1.0 <= further <= 1.0:
        assert map_pedal(further, p) >= v - 1e-12


def test_file_round_trip_and_strictness(tmp_path):
    for name, preset in PRESETS.items():
        p = save_calibration(preset, tmp_path / f"{name}.toml")
        assert load_calibration(p) == preset
    bad = tmp_path / "bad.toml"
    bad.write_text("[steer]\naxis = 0\ninvrt = true\n")
    with pytest.raises(ConfigError, match=r"bad.toml: field 'steer.invrt': unknown key"):
        load_calibration(bad)
    bad.write_text("[throttle]\naxis = 2\nrest = 1.0\nfull = 1.0\n")
    with pytest.raises(ConfigError, match="'rest' and 'full' must differ"):
        load_calibration(bad)


def test_axis_the_device_lacks(tmp_path, fake_joystick, pump):
    p = save_calibration(ControlsCalibration(throttle=PedalAxis(axis=7)), tmp_path / "controls.toml")
    js = fake_joystick(axes=(0.0, 1.0, 1.0), name="Fake Wheel")
    with pytest.raises(ConfigError) as e:
        HumanDriver(calibration=p, device=js, pump=pump)
    msg = str(e.value)
    assert "\n" not in msg
    assert str(p) in msg and "'throttle.axis'" in msg and "axis 7" in msg and "has 3 axes (0-2)" in msg
    p2 = save_calibration(ControlsCalibration(buttons=cal.Buttons(takeover=9)), tmp_path / "b.toml")
    with pytest.raises(ConfigError, match=r"'buttons.takeover': button 9, but joystick 'Fake Wheel' has 4 buttons"):
        check_device(load_calibration(p2), js, p2)


def test_no_joystick(pump):
    import pygame

    pygame.joystick.init()
    if pygame.joystick.get_count():  # pragma: no cover - a real device is plugged in
        pytest.skip("a joystick is connected")
    with pytest.raises(NoJoystickError, match="^no joystick found; connect one or use --keyboard$"):
        HumanDriver(joystick=0, pump=pump)
    with pytest.raises(DriveILError, match="keyboard or a joystick"):
        HumanDriver(keyboard=False, pump=pump)


def test_calibrate_command_without_joystick(tmp_path, capsys):
    import pygame

    pygame.joystick.init()
    if pygame.joystick.get_count():  # pragma: no cover
        pytest.skip("a joystick is connected")
    rc = main(["calibrate", "--non-interactive", "--out", str(tmp_path / "c.toml")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert err == ["drive-il: error: no joystick found; connect one or use --keyboard"]
    assert not (tmp_path / "c.toml").exists()


def test_non_interactive_detection_wheel(tmp_path, fake_joystick, monkeypatch, capsys):
    # a wheel: steering axis 0 moving, pedals resting at +1 on axes 1, 2, 3
    t = np.linspace(0, 1, 50)
    script = [(0.6 * math.sin(6 * x), 1.0, 1.0, 1.0) for x in t]
    js = fake_joystick(axes=(0.0, 1.0, 1.0, 1.0), name="Fake Wheel", script=script)
    monkeypatch.setattr(cal, "open_joystick", lambda index=0: js)
    monkeypatch.setattr(cal, "sample_joystick", lambda j, s: (np.array(script), np.zeros((50, 4), bool)))
    out = tmp_path / "controls.toml"
    assert main(["calibrate", "--non-interactive", "--out", str(out)]) == 0
    c = load_calibration(out)
    assert c.device == "Fake Wheel" and c.num_axes == 4
    assert c.steer.axis == 0
    assert (c.throttle.axis, c.brake.axis, c.clutch.axis) == (1, 2, 3)
    assert (c.throttle.rest, c.throttle.full) == (1.0, -1.0)
    assert f"wrote {out}" in capsys.readouterr().out
    # and the file is accepted for this device
    check_device(c, js, out)


def test_detection_gamepad_and_stick_only():
    pad = np.tile([0.0, 0.0, -1.0, 0.0, 0.0, -1.0], (20, 1))   # triggers (2, 5) rest at -1
    c = calibrate_from_samples(pad, name="pad")
    assert c.steer.axis == 0 and c.throttle.axis == 5 and c.brake.axis == 2
    assert (c.throttle.rest, c.throttle.full) == (-1.0, 1.0)
    stick = np.zeros((20, 2))
    c = calibrate_from_samples(stick)
    assert c.steer.axis == 0 and c.throttle.axis == 1 and c.brake.axis == 1
    assert map_pedal(-1.0, c.throttle) == 1.0 and map_pedal(-1.0, c.brake) == 0.0
    with pytest.raises(NoJoystickError):
        calibrate_from_samples(np.zeros((5, 0)))


def test_interactive(fake_joystick):
    js = fake_joystick(axes=(0.0, 1.0, 1.0, 1.0), buttons=6, name="Fake Wheel")
    # rest, wheel right (axis 0 goes NEGATIVE: inverted), throttle (axis 2), brake (3),
    # no clutch, takeover button 4
    rows = [np.array([0.0, 1.0, 1.0, 1.0]), np.array([-0.95, 1.0, 1.0, 1.0]),
            np.array([0.0, 1.0, -1.0, 1.0]), np.array([0.0, 1.0, 1.0, -0.8]),
            np.array([0.0, 1.0, 1.0, 1.0]), np.array([0.0, 1.0, 1.0, 1.0])]
    buttons = [np.zeros(6, bool)] * 5 + [np.eye(6, dtype=bool)[4]]
    it = iter(zip(rows, buttons))

    def sampler(j, s):
        a, b = next(it)
        return a[None, :], b[None, :]

    prompts = []
    c = calibrate_interactive(js, ask=prompts.append, say=lambda s: None, sampler=sampler)
    assert len(prompts) == 6
    assert c.steer.axis == 0 and c.steer.invert and map_steer(-0.95, c.steer) == pytest.approx(1.0, abs=1e-3)
    assert map_steer(0.0, c.steer) == 0.0 and map_steer(0.5, c.steer) < 0
    assert (c.throttle.axis, c.throttle.rest, c.throttle.full) == (2, 1.0, -1.0)
    assert (c.brake.axis, c.brake.full) == (3, -0.8)
    assert c.clutch.axis == -1 and c.buttons.takeover == 4


def test_preset_command(tmp_path, capsys):
    out = tmp_path / "g29.toml"
    assert main(["calibrate", "--preset", "g29", "--out", str(out)]) == 0
    assert load_calibration(out) == PRESETS["g29"]


def test_check_command_axis_the_device_lacks(tmp_path, fake_joystick, monkeypatch, capsys):
    p = save_calibration(ControlsCalibration(steer=SteerAxis(axis=5)), tmp_path / "controls.toml")
    monkeypatch.setattr(cal, "open_joystick", lambda index=0: fake_joystick(axes=(0.0, 1.0, 1.0)))
    assert main(["calibrate", "--check", str(p)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0] == (f"drive-il: error: {p}: field 'steer.axis': axis 5, but joystick 'Fake Wheel' has 3 axes "
                      f"(0-2); run drive-il calibrate")
    ok = save_calibration(ControlsCalibration(steer=SteerAxis(axis=0)), tmp_path / "ok.toml")
    assert main(["calibrate", "--check", str(ok)]) == 0
