"""``drive-il collect [SCENARIO] --episodes N --out DIR``: record expert demonstrations
(resumable; Ctrl-C discards only the episode in progress)."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import add_parallel_args, add_scenario_arg, add_sim_args, checked_sim, load_scenario_arg, make_pool_from_args


def register(sub) -> None:
    p = sub.add_parser("collect", help="record expert demonstrations (HDF5 episodes)",
                       description="Drive the expert and record one HDF5 file per episode into DIR. "
                                   "Re-running skips finished episodes (and repairs the manifest); it "
                                   "refuses a DIR recorded with another scenario or camera rig, and a DIR "
                                   "that another process is writing.")
    add_scenario_arg(p)
    p.add_argument("--episodes", type=int, required=True, help="episodes the directory should hold")
    p.add_argument("--out", type=Path, required=True, help="demonstration directory")
    p.add_argument("--first-seed", type=int, default=None, help="seed of episode 0 (default: the scenario's)")
    p.add_argument("--expert", default=None, help="expert preset (default: the scenario's)")
    g = p.add_argument_group("noise injection (default: the scenario's [noise] table)")
    g.add_argument("--noise-share", type=float, default=None,
                   help="share of episodes with perturbed executed steering [0, 1]")
    g.add_argument("--noise-kind", choices=("triangular", "gaussian"), default=None,
                   help="CIL triangular steering spikes or DART Gaussian noise")
    g.add_argument("--noise-magnitude", type=float, default=None, help="steer units")
    g.add_argument("--noise-duration", type=float, default=None, help="spike duration [s]")
    g.add_argument("--noise-throttle", type=float, default=None,
                   help="triangular: peak offset of the longitudinal command throttle - brake, sign drawn per "
                        "spike [0, 1] (0 = steering only; the expert holds a stopped car with its max_brake, "
                        "so a peak above it makes the car creep on)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_sim_args(p)
    add_parallel_args(p)
    p.set_defaults(func=run)


def noise_from_args(args: argparse.Namespace, scenario):
    """The NoiseInjector config: the scenario's [noise] table with CLI overrides, or
    None when the share of noisy episodes is 0."""
    from ..data.noise import NoiseConfig
    cfg = getattr(scenario, "noise", None) or NoiseConfig()
    over = {k: v for k, v in {
        "episode_share": args.noise_share, "kind": args.noise_kind,
        "magnitude": args.noise_magnitude, "duration": args.noise_duration,
        "throttle_magnitude": getattr(args, "noise_throttle", None)}.items() if v is not None}
    if over:
        from ..config import from_dict, to_dict
        cfg = from_dict(NoiseConfig, {**to_dict(cfg), **over}, source="command line (--noise-*)")
    return cfg if cfg.episode_share > 0 else None


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from ..data.noise import NoiseInjector
    from ..errors import ConfigError
    from ..expert.expert import Expert
    from ..rollout import CollectSpec, Drivers, RolloutSpec, collect

    if args.episodes < 1:
        raise ConfigError(f"--episodes: expected an integer >= 1, got {args.episodes}")
    scenario = load_scenario_arg(args)
    expert = Expert.for_scenario(scenario, preset=args.expert)
    ncfg = noise_from_args(args, scenario)
    noise = NoiseInjector(ncfg, np.random.default_rng(scenario.seed)) if ncfg is not None else None
    pool = make_pool_from_args(args)
    sim = None
    try:
        sim = checked_sim(args, scenario)  # an unknown town fails here, before any episode
        if pool is not None:
            sim.close()
            sim = None
        spec = CollectSpec(episodes=args.episodes, first_seed=args.first_seed, rollout=RolloutSpec(noise=noise))
        res = collect(sim, scenario, args.out, spec, Drivers(expert=expert), progress=not args.no_progress,
                      pool=pool)
    except KeyboardInterrupt:
        print(f"interrupted: the episodes in progress were discarded; finished episodes stay in {args.out} "
              f"(re-run the same command to resume)")
        return 130
    finally:
        if sim is not None:
            sim.close()
        if pool is not None:
            pool.close()
    n_done = len(res.results)
    print(f"{args.out}: {n_done} episodes recorded now ({res.frames} frames), {len(res.skipped)} already "
          f"finished, {len(res.failed)} failed" + (f", {len(res.retried)} re-run after a worker died"
                                                    if res.retried else ""))
    for line in res.retried:
        print(f"  re-run: {line}")
    for r in res.results:
        s = r.summary
        print(f"  episode {r.info.episode} seed {r.info.seed}: {r.termination}, {s['distance']:.0f} m, "
              f"completion {s['route_completion']:.0f} %, |lateral deviation| mean {s['lateral_deviation_mean']:.3f} m")
    return 0
