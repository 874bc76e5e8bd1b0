"""Who drives: the mixture's coins, the DAVE-2 interventions, the HG-DAgger gate and noise
injection, on scripted drivers (no simulator); the red-light and imminent-collision
takeovers (issue 19) on hand-built thresholds and with the expert against a learner blind
to lights and walkers in the expert's test world."""

import dataclasses
import math
from types import SimpleNamespace

import numpy as np
import pytest

from drive_il.evaluation.trace import InterventionTrace
from drive_il.expert import Expert, load_expert_config
from drive_il.expert.local_planner import Lead
from drive_il.rollout import Arbiter, Drivers, InterventionMonitor, InterventionConfig
from drive_il.rollout.arbitration import hazard_onset, hazards_present
from drive_il.scenario import VehicleConfig
from drive_il.types import (Control, Observation, Step, StepRecord, TrafficLightState, VehicleState, WalkerState,
                            WorldState)

from ..expert.bicycle_world import BicycleWorld
from ..expert.test_urban import HALF, LINE, ROUTE, phases, walker_clearance


def step_at(frame=0, t=0.0):
    ws = WorldState(ego=VehicleState(x=0.0, y=0.0, yaw=0.0), frame=frame, sim_time=t)
    return Step(Observation(frames={}, speed=0.0, frame=frame, sim_time=t), ws)


class Const:
    def __init__(self, name, steer):
        self.name, self.steer, self.calls, self.resets = name, steer, 0, 0

    def reset(self, step):
        self.resets += 1

    def act(self, step):
        self.calls += 1
        return Control(steer=self.steer, throttle=0.5)


def drivers(**kw):
    return Drivers(expert=Const("expert", -0.1), learner=Const("learner", 0.3), **kw)


def arbiter(mode="mixture", beta=0.5, seed=0, **kw):
    a = Arbiter(drivers(**kw.pop("drivers", {})), mode=mode, beta=beta, rng=np.random.default_rng(seed), **kw)
    a.begin_episode(step_at())
    return a


def run(a, n, deviation=0.0, heading=0.0):
    return [a.decide(step_at(i, 0.05 * i), deviation, heading, False, False) for i in range(n)]


def test_expert_labels_and_learner_predicts_at_every_step():
    a = arbiter(mode="expert")
    ds = run(a, 5)
    assert [d.driver for d in ds] == ["expert"] * 5
    assert all(d.expert.steer == -0.1 and d.learner.steer == 0.3 and d.control.steer == -0.1 for d in ds)
    assert a.drivers.expert.calls == a.drivers.learner.calls == 5
    assert a.drivers.expert.resets == a.drivers.learner.resets == 1


def test_mixture_per_step_coin_follows_beta_and_the_seed():
    ds = run(arbiter(beta=0.3, seed=1), 2000)
    share = np.mean([d.driver == "expert" for d in ds])
    assert abs(share - 0.3) < 0.04
    again = run(arbiter(beta=0.3, seed=1), 2000)
    assert [d.driver for d in ds] == [d.driver for d in again]
    assert all(d.control.steer == (-0.1 if d.driver == "expert" else 0.3) for d in ds)
    assert not any(d.intervention for d in ds)


def test_mixture_per_episode_coin_holds_for_the_whole_episode():
    whole = []
    for seed in range(40):
        names = {d.driver for d in run(arbiter(beta=0.5, seed=seed, mixing="episode"), 30)}
        assert len(names) == 1
        whole.append(names.pop())
    assert 5 < whole.count("expert") < 35


def test_takeover_onset_past_threshold_and_back_after_recentring():
    cfg = InterventionConfig(threshold=1.0, recenter_deviation=0.3, recenter_steps=3)
    a = arbiter(mode="learner", interventions=cfg)
    deviation = [0.5, 0.9, 1.1, 0.8, 0.2, 0.2, 0.5, 0.2, 0.2, 0.1, 0.0, 1.2]
    ds = [a.decide(step_at(i), x, 0.0, False, False) for i, x in enumerate(deviation)]
    flags = [d.intervention for d in ds]
    # on at 1.1 m; the third calm step in a row hands back (the 0.5 m step resets the count)
    assert flags == [False, False, True, True, True, True, True, True, True, False, False, True]
    assert all(d.driver == ("expert" if d.intervention else "learner") for d in ds)
    assert a.interventions == 2


