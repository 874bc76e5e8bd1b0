"""collect(): episodes into a directory, resumable, one seed per episode."""

import numpy as np
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


# ---------------------------------------------------------------- issue 16: resume checks, disk full, bad --out

def _collect(out, episodes, scenario=SC, first_seed=None):
    spec = CollectSpec(episodes=episodes, first_seed=first_seed, rollout=RolloutSpec(max_steps=20))
    return collect(LineSim(), scenario, out, spec, Drivers(expert=Centering()), progress=False)


def test_resume_with_another_scenario_or_rig_is_refused(tmp_path):
    import dataclasses

    from drive_il.errors import DataError
    from drive_il.scenario import CameraConfig

    _collect(tmp_path, 1)
    with pytest.raises(DataError) as e:
        _collect(tmp_path, 2, SC.replace(target_speed=5.0))
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"{tmp_path}: holds episodes of another scenario")
    assert "target_speed is 8.0 in episode_000000.h5 but 5.0 now" in msg and "new directory" in msg
    with pytest.raises(DataError, match=r"vehicle\.wheelbase is 2\.9 in episode_000000\.h5 but 3\.1 now"):
        _collect(tmp_path, 2, SC.replace(vehicle=dataclasses.replace(SC.vehicle, wheelbase=3.1)))
    with pytest.raises(DataError, match=r"another camera rig \(camera 'center' fov_deg is 60\.0 in "
                                        r"episode_000000\.h5 but 90\.0 now\)"):
        _collect(tmp_path, 2, SC.replace(cameras=(CameraConfig(fov_deg=90.0),)))
    with pytest.raises(DataError, match=r"another camera rig \(cameras center in episode_000000\.h5 but "
                                        r"center, left now\)"):
        _collect(tmp_path, 2, SC.replace(cameras=(CameraConfig(), CameraConfig(name="left", yaw_deg=-30.0))))
    assert [p.name for p in list_episodes(tmp_path)] == ["episode_000000.h5"]
    # name, seed, test, pipeline and noise settings may differ (DAgger's --rounds, --first-seed, --noise-*)
    import dataclasses as dc
    other = SC.replace(name="renamed", seed=99, pipeline=dc.replace(SC.pipeline, dagger_rounds=9),
                       noise=dc.replace(SC.noise, episode_share=0.5))
    res = _collect(tmp_path, 2, other)
    assert res.skipped == [0] and [r.info.episode for r in res.results] == [1]


def test_resume_repairs_a_manifest_cut_by_a_crash(tmp_path):
    from drive_il.cli import main
    from drive_il.data.storage import read_manifest

    _collect(tmp_path, 2)
    man = tmp_path / "manifest.jsonl"
    lines = man.read_text().splitlines()
    man.write_text(lines[0] + "\n")  # the crash came between the rename of episode 1 and its line
    assert main(["data", "verify", str(tmp_path)]) == 1
    res = _collect(tmp_path, 3)
    assert res.skipped == [0, 1] and [r.info.episode for r in res.results] == [2]
    entries, problems = read_manifest(tmp_path)
    assert problems == [] and [e["file"] for e in entries] == [f"episode_00000{i}.h5" for i in range(3)]
    import json
    assert entries[1] == json.loads(lines[1])  # rebuilt exactly as the writer wrote it
    assert main(["data", "verify", str(tmp_path)]) == 0


@pytest.mark.parametrize("style", ["errno", "hdf5"])
def test_disk_full_keeps_finished_episodes_and_removes_the_partial(tmp_path, monkeypatch, style):
    import errno

    from drive_il.cli import main
    from drive_il.data.storage import EpisodeWriter
    from drive_il.errors import DataError

    _collect(tmp_path, 1)
    real = EpisodeWriter.write_frame

    def full(self, camera, t, frame):
        if t == 5:
            if style == "errno":
                raise OSError(errno.ENOSPC, "No space left on device")
            raise OSError("Can't synchronously write data (file write failed: time = x, filename = 'f', "
                          "file descriptor = 5, errno = 28, error message = 'No space left on device', buf = 0x1)")
        return real(self, camera, t, frame)

    monkeypatch.setattr(EpisodeWriter, "write_frame", full)
    with pytest.raises(DataError) as e:
        _collect(tmp_path, 3)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"{tmp_path / 'episode_000001.h5.partial'}: cannot write")
    assert "(No space left on device)" in msg and "the partial file was removed" in msg
    assert "the 1 finished episode(s)" in msg
    assert sorted(p.name for p in tmp_path.glob("episode_*")) == ["episode_000000.h5"]
    monkeypatch.setattr(EpisodeWriter, "write_frame", real)
    assert main(["data", "verify", str(tmp_path)]) == 0
    res = _collect(tmp_path, 3)  # room again: resumes
    assert res.skipped == [0] and [r.info.episode for r in res.results] == [1, 2]


