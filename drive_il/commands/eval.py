"""``drive-il eval --checkpoint RUN --scenario S [--seeds 3]``: closed-loop evaluation
with DAVE-2 interventions; prints the metrics, writes a JSON report and TensorBoard
``eval/`` scalars.

``drive-il eval SCENARIO --protocol nocrash (--checkpoint RUN | --expert) [--routes 25]
[--densities empty,regular,dense] [--weather-sets train,new] [--workers N]``: the NoCrash
benchmark (:mod:`drive_il.evaluation.nocrash`) on the scenario's test town(s); prints the
table and writes ``RUN/eval/nocrash-<scenario>.json`` (the expert:
``runs/<scenario>/expert/eval/...``), which ``drive-il report RUN`` shows.

``drive-il eval --protocol offline --checkpoint RUN --data DIR [DIR...] [--every N]``: no
simulator; the checkpoint's predictions on recorded expert episodes against the expert's
labels, per route command, with the turn-depth table and a speed head's standing and
start-off errors (:mod:`drive_il.training.offline`); writes ``RUN/eval/offline-<DIR>.json``."""

from __future__ import annotations

import argparse
import re
from pathlib import Path, PurePath

from .common import (add_device_args, add_parallel_args, add_scenario_arg, add_sim_args, close_pool, make_pool_from_args,
                     checked_sim, learner_from_args)


def register(sub) -> None:
    p = sub.add_parser("eval", help="evaluate a trained policy closed-loop (autonomy, lateral deviation, interventions)",
                       description="Drive the learner with the expert shadowing it; DAVE-2 interventions "
                                   "when |lateral deviation| > --intervention-threshold. With --protocol nocrash: "
                                   "the NoCrash benchmark (the learner or --expert drives alone; routes x traffic "
                                   "x weathers; success rate, collisions by kind, red lights, driving score).")
    p.add_argument("scenario_pos", nargs="?", default=None, metavar="SCENARIO",
                   help="scenario TOML file or name in scenarios/ (same as --scenario)")
    p.add_argument("--checkpoint", type=Path, action="append", default=None,
                   help="run or checkpoint directory (the learner); repeat it to evaluate an ensemble (the mean "
                        "output of the checkpoints: e.g. the same preset trained with several seeds)")
    p.add_argument("--path-follower", choices=("pursuit", "expert"), default="pursuit",
                   help="how the learner follows a path head's path: pursuit (default: plain pure pursuit) or "
                        "expert (the expert's law: pure pursuit with the curvature feed-forward, remembered from "
                        "the predicted paths; README, \"The learner's path follower\")")
    p.add_argument("--curve-governor", choices=("steer", "path"), default="steer",
                   help="what slows the learner for bends: steer (default: the curvature of its own steer) or "
                        "path (that and, for a path head, the expert's curve speeds on its predicted path ahead)")
    p.add_argument("--expert", action="store_true",
                   help="--protocol nocrash: evaluate the scenario's expert instead of a checkpoint")
    add_scenario_arg(p, positional=False)
    p.add_argument("--protocol", default="interventions", metavar="interventions|nocrash|offline",
                   help="interventions (default: DAVE-2 takeovers, autonomy), nocrash (the NoCrash benchmark: "
                        "the policy drives alone, success = goal within the time limit without a collision) or "
                        "offline (no simulator: the checkpoint's predictions on the recorded episodes of --data "
                        "against the expert's labels, per command)")
    p.add_argument("--data", type=Path, nargs="+", default=None, metavar="DIR",
                   help="--protocol offline: episode directories (drive-il collect output), best ones the model "
                        "was not trained on")
    p.add_argument("--every", type=int, default=1,
                   help="--protocol offline: use every N-th step of each episode (default 1: all)")
    p.add_argument("--routes", type=int, default=25,
                   help="--protocol nocrash: routes per town, traffic and weather (default 25, as NoCrash)")
    p.add_argument("--densities", default="empty,regular,dense",
                   help="--protocol nocrash: traffic conditions, comma-separated (default empty,regular,dense)")
    p.add_argument("--weather-sets", default="train,new",
                   help="--protocol nocrash: weather sets, comma-separated: train (ClearNoon, WetNoon, HardRainNoon, "
                        "ClearSunset), new (WetSunset, SoftRainSunset) (default both)")
    p.add_argument("--split", choices=("test", "train"), default="test",
                   help="drive the scenario's test routes/town (default) or its training ones")
    p.add_argument("--weather", default=None, help="override the weather preset")
    p.add_argument("--seeds", type=int, default=3, help="evaluation seeds (default 3)")
    p.add_argument("--episodes", type=int, default=None, help="episodes per seed (default: scenario test.episodes)")
    p.add_argument("--intervention-threshold", "--threshold", dest="intervention_threshold", type=float, default=1.0,
                   help="intervention threshold |lateral deviation| [m] (default 1.0; --threshold is the old spelling)")
    p.add_argument("--trace", action="store_true",
                   help="print one line per intervention: where, cause, command, speed, learner vs expert steer "
                        "(--protocol nocrash: one line per collision: where, what was hit and from where, "
                        "learner vs expert steer and target speed)")
    p.add_argument("--out", type=Path, default=None, help="JSON report (default RUN/eval/<scenario>-<town>-<weather>.json; "
                                                          "nocrash: RUN/eval/nocrash-<scenario>-test.json)")
    p.add_argument("--logdir", type=Path, default=None, help="TensorBoard dir (default RUN/tb; an ensemble of checkpoints logs only with --logdir)")
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
    if a.get("red_lights") or a.get("walker_collisions"):  # urban scenarios: lights and pedestrians
        print(f"  red lights run {int(a['red_lights'])} ({a['red_lights_per_km']:.2f}/km) | pedestrian collisions "
              f"{int(a['walker_collisions'])} | driving score {a['driving_score']:.1f}")
    for town, t in rep.per_town.items():
        print(f"  {town}: {int(t.get('episodes', 0))} episodes | autonomy {t['autonomy']:.2f} % | interventions "
              f"{t['interventions_per_km']:.2f}/km | |lateral deviation| mean {t['lateral_deviation_mean']:.3f} m | "
              f"route completion {t['route_completion']:.1f} %")


