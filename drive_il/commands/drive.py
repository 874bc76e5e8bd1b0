"""``drive-il drive [SCENARIO] --driver expert|learner|human``: drive episodes and print
a per-episode summary (distance, route completion, |lateral deviation|, collisions,
off-road, lane invasions, steps/s)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from .common import (add_device_args, add_scenario_arg, add_sim_args, check_range, load_scenario_arg, make_sim,
                     resolve_device_arg)


def register(sub) -> None:
    p = sub.add_parser(
        "drive", help="drive a scenario with the expert, a trained policy or by hand",
        description="Drive episodes of a scenario and print a summary per episode.")
    add_scenario_arg(p)
    p.add_argument("--driver", choices=("expert", "learner", "human", "policy"), default="expert",
                   help="who drives (default expert): the expert, the learner (a trained policy, "
                        "--checkpoint; 'policy' is the old spelling) or a human")
    p.add_argument("--checkpoint", type=Path, default=None,
                   help="trained run or checkpoint directory (--driver learner)")
    p.add_argument("--expert", default=None, help="expert preset name in experts/ or a TOML path")
    p.add_argument("--episodes", type=int, default=1, help="number of episodes (default 1)")
    p.add_argument("--seed", type=int, default=None, help="first episode seed (default: the scenario's)")
    p.add_argument("--max-steps", type=int, default=None, help="step limit per episode")
    p.add_argument("--interventions", action="store_true",
                   help="learner: DAVE-2 interventions (the expert takes over past --intervention-threshold)")
    p.add_argument("--intervention-threshold", "--threshold", dest="intervention_threshold", type=float,
                   default=1.0, help="intervention threshold |lateral deviation| [m] (default 1.0)")
    p.add_argument("--save-frames", type=Path, default=None, metavar="DIR", help="write camera PNGs")
    p.add_argument("--save-every", type=int, default=1, help="with --save-frames: every N-th step")
    p.add_argument("--json", type=Path, default=None, metavar="FILE", help="write the summaries as JSON")
    p.add_argument("--record", type=Path, default=None, metavar="DIR", help="record episodes (HDF5) into DIR")
    p.add_argument("--overlay", action="store_true", help="show the live pygame overlay")
    p.add_argument("--record-screens", type=Path, default=None, metavar="DIR",
                   help="save overlay screens as PNG (implies --overlay; works headless)")
    p.add_argument("--gif", type=Path, default=None, metavar="FILE", help="with the overlay: also write a GIF")
    p.add_argument("--keyboard", action="store_true",
                   help="--driver human: keyboard only (ignore joysticks and --calibration)")
    p.add_argument("--calibration", type=Path, default=None,
                   help="--driver human: controls TOML written by drive-il calibrate (joystick/wheel)")
    p.add_argument("--joystick", type=int, default=None, help="--driver human: joystick index")
    add_sim_args(p)
    add_device_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..expert.expert import Expert
    from ..rollout import Drivers, FrameSaver, RolloutSpec, InterventionConfig, format_summary, run_episode, write_json

    scenario = load_scenario_arg(args)
    if args.episodes < 1:
        raise ConfigError(f"--episodes: expected an integer >= 1, got {args.episodes}")
    check_range("--max-steps", args.max_steps, 1)
    check_range("--save-every", args.save_every, 1)
    check_range("--seed", args.seed, 0, 2**31 - 1 - (args.episodes - 1))
    driver = "learner" if args.driver == "policy" else args.driver
    if driver == "learner" and args.checkpoint is None:
        raise ConfigError("--driver learner needs --checkpoint RUN (a directory written by drive-il train)")
    expert = Expert.for_scenario(scenario, preset=args.expert)
    learner = None
    if driver == "learner":
        from ..policies.driver import PolicyDriver
        device = resolve_device_arg(args)
        learner = PolicyDriver.from_checkpoint(args.checkpoint, scenario=scenario,
                                               **({} if device == "cpu" else {"device": device}))
    human = None
    if driver == "human":
        from ..viz.human import HumanDriver
        human = (HumanDriver(keyboard=True) if args.keyboard else
                 HumanDriver(calibration=args.calibration, joystick=args.joystick, keyboard=True))
    spec = RolloutSpec(
        driver=driver, max_steps=args.max_steps,
        interventions=(InterventionConfig(threshold=args.intervention_threshold)
                  if (args.interventions and learner) else None))
    drivers = Drivers(expert=expert, learner=learner, human=human)
    sim = make_sim(args)
    observers = []
    if args.save_frames:
        observers.append(FrameSaver(args.save_frames, every=args.save_every))
    if args.record:
        from ..data.recorder import EpisodeRecorder
        observers.append(EpisodeRecorder(Path(args.record)))
    overlay = None
    try:
        summaries = []
        first_seed = scenario.seed if args.seed is None else args.seed
        for k in range(args.episodes):
            seed = first_seed + k
            obs = list(observers)
            if (args.overlay or args.record_screens) and overlay is None:
                from ..viz.overlay import Overlay
                overlay = Overlay(show=True, record_screens=args.record_screens,
                                  threshold=args.intervention_threshold, simulator=sim, gif=args.gif,
                                  camera=scenario.cameras[0].name,
                                  realtime=(driver != "human" and os.environ.get("SDL_VIDEODRIVER") != "dummy"))
            if overlay is not None:
                obs.append(overlay)
            result = run_episode(sim, scenario, seed, drivers, spec, observers=obs, episode=k)
            print(format_summary(result), flush=True)
            summaries.append({"episode": k, "seed": seed, "town": result.info.town,
                              "termination": result.termination, "path": result.path, **result.summary})
        if args.json:
            write_json(args.json, {"scenario": scenario.name, "driver": driver, "episodes": summaries})
            print(f"wrote {args.json}")
        if args.save_frames:
            print(f"camera frames in {args.save_frames}/")
    finally:
        if overlay is not None and hasattr(overlay, "close"):
            overlay.close()
        sim.close()
    return 0
