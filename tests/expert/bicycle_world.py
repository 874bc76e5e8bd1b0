"""A minimal test double of the embedded world for the expert's tests: the project's
kinematic bicycle (:mod:`drive_il.sim.embedded.dynamics`) driving on a route, with
optional static or constant-velocity actors. No camera, no events: tests measure the
lateral deviation themselves with :func:`drive_il.geometry.project_onto_polyline`."""

from __future__ import annotations

import math
from dataclasses import replace

from drive_il.scenario import VehicleConfig
from drive_il.sim.embedded.dynamics import BicycleModel
from drive_il.types import ActorState, Control, Observation, Route, Step, WorldState


class BicycleWorld:
    """reset/step like a Simulator, on a given route, with scripted actors."""

    def __init__(self, route: Route, *, vehicle: VehicleConfig | None = None, dt: float = 0.05,
                 x: float | None = None, y: float | None = None, yaw: float | None = None,
                 speed: float = 0.0, actors: tuple[ActorState, ...] = ()) -> None:
        self.vehicle = vehicle or VehicleConfig()
        self.route = route
        self.dt = dt
        w = route.waypoints[0]
        self.car = BicycleModel(self.vehicle, x=w.x if x is None else x, y=w.y if y is None else y,
                                yaw=w.yaw if yaw is None else yaw, speed=speed)
        self.actors = tuple(actors)
        self.frame = 0

    def _step(self) -> Step:
        ws = WorldState(ego=self.car.state(), actors=self.actors, route=self.route,
                        frame=self.frame, sim_time=self.frame * self.dt, dt=self.dt, town="test")
        return Step(observation=Observation(frames={}, speed=self.car.speed), world_state=ws)

    def reset(self) -> Step:
        self.frame = 0
        return self._step()

    def step(self, control: Control) -> Step:
        self.car.step(control, self.dt)
        self.actors = tuple(replace(a, x=a.x + a.speed * math.cos(a.yaw) * self.dt,
                                    y=a.y + a.speed * math.sin(a.yaw) * self.dt) for a in self.actors)
        self.frame += 1
        return self._step()
