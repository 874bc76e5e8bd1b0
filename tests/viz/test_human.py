"""Manual driving and the human gate with scripted pygame events (keyboard and joystick
axes), recorded in the standard episode format with the human segments flagged."""

from __future__ import annotations

import math

import pygame
import pytest

from drive_il.types import Control, StepRecord
from drive_il.viz.calibration import (
    ControlsCalibration,
    PedalAxis,
    SteerAxis,
    map_steer,
    save_calibration,
)
from drive_il.viz.demo import run_demo
from drive_il.viz.human import HumanDriver, HumanGate
from drive_il.viz.overlay import Overlay


def key(k: int, down: bool = True) -> pygame.event.Event:
    return pygame.event.Event(pygame.KEYDOWN if down else pygame.KEYUP, key=k, mod=0, unicode="", scancode=0)


def axis(a: int, v: float, instance_id: int = 7) -> pygame.event.Event:
    return pygame.event.Event(pygame.JOYAXISMOTION, joy=0, instance_id=instance_id, axis=a, value=v)


class Script:
    """An observer that posts pygame events after given steps (seen at the next step)."""

    def __init__(self, schedule: dict[int, list]):
        self.schedule = schedule
        self.n = 0

    def on_episode_start(self, info, first):
        for e in self.schedule.get(-1, []):
            pygame.event.post(e)

    def on_step(self, record: StepRecord) -> None:
        for e in self.schedule.get(self.n, []):
            pygame.event.post(e)
        self.n += 1

    def on_episode_end(self, result):
        pass


@pytest.fixture
def calib_file(tmp_path):
    calib = ControlsCalibration(device="Fake Wheel", num_axes=3,
                                steer=SteerAxis(axis=0, dead_zone=0.02),
                                throttle=PedalAxis(axis=1, rest=1.0, full=-1.0, dead_zone=0.0),
                                brake=PedalAxis(axis=2, rest=1.0, full=-1.0, dead_zone=0.0))
    return save_calibration(calib, tmp_path / "controls.toml")


def test_keyboard_as_manual_control(pump, demo_world):
    human = HumanDriver(pump=pump)
    step = demo_world.reset(0)
    human.reset(step)
    assert human.act(step).throttle == 0.0
    pygame.event.post(key(pygame.K_w))
    pygame.event.post(key(pygame.K_d))
    ctls = [human.act(step) for _ in range(40)]
    assert ctls[0].throttle == pytest.approx(0.1)           # 2/s * 0.05 s
    assert ctls[-1].throttle == 1.0
    assert ctls[0].steer == pytest.approx(0.025)            # 0.5/s * 0.05 s
    assert ctls[-1].steer == pytest.approx(0.7)             # keyboard limit
    pygame.event.post(key(pygame.K_d, down=False))
    pygame.event.post(key(pygame.K_LEFT))
    c = human.act(step)
    assert c.steer == pytest.approx(-0.025)                 # reverses from 0
    pygame.event.post(key(pygame.K_LEFT, down=False))
    pygame.event.post(key(pygame.K_w, down=False))
    pygame.event.post(key(pygame.K_q))
    pygame.event.post(key(pygame.K_SPACE))
    c = human.act(step)
    assert c.steer == 0.0 and c.throttle == 0.0 and c.reverse and c.hand_brake
    pygame.event.post(key(pygame.K_SPACE, down=False))
    pygame.event.post(key(pygame.K_q))
    c = human.act(step)
    assert not c.reverse and not c.hand_brake
    pygame.event.post(key(pygame.K_ESCAPE))
    with pytest.raises(KeyboardInterrupt):
        human.act(step)


def test_joystick_axes(pump, demo_world, fake_joystick, calib_file):
    js = fake_joystick(axes=(0.0, 1.0, 1.0))
    human = HumanDriver(calibration=calib_file, device=js, keyboard=False, pump=pump)
    step = demo_world.reset(0)
    pygame.event.post(axis(0, -0.5))
    pygame.event.post(axis(1, 0.0))   # throttle half way (rest 1, full -1)
    pygame.event.post(axis(2, 0.9, instance_id=3))  # another device: ignored
    c = human.act(step)
    assert c.steer == pytest.approx(-(0.5 - 0.02) / 0.98)
    assert c.throttle == pytest.approx(0.5)
    assert c.brake == 0.0


