"""Path labels (issue 17, item 3): the route ahead in the ego frame against
hand-computed geometry, their side-camera / viewpoint-shift transform against its
formula, the dataset's labels from the episode files' routes, the path loss, and a tiny
path model trained on synthetic episodes (loss down, checkpoints, TensorBoard keys)."""

from __future__ import annotations

import dataclasses
import math

import h5py
import numpy as np
import pytest
import torch

from drive_il.data.dataset import EpisodeDataset, route_path_labels
from drive_il.data.storage import EpisodeReader
from drive_il.data.synthetic import write_synthetic_episodes
from drive_il.errors import DataError
from drive_il.policies.checkpoint import load_checkpoint
from drive_il.policies.path import PursuitParams, path_steer
from drive_il.policies.presets import AugmentConfig, OutputConfig
from drive_il.policies.registry import build_policy, load_model_preset
from drive_il.training.augment import SampleTransform, recovery_curvature, transform_path
from drive_il.training.losses import PathLoss, make_loss
from drive_il.training.trainer import BCDataset, _collate, train_policy, train_step

D = tuple(float(d) for d in range(1, 11))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("path") / "data"
    write_synthetic_episodes(d, 3, steps=16, n_cameras=3, seed=5)
    return d


# ---------------------------------------------------------------- labels: geometry

def test_straight_route_with_lateral_offset_and_yaw():
    xy = np.stack([np.arange(0.0, 40.0), np.zeros(40)], 1)          # along +x, 1 m vertices
    s, yaw = xy[:, 0].copy(), np.zeros(40)
    pose = np.array([[5.0, 1.0, 0.0, 0.1]])                          # 1 m right, yawed 0.1 rad right
    lab = route_path_labels(xy, s, yaw, pose, [5.0], D)[0]
    # hand-computed: point (5 + d, 0), seen from (5, 1) yawed 0.1 rad right
    c, sn = math.cos(0.1), math.sin(0.1)
    expected = np.array([[d * c - sn, -d * sn - c] for d in D])
    assert np.allclose(lab, expected, atol=1e-12)
    assert np.allclose(lab[1], [1.890175, -1.194671], atol=1e-6)  # d = 2 m, by hand
    # the same scene rotated and moved in the world: the same labels
    a = 0.7
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    xy2 = xy @ rot.T + [10.0, -3.0]
    p2 = np.array([[*(rot @ [5.0, 1.0] + [10.0, -3.0]), 0.0, 0.1 + a]])
    assert np.allclose(route_path_labels(xy2, s, yaw + a, p2, [5.0], D)[0], expected, atol=1e-9)


def test_circular_arc_route_with_known_radius():
    r = 25.0
    s = np.arange(0.0, 80.0, 0.02)
    th = s / r                                                       # right turn: centre (0, R)
    xy = np.stack([r * np.sin(th), r * (1 - np.cos(th))], 1)
    # car on the arc at s0 = 10 m, along it, then 0.5 m towards the centre
    s0, off = 10.0, 0.5
    t0 = s0 / r
    n = np.array([-math.sin(t0), math.cos(t0)])                     # right normal (towards the centre)
    pose = np.array([[*(xy[500] + off * n), t0]])
    lab = route_path_labels(xy, s, th, pose, [s0], D)[0]
    expected = np.array([[r * math.sin(d / r), r * (1 - math.cos(d / r)) - off] for d in D])
    assert np.abs(lab - expected).max() < 1e-4                       # 2 cm chords: sag 2e-6 m


def test_route_end_and_start_extrapolate_straight():
    xy = np.array([[0.0, 0.0], [3.0, 0.0], [3.0, 3.0]])              # a corner then the end, heading +y
    s = np.array([0.0, 3.0, 6.0])
    yaw = np.array([0.0, math.pi / 2, math.pi / 2])
    lab = route_path_labels(xy, s, yaw, np.array([[3.0, 3.0, math.pi / 2]]), [6.0], (1.0, 4.0))[0]
    assert np.allclose(lab, [[1.0, 0.0], [4.0, 0.0]], atol=1e-12)    # straight on past the end
    lab = route_path_labels(xy, s, yaw, np.array([[-2.0, 0.0, 0.0]]), [-2.0], (1.0, 3.0))[0]
    assert np.allclose(lab, [[1.0, 0.0], [3.0, 0.0]], atol=1e-12)    # before the start: back along it


# ---------------------------------------------------------------- labels: side cameras

