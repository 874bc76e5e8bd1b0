"""DAgger as rounds on disk (Ross, Gordon, Bagnell, "A Reduction of Imitation Learning
and Structured Prediction to No-Regret Online Learning", AISTATS 2011).

Round 0 is behaviour cloning on expert demonstrations. Each DAgger round i >= 1 rolls
out pi_i = beta_i pi* + (1 - beta_i) pi_hat_(i-1) (per step or per episode), lets the
expert label every visited state, aggregates the data of all rounds, retrains (warm
start or from scratch) and evaluates the new policy with beta = 0 on the test scenario.
In **gated** mode (HG-DAgger, Kelly et al. ICRA 2019, with the expert as the gate) the
learner drives, the expert takes over when the learner's lateral deviation passes a threshold, and
only those takeover segments are used as new labels.

A run directory (resumable: a round with ``round.json`` is finished and never redone;
an unfinished round resumes its collection episode by episode and its training from the
last checkpoint)::

    RUN/
      dagger.json              the run's configuration (scenario, test scenario, and the
                               PipelineConfig under "dagger"); a re-run must match it
      round_000/               behaviour cloning on expert demonstrations
        data/                  episodes (HDF5) + manifest.jsonl
        model/                 checkpoint (drive-il train output)
        eval/<weather>.json    evaluation reports on the test scenario (beta = 0)
        eval_ensemble/         with eval_ensemble, rounds >= 1: the same for the ensemble of
                               rounds 0..i's policies (their mean output)
        round.json             written last: beta, frames, expert queries, timings, eval
                               (+ "aggregate": the frames trained on, with sampling or a replay
                               buffer; + "eval_ensemble", "ensemble_members")
      round_001/ ...           learner/mixture rollouts labelled by the expert
      bc_matched/              BC trained on as many expert-labelled frames as DAgger's
        data/ model/ eval/     final dataset (the fair comparison; round 0's recipe: the
                               same epochs, from scratch), bc.json written last
      tb/                      TensorBoard: dagger/, eval/, perf/

Which frames of the aggregate a round trains on (``sampling = "disagreement"``: DA-RB's
critical states; ``replay_buffer_frames``: a fixed-size aggregate) is decided by
:mod:`drive_il.dagger.sampling` from the episode files' step columns each round (so a
resumed round decides the same); with the defaults every frame is used, as before.
``total_labelled_frames`` (and matched BC's target) stays the number of expert labels
collected, the expert's cost, whatever the selection.

If a round produced no labelled frames (e.g. gated mode where the learner never needed
help), training says so and keeps the previous round's weights.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..config import to_dict
from ..errors import ConfigError, DriveILError
from ..metrics import METRIC_KEYS, upgrade_keys
from ..pipeline import PipelineConfig, pipeline_from_record
from ..rollout import InterventionConfig, jsonable, write_json
from ..scenario import Scenario, towns_label
from .sampling import select_aggregate, selection_active
from .schedules import BetaSchedule

__all__ = ["RoundSummary", "run_dagger", "round_dir", "load_rounds"]

log = logging.getLogger(__name__)

EVAL_KEYS = METRIC_KEYS  # the one metric key list (drive_il.metrics)


@dataclass(frozen=True)
class RoundSummary:
    """What ``round.json`` holds (one finished round)."""

    round: int
    beta: float
    episodes: int
    frames: int
    labelled_frames: int
    total_labelled_frames: int
    expert_queries: int
    intervention_rate: float
    seconds: dict[str, float]
    eval: dict[str, dict[str, Any]]
    checkpoint: str


def round_dir(run: Path, i: int) -> Path:
    return Path(run) / f"round_{i:03d}"


def load_rounds(run: str | Path) -> list[dict[str, Any]]:
    """The finished rounds' ``round.json`` contents, in order."""
    out = []
    for p in sorted(Path(run).glob("round_*/round.json")):
        out.append(upgrade_keys(json.loads(p.read_text())))
    return out


def _episode_seed_base(scenario: Scenario, i: int) -> int:
    return scenario.seed + 100_000 * i


def _count_frames(data_dir: Path, *, labelled_only: bool) -> tuple[int, int, int]:
    """(frames, labelled frames, intervention steps) of finished episodes in a dir."""
    from ..data.storage import EpisodeReader, list_episodes
    frames = labelled = inter = 0
    for p in list_episodes(data_dir):
        with EpisodeReader(p) as r:
            n = len(r)
            k = int(np.count_nonzero(r.steps["intervention"]))
        frames += n
        inter += k
        labelled += k if labelled_only else n
    return frames, labelled, inter