PROTOCOLS = ("interventions", "nocrash", "offline")


def _scenario_arg(args: argparse.Namespace):
    from ..errors import ConfigError
    pos, opt = args.scenario_pos, args.scenario
    if pos is not None and opt is not None and pos != opt:
        raise ConfigError(f"SCENARIO: given twice, {pos!r} and --scenario {opt!r}")
    return pos if pos is not None else opt


def _subset(flag: str, value: str, known: tuple[str, ...]) -> tuple[str, ...]:
    """A comma-separated subset of ``known``, in the order given.

    Raises:
        ConfigError: empty, an unknown entry or a repeated one (one line naming the flag).
    """
    from ..errors import ConfigError
    got = tuple(v.strip() for v in value.split(",") if v.strip())
    if not got or any(v not in known for v in got) or len(set(got)) != len(got):
        raise ConfigError(f"{flag}: expected a comma-separated subset of {','.join(known)}, got {value!r}")
    return got


def _run_dir(args: argparse.Namespace) -> Path:
    """The run directory of the (first) ``--checkpoint``: where the reports go by default."""
    ck = args.checkpoint[0]
    return ck if ck.is_dir() else ck.parent


def _policy_name(args: argparse.Namespace) -> str:
    """The checkpoint, or an ensemble's checkpoints joined by "+", as the report names it."""
    return "+".join(str(c) for c in args.checkpoint)


def _ensemble_suffix(args: argparse.Namespace) -> str:
    """``-ensemble<N>`` in the default report name of an ensemble of N checkpoints."""
    n = len(args.checkpoint)
    return f"-ensemble{n}" if n > 1 else ""


def run_nocrash_command(args: argparse.Namespace) -> int:
    """``--protocol nocrash``: drive the NoCrash grid, print the table, write the JSON."""
    from ..errors import ConfigError
    from ..evaluation.nocrash import DENSITIES, WEATHER_SETS, conditions, format_table, run_nocrash
    from ..expert.expert import Expert
    from ..rollout import write_json
    from ..scenario import load_scenario

    if args.expert == (args.checkpoint is not None):
        raise ConfigError("--protocol nocrash: give --checkpoint RUN (a learner) or --expert, exactly one")
    if args.routes < 1:
        raise ConfigError(f"--routes: expected an integer >= 1, got {args.routes}")
    densities = _subset("--densities", args.densities, DENSITIES)
    sets = _subset("--weather-sets", args.weather_sets, tuple(WEATHER_SETS))
    if args.weather is not None:
        raise ConfigError("--weather: not with --protocol nocrash (it drives its weather sets; see --weather-sets)")
    base = load_scenario(_scenario_arg(args))
    test = base.test_scenario() if args.split == "test" else base
    conditions(test, densities=densities, weather_sets=sets)  # bad input fails before any simulator starts
    expert = Expert.for_scenario(test)
    learner = None
    if args.checkpoint is not None:
        learner = learner_from_args(args, test)
    pool = make_pool_from_args(args)
    sim = None
    try:
        sim = checked_sim(args, test)  # an unknown town fails here, before any episode
        if pool is not None:
            sim.close()
            sim = None
        rep = run_nocrash(sim, test, learner=learner, expert=expert, driver="expert" if args.expert else "learner",
                          routes=args.routes, densities=densities, weather_sets=sets, pool=pool,
                          policy="expert" if args.expert else _policy_name(args), progress=True)
    finally:
        if sim is not None:
            sim.close()
        close_pool(pool)
    print(format_table(rep))
    if args.trace:
        from ..evaluation.trace import format_collisions, format_timeouts
        print(format_collisions(list(rep.collisions)))
        print(format_timeouts(list(rep.timeouts)))
    if args.expert:
        run_dir = Path("runs") / base.name / "expert"
    else:
        run_dir = _run_dir(args)
    out = args.out or run_dir / "eval" / f"nocrash-{test.name}{_ensemble_suffix(args)}.json"
    write_json(out, rep.to_dict())
    out = Path(out)
    found = out.parent.name == "eval" and out.name.startswith("nocrash-")   # what drive-il report reads
    print(f"wrote {out}" + (f" (drive-il report {out.parent.parent} shows the table)" if found else ""))
    return 0


