"""``drive-il eval --checkpoint RUN --scenario S [--seeds 3]``: closed-loop evaluation
with DAVE-2 interventions; prints the metrics, writes a JSON report and TensorBoard
``eval/`` scalars."""

from __future__ import annotations

import argparse
import re
from pathlib import Path, PurePath

from .common import (add_device_args, add_parallel_args, add_scenario_arg, add_sim_args, close_pool, make_pool_from_args,
                     make_sim, resolve_device_arg)


def register(sub) -> None:
    p = sub.add_parser("eval", help="evaluate a trained policy closed-loop (autonomy, lateral deviation, interventions)",
                       description="Drive the learner with the expert shadowing it; DAVE-2 interventions "
                                   "when |lateral deviation| > --intervention-threshold.")
    p.add_argument("--checkpoint", type=Path, required=True, help="run or checkpoint directory")
    add_scenario_arg(p, positional=False)
    p.add_argument("--split", choices=("test", "train"), default="test",
                   help="drive the scenario's test routes/town (default) or its training ones")
    p.add_argument("--weather", default=None, help="override the weather preset")
    p.add_argument("--seeds", type=int, default=3, help="evaluation seeds (default 3)")
    p.add_argument("--episodes", type=int, default=None, help="episodes per seed (default: scenario test.episodes)")
    p.add_argument("--intervention-threshold", "--threshold", dest="intervention_threshold", type=float, default=1.0,
                   help="intervention threshold |lateral deviation| [m] (default 1.0; --threshold is the old spelling)")
    p.add_argument("--trace", action="store_true",
                   help="print one line per intervention: where, cause, command, speed, learner vs expert steer")
    p.add_argument("--out", type=Path, default=None, help="JSON report (default RUN/eval/<scenario>-<town>-<weather>.json)")
    p.add_argument("--logdir", type=Path, default=None, help="TensorBoard dir (default RUN/tb)")
    add_sim_args(p)
    add_parallel_args(p)
    add_device_args(p)
    p.set_defaults(func=run)


def town_stem(town: str) -> str:
    """A town as one safe file-name part: a path-like town (``../maps/Town01.xodr``)
    gives its stem (``Town01``); characters outside ``A-Z a-z 0-9 _ . -`` become '_'."""
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", PurePath(str(town).replace("\\", "/")).name)
    if stem.lower().endswith(".xodr"):
        stem = stem[:-5]
    return stem.lstrip(".") or "town"


def print_report(rep) -> None:
    a = rep.aggregate
    print(f"{rep.scenario} on {rep.town} ({rep.weather}), {int(a.get('episodes', 0))} episodes, "
          f"threshold {rep.threshold:.2f} m")
    print(f"  autonomy {a['autonomy']:.2f} % (seed mean {rep.seed_mean['autonomy']:.2f} "
          f"+- {rep.seed_std['autonomy']:.2f}) | interventions {int(a['interventions'])} "
          f"({a['interventions_per_km']:.2f}/km) | first after {a['distance_to_first_intervention']:.0f} m")
    print(f"  |lateral deviation| mean {a['lateral_deviation_mean']:.3f} p95 {a['lateral_deviation_p95']:.3f} max {a['lateral_deviation_max']:.3f} m"
          f" | heading error mean {a['heading_error_mean']:.3f} rad")
    print(f"  route completion {a['route_completion']:.1f} % | collisions {a['collisions_per_km']:.2f}/km | "
          f"lane invasions {a['lane_invasions_per_km']:.2f}/km | steering disagreement {a['disagreement_mean']:.3f}")
    for town, t in rep.per_town.items():
        print(f"  {town}: {int(t.get('episodes', 0))} episodes | autonomy {t['autonomy']:.2f} % | interventions "
              f"{t['interventions_per_km']:.2f}/km | |lateral deviation| mean {t['lateral_deviation_mean']:.3f} m | "
              f"route completion {t['route_completion']:.1f} %")


def run(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..evaluation.evaluate import evaluate
    from ..expert.expert import Expert
    from ..policies.driver import PolicyDriver
    from ..metrics import METRIC_KEYS
    from ..rollout import InterventionConfig, write_json
    from ..scenario import WEATHER_PRESETS, load_scenario

    if args.seeds < 1:
        raise ConfigError(f"--seeds: expected an integer >= 1, got {args.seeds}")
    if args.weather is not None and args.weather not in WEATHER_PRESETS:
        raise ConfigError(f"--weather: unknown preset {args.weather!r} (known: {', '.join(WEATHER_PRESETS)})")
    if not args.intervention_threshold > 0:
        raise ConfigError(f"--intervention-threshold: expected a distance > 0 m, got {args.intervention_threshold}")
    base = load_scenario(args.scenario)
    scenario = base.test_scenario(args.weather) if args.split == "test" else (
        base.replace(weather=args.weather) if args.weather else base)
    device = resolve_device_arg(args)
    learner = PolicyDriver.from_checkpoint(args.checkpoint, scenario=scenario,
                                           **({} if device == "cpu" else {"device": device}))
    expert = Expert.for_scenario(scenario)
    pool = make_pool_from_args(args)
    sim = make_sim(args)
    try:
        from ..rollout.towns import check_towns
        check_towns(sim, scenario)  # an unknown town fails here, before any episode
        if pool is not None:
            sim.close()
            sim = None
        rep = evaluate(sim, scenario, learner=learner, expert=expert, seeds=args.seeds, episodes=args.episodes,
                       interventions=InterventionConfig(threshold=args.intervention_threshold), checkpoint=str(args.checkpoint),
                       progress=True, pool=pool)
    finally:
        if sim is not None:
            sim.close()
        close_pool(pool)
    print_report(rep)
    if args.trace:
        from ..evaluation.trace import format_trace
        print(format_trace(list(rep.interventions)))
    run_dir = args.checkpoint if args.checkpoint.is_dir() else args.checkpoint.parent
    out = args.out or run_dir / "eval" / f"{scenario.name}-{town_stem(scenario.town)}-{scenario.weather}.json"
    write_json(out, rep.to_dict())
    print(f"wrote {out}")
    try:
        from torch.utils.tensorboard import SummaryWriter
        with SummaryWriter(str(args.logdir or run_dir / "tb")) as w:
            for k in METRIC_KEYS:
                w.add_scalar(f"eval/{k}", rep.aggregate[k], 0)
    except ImportError:  # pragma: no cover
        pass
    return 0
