"""``drive-il dagger --scenario S --test-scenario T --model M --rounds N --out RUN``:
behaviour cloning (round 0) then DAgger rounds, each evaluated on the test scenario
(``Scenario.test_scenario()`` of T, default of S: the file's ``[test]`` table applied, as
``drive-il eval`` drives a file); resumable (see drive_il.dagger.loop).

The pipeline flags are generated from :class:`drive_il.pipeline.PipelineConfig` (one
per field, with the old spellings ``--rounds``, ``--episodes-per-round``, ``--schedule``,
``--threshold``, ``--no-warm-start``, ``--no-bc-matched`` as aliases); a flag overrides
the scenario's ``[pipeline]`` table.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import (add_device_args, add_parallel_args, add_sim_args, close_pool, make_pool_from_args, make_sim,
                     resolve_device_arg)

PIPELINE_FLAGS = "pipeline (default: the scenario's [pipeline] table)"


def register(sub) -> None:
    from ..config import add_config_flags
    from ..pipeline import PipelineConfig

    p = sub.add_parser("dagger", help="behaviour cloning then DAgger rounds, evaluated each round",
                       description="Round 0 = behaviour cloning on expert demonstrations; each DAgger round "
                                   "rolls out the beta-mixture, the expert labels every visited state, the "
                                   "data of all rounds is aggregated and the policy retrained and evaluated. "
                                   "Defaults come from the scenario's [pipeline] table.")
    p.add_argument("--scenario", default=None, help="training scenario (default: scenarios/default.toml)")
    p.add_argument("--test-scenario", default=None,
                   help="test scenario file: its [test] table applied, as `drive-il eval FILE` drives it "
                        "(default: the training scenario's [test] routes/town)")
    p.add_argument("--out", type=Path, default=None, help="run directory (default runs/<scenario>/dagger)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_config_flags(p, PipelineConfig, title=PIPELINE_FLAGS, defaults_from="[pipeline]")
    add_sim_args(p)
    add_parallel_args(p)
    add_device_args(p, amp=True)
    p.set_defaults(func=run)


def pipeline_config(args: argparse.Namespace, scenario):
    """The scenario's ``[pipeline]`` with the pipeline flags given on the command line;
    ``--epochs`` without ``--dagger-epochs`` trains every round with ``--epochs``.

    Returns:
        (config, scenario): the scenario with ``--seed`` applied.

    Raises:
        ConfigError: a bad value, one line naming the flag and the field.
    """
    import dataclasses

    from ..config import config_from_args
    from ..pipeline import PipelineConfig

    base = scenario.pipeline
    if getattr(args, "epochs", None) is not None and not hasattr(args, "dagger_epochs"):
        base = dataclasses.replace(base, dagger_epochs=None)
    cfg = config_from_args(PipelineConfig, base, args)
    if cfg.seed is not None:
        scenario = scenario.replace(seed=cfg.seed)
    return cfg, scenario


def run(args: argparse.Namespace) -> int:
    from ..dagger.loop import run_dagger
    from ..expert.expert import Expert
    from ..scenario import load_scenario

    scenario = load_scenario(args.scenario)
    # a test scenario file is driven as `drive-il eval FILE` drives it: its [test] table applied
    test = (load_scenario(args.test_scenario) if args.test_scenario else scenario).test_scenario()
    cfg, scenario = pipeline_config(args, scenario)
    out = args.out or Path("runs") / scenario.name / "dagger"
    weathers = tuple(dict.fromkeys((test.weather, *scenario.test.weathers, *scenario.test.unseen_weathers)))
    print(f"DAgger run in {out}: {cfg.dagger_rounds} rounds after behaviour cloning, model {cfg.model}, "
          f"schedule {cfg.beta_schedule} (beta {cfg.beta}), mode {cfg.mode}; "
          f"train {scenario.where}, test {test.where} ({', '.join(weathers)})")
    device = resolve_device_arg(args)
    pool = make_pool_from_args(args)
    try:
        run_dagger(scenario=scenario, test_scenario=test, config=cfg, out_dir=out, make_sim=lambda: make_sim(args),
                   make_expert=lambda sc: Expert.for_scenario(sc, preset=cfg.expert), test_weathers=weathers,
                   progress=not args.no_progress,
                   pool=pool, device=device, amp=args.amp)
    finally:
        close_pool(pool)
    print(f"done: {out}  (drive-il report {out}; tensorboard --logdir {out / 'tb'})")
    return 0
