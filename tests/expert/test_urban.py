"""The expert in urban traffic (issue 19): it stops before red (and stoppable yellow)
stop lines, goes on green, yields to walkers in or entering its lane, ignores walkers on
the sidewalk and queues behind vehicles waiting at a red light. Hand-built worlds: a
straight road along +x into a junction (the project's kinematic bicycle,
:class:`.bicycle_world.BicycleWorld`)."""

from __future__ import annotations

import dataclasses
import itertools
import math

import pytest

from drive_il.expert import Expert, load_expert_config
from drive_il.expert.local_planner import RouteTracker
from drive_il.scenario import VehicleConfig
from drive_il.types import (
    ActorState,
    Route,
    RouteWaypoint,
    TrafficLight,
    TrafficLightState,
    WalkerState,
)

from .bicycle_world import BicycleWorld

VEH = VehicleConfig()
HALF = 0.5 * VEH.length
CFG = load_expert_config("default")
MARGIN = CFG.stop_line_margin
LINE = 99.5          # stop line x [m]; the junction starts at x = 100
RED, YELLOW, GREEN = TrafficLightState.RED, TrafficLightState.YELLOW, TrafficLightState.GREEN


def junction_route(length: int = 300, j0: int = 100, j1: int = 120, kmh: float = 30.0) -> Route:
    """Road 1 (lane -1) up to x = j0, a junction (road 5) to j1, then road 2; ``kmh``."""
    wps = []
    for i in range(length + 1):
        junc = j0 <= i < j1
        road = 1 if i < j0 else (5 if junc else 2)
        wps.append(RouteWaypoint(x=float(i), y=0.0, yaw=0.0, road_id=road, lane_id=-1, lane_width=3.5,
                                 is_junction=junc, speed_limit=kmh / 3.6))
    return Route(tuple(wps))


ROUTE = junction_route()


def light(state=RED, *, lanes=((1, -1),), line_x=LINE, yaw=0.0, light_id=7, y0=1.75, y1=-1.75):
    return TrafficLight(light_id=light_id, x=line_x, y=2.5, yaw=yaw, state=state,
                        stop_line=((line_x, y0), (line_x, y1)), lanes=lanes)


def phases(*spans):
    """Light states over time: phases((RED, 20.0), (GREEN, None)) -> lights(t)."""
    def lights(t):
        t0 = 0.0
        for state, dur in spans:
            if dur is None or t < t0 + dur:
                return (light(state),)
            t0 += dur
        return (light(spans[-1][0]),)
    return lights


def drive(world: BicycleWorld, *, seconds: float, expert: Expert | None = None):
    """Rows per step: (t, front x, speed, stop_reason, target_speed, world state)."""
    ex = expert or Expert(config=CFG, vehicle=VEH)
    step = world.reset()
    ex.reset(step)
    rows = []
    for k in range(int(seconds / world.dt)):
        c = ex.act(step)
        rows.append((k * world.dt, step.world_state.ego.x + HALF, step.world_state.ego.speed, ex.stop_reason,
                     ex.target_speed, step.world_state))
        step = world.step(c)
    return rows


def walker_clearance(ws) -> float:
    """Smallest distance [m] between the ego's bounding box and any walker's circle."""
    e = ws.ego
    best = math.inf
    for w in ws.walkers:
        dx, dy = w.x - e.x, w.y - e.y
        c, s = math.cos(e.yaw), math.sin(e.yaw)
        lon, lat = dx * c + dy * s, -dx * s + dy * c
        d = math.hypot(max(abs(lon) - 0.5 * e.length, 0.0), max(abs(lat) - 0.5 * e.width, 0.0))
        best = min(best, d - w.radius)
    return best


# ---------------------------------------------------------------------------- lights


def test_the_route_finds_its_light_by_lane_and_at_the_stop_line():
    tr = RouteTracker(ROUTE, CFG)
    assert tr.entries == [99]
    assert tr.light_stops((light(),)) == [(pytest.approx(LINE), 7)]
    # another lane's light (the opposite direction), and no lights: nothing
    other = light(lanes=((1, 1),), yaw=math.pi, y0=1.75, y1=5.25)
    assert tr.light_stops((other,)) == [] and tr.light_stops(()) == []
    # fallback without lanes: the route crosses the stop line driving the light's way
    assert tr.light_stops((light(lanes=()),)) == [(pytest.approx(LINE), 7)]
    assert tr.light_stops((light(lanes=(), yaw=math.pi),)) == []


