"""Synthetic episodes for tests and benchmarks (no simulator needed).

Builds :class:`~drive_il.types.EpisodeInfo`, :class:`~drive_il.types.Step` and
:class:`~drive_il.types.StepRecord` objects directly: a car driving along +x at a
constant speed with random, smooth expert steering labels (target-speed labels: 8 m/s,
0 m/s at steps 50-59 of every 60), and camera frames drawn
from a small pool of random images (frame ``t`` of a camera is ``pool[t % len(pool)]``,
so a reader can check what it gets back).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from ..types import (Control, EpisodeInfo, EpisodeResult, Event, EventKind, Observation,
                     RoadOption, Route, RouteWaypoint, Step, StepRecord, VehicleState,
                     WorldState)

__all__ = ["synthetic_rig", "SyntheticEpisode", "synthetic_episode", "write_synthetic_episodes"]


def synthetic_rig(n_cameras: int = 1, *, height: int = 66, width: int = 200,
                  side_offset: float = 0.5, side_yaw_deg: float = 30.0) -> tuple[dict, ...]:
    """A camera rig as EpisodeInfo wants it: "center", then "left" and "right" shifted
    by -/+ ``side_offset`` [m] and yawed by -/+ ``side_yaw_deg`` (CIL's +-30 deg)."""
    base = dict(width=width, height=height, fov_deg=60.0, x=1.4, z=1.5, pitch_deg=-8.0)
    rig = [dict(name="center", y=0.0, yaw_deg=0.0, **base),
           dict(name="left", y=-side_offset, yaw_deg=-side_yaw_deg, **base),
           dict(name="right", y=side_offset, yaw_deg=side_yaw_deg, **base)]
    if not 1 <= n_cameras <= 3:
        raise ValueError(f"n_cameras must be 1, 2 or 3, got {n_cameras}")
    return tuple(rig[:n_cameras])


@dataclass
class SyntheticEpisode:
    """A synthetic episode: ``info``, the ``first`` Step, the records and the result.

    Attributes:
        info: the EpisodeInfo.
        first: the first Step (what ``Simulator.reset`` would return).
        records: the StepRecords, built lazily by :meth:`iter_records`.
        pools: camera name -> (P, H, W, 3) uint8 frame pool.
        steps: number of records.
    """

    info: EpisodeInfo
    first: Step
    pools: dict[str, np.ndarray]
    steps: int
    steer: np.ndarray
    rng_seed: int
    noise_from: int = -1
    learner: bool = False

    def frame(self, camera: str, t: int) -> np.ndarray:
        p = self.pools[camera]
        return p[t % len(p)]

    def iter_records(self) -> Iterator[StepRecord]:
        """The StepRecords, one per step (cheap to build; frames are shared views)."""
        dt = self.info.dt
        speed = 8.0
        cams = list(self.pools)
        rng = np.random.default_rng(self.rng_seed + 1)
        lat = np.cumsum(rng.normal(0.0, 0.02, self.steps))
        for t in range(self.steps):
            s = float(self.steer[t])
            frames = {c: self.frame(c, t) for c in cams}
            ego = VehicleState(x=speed * dt * t, y=float(lat[t]), yaw=0.01 * s, speed=speed, z=0.0)
            obs = Observation(frames=frames, speed=speed,
                              command=RoadOption.LEFT if t % 50 < 10 else RoadOption.LANEFOLLOW,
                              frame=1000 + t, sim_time=t * dt)
            ws = WorldState(ego=ego, frame=1000 + t, sim_time=t * dt, dt=dt,
                            town=self.info.town, weather=self.info.weather)
            noisy = 0 <= self.noise_from <= t
            expert = Control(steer=s, throttle=0.5, brake=0.0)
            executed = Control.clipped(s + (0.2 if noisy else 0.0), 0.5, 0.0)
            learner = Control(steer=-s, throttle=0.4, brake=0.0) if self.learner else None
            events: tuple[Event, ...] = ()
            if t % 97 == 5:
                events = (Event(kind=EventKind.LANE_INVASION, frame=1000 + t, sim_time=t * dt),)
            yield StepRecord(
                step=Step(observation=obs, world_state=ws), executed=executed, expert=expert,
                learner=learner, driver="learner" if (self.learner and t % 2) else "expert",
                intervention=(t % 40 == 0), noise=noisy, lateral_deviation=float(lat[t]),
                heading_error=0.01 * s, route_progress=speed * dt * t, events=events,
                beta=self.info.beta, dagger_round=self.info.dagger_round,
                expert_target_speed=0.0 if t % 60 >= 50 else speed)

    def result(self, termination: str = "route_completed") -> EpisodeResult:
        return EpisodeResult(info=self.info, termination=termination, steps=self.steps,
                             summary={"distance": 8.0 * self.info.dt * max(self.steps - 1, 0),
                                      "lateral_deviation_mean": 0.1})


def synthetic_episode(*, episode: int = 0, seed: int = 0, steps: int = 100, n_cameras: int = 1,
                      rig: Sequence[dict] | None = None, height: int = 66, width: int = 200,
                      town: str = "Town01", weather: str = "ClearNoon", pool: int = 8,
                      noise_from: int = -1, learner: bool = False, dagger_round: int | None = None,
                      beta: float | None = None, dt: float = 0.05) -> SyntheticEpisode:
    """Build a synthetic episode (see module docstring).

    Args:
        episode, seed: index and seed (the seed drives frames and labels).
        steps: number of control steps.
        n_cameras / rig: the camera rig (``rig`` wins when given).
        height, width: image size [px] for the default rig.
        pool: distinct random frames per camera.
        noise_from: steps >= this index are flagged noisy and executed steer is offset
            by +0.2 (-1 = never).
        learner: a learner prediction is present (and drives every other step).
    """
    rig = tuple(dict(c) for c in (rig if rig is not None else synthetic_rig(n_cameras, height=height, width=width)))
    rng = np.random.default_rng(seed)
    pools = {c["name"]: rng.integers(0, 256, size=(pool, c["height"], c["width"], 3), dtype=np.uint8)
             for c in rig}
    steer = np.clip(np.convolve(rng.normal(0.0, 0.4, steps + 10), np.ones(10) / 10, "same")[:steps], -0.9, 0.9)
    pts = [RouteWaypoint(x=float(i), y=0.0, yaw=0.0,
                         command=RoadOption.LANEFOLLOW if i % 30 else RoadOption.LEFT)
           for i in range(min(2000, max(2, int(8.0 * dt * steps) + 2)))]
    info = EpisodeInfo(
        scenario="synthetic", town=town, seed=seed, episode=episode, weather=weather,
        backend="synthetic", dt=dt, cameras=rig,
        vehicle={"wheelbase": 2.9, "max_steer_deg": 35.0, "length": 4.8},
        route=Route(waypoints=tuple(pts)), expert_preset="default", driver="learner" if learner else "expert",
        dagger_round=dagger_round, beta=beta,
        noise={"kind": "triangular", "episode_share": 0.2} if noise_from >= 0 else {},
        scenario_source="<synthetic>", scenario_dict={"name": "synthetic", "town": town, "dt": dt})
    first_frames = {c: pools[c][0] for c in pools}
    first = Step(observation=Observation(frames=first_frames, speed=0.0, frame=1000, sim_time=0.0),
                 world_state=WorldState(ego=VehicleState(x=0.0, y=0.0, yaw=0.0), frame=1000, dt=dt,
                                        town=town, weather=weather))
    return SyntheticEpisode(info=info, first=first, pools=pools, steps=steps, steer=steer,
                            rng_seed=seed, noise_from=noise_from, learner=learner)


def write_synthetic_episodes(out_dir: str | Path, n: int, *, steps: int = 100, n_cameras: int = 1,
                             seed: int = 0, **kwargs) -> list[Path]:
    """Record ``n`` synthetic episodes with the real recorder into ``out_dir``."""
    from .recorder import EpisodeRecorder

    rec = EpisodeRecorder(out_dir)
    paths = []
    for i in range(n):
        ep = synthetic_episode(episode=i, seed=seed + i, steps=steps, n_cameras=n_cameras, **kwargs)
        rec.on_episode_start(ep.info, ep.first)
        for r in ep.iter_records():
            rec.on_step(r)
        p = rec.on_episode_end(ep.result())
        assert p is not None
        paths.append(p)
    return paths
