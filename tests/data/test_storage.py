"""Episode files: round trip, partial files, bad inputs (drive_il.data.storage/recorder)."""

from __future__ import annotations

import math
import os

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drive_il.data.recorder import EpisodeRecorder
from drive_il.data.background import BackgroundEpisodeWriter
from drive_il.data.storage import (FORMAT_NAME, SCHEMA_VERSION, EpisodeReader, EpisodeWriter, PartialEpisodeFile,
                                   episode_filename, finished_episode_indices, list_episodes, read_manifest, scan_dir)
from drive_il.data.synthetic import synthetic_episode
from drive_il.errors import DataError
from drive_il.types import (Control, EpisodeInfo, EpisodeResult, Event, EventKind, Observation, RoadOption,
                            Route, RouteWaypoint, Step, StepRecord, VehicleState, WorldState)

finite = st.floats(min_value=-1e4, max_value=1e4, allow_nan=False, allow_infinity=False, width=32)
unit = st.floats(min_value=0.0, max_value=1.0, width=32)
steer = st.floats(min_value=-1.0, max_value=1.0, width=32)
text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",), exclude_characters="\x00"), max_size=20)


@st.composite
def step_rows(draw):
    return dict(
        speed=draw(finite), x=draw(finite), y=draw(finite), z=draw(finite),
        yaw=draw(st.floats(-3.0, 3.0, width=32)),
        command=draw(st.sampled_from(list(RoadOption))),
        executed=Control(draw(steer), draw(unit), draw(unit)),
        expert=Control(draw(steer), draw(unit), draw(unit)),
        learner=draw(st.none() | st.builds(Control, steer, unit, unit)),
        driver=draw(st.sampled_from(["expert", "learner", "human", "mixture"])),
        intervention=draw(st.booleans()), noise=draw(st.booleans()),
        lat=draw(finite), head=draw(finite), prog=draw(finite),
        events=draw(st.lists(st.sampled_from(list(EventKind)), max_size=3)),
    )


@st.composite
def infos(draw):
    return EpisodeInfo(
        scenario=draw(text), town=draw(text), seed=draw(st.integers(0, 2**31 - 1)),
        episode=draw(st.integers(0, 999_999)), weather=draw(text), backend=draw(st.sampled_from(["embedded", "carla"])),
        dt=draw(st.floats(0.001, 0.1)),
        vehicle={"wheelbase": draw(st.floats(1.0, 10.0)), "max_steer_deg": draw(st.floats(5.0, 80.0))},
        expert_preset=draw(text), driver=draw(text),
        dagger_round=draw(st.none() | st.integers(0, 100)), beta=draw(st.none() | st.floats(0.0, 1.0)),
        noise=draw(st.dictionaries(st.sampled_from(["kind", "magnitude", "episode_share"]),
                                   st.floats(0, 1) | text, max_size=3)),
        scenario_source=draw(text),
        scenario_dict=draw(st.dictionaries(text, st.integers() | text | st.lists(st.floats(-1, 1)), max_size=4)),
        cameras=({"name": "center", "width": 6, "height": 4, "fov_deg": 90.0, "x": 1.0, "y": 0.3,
                  "z": 1.2, "pitch_deg": -5.0, "yaw_deg": 12.0},),
        route=Route(waypoints=(RouteWaypoint(x=0.0, y=0.0, yaw=0.0),
                               RouteWaypoint(x=3.0, y=4.0, yaw=0.5, command=RoadOption.LEFT))),
    )


def _record(rec, info, rows, frames):
    first = Step(observation=Observation(frames={"center": frames[0]}, speed=0.0),
                 world_state=WorldState(ego=VehicleState(x=0.0, y=0.0, yaw=0.0)))
    rec.on_episode_start(info, first)
    for t, r in enumerate(rows):
        obs = Observation(frames={"center": frames[t]}, speed=r["speed"], command=r["command"],
                          frame=7 + t, sim_time=t * info.dt)
        ws = WorldState(ego=VehicleState(x=r["x"], y=r["y"], z=r["z"], yaw=r["yaw"], speed=r["speed"]),
                        frame=7 + t, sim_time=t * info.dt)
        evs = tuple(Event(kind=k, frame=7 + t, sim_time=t * info.dt) for k in r["events"])
        rec.on_step(StepRecord(step=Step(observation=obs, world_state=ws), executed=r["executed"],
                               expert=r["expert"], learner=r["learner"], driver=r["driver"],
                               intervention=r["intervention"], noise=r["noise"], lateral_deviation=r["lat"],
                               heading_error=r["head"], route_progress=r["prog"], events=evs))
    return rec.on_episode_end(EpisodeResult(info=info, termination="timeout", steps=len(rows),
                                            summary={"lateral_deviation_mean": 0.25, "n": len(rows)}))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(info=infos(), rows=st.lists(step_rows(), min_size=0, max_size=12), seed=st.integers(0, 1000))