def test_takeover_on_collision_and_not_on_heading_while_recentring():
    tk = InterventionMonitor(InterventionConfig(recenter_steps=2))
    assert tk.update(0.0, 0.0, collided=True, left_road=False) and tk.onsets == 1
    assert tk.update(0.0, 0.5, False, False)  # re-centred but heading 29 deg: still active
    assert tk.update(0.0, 0.0, False, False) and not tk.update(0.0, 0.0, False, False)
    off = InterventionMonitor(InterventionConfig(on_collision=False, on_off_road=False))
    assert not off.update(0.0, 0.0, True, True)
    assert InterventionMonitor(InterventionConfig()).update(0.0, 0.0, False, left_road=True)


def test_takeover_does_not_apply_to_the_expert_mode():
    a = arbiter(mode="expert", interventions=InterventionConfig())
    assert not any(d.intervention for d in run(a, 5, deviation=3.0))
    assert a.interventions == 0
    assert arbiter(mode="learner").interventions is None


class Gate:
    def __init__(self, frames):
        self.frames = set(frames)

    def active(self, step):
        return step.world_state.frame in self.frames

    def control(self, step):
        return Control(steer=0.7)


def test_human_gate_overrides_and_flags_intervention():
    a = arbiter(mode="learner", drivers={"gate": Gate(range(3, 6))})
    ds = run(a, 8)
    assert [d.driver for d in ds] == ["learner"] * 3 + ["human"] * 3 + ["learner"] * 2
    assert [d.intervention for d in ds] == [False] * 3 + [True] * 3 + [False] * 2
    assert all(d.control.steer == 0.7 for d in ds[3:6]) and all(d.expert.steer == -0.1 for d in ds)


class Noise:
    def begin_episode(self, rng):
        return True

    def perturb(self, c, t):
        return Control(steer=c.steer + 0.05, throttle=c.throttle), True

    def describe(self):
        return {"kind": "test"}


def test_noise_only_on_plain_expert_steps():
    cfg = InterventionConfig(threshold=1.0, recenter_deviation=0.3, recenter_steps=100)
    a = Arbiter(drivers(), mode="mixture", beta=0.5, interventions=cfg, noise=Noise(), rng=np.random.default_rng(2))
    assert a.begin_episode(step_at()) == {"kind": "test", "active": True}
    ds = [a.decide(step_at(i), 0.0, 0.0, False, False) for i in range(40)]
    ds += [a.decide(step_at(40 + i), 2.0, 0.0, False, False) for i in range(5)]  # takeover
    for d in ds:
        plain_expert = d.driver == "expert" and not d.intervention
        assert d.noise == plain_expert
        assert d.control.steer == pytest.approx(-0.05 if plain_expert else (-0.1 if d.intervention else 0.3))
        assert d.expert.steer == -0.1  # the label stays clean
    assert any(d.noise for d in ds) and any(d.driver == "learner" for d in ds)


def test_quiet_noise_episode_perturbs_nothing():
    class Quiet(Noise):
        def begin_episode(self, rng):
            return False
    a = Arbiter(drivers(), mode="expert", noise=Quiet(), rng=np.random.default_rng(0))
    assert a.begin_episode(step_at())["active"] is False
    assert not any(d.noise for d in run(a, 10))


@pytest.mark.parametrize("mode, kw, msg", [
    ("learner", {"learner": None}, "driver='learner' needs a learner"),
    ("mixture", {"learner": None}, "driver='mixture' needs a learner"),
    ("human", {}, "driver='human' needs a human driver"),
])
def test_missing_driver(mode, kw, msg):
    d = Drivers(expert=Const("expert", 0.0), **{"learner": Const("learner", 0.0), **kw})
    with pytest.raises(ValueError, match=msg):
        Arbiter(d, mode=mode, beta=0.5, rng=np.random.default_rng(0))


