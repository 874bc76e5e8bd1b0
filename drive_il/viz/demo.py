"""The overlay's demonstration drive: the embedded world, the real expert, a drifting
learner, through the rollout.

:class:`DemoWorld` is the embedded world (:class:`drive_il.sim.embedded.world.EmbeddedSimulator`:
its bicycle dynamics, camera renderer, traffic and events) on a small three-lane
OpenDRIVE road (:func:`demo_xodr`: a straight, a left curve, a straight; lane 1
oncoming, lanes -1 and -2 ours, the route along -1) or on any town. :func:`run_demo`
drives one episode with :func:`drive_il.rollout.run_episode`: the rule-based expert
labels every step, a :class:`DriftingLearner` (the expert's steering plus a slowly
varying error) drives as the DAgger mixture, the rollout's DAVE-2 takeover
(:class:`drive_il.rollout.InterventionConfig`, Bojarski et al. 2016) hands control to the
expert until the car is re-centred, and a human gate (HG-DAgger, Kelly et al. 2019) --
a :class:`drive_il.viz.human.HumanGate` or a scripted window -- lets a human take over.
There is no second rollout loop and no second intervention rule here.

Used by the overlay's tests, ``drive-il bench overlay`` and the README screenshot.
"""

from __future__ import annotations

import hashlib
import math
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..rollout import Drivers, RolloutSpec, InterventionConfig, run_episode
from ..scenario import CameraConfig, Scenario, TrafficConfig
from ..sim.base import StartPose
from ..types import Control, EpisodeInfo, EpisodeResult, RoadOption, Route, RouteWaypoint, Step, StepRecord

__all__ = ["demo_xodr", "demo_town_path", "DemoWorld", "DriftingLearner", "ScriptedTakeover", "run_demo"]

#: Name of the demo road's town (the stem of its .xodr file).
DEMO_TOWN = "drive_il_demo"


def demo_xodr(*, straight: float = 90.0, arc: float = 130.0, curvature: float = 0.012,
              tail: float = 120.0, lane_width: float = 3.5) -> str:
    """OpenDRIVE text of one road: straight, arc (``curvature`` [1/m], + = left in
    OpenDRIVE's frame), straight; lanes 1 (oncoming), -1 and -2 (ours)."""
    x1, y1, h1 = straight, 0.0, 0.0
    h2 = h1 + curvature * arc
    x2 = x1 + (math.sin(h2) - math.sin(h1)) / curvature
    y2 = y1 - (math.cos(h2) - math.cos(h1)) / curvature
    total = straight + arc + tail

    def lane(i: int, mark: str, colour: str = "standard") -> str:
        return (f'<lane id="{i}" type="driving" level="false"><link/>'
                f'<width sOffset="0" a="{lane_width}" b="0" c="0" d="0"/>'
                f'<roadMark sOffset="0" type="{mark}" color="{colour}" width="0.15"/></lane>')

    return f"""<?xml version="1.0" standalone="yes"?>
<OpenDRIVE>
<header revMajor="1" revMinor="4" name="drive_il_demo" version="1.00"><geoReference><![CDATA[+proj=tmerc +lat_0=0 +lon_0=0 +k=1 +x_0=0 +y_0=0 +datum=WGS84 +units=m +no_defs]]></geoReference></header>
<road name="demo" length="{total:.6f}" id="0" junction="-1">
 <link/>
 <planView>
  <geometry s="0" x="0" y="0" hdg="0" length="{straight:.6f}"><line/></geometry>
  <geometry s="{straight:.6f}" x="{x1:.6f}" y="{y1:.6f}" hdg="{h1:.6f}" length="{arc:.6f}"><arc curvature="{curvature:.6f}"/></geometry>
  <geometry s="{straight + arc:.6f}" x="{x2:.6f}" y="{y2:.6f}" hdg="{h2:.6f}" length="{tail:.6f}"><line/></geometry>
 </planView>
 <elevationProfile/><lateralProfile/>
 <lanes>
  <laneSection s="0">
   <left>{lane(1, "solid")}</left>
   <center><lane id="0" type="driving" level="false"><link/><roadMark sOffset="0" type="solid" color="yellow" width="0.15"/></lane></center>
   <right>{lane(-1, "broken")}{lane(-2, "solid")}</right>
  </laneSection>
 </lanes>
</road>
</OpenDRIVE>
"""


