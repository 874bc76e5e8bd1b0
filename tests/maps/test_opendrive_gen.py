"""The generated OpenDRIVE towns, checked through carla.Map (the path every town takes)."""

from __future__ import annotations

import collections
import hashlib
import math
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from drive_il.maps import opendrive_gen
from drive_il.maps import spawns
from drive_il.maps import towns as maps

carla = pytest.importorskip("carla")


@pytest.fixture(scope="module")
def circuit():
    return maps.parse_xodr(opendrive_gen.generate_circuit(), name="circuit")


@pytest.fixture(scope="module")
def grid():
    return maps.parse_xodr(opendrive_gen.generate_grid(), name="grid")


def _lane_key(w):
    return (w.road_id, w.section_id, w.lane_id)


def _strongly_connected(topology) -> bool:
    """True if every lane segment of the topology graph reaches every other."""
    succ = collections.defaultdict(set)
    for a, b in topology:
        succ[_lane_key(a)].add(_lane_key(b))
    nodes = set(succ) | {v for vs in succ.values() for v in vs}

    def reach(start, graph):
        seen, stack = {start}, [start]
        while stack:
            for v in graph[stack.pop()]:
                if v not in seen:
                    seen.add(v)
                    stack.append(v)
        return seen

    pred = collections.defaultdict(set)
    for u, vs in succ.items():
        for v in vs:
            pred[v].add(u)
    first = next(iter(sorted(nodes)))
    return reach(first, succ) == nodes and reach(first, pred) == nodes


def _walk(wp, step: float, n: int):
    """Follow the lane (first branch) for n steps; returns the waypoints visited."""
    out = [wp]
    for _ in range(n):
        nxt = wp.next(step)
        assert nxt, f"dead end at road {wp.road_id} lane {wp.lane_id} s={wp.s:.1f}"
        wp = nxt[0]
        out.append(wp)
    return out


# --------------------------------------------------------------------------- determinism
@pytest.mark.parametrize("name", opendrive_gen.GENERATED_TOWNS)
def test_generation_is_deterministic_across_processes(name):
    here = hashlib.sha1(opendrive_gen.generate(name).encode()).hexdigest()
    code = ("import hashlib; from drive_il.maps import opendrive_gen as g; "
            f"print(hashlib.sha1(g.generate({name!r}).encode()).hexdigest())")
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           env={"PYTHONHASHSEED": "12345", "PATH": ""}, check=True)
    assert other.stdout.strip() == here
    assert opendrive_gen.generate(name) == opendrive_gen.generate(name.upper())


@pytest.mark.parametrize("name", opendrive_gen.GENERATED_TOWNS)
def test_xml_header_speed_and_lane_layout(name):
    root = ET.fromstring(opendrive_gen.generate(name))
    header = root.find("header")
    assert header is not None and header.get("revMajor") == "1" and header.get("revMinor") == "4"
    assert "+proj=" in (header.findtext("geoReference") or "")
    speeds = root.findall("road/type/speed")
    assert len(speeds) == len(root.findall("road"))
    assert {(s.get("max"), s.get("unit")) for s in speeds} == {(str(opendrive_gen.SPEED_LIMIT_KMH), "km/h")}
    marks = {(m.get("type"), m.get("color")) for m in root.iter("roadMark")}
    assert ("solid", "white") in marks


# --------------------------------------------------------------------------- circuit
def test_circuit_is_a_closed_two_way_loop(circuit):
    topology = circuit.get_topology()
    # One cycle per direction through all four roads (no U-turns on a circuit).
    for sign in (-1, 1):
        one_way = [(a, b) for a, b in topology if a.lane_id * sign > 0]
        assert len(one_way) == 4 and all(b.lane_id * sign > 0 for _, b in one_way)
        assert _strongly_connected(one_way)
    for w in circuit.generate_waypoints(2.0):
        assert len(w.next(2.0)) == 1 and len(w.previous(2.0)) == 1  # no forks, no dead ends
    lengths = {}
    for lane in (-1, 1):
        start = circuit.get_waypoint(carla.Location(x=0.0, y=-1.75 * lane, z=0.0))
        assert start.lane_id == lane
        path = _walk(start, 2.0, 600)
        loc0 = start.transform.location
        back = next(i for i, w in enumerate(path) if i > 20 and w.transform.location.distance(loc0) < 1.5)
        lengths[lane] = back * 2.0
    assert 600 <= lengths[-1] <= 1000 and 600 <= lengths[1] <= 1000


def test_circuit_turns_both_ways_with_varied_radius(circuit):
    start = circuit.get_waypoint(carla.Location(x=0.0, y=1.75, z=0.0))
    path = _walk(start, 1.0, 900)
    yaws = [math.radians(w.transform.rotation.yaw) for w in path]
    # Curvature [1/m] from the yaw change per metre; CARLA yaw grows clockwise (rightward).
    k = [math.atan2(math.sin(b - a), math.cos(b - a)) for a, b in zip(yaws, yaws[1:])]
    right = [c for c in k if c > 1 / 200]
    left = [c for c in k if c < -1 / 200]
    assert len(right) > 30 and len(left) > 100  # mostly left-turning, with right-hand curves
    radii = sorted(1 / abs(c) for c in right + left)
    assert radii[0] < 40 and radii[-1] > 100  # sharp (25 m) and gentle (120 m) curves
    total = sum(k)
    assert abs(abs(total) - 2 * math.pi) < 0.2  # one full turn around the loop


