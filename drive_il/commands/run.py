"""``drive-il run [SCENARIO]`` (= ``python run_sim.py [SCENARIO]``): the main job.

Collect expert demonstrations, train behaviour cloning, run the DAgger rounds, evaluate
BC and DAgger on the test routes (and BC given as many expert labels as DAgger's final
dataset), write the report (markdown + plots) and TensorBoard logs under
``runs/<name>/``. Every stage is the stage command's code (collect, train, dagger, eval,
report); a finished stage is skipped on re-run. With no argument it runs
``scenarios/procedural.toml`` (:data:`MAIN_JOB_SCENARIO`): trained on generated
procedural towns, tested on procedural towns it never saw, which needs no files (every
other command's default stays the circuit of ``scenarios/default.toml``). The scenario's
``[pipeline]`` table says what runs; the same flags as ``drive-il dagger`` override it.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from .common import (add_device_args, add_parallel_args, add_scenario_arg, add_sim_args, close_pool, make_pool_from_args,
                     make_sim, resolve_device_arg)

#: The main job's scenario when none is given: a name in scenarios/.
MAIN_JOB_SCENARIO = "procedural"


def register(sub) -> None:
    from ..config import add_config_flags
    from ..pipeline import PipelineConfig
    from .dagger import PIPELINE_FLAGS

    p = sub.add_parser("run", help="the main job: demonstrations -> BC -> DAgger -> evaluation -> report",
                       description="Run the pipeline the scenario's [pipeline] table describes; resumable.")
    add_scenario_arg(p, default=MAIN_JOB_SCENARIO)
    p.add_argument("--out", type=Path, default=None, help="run directory (default runs/<scenario name>)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_config_flags(p, PipelineConfig, title=PIPELINE_FLAGS, defaults_from="[pipeline]")
    add_sim_args(p)
    add_parallel_args(p)
    add_device_args(p, amp=True)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..dagger.loop import run_dagger
    from ..evaluation.report import write_report
    from ..expert.expert import Expert
    from ..scenario import load_scenario
    from .dagger import pipeline_config

    t0 = time.perf_counter()
    scenario = load_scenario(args.scenario)
    test = scenario.test_scenario()
    cfg, scenario = pipeline_config(args, scenario)
    out = args.out or Path("runs") / scenario.name
    weathers = tuple(dict.fromkeys((test.weather, *scenario.test.weathers, *scenario.test.unseen_weathers)))
    device = resolve_device_arg(args)
    pool = make_pool_from_args(args)
    print(f"drive_il main job: scenario {scenario.name} ({scenario.source}), train on {scenario.where}, "
          f"test on {test.where} in {', '.join(weathers)}; model {cfg.model}; {cfg.dagger_rounds} DAgger rounds; "
          f"backend {args.backend}; {pool.describe() if pool is not None else '1 worker'}; device {device}; "
          f"output {out}/", flush=True)
    try:
        run_dagger(scenario=scenario, test_scenario=test, config=cfg, out_dir=out, make_sim=lambda: make_sim(args),
                   make_expert=lambda sc: Expert.for_scenario(sc, preset=cfg.expert), test_weathers=weathers,
                   progress=not args.no_progress, log_fn=lambda s: print(s, flush=True),
                   pool=pool, device=device, amp=args.amp)
    finally:
        close_pool(pool)
    report = write_report(out)
    print(f"finished in {time.perf_counter() - t0:.0f} s")
    print(f"report:      {report}")
    print(f"tensorboard: tensorboard --logdir {out / 'tb'}")
    return 0
