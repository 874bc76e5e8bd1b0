"""Town resolution, parsing, the town cache, spawn points and bad-input errors of
drive_il.maps.towns."""

from __future__ import annotations

import hashlib
import math

import pytest

from drive_il.errors import MapError, ScenarioError
from drive_il.maps import opendrive_gen
from drive_il.maps import spawns
from drive_il.maps import towns as maps


@pytest.fixture
def no_maps_env(monkeypatch, tmp_path):
    """No $DRIVE_IL_MAPS_DIR and a user default that does not exist."""
    monkeypatch.delenv(maps.MAPS_DIR_ENV, raising=False)
    monkeypatch.setattr(maps, "USER_MAPS_DIR", tmp_path / "no_user_maps")


def _one_line(e: pytest.ExceptionInfo) -> str:
    msg = str(e.value)
    assert "\n" not in msg, msg
    return msg


# --------------------------------------------------------------------------- resolution
def test_resolve_maps_dir_precedence(monkeypatch, tmp_path):
    user = tmp_path / "user"
    monkeypatch.setattr(maps, "USER_MAPS_DIR", user)
    monkeypatch.delenv(maps.MAPS_DIR_ENV, raising=False)
    assert maps.resolve_maps_dir() is None  # user default absent
    user.mkdir()
    assert maps.resolve_maps_dir() == user
    monkeypatch.setenv(maps.MAPS_DIR_ENV, str(tmp_path / "env"))
    assert maps.resolve_maps_dir() == tmp_path / "env"
    assert maps.resolve_maps_dir(tmp_path / "arg") == tmp_path / "arg"


def test_available_towns_lists_files_then_generated(tmp_path, no_maps_env):
    (tmp_path / "Alpha.xodr").write_text("x")
    (tmp_path / "Circuit.xodr").write_text("x")  # shadows the generated circuit
    (tmp_path / "notes.txt").write_text("x")
    assert maps.available_towns(tmp_path) == ["Alpha", "Circuit", "grid"]
    assert maps.available_towns() == list(opendrive_gen.GENERATED_TOWNS)


def test_maps_dir_from_environment(monkeypatch, tmp_path, no_maps_env):
    (tmp_path / "Loop.xodr").write_text(opendrive_gen.generate_circuit())
    monkeypatch.setenv(maps.MAPS_DIR_ENV, str(tmp_path))
    town = maps.load_town("loop")  # case-insensitive stem
    assert town.name == "Loop" and town.path == tmp_path / "Loop.xodr" and not town.generated


# --------------------------------------------------------------------------- loading
@pytest.mark.parametrize("name", ["Town01", "Town02", "Town04"])
def test_real_towns_load(maps_dir, name):
    town = maps.load_town(name, maps_dir)
    assert town.name == name and town.path == maps_dir / f"{name}.xodr" and not town.generated
    assert town.digest == hashlib.sha1(town.xodr.encode()).hexdigest()
    assert town.xodr == (maps_dir / f"{name}.xodr").read_text()
    wps = town.map.generate_waypoints(20.0)
    assert len(wps) > 100
    assert any(w.is_junction for w in town.map.generate_waypoints(2.0))


def test_town_name_is_case_insensitive_and_path_works(maps_dir):
    assert maps.load_town("town01", maps_dir).name == "Town01"
    by_path = maps.load_town(str(maps_dir / "Town02.xodr"))
    assert by_path.name == "Town02" and by_path.path == maps_dir / "Town02.xodr"


@pytest.mark.parametrize("name", opendrive_gen.GENERATED_TOWNS)
def test_generated_towns_load_without_maps_dir(name, no_maps_env):
    town = maps.load_town(name)
    assert town.generated and town.path is None and town.name == name
    assert town.xodr == opendrive_gen.generate(name)
    assert len(town.map.generate_waypoints(5.0)) > 50


def test_parsed_maps_are_cached_by_text(no_maps_env, tmp_path):
    a = maps.load_town("circuit")
    b = maps.load_town("CIRCUIT")
    assert a is b and a.map is b.map and a == b
    path = tmp_path / "copy.xodr"
    path.write_text(a.xodr)
    c = maps.load_town(str(path))
    assert c.map is a.map and c.digest == a.digest and c.name == "copy" and c.path == path
    # another name for the same text shares everything derived from it
    assert c.lane_graph is a.lane_graph and c.spawn_points is a.spawn_points
    # without the cache: a new parse
    d = maps.load_town("circuit", cache=None)
    assert d.map is not a.map and d == a


