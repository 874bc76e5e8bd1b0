"""Wire layouts of the CARLA 0.9.16 client (no server, no client)."""

from __future__ import annotations

import struct

import pytest

from drive_il.serve import encoding as E
from drive_il.serve.handlers import with_geo_reference


def test_token_layout():
    t = E.token_bytes(7, 40123, "127.0.0.1")
    assert len(t) == 24
    sid, port, proto, atype = struct.unpack_from("<IHBB", t)
    assert (sid, port, proto, atype) == (7, 40123, 1, 1)
    assert t[8:12] == bytes([127, 0, 0, 1]) and t[12:] == bytes(12)
    assert E.parse_token(t) == (7, 40123, "127.0.0.1")


def test_responses():
    assert E.ok(3) == [[1, 3]]
    assert E.err("no") == [[0, ["no"]]]
    assert E.ok_void() == [[False]]
    assert E.err_void("no") == [[True, ["no"]]]


@pytest.mark.parametrize("fixed", [None, 0.05])
def test_episode_settings_round_trip(fixed):
    s = E.EpisodeSettings(synchronous_mode=True, fixed_delta_seconds=fixed, max_substeps=7)
    wire = s.to_msgpack()
    assert len(wire) == 11
    assert wire[2] == ([False] if fixed is None else [True, fixed])
    assert E.EpisodeSettings.from_msgpack(wire) == s
    with pytest.raises(ValueError):
        E.EpisodeSettings.from_msgpack(wire[:5])


def test_struct_sizes_match_the_client():
    assert E.SENSOR_HEADER.size == 48
    assert E.EPISODE_HEADER.size == 36
    assert E.ACTOR_STATE.size == 119
    rec = E.pack_actor_state(5, (1, 2, 3, 0, 90, 0), (1, 0, 0), (0, 0, 0), (0, 0, 0),
                             (0.5, -0.25, 0.0, False, True, False, 3), 30.0)
    (aid, state) = struct.unpack_from("<IB", rec)
    assert (aid, state) == (5, 1)
    # the vehicle union starts at byte 65: throttle, steer, brake, 3 bools, gear, speed limit
    t, s, b, hb, rev, mgs, gear, limit = struct.unpack_from("<fff???if", rec, 65)
    assert (t, s, b, hb, rev, mgs, gear, limit) == (0.5, -0.25, 0.0, False, True, False, 3, 30.0)
    x, y, z, _pitch, yaw, _roll = struct.unpack_from("<6f", rec, 5)
    assert (x, y, z, yaw) == (1, 2, 3, 90)


def test_vehicle_control_is_clamped():
    assert E.vehicle_control([2, -3, -1, 1, 0, 0, 2]) == (1.0, -1.0, 0.0, True, False, False, 2)


def test_weather_round_trip():
    w = {k: float(i) for i, k in enumerate(E.WEATHER_FIELDS)}
    assert E.weather_from_list(E.weather_to_list(w)) == w
    with pytest.raises(ValueError):
        E.weather_from_list([1.0, 2.0])


def test_description_keeps_attribute_types():
    uid, bp, attrs = E.parse_description([3, "vehicle.audi.a2", [["sticky_control", E.ATTR_BOOL, "true"],
                                                                  ["role_name", E.ATTR_STRING, b"hero"]]])
    assert (uid, bp) == (3, "vehicle.audi.a2")
    assert attrs == {"sticky_control": (E.ATTR_BOOL, "true"), "role_name": (E.ATTR_STRING, "hero")}


@pytest.mark.parametrize("header", ['<header revMajor="1" revMinor="4"/>',
                                    '<header revMajor="1" revMinor="4"></header>'])
def test_geo_reference_is_added_once(header):
    x = f'<?xml version="1.0"?><OpenDRIVE>{header}<road id="1"/></OpenDRIVE>'
    y = with_geo_reference(x)
    assert y.count("<geoReference>") == 1 and "</header>" in y
    assert with_geo_reference(y) == y
    import xml.etree.ElementTree as ET
    assert ET.fromstring(y).find("header/geoReference") is not None