def test_round_trip(tmp_path_factory, info, rows, seed):
    d = tmp_path_factory.mktemp("rt")
    frames = np.random.default_rng(seed).integers(0, 256, size=(max(len(rows), 1), 4, 6, 3), dtype=np.uint8)
    path = _record(EpisodeRecorder(d), info, rows, frames)
    assert path == d / f"episode_{info.episode:06d}.h5"
    assert list_episodes(d) == [path]
    with EpisodeReader(path) as ep:
        m = ep.meta
        assert (m.schema_version, m.scenario, m.town, m.seed, m.episode, m.weather, m.backend) == (
            SCHEMA_VERSION, info.scenario, info.town, info.seed, info.episode, info.weather, info.backend)
        assert m.dt == info.dt and m.expert_preset == info.expert_preset and m.driver == info.driver
        assert m.dagger_round == info.dagger_round and m.beta == info.beta
        assert m.noise == info.noise and m.vehicle == info.vehicle
        assert m.scenario_dict == info.scenario_dict and m.scenario_source == info.scenario_source
        assert m.cameras == info.cameras and m.termination == "timeout"
        assert m.summary == {"lateral_deviation_mean": 0.25, "n": len(rows)} and m.complete
        assert m.steps == len(ep) == len(rows)
        assert m.wheelbase == info.vehicle["wheelbase"]
        assert m.max_steer_angle == pytest.approx(math.radians(info.vehicle["max_steer_deg"]))
        s = ep.steps
        assert ep.frames("center").shape == (len(rows), 4, 6, 3)
        assert ep.frames("center").chunks == (1, 4, 6, 3)
        np.testing.assert_array_equal(ep.frames("center")[()], frames[:len(rows)])
        np.testing.assert_array_equal(s["frame"], 7 + np.arange(len(rows)))
        names = ep.driver_names
        for t, r in enumerate(rows):
            np.testing.assert_array_equal(s["pose"][t], np.array([r["x"], r["y"], r["z"], r["yaw"]]))
            assert s["speed"][t] == np.float32(r["speed"])
            assert s["command"][t] == int(r["command"])
            for key in ("executed", "expert"):
                c = r[key]
                np.testing.assert_array_equal(s[key][t], np.float32([c.steer, c.throttle, c.brake]))
            if r["learner"] is None:
                assert np.isnan(s["learner"][t]).all()
            else:
                lr = r["learner"]
                np.testing.assert_array_equal(s["learner"][t], np.float32([lr.steer, lr.throttle, lr.brake]))
            assert names[s["driver"][t]] == r["driver"]
            assert bool(s["intervention"][t]) == r["intervention"] and bool(s["noise"][t]) == r["noise"]
            assert s["lateral_deviation"][t] == np.float32(r["lat"])
            assert s["heading_error"][t] == np.float32(r["head"])
            assert s["route_progress"][t] == np.float32(r["prog"])
            for ev, key in ((EventKind.COLLISION, "collision"), (EventKind.OFF_ROAD, "off_road"),
                            (EventKind.LANE_INVASION, "lane_invasion")):
                assert bool(s[key][t]) == (ev in r["events"])
        np.testing.assert_array_equal(ep.route["xy"], info.route.xy)
        np.testing.assert_array_equal(ep.route["commands"], info.route.commands)
    entries, problems = read_manifest(d)
    assert problems == [] and [e["file"] for e in entries] == [path.name]
    assert entries[0]["steps"] == len(rows)


