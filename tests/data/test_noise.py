"""Noise injection (drive_il.data.noise): perturbed execution, clean expert labels."""

from __future__ import annotations

import math

import numpy as np
import pytest

from drive_il.config import ConfigError, from_dict
from drive_il.data.noise import NoiseConfig, NoiseInjector
from drive_il.data.recorder import EpisodeRecorder
from drive_il.data.storage import EpisodeReader
from drive_il.types import (Control, EpisodeInfo, EpisodeResult, Observation, Step, StepRecord, VehicleState,
                            WorldState)

DT, V, L, MAX_STEER = 0.05, 8.0, 2.9, math.radians(35.0)


class LaneKeepingExpert:
    """Test double of the expert: a PD lane keeper on the privileged state (lane = y 0)."""

    name = "expert"

    def reset(self, step: Step) -> None:
        pass

    def act(self, step: Step) -> Control:
        ego = step.world_state.ego
        return Control.clipped(-0.3 * ego.y - 1.2 * ego.yaw, 0.5, 0.0)


def _step(x, y, yaw, t):
    ego = VehicleState(x=x, y=y, yaw=yaw, speed=V)
    obs = Observation(frames={"center": np.zeros((4, 6, 3), np.uint8)}, speed=V, frame=t, sim_time=t * DT)
    return Step(observation=obs, world_state=WorldState(ego=ego, frame=t, sim_time=t * DT, dt=DT))


def _drive(injector, n=600, recorder=None):
    """A minimal rollout: the expert labels every state, the injector perturbs what is
    executed, a kinematic bicycle moves the car. Returns (labels, executed, noisy, ys)."""
    expert = LaneKeepingExpert()
    x = y = yaw = 0.0
    labels, executed, noisy, ys = [], [], [], []
    info = EpisodeInfo(scenario="noise-test", town="flat", seed=0, dt=DT,
                       vehicle={"wheelbase": L, "max_steer_deg": 35.0}, noise=injector.settings())
    step = _step(x, y, yaw, 0)
    if recorder is not None:
        recorder.on_episode_start(info, step)
    for t in range(n):
        label = expert.act(step)
        ex, is_noisy = injector.perturb(label, step.observation.sim_time)
        if recorder is not None:
            recorder.on_step(StepRecord(step=step, executed=ex, expert=label, noise=is_noisy,
                                        lateral_deviation=y))
        labels.append(label)
        executed.append(ex)
        noisy.append(is_noisy)
        ys.append(y)
        yaw += V / L * math.tan(ex.steer * MAX_STEER) * DT
        x += V * math.cos(yaw) * DT
        y += V * math.sin(yaw) * DT
        step = _step(x, y, yaw, t + 1)
    if recorder is not None:
        recorder.on_episode_end(EpisodeResult(info=info, termination="timeout", steps=n))
    return labels, executed, np.array(noisy), np.array(ys)


@pytest.mark.parametrize("kind", ["triangular", "gaussian"])
def test_noisy_segments_keep_clean_expert_labels(tmp_path, kind):
    cfg = NoiseConfig(episode_share=1.0, kind=kind, magnitude=0.3, duration=1.0, interval=2.0,
                      correlation_time=0.3)
    inj = NoiseInjector(cfg, np.random.default_rng(1))
    assert inj.begin_episode(np.random.default_rng(7))
    rec = EpisodeRecorder(tmp_path)
    labels, executed, noisy, ys = _drive(inj, recorder=rec)
    assert noisy.any()
    if kind == "triangular":
        assert not noisy.all()  # spikes, with clean driving in between
    for lab, ex, nz in zip(labels, executed, noisy):
        assert (ex.steer != lab.steer) == nz
        if not nz:
            assert ex == lab
    # the noise changed the states visited (drift away from the lane centre)
    _, _, clean_noisy, clean_ys = _drive(NoiseInjector(NoiseConfig(episode_share=0.0), np.random.default_rng(1)))
    assert not clean_noisy.any() and np.abs(ys).max() > np.abs(clean_ys).max() + 0.05
    # on disk: executed differs from the label in noisy steps, and the stored label is
    # the expert's output for the state actually visited
    with EpisodeReader(tmp_path / "episode_000000.h5") as r:
        s = r.steps
        flags = s["noise"]
        np.testing.assert_array_equal(flags, noisy)
        assert (s["executed"][flags, 0] != s["expert"][flags, 0]).all()
        np.testing.assert_array_equal(s["executed"][~flags], s["expert"][~flags])
        expert = LaneKeepingExpert()
        for t in range(len(r)):
            x, y, _, yaw = s["pose"][t]
            again = expert.act(_step(float(x), float(y), float(yaw), t))
            assert s["expert"][t, 0] == np.float32(again.steer)
        assert r.meta.noise["kind"] == kind and r.meta.noise["episode_noisy"] is True


def test_triangular_spike_shape():
    cfg = NoiseConfig(episode_share=1.0, kind="triangular", magnitude=0.4, duration=1.0, interval=3.0,
                      throttle_magnitude=0.1)
    inj = NoiseInjector(cfg, np.random.default_rng(3))
    inj.begin_episode()
    offs = np.array([inj.offset(t * DT) for t in range(2000)])
    steer = offs[:, 0]
    on = steer != 0.0
    starts = np.flatnonzero(on & ~np.roll(on, 1))
    assert len(starts) >= 5
    s0 = starts[1]
    spike = np.abs(steer[s0 - 1: s0 + 20])  # includes the zero-offset first step of the spike
    assert spike.max() == pytest.approx(0.4, abs=1e-9)
    peak = int(np.argmax(spike))
    rise, fall = np.diff(spike[: peak + 1]), np.diff(spike[peak:])
    assert np.allclose(rise, rise[0]) and rise[0] > 0  # linear rise
    assert np.allclose(fall, fall[0]) and fall[0] < 0  # linear fall
    assert np.all(np.abs(offs[on, 1]) <= 0.1 + 1e-12) and np.any(offs[on, 1] != 0)