def test_town_cache_is_a_bounded_lru_keyed_by_text_digest(no_maps_env, tmp_path):
    cache = maps.TownCache(size=2)
    circuit = maps.load_town("circuit", cache=cache)
    grid = maps.load_town("grid", cache=cache)
    assert len(cache) == 2 and cache.get(circuit.digest) is circuit and cache.get(grid.digest) is grid
    assert cache.find_map(grid.map) is grid and cache.find_map(object()) is None
    assert maps.load_town("circuit", cache=cache) is circuit  # and circuit becomes the newest
    (tmp_path / "Other.xodr").write_text(opendrive_gen.generate_circuit().replace("circuit 0", "circuit zero"))
    other = maps.load_town("Other", tmp_path, cache=cache)
    assert len(cache) == 2 and cache.get(grid.digest) is None  # least recently used went
    assert cache.get(circuit.digest) is circuit and cache.get(other.digest) is other
    assert maps.TOWNS.get(circuit.digest) is not circuit  # separate from the process-wide cache
    cache.clear()
    assert len(cache) == 0
    with pytest.raises(ValueError):
        maps.TownCache(size=0)


def test_parse_xodr_is_not_cached():
    text = opendrive_gen.generate_circuit()
    assert maps.parse_xodr(text, name="circuit") is not maps.parse_xodr(text, name="circuit")


def test_town_from_a_carla_map(no_maps_env):
    import carla
    m = carla.Map("/Game/Carla/Maps/Loop", opendrive_gen.generate_circuit())
    town = maps.TownMap.from_carla_map(m)
    assert town.name == "Loop" and town.map is m and town.path is None and not town.generated
    assert town.digest == hashlib.sha1(m.to_opendrive().encode()).hexdigest()
    assert maps.TownMap.from_carla_map(m, name="x").name == "x"
    # a map held by the town cache resolves to its town; any other is wrapped anew
    held = maps.load_town("circuit")
    assert maps.town_for_map(held.map) is held
    assert maps.town_for_map(m).map is m and maps.town_for_map(m) is not town


# --------------------------------------------------------------------------- spawn points
def test_town01_has_at_least_50_spawn_points_on_driving_lanes(town01_map):
    points = spawns.spawn_points(town01_map)
    assert len(points) >= 50
    assert points == spawns.spawn_points(town01_map)  # deterministic
    for p in points[::7]:
        wp = spawns.nearest_driving_waypoint(town01_map, p.x, p.y)
        assert math.hypot(wp.transform.location.x - p.x, wp.transform.location.y - p.y) < 0.2  # get_waypoint projects onto a polyline
        assert not wp.is_junction  # (road, lane) may differ where two roads join
        dyaw = math.radians(wp.transform.rotation.yaw) - p.yaw
        assert abs(math.atan2(math.sin(dyaw), math.cos(dyaw))) < 0.05
        assert -math.pi < p.yaw <= math.pi
    xy = [(p.x, p.y) for p in points]
    closest = min(math.dist(a, b) for i, a in enumerate(xy) for b in xy[i + 1:])
    assert closest >= 3.0


def test_spawn_points_respect_spacing_and_margin(town01_map):
    dense = spawns.spawn_points(town01_map, spacing=5.0)
    sparse = spawns.spawn_points(town01_map, spacing=20.0)
    assert len(dense) > 2 * len(sparse) > 0
    for p in sparse:
        wp = spawns.nearest_driving_waypoint(town01_map, p.x, p.y)
        assert not any(w.is_junction for w in wp.next(8.0) + wp.previous(8.0))
    with pytest.raises(ValueError):
        spawns.spawn_points(town01_map, spacing=0.0)


def test_circuit_spawn_points_cover_both_directions(no_maps_env):
    points = spawns.spawn_points(maps.load_town("circuit").map)
    assert {p.lane_id for p in points} == {-1, 1}
    assert len(points) > 100  # ~880 m loop, both directions, every 10 m


# --------------------------------------------------------------------------- bad input
def test_missing_file_names_the_file(tmp_path):
    missing = tmp_path / "Nowhere.xodr"
    with pytest.raises(MapError) as e:
        maps.load_town(str(missing))
    assert str(missing) in _one_line(e) and "not found" in str(e.value)


_CIRCUIT = opendrive_gen.generate_circuit()


