"""Signal layout of the map model: one group per signalised junction, one head per
incoming road at its stop line, poles on the right roadside, OpenDRIVE signals where the
file has them."""

from __future__ import annotations

import math
import re
import time

import pytest

from drive_il.errors import MapError
from drive_il.maps import TownMap, load_town, parse_xodr
from drive_il.maps import signals as S
from drive_il.maps.signals import SignalLayout, signal_layout

carla = pytest.importorskip("carla")


def _incoming(town: TownMap) -> dict[int, dict[int, set[tuple[int, int]]]]:
    """junction id -> {incoming road id: its incoming driving lanes}, from the lane graph."""
    g = town.lane_graph
    rj = S._road_junctions(town.xodr)
    out: dict[int, dict[int, set[tuple[int, int]]]] = {}
    for k, sg in enumerate(g.segments):
        if sg.is_junction:
            continue
        for j in g.succ[k]:
            if g.segments[j].is_junction:
                jid = rj[g.segments[j].road_id]
                out.setdefault(jid, {}).setdefault(sg.road_id, set()).add((sg.road_id, sg.lane_id))
    return out


def _lane_ends(town: TownMap) -> dict[tuple[int, int], tuple[float, float, float]]:
    """(road, lane) of a lane entering a junction -> (x, y, width) at its end."""
    g = town.lane_graph
    out = {}
    for k, sg in enumerate(g.segments):
        if not sg.is_junction and any(g.segments[j].is_junction for j in g.succ[k]):
            out[(sg.road_id, sg.lane_id)] = (float(sg.xy[-1, 0]), float(sg.xy[-1, 1]), float(sg.width[-1]))
    return out


def check_layout(town: TownMap, layout: SignalLayout) -> None:
    """The invariants of a placed layout (see the module docstring of signals.py)."""
    heads = layout.heads
    assert [h.light_id for h in heads] == list(range(1, len(heads) + 1))
    incoming = _incoming(town)
    ends = _lane_ends(town)
    for gid, ids in layout.groups.items():
        hs = [layout.head(i) for i in ids]
        # a head per incoming road, each with all the road's incoming lanes
        assert {h.road_id for h in hs} == set(incoming[gid]), gid
        for h in hs:
            assert set(h.lanes) == incoming[gid][h.road_id]
            assert h.junction_id == h.group_id == gid
        # CARLA's default groups: every head its own turn, in order
        assert [h.index for h in hs] == list(range(len(hs)))
        assert layout.turns[gid] == len(hs) >= 2
    for h in heads:
        (x0, y0), (x1, y1) = h.stop_line
        fx, fy = math.cos(h.yaw), math.sin(h.yaw)
        rx, ry = -fy, fx
        # across the lanes (perpendicular to the driving direction), right edge first
        assert abs((x1 - x0) * fx + (y1 - y0) * fy) < 0.05
        assert (x0 - x1) * rx + (y0 - y1) * ry > 0.0
        widths = sum(ends[ln][2] for ln in h.lanes)
        assert math.hypot(x1 - x0, y1 - y0) == pytest.approx(widths, abs=0.05)
        # at the junction entry: the end of every controlled lane lies on the line
        for ln in h.lanes:
            ex, ey, _ = ends[ln]
            assert abs((ex - x0) * fx + (ey - y0) * fy) < 0.1, (h.light_id, ln)
            lat = (ex - x0) * rx + (ey - y0) * ry
            assert -widths - 0.05 < lat < 0.05
        # pole: right of the line's right end, within the roadside, off the driving lanes
        lat = (h.x - x0) * rx + (h.y - y0) * ry
        lon = (h.x - x0) * fx + (h.y - y0) * fy
        assert 0.2 < lat < 3.0 and abs(lon) < 0.1, h
        assert town.map.get_waypoint(carla.Location(h.x, h.y, h.z), False, carla.LaneType.Driving) is None
    for ln, lid in layout.lane_light.items():
        assert ln in layout.head(lid).lanes


def test_grid_every_three_and_four_way_junction_is_signalised():
    town = load_town("grid")
    layout = signal_layout(town)
    assert layout.source == "junctions"
    # 4 x 4 nodes: 4 X junctions (4 heads), 8 T junctions (3 heads); the 4 L corners stay
    assert len(layout.groups) == 12 and len(layout) == 4 * 4 + 8 * 3
    assert sorted(layout.turns.values()) == [3] * 8 + [4] * 4
    check_layout(town, layout)
    # min_roads = 4: only the X junctions
    assert len(signal_layout(town, 4).groups) == 4


def test_layout_is_cached_on_the_town_and_stable():
    town = load_town("grid")
    assert signal_layout(town) is signal_layout(town)
    again = S.build_signal_layout(town)
    assert again.heads == signal_layout(town).heads
    with pytest.raises(MapError, match="min_roads"):
        signal_layout(town, 1)
    with pytest.raises(KeyError, match="light_id 999"):
        signal_layout(town).head(999)


def test_turn_order_is_clockwise_around_the_junction():
    layout = signal_layout(load_town("grid"))
    for ids in layout.groups.values():
        hs = [layout.head(i) for i in ids]
        mx = sum(0.5 * (h.stop_line[0][0] + h.stop_line[1][0]) for h in hs) / len(hs)
        my = sum(0.5 * (h.stop_line[0][1] + h.stop_line[1][1]) for h in hs) / len(hs)
        ang = [math.atan2(0.5 * (h.stop_line[0][1] + h.stop_line[1][1]) - my,
                          0.5 * (h.stop_line[0][0] + h.stop_line[1][0]) - mx) for h in hs]
        assert ang == sorted(ang)