# ------------------------------------------------------------------ hazard takeovers (issue 19)

COAST = Control(steer=0.0, throttle=0.5)


def stub_expert(reason, gap=10.0, speed=0.0):
    return SimpleNamespace(stop_reason=reason, obstacle=Lead(gap=gap, speed=speed, actor_id=1, kind=reason))


def test_red_light_onset_thresholds():
    cfg = InterventionConfig()
    brake = Control(brake=0.5)
    ex = stub_expert("red_light", gap=10.0)
    # 8 m/s, 10 m before the line: stopping needs 3.2 m/s^2 < 4.0: not yet
    assert hazard_onset(cfg, ex, brake, COAST, 8.0) == ""
    # 9 m/s: 4.05 m/s^2 >= 4.0 and the learner coasts: take over
    assert hazard_onset(cfg, ex, brake, COAST, 9.0) == "red_light"
    # ... unless the learner brakes enough itself (0.6 * 8 m/s^2 = 4.8 >= 4.05)
    assert hazard_onset(cfg, ex, brake, Control(brake=0.6), 9.0) == ""
    # creeping on within red_light_distance of the line; at rest: nothing
    near = stub_expert("red_light", gap=0.9)
    assert hazard_onset(cfg, near, brake, COAST, 0.8) == "red_light"
    assert hazard_onset(cfg, near, brake, COAST, 0.3) == ""
    assert hazard_onset(InterventionConfig(on_red_light=False), ex, brake, COAST, 9.0) == ""
    assert hazard_onset(cfg, stub_expert("yellow_light", gap=5.0), brake, COAST, 9.0) == ""
    assert hazard_onset(cfg, ex, brake, None, 9.0) == ""


def test_imminent_collision_onset_thresholds():
    cfg = InterventionConfig(takeover_decel=4.0, ttc_threshold=1.5)
    brake = Control(brake=0.3)
    # a walker 12 m ahead at 7 m/s: TTC 1.71 s, needs 2.04 m/s^2: not yet; at 8.5 m/s TTC 1.41 s: take over
    w = stub_expert("walker", gap=12.0)
    assert hazard_onset(cfg, w, brake, COAST, 7.0) == ""
    assert hazard_onset(cfg, w, brake, COAST, 8.5) == "imminent_collision"
    # the expert does not brake (it is still coasting down): no takeover
    assert hazard_onset(cfg, w, Control(throttle=0.1), COAST, 8.5) == ""
    # a vehicle ahead driving 6 m/s: closing speed 2.5 m/s, TTC 4.8 s: no takeover
    assert hazard_onset(cfg, stub_expert("vehicle", gap=12.0, speed=6.0), brake, COAST, 8.5) == ""
    # a very short gap at low closing speed: TTC 2 s but it needs 4.5 m/s^2 > 4.0
    assert hazard_onset(cfg, stub_expert("vehicle", gap=1.0), brake, COAST, 3.0) == "imminent_collision"
    # hazards persist while the expert stops for a standing or closing obstacle
    assert hazards_present(w, 0.0) == {"imminent_collision"}
    assert hazards_present(stub_expert("vehicle", speed=5.0), 5.0) == frozenset()
    assert hazards_present(stub_expert("red_light"), 0.0) == {"red_light"}
    assert hazards_present(SimpleNamespace(), 3.0) == frozenset()


class Blind:
    """A stub learner: the expert's driving with the world's lights and walkers hidden
    (it ignores red lights and pedestrians)."""

    name = "learner"

    def __init__(self):
        self.inner = Expert(config=load_expert_config("default"), vehicle=VehicleConfig())

    def _hide(self, step):
        return dataclasses.replace(step, world_state=dataclasses.replace(step.world_state, traffic_lights=(),
                                                                       walkers=()))

    def reset(self, step):
        self.inner.reset(self._hide(step))

    def act(self, step):
        return self.inner.act(self._hide(step))