def test_gated_takeovers_recorded(tmp_path, pump, demo_world, fake_joystick, calib_file):
    """200 steps of a drifting learner with the overlay and the episode recorder; a
    keyboard takeover (T, hold D, T) and a wheel takeover (axis past the threshold,
    then centred) are recorded as human steps, flagged as interventions."""
    from drive_il.data.recorder import EpisodeRecorder
    from drive_il.data.storage import EpisodeReader

    js = fake_joystick(axes=(0.0, 1.0, 1.0))
    human = HumanDriver(calibration=calib_file, device=js, pump=pump)
    gate = HumanGate(human, steer_threshold=0.25, release_after=1.0, pump=pump)
    script = Script({
        29: [key(pygame.K_t), key(pygame.K_d)],       # seen at step 30
        44: [key(pygame.K_d, down=False)],
        59: [key(pygame.K_t)],                        # back to the learner at step 60
        99: [axis(0, 0.30)],                          # wheel past 0.25 at step 100
        109: [axis(0, 0.0)],                          # centred from step 110: 1 s later released
    })
    ov = Overlay(show=True, size=(640, 360), carla_map=demo_world.map, pump=pump,
                 record_screens=tmp_path / "screens", record_every=50)
    rec = EpisodeRecorder(tmp_path / "data")
    records = run_demo(demo_world, [script, ov, rec], steps=200, seed=2, gate=gate, human_steps=None,
                       threshold=50.0)  # no expert interventions: only the human's
    ov.close()
    human_steps = [i for i, r in enumerate(records) if r.driver == "human"]
    assert human_steps == list(range(30, 60)) + list(range(100, 130))
    assert all(records[i].intervention for i in human_steps)
    assert not any(r.intervention for i, r in enumerate(records) if i not in human_steps)
    # the keyboard segment steers right while D is held, the wheel segment follows the axis
    assert records[30].executed.steer == pytest.approx(0.025)
    assert records[44].executed.steer > 0.3 and records[45].executed.steer == 0.0
    assert records[105].executed.steer == pytest.approx(map_steer(0.30, SteerAxis(axis=0, dead_zone=0.02)))
    assert [(t.start_frame, t.end_frame, t.reason) for t in gate.takeovers] == [
        (30, 59, "key/button"), (100, 129, "steer")]
    # the expert's label is stored beside the human's action
    assert all(records[i].expert is not None and records[i].learner is not None for i in human_steps)
    assert ov.history.interventions == 2 and ov.history.human_interventions == 2
    assert len(list((tmp_path / "screens").glob("*.png"))) == 5

    with EpisodeReader(rec.last_path) as ep:
        names = ep.driver_names
        drivers = [names[c] for c in ep.steps["driver"]]
        flagged = ep.steps["intervention"]
        assert [i for i, d in enumerate(drivers) if d == "human"] == human_steps
        assert flagged[human_steps].all() and flagged.sum() == len(human_steps)
        ex, ep_expert = ep.steps["executed"], ep.steps["expert"]
        assert ex[105, 0] == pytest.approx(records[105].executed.steer, abs=1e-6)
        assert math.isfinite(ep_expert[105, 0])


def test_gate_with_the_rollout(tmp_path, pump, demo_world):
    """The lead's rollout loop with the embedded world and the expert: a keyboard
    takeover through ``human_gate`` is recorded as human steps, flagged."""
    from drive_il import rollout
    from drive_il.expert.expert import Expert
    from drive_il.data.recorder import EpisodeRecorder
    from drive_il.data.storage import EpisodeReader
    from drive_il.scenario import load_scenario
    from drive_il.sim import make_simulator

    scenario = load_scenario(None)
    sim = make_simulator("embedded")
    expert = Expert.for_scenario(scenario)

    class Learner:  # the expert with a steering bias: drifts
        name = "learner"

        def reset(self, step):
            expert.reset(step)

        def act(self, step):
            c = expert.act(step)
            return type(c).clipped(c.steer + 0.03, c.throttle, c.brake)

    human = HumanDriver(pump=pump)
    gate = HumanGate(human, pump=pump, steer_threshold=None)
    script = Script({19: [key(pygame.K_RETURN)], 39: [key(pygame.K_RETURN)]})
    ov = Overlay(show=True, size=(640, 360), simulator=sim, pump=pump)
    rec = EpisodeRecorder(tmp_path / "data")
    try:
        drivers = rollout.Drivers(expert=expert, learner=Learner(), human=human, gate=gate)
        result = rollout.run_episode(sim, scenario, 0, drivers, rollout.RolloutSpec(driver="learner", max_steps=80),
                                     observers=[script, ov, rec])
    finally:
        sim.close()
        ov.close()
    assert result.steps == 80
    with EpisodeReader(rec.last_path) as ep:
        names = ep.driver_names
        drivers = [names[c] for c in ep.steps["driver"]]
        assert [i for i, d in enumerate(drivers) if d == "human"] == list(range(20, 40))
        assert ep.steps["intervention"][20:40].all()
    assert ov._lanes is not None and ov._lanes.name != "route"  # the world's carla.Map was used


def test_gate_button_and_new_episode(tmp_path, pump, demo_world, fake_joystick):
    from drive_il.viz.calibration import Buttons

    p = save_calibration(ControlsCalibration(steer=SteerAxis(axis=0), buttons=Buttons(takeover=2)),
                         tmp_path / "c.toml")
    js = fake_joystick(axes=(0.0, 1.0, 1.0), buttons=4)
    gate = HumanGate(HumanDriver(calibration=p, device=js, pump=pump), pump=pump)
    assert gate.button == 2
    world_steps = [demo_world.reset(0)]
    for _ in range(6):
        world_steps.append(demo_world.step(Control()))
    press = pygame.event.Event(pygame.JOYBUTTONDOWN, joy=0, instance_id=7, button=2)
    other = pygame.event.Event(pygame.JOYBUTTONDOWN, joy=0, instance_id=7, button=1)
    assert not gate.active(world_steps[0])
    pygame.event.post(other)
    assert not gate.active(world_steps[1])
    pygame.event.post(press)
    assert gate.active(world_steps[2]) and gate.active(world_steps[3])
    pygame.event.post(press)
    assert not gate.active(world_steps[4])
    pygame.event.post(press)
    assert gate.active(world_steps[5])
    # a new episode (frame numbers start again) closes the open takeover
    assert not gate.active(demo_world.reset(1))
    assert [(t.start_frame, t.end_frame) for t in gate.takeovers] == [(2, 3), (5, 5)]


def test_real_time_pacing(pump, demo_world):
    """A human drives in real time: act() keeps steps dt apart (sleeps, never catches up)."""
    import time

    human = HumanDriver(pump=pump, realtime=True)
    step = demo_world.reset(0)   # dt = 0.05 s
    t0 = time.perf_counter()
    for _ in range(4):
        human.act(step)
    assert time.perf_counter() - t0 >= 3 * 0.05 - 1e-3
    assert not HumanDriver(pump=pump).realtime   # headless default (SDL_VIDEODRIVER=dummy)
