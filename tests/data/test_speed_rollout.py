"""The rollout loop puts the expert's and the learner's target speeds and the new event
flags into the StepRecords, and the recorder into the episode file."""

from __future__ import annotations

import math

import numpy as np

from drive_il.data.recorder import EpisodeRecorder
from drive_il.data.storage import EpisodeReader
from drive_il.rollout import Drivers, RolloutSpec, run_episode
from drive_il.types import EventKind

from ..rollout.line_world import SC, Biased, Centering, LineSim, Rec


class SpeedExpert(Centering):
    """Asks for 8 m/s, 0 from frame 10 to 14 (a red light)."""

    def act(self, step):
        f = step.observation.frame
        self.target_speed = 0.0 if 10 <= f < 15 else 8.0
        return super().act(step)


class SpeedLearner(Biased):
    has_speed_head = True

    def act(self, step):
        self.target_speed = 0.5 * step.observation.frame
        return super().act(step)


def test_target_speeds_and_events_reach_the_episode_file(tmp_path):
    sim = LineSim(events={3: (EventKind.RED_LIGHT,), 7: (EventKind.WALKER_COLLISION,)})
    obs = Rec()
    with EpisodeRecorder(tmp_path / "d") as rec:
        res = run_episode(sim, SC, 0, Drivers(expert=SpeedExpert(), learner=SpeedLearner()),
                          RolloutSpec(driver="expert", max_steps=20), observers=[rec, obs])
    frames = np.array([r.step.observation.frame for r in obs.records])
    want = np.where((frames >= 10) & (frames < 15), 0.0, 8.0)
    assert [r.expert_target_speed for r in obs.records] == want.tolist()
    assert [r.learner_target_speed for r in obs.records] == (0.5 * frames).tolist()
    with EpisodeReader(res.path) as r:
        np.testing.assert_array_equal(r.steps["target_speed"], want.astype(np.float32))
        np.testing.assert_array_equal(r.steps["learner_target_speed"], (0.5 * frames).astype(np.float32))
        # events are those reported while executing the control of a step: the step from frame 2 to 3
        assert np.flatnonzero(r.steps["red_light"]).tolist() == [2]
        assert np.flatnonzero(r.steps["walker_collision"]).tolist() == [6]


def test_drivers_without_target_speeds_give_nan(tmp_path):
    obs = Rec()
    run_episode(LineSim(), SC, 0, Drivers(expert=Centering(), learner=Biased()),
                RolloutSpec(driver="expert", max_steps=5), observers=[obs])
    assert all(math.isnan(r.expert_target_speed) and math.isnan(r.learner_target_speed) for r in obs.records)
    assert not any(r.row().red_light or r.row().walker_collision for r in obs.records)
