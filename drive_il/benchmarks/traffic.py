"""``drive-il bench traffic``: how queues leave a green light (the NPC model's saturation flow).

The embedded world's NPC car-following (IDM, :mod:`drive_il.sim.embedded.traffic`) sets how
many cars a green light lets through, and so how long a car waits in a town with lights.
This benchmark drives the world with traffic lights and the expert in the loop, no camera,
for ``--seconds`` per seed, and measures at every signalised entry:

* the green phases that start with 4 or more NPCs standing in the controlled lanes within
  50 m of the stop line (a queue);
* in those phases, the NPCs that pass from a controlled lane into the junction during the
  green and yellow (their centre entering the junction), and the times between them from
  the third car on (the saturation headway, the Highway Capacity Manual's definition:
  the start-up lost time of the first cars left out), split into going straight and
  turning (heading change over the junction > 0.5 rad);
* the time from green to the first car.

It prints these with the ratio of the straight-ahead headway to the Highway Capacity
Manual's base saturation headway, 1.9 s per through lane (1,900 passenger cars per hour
of green per lane); turns are slower there too. ``[traffic]`` fields
(``min_gap``, ``time_headway``, ``acceleration``, ``lateral_acceleration``) move the
figures; the defaults were calibrated with this measurement on Town01 (the README's
"Urban driving"). Without the town in the maps folder it prints one line saying so and
exits 0.
"""

from __future__ import annotations

import argparse
import math
import statistics
from collections import defaultdict
from itertools import pairwise

from ..geometry import wrap_angle

NAME = "traffic"
HELP = "queue discharge at green lights: cars per green, saturation headway vs the HCM's 1.9 s"

#: The Highway Capacity Manual's base saturation headway [s] per through lane
#: (1,900 passenger cars per hour of green per lane).
HCM_SATURATION_HEADWAY = 1.9
#: A green phase counts when at least this many NPCs stand in its lanes at its start.
QUEUE = 4
#: Standing: slower than this [m/s]; in the queue: within this distance of the stop line [m].
STANDING_SPEED, QUEUE_REACH = 0.5, 50.0
#: Heading change over the junction [rad] above which a movement is a turn.
TURN_ANGLE = 0.5


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--town", default="Town01", help="town with junctions (default Town01; 'grid' needs no maps)")
    p.add_argument("--maps-dir", default=None, help="folder of OpenDRIVE towns")
    p.add_argument("--density", default="dense", choices=("regular", "dense"),
                   help="NoCrash traffic condition (default dense)")
    p.add_argument("--seconds", type=float, default=200.0, help="simulated seconds per seed (default 200)")
    p.add_argument("--seeds", default="20000,20001", help="comma-separated episode seeds (default 20000,20001)")


def _seeds(text: str) -> list[int]:
    from ..errors import ConfigError
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        seeds = []
    if not seeds:
        raise ConfigError(f"--seeds: expected comma-separated integers, got {text!r}")
    return seeds


def _heading_change(npc) -> float:
    """|heading change| [rad] over the junction the NPC is entering (its path from the
    point before the junction to the first point after it)."""
    i = npc.i
    j = i
    n = len(npc.pj)
    while j < n - 1 and npc.pj[j] != -1:
        j += 1
    return abs(wrap_angle(npc.pyaw[j] - npc.pyaw[max(i - 1, 0)]))


