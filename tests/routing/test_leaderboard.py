import subprocess
import sys

import pytest

from drive_il.errors import ConfigError
from drive_il.routing.leaderboard import read_route_xml
from drive_il.scenario import load_scenario

XML = """<?xml version="1.0"?>
<routes>
  <route id="7" town="Town01">
    <waypoint x="338.7" y="226.7" z="0.0" pitch="0.0" roll="0.0" yaw="270.0"/>
    <waypoint x="338.7" y="150.0" z="0.0" pitch="0.0" roll="0.0" yaw="270.0"/>
    <waypoint x="300.0" y="133.0" z="0.0" pitch="0.0" roll="0.0" yaw="180.0"/>
  </route>
</routes>
"""


def test_import_to_scenario(tmp_path):
    x = tmp_path / "r.xml"
    x.write_text(XML)
    (r,) = read_route_xml(x)
    assert r.town == "Town01" and r.spec.start == (338.7, 226.7) and r.spec.via == ((338.7, 150.0),)
    out = tmp_path / "s.toml"
    cp = subprocess.run([sys.executable, "-m", "drive_il", "routes", "import", str(x), "--out", str(out)],
                        capture_output=True, text=True)
    assert cp.returncode == 0, cp.stderr
    sc = load_scenario(out)
    assert sc.town == "Town01" and sc.routes[0].goal == (300.0, 133.0) and sc.routes[0].start_yaw_deg == 270.0


@pytest.mark.parametrize("text, msg", [
    ("<routes><route", "not valid XML"),
    ("<routes></routes>", "no <route> element"),
    ('<routes><route id="1" town="T"><waypoint x="1" y="2"/></route></routes>', "at least 2 are needed"),
    ('<routes><route id="1" town="T"><waypoint x="a" y="2"/><waypoint x="1" y="2"/></route></routes>',
     "expected a number"),
])
def test_bad_route_files(tmp_path, text, msg):
    x = tmp_path / "bad.xml"
    x.write_text(text)
    with pytest.raises(ConfigError, match=msg):
        read_route_xml(x)


LEADERBOARD_TOWN01 = """<?xml version="1.0"?>
<routes>
  <route id="0" town="Town01">
    <waypoint x="384.6" y="-1.98" z="0.0" pitch="0.0" roll="0.0" yaw="-180.0"/>
    <waypoint x="69.4" y="-2.04" z="0.0" pitch="0.0" roll="0.0" yaw="180.0"/>
  </route>
</routes>
"""


def test_leaderboard_route_imports_and_drives(tmp_path, maps_dir):
    x = tmp_path / "routes.xml"
    x.write_text(LEADERBOARD_TOWN01)
    out = tmp_path / "lb.toml"
    cp = subprocess.run([sys.executable, "-m", "drive_il", "routes", "import", str(x), "--out", str(out)],
                        capture_output=True, text=True)
    assert cp.returncode == 0, cp.stderr
    js = tmp_path / "s.json"
    cp = subprocess.run([sys.executable, "-m", "drive_il", "drive", str(out), "--maps-dir", str(maps_dir),
                         "--max-steps", "200", "--json", str(js)], capture_output=True, text=True, timeout=300)
    assert cp.returncode == 0, cp.stderr
    import json
    ep = json.loads(js.read_text())["episodes"][0]
    assert ep["town"] == "Town01" and ep["distance"] > 20 and ep["lateral_deviation_max"] < 0.5 and ep["off_road"] == 0
