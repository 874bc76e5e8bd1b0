"""``drive-il dagger --scenario S --test-scenario T --model M --rounds N --out RUN``:
behaviour cloning (round 0) then DAgger rounds, each evaluated on the test scenario;
resumable (see drive_il.dagger.loop)."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import add_sim_args, make_sim


def register(sub) -> None:
    p = sub.add_parser("dagger", help="behaviour cloning then DAgger rounds, evaluated each round",
                       description="Round 0 = behaviour cloning on expert demonstrations; each DAgger round "
                                   "rolls out the beta-mixture, the expert labels every visited state, the "
                                   "data of all rounds is aggregated and the policy retrained and evaluated. "
                                   "Defaults come from the scenario's [pipeline] table.")
    p.add_argument("--scenario", default=None, help="training scenario (default: scenarios/default.toml)")
    p.add_argument("--test-scenario", default=None,
                   help="test scenario file (default: the training scenario's [test] routes/town)")
    p.add_argument("--model", default=None, help="model preset name in models/ or a TOML path (default dave2)")
    p.add_argument("--rounds", type=int, default=None, help="DAgger rounds after round 0")
    p.add_argument("--out", type=Path, default=None, help="run directory (default runs/<scenario>/dagger)")
    p.add_argument("--bc-episodes", type=int, default=None, help="expert episodes of round 0")
    p.add_argument("--episodes-per-round", type=int, default=None, help="rollouts per DAgger round")
    p.add_argument("--schedule", choices=("constant", "linear", "exponential", "lbc"), default=None,
                   help="beta schedule")
    p.add_argument("--beta", type=float, default=None, help="beta (constant/linear start/exponential base p)")
    p.add_argument("--mixing", choices=("step", "episode"), default=None, help="mix per step or per episode")
    p.add_argument("--mode", choices=("mixture", "gated"), default="mixture",
                   help="mixture (DAgger) or gated (HG-DAgger with the expert as the gate)")
    p.add_argument("--gate-threshold", type=float, default=0.6, help="gated mode: takeover drift [m]")
    p.add_argument("--no-warm-start", action="store_true", help="retrain from scratch each round")
    p.add_argument("--epochs", type=int, default=None,
                   help="training epochs of round 0, matched BC and rounds trained from scratch")
    p.add_argument("--dagger-epochs", type=int, default=None, help="epochs of warm-started DAgger rounds")
    p.add_argument("--eval-seeds", type=int, default=None, help="evaluation seeds per round")
    p.add_argument("--eval-episodes", type=int, default=None, help="episodes per evaluation seed")
    p.add_argument("--threshold", type=float, default=1.0, help="evaluation intervention threshold [m]")
    p.add_argument("--no-bc-matched", action="store_true", help="skip BC with DAgger's number of labels")
    p.add_argument("--seed", type=int, default=None,
                   help="the run's seed: expert episodes (seed + k), DAgger rollouts and training (default: the "
                        "scenario's); the test routes keep the test scenario's seeds. Give seeds >= 1000 apart "
                        "for independent runs")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_sim_args(p)
    p.set_defaults(func=run)


def dagger_config_from(args: argparse.Namespace, scenario):
    """DaggerConfig from the scenario's [pipeline] table with CLI overrides.

    Raises:
        ConfigError: zero rounds, beta outside [0, 1], ...
    """
    from ..dagger.loop import DaggerConfig
    from ..dagger.schedules import BetaSchedule
    from ..errors import ConfigError

    pl = scenario.pipeline
    rounds = pl.dagger_rounds if args.rounds is None else args.rounds
    if rounds < 1:
        raise ConfigError(f"--rounds: expected an integer >= 1 (DAgger rounds after behaviour cloning), got {rounds}")
    beta = pl.beta if args.beta is None else args.beta
    if not 0.0 <= beta <= 1.0:
        raise ConfigError(f"--beta: expected a probability in [0, 1], got {beta}")
    try:
        sched = BetaSchedule(kind=args.schedule or pl.beta_schedule, beta=beta, rounds=rounds)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    for name in ("bc_episodes", "episodes_per_round", "eval_seeds", "eval_episodes", "epochs", "dagger_epochs"):
        v = getattr(args, name, None)
        if v is not None and v < 1:
            raise ConfigError(f"--{name.replace('_', '-')}: expected an integer >= 1, got {v}")
    return DaggerConfig(
        model=args.model or pl.model,
        rounds=rounds,
        bc_episodes=args.bc_episodes or pl.bc_episodes,
        episodes_per_round=args.episodes_per_round or pl.dagger_episodes,
        schedule=sched,
        mixing=args.mixing or pl.mixing,
        mode=args.mode,
        gate_threshold=args.gate_threshold,
        warm_start=(not args.no_warm_start) and pl.warm_start,
        epochs=args.epochs or pl.epochs,
        dagger_epochs=args.dagger_epochs or (None if args.epochs else pl.dagger_epochs),
        eval_seeds=args.eval_seeds or pl.eval_seeds,
        eval_episodes=args.eval_episodes,
        intervention_threshold=args.threshold,
        bc_matched=not args.no_bc_matched,
        seed=scenario.seed,
    )


def run(args: argparse.Namespace) -> int:
    from ..dagger.loop import run_dagger
    from ..factory import make_expert
    from ..scenario import load_scenario

    from ..errors import ConfigError

    scenario = load_scenario(args.scenario)
    test = load_scenario(args.test_scenario) if args.test_scenario else scenario.test_scenario()
    if args.seed is not None:
        if not 0 <= args.seed < 2**30:
            raise ConfigError(f"--seed: expected an integer in [0, 2**30), got {args.seed}")
        scenario = scenario.replace(seed=args.seed)
    cfg = dagger_config_from(args, scenario)
    out = args.out or Path("runs") / scenario.name / "dagger"
    weathers = tuple(dict.fromkeys((test.weather, *scenario.test.weathers, *scenario.test.unseen_weathers)))
    print(f"DAgger run in {out}: {cfg.rounds} rounds after behaviour cloning, model {cfg.model}, "
          f"schedule {cfg.schedule.kind} (beta {cfg.schedule.beta}), mode {cfg.mode}; "
          f"train {scenario.town}, test {test.town} ({', '.join(weathers)})")
    run_dagger(scenario=scenario, test_scenario=test, config=cfg, out_dir=out, make_sim=lambda: make_sim(args),
               make_expert=make_expert, test_weathers=weathers, progress=not args.no_progress)
    print(f"done: {out}  (drive-il report {out}; tensorboard --logdir {out / 'tb'})")
    return 0