def run_offline_command(args: argparse.Namespace) -> int:
    """``--protocol offline``: the checkpoint on recorded episodes; print the tables, write the JSON."""
    from ..errors import ConfigError
    from ..rollout import write_json
    from ..training.offline import evaluate_offline, format_offline

    if args.checkpoint is None or len(args.checkpoint) != 1 or args.expert:
        raise ConfigError("--protocol offline: give exactly one --checkpoint RUN (no --expert: the labels are the expert's)")
    if not args.data:
        raise ConfigError("--protocol offline: give --data DIR [DIR ...] (recorded episodes, e.g. drive-il collect output)")
    if args.every < 1:
        raise ConfigError(f"--every: expected an integer >= 1, got {args.every}")
    rep = evaluate_offline(args.checkpoint[0], args.data, every=args.every)
    print(format_offline(rep))
    out = args.out or _run_dir(args) / "eval" / f"offline-{town_stem(args.data[0].resolve().name)}.json"
    write_json(out, rep.to_dict())
    print(f"wrote {out}")
    return 0


def run(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    if args.protocol not in PROTOCOLS:
        raise ConfigError(f"--protocol: expected one of {', '.join(PROTOCOLS)}, got {args.protocol!r}")
    if args.protocol == "offline":
        return run_offline_command(args)
    if args.data is not None:
        raise ConfigError("--data: only with --protocol offline (the closed-loop protocols drive the scenario)")
    if args.protocol == "nocrash":
        return run_nocrash_command(args)
    if args.checkpoint is None:
        raise ConfigError("--checkpoint: required (a run or checkpoint directory); only --protocol nocrash takes --expert")
    if args.expert:
        raise ConfigError("--expert: only with --protocol nocrash (the interventions protocol evaluates a learner)")
    from ..evaluation.evaluate import evaluate
    from ..expert.expert import Expert
    from ..metrics import METRIC_KEYS
    from ..rollout import InterventionConfig, write_json
    from ..scenario import WEATHER_PRESETS, load_scenario

    if args.seeds < 1:
        raise ConfigError(f"--seeds: expected an integer >= 1, got {args.seeds}")
    if args.weather is not None and args.weather not in WEATHER_PRESETS:
        raise ConfigError(f"--weather: unknown preset {args.weather!r} (known: {', '.join(WEATHER_PRESETS)})")
    if not args.intervention_threshold > 0:
        raise ConfigError(f"--intervention-threshold: expected a distance > 0 m, got {args.intervention_threshold}")
    base = load_scenario(_scenario_arg(args))
    scenario = base.test_scenario(args.weather) if args.split == "test" else (
        base.replace(weather=args.weather) if args.weather else base)
    learner = learner_from_args(args, scenario)
    expert = Expert.for_scenario(scenario)
    pool = make_pool_from_args(args)
    sim = None
    try:
        sim = checked_sim(args, scenario)  # an unknown town fails here, before any episode
        if pool is not None:
            sim.close()
            sim = None
        rep = evaluate(sim, scenario, learner=learner, expert=expert, seeds=args.seeds, episodes=args.episodes,
                       interventions=InterventionConfig(threshold=args.intervention_threshold), checkpoint=_policy_name(args),
                       progress=True, pool=pool)
    finally:
        if sim is not None:
            sim.close()
        close_pool(pool)
    print_report(rep)
    if args.trace:
        from ..evaluation.trace import format_trace
        print(format_trace(list(rep.interventions)))
    run_dir = _run_dir(args)
    out = args.out or run_dir / "eval" / (f"{scenario.name}-{town_stem(scenario.town)}-{scenario.weather}"
                                          f"{_ensemble_suffix(args)}.json")
    write_json(out, rep.to_dict())
    print(f"wrote {out}")
    if len(args.checkpoint) > 1 and args.logdir is None:
        return 0  # an ensemble's scalars go to TensorBoard only with --logdir (no run of its own)
    try:
        from torch.utils.tensorboard import SummaryWriter
        with SummaryWriter(str(args.logdir or run_dir / "tb")) as w:
            for k in METRIC_KEYS:
                w.add_scalar(f"eval/{k}", rep.aggregate[k], 0)
    except ImportError:  # pragma: no cover
        pass
    return 0
