"""EpisodeRecorder in background mode (writer process) gives the same files as the
synchronous recorder; discard and errors behave the same."""

from __future__ import annotations

import numpy as np
import pytest

from drive_il.data.recorder import EpisodeRecorder
from drive_il.data.storage import EpisodeReader, list_episodes, read_manifest, scan_dir
from drive_il.data.synthetic import synthetic_episode
from drive_il.types import Observation, Step, StepRecord, WorldState, VehicleState, Control


def _record(rec, ep, n=None):
    rec.on_episode_start(ep.info, ep.first)
    for i, r in enumerate(ep.iter_records()):
        if n is not None and i == n:
            return None
        rec.on_step(r)
    return rec.on_episode_end(ep.result())


def test_background_matches_synchronous(tmp_path):
    eps = [synthetic_episode(episode=i, seed=i, steps=150 + 40 * i, n_cameras=3, height=10, width=14,
                             learner=bool(i % 2)) for i in range(3)]
    with EpisodeRecorder(tmp_path / "bg", background=True, ring_steps=8) as rec:
        bg = [_record(rec, ep) for ep in eps]
        # an episode discarded half-way, then the next one records fine
        partial = synthetic_episode(episode=7, steps=50, n_cameras=3, height=10, width=14)
        assert _record(rec, partial, n=20) is None
        assert (tmp_path / "bg" / "episode_000007.h5.partial").exists()
        rec.discard()
        assert not (tmp_path / "bg" / "episode_000007.h5.partial").exists()
        bg.append(_record(rec, synthetic_episode(episode=8, seed=8, steps=30, n_cameras=3, height=10, width=14)))
    sync_rec = EpisodeRecorder(tmp_path / "sync")
    sync = [_record(sync_rec, ep) for ep in eps]
    sync.append(_record(sync_rec, synthetic_episode(episode=8, seed=8, steps=30, n_cameras=3, height=10, width=14)))
    assert list_episodes(tmp_path / "bg") == bg and [p.name for p in bg] == [p.name for p in sync]
    for a, b in zip(bg, sync):
        with EpisodeReader(a) as ra, EpisodeReader(b) as rb:
            assert len(ra) == len(rb) and ra.cameras == rb.cameras
            for cam in ra.cameras:
                np.testing.assert_array_equal(ra.frames(cam)[()], rb.frames(cam)[()])
            for k in rb.steps:
                np.testing.assert_array_equal(ra.steps[k], rb.steps[k])
            ma, mb = ra.meta, rb.meta
            assert (ma.cameras, ma.termination, ma.summary, ma.steps) == (mb.cameras, mb.termination, mb.summary,
                                                                           mb.steps)
    entries, problems = read_manifest(tmp_path / "bg")
    assert problems == [] and [e["file"] for e in entries] == [p.name for p in bg]
    assert scan_dir(tmp_path / "bg").partial == ()


@pytest.mark.parametrize("background", [False, True], ids=["sync", "background"])
def test_bad_frame_is_refused(tmp_path, background):
    ep = synthetic_episode(steps=5, height=10, width=14)
    with EpisodeRecorder(tmp_path, background=background) as rec:
        rec.on_episode_start(ep.info, ep.first)
        bad = Step(observation=Observation(frames={"center": np.zeros((10, 15, 3), np.uint8)}, speed=0.0),
                   world_state=WorldState(ego=VehicleState(x=0.0, y=0.0, yaw=0.0)))
        with pytest.raises(ValueError, match="expected a \\(10, 14, 3\\) uint8 frame"):
            rec.on_step(StepRecord(step=bad, executed=Control(), expert=Control()))
        for r in ep.iter_records():
            rec.on_step(r)
        p = rec.on_episode_end(ep.result())
    with EpisodeReader(p) as r:
        assert len(r) == 5


def test_record_schema_round_trip(tmp_path):
    """The recorder stores each StepRow field by name; the file's arrays read back by
    the same names give the rows the rollout summarised, and the same metrics."""
    from drive_il.metrics import EpisodeTrace, summarize
    from drive_il.rollout import Drivers, RolloutSpec, InterventionConfig, run_episode
    from drive_il.types import STEP_FILE_COLUMNS, StepRow, columns_from_file_arrays, step_columns
    from tests.rollout.line_world import SC, Biased, Centering, LineSim, Rec

    keep = Rec()
    rec = EpisodeRecorder(tmp_path)
    spec = RolloutSpec(driver="learner", interventions=InterventionConfig(threshold=1.0, recenter_deviation=0.2,
                                                                 recenter_steps=5), max_steps=300)
    from drive_il.types import EventKind as K
    sim = LineSim(events={40: (K.COLLISION,), 90: (K.OFF_ROAD, K.LANE_INVASION)})
    res = run_episode(sim, SC, 0, Drivers(expert=Centering(), learner=Biased()), spec, observers=[rec, keep])
    want = step_columns([r.row() for r in keep.records])
    assert res.summary["interventions"] >= 2 and res.summary["collisions"] == res.summary["off_road"] == 1
    assert want["lane_invasion"].sum() == 1 and set(want["driver"]) == {"expert", "learner"}
    stored = {n for names in STEP_FILE_COLUMNS.values() for n in names}
    assert stored == set(StepRow._fields) - {"in_junction"}
    with EpisodeReader(res.path) as r:
        got = columns_from_file_arrays({k: np.asarray(r.steps[k]) for k in r.steps})
        names = r.driver_names
    assert set(got) == stored
    for name in stored:
        if name == "driver":
            assert [names[c] for c in got["driver"]] == want["driver"].tolist()
        else:
            np.testing.assert_allclose(got[name].astype(float), want[name].astype(float), rtol=1e-6, atol=1e-6,
                                       err_msg=name)
    trace = EpisodeTrace.from_columns(got, dt=SC.dt, route_length=LineSim().route.length)
    again = summarize(trace)
    for k in ("steps", "distance", "lateral_deviation_mean", "lateral_deviation_max", "interventions", "autonomy", "lane_invasions",
              "disagreement_mean", "collisions"):
        assert again[k] == pytest.approx(res.summary[k], rel=1e-5, abs=1e-6), k