def takeover_run(world, seconds):
    ex = Expert(config=load_expert_config("default"), vehicle=VehicleConfig())
    a = Arbiter(Drivers(expert=ex, learner=Blind()), mode="learner", interventions=InterventionConfig(),
                rng=np.random.default_rng(0))
    step = world.reset()
    a.begin_episode(step)
    rows = []
    for _ in range(int(seconds / world.dt)):
        e = step.world_state.ego
        d = a.decide(step, e.y, e.yaw, False, False)
        rows.append((step.world_state.sim_time, e.x + HALF, e.speed, d, step.world_state))
        step = world.step(d.control)
    return a, rows


def test_expert_takes_over_a_learner_running_a_red_light_until_green():
    a, rows = takeover_run(BicycleWorld(ROUTE, lights=phases((TrafficLightState.RED, 25.0),
                                                             (TrafficLightState.GREEN, None))), 40.0)
    causes = [r[3].cause for r in rows]
    assert "red_light" in causes and a.monitor.causes == {"red_light": 1}
    assert all(r[1] < LINE for r in rows if r[0] < 25.0)          # the line was never crossed on red
    first = causes.index("red_light")
    assert rows[first][3].driver == "expert" and rows[first][3].intervention
    assert rows[first - 1][3].driver == "learner"
    # held while red, handed back after green, the learner drives the rest
    assert all(r[3].cause == "red_light" for r in rows[first:] if r[0] < 25.0)
    back = [r for r in rows if r[0] >= 25.0 and not r[3].intervention]
    assert back and all(r[3].driver == "learner" and r[3].cause == "" for r in back)
    assert rows[-1][1] > LINE + 30.0


def test_expert_takes_over_a_learner_about_to_hit_a_walker():
    w = WalkerState(actor_id=100000, x=60.0, y=6.0, yaw=-math.pi / 2, speed=0.4)
    a, rows = takeover_run(BicycleWorld(ROUTE, walkers=(w,)), 45.0)
    assert a.monitor.causes == {"imminent_collision": 1}
    assert min(walker_clearance(r[4]) for r in rows) > 0.5       # the walker was not hit
    on = [i for i, r in enumerate(rows) if r[3].cause == "imminent_collision"]
    assert on and all(rows[i][3].driver == "expert" for i in on)
    assert not rows[-1][3].intervention and rows[-1][3].driver == "learner"   # ended after it crossed
    assert rows[-1][1] > 100.0


def test_a_learner_that_brakes_like_the_expert_is_never_taken_over():
    a = Arbiter(Drivers(expert=Expert(config=load_expert_config("default"), vehicle=VehicleConfig()),
                        learner=Expert(config=load_expert_config("default"), vehicle=VehicleConfig())),
                mode="learner", interventions=InterventionConfig(), rng=np.random.default_rng(0))
    world = BicycleWorld(ROUTE, lights=phases((TrafficLightState.RED, 20.0), (TrafficLightState.GREEN, None)),
                         walkers=(WalkerState(actor_id=100000, x=160.0, y=6.0, yaw=-math.pi / 2, speed=0.4),))
    step = world.reset()
    a.begin_episode(step)
    for _ in range(800):
        e = step.world_state.ego
        d = a.decide(step, e.y, e.yaw, False, False)
        step = world.step(d.control)
    assert a.interventions == 0


def test_the_trace_reports_the_recorded_cause():
    tr = InterventionTrace()
    tr.on_episode_start(SimpleNamespace(episode=3, seed=1), None)
    st = step_at(0)
    rec = StepRecord(step=st, executed=Control(), expert=Control(brake=1.0), learner=COAST, driver="expert",
                     intervention=True, intervention_cause="red_light")
    tr.on_step(StepRecord(step=st, executed=COAST, expert=Control(), learner=COAST, driver="learner"))
    tr.on_step(rec)
    assert [r["cause"] for r in tr.rows] == ["red_light"]