def run_dagger(
    *,
    scenario: Scenario,
    test_scenario: Scenario,
    config: PipelineConfig,
    out_dir: str | Path,
    make_sim: Callable[[], Any],
    make_expert: Callable[[Scenario], Any],
    test_weathers: tuple[str, ...] = (),
    progress: bool = True,
    log_fn: Callable[[str], None] = print,
    pool: Any = None,
    device: str = "cpu",
    amp: bool = False,
) -> list[dict[str, Any]]:
    """Run (or resume) a DAgger experiment; returns the finished rounds' summaries.

    Args:
        scenario: where the expert and learner drive (training); ``config.seed``, when
            set, replaces its seed.
        test_scenario: where each round's policy is evaluated (beta = 0).
        config: the pipeline (:class:`~drive_il.pipeline.PipelineConfig`).
        out_dir: the run directory (see module docstring).
        make_sim: builds a simulator (called once).
        make_expert: builds the expert for a scenario.
        test_weathers: weathers for evaluation (default: the test scenario's weather).
        progress: progress bars.
        log_fn: where per-round lines go (printed by the CLI).
        pool: a :class:`~drive_il.rollout.parallel.RolloutPool` for the rounds'
            rollouts and evaluations (None: this process drives). Episodes keep their
            seeds, so the rounds' data and figures are the same for any number of
            workers.
        device: where training and the learner's inference run ("cpu", "cuda",
            "cuda:N"; :func:`drive_il.devices.resolve_device`).
        amp: mixed precision when training on CUDA.

    Raises:
        ConfigError: a run directory made with another configuration.
        MapError: the test town is not available (checked before any work).
    """
    if config.seed is not None:
        scenario = scenario.replace(seed=config.seed)
    run = Path(out_dir)
    run.mkdir(parents=True, exist_ok=True)
    cfg_dict = {"scenario": scenario.to_dict(), "test_scenario": test_scenario.to_dict(),
                "dagger": {**to_dict(config), "seed": scenario.seed}, "test_weathers": list(test_weathers)}
    cfg_path = run / "dagger.json"
    if cfg_path.exists():
        old = json.loads(cfg_path.read_text())
        if not _same_run(old, json.loads(json.dumps(jsonable(cfg_dict)))):
            raise ConfigError(f"{cfg_path}: this run directory was made with another configuration; "
                              f"use a new --out or delete it")
    else:
        write_json(cfg_path, cfg_dict)
    weathers = tuple(test_weathers) or (test_scenario.weather,)

    sim = make_sim()  # before torch is imported: an unreachable CARLA server fails fast
    tb = None
    try:
        # fail fast on a town that is not available (the training and the test towns)
        from ..rollout.towns import check_towns
        check_towns(sim, test_scenario)
        if scenario.towns:
            check_towns(sim, scenario)
        from torch.utils.tensorboard import SummaryWriter

        from ..policies.driver import PolicyDriver
        from ..rollout import CollectSpec, Drivers, RolloutSpec, collect
        from ..training.trainer import train_policy
        tb = SummaryWriter(str(run / "tb"))
        expert = make_expert(scenario)
        test_expert = make_expert(test_scenario)
        interventions = InterventionConfig(threshold=config.intervention_threshold)
        schedule = BetaSchedule.of(config)
        summaries: list[dict[str, Any]] = []
        data_dirs: list[Path] = []
        prev_ckpt: Path | None = None
        global_episode = 0
        for i in range(config.dagger_rounds + 1):
            rd = round_dir(run, i)
            data = rd / "data"
            data_dirs.append(data)
            done = rd / "round.json"
            if done.exists():
                s = upgrade_keys(json.loads(done.read_text()))
                summaries.append(s)
                prev_ckpt = Path(s["checkpoint"])
                global_episode += s["episodes"]
                log_fn(f"round {i}: finished earlier (beta {s['beta']:.3f}, {s['total_labelled_frames']} "
                       f"labelled frames) - skipped")
                continue
            t_round = time.perf_counter()
            aggregate_info: dict[str, Any] | None = None
            gated = config.mode == "gated" and i > 0
            # gated rounds: the learner drives, the expert only takes over past the gate
            beta = 0.0 if gated else schedule(i, global_episode)
            # 1. collect
            t0 = time.perf_counter()
            if i == 0:
                collect(sim, scenario, data, CollectSpec(episodes=config.bc_episodes,
                                                         first_seed=_episode_seed_base(scenario, 0)),
                        Drivers(expert=expert), progress=progress, pool=pool)
                n_eps = config.bc_episodes
            else:
                learner = PolicyDriver.from_checkpoint(prev_ckpt, scenario=scenario, **_device_kw(device))
                if gated:
                    spec = RolloutSpec(driver="learner", interventions=InterventionConfig(threshold=config.gate_threshold),
                                       dagger_round=i, gated_labels_only=True)
                    collect(sim, scenario, data, CollectSpec(episodes=config.dagger_episodes,
                                                             first_seed=_episode_seed_base(scenario, i), rollout=spec),
                            Drivers(expert=expert, learner=learner), progress=progress, pool=pool)
                else:
                    spec = RolloutSpec(driver="mixture", beta=beta, mixing=config.mixing, dagger_round=i)
                    collect(sim, scenario, data, CollectSpec(episodes=config.dagger_episodes,
                                                             first_seed=_episode_seed_base(scenario, i), rollout=spec),
                            Drivers(expert=expert, learner=learner), progress=progress, pool=pool)
                n_eps = config.dagger_episodes
            t_collect = time.perf_counter() - t0
            frames, labelled, inter = _count_frames(data, labelled_only=gated)
            # 2. train on the aggregate
            t0 = time.perf_counter()
            total_labelled = labelled + sum(s["labelled_frames"] for s in summaries)
            if labelled == 0 and prev_ckpt is not None:
                log_fn(f"round {i}: no labelled frames (the learner never needed the expert); "
                       f"keeping round {i - 1}'s policy")
                ckpt = prev_ckpt
                train_info: dict[str, Any] = {}
            else:
                warm = config.warm_start and prev_ckpt is not None
                sample_filter = _gated_filter if config.mode == "gated" else None
                if selection_active(config):
                    selection = select_aggregate(data_dirs, config)
                    sample_filter = selection.sample_filter()
                    aggregate_info = selection.summary(config)
                    log_fn(f"round {i}: training on {aggregate_info['kept_frames']} of the aggregate's "
                           f"{aggregate_info['frames']} labelled frames ({_selection_words(config)})")
                tr = train_policy(
                    data_dirs=list(data_dirs), model_config=config.model, out_dir=rd / "model",
                    epochs=(config.dagger_epochs or config.epochs) if warm else config.epochs,
                    seed=scenario.seed + i, resume=True, init_from=prev_ckpt if warm else None,
                    sample_filter=sample_filter,
                    max_frames=config.max_train_frames, progress=progress, **_train_kw(device, amp))
                ckpt = Path(tr.checkpoint)
                train_info = {"val_steer_error_deg": getattr(tr, "best_val_steer_error_deg", None),
                              "samples_per_s": getattr(tr, "samples_per_s", None)}
            t_train = time.perf_counter() - t0
            # 3. evaluate with beta = 0 on the test scenario
            t0 = time.perf_counter()
            evals = _evaluate_weathers(sim, test_scenario, ckpt, test_expert, weathers, config, interventions,
                                       rd / "eval", progress, pool=pool, device=device)
            t_eval = time.perf_counter() - t0
            ensemble_evals: dict[str, dict[str, Any]] | None = None
            members: list[str] = []
            if config.eval_ensemble and i > 0:
                t0 = time.perf_counter()
                members = list(dict.fromkeys([*(str(s["checkpoint"]) for s in summaries), str(ckpt)]))
                ensemble_evals = _evaluate_ensemble(sim, test_scenario, members, test_expert, weathers, config,
                                                    interventions, rd / "eval_ensemble", progress, device=device,
                                                    pool=pool)
                t_eval += time.perf_counter() - t0
            secs = {"collect": t_collect, "train": t_train, "eval": t_eval,
                    "total": time.perf_counter() - t_round}
            summary = dataclasses.asdict(RoundSummary(
                round=i, beta=beta, episodes=n_eps, frames=frames, labelled_frames=labelled,
                total_labelled_frames=total_labelled, expert_queries=labelled,
                intervention_rate=(inter / frames if frames else 0.0), seconds=secs, eval=evals,
                checkpoint=str(ckpt)))
            summary["train"] = train_info
            if aggregate_info is not None:            # only with the options on: round.json as before
                summary["aggregate"] = aggregate_info
            if ensemble_evals is not None:
                summary["eval_ensemble"] = ensemble_evals
                summary["ensemble_members"] = members
            write_json(done, summary)
            summaries.append(json.loads(done.read_text()))
            prev_ckpt = ckpt
            global_episode += n_eps
            if tb is not None:
                tb.add_scalar("dagger/round", i, i)
                tb.add_scalar("dagger/beta", beta, i)
                tb.add_scalar("dagger/dataset_size", total_labelled, i)
                tb.add_scalar("dagger/expert_queries", labelled, i)
                tb.add_scalar("dagger/intervention_rate", summary["intervention_rate"], i)
                for w, ev in evals.items():
                    tag = "" if w == weathers[0] else f"_{w}"
                    for k in EVAL_KEYS:
                        if ev.get(k) is not None:
                            tb.add_scalar(f"eval/{k}{tag}", ev[k], i)
                for k, v in secs.items():
                    tb.add_scalar(f"perf/round_{k}_s", v, i)
                if aggregate_info is not None:
                    tb.add_scalar("dagger/train_frames", aggregate_info["kept_frames"], i)
                for w, ev in (ensemble_evals or {}).items():
                    tag = "" if w == weathers[0] else f"_{w}"
                    for k in EVAL_KEYS:
                        if ev.get(k) is not None:
                            tb.add_scalar(f"eval_ensemble/{k}{tag}", ev[k], i)
                tb.flush()
            e0 = evals[weathers[0]]
            log_fn(f"round {i}: beta {beta:.3f} | {frames} frames ({labelled} labelled, total "
                   f"{total_labelled}) | autonomy {e0['autonomy']:.1f} % | interventions/km "
                   f"{e0['interventions_per_km']:.2f} | |lateral deviation| mean {e0['lateral_deviation_mean']:.3f} m | "
                   f"collect {t_collect:.0f} s, train {t_train:.0f} s, eval {t_eval:.0f} s")
            if ensemble_evals is not None:
                x0 = ensemble_evals[weathers[0]]
                log_fn(f"round {i}: ensemble of {len(members)} policies (rounds' mean output) | autonomy "
                       f"{x0['autonomy']:.1f} % | interventions/km {x0['interventions_per_km']:.2f} | "
                       f"|lateral deviation| mean {x0['lateral_deviation_mean']:.3f} m")
        # BC with the same number of expert labels
        if config.bc_matched:
            _bc_matched(run, scenario, test_scenario, config, summaries, sim, expert, test_expert, weathers,
                        interventions, progress, log_fn, tb, pool=pool, device=device, amp=amp)
        _train_town_eval(run, scenario, config, summaries, sim, expert, interventions, progress, log_fn,
                         pool=pool, device=device)
    finally:
        if tb is not None:
            tb.close()
        sim.close()
    return summaries