@pytest.mark.parametrize("content, expected", [
    ("", "empty"),
    ("   \n", "empty"),
    ("this is not xml <<<", "not valid XML"),
    (_CIRCUIT[: len(_CIRCUIT) // 2], "not valid XML"),
    ("<svg><road/></svg>", "expected <OpenDRIVE>"),
    ("<OpenDRIVE><header/></OpenDRIVE>", "no <road>"),
    ('<OpenDRIVE><road id="7" length="10" junction="-1"/></OpenDRIVE>', "road 7 has no <planView>"),
    (_CIRCUIT.replace('<center><lane id="0"', '<centre><lane id="0"')
     .replace("</lane></center>", "</lane></centre>"), "centre lane"),
    (_CIRCUIT.replace('length="', 'length="x', 1).replace('<road name="circuit 0" length="x',
                                                          '<road name="circuit 0" length="x'),
     "non-numeric length"),
])
def test_corrupt_xodr_names_the_file(tmp_path, content, expected):
    path = tmp_path / "Broken.xodr"
    path.write_text(content)
    with pytest.raises(MapError) as e:
        maps.load_town(str(path))
    msg = _one_line(e)
    assert str(path) in msg and expected in msg


def test_xodr_carla_rejects_or_without_lanes_is_an_error(tmp_path):
    # Structurally plausible XML that carla.Map cannot use: a road whose only lane
    # section has a centre lane but no driving lanes.
    text = ('<OpenDRIVE><header/><road id="0" length="10" junction="-1"><planView>'
            '<geometry s="0" x="0" y="0" hdg="0" length="10"><line/></geometry></planView>'
            '<lanes><laneSection s="0"><center><lane id="0" type="none"/></center>'
            '</laneSection></lanes></road></OpenDRIVE>')
    path = tmp_path / "Lanes.xodr"
    path.write_text(text)
    with pytest.raises(MapError) as e:
        maps.load_town(str(path))
    assert str(path) in _one_line(e) and "no driving lanes" in str(e.value)


def test_binary_file_is_an_error(tmp_path):
    path = tmp_path / "Bin.xodr"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00garbage")
    with pytest.raises(MapError) as e:
        maps.load_town(str(path))
    assert str(path) in _one_line(e)


def test_unknown_town_lists_where_it_looked_and_the_towns(tmp_path, no_maps_env):
    (tmp_path / "Town99.xodr").write_text(_CIRCUIT)
    with pytest.raises(MapError) as e:
        maps.load_town("Town03", tmp_path)
    msg = _one_line(e)
    assert "'Town03'" in msg and str(tmp_path) in msg
    assert "Town99" in msg and "circuit" in msg and "grid" in msg


def test_unknown_town_without_maps_dir(no_maps_env, tmp_path):
    with pytest.raises(MapError) as e:
        maps.load_town("Town01")
    assert "no maps directory" in _one_line(e) and maps.MAPS_DIR_ENV in str(e.value)
    with pytest.raises(MapError) as e:
        maps.load_town("Town01", tmp_path / "absent")
    assert "does not exist" in _one_line(e)
    with pytest.raises(MapError):
        maps.load_town("  ")


def test_off_road_start_is_a_scenario_error(no_maps_env):
    m = maps.load_town("circuit").map
    p = spawns.spawn_points(m)[0]
    on = spawns.nearest_driving_waypoint(m, p.x, p.y)
    assert (on.road_id, on.lane_id) == (p.road_id, p.lane_id)
    # 1.5 m to the right of the lane centre: still on the lane (half width 1.75 m).
    rx, ry = -math.sin(p.yaw), math.cos(p.yaw)
    spawns.nearest_driving_waypoint(m, p.x + 1.5 * rx, p.y + 1.5 * ry)
    with pytest.raises(ScenarioError) as e:
        spawns.nearest_driving_waypoint(m, p.x + 40.0 * rx, p.y + 40.0 * ry)
    msg = _one_line(e)
    assert "m from the nearest driving lane" in msg and "off the road" in msg
    with pytest.raises(ScenarioError):
        spawns.nearest_driving_waypoint(m, p.x + 1.5 * rx, p.y + 1.5 * ry, max_offset=0.5)


def test_path_objects_and_byte_order_mark(tmp_path):
    path = tmp_path / "Bom.xodr"
    path.write_bytes(b"\xef\xbb\xbf" + _CIRCUIT.encode())
    town = maps.load_town(path)  # a Path, not a str
    assert town.name == "Bom" and town.xodr == _CIRCUIT and town.path == path


def test_town_spawn_points_are_computed_once(no_maps_env):
    town = maps.load_town("grid")
    assert town.spawn_points is town.spawn_points
    assert list(town.spawn_points) == spawns.spawn_points(town.map)