def test_circuit_does_not_overlap_itself(circuit):
    # Points of the centre line more than 40 m apart along the loop stay farther apart
    # than the full road width (2 x (3.5 + 0.5 + 2.0) m) plus a margin.
    import numpy as np
    start = circuit.get_waypoint(carla.Location(x=0.0, y=1.75, z=0.0))
    path = _walk(start, 2.0, 439)  # ~878 m: once around
    xy = np.array([(w.transform.location.x, w.transform.location.y) for w in path])
    n = len(xy)
    i = np.arange(n)
    along = np.abs(i[:, None] - i[None, :])
    along = np.minimum(along, n - along) * 2.0
    dist = np.hypot(xy[:, None, 0] - xy[None, :, 0], xy[:, None, 1] - xy[None, :, 1])
    road_width = 2 * (opendrive_gen.LANE_WIDTH + opendrive_gen.SHOULDER_WIDTH + opendrive_gen.SIDEWALK_WIDTH)
    assert dist[along > 40.0].min() > road_width + 5.0


def test_circuit_markings_and_side_lanes(circuit):
    seen = set()
    for w in circuit.generate_waypoints(5.0):
        assert w.lane_width == pytest.approx(opendrive_gen.LANE_WIDTH)
        assert str(w.right_lane_marking.type) == "Solid" and str(w.right_lane_marking.color) == "White"
        assert w.right_lane_marking.width == pytest.approx(opendrive_gen.MARK_WIDTH)
        seen.add((str(w.left_lane_marking.type), str(w.left_lane_marking.color)))
        shoulder = w.get_right_lane()
        assert shoulder is not None and str(shoulder.lane_type) == "Shoulder"
        sidewalk = shoulder.get_right_lane()
        assert sidewalk is not None and str(sidewalk.lane_type) == "Sidewalk"
    assert seen == {("Broken", "White"), ("Solid", "Yellow"), ("SolidSolid", "Yellow")}


# --------------------------------------------------------------------------- grid
def test_grid_is_connected_without_dead_ends(grid):
    assert _strongly_connected(grid.get_topology())
    for w in grid.generate_waypoints(2.0):
        assert w.next(2.0) and w.previous(2.0)


@pytest.mark.parametrize("name", opendrive_gen.GENERATED_TOWNS)
def test_lanes_are_continuous_across_links(name):
    # Every lane end meets the start of each successor: no gaps or kinks where roads
    # join, around the circuit and through the grid's junctions.
    m = maps.parse_xodr(opendrive_gen.generate(name), name=name)
    checked = 0
    for a, _ in m.get_topology():
        end = a.next_until_lane_end(0.5)[-1] if a.next(0.5)[0].road_id == a.road_id else a
        for nxt in end.next(0.05):
            assert end.transform.location.distance(nxt.transform.location) < 0.1
            dyaw = math.radians(nxt.transform.rotation.yaw - end.transform.rotation.yaw)
            # 0.05 m on the sharpest lane (radius 8.25 m) turns 0.006 rad; a 1 deg kink fails.
            assert abs(math.atan2(math.sin(dyaw), math.cos(dyaw))) < 0.012
            checked += 1
    assert checked >= len(m.get_topology())


def test_grid_has_x_t_and_l_junctions_with_every_turn(grid):
    # Movements per junction from the heading change across each connecting lane.
    moves = collections.defaultdict(collections.Counter)
    for a, b in grid.get_topology():
        if a.is_junction:
            d = (b.transform.rotation.yaw - a.transform.rotation.yaw + 180.0) % 360.0 - 180.0
            moves[a.junction_id][{-1: "left", 0: "straight", 1: "right"}[round(d / 90.0)]] += 1
    kinds = collections.Counter()
    expected = {  # arms -> (left, straight, right) movements without U-turns
        "X": {"left": 4, "straight": 4, "right": 4},
        "T": {"left": 2, "straight": 2, "right": 2},
        "L": {"left": 1, "right": 1},
    }
    for counter in moves.values():
        kind = {12: "X", 6: "T", 2: "L"}[sum(counter.values())]
        assert dict(counter) == expected[kind]
        kinds[kind] += 1
    assert kinds == {"X": 4, "T": 8, "L": 4}


def test_grid_markings_and_junction_flags(grid):
    wps = grid.generate_waypoints(5.0)
    assert any(w.is_junction for w in wps) and any(not w.is_junction for w in wps)
    centres = {(str(w.left_lane_marking.type), str(w.left_lane_marking.color))
               for w in wps if not w.is_junction}
    assert centres == {("Solid", "Yellow"), ("Broken", "White")}
    assert all(str(w.right_lane_marking.type) == "Solid" for w in wps if not w.is_junction)
    assert all(str(w.left_lane_marking.type) == "NONE" for w in wps if w.is_junction)
    assert len(spawns.spawn_points(grid)) > 100