def test_gaussian_statistics():
    for tau, lo, hi in ((0.0, -0.1, 0.1), (0.5, 0.85, 0.95)):
        inj = NoiseInjector(NoiseConfig(episode_share=1.0, kind="gaussian", magnitude=0.2, correlation_time=tau),
                            np.random.default_rng(0))
        inj.begin_episode()
        x = np.array([inj.offset(t * DT)[0] for t in range(6000)])
        assert x.std() == pytest.approx(0.2, rel=0.15)
        r1 = np.corrcoef(x[:-1], x[1:])[0, 1]
        assert lo < r1 < hi, (tau, r1)  # AR(1): exp(-0.05 / 0.5) = 0.905


def test_episode_share_and_determinism():
    def share(p):
        inj = NoiseInjector(NoiseConfig(episode_share=p), np.random.default_rng(0))
        return np.mean([inj.begin_episode() for _ in range(2000)])

    assert share(0.0) == 0.0 and share(1.0) == 1.0
    assert 0.22 < share(0.25) < 0.28
    cfg = NoiseConfig(episode_share=1.0, magnitude=0.5, interval=1.0)
    a, b = (NoiseInjector(cfg, np.random.default_rng(5)) for _ in range(2))
    a.begin_episode(), b.begin_episode()
    assert [a.offset(t * DT) for t in range(300)] == [b.offset(t * DT) for t in range(300)]
    quiet = NoiseInjector(NoiseConfig(episode_share=0.0), np.random.default_rng(0))
    assert not quiet.begin_episode()
    c = Control(steer=0.1, throttle=0.3)
    assert quiet.perturb(c, 1.0) == (c, False)


def test_perturbation_is_clipped():
    inj = NoiseInjector(NoiseConfig(episode_share=1.0, kind="gaussian", magnitude=2.0), np.random.default_rng(0))
    inj.begin_episode()
    for t in range(200):
        ex, _ = inj.perturb(Control(steer=0.9, throttle=1.0), t * DT)
        assert -1.0 <= ex.steer <= 1.0


class _Fixed(NoiseInjector):
    """An injector whose offset is given (to check how perturb applies it)."""

    def __init__(self, ds, dth):
        super().__init__(NoiseConfig(episode_share=1.0), np.random.default_rng(0))
        self._off = (ds, dth)

    def offset(self, sim_time):
        return self._off


@pytest.mark.parametrize("label,dth,throttle,brake", [
    (Control(brake=1.0), 0.5, 0.0, 0.5),            # a push first releases the brake that holds the car
    (Control(brake=0.2), 0.5, 0.3, 0.0),            # ... then throttles: the car creeps on
    (Control(throttle=0.3), -0.1, 0.2, 0.0),        # a negative offset lifts the throttle
    (Control(throttle=0.1), -0.4, 0.0, 0.3),        # ... and brakes once it is gone
    (Control(throttle=0.9), 0.5, 1.0, 0.0),         # clipped
])
def test_throttle_spikes_move_the_signed_longitudinal_command(label, dth, throttle, brake):
    ex, noisy = _Fixed(0.0, dth).perturb(label, 0.0)
    assert noisy and ex.steer == label.steer
    assert ex.throttle == pytest.approx(throttle) and ex.brake == pytest.approx(brake)
    assert _Fixed(0.0, 0.0).perturb(label, 0.0) == (label, False)


def test_a_held_car_creeps_forward_under_throttle_spikes_with_clean_labels(tmp_path):
    """Throttle-only spikes (steering magnitude 0) in a world whose expert holds the car
    at rest with its max_brake (0.5): with a peak of 1.0 the executed command releases the
    brake and throttles, and every recorded label still says stop (a peak of 0.5 would
    only cancel the brake)."""
    from drive_il.rollout import Drivers, RolloutSpec, run_episode

    from ..rollout.line_world import SC, LineSim, Rec

    class Holder:
        name = "expert"
        target_speed = 0.0

        def reset(self, step):
            pass

        def act(self, step):
            return Control(brake=0.5)          # the expert's max_brake holds it at rest

    inj = NoiseInjector(NoiseConfig(episode_share=1.0, magnitude=0.0, throttle_magnitude=1.0, duration=1.0,
                                    interval=1.0), np.random.default_rng(0))
    inj.begin_episode()
    obs = Rec()
    run_episode(LineSim(), SC, 0, Drivers(expert=Holder()), RolloutSpec(driver="expert", max_steps=200, noise=inj),
                observers=[obs])
    assert all(r.expert == Control(brake=0.5) for r in obs.records)
    pushed = [r for r in obs.records if r.noise]
    assert pushed and all(r.executed.steer == 0.0 for r in pushed)
    assert any(r.executed.throttle > 0.0 and r.executed.brake == 0.0 for r in pushed)


def test_config_is_strict():
    assert from_dict(NoiseConfig, {"kind": "gaussian", "magnitude": 0.1}).kind == "gaussian"
    for bad, field in (({"kind": "uniform"}, "kind"), ({"episode_share": 1.5}, "episode_share"),
                       ({"magnitud": 0.1}, "magnitud"), ({"duration": 0.0}, "duration")):
        with pytest.raises(ConfigError, match=field):
            from_dict(NoiseConfig, bad, source="experts/x.toml")