def test_stops_before_a_red_stop_line_and_goes_on_green():
    rows = drive(BicycleWorld(ROUTE, lights=phases((RED, 25.0), (GREEN, None))), seconds=40.0)
    red = [r for r in rows if r[0] < 25.0]
    front = max(r[1] for r in red)
    assert LINE - MARGIN - 0.3 <= front <= LINE - MARGIN + 0.3   # stopped at the stop point
    assert front < LINE                                           # never crossed on red
    assert abs(red[-1][2]) < 0.05 and red[-1][3] == "red_light" and red[-1][4] == 0.0
    # the braking profile is smooth: the target speed never jumps up while stopping
    stopping = [r[4] for r in red if r[3] == "red_light"]
    assert all(b <= a + 1e-9 for a, b in itertools.pairwise(stopping))
    green = [r for r in rows if r[0] >= 25.0]
    assert green[-1][1] > 150.0 and all(r[3] == "" for r in green)


def _side_light(y: float, state=RED):
    return TrafficLight(light_id=7, x=LINE, y=y, yaw=0.0, state=state, stop_line=((LINE, 1.75), (LINE, -1.75)),
                        lanes=((1, -1),))


@pytest.mark.parametrize("side,margin", [(2.5, 4.0), (7.2, 7.2 / math.tan(math.radians(40.0))), (20.0, 10.0)])
def test_light_view_angle_stops_where_the_head_stays_in_view(side, margin):
    """``light_view_angle`` 40 deg: a head 2.5 m to the side is in view from the 4 m
    margin already; one 7.2 m to the side (a wide road) moves the stop back to 8.6 m;
    the margin is capped at ``max_stop_line_margin``. The recorded gap is to the moved
    line: ``stop_line_margin`` when standing."""
    cfg = dataclasses.replace(CFG, stop_line_margin=4.0, light_view_angle=40.0, max_stop_line_margin=10.0)
    ex = Expert(config=cfg, vehicle=VEH)
    rows = drive(BicycleWorld(ROUTE, lights=(_side_light(side),)), seconds=30.0, expert=ex)
    front = max(r[1] for r in rows)
    assert LINE - margin - 0.3 <= front <= LINE - margin + 0.3
    assert abs(rows[-1][2]) < 0.05 and rows[-1][3] == "red_light"
    assert ex.obstacle.gap == pytest.approx(cfg.stop_line_margin, abs=0.3)
    # off (the default): the plain margin, whatever the side
    plain = drive(BicycleWorld(ROUTE, lights=(_side_light(side),)),
                  seconds=30.0, expert=Expert(config=dataclasses.replace(cfg, light_view_angle=0.0), vehicle=VEH))
    assert LINE - 4.3 <= max(r[1] for r in plain) <= LINE - 3.7


def test_light_view_angle_never_brakes_in_full():
    """A red seen 18 m before the line at 8 m/s: a stop 8.6 m before it would need 3.4
    m/s^2, more than 1.5 comfort_decel (the full-brake threshold; the plain 4 m stop
    needs 2.3), so the view angle moves the stop back only as far as the car can stop
    at 1.4 comfort_decel: no full brake (but for the last few cm/s, as at any stop), and
    a stop between the 8.6 m point and the plain 4 m one."""
    cfg = dataclasses.replace(CFG, stop_line_margin=4.0, light_view_angle=40.0)
    fronts = []
    for c in (cfg, dataclasses.replace(cfg, light_view_angle=0.0)):
        world = BicycleWorld(ROUTE, x=LINE - 18.0 - HALF, speed=8.0, lights=(_side_light(7.2),))
        ex = Expert(config=c, vehicle=VEH)
        step = world.reset()
        ex.reset(step)
        for _ in range(200):
            ctl = ex.act(step)
            assert ctl.brake < c.emergency_brake or step.world_state.ego.speed < 1.0   # (settling at the stop point)
            step = world.step(ctl)
        assert step.world_state.ego.speed < 0.05
        fronts.append(step.world_state.ego.x + HALF)
    # 18 - 4 - 64 / (2 x 1.4 x 2) = 2.6 m farther back
    assert fronts[0] == pytest.approx(LINE - 4.0 - 2.57, abs=0.3)
    assert fronts[1] == pytest.approx(LINE - 4.0, abs=0.3)