def test_disk_full_at_the_manifest_append_keeps_the_episode(tmp_path, monkeypatch):
    import errno

    from drive_il.data.storage import writer
    from drive_il.errors import DataError

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(writer, "append_manifest", full)
    with pytest.raises(DataError, match=r"episode_000000\.h5: episode finished, but its manifest line could not be "
                                        r"appended \(No space left on device\)"):
        _collect(tmp_path, 2)
    monkeypatch.undo()
    assert [p.name for p in list_episodes(tmp_path)] == ["episode_000000.h5"]
    res = _collect(tmp_path, 2)  # the resume adds the missing line
    assert res.skipped == [0]
    from drive_il.cli import main
    assert main(["data", "verify", str(tmp_path)]) == 0


def test_out_that_cannot_be_created_is_one_line(tmp_path):
    from drive_il.errors import DataError

    f = tmp_path / "file"
    f.write_text("x")
    for bad, why in ((f, "File exists"), (f / "sub", "Not a directory")):
        with pytest.raises(DataError) as e:
            _collect(bad, 1)
        assert str(e.value) == (f"{bad}: cannot create the demonstration directory ({why}); expected a directory "
                                "path that can be written")


def test_the_expert_stop_reason_of_each_step_is_recorded(tmp_path):
    """``steps/stop_reason``: the code of what the expert's ``stop_reason`` said when it
    labelled the step (schema version 3), ``steps/obstacle`` the gap and speed of its
    ``obstacle`` (version 4; none: +inf, NaN); an expert without the attributes: unknown."""
    from drive_il.expert.local_planner import Lead
    from drive_il.types import STOP_REASON_UNKNOWN, STOP_REASONS, stop_reason_code

    class Stopping(Centering):
        """Names a reason that changes every step, as the planner expert's ``stop_reason``."""

        def reset(self, step):
            super().reset(step)
            self.t = 0

        def act(self, step):
            self.stop_reason = STOP_REASONS[self.t % len(STOP_REASONS)]
            self.target_speed = 0.0 if self.stop_reason else 5.0
            self.obstacle = Lead(gap=10.0 - self.t, speed=0.5 * self.t, actor_id=3) if self.stop_reason else None
            self.t += 1
            return super().act(step)

    spec = CollectSpec(episodes=1, rollout=RolloutSpec(max_steps=12))
    collect(LineSim(), SC, tmp_path / "a", spec, Drivers(expert=Stopping()), progress=False)
    with EpisodeReader(list_episodes(tmp_path / "a")[0]) as r:
        want = [stop_reason_code(STOP_REASONS[t % len(STOP_REASONS)]) for t in range(12)]
        assert r.steps["stop_reason"].tolist() == want == [0, 1, 2, 3, 4] * 2 + [0, 1]
        assert r.steps["target_speed"].tolist() == [5.0 if c == 0 else 0.0 for c in want]
        ob = r.steps["obstacle"]
        for t, c in enumerate(want):
            if c == 0:
                assert np.isposinf(ob[t, 0]) and np.isnan(ob[t, 1])
            else:
                assert ob[t].tolist() == [10.0 - t, 0.5 * t]
    collect(LineSim(), SC, tmp_path / "b", spec, Drivers(expert=Centering()), progress=False)
    with EpisodeReader(list_episodes(tmp_path / "b")[0]) as r:
        assert (r.steps["stop_reason"] == STOP_REASON_UNKNOWN).all() and np.isnan(r.steps["obstacle"]).all()
