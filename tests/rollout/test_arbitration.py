"""Who drives: the mixture's coins, the DAVE-2 interventions, the HG-DAgger gate and noise
injection, on scripted drivers (no simulator)."""

import numpy as np
import pytest

from drive_il.rollout import Arbiter, Drivers, InterventionMonitor, InterventionConfig
from drive_il.types import Control, Observation, Step, VehicleState, WorldState


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