def _device_kw(device: str) -> dict[str, Any]:
    """The learner's device keyword (none on the CPU: today's default)."""
    return {} if str(device) == "cpu" else {"device": device}


def _train_kw(device: str, amp: bool) -> dict[str, Any]:
    """The trainer's device keywords (none on the CPU without AMP: today's default)."""
    return {} if str(device) == "cpu" and not amp else {"device": device, "amp": amp}


def _evaluate_weathers(sim, test_scenario: Scenario, ckpt: Path, expert, weathers, config: PipelineConfig,
                       interventions: InterventionConfig, out: Path, progress: bool, *, pool: Any = None,
                       device: str = "cpu") -> dict[str, dict[str, Any]]:
    """Evaluate a checkpoint (beta = 0) on the test scenario in each weather; writes
    ``out/<weather>.json`` and returns the :data:`EVAL_KEYS` (+ per-seed spread) per weather."""
    from ..evaluation.evaluate import evaluate
    from ..policies.driver import PolicyDriver

    learner = PolicyDriver.from_checkpoint(ckpt, scenario=test_scenario, **_device_kw(device))
    evals: dict[str, dict[str, Any]] = {}
    for w in weathers:
        rep = evaluate(sim, test_scenario.replace(weather=w), learner=learner, expert=expert,
                       seeds=config.eval_seeds, episodes=config.eval_episodes, interventions=interventions,
                       checkpoint=str(ckpt), progress=progress, pool=pool)
        write_json(out / f"{w}.json", rep.to_dict())
        evals[w] = {k: rep.aggregate[k] for k in EVAL_KEYS}
        evals[w].update({f"{k}_seed_std": rep.seed_std[k] for k in EVAL_KEYS if k in rep.seed_std})
        evals[w]["episodes"] = rep.aggregate["episodes"]
    return evals