def demo_town_path(directory: str | Path | None = None) -> Path:
    """The demo road as an .xodr file named ``drive_il_demo.xodr`` (the town name), written
    once into ``directory`` (default: a folder under the system's temporary directory,
    named after the text's digest) and reused.

    Raises:
        OSError: the file cannot be written.
    """
    text = demo_xodr()
    if directory is None:
        digest = hashlib.sha1(text.encode("utf-8")).hexdigest()[:12]
        directory = Path(tempfile.gettempdir()) / f"drive_il_demo_{digest}"
    d = Path(directory)
    p = d / f"{DEMO_TOWN}.xodr"
    if not p.exists() or p.read_text() != text:
        d.mkdir(parents=True, exist_ok=True)
        tmp = d / f".{p.name}.{os.getpid()}.tmp"
        tmp.write_text(text)
        os.replace(tmp, p)
    return p


def _lane_polyline(carla_map: Any, lane_id: int, spacing: float = 1.0) -> list[Any]:
    wps = sorted((w for w in carla_map.generate_waypoints(spacing) if w.lane_id == lane_id), key=lambda w: w.s)
    if lane_id > 0:
        wps.reverse()
    return wps


def _route_from_waypoints(wps: Sequence[Any], spacing: float) -> Route:
    pts = []
    for w in wps:
        tr = w.transform
        pts.append(RouteWaypoint(x=tr.location.x, y=tr.location.y, yaw=math.radians(tr.rotation.yaw),
                                 command=RoadOption.LANEFOLLOW, road_id=w.road_id, section_id=w.section_id,
                                 lane_id=w.lane_id, lane_width=w.lane_width, is_junction=w.is_junction))
    return Route(waypoints=tuple(pts), spacing=spacing)


class DemoWorld:
    """The embedded world set up for the overlay's demonstration (see module docstring).

    Args:
        camera: (height, width) of the "center" camera [px].
        dt: control step [s].
        town: None for the demo road (route along lane -1, start at its 5th waypoint at
            6 m/s), or any town name or .xodr path (a random route of 600 m per seed).
        traffic: number of other vehicles (IDM, :mod:`drive_il.sim.embedded.traffic`).
        maps_dir: maps directory for town names.

    Attributes:
        sim: the EmbeddedSimulator.
        scenario: the Scenario it drives.
        map: the town's ``carla.Map``.
        route: the demo road's route (None for another town: one per seed).
        dt: control step [s].

    Raises:
        MapError: an unknown town or a bad .xodr file.
    """

    def __init__(self, *, camera: tuple[int, int] = (66, 200), dt: float = 0.05, town: str | Path | None = None,
                 traffic: int = 2, maps_dir: str | Path | None = None) -> None:
        from ..sim.embedded.world import EmbeddedSimulator

        self.dt = dt
        self.sim = EmbeddedSimulator(maps_dir=maps_dir, render=True)
        cam = CameraConfig(name="center", width=camera[1], height=camera[0], fov_deg=60.0, x=1.4, z=1.5,
                           pitch_deg=-8.0)
        self.scenario = Scenario(name="demo", town=str(demo_town_path() if town is None else town), dt=dt,
                                 episode_seconds=600.0, route_length=600.0, cameras=(cam,),
                                 traffic=TrafficConfig(vehicles=traffic))
        self.route: Route | None = None
        if town is None:
            import carla

            road = carla.Map(DEMO_TOWN, demo_xodr())
            self.route = _route_from_waypoints(_lane_polyline(road, -1, 1.0), 1.0)
        self.reset(0)  # loads the town
        self.map = self.sim.map

    def start(self, seed: int = 0, *, lateral: float = 0.0) -> StartPose | None:
        """The demo road's start: its 5th route waypoint, ``lateral`` [m] plus a seeded
        N(0, 0.05 m) right of the centre, at 6 m/s (None on another town)."""
        if self.route is None:
            return None
        rng = np.random.default_rng(seed)
        w = self.route.waypoints[5]
        off = lateral + float(rng.normal(0.0, 0.05))
        return StartPose(x=w.x - off * math.sin(w.yaw), y=w.y + off * math.cos(w.yaw), yaw=w.yaw, speed=6.0)

    def reset(self, seed: int = 0, *, lateral: float = 0.0) -> Step:
        """Reset the world for an episode (see :meth:`start`) and return its first Step."""
        return self.sim.reset(self.scenario, seed, route=self.route, start=self.start(seed, lateral=lateral))

    def step(self, control: Control) -> Step:
        """Advance the world by one step with ``control`` (outside a rollout, e.g. tests)."""
        return self.sim.step(control)

    def expert(self) -> Any:
        """A fresh rule-based expert for this world's vehicle (default preset)."""
        from ..expert.expert import Expert
        return Expert.for_scenario(self.scenario, preset="default")

    def close(self) -> None:
        self.sim.close()


