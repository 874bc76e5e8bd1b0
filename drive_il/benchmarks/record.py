"""``drive-il bench record``: the cost of recording episodes to disk.

For 66x200 frames with 1 and 3 cameras, through the real :class:`EpisodeRecorder`:

* **recorder alone**: frames/s written when the loop does nothing else (DESIGN.md
  target >= 1,000 frames/s) and the per-step cost [us];
* **drive with vs without recording**: the same loop with a stand-in for the
  simulator's camera work (one ``cv2.remap`` of a 480x640 source per camera, like the
  embedded renderer) run bare and with recording, interleaved; the ratio is the
  acceptance figure (issue 4: >= 0.70).
* ``--sim``: the acceptance figure itself: the expert's drive on the embedded world
  (``drive_il.rollout.run_episode``) with no recorder, the recorder, and the recorder
  in background mode.

Synthetic StepRecords (``drive_il.data.synthetic``); files go to a temporary directory
(``--dir`` to choose its parent: measure on the disk you will record to).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

NAME = "record"
HELP = "frames/s written by the episode recorder; drive speed with vs without recording"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--steps", type=int, default=600, help="steps per measured episode (default 600)")
    p.add_argument("--repeats", type=int, default=5,
                   help="interleaved repeats; the fastest of each is reported (default 5)")
    p.add_argument("--cameras", type=int, nargs="+", default=[1, 3], choices=(1, 2, 3),
                   help="camera counts to measure (default 1 3)")
    p.add_argument("--height", type=int, default=66)
    p.add_argument("--width", type=int, default=200)
    p.add_argument("--dir", type=Path, default=None, help="parent of the temporary directory (default: system temp)")
    p.add_argument("--fsync", action="store_true", help="fsync each finished episode (power-loss safe)")
    p.add_argument("--sim", action="store_true",
                   help="also measure the expert's drive on the embedded world with and without recording")


def _record(rec, ep, records, render=None) -> tuple[float, float]:
    """(wall, main-thread CPU) seconds of one recorded episode."""
    t0, c0 = time.perf_counter(), time.thread_time()
    rec.on_episode_start(ep.info, ep.first)
    for r in records:
        if render is not None:
            render()
        rec.on_step(r)
    rec.on_episode_end(ep.result())
    return time.perf_counter() - t0, time.thread_time() - c0


def _bare(records, render=None) -> tuple[float, float]:
    sink = []
    t0, c0 = time.perf_counter(), time.thread_time()
    for r in records:
        if render is not None:
            render()
        sink.append(r.executed.steer)
    return time.perf_counter() - t0, time.thread_time() - c0


def _make_render(n_cameras: int, h: int, w: int):
    import cv2

    cv2.setNumThreads(1)  # one core, like the simulator's step; thread pools crawl when oversubscribed
    rng = np.random.default_rng(0)
    src = rng.integers(0, 256, size=(480, 640, 3), dtype=np.uint8)
    maps = [(rng.random((h, w), dtype=np.float32) * 639, rng.random((h, w), dtype=np.float32) * 479)
            for _ in range(n_cameras)]

    def render() -> None:
        for mx, my in maps:
            cv2.remap(src, mx, my, cv2.INTER_LINEAR)

    return render


def run(args: argparse.Namespace) -> int:
    from ..data.recorder import EpisodeRecorder
    from ..data.synthetic import synthetic_episode

    n = max(10, args.steps)
    with tempfile.TemporaryDirectory(prefix="drive_il_bench_record_", dir=args.dir) as tmp:
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        print(f"bench record: {args.height}x{args.width} frames, {n} steps per episode, best of {args.repeats}, "
              f"files in {tmp}; {os.cpu_count()} CPUs, load average {load:.1f}")
        for nc in args.cameras:
            ep = synthetic_episode(steps=n, n_cameras=nc, height=args.height, width=args.width, pool=16)
            records = list(ep.iter_records())
            render = _make_render(nc, args.height, args.width)
            sync = EpisodeRecorder(Path(tmp) / f"sync{nc}", fsync=args.fsync, overwrite=True)
            bg = EpisodeRecorder(Path(tmp) / f"bg{nc}", fsync=args.fsync, overwrite=True, background=True)
            _record(bg, ep, records[:20])  # start the writer process outside the timing
            times: dict[str, list[tuple[float, float]]] = {"alone": [], "bare": [], "sync": [], "bg": []}
            try:
                for _ in range(max(1, args.repeats)):
                    times["alone"].append(_record(sync, ep, records))
                    times["bare"].append(_bare(records, render))
                    times["sync"].append(_record(sync, ep, records, render))
                    times["bg"].append(_record(bg, ep, records, render))
            finally:
                bg.close()
            best = {k: (min(w for w, _ in v), min(c for _, c in v)) for k, v in times.items()}
            (t_rec, c_rec), (t_bare, c_bare) = best["alone"], best["bare"]
            fps = n * nc / t_rec
            print(f"  {nc} camera(s): recorder alone {fps:,.0f} frames/s ({1e6 * t_rec / n:.0f} us/step wall, "
                  f"{1e6 * c_rec / n:.0f} us/step CPU, file open+close included; target >= 1,000 frames/s: "
                  f"{'ok' if fps >= 1000 else 'MISSED'})")
            print(f"  {nc} camera(s): drive stand-in ({nc} cv2.remap/step) bare {n / t_bare:,.0f} steps/s")
            for key, label in (("sync", "recording"), ("bg", "recording, background=True")):
                t, c = best[key]
                print(f"  {nc} camera(s):   {label}: {n / t:,.0f} steps/s, ratio {t_bare / t:.2f} (target >= 0.70); "
                      f"+{1e6 * (t - t_bare) / n:.0f} us/step wall, +{1e6 * (c - c_bare) / n:.0f} us/step CPU of "
                      f"the driving thread")
        if args.sim:
            _bench_sim(args, Path(tmp), n)
    return 0


def _bench_sim(args: argparse.Namespace, tmp: Path, n: int) -> None:
    """The acceptance figure: the same expert drive (``drive_il.rollout.run_episode`` on
    the embedded world, default scenario, its camera made a 1- and 3-camera rig) with no
    recorder, the recorder, and the recorder in background mode, interleaved. Skipped
    with a note when the simulator or the expert cannot be built."""
    try:
        from ..data.recorder import EpisodeRecorder
        from ..expert.expert import Expert
        from ..rollout import Drivers, RolloutSpec, run_episode
        from ..scenario import CameraConfig, load_scenario
        from ..sim import make_simulator

        base = load_scenario(None)
        sim = make_simulator("embedded", maps_dir=getattr(args, "maps_dir", None))
    except Exception as e:  # report, do not fail the bench
        print(f"  sim: unavailable ({type(e).__name__}: {e})")
        return
    try:
        c = base.cameras[0]
        rigs = {1: (c,), 3: (c, CameraConfig(name="left", width=c.width, height=c.height, y=-0.5, yaw_deg=-30.0),
                             CameraConfig(name="right", width=c.width, height=c.height, y=0.5, yaw_deg=30.0))}
        for nc in args.cameras:
            if nc not in rigs:
                continue
            sc = base.replace(cameras=rigs[nc])
            drivers = Drivers(expert=Expert.for_scenario(sc))
            bg = EpisodeRecorder(tmp / f"sim_bg{nc}", overwrite=True, background=True)
            rates: dict[str, list[float]] = {"bare": [], "sync": [], "bg": []}
            try:
                run_episode(sim, sc, sc.seed, drivers, RolloutSpec(max_steps=10), observers=[bg])  # start the writer
                for _ in range(max(1, args.repeats)):
                    for mode in ("bare", "sync", "bg"):
                        rec = {"bare": None, "bg": bg,
                               "sync": EpisodeRecorder(tmp / f"sim_sync{nc}", overwrite=True)}[mode]
                        t0 = time.perf_counter()
                        r = run_episode(sim, sc, sc.seed, drivers, RolloutSpec(max_steps=n),
                                        observers=[rec] if rec else [])
                        rates[mode].append(r.steps / (time.perf_counter() - t0))
            finally:
                bg.close()
            b, sy, bk = max(rates["bare"]), max(rates["sync"]), max(rates["bg"])
            print(f"  sim: expert drive, {sc.town}, {nc} camera(s) {c.height}x{c.width}: bare {b:,.0f} steps/s, "
                  f"recording {sy:,.0f} (ratio {sy / b:.2f}), background=True {bk:,.0f} (ratio {bk / b:.2f}); "
                  f"target >= 0.70")
    except Exception as e:
        print(f"  sim: failed ({type(e).__name__}: {e})")
    finally:
        sim.close()