def _evaluate_ensemble(sim, test_scenario: Scenario, members: list[str], expert, weathers, config: PipelineConfig,
                       interventions: InterventionConfig, out: Path, progress: bool, *,
                       device: str = "cpu", pool: Any = None) -> dict[str, dict[str, Any]]:
    """Evaluate the ensemble (mean output) of ``members`` as :func:`_evaluate_weathers`
    does one checkpoint (on ``pool``'s workers too: an ensemble travels as its members'
    checkpoints); writes ``out/<weather>.json``."""
    from ..evaluation.evaluate import evaluate
    from ..policies.ensemble import EnsembleDriver

    learner = EnsembleDriver.from_checkpoints(members, scenario=test_scenario, **_device_kw(device))
    label = "ensemble: " + ", ".join(members)
    evals: dict[str, dict[str, Any]] = {}
    for w in weathers:
        rep = evaluate(sim, test_scenario.replace(weather=w), learner=learner, expert=expert,
                       seeds=config.eval_seeds, episodes=config.eval_episodes, interventions=interventions,
                       checkpoint=label, progress=progress, pool=pool)
        write_json(out / f"{w}.json", rep.to_dict())
        evals[w] = {k: rep.aggregate[k] for k in EVAL_KEYS}
        evals[w].update({f"{k}_seed_std": rep.seed_std[k] for k in EVAL_KEYS if k in rep.seed_std})
        evals[w]["episodes"] = rep.aggregate["episodes"]
    return evals


