"""A tiny fake world for the rollout's tests: a straight lane along +x, a kinematic car,
and scripted drivers."""

from __future__ import annotations

import math

import numpy as np

from drive_il.scenario import Scenario
from drive_il.types import (Control, Event, EventKind, Observation, Route, RouteWaypoint, Step, VehicleState,
                            WorldState)

SC = Scenario(episode_seconds=30.0)


class LineSim:
    """reset/step like a Simulator; a lane invasion event when |y| > 1.75 m; ``events``
    maps a frame number to extra event kinds reported by the step reaching it."""

    backend = "embedded"

    def __init__(self, length=200.0, speed=10.0, events=None):
        self.length, self.v = length, speed
        self.map = None
        self.scenario = None
        self.extra = dict(events or {})
        self.route = Route(tuple(RouteWaypoint(x=float(s), y=0.0, yaw=0.0) for s in np.arange(0, length + 1, 1.0)))

    def _step(self, events=()):
        ego = VehicleState(x=self.x, y=self.y, yaw=self.yaw, speed=self.v)
        obs = Observation(frames={"center": np.zeros((2, 2, 3), np.uint8)}, speed=self.v, frame=self.f,
                          sim_time=self.f * self.dt)
        return Step(obs, WorldState(ego=ego, route=self.route, frame=self.f, sim_time=self.f * self.dt, dt=self.dt),
                    events)

    def reset(self, scenario, seed, *, route=None, start=None):
        self.scenario, self.dt = scenario, scenario.dt
        self.x, self.y, self.yaw, self.f = 0.0, 0.0, 0.0, 0
        return self._step()

    def step(self, c):
        self.yaw += self.v * math.tan(c.steer * 0.6) / 2.9 * self.dt
        self.x += self.v * math.cos(self.yaw) * self.dt
        self.y += self.v * math.sin(self.yaw) * self.dt
        self.f += 1
        ev = [Event(EventKind.LANE_INVASION, self.f, self.f * self.dt, marking=("Broken",))] if abs(self.y) > 1.75 else []
        ev += [Event(k, self.f, self.f * self.dt) for k in self.extra.get(self.f, ())]
        return self._step(tuple(ev))

    def close(self):
        pass


class Centering:
    """The expert: steers back to y = 0."""

    name = "expert"

    def __init__(self):
        self.resets = 0

    def reset(self, step):
        self.resets += 1

    def act(self, step):
        e = step.world_state.ego
        return Control.clipped(-0.3 * e.y - 1.5 * e.yaw, 0.5)


class Biased:
    """A learner that always steers slightly right."""

    name = "learner"

    def __init__(self, steer=0.02):
        self.steer = steer
        self.resets = 0

    def reset(self, step):
        self.resets += 1

    def act(self, step):
        return Control(steer=self.steer, throttle=0.5)


class Rec:
    """An observer keeping everything it is told."""

    def __init__(self):
        self.records, self.started, self.ended, self.aborted, self.info = [], 0, 0, None, None

    def on_episode_start(self, info, first):
        self.started += 1
        self.info = info

    def on_step(self, r):
        self.records.append(r)

    def on_episode_end(self, result):
        self.ended += 1
        return "/tmp/fake.h5"

    def on_episode_abort(self, reason):
        self.aborted = reason
