"""EpisodeDataset and split_by_episode (drive_il.data.dataset)."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
import torch

from drive_il.data.dataset import EpisodeDataset, collate_samples, split_by_episode
from drive_il.data.recorder import EpisodeRecorder
from drive_il.data.storage import EpisodeReader, list_episodes
from drive_il.data.synthetic import synthetic_episode, synthetic_rig, write_synthetic_episodes
from drive_il.errors import DataError

H, W = 12, 20


@pytest.fixture
def rig3_dir(tmp_path):
    d = tmp_path / "rig3"
    write_synthetic_episodes(d, 3, steps=25, n_cameras=3, height=H, width=W, seed=10)
    return d


def test_samples_match_the_recorded_episode(rig3_dir):
    ds = EpisodeDataset([rig3_dir], cameras=None)
    assert ds.cameras == ("center", "left", "right")
    assert len(ds) == 3 * 25 * 3 and ds.num_episodes == 3
    for i in (0, 1, 2, 40, len(ds) - 1):
        s = ds[i]
        e, t, cam = int(s["episode"]), int(s["frame"]), s["camera"]
        ep = synthetic_episode(episode=e, seed=10 + e, steps=25, n_cameras=3, height=H, width=W)
        rec = list(ep.iter_records())[t]
        assert s["image"].shape == (H, W, 3) and s["image"].dtype == np.uint8
        np.testing.assert_array_equal(s["image"], ep.frame(cam, t))
        assert s["steer"] == np.float32(rec.expert.steer) and s["throttle"] == np.float32(rec.expert.throttle)
        assert s["brake"] == np.float32(rec.expert.brake)
        assert s["speed"] == np.float32(rec.step.observation.speed)
        assert s["command"] == int(rec.step.observation.command)
        assert s["lateral_deviation"] == np.float32(rec.lateral_deviation)
        assert s["heading_error"] == np.float32(rec.heading_error)
        assert bool(s["intervention"]) == rec.intervention
        mount = {c["name"]: c for c in synthetic_rig(3, height=H, width=W)}[cam]
        assert s["camera_y"] == pytest.approx(mount["y"])
        assert s["camera_yaw"] == pytest.approx(math.radians(mount["yaw_deg"]))
        assert s["wheelbase"] == pytest.approx(2.9) and s["max_steer_angle"] == pytest.approx(math.radians(35.0))
    # left camera is mounted to the left and yawed left
    left = next(ds[i] for i in range(3) if ds[i]["camera"] == "left")
    assert left["camera_y"] < 0 and left["camera_yaw"] < 0


def test_default_center_camera_and_subset(rig3_dir):
    paths = list_episodes(rig3_dir)
    ds = EpisodeDataset([rig3_dir])
    assert ds.cameras == ("center",) and len(ds) == 75
    sub = EpisodeDataset(episodes=paths[1:], cameras=("left",))
    assert len(sub) == 50 and sub.episode_paths == paths[1:]
    assert {sub[i]["camera"] for i in range(len(sub))} == {"left"}


def test_filters_and_transform(rig3_dir):
    ds = EpisodeDataset([rig3_dir], interventions_only=True)
    with EpisodeReader(list_episodes(rig3_dir)[0]) as r:
        n0 = int(r.steps["intervention"].sum())
    assert n0 > 0
    assert len(ds) == 3 * n0 and all(bool(ds[i]["intervention"]) for i in range(len(ds)))
    sel = EpisodeDataset([rig3_dir], select=lambda steps, meta: steps["expert"][:, 0] > 0)
    assert len(sel) > 0 and all(sel[i]["steer"] > 0 for i in range(len(sel)))

    def flip(s):
        s = dict(s)
        s["image"] = s["image"][:, ::-1]
        s["steer"] = -s["steer"]
        return s

    plain, flipped = EpisodeDataset([rig3_dir]), EpisodeDataset([rig3_dir], transform=flip)
    np.testing.assert_array_equal(flipped[7]["image"], plain[7]["image"][:, ::-1])
    assert flipped[7]["steer"] == -plain[7]["steer"]
    w = plain.steering_balance_weights(bins=9)
    assert w.shape == (len(plain),) and w.mean() == pytest.approx(1.0)


def test_dataloader_workers_match_main_process(rig3_dir):
    ds = EpisodeDataset([rig3_dir], cameras=None)
    _ = ds[0]  # open a handle in the parent first: forked workers must not reuse it
    loaders = [torch.utils.data.DataLoader(ds, batch_size=16, shuffle=False, num_workers=nw) for nw in (0, 2)]
    b0, b2 = (list(dl) for dl in loaders)
    assert len(b0) == len(b2) == math.ceil(len(ds) / 16)
    for x, y in zip(b0, b2):
        assert x["image"].shape[1:] == (H, W, 3) and x["image"].dtype == torch.uint8
        assert torch.equal(x["image"], y["image"]) and torch.equal(x["steer"], y["steer"])
        assert x["steer"].dtype == torch.float32 and x["command"].dtype == torch.int64
        assert x["camera"] == y["camera"]
    # the fast collate gives the same batches, in the main process and in workers
    for nw in (0, 2):
        dl = torch.utils.data.DataLoader(ds, batch_size=16, shuffle=False, num_workers=nw, collate_fn=collate_samples)
        for x, y in zip(b0, dl):
            assert list(x) == list(y)
            for k in x:
                if isinstance(x[k], torch.Tensor):
                    assert x[k].dtype == y[k].dtype and torch.equal(x[k], y[k]), k
                else:
                    assert x[k] == y[k], k
    clone = pickle.loads(pickle.dumps(ds))
    np.testing.assert_array_equal(clone[5]["image"], ds[5]["image"])


def test_split_by_episode(tmp_path):
    paths = [tmp_path / f"episode_{i:06d}.h5" for i in range(10)]
    tr, va = split_by_episode(paths, 0.2, seed=3)
    assert len(va) == 2 and len(tr) == 8 and not set(tr) & set(va) and set(tr) | set(va) == set(paths)
    assert split_by_episode(list(reversed(paths)), 0.2, seed=3) == (tr, va)  # order-invariant
    others = {tuple(split_by_episode(paths, 0.2, seed=s)[1]) for s in range(10)}
    assert len(others) > 1  # the seed matters
    assert split_by_episode(paths, 0.0, seed=0) == (sorted(paths), [])
    assert len(split_by_episode(paths, 0.01, seed=0)[1]) == 1
    assert len(split_by_episode(paths[:2], 0.9, seed=0)[0]) == 1
    assert split_by_episode(paths[:1], 0.5, seed=0) == (paths[:1], [])
    with pytest.raises(ValueError):
        split_by_episode(paths, 1.0, seed=0)


def test_split_never_shares_an_episode_between_datasets(rig3_dir):
    tr, va = split_by_episode(list_episodes(rig3_dir), 0.34, seed=0)
    dtr, dva = EpisodeDataset(episodes=tr), EpisodeDataset(episodes=va)
    assert {dtr.episode_paths[int(e)] for e in dtr.labels["episode"]}.isdisjoint(
        {dva.episode_paths[int(e)] for e in dva.labels["episode"]})
    assert len(dtr) + len(dva) == 75


def _one_line(e):
    msg = str(e.value)
    assert "\n" not in msg and msg
    return msg


def test_mixed_camera_rigs(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    write_synthetic_episodes(a, 1, steps=5, height=H, width=W)
    write_synthetic_episodes(b, 1, steps=5, height=H + 2, width=W)
    with pytest.raises(DataError) as ei:
        EpisodeDataset([a, b])
    msg = _one_line(ei)
    assert "mixed camera rigs" in msg and str(a / "episode_000000.h5") in msg and str(b / "episode_000000.h5") in msg
    # same size, other mount
    c = tmp_path / "c"
    rig = [dict(synthetic_rig(1, height=H, width=W)[0], y=0.4)]
    write_synthetic_episodes(c, 1, steps=5, rig=rig)
    with pytest.raises(DataError, match="mixed camera rigs: camera 'center' has y="):
        EpisodeDataset([a, c])
    # other camera sets with cameras=None
    d = tmp_path / "d"
    write_synthetic_episodes(d, 1, steps=5, n_cameras=2, height=H, width=W)
    with pytest.raises(DataError, match="mixed camera rigs"):
        EpisodeDataset([a, d], cameras=None)
    with pytest.raises(DataError, match="no camera 'left'"):
        EpisodeDataset([a, d], cameras=("left",))


def test_empty_directory(tmp_path):
    with pytest.raises(DataError) as ei:
        EpisodeDataset([tmp_path])
    assert _one_line(ei) == f"no finished episodes in {tmp_path} (0 partial)"
    ep = synthetic_episode(steps=3, height=H, width=W)
    rec = EpisodeRecorder(tmp_path)
    rec.on_episode_start(ep.info, ep.first)
    with pytest.raises(DataError, match=r"\(1 partial\)"):
        EpisodeDataset(tmp_path)
    rec.discard()
    with pytest.raises(DataError, match="no such data directory"):
        EpisodeDataset([tmp_path / "missing"])