def test_goes_on_green_without_slowing():
    plain = drive(BicycleWorld(ROUTE), seconds=20.0)
    lit = drive(BicycleWorld(ROUTE, lights=(light(GREEN),)), seconds=20.0)
    assert [r[1] for r in lit] == [r[1] for r in plain]


@pytest.mark.parametrize("distance,stops", [(8.0, False), (40.0, True)])
def test_yellow_close_goes_far_stops(distance, stops):
    """8 m/s and 8 m before the line: stopping would need 6.2 m/s^2 > comfort_decel, so it
    goes on (and clears the line before the 3 s yellow ends); 40 m before: it stops."""
    x0 = LINE - distance - HALF
    world = BicycleWorld(ROUTE, x=x0, speed=8.0, lights=phases((YELLOW, 3.0), (RED, None)))
    rows = drive(world, seconds=25.0)
    reasons = {r[3] for r in rows}
    if stops:
        assert "yellow_light" in reasons
        front = max(r[1] for r in rows)
        assert LINE - MARGIN - 0.3 <= front < LINE and abs(rows[-1][2]) < 0.05
    else:
        assert not reasons & {"yellow_light", "red_light"}
        crossed = next(r[0] for r in rows if r[1] > LINE)
        assert crossed < 3.0
        assert rows[-1][1] > 150.0


def test_a_light_whose_stop_line_the_rear_has_passed_is_ignored():
    """Behind the car once the leaderboard's test point (0.8 half-lengths behind the
    centre) is past the stop line."""
    world = BicycleWorld(ROUTE, x=LINE + 0.45 * VEH.length, speed=3.0, lights=(light(RED),))
    rows = drive(world, seconds=8.0)
    assert all(r[3] == "" for r in rows) and rows[-1][1] > LINE + 15.0


def test_straddling_the_line_when_it_turns_red_holds_there():
    """Crept over the stop line in a queue (front 0.3 m past it, the test point not):
    when the light turns red the car stops where it is, so its rear never crosses on
    red (the leaderboard's RunningRedLightTest would count that)."""
    world = BicycleWorld(ROUTE, x=LINE + 0.3 - HALF, speed=1.0, lights=(light(RED),))
    rows = drive(world, seconds=6.0)
    assert rows[0][3] == "red_light"
    test_point = rows[-1][5].ego.x - 0.4 * VEH.length
    assert rows[-1][2] < 0.05 and test_point < LINE


def test_red_seen_too_late_to_stop_is_cleared_not_stopped_in():
    """A state only a learner reaches: 8 m/s, 2 m before a red line (16 m/s^2 needed >
    the emergency 8 m/s^2): the label clears the junction; 6 m before it stops."""
    ex = Expert(config=CFG, vehicle=VEH)
    for gap, expect in ((2.0, ""), (6.0, "red_light")):
        world = BicycleWorld(ROUTE, x=LINE - gap - HALF, speed=8.0, lights=(light(RED),))
        step = world.reset()
        ex.reset(step)
        c = ex.act(step)
        assert ex.stop_reason == expect
        assert (c.brake == CFG.emergency_brake) == (expect == "red_light")


def test_queues_behind_a_vehicle_waiting_at_the_red_light():
    npc = ActorState(actor_id=3, x=LINE - 1.0 - 2.25, y=0.0, yaw=0.0, speed=0.0)
    rows = drive(BicycleWorld(ROUTE, actors=(npc,), lights=(light(RED),)), seconds=25.0)
    front = max(r[1] for r in rows)
    rear = npc.x - 0.5 * npc.length
    assert rear - CFG.stop_gap - 0.5 <= front <= rear - CFG.stop_gap + 0.3
    assert rows[-1][3] == "vehicle" and abs(rows[-1][2]) < 0.05


# ---------------------------------------------------------------------------- walkers


@pytest.mark.parametrize("speed,stops", [(1.2, False), (0.4, True)])
def test_yields_to_a_walker_stepping_into_the_lane(speed, stops):
    """A walker crossing the road at 60 m: the expert slows (1.2 m/s: the walker is
    across before the car gets there) or stops before it (0.4 m/s), never comes near it
    and goes on once it has crossed."""
    w = WalkerState(actor_id=100000, x=60.0, y=6.0, yaw=-math.pi / 2, speed=speed, radius=0.3)
    rows = drive(BicycleWorld(ROUTE, walkers=(w,)), seconds=40.0)
    assert "walker" in {r[3] for r in rows}
    assert min(walker_clearance(r[5]) for r in rows) > 1.0       # never near it
    slowest = min(r[2] for r in rows if r[0] > 3.0)
    assert slowest < (0.1 if stops else 4.0)
    if stops:
        front = max(r[1] for r in rows if r[2] < 0.1 and r[0] > 3.0 and r[1] < w.x)
        assert front <= w.x - w.radius - CFG.stop_gap + 0.3
    assert rows[-1][1] > 150.0                                    # and went on after it crossed


