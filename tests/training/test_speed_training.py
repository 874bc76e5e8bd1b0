"""Training a speed head: the masked L1 of SpeedLoss, and a tiny synthetic set where the
target speed depends on the image (a red blob -> 0 m/s, none -> 8 m/s) trained end to
end (episode files -> train_policy -> checkpoint -> PolicyDriver)."""

from __future__ import annotations

import dataclasses
import math

import cv2
import numpy as np
import pytest
import torch

from drive_il.data.recorder import EpisodeRecorder
from drive_il.data.synthetic import synthetic_episode
from drive_il.errors import DataError
from drive_il.policies.driver import PolicyDriver
from drive_il.policies.registry import build_policy, load_model_preset
from drive_il.policies.speed import gap_speed_cap
from drive_il.scenario import CameraConfig, Scenario
from drive_il.training.losses import CurvatureLoss, SpeedLoss, make_loss
from drive_il.training.trainer import train_policy
from drive_il.types import Observation, Step

CAM = CameraConfig(name="center", width=200, height=66, fov_deg=60.0, x=1.4, z=1.5, pitch_deg=-8.0)


def test_speed_loss_masks_missing_labels():
    torch.manual_seed(0)
    m = build_policy(load_model_preset("dave2").replace(output=dataclasses.replace(
        load_model_preset("dave2").output, speed=True, speed_loss_weight=0.5)))
    loss = make_loss(m)
    assert isinstance(loss, SpeedLoss) and isinstance(loss.lateral, CurvatureLoss) and loss.weight == 0.5
    batch = {"curvature": torch.zeros(4), "steer": torch.zeros(4), "wheelbase": torch.full((4,), 2.9),
             "max_steer_angle": torch.full((4,), math.radians(35)),
             "target_speed": torch.tensor([8.0, math.nan, 0.0, math.nan])}
    lateral = torch.zeros(4, 1, requires_grad=True)
    pred = torch.tensor([6.0, 100.0, 1.0, -50.0], requires_grad=True)
    lo = loss(m, (lateral, pred), batch)
    assert lo.metrics["speed_mae"] == pytest.approx(1.5)               # (2 + 1) / 2: NaN labels ignored
    assert lo.metrics["loss"] == pytest.approx(lo.metrics["lateral_loss"] + 0.5 * 1.5)
    lo.loss.backward()
    assert pred.grad[1] == 0 and pred.grad[3] == 0 and pred.grad[0] != 0
    # no label at all: the speed term is 0, finite
    batch["target_speed"] = torch.full((4,), math.nan)
    lo = loss(m, (lateral, pred), batch)
    assert lo.metrics["speed_mae"] == 0.0 and math.isfinite(float(lo.loss.detach()))
    del batch["target_speed"]
    with pytest.raises(KeyError, match="target_speed"):
        loss(m, (lateral, pred), batch)


def _speed_loss(**kw):
    base = load_model_preset("dave2")
    torch.manual_seed(0)
    m = build_policy(base.replace(output=dataclasses.replace(base.output, speed=True, speed_loss_weight=1.0, **kw)))
    return m, make_loss(m)


def test_quantile_speed_loss_predicts_the_quantile():
    m, l1 = _speed_loss()
    _, q = _speed_loss(speed_loss="quantile", speed_quantile=0.25)
    _, q50 = _speed_loss(speed_loss="quantile", speed_quantile=0.5)
    assert (l1.quantile, q.quantile, q50.quantile) == (0.5, 0.25, 0.5)
    # one frame, two outcomes: 6 of 10 episodes go on at 3 m/s, 4 stop (0 m/s)
    labels = torch.tensor([3.0] * 6 + [0.0] * 4 + [math.nan])
    n = len(labels)
    batch = {"curvature": torch.zeros(n), "steer": torch.zeros(n), "wheelbase": torch.full((n,), 2.9),
             "max_steer_angle": torch.full((n,), math.radians(35)), "target_speed": labels}
    lateral = torch.zeros(n, 1)

    def speed_term(loss, v):
        lo = loss(m, (lateral, torch.full((n,), float(v))), batch)
        return lo.metrics["loss"] - lo.metrics["lateral_loss"], lo.metrics["speed_mae"]

    grid = np.linspace(-1.0, 4.0, 501)
    # tau = 0.5 is exactly the L1 loss; its minimiser is the median (go: 3 m/s)
    for v in (-1.0, 0.0, 1.3, 3.0, 4.0):
        assert speed_term(q50, v)[0] == pytest.approx(speed_term(l1, v)[0], rel=1e-6)
    assert grid[np.argmin([speed_term(l1, v)[0] for v in grid])] == pytest.approx(3.0, abs=0.01)
    # tau = 0.25: the lower quartile (stop), where "go" is likelier than "stop" but not 3 to 1
    assert grid[np.argmin([speed_term(q, v)[0] for v in grid])] == pytest.approx(0.0, abs=0.01)
    # the pinball values by hand, and the MAE metric unchanged by the loss
    t, mae = speed_term(q, 1.0)   # u = +2 (x6): 2 * 0.25 * 2; u = -1 (x4): 2 * 0.75 * 1
    assert t == pytest.approx((6 * 1.0 + 4 * 1.5) / 10) and mae == pytest.approx((6 * 2 + 4 * 1) / 10)
    with pytest.raises(ValueError, match="quantile"):
        SpeedLoss(l1.lateral, 0.1, 1.0)


