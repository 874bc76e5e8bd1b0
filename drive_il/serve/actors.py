"""The served world's actor records and their state.

:class:`Actor` (any actor: the spectator, a free sensor), :class:`Vehicle` (a
:class:`~drive_il.sim.embedded.dynamics.BicycleModel` and the last
``carla.VehicleControl`` applied to it) and :class:`Sensor` (a camera, a collision
detector or a client-side sensor, with its stream); each knows its CARLA description
and bounding box. Placement, attachment and stepping are the world's job
(:mod:`.world`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..scenario import CameraConfig
from . import encoding as E

__all__ = ["TAG_CAR", "TAG_PEDESTRIAN", "TAG_TRAFFIC_LIGHT", "Actor", "Light", "Sensor", "Vehicle",
           "Walker"]

#: CARLA semantic tags (0.9.14+ CityScapes palette indices) of the records.
TAG_CAR = 14
TAG_PEDESTRIAN = 12
TAG_TRAFFIC_LIGHT = 7


@dataclass(eq=False)
class Actor:
    """Any actor of the server world.

    Attributes:
        id: CARLA actor id.
        type_id: blueprint id ("vehicle.tesla.model3", "sensor.camera.rgb", "spectator").
        attrs: the description's attribute values {id: value} (strings).
        types: the attributes' types {id: type} (:data:`encoding.ATTR_BOOL`, ...).
        uid: blueprint uid from the description.
        parent: parent actor id (0: none).
        rel: transform relative to the parent (x, y, z, pitch, yaw, roll) [m, deg], or
            the world transform when there is no parent.
        owner: id of the RPC connection that spawned it (0: the server).
        tags: semantic tags of the record.
        children: ids of the actors attached to it.
    """

    id: int
    type_id: str
    attrs: dict[str, str] = field(default_factory=dict)
    types: dict[str, int] = field(default_factory=dict)
    uid: int = 0
    parent: int = 0
    rel: tuple[float, float, float, float, float, float] = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    owner: int = 0
    tags: bytes = b""
    children: list[int] = field(default_factory=list)

    def description(self) -> list:
        return [self.uid, self.type_id,
                [[k, self.types.get(k, E.ATTR_STRING), v] for k, v in self.attrs.items()]]

    def extent(self) -> tuple[float, float, float]:
        return (0.0, 0.0, 0.0)

    def bbox(self) -> list:
        return E.bounding_box(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, self.id)


@dataclass(eq=False)
class Vehicle(Actor):
    """A vehicle: a bicycle model and its current control.

    Attributes:
        model: its :class:`~drive_il.sim.embedded.dynamics.BicycleModel`.
        control: the last control (throttle, steer, brake, hand_brake, reverse,
            manual_gear_shift, gear), as :func:`encoding.vehicle_control` gives it.
        autopilot: driven by the server's lane follower when no client control arrives.
        last_control_time: world time [s] of the last client control.
        follower: its :class:`~drive_il.serve.autopilot.LaneFollower`, once needed.
    """

    model: Any = None
    control: tuple = (0.0, 0.0, 0.0, False, False, False, 0)
    color: tuple[int, int, int] = (160, 30, 30)
    autopilot: bool = False
    last_control_time: float = -1e9
    simulate_physics: bool = True
    light_state: int = 0
    follower: Any = None

    def extent(self) -> tuple[float, float, float]:
        m = self.model
        return (0.5 * m.length, 0.5 * m.width, 0.5 * m.height)

    def bbox(self) -> list:
        ex, ey, ez = self.extent()
        return E.bounding_box(0.0, 0.0, ez, ex, ey, ez, self.id)


@dataclass(eq=False)
class Walker(Actor):
    """A pedestrian (``walker.pedestrian.*``): a pose the client's navigation moves
    (``ApplyWalkerState``) or a ``carla.WalkerControl`` walks.

    Attributes:
        x, y, z: the capsule centre, as CARLA's walker origin [m] (``z`` = ground +
            half the height).
        yaw: heading [rad].
        speed: walking speed [m/s].
        direction, jump: the last ``WalkerControl`` (unit vector, bool), as the
            snapshot carries it.
        half_extent: (x, y, z) half sizes of the bounding box [m].
    """

    x: float = 0.0
    y: float = 0.0
    z: float = 0.0
    yaw: float = 0.0
    speed: float = 0.0
    direction: tuple[float, float, float] = (0.0, 0.0, 0.0)
    jump: bool = False
    controlled: bool = False  # a WalkerControl (not a navigation pose) moves it each tick
    half_extent: tuple[float, float, float] = (0.187, 0.187, 0.9)

    def extent(self) -> tuple[float, float, float]:
        return self.half_extent

    def bbox(self) -> list:
        ex, ey, ez = self.half_extent
        return E.bounding_box(0.0, 0.0, 0.0, ex, ey, ez, self.id)


@dataclass(eq=False)
class Light(Actor):
    """A ``traffic.traffic_light`` actor serving one head of the embedded world's
    lights (:class:`~drive_il.types.TrafficLight`).

    Attributes:
        light_id: the head's id in the embedded world.
        trigger: (cx, cy, cz, ex, ey, ez) its trigger volume relative to the actor
            (the actor's bounding box in CARLA's records): centred on the stop line, its
            x half-extent along the line (the client walks it for ``get_stop_waypoints``).
        group: actor ids of its light group.
        pole_index: its index in the group.
    """

    light_id: int = 0
    trigger: tuple[float, float, float, float, float, float] = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    group: tuple[int, ...] = ()
    pole_index: int = 0

    def bbox(self) -> list:
        return E.bounding_box(*self.trigger, self.id)


@dataclass(eq=False)
class Sensor(Actor):
    """A sensor: a camera, a collision detector, or a client-side sensor."""

    kind: str = ""  # "camera", "collision", "lane_invasion"
    stream: int = 0  # 0: no server stream (client-side sensor)
    spec: CameraConfig | None = None
    tick: float = 0.0
    next_time: float = 0.0
    detector: Any = None
