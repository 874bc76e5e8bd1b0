"""Episode files of schema version 2: the speed label (``target_speed``), the learner's
target speed, the red-light and walker-collision flags; version 3: the expert's stop
reason; version 1 and 2 files still read."""

from __future__ import annotations

import dataclasses
import math

import h5py
import numpy as np
import pytest

from drive_il.data.dataset import EpisodeDataset
from drive_il.data.recorder import EpisodeRecorder
from drive_il.data.storage import (
    SCHEMA_VERSION,
    STEP_FIELD_DEFAULTS,
    STEP_FIELDS,
    EpisodeReader,
    step_fields_of_version,
)
from drive_il.data.synthetic import synthetic_episode, write_synthetic_episodes
from drive_il.data.tools import data_info, verify_dir
from drive_il.types import (
    STOP_REASON_UNKNOWN,
    STOP_REASONS,
    Event,
    EventKind,
    StepRecord,
    columns_from_file_arrays,
    stop_reason_code,
    stop_reason_name,
)

NEW_FIELDS = ("target_speed", "learner_target_speed", "red_light", "walker_collision")


def _record(d, *, steps=24, n_cameras=1, learner=False):
    """One episode with speed labels, learner speeds and the two new events."""
    ep = synthetic_episode(episode=0, seed=3, steps=steps, n_cameras=n_cameras, height=16, width=24,
                           learner=learner)
    rec = EpisodeRecorder(d)
    rec.on_episode_start(ep.info, ep.first)
    want = []
    for t, r in enumerate(ep.iter_records()):
        ev = ()
        if t == 5:
            ev = (Event(kind=EventKind.RED_LIGHT, frame=r.step.observation.frame, sim_time=0.0, other_actor=7),)
        elif t == 9:
            ev = (Event(kind=EventKind.WALKER_COLLISION, frame=r.step.observation.frame, sim_time=0.0,
                        other_actor=3),)
        v = math.nan if t == 2 else 0.25 * t
        r = dataclasses.replace(r, events=ev, expert_target_speed=v,
                                learner_target_speed=(1.5 * t if learner else math.nan),
                                expert_stop_reason=(None if t == 3 else STOP_REASONS[t % len(STOP_REASONS)]),
                                expert_obstacle_gap=(math.nan if t == 3 else math.inf if t % len(STOP_REASONS) == 0
                                                     else 0.5 * t),
                                expert_obstacle_speed=(math.nan if t % len(STOP_REASONS) in (0, 3) else 0.1 * t))
        rec.on_step(r)
        want.append(r)
    path = rec.on_episode_end(ep.result())
    return path, want


def test_round_trip_of_the_new_fields(tmp_path):
    path, recs = _record(tmp_path / "d", learner=True)
    with EpisodeReader(path) as r:
        assert r.meta.schema_version == SCHEMA_VERSION == 4
        ts = r.steps["target_speed"]
        assert ts.dtype == np.float32 and ts.shape == (len(recs),)
        assert math.isnan(ts[2]) and ts[3] == pytest.approx(0.75) and ts[20] == pytest.approx(5.0)
        np.testing.assert_allclose(r.steps["learner_target_speed"], 1.5 * np.arange(len(recs)), rtol=1e-6)
        assert np.flatnonzero(r.steps["red_light"]).tolist() == [5]
        assert np.flatnonzero(r.steps["walker_collision"]).tolist() == [9]
        assert not r.steps["collision"].any()
        codes = r.steps["stop_reason"]
        assert codes.dtype == np.uint8
        assert codes.tolist() == [STOP_REASON_UNKNOWN if t == 3 else t % len(STOP_REASONS) for t in range(len(recs))]
        assert [stop_reason_name(c) for c in codes[:6]] == ["none", "red_light", "yellow_light", "unknown",
                                                            "vehicle", "none"]
        ob = r.steps["obstacle"]
        assert ob.dtype == np.float32 and ob.shape == (len(recs), 2)
        assert np.isposinf(ob[0, 0]) and np.isnan(ob[0, 1]) and np.isnan(ob[3]).all()
        np.testing.assert_allclose(ob[4], [2.0, 0.4], rtol=1e-6)
        cols = columns_from_file_arrays({k: np.asarray(r.steps[k]) for k in r.steps})
    rows = [rec.row() for rec in recs]
    np.testing.assert_array_equal(cols["obstacle_gap"], np.array([row.obstacle_gap for row in rows], np.float32))
    assert rows[5].red_light and not rows[5].walker_collision and rows[9].walker_collision
    assert cols["red_light"].tolist() == [row.red_light for row in rows]
    assert verify_dir(tmp_path / "d").ok


def test_step_record_defaults_are_unknown():
    ep = synthetic_episode(steps=2, height=16, width=24)
    r = next(iter(ep.iter_records()))
    bare = StepRecord(step=r.step, executed=r.executed, expert=r.expert)
    row = bare.row()
    assert math.isnan(row.target_speed) and math.isnan(row.learner_target_speed)
    assert row.red_light is False and row.walker_collision is False
    assert row.stop_reason == STOP_REASON_UNKNOWN == stop_reason_code(None)
    assert math.isnan(row.obstacle_gap) and math.isnan(row.obstacle_speed)
    with pytest.raises(ValueError, match="stop reason 'parked'"):
        dataclasses.replace(bare, expert_stop_reason="parked").row()


