"""Issue 17, item 4: DAgger that samples where the learner fails (DA-RB, Prakash et al.
CVPR 2020): critical-state sampling, a fixed-size replay buffer, an ensemble of the
rounds' policies. Each rule on small synthetic data, the options' one-line errors, the
defaults, and a short end-to-end run with everything on."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from drive_il.dagger.sampling import critical_states, disagreement, replay_buffer, select_aggregate, selection_active
from drive_il.pipeline import PipelineConfig

from .test_loop import REPO, TINY, dagger_cmd


def _flat(masks):
    return np.concatenate(masks).tolist()


# ---------------------------------------------------------------- critical states
def test_disagreement_is_the_steer_gap_and_nan_without_a_learner():
    d = disagreement(np.array([0.1, -0.2, 0.3]), np.array([0.4, -0.2, np.nan]))
    assert d[:2] == pytest.approx([0.3, 0.0]) and math.isnan(d[2])


def test_critical_states_keep_the_top_share_of_a_round_across_its_episodes():
    dis = [np.array([0.1, 0.9, 0.0]), np.array([0.5, np.nan, 0.7, 0.2])]
    # n = 7, share 0.4 -> ceil(2.8) = 3 frames: 0.9, 0.7, 0.5
    keep = critical_states(dis, 0.4)
    assert _flat(keep) == [False, True, False, True, False, True, False]
    assert [len(k) for k in keep] == [3, 4]
    # share 1: everything; a tiny share: still one frame; NaN ranks last
    assert all(_flat(critical_states(dis, 1.0)))
    assert _flat(critical_states(dis, 0.01)) == [False, True, False, False, False, False, False]
    assert not _flat(critical_states(dis, 6 / 7))[4]          # the NaN frame is the one left out
    # ties by position (episode order, then step); a share that is exactly k/n keeps k
    tie = critical_states([np.array([0.5, 0.5]), np.array([0.5, 0.5])], 0.5)
    assert _flat(tie) == [True, True, False, False]
    assert sum(_flat(critical_states([np.linspace(0, 1, 10)], 0.3))) == 3


def test_critical_states_choose_among_the_candidates_only():
    dis = [np.array([0.9, 0.1, 0.5, 0.3])]
    cand = [np.array([False, True, True, True])]              # gated mode: the takeover frames
    keep = critical_states(dis, 0.5, cand)                   # ceil(1.5) = 2 of the 3 candidates
    assert _flat(keep) == [False, False, True, True]
    assert _flat(critical_states(dis, 0.5, [np.zeros(4, bool)])) == [False] * 4


# ---------------------------------------------------------------- replay buffer
def test_replay_buffer_keeps_round_0_and_evicts_the_oldest_rounds_lowest_disagreement_first():
    r0 = [np.full(3, np.nan)]
    r1 = [np.array([0.9, 0.1]), np.array([0.5])]
    r2 = [np.array([0.2, 0.3, 0.05])]
    rounds = [r0, r1, r2]
    every = [[np.ones(len(d), bool) for d in r] for r in rounds]
    # room for 3 + 3 (round 2 whole) + 1 (round 1's largest disagreement, 0.9)
    out = replay_buffer(rounds, every, 7)
    assert _flat(out[0]) == [True] * 3
    assert _flat(out[2]) == [True] * 3
    assert _flat(out[1]) == [True, False, False]
    # room for 5: round 2's two largest; round 1 evicted entirely
    out = replay_buffer(rounds, every, 5)
    assert _flat(out[1]) == [False] * 3 and _flat(out[2]) == [True, True, False]
    # large enough: nothing evicted; frames not offered stay out
    assert all(_flat([m for r in replay_buffer(rounds, every, 100) for m in r]))
    offered = [every[0], [np.array([False, True]), np.array([True])], every[2]]
    assert _flat(replay_buffer(rounds, offered, 100)[1]) == [False, True, True]


def test_replay_buffer_smaller_than_round_0_holds_round_0_only(caplog):
    rounds = [[np.full(4, np.nan)], [np.array([0.9, 0.8])]]
    every = [[np.ones(4, bool)], [np.ones(2, bool)]]
    out = replay_buffer(rounds, every, 2)
    assert _flat(out[0]) == [True] * 4 and _flat(out[1]) == [False, False]
    assert "exceed" in caplog.text


def test_replay_buffer_is_incremental_a_frame_once_evicted_never_returns():
    rng = np.random.default_rng(0)
    rounds = [[np.full(20, np.nan)]] + [[rng.random(int(rng.integers(5, 15))) for _ in range(2)] for _ in range(5)]
    every = [[np.ones(len(d), bool) for d in r] for r in rounds]
    cap = 45
    before = None
    for i in range(1, len(rounds) + 1):
        out = replay_buffer(rounds[:i], every[:i], cap)
        assert sum(m.sum() for r in out for m in r) <= max(cap, 20)
        if before is not None:                               # buffer_i within buffer_(i-1) + round i
            for r in range(i - 1):
                for new, old in zip(out[r], before[r]):
                    assert not (new & ~old).any()
        before = out


# ---------------------------------------------------------------- on episode files
@pytest.fixture(scope="module")
def rounds_on_disk(tmp_path_factory):
    from drive_il.data.synthetic import write_synthetic_episodes
    root = tmp_path_factory.mktemp("agg")
    dirs = [root / f"round_{i:03d}" / "data" for i in range(3)]
    write_synthetic_episodes(dirs[0], 2, steps=30, height=8, width=12, dagger_round=0)
    for i in (1, 2):  # learner = -expert: disagreement 2 |expert steer|
        write_synthetic_episodes(dirs[i], 2, steps=30, height=8, width=12, seed=10 * i, learner=True,
                                 dagger_round=i, beta=0.5)
    return dirs


def test_select_aggregate_applies_the_rules_to_the_recorded_columns(rounds_on_disk):
    from drive_il.data.storage import EpisodeReader, list_episodes

    cfg = PipelineConfig(sampling="disagreement", critical_share=0.25, replay_buffer_frames=60 + 20)
    sel = select_aggregate(rounds_on_disk, cfg)
    assert [len(p) for p in sel.paths] == [2, 2, 2]
    assert all(np.isnan(d).all() for d in sel.disagreement[0])
    for i in (1, 2):
        for p, d in zip(sel.paths[i], sel.disagreement[i]):
            with EpisodeReader(p) as r:
                e = np.asarray(r.steps["expert"])[:, 0]
            assert d == pytest.approx(2 * np.abs(e), abs=1e-6)
    summ = sel.summary(cfg)
    # round 0: 60 kept; round 2: ceil(0.25 * 60) = 15 kept; round 1: the 5 left of its 15
    assert [r["kept"] for r in summ["rounds"]] == [60, 5, 15] and summ["kept_frames"] == 80
    assert summ["frames"] == 180 and summ["rounds"][0]["disagreement_mean"] is None
    r2 = np.concatenate(sel.disagreement[2])
    k2 = np.concatenate(sel.keep[2])
    assert r2[k2].min() >= r2[~k2].max()                     # the largest disagreements
    # the training filter sees the dataset's per-step metadata
    keep = sel.sample_filter()
    p = list_episodes(rounds_on_disk[2])[0]
    m = sel.keep[2][0]
    assert [keep({"episode_path": str(p), "frame": t}) for t in range(30)] == m.tolist()
    assert not keep({"episode_path": "/nowhere/episode_000000.h5", "frame": 0})


def test_gated_mode_chooses_among_takeover_frames(rounds_on_disk):
    cfg = PipelineConfig(mode="gated", sampling="disagreement", critical_share=0.5)
    sel = select_aggregate(rounds_on_disk, cfg)
    # synthetic takeovers at t % 40 == 0: frame 0 of each episode, 2 per round -> 1 kept
    assert [int(np.concatenate(c).sum()) for c in sel.candidates] == [60, 2, 2]
    assert [int(np.concatenate(k).sum()) for k in sel.keep] == [60, 1, 1]
    assert all(not k[1:].any() for r in sel.keep[1:] for k in r)


def test_training_uses_only_the_selected_frames(rounds_on_disk, tmp_path):
    from drive_il.training.data_source import open_training_data
    from drive_il.policies.registry import load_model_preset

    cfg = PipelineConfig(sampling="disagreement", critical_share=0.5)
    sel = select_aggregate(rounds_on_disk, cfg)
    preset = load_model_preset("alvinn")
    data = open_training_data(rounds_on_disk, preset, seed=0, sample_filter=sel.sample_filter())
    n = len(data.train) + (len(data.val) if data.val is not None else 0)
    assert n == sel.kept_frames == 60 + 30 + 30


# ---------------------------------------------------------------- configuration
def test_defaults_are_todays_dagger():
    cfg = PipelineConfig()
    assert (cfg.sampling, cfg.critical_share, cfg.replay_buffer_frames, cfg.eval_ensemble) == \
        ("uniform", 0.5, None, False)
    assert not selection_active(cfg)
    assert selection_active(PipelineConfig(sampling="disagreement"))
    assert selection_active(PipelineConfig(replay_buffer_frames=100))
    assert not selection_active(PipelineConfig(eval_ensemble=True))


def test_a_record_without_the_options_reads_as_the_defaults():
    from drive_il.config import to_dict
    from drive_il.dagger.loop import _same_run
    from drive_il.pipeline import pipeline_from_record

    rec = {k: v for k, v in to_dict(PipelineConfig(seed=0)).items()
           if k not in ("sampling", "critical_share", "replay_buffer_frames", "eval_ensemble")}
    assert pipeline_from_record(rec) == PipelineConfig(seed=0)
    assert _same_run({"dagger": rec}, {"dagger": to_dict(PipelineConfig(seed=0))})
    assert not _same_run({"dagger": rec}, {"dagger": to_dict(PipelineConfig(seed=0, sampling="disagreement"))})


@pytest.mark.parametrize("kw, msg", [
    ({"sampling": "critical"}, "PipelineConfig: field 'sampling': expected one of ['uniform', 'disagreement']"),
    ({"critical_share": 0.0}, "PipelineConfig: field 'critical_share': expected a number in [0.01, 1.0], got 0.0"),
    ({"critical_share": 1.5}, "PipelineConfig: field 'critical_share': expected a number in [0.01, 1.0], got 1.5"),
    ({"replay_buffer_frames": 0}, "PipelineConfig: field 'replay_buffer_frames': expected an integer in "
                                  "[1, 1000000000], got 0"),
])
def test_bad_options_are_one_line(kw, msg):
    with pytest.raises(ValueError, match=re.escape(msg)) as e:
        PipelineConfig(**kw)
    assert "\n" not in str(e.value)


def test_bad_option_in_the_pipeline_table_names_the_key():
    from drive_il.config import from_dict
    from drive_il.errors import ConfigError
    with pytest.raises(ConfigError) as e:
        from_dict(PipelineConfig, {"replay_buffer_frames": -5}, source="s.toml")
    assert str(e.value).startswith("s.toml: field 'replay_buffer_frames'") and "\n" not in str(e.value)


def test_bad_flag_is_one_line(tmp_path):
    sc = tmp_path / "tiny.toml"
    sc.write_text(TINY)
    cp = subprocess.run(dagger_cmd(sc, tmp_path / "run", "--critical-share", "2"), cwd=REPO, capture_output=True,
                        text=True, timeout=120)
    lines = cp.stderr.strip().splitlines()
    assert cp.returncode == 2 and len(lines) == 1, cp.stderr
    assert "--critical-share" in lines[0] and "expected a number in [0.01, 1.0], got 2.0" in lines[0]
    assert not (tmp_path / "run" / "round_000").exists()


# ---------------------------------------------------------------- ensemble
def _checkpoint(root: Path, model: str, seed: int, bias: float | None = None) -> Path:
    from drive_il.policies.checkpoint import VehicleParams, save_checkpoint
    from drive_il.policies.registry import build_policy, load_model_preset
    preset = load_model_preset(model)
    torch.manual_seed(seed)
    m = build_policy(preset)
    if bias is not None:
        with torch.no_grad():
            m.head[-1].bias.fill_(bias)
    rig = [dict(name="center", width=200, height=66, fov_deg=60.0, x=1.4, y=0.0, z=1.5, pitch_deg=-8.0,
                yaw_deg=0.0)]
    return save_checkpoint(root / f"{model}_{seed}" / "best", m, preset, vehicle=VehicleParams(2.9, math.radians(35)),
                           cameras=rig)


def _obs():
    from drive_il.types import Observation
    frame = np.random.default_rng(1).integers(0, 256, (66, 200, 3), dtype=np.uint8)
    return Observation(frames={"center": frame}, speed=5.0, sim_time=0.0)


def test_ensemble_of_dave2_steers_by_the_mean_inverse_radius(tmp_path):
    from drive_il.control import curvature_to_steer
    from drive_il.policies.driver import PolicyDriver
    from drive_il.policies.ensemble import EnsembleDriver
    from drive_il.policies.preprocessing import preprocess
    from drive_il.scenario import CameraConfig, Scenario, VehicleConfig

    cks = [_checkpoint(tmp_path, "dave2", s, b) for s, b in ((0, 0.5), (1, -0.2), (2, 0.1))]
    sc = Scenario(cameras=(CameraConfig(name="center", width=200, height=66, fov_deg=60.0, x=1.4, z=1.5,
                                        pitch_deg=-8.0),),
                  vehicle=VehicleConfig(wheelbase=2.5, max_steer_deg=40.0))
    singles = [PolicyDriver.from_checkpoint(c, scenario=sc) for c in cks]
    obs = _obs()
    x = torch.from_numpy(preprocess(np.asarray(obs.frames["center"]), singles[0].preprocessing))[None]
    with torch.no_grad():
        inv_r = [float(d.policy(x)) for d in singles]
    ens = EnsembleDriver.from_checkpoints(cks, scenario=sc)
    want = curvature_to_steer(float(np.mean(inv_r)), 2.5, math.radians(40.0))
    assert ens.predict_steer(obs) == pytest.approx(want, rel=1e-5, abs=1e-7)
    assert ens.members == tuple(str(c) for c in cks) and ens.info.path is None
    # one member drives as that policy
    assert EnsembleDriver.from_checkpoints(cks[:1], scenario=sc).predict_steer(obs) == \
        pytest.approx(singles[0].predict_steer(obs), rel=1e-6)
    # it acts as a PolicyDriver does (cruise control, governor)
    from drive_il.types import Step
    step = Step(observation=obs, world_state=None)
    ens.reset(step)
    assert ens.act(step).steer == pytest.approx(want, rel=1e-5, abs=1e-7)


def test_ensemble_of_alvinn_decodes_the_mean_unit_activations(tmp_path):
    from drive_il.policies.ensemble import EnsembleDriver, EnsembleModule
    from drive_il.policies.preprocessing import preprocess

    cks = [_checkpoint(tmp_path, "alvinn", s) for s in (3, 4)]
    ens = EnsembleDriver.from_checkpoints(cks)
    obs = _obs()
    x = torch.from_numpy(preprocess(np.asarray(obs.frames["center"]), ens.preprocessing))[None]
    mod = ens.policy
    assert isinstance(mod, EnsembleModule)
    with torch.no_grad():
        outs = [m(x) for m in mod.members]
        want = float(mod.members[0].output_to_steer((outs[0] + outs[1]) / 2).reshape(-1)[0])
    assert ens.predict_steer(obs) == pytest.approx(max(-1.0, min(1.0, want)), abs=1e-6)


def test_ensemble_refuses_mixed_members_and_travels_as_its_members(tmp_path):
    from drive_il.errors import CheckpointError
    from drive_il.policies.ensemble import EnsembleDriver
    from drive_il.rollout import Drivers
    from drive_il.rollout.parallel import DriverRecipe

    a, b = _checkpoint(tmp_path, "dave2", 0), _checkpoint(tmp_path, "alvinn", 0)
    with pytest.raises(CheckpointError, match="share the architecture") as e:
        EnsembleDriver.from_checkpoints([a, b])
    assert "\n" not in str(e.value)
    with pytest.raises(CheckpointError):
        EnsembleDriver.from_checkpoints([])

    class _Expert:
        config, vehicle = object(), object()

    a2 = _checkpoint(tmp_path / "second", "dave2", 1)
    ens = EnsembleDriver.from_checkpoints([a, a2])
    recipe = DriverRecipe.of(Drivers(expert=_Expert(), learner=ens))   # to a rollout worker: the members
    assert isinstance(recipe.learner_checkpoint, tuple) and len(recipe.learner_checkpoint) == 2
    again = recipe.build_learner()
    assert isinstance(again, EnsembleDriver) and again.members == ens.members


# ---------------------------------------------------------------- end to end
def test_tiny_dagger_run_with_every_option_on(tmp_path):
    sc = tmp_path / "tiny.toml"
    sc.write_text(TINY)
    out = tmp_path / "run"
    cp = subprocess.run(dagger_cmd(sc, out, "--sampling", "disagreement", "--critical-share", "0.5",
                                   "--replay-buffer-frames", "150", "--eval-ensemble", "--no-bc-matched"),
                        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert cp.returncode == 0, cp.stdout[-2000:] + cp.stderr[-2000:]
    rec = json.loads((out / "dagger.json").read_text())["dagger"]
    assert (rec["sampling"], rec["critical_share"], rec["replay_buffer_frames"], rec["eval_ensemble"]) == \
        ("disagreement", 0.5, 150, True)
    rounds = [json.loads((out / f"round_{i:03d}" / "round.json").read_text()) for i in range(3)]
    frames = [r["frames"] for r in rounds]
    for i, r in enumerate(rounds):
        agg = r["aggregate"]
        assert agg["frames"] == sum(frames[:i + 1])           # the expert's labels so far
        assert agg["rounds"][0]["kept"] == frames[0]          # round 0's demonstrations kept
        for row in agg["rounds"][1:]:
            assert row["kept"] <= math.ceil(0.5 * row["frames"])
        assert agg["kept_frames"] <= max(150, frames[0])
        assert r["total_labelled_frames"] == sum(frames[:i + 1])  # the expert's cost, unchanged
    assert "eval_ensemble" not in rounds[0]
    for i in (1, 2):
        r = rounds[i]
        assert r["ensemble_members"] == [rounds[k]["checkpoint"] for k in range(i + 1)]
        assert set(r["eval_ensemble"]) == set(r["eval"])
        assert (out / f"round_{i:03d}" / "eval_ensemble" / "ClearNoon.json").exists()
    # resuming the finished run changes nothing; the report shows the options
    cp = subprocess.run(dagger_cmd(sc, out, "--sampling", "disagreement", "--critical-share", "0.5",
                                   "--replay-buffer-frames", "150", "--eval-ensemble", "--no-bc-matched"),
                        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert cp.returncode == 0 and "round 2: finished earlier" in cp.stdout
    cp = subprocess.run([sys.executable, "-m", "drive_il", "report", str(out)], cwd=REPO, capture_output=True,
                        text=True, timeout=120)
    assert cp.returncode == 0, cp.stderr
    text = (out / "report.md").read_text()
    for row in ("| `sampling` | disagreement |", "| `critical_share` | 0.5 |", "| `replay_buffer_frames` | 150 |",
                "| `eval_ensemble` | True |"):
        assert row in text