def _frames(rng, n, blob):
    """(n, 66, 200, 3) road-grey noise, with a red disc where ``blob``."""
    f = rng.integers(60, 140, size=(n, 66, 200, 3), dtype=np.uint8)
    for i in range(n):
        if blob[i]:
            c = (int(rng.integers(30, 170)), int(rng.integers(12, 40)))
            cv2.circle(f[i], c, 9, (230, 20, 20), -1)
    return f


def _write_light_episodes(d, n_eps=4, steps=32, *, gaps=False, reasons=False):
    """Episodes whose speed label is 0 on frames with a red blob, 8 m/s on the others
    (the measured speed is always 8 m/s: only the image tells them apart); with ``gaps``
    the obstacle gap is 5 m on the blob frames and +inf (nothing ahead) on the others;
    with ``reasons`` the expert's stop reason is a red light on the blob frames, none on
    the others."""
    rec = EpisodeRecorder(d)
    rng = np.random.default_rng(0)
    for e in range(n_eps):
        ep = synthetic_episode(episode=e, seed=e, steps=steps, n_cameras=1)
        blob = np.arange(8) >= 4
        ep.pools = {"center": _frames(rng, 8, blob)}
        rec.on_episode_start(ep.info, ep.first)
        for t, r in enumerate(ep.iter_records()):
            b = bool(blob[t % 8])
            r = dataclasses.replace(r, expert_target_speed=0.0 if b else 8.0)
            if gaps:
                r = dataclasses.replace(r, expert_obstacle_gap=5.0 if b else math.inf,
                                        expert_obstacle_speed=0.0 if b else math.nan)
            if reasons:
                r = dataclasses.replace(r, expert_stop_reason="red_light" if b else "")
            rec.on_step(r)
        rec.on_episode_end(ep.result())


def _train_tiny(tmp_path, data, name, **output):
    """DAVE-2 with a speed head (and ``output``'s other settings), 8 epochs on ``data``, no
    augmentation: the TrainResult."""
    base = load_model_preset("dave2")
    preset = base.replace(
        name=name,
        output=dataclasses.replace(base.output, speed=True, speed_loss_weight=1.0, **output),
        augmentation=dataclasses.replace(base.augmentation, side_cameras=False, brightness_prob=0.0,
                                         shadow_prob=0.0, viewpoint_prob=0.0),
        training=dataclasses.replace(base.training, batch_size=8, epochs=8, lr=2e-3, val_fraction=0.25,
                                     image_log_every=0, threads=1))
    return train_policy(data_dirs=[data], model_config=preset, out_dir=tmp_path / "run", seed=0, progress=False,
                        device="cpu")


def test_a_speed_head_learns_to_stop_for_a_red_blob(tmp_path):
    data = tmp_path / "data"
    _write_light_episodes(data)
    res = _train_tiny(tmp_path, data, "dave2_speed_test")
    hist = res.history
    assert hist[-1]["train_speed_mae"] < 0.5 * hist[0]["train_speed_mae"]      # the loss decreases
    # unseen frames: the trained model separates them
    rng = np.random.default_rng(123)
    stop_frames = _frames(rng, 6, np.ones(6, bool))
    go_frames = _frames(rng, 6, np.zeros(6, bool))
    d = PolicyDriver(res.best, scenario=Scenario(cameras=(CAM,), target_speed=8.0))
    assert d.has_speed_head
    v_stop, v_go = [], []
    for frames, out in ((stop_frames, v_stop), (go_frames, v_go)):
        for f in frames:
            d.reset(None)
            ctl = d.act(Step(observation=Observation(frames={"center": f}, speed=8.0), world_state=None))
            out.append((d.predicted_speed, d.target_speed, ctl))
    # the typical red-blob frame reads as stop (below the driver's 0.3 m/s), none of them
    # above half the slowest go frame (one of the six unseen frames read 2.01 m/s on an
    # AVX-512 machine, 0.14 or less the others; 8 distinct training frames)
    stops = [v for v, _, _ in v_stop]
    assert np.median(stops) < 0.3 and max(stops) < 0.5 * min(v for v, _, _ in v_go) and min(v for v, _, _ in v_go) > 6.0
    assert all(c.brake > 0 for _, _, c in v_stop)                       # at 8 m/s: brake for the blob
    assert all(t > 6.0 for _, t, _ in v_go)
    print(f"speed head, unseen frames: red blob -> {np.mean([v for v, _, _ in v_stop]):.2f} m/s "
          f"(max {max(v for v, _, _ in v_stop):.2f}), none -> {np.mean([v for v, _, _ in v_go]):.2f} m/s "
          f"(min {min(v for v, _, _ in v_go):.2f}); speed MAE train {hist[0]['train_speed_mae']:.2f} -> "
          f"{hist[-1]['train_speed_mae']:.2f} m/s, val {hist[-1].get('val_speed_mae', math.nan):.2f} m/s")