def _downgrade_to_v1(path):
    """Rewrite a file as the version 1 writer left it: no new arrays, schema_version 1."""
    with h5py.File(path, "r+") as f:
        for k in (*NEW_FIELDS, "stop_reason", "obstacle"):
            del f["steps"][k]
        f.attrs["schema_version"] = 1


def test_an_old_layout_file_reads_with_nan_and_false(tmp_path):
    d = tmp_path / "old"
    paths = write_synthetic_episodes(d, 2, steps=20, n_cameras=2, height=16, width=24)
    for p in paths:
        _downgrade_to_v1(p)
    with EpisodeReader(paths[0]) as r:
        assert r.meta.schema_version == 1
        assert set(NEW_FIELDS) <= set(r.steps) and len(r.steps) == len(STEP_FIELDS)
        ts = r.steps["target_speed"]
        assert ts.shape == (20,) and ts.dtype == np.float32 and np.isnan(ts).all()
        assert r.steps["red_light"].dtype == bool and not r.steps["red_light"].any()
        assert not r.steps["walker_collision"].any()
        assert np.isnan(r.steps["learner_target_speed"]).all()
        assert (r.steps["stop_reason"] == STOP_REASON_UNKNOWN).all()
        assert r.steps["obstacle"].shape == (20, 2) and np.isnan(r.steps["obstacle"]).all()
        with pytest.raises(KeyError):
            r.steps["no_such_field"]
    # the data tools keep working on it
    rep = verify_dir(d)
    assert rep.ok, rep.problems
    assert data_info([d]).episodes == 2
    # the dataset gives NaN labels (masked out of the speed loss)
    ds = EpisodeDataset(d, cameras=None, speed_labels=True)
    assert np.isnan(ds.labels["target_speed"]).all() and math.isnan(float(ds[0]["target_speed"]))


def test_verify_reports_a_missing_new_array_of_a_version_2_file(tmp_path):
    d = tmp_path / "d"
    (p,) = write_synthetic_episodes(d, 1, steps=10, height=16, width=24)
    with h5py.File(p, "r+") as f:
        del f["steps"]["target_speed"]
    rep = verify_dir(d)
    assert not rep.ok and any("steps/target_speed missing" in s for s in rep.problems)
    assert step_fields_of_version(1) == tuple(k for k in STEP_FIELDS if k not in STEP_FIELD_DEFAULTS)
    assert step_fields_of_version(2) == tuple(k for k in STEP_FIELDS if k not in ("stop_reason", "obstacle"))
    assert step_fields_of_version(3) == tuple(k for k in STEP_FIELDS if k != "obstacle")
    assert step_fields_of_version(4) == tuple(STEP_FIELDS)


def test_a_version_2_file_reads_its_stop_reason_as_unknown(tmp_path):
    path, recs = _record(tmp_path / "d")
    with h5py.File(path, "r+") as f:
        del f["steps"]["stop_reason"]
        del f["steps"]["obstacle"]
        f.attrs["schema_version"] = 2
    with EpisodeReader(path) as r:
        assert r.meta.schema_version == 2 and (r.steps["stop_reason"] == STOP_REASON_UNKNOWN).all()
        assert r.steps["stop_reason"].shape == (len(recs),)
    assert verify_dir(tmp_path / "d").ok
    info = data_info([tmp_path / "d"])
    assert set(info.standing_reasons) <= {"unknown"} and sum(info.standing_reasons.values()) == info.standing_steps


def test_a_version_3_file_reads_its_obstacle_as_unknown(tmp_path):
    path, recs = _record(tmp_path / "d")
    with h5py.File(path, "r+") as f:
        del f["steps"]["obstacle"]
        f.attrs["schema_version"] = 3
    with EpisodeReader(path) as r:
        assert r.meta.schema_version == 3 and r.steps["obstacle"].shape == (len(recs), 2)
        assert np.isnan(r.steps["obstacle"]).all() and r.steps["stop_reason"][1] == 1
    assert verify_dir(tmp_path / "d").ok
    ds = EpisodeDataset(tmp_path / "d", cameras=None, speed_labels=True)
    assert np.isnan(ds.labels["obstacle_gap"]).all()


def test_dataset_speed_label_per_frame_and_camera(tmp_path):
    d = tmp_path / "d"
    write_synthetic_episodes(d, 2, steps=70, n_cameras=3, height=16, width=24)
    ds = EpisodeDataset(d, cameras=None, speed_labels=True)
    assert ds.cameras == ("center", "left", "right")
    lab = ds.labels["target_speed"]
    t = ds.labels["frame"]
    # synthetic labels: 8 m/s, 0 at steps 50-59 of every 60; every camera of a step the same
    np.testing.assert_array_equal(lab, np.where(t % 60 >= 50, 0.0, 8.0).astype(np.float32))
    for i in (0, 1, 2, 3 * 55, 3 * 55 + 2):
        s = ds[i]
        assert s["target_speed"].dtype == np.float32
        assert float(s["target_speed"]) == float(lab[i])
    # without speed_labels the samples are as before
    assert "target_speed" not in EpisodeDataset(d, cameras=("center",))[0]


def test_data_info_counts_speed_labels(tmp_path):
    from drive_il.data.tools import format_info

    d = tmp_path / "d"
    write_synthetic_episodes(d, 2, steps=10, height=16, width=24)
    info = data_info([d])
    assert info.speed_label_steps == 20
    assert any("speed labels (target_speed): 20 steps (100.0%" in line for line in format_info(info))
    for p in sorted(d.glob("*.h5")):
        _downgrade_to_v1(p)
    assert data_info([d]).speed_label_steps == 0