def measure(sim, scenario, seed: int, seconds: float) -> list[tuple[int, float, list[tuple[float, bool]]]]:
    """Drive one episode with the expert and return, per completed green phase of every
    light head, ``(cars queued at green, green start [s], [(time [s], turning), ...])``
    of the NPCs entering the junction from its lanes during that green and yellow."""
    from ..expert.expert import Expert
    from ..types import TrafficLightState

    step = sim.reset(scenario, seed)
    expert = Expert.for_scenario(scenario)
    expert.reset(step)
    lights = step.world_state.traffic_lights
    lane_light = {ln: k for k, lt in enumerate(lights) for ln in lt.lanes}
    green, red = int(TrafficLightState.GREEN), int(TrafficLightState.RED)
    go = (green, int(TrafficLightState.YELLOW))
    prev_state = [int(lt.state) for lt in lights]
    prev_lane: dict[int, tuple[int, int]] = {}
    open_phase: dict[int, tuple[int, float]] = {}
    crossings: dict[int, list[tuple[float, bool]]] = defaultdict(list)
    phases = []

    def queued(k: int) -> int:
        lt = lights[k]
        (x0, y0), (x1, y1) = lt.stop_line
        mx, my = 0.5 * (x0 + x1), 0.5 * (y0 + y1)
        return sum(1 for v in sim.traffic.vehicles if v.plane[v.i] in lt.lanes and v.speed < STANDING_SPEED
                   and math.hypot(v.x - mx, v.y - my) < QUEUE_REACH)

    for t in range(round(seconds / scenario.dt)):
        step = sim.step(expert.act(step))
        now = (t + 1) * scenario.dt
        lights = step.world_state.traffic_lights
        for k, lt in enumerate(lights):
            s = int(lt.state)
            if s == green and prev_state[k] != green:
                open_phase[k] = (queued(k), now)
                crossings[k] = []
            elif s == red and prev_state[k] != red and k in open_phase:
                q, t0 = open_phase.pop(k)
                phases.append((q, t0, crossings.pop(k, [])))
            prev_state[k] = s
        for v in sim.traffic.vehicles:
            lane = v.plane[v.i]
            before = prev_lane.get(v.actor_id)
            prev_lane[v.actor_id] = lane
            if before is None or lane == before or v.pj[v.i] == -1:
                continue
            k = lane_light.get(before)
            if k is not None and k in open_phase and int(lights[k].state) in go:
                crossings[k].append((now, _heading_change(v) > TURN_ANGLE))
    return phases


def run(args: argparse.Namespace) -> int:
    from ..errors import ConfigError, MapError
    from ..maps import load_town
    from ..scenario import LightsConfig, Scenario, TrafficConfig
    from ..sim.embedded.world import EmbeddedSimulator

    if not args.seconds > 0.0:
        raise ConfigError(f"--seconds: expected a positive number, got {args.seconds}")
    seeds = _seeds(args.seeds)
    try:
        load_town(args.town, args.maps_dir)
    except MapError as e:
        print(f"traffic bench: {args.town} is not available ({e}); skipped")
        return 0
    base = Scenario(name="bench_traffic", town=args.town, seed=seeds[0], route_length=400.0,
                    episode_seconds=args.seconds + 10.0,
                    traffic=TrafficConfig(density=args.density, hybrid_radius=70.0, min_spawn_distance=8.0),
                    lights=LightsConfig(enabled=True))
    sim = EmbeddedSimulator(maps_dir=args.maps_dir, render=False)
    phases = []
    try:
        for seed in seeds:
            phases += measure(sim, base, seed, args.seconds)
        n_vehicles = len(sim.traffic.vehicles)
    finally:
        sim.close()
    tr = base.traffic
    print(f"traffic bench: {args.town}, NoCrash {args.density} ({n_vehicles} vehicles at the end), lights on, "
          f"{args.seconds:g} s x {len(seeds)} seed(s), the expert driving; IDM s0 {tr.min_gap:g} m, "
          f"T {tr.time_headway:g} s, a {tr.acceleration:g} m/s^2, {tr.lateral_acceleration:g} m/s^2 in turns")
    sat = [p for p in phases if p[0] >= QUEUE]
    print(f"  green phases: {len(phases)}, {len(sat)} starting with >= {QUEUE} cars queued")
    if not sat:
        print("  no queue formed: nothing to measure (more --seconds, a denser --density)")
        return 0
    cars = statistics.mean(len(c) for _, _, c in sat)
    print(f"  cars into the junction per green + yellow (queue >= {QUEUE}): {cars:.2f}")
    heads = {False: [], True: []}
    for _, _, c in sat:
        for (ta, _), (tb, turning) in pairwise(c[1:]):
            heads[turning].append(tb - ta)
    for turning, label in ((False, "straight"), (True, "turning")):
        h = heads[turning]
        if not h:
            print(f"  saturation headway, {label}: no third car")
            continue
        med = statistics.median(h)
        ratio = f"; {med / HCM_SATURATION_HEADWAY:.2f} x the HCM's {HCM_SATURATION_HEADWAY:g} s" if not turning else ""
        print(f"  saturation headway, {label} (3rd car on): median {med:.2f} s, mean {statistics.mean(h):.2f} s, "
              f"n = {len(h)}{ratio}")
    first = [c[0][0] - t0 for _, t0, c in sat if c]
    if first:
        print(f"  first car into the junction after green: median {statistics.median(first):.2f} s")
    return 0