def test_a_speed_head_without_speed_labels_is_refused(tmp_path):
    import h5py

    data = tmp_path / "data"
    _write_light_episodes(data, n_eps=2, steps=8)
    for p in sorted(data.glob("*.h5")):
        with h5py.File(p, "r+") as f:                                   # as schema version 1 wrote it
            for k in ("target_speed", "learner_target_speed", "red_light", "walker_collision"):
                del f["steps"][k]
            f.attrs["schema_version"] = 1
    preset = load_model_preset("dave2_command_speed")
    with pytest.raises(DataError, match="no speed labels"):
        train_policy(data_dirs=[data], model_config=preset, out_dir=tmp_path / "run", progress=False, device="cpu")


def test_an_obstacle_gap_head_learns_the_gap_and_caps_the_speed(tmp_path):
    from drive_il.data.dataset import EpisodeDataset

    data = tmp_path / "data"
    _write_light_episodes(data, gaps=True)
    ds = EpisodeDataset(data, gap_labels=True)
    gaps = np.array([ds[i]["obstacle_gap"] for i in range(8)])
    np.testing.assert_array_equal(gaps, [math.inf] * 4 + [5.0] * 4)
    assert "obstacle_gap" not in EpisodeDataset(data)[0]
    res = _train_tiny(tmp_path, data, "dave2_gap_test", obstacle_gap=True, gap_loss_weight=0.2)
    hist = res.history
    assert hist[-1]["train_gap_mae"] < 0.5 * hist[0]["train_gap_mae"]          # the loss decreases
    assert "val_gap_mae" in hist[-1]
    rng = np.random.default_rng(123)
    d = PolicyDriver(res.best, scenario=Scenario(cameras=(CAM,), target_speed=8.0), lateral_accel_limit=math.inf)
    assert d.has_gap_head
    near, far = [], []
    for frames, out in ((_frames(rng, 6, np.ones(6, bool)), near), (_frames(rng, 6, np.zeros(6, bool)), far)):
        for f in frames:
            d.reset(None)
            d.act(Step(observation=Observation(frames={"center": f}, speed=8.0), world_state=None))
            out.append((d.predicted_gap, d.target_speed))
    # unseen frames: the blob reads as near (label 5 m), none as far (label 30 m, the range)
    assert np.median([g for g, _ in near]) < 10.0 and np.median([g for g, _ in far]) > 20.0
    # near: the target is at most the braking curve of the predicted gap, whatever the speed head says
    out = d.info.preset.output
    for g, v in near:
        assert v <= gap_speed_cap(g, stop_distance=out.gap_stop_distance, deceleration=out.gap_deceleration) + 1e-9
    print(f"gap head, unseen frames: blob -> {np.mean([g for g, _ in near]):.1f} m, none -> "
          f"{np.mean([g for g, _ in far]):.1f} m; gap MAE train {hist[0]['train_gap_mae']:.2f} -> "
          f"{hist[-1]['train_gap_mae']:.2f} m")


def test_an_obstacle_gap_head_without_gap_labels_is_refused(tmp_path):
    import h5py

    data = tmp_path / "data"
    _write_light_episodes(data, n_eps=2, steps=8, gaps=True)
    for p in sorted(data.glob("*.h5")):
        with h5py.File(p, "r+") as f:                                   # as schema version 3 wrote it
            del f["steps"]["obstacle"]
            f.attrs["schema_version"] = 3
    preset = load_model_preset("dave2_path_wide_speed_gap")
    preset = preset.replace(augmentation=dataclasses.replace(preset.augmentation, side_cameras=False),
                            preprocessing=dataclasses.replace(preset.preprocessing, camera="center"))
    with pytest.raises(DataError, match="no obstacle-gap labels.*schema version 4"):
        train_policy(data_dirs=[data], model_config=preset, out_dir=tmp_path / "run", progress=False, device="cpu")


