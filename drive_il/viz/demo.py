"""A small self-contained step source for the overlay's tests, bench and screenshot.

:class:`DemoWorld` is a three-lane OpenDRIVE road (a straight, a left curve, a
straight) parsed offline by ``carla.Map``, an ego vehicle with a kinematic bicycle
model, two oncoming vehicles, and a simple pinhole "camera" that paints the road
surface and lane markings. It produces :class:`drive_il.types.Step` values exactly as
a Simulator does, so the overlay is exercised on the types alone. It is *not* the
embedded world (``drive_il.sim.embedded``); it exists so that the visualisation can be
tested and demonstrated on its own.

:func:`run_demo` is a minimal rollout: a pure-pursuit expert labels every step, a
drifting "learner" drives, the expert intervenes when |drift| exceeds the threshold
(DAVE-2's virtual intervention) until the car is re-centred, and an optional
:class:`drive_il.viz.human.HumanGate` (or a scripted window) lets a human take over;
each step is handed to the observers as a :class:`~drive_il.types.StepRecord`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from ..geometry import project_onto_polyline, to_local
from ..types import (
    ActorState,
    Control,
    EpisodeInfo,
    EpisodeResult,
    Observation,
    RoadOption,
    Route,
    RouteWaypoint,
    Step,
    StepRecord,
    VehicleState,
    WorldState,
)

__all__ = ["demo_xodr", "DemoWorld", "run_demo", "pure_pursuit", "map_route", "map_drive_records"]


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


@dataclass(frozen=True, slots=True)
class _Cam:
    width: int = 200
    height: int = 66
    fov_deg: float = 60.0
    x: float = 1.4
    z: float = 1.5
    pitch_deg: float = -8.0


class DemoWorld:
    """A tiny world producing :class:`~drive_il.types.Step` values (see module docstring).

    Args:
        camera: (height, width) of the "center" camera [px].
        dt: step [s].
        target_speed: [m/s] of the oncoming vehicles.
    """

    backend = "demo"

    def __init__(self, *, camera: tuple[int, int] = (66, 200), dt: float = 0.05, target_speed: float = 7.0) -> None:
        import carla

        self.map = carla.Map("drive_il_demo", demo_xodr())
        self.dt = dt
        self.cam = _Cam(width=camera[1], height=camera[0])
        self.route = _route_from_waypoints(_lane_polyline(self.map, -1, 1.0), 1.0)
        self._oncoming = _route_from_waypoints(_lane_polyline(self.map, 1, 1.0), 1.0)
        self._others = _route_from_waypoints(_lane_polyline(self.map, -2, 1.0), 1.0)
        self.target_speed = target_speed
        # lane boundaries for the camera painter: (left, right, markings) of all lanes
        from .lanes import LaneGeometry

        self._lanes = LaneGeometry.from_map(self.map, spacing=2.0, chunk_points=400)
        self.ego: VehicleState | None = None
        self.frame = 0
        self.time = 0.0
        self._actor_s = np.array([60.0, 170.0, 40.0])

    # ------------------------------------------------------------------ simulation
    def reset(self, seed: int = 0, *, lateral: float = 0.0) -> Step:
        """Start at the route's 5th waypoint, ``lateral`` [m] right of the centre, at 6 m/s."""
        rng = np.random.default_rng(seed)
        w = self.route.waypoints[5]
        off = lateral + float(rng.normal(0.0, 0.05))
        x, y = w.x - off * math.sin(w.yaw), w.y + off * math.cos(w.yaw)
        self.ego = VehicleState(x=x, y=y, yaw=w.yaw, speed=6.0)
        self.frame, self.time = 0, 0.0
        self._actor_s = np.array([60.0, 170.0, 40.0]) + rng.uniform(0, 10, 3)
        return self._step(())

    def step(self, control: Control) -> Step:
        """Kinematic bicycle about the rear axle for one ``dt``."""
        e = self.ego
        assert e is not None, "reset() first"
        dt = self.dt
        delta = control.steer * e.max_steer_angle
        acc = 3.0 * control.throttle - 6.0 * control.brake - 0.05 * e.speed
        v = max(0.0, e.speed + acc * dt)
        rx, ry = e.rear_axle()
        yaw_rate = v * math.tan(delta) / e.wheelbase
        yaw = e.yaw + yaw_rate * dt
        rx += v * math.cos(yaw) * dt
        ry += v * math.sin(yaw) * dt
        h = 0.5 * e.wheelbase
        self.ego = VehicleState(x=rx + h * math.cos(yaw), y=ry + h * math.sin(yaw), yaw=yaw, speed=v,
                                steer_angle=delta, yaw_rate=yaw_rate, acceleration=acc)
        self._actor_s += self.target_speed * dt
        self.frame += 1
        self.time += dt
        return self._step(())

    def _actors(self) -> tuple[ActorState, ...]:
        out = []
        for i, (route, s) in enumerate(((self._oncoming, self._actor_s[0]), (self._oncoming, self._actor_s[1]),
                                        (self._others, self._actor_s[2]))):
            k = int(s % (len(route) - 1))
            w = route.waypoints[k]
            out.append(ActorState(actor_id=i + 1, x=w.x, y=w.y, yaw=w.yaw, speed=self.target_speed,
                                  color=((170, 40, 40), (40, 90, 170), (200, 170, 40))[i]))
        return tuple(out)

    def _step(self, events: tuple) -> Step:
        e = self.ego
        assert e is not None
        actors = self._actors()
        ws = WorldState(ego=e, actors=actors, route=self.route, frame=self.frame, sim_time=self.time,
                        dt=self.dt, town="drive_il_demo", weather="ClearNoon")
        obs = Observation(frames={"center": self.render_camera(e, actors)}, speed=e.speed,
                          command=RoadOption.LANEFOLLOW, frame=self.frame, sim_time=self.time)
        return Step(observation=obs, world_state=ws, events=events)

    # ------------------------------------------------------------------ camera
    def render_camera(self, ego: VehicleState, actors: Sequence[ActorState] = ()) -> np.ndarray:
        """A pinhole view of the road from the "center" mount: (H, W, 3) uint8 RGB.

        Ground points are taken into the camera frame (mount ``x``, ``z``, ``pitch``) and
        projected with focal length ``W / (2 tan(fov / 2))``.
        """
        c = self.cam
        W, H = c.width, c.height
        img = np.empty((H, W, 3), np.uint8)
        f = W / (2.0 * math.tan(math.radians(c.fov_deg) / 2.0))
        p = math.radians(c.pitch_deg)
        horizon = int(round(H / 2 + f * math.tan(p)))
        horizon = min(max(horizon, 0), H)
        img[:horizon] = (150, 190, 235)
        img[horizon:] = (70, 110, 60)

        def project(xy: np.ndarray, z: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
            dx, dy = xy[:, 0] - ego.x, xy[:, 1] - ego.y
            cy_, sy_ = math.cos(ego.yaw), math.sin(ego.yaw)
            fwd = dx * cy_ + dy * sy_ - c.x
            right = -dx * sy_ + dy * cy_
            up = z - c.z
            depth = fwd * math.cos(p) + up * math.sin(p)
            upc = -fwd * math.sin(p) + up * math.cos(p)
            ok = depth > 0.8
            d = np.where(ok, depth, 1.0)
            u = W / 2.0 + f * right / d
            v = H / 2.0 - f * upc / d
            return np.column_stack((u, v)), ok

        def fixed(pts: np.ndarray) -> np.ndarray:
            return np.round(np.clip(pts, -4 * W, 4 * W) * 8).astype(np.int32)

        near = self._lanes.near(ego.x, ego.y, 80.0)
        for i in near:
            ch = self._lanes.chunks[i]
            d2 = (ch.centre[:, 0] - ego.x) ** 2 + (ch.centre[:, 1] - ego.y) ** 2
            keep = d2 < 70.0 ** 2
            if keep.sum() < 2:
                continue
            lp, lok = project(ch.left[keep])
            rp, rok = project(ch.right[keep])
            ok = lok & rok
            if ok.sum() < 2:
                continue
            poly = np.vstack((lp[ok], rp[ok][::-1]))
            cv2.fillPoly(img, [fixed(poly)], (95, 95, 100), lineType=cv2.LINE_AA, shift=3)
            for pts, kind, col in ((lp[ok], ch.left_marking, ch.left_color), (rp[ok], ch.right_marking, ch.right_color)):
                if kind in ("NONE", ""):
                    continue
                colour = (235, 200, 40) if col == "Yellow" else (235, 235, 235)
                if kind.startswith("Broken"):
                    for a in range(0, len(pts) - 1, 4):
                        cv2.polylines(img, [fixed(pts[a:a + 2])], False, colour, 1, cv2.LINE_AA, shift=3)
                else:
                    cv2.polylines(img, [fixed(pts)], False, colour, 1, cv2.LINE_AA, shift=3)
        # other vehicles as boxes (far first)
        order = sorted(actors, key=lambda a: -((a.x - ego.x) ** 2 + (a.y - ego.y) ** 2))
        for a in order:
            fwd, _ = to_local(a.x, a.y, ego.x, ego.y, ego.yaw)
            if fwd < 3.0 or fwd > 70.0:
                continue
            ca, sa = math.cos(a.yaw), math.sin(a.yaw)
            corners = []
            for lx, ly in ((a.length / 2, -a.width / 2), (a.length / 2, a.width / 2),
                           (-a.length / 2, a.width / 2), (-a.length / 2, -a.width / 2)):
                corners.append((a.x + lx * ca - ly * sa, a.y + lx * sa + ly * ca))
            base = np.array(corners)
            b, okb = project(base, 0.0)
            t, okt = project(base, a.height)
            if not (okb.all() and okt.all()):
                continue
            pts = np.vstack((b, t))
            hull = cv2.convexHull(fixed(pts))
            cv2.fillConvexPoly(img, hull, a.color, lineType=cv2.LINE_AA, shift=3)
        return img


def pure_pursuit(ego: VehicleState, route: Route, *, lookahead: float | None = None,
                 hint: int | None = None) -> tuple[float, int]:
    """Pure-pursuit steering towards the route point ``lookahead`` [m] ahead of the
    projection (Coulter 1992): delta = atan(2 L sin(alpha) / Ld), steer = delta / max.

    Returns:
        (steer in [-1, 1], projection segment index).
    """
    rx, ry = ego.rear_axle()
    proj = project_onto_polyline(route.xy, route.s, rx, ry, ego.yaw, hint=hint)
    ld = lookahead if lookahead is not None else max(5.0, 0.9 * abs(ego.speed))
    target_s = min(proj.s + ld, route.length)
    k = int(np.searchsorted(route.s, target_s))
    k = min(k, len(route) - 1)
    tx, ty = route.xy[k]
    fwd, right = to_local(float(tx), float(ty), rx, ry, ego.yaw)
    alpha = math.atan2(right, max(fwd, 1e-3))
    dist = max(math.hypot(fwd, right), 1e-3)
    delta = math.atan2(2.0 * ego.wheelbase * math.sin(alpha), dist)
    return float(np.clip(delta / ego.max_steer_angle, -1.0, 1.0)), proj.index


def run_demo(world: DemoWorld, observers: Sequence[Any], *, steps: int = 200, seed: int = 0,
             threshold: float = 1.0, learner_bias: float = 0.035, beta: float | None = 0.0,
             dagger_round: int | None = 2, gate: Any = None,
             human_steps: range | None = range(200, 230),
             on_record: Callable[[StepRecord], None] | None = None) -> list[StepRecord]:
    """A minimal rollout over :class:`DemoWorld` (see module docstring).

    Args:
        world: the demo world.
        observers: objects with ``on_episode_start``, ``on_step``, ``on_episode_end``.
        steps: control steps.
        seed: reset seed (learner noise too).
        threshold: |drift| [m] that triggers an expert intervention.
        learner_bias: amplitude of the learner's slowly varying steering error.
        beta, dagger_round: recorded as DAgger fields.
        gate: a :class:`drive_il.viz.human.HumanGate`; when ``gate.active(step)`` the
            human's ``gate.control(step)`` is executed, ``driver="human"``, flagged.
        human_steps: a scripted takeover window (no gate needed) driven by the expert's
            control plus a small offset, recorded as ``driver="human"``; None for none.
        on_record: called with each StepRecord.

    Returns:
        The StepRecords.
    """
    rng = np.random.default_rng(seed)
    step = world.reset(seed)
    info = EpisodeInfo(scenario="demo", town=step.world_state.town, seed=seed, backend="demo",
                       dt=world.dt, route=world.route, driver="mixture" if gate is None else "learner",
                       dagger_round=dagger_round, beta=beta,
                       cameras=({"name": "center", "width": world.cam.width, "height": world.cam.height},))
    for o in observers:
        o.on_episode_start(info, step)
    records: list[StepRecord] = []
    hint = None
    intervening = False
    phase = rng.uniform(0, 2 * math.pi)
    termination = "timeout"
    try:
        for i in range(steps):
            ego = step.world_state.ego
            steer_e, hint = pure_pursuit(ego, world.route, hint=hint)
            speed_err = 8.0 - ego.speed
            thr, brk = (min(1.0, 0.5 * speed_err), 0.0) if speed_err > 0 else (0.0, min(1.0, -0.5 * speed_err))
            expert = Control.clipped(steer_e, thr, brk)
            t = step.world_state.sim_time
            learner = Control.clipped(steer_e + learner_bias * math.sin(0.45 * t + phase) + 0.01 * rng.normal(),
                                      thr, brk)
            proj = project_onto_polyline(world.route.xy, world.route.s, ego.x, ego.y, ego.yaw, hint=hint)
            drift = proj.lateral
            if intervening and abs(drift) < 0.25:
                intervening = False
            elif not intervening and abs(drift) > threshold:
                intervening = True
            human = False
            if gate is not None and gate.active(step):
                executed, driver, human = gate.control(step), "human", True
            elif human_steps is not None and i in human_steps:
                executed, driver, human = Control.clipped(steer_e - 0.02, thr, brk), "human", True
            elif intervening:
                executed, driver = expert, "expert"
            else:
                executed, driver = learner, "learner"
            k0 = int(np.searchsorted(world.route.s, proj.s))
            k1 = int(np.searchsorted(world.route.s, proj.s + 25.0))
            path = world.route.xy[k0:k1 + 1]
            nxt = world.step(executed)
            rec = StepRecord(step=step, executed=executed, expert=expert, learner=learner, driver=driver,
                             intervention=(intervening and driver == "expert") or human, noise=False,
                             lateral_deviation=drift, heading_error=proj.heading_error, route_progress=proj.s,
                             events=nxt.events, expert_path=path if len(path) >= 2 else None, beta=beta,
                             dagger_round=dagger_round)
            records.append(rec)
            if on_record is not None:
                on_record(rec)
            for o in observers:
                o.on_step(rec)
            step = nxt
            if proj.s >= world.route.length - 2.0:
                termination = "route_completed"
                break
    except KeyboardInterrupt:
        termination = "interrupted"
        raise
    finally:
        result = EpisodeResult(info=info, termination=termination, steps=len(records))
        for o in observers:
            o.on_episode_end(result)
    return records


def map_route(carla_map: Any, *, length: float, seed: int = 0, spacing: float = 1.0) -> Route:
    """A route of about ``length`` [m] along the lanes of ``carla_map``: from a
    seed-chosen driving waypoint, follow ``Waypoint.next(spacing)`` taking a
    seed-chosen branch at forks.

    Raises:
        ValueError: the map has no driving waypoints.
    """
    rng = np.random.default_rng(seed)
    wps = carla_map.generate_waypoints(2.0)
    if not wps:
        raise ValueError("map_route: the map has no driving waypoints")
    w = wps[int(rng.integers(len(wps)))]
    out = [w]
    while len(out) * spacing < length:
        nxt = w.next(spacing)
        if not nxt:
            break
        w = nxt[int(rng.integers(len(nxt)))]
        out.append(w)
    if len(out) < 2:
        out.append(out[0].next(0.5)[0] if out[0].next(0.5) else out[0])
    return _route_from_waypoints(out, spacing)


def map_drive_records(carla_map: Any, *, steps: int, camera: tuple[int, int] = (66, 200), seed: int = 0,
                      dt: float = 0.05, speed: float = 8.0, drift_amplitude: float = 1.3,
                      threshold: float = 1.0) -> list[StepRecord]:
    """StepRecords of an ego gliding along a route of ``carla_map`` with a sinusoidal
    lateral deviation (amplitude [m]); the expert "intervenes" above ``threshold``.
    The camera frame is a fixed sky/ground image (for benchmarks and tests that need a
    real town's lane density rather than a picture)."""
    route = map_route(carla_map, length=steps * speed * dt + 40.0, seed=seed)
    frame = np.empty((camera[0], camera[1], 3), np.uint8)
    frame[: camera[0] // 2] = (150, 190, 235)
    frame[camera[0] // 2:] = (90, 90, 95)
    records = []
    town = str(getattr(carla_map, "name", "map"))
    for i in range(steps):
        t = i * dt
        s = min(speed * t, route.length - 1e-6)
        k = min(int(np.searchsorted(route.s, s, side="right")) - 1, len(route) - 2)
        w = route.waypoints[k]
        off = drift_amplitude * math.sin(0.4 * t)
        ego = VehicleState(x=w.x - off * math.sin(w.yaw), y=w.y + off * math.cos(w.yaw), yaw=w.yaw, speed=speed)
        ws = WorldState(ego=ego, route=route, frame=i, sim_time=t, dt=dt, town=town)
        obs = Observation(frames={"center": frame}, speed=speed, frame=i, sim_time=t)
        expert = Control.clipped(-0.1 * off, 0.4, 0.0)
        learner = Control.clipped(0.05 * math.cos(0.4 * t), 0.4, 0.0)
        interv = abs(off) > threshold
        k1 = int(np.searchsorted(route.s, s + 25.0))
        records.append(StepRecord(step=Step(observation=obs, world_state=ws), executed=expert if interv else learner,
                                  expert=expert, learner=learner, driver="expert" if interv else "learner",
                                  intervention=interv, lateral_deviation=off, route_progress=s,
                                  expert_path=route.xy[k:k1 + 1] if k1 > k else None))
    return records
