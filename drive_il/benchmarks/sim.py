"""``drive-il bench sim``: embedded-world steps per second.

Configurations, each on the same town, route and seed:

* ``physics``: ego dynamics + events + route command, no camera (``render=False``);
* ``1 camera 66x200``: physics + one 66x200 camera + events (DAVE-2's input size);
* ``3 cameras 66x200``: left/centre/right cameras (yaw -30/0/+30 deg, as CIL's rig);
* ``1 camera 600x800``: one 800x600 camera.

``--urban`` (issue 19): NoCrash's dense traffic on Town01 instead -- ``[traffic] density =
"dense"`` (100 vehicles and 250 pedestrians, :func:`drive_il.sim.density.traffic_counts`)
and ``[lights] enabled = true`` -- timed for ``physics`` and ``1 camera 66x200`` (the
camera draws the vehicles, walkers, traffic lights and stop lines in view); target
>= 1,000 steps/s with the camera on one core. ``--hybrid-radius R`` moves NPCs beyond R
metres of the ego every 4th step (``[traffic] hybrid_radius``). Without Town01 in the maps folder it
prints one line saying so and exits 0.

Each camera configuration is compared with a bare minimal render of the same frame
size measured in the same run on the same raster: one ``cv2.warpPerspective`` (a remap) of the map raster
per frame (:func:`drive_il.benchmarks.render.bare_remap_baseline`). The ratio is
``n bare frames' time / one simulator step's time`` for ``n`` cameras (1.0: a step
costs as much as bare warps of its frames; the renderer adds shading, haze, sky and
vehicles, the world adds physics, traffic and events, but picks pyramid levels
that a bare level-0 warp does not). Targets (issue 2, one core):
>= 2,000 steps/s with one 66x200 camera, >= 800 with three, >= 60 at 800x600; with
``--driver expert`` (the rule-based expert's ``act`` in the loop, issue 3) >= 1,000
steps/s with one 66x200 camera.

Driving: with ``--driver none`` the controls are recorded once from a tiny pure-pursuit
follower on the route (untimed) and replayed in every timed run -- the world is
deterministic, so each configuration drives the same trajectory and the loop contains
no driver cost. With ``--driver expert`` the expert acts at every timed step.

Timing: steps are timed in chunks of 50, each followed by a chunk of bare renders (50 x
the number of cameras), so that both see the same load; each timed chunk follows 5
untimed calls of the same loop (the bare warp of the full-resolution raster evicts the
caches the simulator uses); rates come from the median chunk (robust to other
processes on a shared machine). The process pins itself to one CPU
(``os.sched_setaffinity``) and OpenCV to one thread unless ``--no-pin``; for the
reported figures also run it under ``taskset -c 0``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from pathlib import Path

NAME = "sim"
HELP = "embedded world steps/s (physics, cameras, events) vs a bare cv2.remap of the same frame size"

_CHUNK = 50
#: Untimed calls before each timed chunk when two loops are interleaved.
_WARM = 5


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--town", default=None,
                   help="town (generated or in --maps-dir; default circuit, with --urban Town01)")
    p.add_argument("--maps-dir", type=Path, default=None, help="folder of OpenDRIVE towns")
    p.add_argument("--steps", type=int, default=1000, help="timed steps per configuration (default 1000)")
    p.add_argument("--driver", choices=("none", "expert"), default="none",
                   help="none: replay recorded controls; expert: the rule-based expert acts in the loop")
    p.add_argument("--seed", type=int, default=0, help="episode seed (default 0)")
    p.add_argument("--traffic", type=int, default=0, help="NPC vehicles (default 0)")
    p.add_argument("--weather", default="ClearNoon", help="weather preset (default ClearNoon)")
    p.add_argument("--no-pin", action="store_true", help="do not pin the process to one CPU")
    p.add_argument("--hybrid-radius", type=float, default=0.0,
                   help="NPCs farther than this [m] from the ego move every 4th step (CARLA TM's hybrid "
                        "physics mode; [traffic] hybrid_radius); default 0 = off")
    p.add_argument("--urban", action="store_true",
                   help="NoCrash dense traffic (100 vehicles, 250 pedestrians on Town01) with traffic lights; "
                        "physics and one 66x200 camera")


def _pin() -> str:
    if not hasattr(os, "sched_setaffinity"):  # pragma: no cover
        return "not pinned"
    try:
        cpu = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
        return f"pinned to cpu {cpu}"
    except OSError:  # pragma: no cover
        return "not pinned"


def _follower(step, target_speed: float, state: dict):
    """A tiny pure-pursuit route follower (records the replayed controls)."""
    from ..control import pure_pursuit_steer
    from ..geometry import project_onto_polyline
    from ..types import Control
    ws = step.world_state
    ego, route = ws.ego, ws.route
    rx, ry = ego.rear_axle()
    p = project_onto_polyline(route.xy, route.s, rx, ry, hint=state.get("hint"))
    state["hint"] = p.index
    ld = 4.0 + 0.6 * max(ego.speed, 0.0)
    j = min(int(route.s.searchsorted(p.s + ld)), len(route) - 1)
    gx, gy = route.xy[j]
    steer = pure_pursuit_steer(rx, ry, ego.yaw, float(gx), float(gy), ego.wheelbase,
                               ego.max_steer_angle)
    dv = target_speed - ego.speed
    return Control.clipped(steer, throttle=0.4 * dv,
                           brake=-0.3 * dv if dv < -0.5 else 0.0)


def _chunk_time(fn, n: int) -> float:
    """Seconds per call of ``fn`` over ``n`` calls."""
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n


def _timed(fn, steps: int, baseline=None, per_step: int = 1) -> tuple[float, float | None]:
    """Median-chunk rates [1/s] of ``fn`` (``steps`` calls) and, when given, of
    ``baseline`` (``per_step`` calls per step of ``fn``), their chunks interleaved so
    that both see the same machine load."""
    import numpy as np
    a, b = [], []
    done = 0
    while done < steps:
        n = min(_CHUNK, steps - done)
        if baseline is not None:  # untimed calls first: caches warm again after a switch
            _chunk_time(fn, _WARM)
        a.append(_chunk_time(fn, n))
        if baseline is not None:
            _chunk_time(baseline, _WARM * per_step)
            b.append(_chunk_time(baseline, n * per_step))
        done += n
    return 1.0 / float(np.median(a)), (1.0 / float(np.median(b)) if b else None)


def run(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    if args.steps < _CHUNK:
        raise ConfigError(f"--steps: at least {_CHUNK} steps, got {args.steps}")
    pinned = "not pinned" if args.no_pin else _pin()
    import cv2
    if not args.no_pin:
        cv2.setNumThreads(1)
    from ..errors import MapError
    from ..scenario import CameraConfig, LightsConfig, Scenario, TrafficConfig
    from ..sim.embedded.world import EmbeddedSimulator

    urban = bool(getattr(args, "urban", False))
    town = args.town or ("Town01" if urban else "circuit")
    if urban:
        from ..maps import load_town
        try:
            load_town(town, args.maps_dir)
        except MapError as e:
            print(f"sim bench --urban: {town} is not available ({e}); skipped")
            return 0
    steps = int(args.steps)
    target = 8.0
    dt = 0.05
    hybrid = float(getattr(args, "hybrid_radius", 0.0) or 0.0)
    traffic = (TrafficConfig(density="dense", hybrid_radius=hybrid) if urban
               else TrafficConfig(vehicles=args.traffic, hybrid_radius=hybrid))
    base = Scenario(name="bench", town=town, weather=args.weather, seed=args.seed,
                    route_length=max(100.0, (steps * 1.2 + 200) * dt * target * 1.2),
                    target_speed=target, traffic=traffic, lights=LightsConfig(enabled=urban))
    cam = CameraConfig(name="center", width=200, height=66)
    rigs = [
        ("physics (no camera)", None, (cam,)),
        ("1 camera 66x200", (66, 200, 1), (cam,)),
        ("3 cameras 66x200", (66, 200, 3), (
            dataclasses.replace(cam, name="left", yaw_deg=-30.0), cam,
            dataclasses.replace(cam, name="right", yaw_deg=30.0))),
        ("1 camera 600x800", (600, 800, 1), (CameraConfig(name="center", width=800, height=600, fov_deg=90.0),)),
    ]
    if urban:
        rigs = rigs[:2]
    sim = EmbeddedSimulator(maps_dir=args.maps_dir, render=False)
    # record the controls once (untimed)
    step = sim.reset(base, args.seed)
    state: dict = {}
    controls = []
    for _ in range(steps + (steps // _CHUNK + 1) * _WARM + 20):
        c = _follower(step, target, state)
        controls.append(c)
        step = sim.step(c)
    expert = None
    if args.driver == "expert":
        from ..expert.config import load_expert_config
        from ..expert.expert import Expert
        expert = Expert(config=load_expert_config(base.expert), vehicle=base.vehicle)

    if urban:
        n_walkers = sim.walkers.count if getattr(sim, "walkers", None) is not None else 0
        what = (f"NoCrash dense: {len(sim.traffic.vehicles)} vehicles, {n_walkers} walkers, "
                f"{len(getattr(sim, '_light_states', ()))} traffic lights")
    else:
        what = f"traffic {args.traffic}"
    if hybrid > 0:
        what += f", hybrid mode beyond {hybrid:g} m"
    print(f"sim bench: town {town}, {steps} steps per configuration, dt {dt} s, "
          f"driver {args.driver}, {what}, {pinned}")
    for label, size, rig in rigs:
        sim.render = size is not None
        sc = base.replace(cameras=rig)
        step = sim.reset(sc, args.seed)
        if expert is not None:
            expert.reset(step)
        for _ in range(3):  # warm caches
            sim.step(controls[0])
        step = sim.reset(sc, args.seed)
        if expert is not None:
            expert.reset(step)
        it = iter(controls)
        holder = [step]

        if expert is None:
            def one(it=it) -> None:
                sim.step(next(it))
        else:
            def one(holder=holder) -> None:
                holder[0] = sim.step(expert.act(holder[0]))
        if size is None:
            rate, _ = _timed(one, steps)
            print(f"{label:>22}: {rate:9.0f} steps/s ({1e6 / rate:7.1f} us/step)")
            continue
        h, w, n = size
        from .render import bare_remap_baseline
        bare_fn = bare_remap_baseline(h, w, sim.raster)
        for _ in range(5):
            bare_fn()
        rate, bare = _timed(one, steps, bare_fn, n)
        ratio = (n / bare) * rate  # (n bare frames' time) / (one step's time)
        print(f"{label:>22}: {rate:9.0f} steps/s ({1e6 / rate:7.1f} us/step); bare remap {h}x{w}: "
              f"{bare:8.0f} frames/s ({1e6 / bare:6.1f} us/frame); ratio {ratio:4.2f} "
              f"(= {n} bare frame{'s' if n > 1 else ''} / one step)")
    sim.close()
    return 0