class DriftingLearner:
    """A stand-in learner (a Driver): the expert's control plus a slowly varying steering
    error ``bias * sin(0.45 t + phase) + N(0, 0.01)`` (t = sim time [s]); phase and noise
    from ``seed``, drawn again at every :meth:`reset`.

    Args:
        expert: its own expert instance (not the labelling one: drivers keep state).
        bias: amplitude of the error [steer units].
        seed: the error's seed.
    """

    name = "learner"

    def __init__(self, expert: Any, *, bias: float = 0.035, seed: int = 0) -> None:
        self.expert = expert
        self.bias = float(bias)
        self.seed = int(seed)
        self._rng = np.random.default_rng(self.seed)
        self._phase = 0.0

    def reset(self, step: Step) -> None:
        self._rng = np.random.default_rng(self.seed)
        self._phase = float(self._rng.uniform(0.0, 2.0 * math.pi))
        self.expert.reset(step)

    def act(self, step: Step) -> Control:
        c = self.expert.act(step)
        t = step.world_state.sim_time
        err = self.bias * math.sin(0.45 * t + self._phase) + 0.01 * float(self._rng.normal())
        return Control.clipped(c.steer + err, c.throttle, c.brake)


class ScriptedTakeover:
    """A scripted human gate (:class:`drive_il.rollout.Gate`): a "human" drives the steps
    whose frame number is in ``steps``, steering like the expert with an ``offset``.

    Args:
        steps: frame numbers (from 0 at reset) the human drives.
        expert: its own expert instance, reset at the first step of each window.
        offset: added to the expert's steer [steer units].
    """

    def __init__(self, steps: range, expert: Any, *, offset: float = -0.02) -> None:
        self.steps = steps
        self.expert = expert
        self.offset = float(offset)
        self._was_active = False

    def active(self, step: Step) -> bool:
        on = step.world_state.frame in self.steps
        if on and not self._was_active:
            self.expert.reset(step)
        self._was_active = on
        return on

    def control(self, step: Step) -> Control:
        c = self.expert.act(step)
        return Control.clipped(c.steer + self.offset, c.throttle, c.brake)


class _Keep:
    """Observer keeping the StepRecords (and calling ``on_record``)."""

    def __init__(self, on_record: Callable[[StepRecord], None] | None) -> None:
        self.records: list[StepRecord] = []
        self.on_record = on_record

    def on_episode_start(self, info: EpisodeInfo, first: Step) -> None:
        self.records = []

    def on_step(self, record: StepRecord) -> None:
        self.records.append(record)
        if self.on_record is not None:
            self.on_record(record)

    def on_episode_end(self, result: EpisodeResult) -> None:
        return None


def run_demo(world: DemoWorld, observers: Sequence[Any], *, steps: int = 200, seed: int = 0,
             threshold: float = 1.0, learner_bias: float = 0.035, beta: float | None = 0.0,
             dagger_round: int | None = 2, gate: Any = None, human_steps: range | None = range(200, 230),
             on_record: Callable[[StepRecord], None] | None = None) -> list[StepRecord]:
    """One demonstration episode through :func:`drive_il.rollout.run_episode`.

    Args:
        world: the demo world.
        observers: rollout observers (overlay, recorder, ...).
        steps: step limit (fewer when the route ends first).
        seed: episode seed (route, traffic, start offset, the learner's error).
        threshold: DAVE-2 takeover threshold |lateral deviation| [m].
        learner_bias: amplitude of the learner's steering error.
        beta: DAgger mixing probability (the expert drives a step with this
            probability); None: the learner drives ("learner" mode). With a gate the
            mode is "learner" and beta is only recorded.
        dagger_round: recorded DAgger round.
        gate: a human gate (:class:`drive_il.viz.human.HumanGate`); while active the
            human drives, flagged as an intervention.
        human_steps: without ``gate``, a :class:`ScriptedTakeover` window of frame
            numbers; None for none.
        on_record: called with each StepRecord.

    Returns:
        The StepRecords of the episode.

    Raises:
        KeyboardInterrupt: an observer asked to quit (observers were told to abort).
    """
    if gate is None and human_steps is not None:
        gate = ScriptedTakeover(human_steps, world.expert())
    mode = "mixture" if (gate is None and beta is not None) else "learner"
    spec = RolloutSpec(driver=mode, beta=beta, interventions=InterventionConfig(threshold=threshold), max_steps=steps,
                       dagger_round=dagger_round)
    drivers = Drivers(expert=world.expert(), learner=DriftingLearner(world.expert(), bias=learner_bias, seed=seed),
                      gate=gate)
    keep = _Keep(on_record)
    run_episode(world.sim, world.scenario, seed, drivers, spec, observers=[keep, *observers], route=world.route,
                start=world.start(seed))
    return keep.records
