"""A minimal test double of the embedded world for the expert's tests: the project's
kinematic bicycle (:mod:`drive_il.sim.embedded.dynamics`) driving on a route, with
optional static or constant-velocity actors and walkers, and traffic lights (a fixed
tuple or a function of the simulation time). No camera, no events: tests measure the
lateral deviation themselves with :func:`drive_il.geometry.project_onto_polyline`."""

from __future__ import annotations

import math
from dataclasses import replace

from drive_il.scenario import VehicleConfig
from drive_il.sim.embedded.dynamics import BicycleModel
from drive_il.types import (
    ActorState,
    Control,
    Observation,
    Route,
    Step,
    TrafficLight,
    WalkerState,
    WorldState,
)


class BicycleWorld:
    """reset/step like a Simulator, on a given route, with scripted actors."""

    def __init__(self, route: Route, *, vehicle: VehicleConfig | None = None, dt: float = 0.05,
                 x: float | None = None, y: float | None = None, yaw: float | None = None,
                 speed: float = 0.0, actors: tuple[ActorState, ...] = (), walkers: tuple[WalkerState, ...] = (),
                 lights=()) -> None:
        self.vehicle = vehicle or VehicleConfig()
        self.route = route
        self.dt = dt
        w = route.waypoints[0]
        self.car = BicycleModel(self.vehicle, x=w.x if x is None else x, y=w.y if y is None else y,
                                yaw=w.yaw if yaw is None else yaw, speed=speed)
        self.actors = tuple(actors)
        self.walkers = tuple(walkers)
        self.lights = lights
        self.frame = 0

    def _step(self) -> Step:
        t = self.frame * self.dt
        lights: tuple[TrafficLight, ...] = tuple(self.lights(t) if callable(self.lights) else self.lights)
        ws = WorldState(ego=self.car.state(), actors=self.actors, route=self.route,
                        frame=self.frame, sim_time=t, dt=self.dt, town="test", traffic_lights=lights,
                        walkers=self.walkers)
        return Step(observation=Observation(frames={}, speed=self.car.speed), world_state=ws)

    def reset(self) -> Step:
        self.frame = 0
        return self._step()

    def step(self, control: Control) -> Step:
        self.car.step(control, self.dt)
        self.actors = tuple(replace(a, x=a.x + a.speed * math.cos(a.yaw) * self.dt,
                                    y=a.y + a.speed * math.sin(a.yaw) * self.dt) for a in self.actors)
        self.walkers = tuple(replace(w, x=w.x + w.speed * math.cos(w.yaw) * self.dt,
                                     y=w.y + w.speed * math.sin(w.yaw) * self.dt) for w in self.walkers)
        self.frame += 1
        return self._step()
