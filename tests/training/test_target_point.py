"""The target-point input (``[model] target_point_input``): the data set's target points
from the episode files' routes, their side-camera / viewpoint transform, the model reading
them, a tiny model trained end to end, and the learner driving from the observation's."""

from __future__ import annotations

import dataclasses
import math
import shutil

import h5py
import numpy as np
import pytest
import torch

from drive_il.data.dataset import EpisodeDataset
from drive_il.data.synthetic import synthetic_rig, write_synthetic_episodes
from drive_il.errors import CheckpointError, DataError
from drive_il.policies.checkpoint import load_checkpoint
from drive_il.policies.registry import build_policy, load_model_preset
from drive_il.training.augment import SampleTransform, transform_path
from drive_il.training.trainer import train_policy
from tests.training.test_path_labels import recorded_state


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("target") / "data"
    write_synthetic_episodes(d, 3, steps=160, n_cameras=3, seed=11)   # 66 m routes
    return d


def test_dataset_target_points_come_from_the_route(data, tmp_path):
    ds = EpisodeDataset(data, cameras=("center", "left"), target_points=True)
    plain = EpisodeDataset(data, cameras=("center", "left"))
    assert "target_point" not in plain[0] and set(plain[0]) | {"target_point"} == set(ds[0])
    targets = set()
    for i in range(0, len(ds), 23):
        smp = ds[i]
        route, pose, s_ego = recorded_state(ds, smp)
        # synthetic route: y = 0 along +x, LEFT on every 30th point, LANEFOLLOW elsewhere;
        # the plan point by hand: the first command change (or the end) beyond s_ego + 7.5 m
        xs = route["xy"][:, 0]
        cmd = route["commands"]
        kept = [0] + [k for k in range(1, len(cmd)) if cmd[k] != cmd[k - 1]] + [len(cmd) - 1]
        ahead = [k for k in kept if route["s"][k] > s_ego + 7.5] or [len(cmd) - 1]
        px = xs[ahead[0]]
        c, sn = math.cos(pose[3]), math.sin(pose[3])
        dx, dy = px - pose[0], -pose[1]
        assert np.allclose(smp["target_point"], [dx * c + dy * sn, -dx * sn + dy * c], atol=1e-4)
        assert smp["target_point"].dtype == np.float32 and smp["target_point"].shape == (2,)
        targets.add(float(px))
    assert len(targets) >= 3                                         # the target moves along the plan
    # a file without a route has no target point
    copy = shutil.copy(min(data.glob("episode_*.h5")), tmp_path / "episode_000000.h5")
    with h5py.File(copy, "r+") as f:
        del f["route"]
    with pytest.raises(DataError, match=r"episode_000000.h5: the file has no route.*target_point_input"):
        EpisodeDataset(episodes=[copy], target_points=True)


def test_sample_transform_moves_the_target_point_with_the_camera():
    from drive_il.camera import PinholeCamera
    from drive_il.policies.presets import AugmentConfig

    pre = load_model_preset("dave2_path_target").preprocessing
    rig = {c["name"]: PinholeCamera.from_rig(c) for c in synthetic_rig(3)}
    tp = np.array([20.0, -3.0], np.float32)
    sample = dict(image=np.zeros((66, 200, 3), np.uint8), camera="left", camera_y=np.float32(-0.5),
                  camera_yaw=np.float32(math.radians(-30)), steer=np.float32(0.0), speed=np.float32(6.0),
                  command=np.int64(4), wheelbase=np.float32(2.9), max_steer_angle=np.float32(math.radians(35)),
                  target_point=tp)
    plain = AugmentConfig(brightness_prob=0.0, shadow_prob=0.0, viewpoint_prob=0.0)
    out = SampleTransform(pre, plain, rig=rig)(sample, np.random.default_rng(0))
    assert out["target_point"].dtype == np.float32
    assert np.allclose(out["target_point"], transform_path(tp, -0.5, math.radians(-30)), atol=1e-5)
    centre = SampleTransform(pre, None)(dict(sample, camera="center", camera_y=np.float32(0.0),
                                             camera_yaw=np.float32(0.0)))
    assert np.array_equal(centre["target_point"], tp)


def test_model_reads_the_target_point():
    preset = load_model_preset("dave2_path_target")
    torch.manual_seed(0)
    m = build_policy(preset).eval()
    assert m.uses_target_point and not build_policy(load_model_preset("dave2_path")).uses_target_point
    x = torch.rand(2, 3, 66, 200) * 255
    cmd = torch.tensor([4, 2])
    with torch.no_grad():
        a = m(x, cmd, None, target_point=torch.tensor([[20.0, 0.0], [20.0, 0.0]]))
        b = m(x, cmd, None, target_point=torch.tensor([[20.0, 8.0], [20.0, 8.0]]))
    assert a.shape == (2, 10, 2) and not torch.allclose(a, b)
    with pytest.raises(ValueError, match="target point"):
        m(x, cmd, None)


def test_tiny_target_point_model_trains_and_drives(data, tmp_path):
    from drive_il.policies.driver import PolicyDriver
    from drive_il.scenario import CameraConfig, Scenario
    from drive_il.types import Observation, RoadOption, Step

    preset = load_model_preset("dave2_path_target")
    tr = dataclasses.replace(preset.training, batch_size=16, val_fraction=0.34, threads=1)
    preset = preset.replace(training=tr)
    res = train_policy(data_dirs=[data], model_config=preset, out_dir=tmp_path / "run", epochs=1, seed=0,
                       progress=False)
    assert np.isfinite(res.best_val_loss)
    m, info = load_checkpoint(res.best, expected_architecture="dave2_branched")
    assert m.uses_target_point and info.preset.model.target_point_input
    rig = synthetic_rig(3)
    cams = tuple(CameraConfig(**{k: c[k] for k in ("name", "width", "height", "fov_deg", "x", "y", "z",
                                                   "pitch_deg", "yaw_deg")}) for c in rig)
    drv = PolicyDriver.from_checkpoint(res.best, scenario=Scenario(cameras=cams))
    frame = np.random.default_rng(1).integers(0, 256, (66, 200, 3), dtype=np.uint8)

    def obs(tp):
        return Observation(frames={"center": frame}, speed=5.0, command=RoadOption.LANEFOLLOW, target_point=tp)

    drv.reset(Step(observation=obs((20.0, 0.0)), world_state=None))
    s1 = drv.predict_steer(obs((20.0, 0.0)))
    p1 = drv.last_path.copy()
    drv.predict_steer(obs((20.0, 10.0)))
    assert -1.0 <= s1 <= 1.0 and not np.allclose(p1, drv.last_path)   # the target point is read
    with pytest.raises(CheckpointError, match="target point"):
        drv.predict_steer(obs(None))
