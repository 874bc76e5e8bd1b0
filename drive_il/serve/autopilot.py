"""The server side of autopilot: the lane follower and the Traffic Manager registry.

:class:`LaneFollower` drives ``SetAutopilot`` vehicles that no client's Traffic
Manager drives (pure pursuit on the lane centre, a speed P-controller, a stop behind
vehicles ahead); :func:`make_follower` gives a vehicle its follower with its own
seeded branch choices. :class:`TrafficManagerRegistry` is the server's record of the
client-side Traffic Managers (``add_traffic_manager_running`` and friends): which
port each listens on and which connection owns it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..control import curvature_to_steer, pure_pursuit_curvature
from .actors import Vehicle

__all__ = [
    "AUTOPILOT_HANDOVER_S",
    "SPEED_LIMIT_KMH",
    "LaneFollower",
    "TrafficManagerRegistry",
    "make_follower",
]

#: Speed limit reported for every vehicle [km/h] (CARLA's default urban limit); the
#: Traffic Manager drives at a percentage of it.
SPEED_LIMIT_KMH = 30.0
#: An autopilot vehicle without a client control for this long [s] is driven by the
#: server's lane follower (the client's Traffic Manager sends one every tick).
AUTOPILOT_HANDOVER_S = 0.5
#: The lane follower's cruise speed: 70 % of the speed limit [m/s].
FOLLOWER_SPEED = SPEED_LIMIT_KMH / 3.6 * 0.7


class LaneFollower:
    """The server-side autopilot: pure pursuit on the lane centre, a speed P-controller
    and a stop behind vehicles ahead (for ``SetAutopilot`` vehicles that the client's
    Traffic Manager does not drive).

    Pure pursuit (:func:`drive_il.control.pure_pursuit_curvature`) toward the
    lane-centre point at least ``ld = max(4, 1.2 v + 2)`` m ahead, taken at distance
    ``ld`` along its bearing (road-wheel angle ``atan(2 L sin(alpha) / ld)``);
    branches at junctions drawn with the given rng.
    """

    def __init__(self, carla_map: Any, rng: np.random.Generator, target_speed: float) -> None:
        import carla
        self.map = carla_map
        self.rng = rng
        self.target_speed = float(target_speed)
        self._loc = carla.Location
        self._driving = carla.LaneType.Driving
        self._plan: list[Any] = []

    def control(self, v: Vehicle, others: list[Vehicle]) -> tuple:
        """The vehicle's control tuple for this tick (see :attr:`Vehicle.control`)."""
        m = v.model
        x, y, yaw, speed = m.x, m.y, m.yaw, m.speed
        ld = max(4.0, 1.2 * abs(speed) + 2.0)
        target = self._target(x, y, yaw, ld)
        if target is None:
            return (0.0, 0.0, 1.0, False, False, False, 0)
        tx, ty = target
        d = math.hypot(tx - x, ty - y)
        if d > 0.0:  # the pursued point: at the lookahead distance, toward the target
            tx, ty = x + (tx - x) * (ld / d), y + (ty - y) * (ld / d)
        kappa = pure_pursuit_curvature(x, y, yaw, tx, ty)  # 2 sin(alpha) / ld
        steer = curvature_to_steer(kappa, m.wheelbase, m.max_steer_angle)  # clipped to [-1, 1]
        # leader: a vehicle within a narrow cone ahead
        want = self.target_speed
        c, s = math.cos(yaw), math.sin(yaw)
        for o in others:
            if o is v:
                continue
            dx, dy = o.model.x - x, o.model.y - y
            fwd = dx * c + dy * s
            if 0.0 < fwd < 25.0 and abs(-dx * s + dy * c) < 2.0:
                gap = fwd - 0.5 * (m.length + o.model.length)
                want = min(want, max(0.0, 0.5 * (gap - 3.0)))
        err = want - speed
        if err >= 0.0:
            return (min(1.0, 0.3 + 0.5 * err), steer, 0.0, False, False, False, 0)
        return (0.0, steer, min(1.0, -0.4 * err), False, False, False, 0)

    def _target(self, x: float, y: float, yaw: float, ld: float) -> tuple[float, float] | None:
        plan = self._plan
        # drop plan points behind the car; re-plan when empty or far from the car
        c, s = math.cos(yaw), math.sin(yaw)
        while plan:
            px, py = plan[0].transform.location.x, plan[0].transform.location.y
            if (px - x) * c + (py - y) * s < 0.5:
                plan.pop(0)
            else:
                break
        if not plan or math.hypot(plan[0].transform.location.x - x, plan[0].transform.location.y - y) > ld + 6.0:
            wp = self.map.get_waypoint(self._loc(x, y, 0.0), True, self._driving)
            if wp is None:
                return None
            self._plan = plan = [wp]
        while len(plan) < 12:
            nxt = plan[-1].next(2.0)
            if not nxt:
                break
            plan.append(nxt[0] if len(nxt) == 1 else nxt[int(self.rng.integers(len(nxt)))])
        for wp in plan:
            loc = wp.transform.location
            if math.hypot(loc.x - x, loc.y - y) >= ld:
                return loc.x, loc.y
        loc = plan[-1].transform.location
        return loc.x, loc.y


def make_follower(carla_map: Any, *, seed: int, vehicle_id: int, episode: int) -> LaneFollower:
    """The lane follower of one vehicle: its branch choices seeded by (server seed,
    vehicle id, episode number), its cruise speed :data:`FOLLOWER_SPEED`."""
    return LaneFollower(carla_map, np.random.default_rng([seed, vehicle_id, episode]),
                        target_speed=FOLLOWER_SPEED)


class TrafficManagerRegistry:
    """The client-side Traffic Managers the server knows of: port -> (ip, port text,
    id of the connection that registered it)."""

    def __init__(self) -> None:
        self._by_port: dict[int, tuple[str, str, int]] = {}

    def __contains__(self, port: int) -> bool:
        return port in self._by_port

    def __len__(self) -> int:
        return len(self._by_port)

    def add(self, ip: str, port: int, owner: int) -> bool:
        """Register a Traffic Manager; False if the port already has one."""
        if port in self._by_port:
            return False
        self._by_port[port] = (ip, str(port), owner)
        return True

    def address(self, port: int) -> tuple[str, str]:
        """(ip, port text) of the Traffic Manager on ``port`` (("", "") if none)."""
        ip, ps, _owner = self._by_port.get(port, ("", "", 0))
        return ip, ps

    def remove(self, port: int) -> bool:
        """Forget the Traffic Manager on ``port``; False if there was none."""
        return self._by_port.pop(port, None) is not None

    def ports_of(self, owner: int) -> list[int]:
        """The ports of the Traffic Managers a connection registered."""
        return [p for p, (_ip, _ps, cid) in self._by_port.items() if cid == owner]