def _selection_words(config: PipelineConfig) -> str:
    """The aggregate's rules in words, for the round's log line."""
    words = []
    if config.sampling == "disagreement":
        words.append(f"the {config.critical_share:g} share of each DAgger round with the largest disagreement")
    if config.replay_buffer_frames is not None:
        words.append(f"replay buffer of {config.replay_buffer_frames} frames")
    return "; ".join(words)


def _same_run(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """An existing ``dagger.json`` describes this run: equal, with the pipeline records
    (``"dagger"`` and the scenarios' ``pipeline`` tables) compared as
    :class:`PipelineConfig` values, so that a run recorded before issue 15 (other names,
    fewer keys) still resumes; an unset ``eval_episodes`` reads as the test scenario's
    ``test.episodes`` (what evaluation uses)."""
    def norm(d: dict[str, Any]) -> dict[str, Any]:
        try:
            out = {**d, "dagger": to_dict(pipeline_from_record(d.get("dagger", {})))}
            for key in ("scenario", "test_scenario"):
                if isinstance(d.get(key), dict) and "pipeline" in d[key]:
                    out[key] = {**d[key], "pipeline": to_dict(pipeline_from_record(d[key]["pipeline"]))}
        except ConfigError:
            return d
        if out["dagger"]["eval_episodes"] is None:
            out["dagger"]["eval_episodes"] = d.get("test_scenario", {}).get("test", {}).get("episodes")
        return out
    return old == new or norm(old) == norm(new)


def _gated_filter(sample_meta: dict[str, Any]) -> bool:
    """Gated DAgger: frames of rounds >= 1 are labels only where the expert took over."""
    rnd = sample_meta.get("dagger_round")
    return rnd is None or rnd <= 0 or bool(sample_meta.get("intervention"))


def _bc_matched(run, scenario, test_scenario, config, summaries, sim, expert, test_expert, weathers,
                interventions, progress, log_fn, tb, *, pool: Any = None, device: str = "cpu",
                amp: bool = False) -> None:
    from ..data.storage import list_episodes
    from ..rollout import CollectSpec, Drivers, collect
    from ..training.trainer import train_policy

    bc = run / "bc_matched"
    done = bc / "bc.json"
    if done.exists():
        log_fn("bc_matched: finished earlier - skipped")
        return
    target = summaries[-1]["total_labelled_frames"]
    data = bc / "data"
    # reuse round 0's expert episodes, then add expert episodes until the frame count matches
    data.mkdir(parents=True, exist_ok=True)
    r0 = round_dir(run, 0) / "data"
    for p in list_episodes(r0):
        dst = data / p.name
        if not dst.exists():
            shutil.copy2(p, dst)
    man0 = r0 / "manifest.jsonl"
    if man0.exists() and not (data / "manifest.jsonl").exists():
        shutil.copy2(man0, data / "manifest.jsonl")
    t0 = time.perf_counter()
    frames, _, _ = _count_frames(data, labelled_only=False)
    n = len(list_episodes(data))
    while frames < target:
        extra = max(1, int((target - frames) / max(frames / max(n, 1), 1.0) + 0.999))
        collect(sim, scenario, data, CollectSpec(episodes=n + extra, first_seed=_episode_seed_base(scenario, 0)),
                Drivers(expert=expert), progress=progress, pool=pool)
        frames, _, _ = _count_frames(data, labelled_only=False)
        n_new = len(list_episodes(data))
        if n_new == n:
            raise DriveILError(f"bc_matched: could not collect more expert episodes into {data}")
        n = n_new
    t_collect = time.perf_counter() - t0
    t0 = time.perf_counter()
    tr = train_policy(data_dirs=[data], model_config=config.model, out_dir=bc / "model",
                      epochs=config.epochs, seed=scenario.seed, resume=True, init_from=None,
                      max_frames=config.max_train_frames, progress=progress, **_train_kw(device, amp))
    t_train = time.perf_counter() - t0
    ckpt = Path(tr.checkpoint)
    t0 = time.perf_counter()
    evals = _evaluate_weathers(sim, test_scenario, ckpt, test_expert, weathers, config, interventions, bc / "eval",
                               progress, pool=pool, device=device)
    t_eval = time.perf_counter() - t0
    write_json(done, {"frames": frames, "target_frames": target, "episodes": n, "eval": evals,
                      "checkpoint": str(ckpt),
                      "seconds": {"collect": t_collect, "train": t_train, "eval": t_eval}})
    e0 = evals[weathers[0]]
    log_fn(f"bc_matched: {frames} expert frames (DAgger: {target}) | autonomy {e0['autonomy']:.1f} % | "
           f"interventions/km {e0['interventions_per_km']:.2f} | |lateral deviation| mean {e0['lateral_deviation_mean']:.3f} m")


def _train_town_eval(run, scenario, config, summaries, sim, expert, interventions, progress, log_fn, *,
                     pool: Any = None, device: str = "cpu") -> None:
    """Evaluate BC and the final DAgger policy on the training town too (training town
    against test town), with evaluation seeds distinct from the training episodes."""
    from ..evaluation.evaluate import evaluate
    from ..policies.driver import PolicyDriver

    out = run / "train_eval" / "train_eval.json"
    if out.exists():
        return
    bc_json = run / "bc_matched" / "bc.json"
    policies = {"DAgger": summaries[-1]["checkpoint"]}
    policies["BC"] = (json.loads(bc_json.read_text())["checkpoint"] if bc_json.exists()
                      else summaries[0]["checkpoint"])
    train_sc = scenario.replace(seed=scenario.seed + 500_000)
    rows: dict[str, list[dict[str, Any]]] = {}
    for name, ck in policies.items():
        learner = PolicyDriver.from_checkpoint(Path(ck), scenario=train_sc, **_device_kw(device))
        rep = evaluate(sim, train_sc, learner=learner, expert=expert, seeds=1,
                       episodes=config.eval_episodes, interventions=interventions, checkpoint=ck, progress=progress,
                       pool=pool)
        row = {"town": train_sc.where, "weather": train_sc.weather, "split": "train",
               **{k: rep.aggregate[k] for k in EVAL_KEYS}}
        test_rows = []
        src = (summaries[-1]["eval"] if name == "DAgger" else
               (upgrade_keys(json.loads(bc_json.read_text()))["eval"] if bc_json.exists() else summaries[0]["eval"]))
        test_d = json.loads((run / "dagger.json").read_text())["test_scenario"]
        test_town = towns_label(test_d["town"], test_d.get("towns", ()))
        for w, ev in src.items():
            test_rows.append({"town": test_town, "weather": w, "split": "test", **ev})
        rows[name] = [row, *test_rows]
        log_fn(f"{name} on the training town(s) {train_sc.where}: autonomy {row['autonomy']:.1f} %, "
               f"|lateral deviation| mean {row['lateral_deviation_mean']:.3f} m")
    write_json(out, {"policies": rows})