def test_partial_file_ignored_and_discard(tmp_path):
    ep = synthetic_episode(episode=4, steps=20, height=8, width=8)
    rec = EpisodeRecorder(tmp_path)
    rec.on_episode_start(ep.info, ep.first)
    for i, r in enumerate(ep.iter_records()):
        if i == 10:
            break
        rec.on_step(r)
    partial = tmp_path / "episode_000004.h5.partial"
    assert partial.exists()
    assert list_episodes(tmp_path) == []
    rep = scan_dir(tmp_path)
    assert rep.partial == (partial,) and rep.finished == () and rep.damaged == ()
    rec.on_episode_abort("interrupted")  # the rollout's hook (Ctrl-C)
    assert not partial.exists() and not (tmp_path / "manifest.jsonl").exists()
    rec.discard()  # idempotent
    assert rec.on_episode_end(ep.result()) is None



def test_writer_abort_deletes_the_partial_file_once(tmp_path):
    ep = synthetic_episode(episode=2, steps=5, height=8, width=8)
    w = EpisodeWriter(tmp_path / episode_filename(2), ep.info, {"center": (8, 8)})
    assert isinstance(w, PartialEpisodeFile) and issubclass(BackgroundEpisodeWriter, PartialEpisodeFile)
    assert w.partial_path == tmp_path / "episode_000002.h5.partial" and w.partial_path.exists()
    assert not w.closed
    w.abort()
    assert w.closed and not w.partial_path.exists() and not w.path.exists()
    w.abort()  # idempotent
    assert list_episodes(tmp_path) == [] and scan_dir(tmp_path).partial == ()

def test_recorder_refuses_to_overwrite(small_dir):
    ep = synthetic_episode(episode=1, steps=5, height=16, width=24)
    with pytest.raises(DataError, match="already recorded"):
        EpisodeRecorder(small_dir).on_episode_start(ep.info, ep.first)
    assert finished_episode_indices(small_dir) == {0, 1, 2}


def test_frames_and_labels_match_records(small_dir):
    ep = synthetic_episode(episode=1, seed=1, steps=30, height=16, width=24)
    recs = list(ep.iter_records())
    with EpisodeReader(small_dir / "episode_000001.h5") as r:
        for t in (0, 13, 29):
            np.testing.assert_array_equal(r.frame("center", t), ep.frame("center", t))
            assert r.steps["expert"][t, 0] == np.float32(recs[t].expert.steer)
            assert r.steps["executed"][t, 0] == np.float32(recs[t].executed.steer)


def _one_line(msg: str) -> None:
    assert "\n" not in msg and msg.strip() == msg and msg


def test_unknown_schema_version(small_dir):
    p = small_dir / "episode_000000.h5"
    with h5py.File(p, "r+") as f:
        f.attrs["schema_version"] = 99
    with pytest.raises(DataError) as ei:
        EpisodeReader(p)
    msg = str(ei.value)
    _one_line(msg)
    assert str(p) in msg and "99" in msg and str(SCHEMA_VERSION) in msg
    rep = scan_dir(small_dir)
    assert [d[0] for d in rep.damaged] == [p] and len(rep.finished) == 2


