"""run_episode on a tiny fake world (a straight lane along +x, kinematic car)."""

import numpy as np
import pytest

from drive_il.rollout import Drivers, RolloutSpec, InterventionConfig, run_episode

from .line_world import SC, Biased, Centering, LineSim, Rec


def test_expert_completes_route_and_observers_see_everything():
    rec = Rec()
    expert = Centering()
    res = run_episode(LineSim(), SC, 0, Drivers(expert=expert), observers=[rec])
    assert res.termination == "route_completed" and res.summary["route_completion"] == 100.0
    assert rec.started == rec.ended == 1 and len(rec.records) == res.steps and res.path == "/tmp/fake.h5"
    assert all(r.driver == "expert" and r.learner is None for r in rec.records)
    assert res.summary["lateral_deviation_max"] < 1e-9
    assert expert.resets == 1 and rec.info.driver == "expert" and rec.info.noise == {}


def test_learner_drifts_off_route_without_takeover():
    res = run_episode(LineSim(), SC, 0, Drivers(expert=Centering(), learner=Biased()), RolloutSpec(driver="learner"))
    assert res.termination == "off_route"
    assert res.summary["lateral_deviation_max"] > 8.0 and res.summary["disagreement_mean"] > 0


def test_takeover_counts_interventions_and_recentres():
    rec = Rec()
    spec = RolloutSpec(driver="learner", interventions=InterventionConfig(threshold=1.0, recenter_deviation=0.2, recenter_steps=5))
    res = run_episode(LineSim(), SC, 0, Drivers(expert=Centering(), learner=Biased()), spec, observers=[rec])
    n = res.summary["interventions"]
    assert n >= 2, n  # the biased learner drifts again after each recovery
    inter = np.array([r.intervention for r in rec.records])
    lat = np.array([r.lateral_deviation for r in rec.records])
    # a takeover starts only beyond the threshold, and the expert drives during it
    starts = np.flatnonzero(inter[1:] & ~inter[:-1]) + 1
    assert np.all(np.abs(lat[starts]) > 1.0) and len(starts) == n
    assert all(r.driver == "expert" for r in rec.records if r.intervention)
    assert res.summary["autonomy"] == pytest.approx(max(0.0, (1 - n * 6 / (res.steps * SC.dt)) * 100))
    # with a takeover the episode is not ended by drifting: it runs to the route's end
    assert res.termination == "route_completed"


@pytest.mark.parametrize("beta, expect", [(0.0, "learner"), (1.0, "expert")])
def test_mixture_extremes(beta, expect):
    rec = Rec()
    run_episode(LineSim(), SC, 0, Drivers(expert=Centering(), learner=Biased()),
                RolloutSpec(driver="mixture", beta=beta, max_steps=50), observers=[rec])
    assert {r.driver for r in rec.records} == {expect}
    assert all(r.learner is not None and r.beta == beta for r in rec.records)
    assert len(rec.records) == 50


def test_mixture_per_step_is_seeded():
    def drivers(seed):
        rec = Rec()
        run_episode(LineSim(), SC, seed, Drivers(expert=Centering(), learner=Biased()),
                    RolloutSpec(driver="mixture", beta=0.5, max_steps=60), observers=[rec])
        return [r.driver for r in rec.records]
    a, b = drivers(3), drivers(3)
    assert a == b and 10 < a.count("expert") < 50


class Noise:
    def __init__(self):
        self.episodes = 0

    def begin_episode(self, rng):
        self.episodes += 1
        return True

    def perturb(self, c, t):
        return type(c).clipped(c.steer + 0.2, c.throttle, c.brake), True

    def describe(self):
        return {"kind": "test"}


def test_noise_perturbs_executed_but_not_the_label():
    rec = Rec()
    run_episode(LineSim(), SC, 0, Drivers(expert=Centering()), RolloutSpec(noise=Noise(), max_steps=20),
                observers=[rec])
    assert rec.info.noise == {"kind": "test", "active": True}
    for r in rec.records:
        assert r.noise and r.executed.steer == pytest.approx(min(1.0, r.expert.steer + 0.2))


def test_gated_labels_only_and_dagger_metadata():
    rec = Rec()
    spec = RolloutSpec(driver="learner", interventions=InterventionConfig(), dagger_round=3, gated_labels_only=True,
                       max_steps=5)
    run_episode(LineSim(), SC, 0, Drivers(expert=Centering(), learner=Biased()), spec, observers=[rec])
    assert rec.info.noise == {"gated_labels_only": True} and rec.info.dagger_round == 3
    assert all(r.dagger_round == 3 for r in rec.records)


def test_interrupt_aborts_observers():
    class Boom(LineSim):
        def step(self, c):
            if self.f == 5:
                raise KeyboardInterrupt
            return super().step(c)
    rec = Rec()
    with pytest.raises(KeyboardInterrupt):
        run_episode(Boom(), SC, 0, Drivers(expert=Centering()), observers=[rec])
    assert rec.aborted == "interrupted" and rec.ended == 0


def test_a_crash_marks_the_episode_failed():
    class Lost(LineSim):
        def step(self, c):
            raise ConnectionError("server gone")
    rec = Rec()
    with pytest.raises(ConnectionError):
        run_episode(Lost(), SC, 0, Drivers(expert=Centering()), observers=[rec])
    assert rec.aborted == "failed"


@pytest.mark.parametrize("spec, drivers, msg", [
    (RolloutSpec(driver="learner"), {}, "needs a learner"),
    (RolloutSpec(driver="mixture", beta=0.5), {}, "needs a learner"),
    (RolloutSpec(driver="human"), {"learner": Biased()}, "needs a human"),
])
def test_a_mode_without_its_driver_is_refused_before_reset(spec, drivers, msg):
    class NoReset(LineSim):
        def reset(self, *a, **k):
            raise AssertionError("reset before validation")
    with pytest.raises(ValueError, match=msg):
        run_episode(NoReset(), SC, 0, Drivers(expert=Centering(), **drivers), spec)