def test_stops_for_a_walker_standing_in_the_lane():
    w = WalkerState(actor_id=100001, x=70.0, y=0.8, yaw=0.0, speed=0.0)
    rows = drive(BicycleWorld(ROUTE, walkers=(w,)), seconds=25.0)
    front = max(r[1] for r in rows)
    assert w.x - w.radius - CFG.stop_gap - 0.5 <= front <= w.x - w.radius - CFG.stop_gap + 0.3
    assert rows[-1][3] == "walker" and abs(rows[-1][2]) < 0.05


def test_walkers_on_the_sidewalk_have_no_effect():
    walkers = (WalkerState(actor_id=100002, x=80.0, y=3.6, yaw=math.pi, speed=1.4),   # along the kerb
               WalkerState(actor_id=100003, x=50.0, y=-3.8, yaw=0.0, speed=0.0),       # standing
               WalkerState(actor_id=100004, x=30.0, y=-4.0, yaw=-0.3, speed=1.0))      # away, ahead
    plain = drive(BicycleWorld(ROUTE), seconds=20.0)
    side = drive(BicycleWorld(ROUTE, walkers=walkers), seconds=20.0)
    assert [r[1] for r in side] == [r[1] for r in plain]
    assert all(r[3] == "" for r in side)


def test_a_plain_route_gives_no_stop_reason():
    rows = drive(BicycleWorld(ROUTE), seconds=5.0)
    assert all(r[3] == "" for r in rows)


# ------------------------------------------------------- bodies, route end, starting off


def _corners(x, y, yaw, length, width):
    c, s = math.cos(yaw), math.sin(yaw)
    return [(x + c * a - s * b, y + s * a + c * b)
            for a, b in ((0.5 * length, 0.5 * width), (0.5 * length, -0.5 * width),
                         (-0.5 * length, -0.5 * width), (-0.5 * length, 0.5 * width))]


def boxes_overlap(p, q) -> bool:
    """Two rectangles (corner lists) overlap: no separating axis among their edges'
    normals."""
    for poly in (p, q):
        for k in range(4):
            (x0, y0), (x1, y1) = poly[k], poly[(k + 1) % 4]
            nx, ny = y1 - y0, x0 - x1
            a = [nx * x + ny * y for x, y in p]
            b = [nx * x + ny * y for x, y in q]
            if max(a) < min(b) or max(b) < min(a):
                return False
    return True


def touched(rows, actor_id) -> bool:
    for r in rows:
        ws = r[5]
        e = ws.ego
        mine = _corners(e.x, e.y, e.yaw, e.length, e.width)
        for a in ws.actors:
            if a.actor_id == actor_id and boxes_overlap(mine, _corners(a.x, a.y, a.yaw, a.length, a.width)):
                return True
    return False


def test_a_walker_beside_the_body_does_not_hold_the_car():
    """A walker standing beside the car (in the lane, behind the front bumper: driving on
    cannot reach it; the embedded world's walkers hold short of car bodies) is no reason
    to wait -- waiting would deadlock with it. One just ahead of the bumper still is."""
    beside = WalkerState(actor_id=100005, x=50.5, y=1.4, yaw=-math.pi / 2, speed=0.0, radius=0.3)
    rows = drive(BicycleWorld(ROUTE, x=50.0, walkers=(beside,)), seconds=6.0)
    assert all(r[3] != "walker" for r in rows)
    assert rows[-1][1] > 50.0 + HALF + 10.0 and min(walker_clearance(r[5]) for r in rows) > 0.0
    ahead = WalkerState(actor_id=100006, x=50.0 + HALF + 0.5, y=1.0, yaw=-math.pi / 2, speed=0.0, radius=0.3)
    rows = drive(BicycleWorld(ROUTE, x=50.0, walkers=(ahead,)), seconds=3.0)
    assert rows[0][3] == "walker" and rows[-1][1] < ahead.x - ahead.radius


