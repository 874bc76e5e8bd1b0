"""``drive-il bench town``: what a town costs before its first frame, against driving it.

Training on many procedural towns (``towns = ["procedural:0-499"]``, one drawn per
episode) pays a town's set-up once per episode. For each town named (default three
procedural towns no run has cached) this times, on one core:

* ``first reset``: :meth:`EmbeddedSimulator.reset <drive_il.sim.embedded.world.
  EmbeddedSimulator.reset>` with cold caches (a new process, an empty raster cache in a
  temporary ``$DRIVE_IL_CACHE_DIR``): everything a collection worker does for a town it
  has not seen, the raster's write to the disk cache included;
* its parts, timed again on their own without caches: the OpenDRIVE text (generated for
  ``procedural:<seed>``, read for a file), ``carla.Map`` parsing, the lane polygons
  (:attr:`TownMap.map_geometry <drive_il.maps.towns.TownMap.map_geometry>`), the raster
  painting (:meth:`MapRaster.for_town <drive_il.sim.embedded.raster.MapRaster.for_town>`,
  ``cache=False``) and the roadside objects (:meth:`Scenery.build
  <drive_il.sim.embedded.appearance.Scenery.build>`);
* ``next reset``: a second episode in the same town (everything cached);
* the baseline: driving one episode there, ``--steps`` steps (default 833: the main
  job's 250 m route at 6 m/s and dt 0.05 s) with one 66x200 camera, the recorded-controls
  follower of ``drive-il bench sim`` (the same world, no recording).

The ratio printed is the set-up's share of a one-episode town: first reset / (first
reset + the episode's steps). Machines are shared: the figures move, the share less.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

NAME = "town"
HELP = "a town's cold set-up (text, parse, lane polygons, raster, scenery) vs driving one episode there"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("towns", nargs="*", default=["procedural:880000-880002"],
                   help="towns or procedural ranges (default procedural:880000-880002)")
    p.add_argument("--maps-dir", type=Path, default=None, help="folder of OpenDRIVE towns")
    p.add_argument("--steps", type=int, default=833,
                   help="steps of the baseline episode (default 833: 250 m at 6 m/s, dt 0.05 s)")
    p.add_argument("--no-pin", action="store_true", help="do not pin the process to one CPU")


def _clock():
    t0 = time.perf_counter()
    return lambda: time.perf_counter() - t0


def run(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    if args.steps < 1:
        raise ConfigError(f"--steps: expected an integer >= 1, got {args.steps}")
    from ..maps import expand_towns
    names = [t for spec in args.towns for t in expand_towns(spec)]
    from .sim import _pin
    pinned = "not pinned" if args.no_pin else _pin()
    import cv2
    if not args.no_pin:
        cv2.setNumThreads(1)
    with tempfile.TemporaryDirectory(prefix="drive_il_bench_town_") as cache:
        before = os.environ.get("DRIVE_IL_CACHE_DIR")
        os.environ["DRIVE_IL_CACHE_DIR"] = cache  # cold raster cache, removed afterwards
        try:
            return _run(args, names, pinned)
        finally:
            if before is None:
                os.environ.pop("DRIVE_IL_CACHE_DIR", None)
            else:
                os.environ["DRIVE_IL_CACHE_DIR"] = before


def _run(args: argparse.Namespace, names: list[str], pinned: str) -> int:
    import numpy as np

    from ..maps.towns import load_town, town_text
    from ..scenario import CameraConfig, Scenario
    from ..sim.embedded.appearance import Scenery, appearance_for
    from ..sim.embedded.raster import MapRaster
    from ..sim.embedded.world import EmbeddedSimulator
    from .sim import _follower

    print(f"town bench: {len(names)} town{'' if len(names) == 1 else 's'}, first reset with cold caches, "
          f"baseline {args.steps} steps with one 66x200 camera, {pinned}")
    rows = []
    sim = EmbeddedSimulator(maps_dir=args.maps_dir, render=True)
    try:
        for name in names:
            sc = Scenario(name="bench-town", town=name, weather="ClearNoon", seed=0, route_length=250.0,
                          target_speed=6.0, cameras=(CameraConfig(name="center", width=200, height=66),))
            t = _clock()
            sim.reset(sc, 0)
            first = t()
            t = _clock()
            step = sim.reset(sc, 0)
            again = t()
            st: dict = {}
            controls = []
            for _ in range(args.steps):  # recorded untimed: the baseline has no driver cost
                c = _follower(step, sc.target_speed, st)
                controls.append(c)
                step = sim.step(c)
            sim.reset(sc, 0)
            t = _clock()
            for c in controls:
                sim.step(c)
            drive = t()
            # the parts, each without caches
            t = _clock()
            town_text(name, args.maps_dir)
            text = t()
            t = _clock()
            town = load_town(name, args.maps_dir, cache=None)
            parse = t() - text
            t = _clock()
            geom = town.map_geometry
            polygons = t()
            look = appearance_for(name)
            t = _clock()
            raster = MapRaster.for_town(town, cache=False, appearance=look)
            paint = t()
            scenery = 0.0
            if look is not None and look.has_objects:
                t = _clock()
                Scenery.build(geom, look)
                scenery = t()
            share = first / (first + drive)
            rows.append((first, again, drive, text, parse, polygons, paint, scenery, share))
            print(f"  {name:<18} first reset {first:6.2f} s | text {text:.2f} s, parse {parse:.2f} s, lane polygons "
                  f"{polygons:.2f} s, raster {raster.width}x{raster.height} {paint:.2f} s, scenery {scenery:.2f} s | "
                  f"next reset {again * 1e3:.0f} ms | {args.steps} steps {drive:.2f} s | set-up = "
                  f"{100 * share:.0f} % of a one-episode town")
    finally:
        sim.close()
    if len(rows) > 1:
        m = np.mean(np.array(rows), axis=0)
        print(f"  {'mean':<18} first reset {m[0]:6.2f} s | raster {m[6]:.2f} s, scenery {m[7]:.2f} s | "
              f"{args.steps} steps {m[2]:.2f} s | set-up = {100 * m[8]:.0f} % of a one-episode town")
    return 0