def test_truncated_file(small_dir):
    p = small_dir / "episode_000002.h5"
    size = p.stat().st_size
    with open(p, "r+b") as fh:
        fh.truncate(size // 2)
    with pytest.raises(DataError) as ei:
        with EpisodeReader(p) as r:  # some truncations open; reading must still fail
            r.frames("center")[()]
            r.steps["expert"]
    _one_line(str(ei.value))
    assert str(p) in str(ei.value)


def test_not_an_episode_file(tmp_path):
    p = tmp_path / "episode_000000.h5"
    p.write_bytes(os.urandom(4096))
    with pytest.raises(DataError, match="episode_000000.h5"):
        EpisodeReader(p)
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f.attrs["x"] = 1
    with pytest.raises(DataError, match="not a drive_il episode"):
        EpisodeReader(tmp_path / "other.h5")
    with pytest.raises(DataError, match="not found"):
        EpisodeReader(tmp_path / "missing.h5")


def test_missing_directory(tmp_path):
    with pytest.raises(DataError, match="no such data directory"):
        list_episodes(tmp_path / "nope")
    assert finished_episode_indices(tmp_path / "nope") == set()


def test_file_attributes_readable_without_drive_il(small_dir):
    with h5py.File(small_dir / "episode_000000.h5", "r") as f:
        assert f.attrs["format"] == FORMAT_NAME and f.attrs["schema_version"] == SCHEMA_VERSION
        assert f["frames/center"].dtype == np.uint8
        assert f["frames/center"].compression is None


# --------------------------------------------------------------------------- checksums (issue 16)


def _flip(path, dataset, coord, n=200):
    """Flip ``n`` bytes inside the stored chunk of ``dataset`` at ``coord`` (found with
    h5py's chunk index), as bit rot on disk would."""
    with h5py.File(path, "r") as f:
        ci = f[dataset].id.get_chunk_info_by_coord(coord)
    assert ci.size > 0
    raw = bytearray(path.read_bytes())
    for i in range(n):
        raw[ci.byte_offset + (i * 7) % max(ci.size - 4, 1)] ^= 0xFF  # the pixels, not the checksum
    path.write_bytes(bytes(raw))


def test_new_episodes_carry_per_chunk_checksums(small_dir):
    with h5py.File(small_dir / "episode_000000.h5", "r") as f:
        frames = f["frames/center"]
        assert frames.fletcher32 and frames.chunks == (1, *frames.shape[1:])
        assert all(f["steps"][k].fletcher32 for k in f["steps"])
    with EpisodeReader(small_dir / "episode_000000.h5") as r:  # values unchanged by the filter
        assert r.frame("center", 3).shape == (16, 24, 3)


def test_flipped_frame_bytes_are_found_by_verify_reader_and_dataset(small_dir, capsys):
    from drive_il.cli import main
    from drive_il.data.dataset import EpisodeDataset
    from drive_il.data.tools import verify_dir

    p = small_dir / "episode_000001.h5"
    _flip(p, "frames/center", (5, 0, 0, 0))
    rep = verify_dir(small_dir)
    assert len(rep.problems) == 1
    _one_line(rep.problems[0])
    assert str(p) in rep.problems[0] and "frames/center" in rep.problems[0] and "frame 5" in rep.problems[0]
    assert main(["data", "verify", str(small_dir)]) == 1
    out = capsys.readouterr().out.strip().splitlines()
    assert out[0] == rep.problems[0] and len(out) == 2
    assert verify_dir(small_dir, read_frames=False).ok  # --quick reads no frame
    with EpisodeReader(p) as r:
        r.frame("center", 4)
        with pytest.raises(DataError) as ei:
            r.frame("center", 5)
    _one_line(str(ei.value))
    assert str(p) in str(ei.value)
    ds = EpisodeDataset(small_dir)
    i = next(i for i in range(len(ds)) if ds.episode_paths[ds.labels["episode"][i]] == p
             and ds.labels["frame"][i] == 5)
    with pytest.raises(DataError) as ei:
        ds[i]
    _one_line(str(ei.value))
    assert str(p) in str(ei.value) and "frame 5" in str(ei.value)


def test_flipped_label_bytes_are_found_by_verify_and_reader(small_dir):
    from drive_il.data.tools import verify_dir

    p = small_dir / "episode_000002.h5"
    _flip(p, "steps/expert", (0, 0), n=40)
    rep = verify_dir(small_dir, read_frames=False)
    assert len(rep.problems) == 1 and str(p) in rep.problems[0] and "steps/expert" in rep.problems[0]
    _one_line(rep.problems[0])
    with EpisodeReader(p) as r, pytest.raises(DataError, match="steps/expert"):
        r.steps["expert"]


def test_episode_without_checksums_still_reads_and_verifies(small_dir):
    """Files written before the checksums (no filters) read and verify as before."""
    from drive_il.data.dataset import EpisodeDataset
    from drive_il.data.tools import verify_dir

    p = small_dir / "episode_000000.h5"
    want = {}
    with h5py.File(p, "r+") as f:
        for name in ["frames/center", *(f"steps/{k}" for k in f["steps"])]:
            ds = f[name]
            data, attrs = ds[()], dict(ds.attrs)
            del f[name]
            kw = {"chunks": (1, *data.shape[1:]), "maxshape": (None, *data.shape[1:])} if name.startswith("frames") else {}
            new = f.create_dataset(name, data=data, **kw)
            new.attrs.update(attrs)
            want[name] = data
    with h5py.File(p, "r") as f:
        assert not f["frames/center"].fletcher32 and not f["steps/expert"].fletcher32
    assert verify_dir(small_dir).ok
    ds = EpisodeDataset(small_dir)
    assert np.array_equal(ds[3]["image"], want["frames/center"][3])
    assert ds[3]["steer"] == want["steps/expert"][3, 0]