def test_circuit_has_no_lights():
    layout = signal_layout(load_town("circuit"))
    assert len(layout) == 0 and layout.source == "none" and not layout.groups


@pytest.mark.parametrize("seed", [0, 3, 13])
def test_procedural_roundabouts_are_not_signalised(seed):
    town = load_town(f"procedural:{seed}")
    layout = signal_layout(town)
    rj = S._road_junctions(town.xodr)
    rings = {j for j in rj.values() if j >= 5000}  # procedural.py numbers ring junctions 5000+
    assert rings and S._roundabout_junctions(town.lane_graph, rj) == rings
    assert not rings & set(layout.groups)
    # with min_roads = 2 the ring junctions (two roads enter each) are still left out
    assert not rings & set(signal_layout(town, 2).groups)
    # every other junction where >= 3 roads enter is signalised
    incoming = _incoming(town)
    want = {j for j, roads in incoming.items() if len(roads) >= 3 and j not in rings}
    assert set(layout.groups) == want
    check_layout(town, layout)


def test_procedural_without_roundabout_has_no_ring():
    town = load_town("procedural:1")
    rj = S._road_junctions(town.xodr)
    assert S._roundabout_junctions(town.lane_graph, rj) == set()
    assert len(signal_layout(town).groups) > 0


@pytest.mark.parametrize("name, groups, heads", [("Town01", 12, 36), ("Town02", 8, 24), ("Town04", 24, 81)])
def test_carla_towns(maps_dir, name, groups, heads):
    town = load_town(name, maps_dir)
    t = time.perf_counter()
    layout = S.build_signal_layout(town)
    assert time.perf_counter() - t < 1.0  # lane graph already built; ~5 ms measured
    assert layout.source == "junctions"
    assert (len(layout.groups), len(layout)) == (groups, heads)
    check_layout(town, layout)


# ------------------------------------------------------------ OpenDRIVE signals
def _with_signals(town: TownMap) -> tuple[str, dict[int, str]]:
    """The grid's text with a traffic-light <signal> on each incoming road of junction
    1001 and two <controller>s: the first head alone (sequence 1), the others together
    (sequence 0)."""
    text = town.xodr
    placed = [h for h in signal_layout(town).heads if h.group_id == 1001]
    lengths = {int(m.group(2)): float(m.group(1)) for m in
               re.finditer(r'<road name="[^"]*" length="([^"]*)" id="([^"]*)"', text)}
    sig_of = {}
    for n, h in enumerate(placed):
        sid = str(900 + n)
        forward = h.lanes[0][1] < 0
        s = lengths[h.road_id] - 3.0 if forward else 3.0
        sig = (f'<signals><signal s="{s}" t="{-6.0 if forward else 6.0}" id="{sid}" name="tl{n}" '
               f'dynamic="yes" orientation="{"+" if forward else "-"}" zOffset="0" country="DEU" '
               f'type="1000001" subtype="-1" value="-1" height="3" width="0.5"/></signals>')
        pat = re.compile(r'(<road name="[^"]*" length="[^"]*" id="' + str(h.road_id) + r'" .*?)<signals/>',
                         re.DOTALL)
        text, k = pat.subn(lambda m, sig=sig: m.group(1) + sig, text, count=1)
        assert k == 1
        sig_of[h.light_id] = sid
    ids = list(sig_of.values())
    ctrl = (f'<controller id="A" name="a"><control signalId="{ids[0]}" type="0"/></controller>'
            f'<controller id="B" name="b">' + "".join(f'<control signalId="{i}" type="0"/>' for i in ids[1:])
            + '</controller>')
    text = text.replace("</OpenDRIVE>", ctrl + "</OpenDRIVE>")
    text, k = re.subn(r'(<junction [^>]*id="1001"[^>]*>)',
                      r'\1<controller id="B" sequence="0"/><controller id="A" sequence="1"/>', text)
    assert k == 1
    return text, sig_of


def test_opendrive_signals_and_controllers_are_used():
    grid = load_town("grid")
    text, sig_of = _with_signals(grid)
    town = TownMap.from_carla_map(parse_xodr(text, name="grid_signals"), name="grid_signals", xodr=text)
    layout = signal_layout(town)
    assert layout.source == "opendrive"
    assert set(layout.groups) == {1001} and len(layout) == 3
    placed = {h.road_id: h for h in signal_layout(grid).heads if h.group_id == 1001}
    by_sid = {h.opendrive_id: h for h in layout.heads}
    first = by_sid[sig_of[min(sig_of)]]
    assert first.index == 1  # controller A has sequence 1
    assert all(h.index == 0 for h in layout.heads if h is not first)  # B: one turn, together
    assert layout.turns[1001] == 2
    for h in layout.heads:
        ref = placed[h.road_id]
        assert h.lanes == ref.lanes and h.stop_line == ref.stop_line
        # pole at the signal's (s, t): 3 m before the road end, 6 m right of the reference line
        fx, fy = math.cos(h.yaw), math.sin(h.yaw)
        (x0, y0), _ = h.stop_line
        lon = (h.x - x0) * fx + (h.y - y0) * fy
        lat = -(h.x - x0) * fy + (h.y - y0) * fx
        assert lon == pytest.approx(-3.0, abs=0.2)
        assert lat == pytest.approx(6.0 - 3.5, abs=0.2)  # the line starts at the lane's right edge
