"""collect(): episodes into a directory, resumable, one seed per episode."""

import pytest

from drive_il.data.storage import EpisodeReader, list_episodes
from drive_il.errors import SimulatorConnectionError
from drive_il.rollout import CollectSpec, Drivers, RolloutSpec, collect

from .line_world import SC, Biased, Centering, LineSim

pytest.importorskip("h5py")


def test_collect_resumes_and_records_the_spec(tmp_path):
    spec = CollectSpec(episodes=2, first_seed=5,
                       rollout=RolloutSpec(driver="mixture", beta=0.5, max_steps=30, dagger_round=1))
    drivers = Drivers(expert=Centering(), learner=Biased())
    res = collect(LineSim(), SC, tmp_path, spec, drivers, progress=False)
    assert [r.info.seed for r in res.results] == [5, 6] and res.frames == 60 and res.skipped == []
    with EpisodeReader(list_episodes(tmp_path)[1]) as r:
        assert len(r) == 30 and r.meta.seed == 6 and r.meta.dagger_round == 1 and r.meta.beta == 0.5
    more = collect(LineSim(), SC, tmp_path, CollectSpec(episodes=3, first_seed=5, rollout=spec.rollout), drivers,
                   progress=False)
    assert more.skipped == [0, 1] and [r.info.episode for r in more.results] == [2]
    assert [r.info.seed for r in more.results] == [7]


def test_collect_gives_up_after_consecutive_failures(tmp_path):
    class Lost(LineSim):
        def reset(self, *a, **k):
            raise SimulatorConnectionError("no server")
    with pytest.raises(SimulatorConnectionError):
        collect(Lost(), SC, tmp_path, CollectSpec(episodes=5, max_failures=1), Drivers(expert=Centering()),
                progress=False)
    assert list_episodes(tmp_path) == []