def test_transform_path_matches_the_formula_and_the_recovery_geometry():
    rng = np.random.default_rng(0)
    pts = np.stack([np.asarray(D), rng.normal(0, 0.5, 10)], 1)
    y, psi = 0.5, math.radians(30.0)
    out = transform_path(pts, y, psi)
    c, s = math.cos(psi), math.sin(psi)
    for (x, p), (x2, p2) in zip(pts, out):
        assert math.isclose(x2, x * c + (p - y) * s, abs_tol=1e-12)
        assert math.isclose(p2, -x * s + (p - y) * c, abs_tol=1e-12)
    # the straight path's point (d, 0) is the recovery correction's target (f, r)
    d = 6.0
    f, r = transform_path(np.array([[d, 0.0]]), y, psi)[0]
    assert math.isclose(2 * r / (f * f + r * r), recovery_curvature(y, psi, d / 2.0, recovery_seconds=2.0))
    # distances are kept (a rigid motion) and (0, 0) is the identity
    assert np.allclose(np.diff(np.linalg.norm(np.diff(out, axis=0), axis=1)),
                       np.diff(np.linalg.norm(np.diff(pts, axis=0), axis=1)))
    assert transform_path(pts, 0.0, 0.0) is not None and np.array_equal(transform_path(pts, 0.0, 0.0), pts)
    # a car displaced right of a straight path steers back left along it
    straight = np.stack([np.asarray(D), np.zeros(10)], 1)
    steer = path_steer(transform_path(straight, 0.5, 0.0), D, 6.0, wheelbase=2.9,
                       max_steer_angle=math.radians(35), pursuit=PursuitParams())
    assert steer < -0.01


def test_sample_transform_moves_the_path_with_the_camera_and_the_viewpoint_shift():
    from drive_il.camera import PinholeCamera
    from drive_il.data.synthetic import synthetic_rig

    pre = load_model_preset("dave2_path").preprocessing
    rig = {c["name"]: PinholeCamera.from_rig(c) for c in synthetic_rig(3)}
    path = np.stack([np.asarray(D), np.linspace(0.0, 1.0, 10)], 1).astype(np.float32)
    sample = dict(image=np.zeros((66, 200, 3), np.uint8), camera="right", camera_y=np.float32(0.5),
                  camera_yaw=np.float32(math.radians(30)), steer=np.float32(0.1), speed=np.float32(6.0),
                  command=np.int64(4), wheelbase=np.float32(2.9), max_steer_angle=np.float32(math.radians(35)),
                  path=path)
    plain = AugmentConfig(brightness_prob=0.0, shadow_prob=0.0, viewpoint_prob=0.0)
    out = SampleTransform(pre, plain, rig=rig)(sample, np.random.default_rng(0))
    assert out["path"].dtype == np.float32 and out["path"].shape == (10, 2)
    assert np.allclose(out["path"], transform_path(path, 0.5, math.radians(30)), atol=1e-6)
    # a viewpoint shift adds its draws (ds, dpsi) to the camera's offset
    shift = dataclasses.replace(plain, viewpoint_prob=1.0, viewpoint_shift_std=0.4, viewpoint_yaw_std_deg=2.0)
    out = SampleTransform(pre, shift, rig=rig)(sample, np.random.default_rng(7))
    r = np.random.default_rng(7)
    r.random()
    ds = float(np.clip(r.normal(0.0, 0.4), -1.0, 1.0))
    std = math.radians(2.0)
    dp = float(np.clip(r.normal(0.0, std), -2.5 * std, 2.5 * std))
    assert np.allclose(out["path"], transform_path(path, 0.5 + ds, math.radians(30) + dp), atol=1e-5)
    # the deferred (on-device) transform carries the same labels
    out_d = SampleTransform(pre, shift, rig=rig, defer_image_ops=True)(sample, np.random.default_rng(7))
    assert np.array_equal(out_d["path"], out["path"])
    # without a path the output keys are those of a 1/r model
    no_path = {k: v for k, v in sample.items() if k != "path"}
    assert "path" not in SampleTransform(pre, plain, rig=rig)(no_path, np.random.default_rng(0))


# ---------------------------------------------------------------- labels: from the episode files

def recorded_state(ds: EpisodeDataset, smp: dict) -> tuple[dict, np.ndarray, float]:
    """(the file's route arrays, the pose (x, y, z, yaw), the route progress [m]) of a
    sample's step, read back from its episode file."""
    with EpisodeReader(ds.episode_paths[int(smp["episode"])]) as rd:
        route, steps = rd.route, rd.steps
        t = int(smp["frame"])
        return route, np.asarray(steps["pose"])[t], float(np.asarray(steps["route_progress"])[t])