def test_gap_lights_false_leaves_the_light_stops_unlabelled(tmp_path):
    """``[output] gap_lights = false``: where the expert slows for a red or yellow light
    the gap label is unknown (NaN, masked out of the loss); vehicles keep theirs."""
    from drive_il.data.dataset import EpisodeDataset
    from drive_il.training.data_source import label_options

    d = tmp_path / "data"
    rec = EpisodeRecorder(d)
    ep = synthetic_episode(episode=0, seed=0, steps=8, n_cameras=1)
    rec.on_episode_start(ep.info, ep.first)
    reasons = ["", "red_light", "yellow_light", "vehicle", "walker", "", "red_light", "vehicle"]
    for r, why in zip(ep.iter_records(), reasons):
        rec.on_step(dataclasses.replace(r, expert_stop_reason=why, expert_obstacle_gap=math.inf if not why else 5.0))
    rec.on_episode_end(ep.result())
    want = [math.inf, math.nan, math.nan, 5.0, 5.0, math.inf, math.nan, 5.0]
    got = [float(EpisodeDataset(d, gap_labels="vehicles")[i]["obstacle_gap"]) for i in range(8)]
    np.testing.assert_array_equal(got, want)
    assert [float(EpisodeDataset(d, gap_labels=True)[i]["obstacle_gap"]) for i in range(8)] == \
        [math.inf if not w else 5.0 for w in reasons]
    shipped = load_model_preset("dave2_path_wide_speed_gap")
    assert label_options(shipped)["gap_labels"] == "vehicles"
    on = shipped.replace(output=dataclasses.replace(shipped.output, gap_lights=True))
    assert label_options(on)["gap_labels"] is True
    with pytest.raises(ValueError, match="gap_labels"):
        EpisodeDataset(d, gap_labels="lights")


def test_a_stop_reason_head_learns_the_red_blob(tmp_path):
    """``[output] stop_reason_head``: the labels reach the batch through the dataset and
    the augmentation, the cross-entropy falls, and the head tells the blob frames apart."""
    from drive_il.data.dataset import EpisodeDataset
    from drive_il.policies.checkpoint import load_checkpoint
    from drive_il.policies.preprocessing import preprocess_batch
    from drive_il.types import stop_reason_code

    data = tmp_path / "data"
    _write_light_episodes(data, reasons=True)
    ds = EpisodeDataset(data, reason_labels=True)
    red = stop_reason_code("red_light")
    assert [int(ds[i]["stop_reason"]) for i in range(8)] == [0] * 4 + [red] * 4
    assert ds[0]["stop_reason"].dtype == np.int64
    assert "stop_reason" not in EpisodeDataset(data)[0]
    res = _train_tiny(tmp_path, data, "dave2_reason_test", stop_reason_head=True, stop_reason_loss_weight=1.0)
    hist = res.history
    assert hist[-1]["train_stop_reason_ce"] < 0.5 * hist[0]["train_stop_reason_ce"]
    assert "val_stop_reason_acc" in hist[-1]
    m, info = load_checkpoint(res.best)
    rng = np.random.default_rng(123)
    x = np.concatenate([_frames(rng, 6, np.ones(6, bool)), _frames(rng, 6, np.zeros(6, bool))])
    img = torch.from_numpy(preprocess_batch(x, info.preset.preprocessing))
    with torch.no_grad():
        logits = m(img, None, torch.full((12,), 8.0), with_speed=True, with_reason=True)[3]
    pred = logits.argmax(dim=1).tolist()
    # unseen frames: most blob frames read as a red light, most others as none
    assert sum(p == red for p in pred[:6]) >= 5 and sum(p == 0 for p in pred[6:]) >= 5
    print(f"stop-reason head, unseen frames: {pred}; CE train {hist[0]['train_stop_reason_ce']:.2f} -> "
          f"{hist[-1]['train_stop_reason_ce']:.2f} nats")


def test_a_stop_reason_head_without_reasons_is_refused(tmp_path):
    import h5py

    data = tmp_path / "data"
    _write_light_episodes(data, n_eps=2, steps=8)
    for p in sorted(data.glob("*.h5")):
        with h5py.File(p, "r+") as f:                                   # as schema version 2 wrote it
            for k in ("stop_reason", "obstacle"):
                del f["steps"][k]
            f.attrs["schema_version"] = 2
    base = load_model_preset("dave2")
    preset = base.replace(output=dataclasses.replace(base.output, speed=True, stop_reason_head=True))
    with pytest.raises(DataError, match="no stop reasons.*schema version 3"):
        train_policy(data_dirs=[data], model_config=preset, out_dir=tmp_path / "run", progress=False, device="cpu")