def test_a_car_standing_just_past_the_goal_is_in_the_way():
    """The route ends at x = 60 m; a car queued just beyond it (its rear 0.5 m past the
    end) is ahead on the road, which goes on: the expert stops behind it."""
    route = junction_route(length=60, j0=200, j1=201)
    npc = ActorState(actor_id=4, x=60.5 + 2.25, y=0.0, yaw=0.0, speed=0.0)
    rows = drive(BicycleWorld(route, x=20.0, speed=8.0, actors=(npc,)), seconds=15.0)
    assert "vehicle" in {r[3] for r in rows}
    assert not touched(rows, 4) and max(r[1] for r in rows) < 60.5 - 0.3


def test_an_angled_car_with_a_corner_in_the_lane_is_an_obstacle():
    """A car turning off the route and stopped (centre 2.8 m left of the route, outside
    the corridor; heading 150 deg, so its rear corner pokes into the lane): the expert
    stops behind the corner instead of scraping it."""
    npc = ActorState(actor_id=5, x=60.0, y=2.8, yaw=math.radians(150.0), speed=0.0)
    assert min(abs(y) for _, y in _corners(npc.x, npc.y, npc.yaw, npc.length, npc.width)) < 0.5 * VEH.width
    rows = drive(BicycleWorld(ROUTE, x=20.0, speed=8.0, actors=(npc,)), seconds=30.0)
    assert "vehicle" in {r[3] for r in rows}
    assert not touched(rows, 5) and abs(rows[-1][2]) < 0.2


def test_starting_off_waits_for_a_car_about_to_cross():
    """Standing (a walker just gone), a car 9 m to the right comes across the route
    8 m ahead at 4 m/s: at the standing car's notional 0.5 m/s it would arrive late,
    but starting off it gets there with the crossing car, so it waits, then goes."""
    npc = ActorState(actor_id=6, x=58.0 + HALF, y=-9.0, yaw=math.pi / 2, speed=4.0)
    rows = drive(BicycleWorld(ROUTE, x=50.0, actors=(npc,)), seconds=15.0)
    assert rows[0][3] == "vehicle"
    assert not touched(rows, 6) and rows[-1][1] > 80.0


def test_yellow_in_the_dilemma_zone_stops_when_the_rear_would_cross_on_red():
    """11.3 m/s, 30.5 m before the line when it turns yellow (3 s): a comfortable stop
    needs 2.2 m/s^2 > comfort_decel, but going on, the red-light test point would cross
    the line after 3.08 s, on red. It stops (2.1 m/s^2, well within the emergency
    deceleration); from 20 m it clears in 2.2 s and goes on."""
    fast = junction_route(kmh=11.3 * 3.6 / CFG.speed_limit_factor)  # the expert cruises at 11.3 m/s
    for gap, stops in ((30.5, True), (20.0, False)):
        world = BicycleWorld(fast, x=LINE - gap - HALF, speed=11.3, lights=phases((YELLOW, 3.0), (RED, None)))
        rows = drive(world, seconds=12.0)
        test_point = [(r[0], r[5].ego.x - 0.4 * VEH.length) for r in rows]
        assert all(x < LINE for t, x in test_point if t >= 3.0) == stops
        assert ("yellow_light" in {r[3] for r in rows}) == stops
        if not stops:
            assert next(t for t, x in test_point if x >= LINE) < 3.0


def test_a_car_that_went_on_at_yellow_does_not_stop_over_the_line():
    """5 m/s, 5 m before the line when it turns yellow (3 s): a comfortable stop needs
    3.6 m/s^2, and going on, the test point clears the line in about 1.8 s, so it goes
    on. Once its front is over the line it could still stop before the test point
    crosses (the rule for a car that crept over in a queue), but it keeps going and
    clears the line on yellow; it stopped there, straddling the line, before."""
    def lights(t):
        if t < 3.0:
            return (dataclasses.replace(light(YELLOW), elapsed=t, yellow_time=3.0),)
        return (dataclasses.replace(light(RED), elapsed=t - 3.0),)
    world = BicycleWorld(ROUTE, x=LINE - 5.0 - HALF, speed=5.0, lights=lights)
    rows = drive(world, seconds=10.0)
    assert not {r[3] for r in rows} & {"yellow_light", "red_light"}
    test_point = [(r[0], r[5].ego.x - 0.4 * VEH.length) for r in rows]
    assert next(t for t, x in test_point if x >= LINE) < 3.0 and rows[-1][1] > LINE + 20.0