def test_dataset_path_labels_come_from_the_route(data, tmp_path):
    ds = EpisodeDataset(data, cameras=("center", "left"), path_distances=(2.0, 5.0))
    plain = EpisodeDataset(data, cameras=("center", "left"))
    assert "path" not in plain[0] and set(plain[0]) | {"path"} == set(ds[0])
    for i in (0, 7, 20, len(ds) - 1):
        smp = ds[i]
        route, pose, s_ego = recorded_state(ds, smp)
        # synthetic route: y = 0 along +x; by hand in the pose's frame
        assert np.allclose(route["xy"][:, 1], 0.0)
        c, sn = math.cos(pose[3]), math.sin(pose[3])
        for k, d in enumerate((2.0, 5.0)):
            dx, dy = s_ego + d - pose[0], -pose[1]
            assert np.allclose(smp["path"][k], [dx * c + dy * sn, -dx * sn + dy * c], atol=1e-4)
        assert smp["path"].dtype == np.float32
    # a file without a route cannot give path labels
    bad = tmp_path / "noroute"
    bad.mkdir()
    src = sorted(data.glob("episode_*.h5"))[0]
    (bad / src.name).write_bytes(src.read_bytes())
    with h5py.File(bad / src.name, "r+") as f:
        del f["route"]
    with pytest.raises(DataError, match="no route"):
        EpisodeDataset(bad, path_distances=D)
    EpisodeDataset(bad)                                              # a 1/r model does not need one


# ---------------------------------------------------------------- loss and training

def test_path_loss_values():
    preset = load_model_preset("dave2_path")
    torch.manual_seed(0)
    m = build_policy(preset)
    loss = make_loss(m)
    assert isinstance(loss, PathLoss) and loss.kind == "l1"
    pred = torch.zeros(2, 10, 2)
    pred[..., 0] = torch.tensor(D)
    target = pred.clone()
    target[0, :, 1] = 0.3
    target[1, :, 1] = -0.1
    batch = {"path": target, "speed": torch.tensor([5.0, 5.0]), "wheelbase": torch.tensor([2.9, 2.9]),
             "max_steer_angle": torch.full((2,), math.radians(35)), "steer": torch.zeros(2),
             "curvature": torch.zeros(2)}
    lo = loss(m, pred, batch)
    assert math.isclose(float(lo.loss), 0.2, rel_tol=1e-6)             # mean |dy|, y only
    assert math.isclose(lo.metrics["path_error_m"], 0.2, rel_tol=1e-6)
    assert math.isclose(lo.metrics["path_final_error_m"], 0.2, rel_tol=1e-6)
    assert set(lo.metrics) >= {"loss", "steer_mae", "steer_error_deg", "curvature_mae", "path_lateral_mae"}
    assert torch.allclose(lo.steer, torch.zeros(2))                     # a straight path ahead: steer 0
    sl = PathLoss(OutputConfig(kind="path", loss="smooth_l1", smooth_l1_beta=0.5, predict_x=True))
    lo2 = sl(m, pred, batch)   # x exact; y: 0.5 * dy^2 / beta, averaged over both coordinates
    assert math.isclose(float(lo2.loss), (0.5 * 0.09 / 0.5 + 0.5 * 0.01 / 0.5) / 4, rel_tol=1e-5)


def test_tiny_path_model_learns_and_checkpoints(data, tmp_path):
    preset = load_model_preset("dave2_path")
    tr = dataclasses.replace(preset.training, batch_size=16, val_fraction=0.34, threads=1, lr=1e-3,
                             lr_schedule="constant")
    aug = dataclasses.replace(preset.augmentation, side_cameras=False, viewpoint_prob=0.0)
    preset = preset.replace(training=tr, augmentation=aug)
    # a few steps on one fixed batch: the loss goes down
    raw = EpisodeDataset(data, cameras=("center",), path_distances=preset.output.path_distances)
    bc = BCDataset(raw, SampleTransform(preset.preprocessing, None), augment=False)
    batch = _collate([bc[i] for i in range(16)])
    torch.manual_seed(0)
    m = build_policy(preset)
    opt = torch.optim.AdamW(m.parameters(), lr=1e-3)
    loss_fn = make_loss(m)
    losses = [train_step(m, opt, loss_fn, batch, lr=1e-3).metrics["loss"] for _ in range(12)]
    assert losses[-1] < 0.7 * losses[0], losses
    # end to end: checkpoints that know their head, the steering keys kept
    res = train_policy(data_dirs=[data], model_config=preset, out_dir=tmp_path / "run", epochs=2, seed=0,
                       progress=False)
    assert np.isfinite(res.best_val_loss) and res.val_steer_error_deg >= 0
    for k in ("val_loss", "val_steer_error_deg", "val_steer_mae", "val_curvature_mae", "val_path_error_m"):
        assert k in res.history[-1], k
    m2, info = load_checkpoint(res.best, expected_architecture="dave2_branched")
    assert info.preset.output == preset.output and m2.output_kind == "path"
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    acc = EventAccumulator(str(tmp_path / "run" / "tb"))
    acc.Reload()
    for t in ("train/loss", "train/steer_error_deg", "val/loss", "val/steer_error_deg", "val/path_error_m"):
        assert t in acc.Tags()["scalars"], t
