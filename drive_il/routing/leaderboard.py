"""Import of CARLA leaderboard route XML into scenario routes.

Leaderboard route files (version 1, as used by the CARLA leaderboard and
scenario_runner)::

    <routes>
      <route id="0" town="Town01">
        <waypoint x="338.7" y="226.7" z="0.0" pitch="0.0" roll="0.0" yaw="270.0"/>
        ...
      </route>
    </routes>

Coordinates are CARLA world coordinates [m]; yaw is in degrees (converted at this
boundary). The leaderboard 2.0 layout (``<waypoints><position x= y= z=/></waypoints>``
inside a route) is read too. Each route becomes a :class:`~drive_il.scenario.RouteSpec`
(start = first waypoint, goal = last, via = the ones in between, start heading = the
first waypoint's yaw), planned on the town's lane graph by the route planner.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError
from ..scenario import RouteSpec

__all__ = ["ImportedRoute", "read_route_xml", "routes_to_toml"]


@dataclass(frozen=True)
class ImportedRoute:
    """One route of a leaderboard file.

    Attributes:
        route_id: the XML ``id``.
        town: the XML ``town``.
        spec: the route as a RouteSpec (x, y [m], start yaw [deg]).
    """

    route_id: str
    town: str
    spec: RouteSpec


def _float(el: ET.Element, key: str, path: Path, default: float | None = None) -> float:
    v = el.get(key)
    if v is None:
        if default is not None:
            return default
        raise ConfigError(f"{path}: <{el.tag}> lacks the attribute '{key}'")
    try:
        return float(v)
    except ValueError:
        raise ConfigError(f"{path}: <{el.tag} {key}={v!r}>: expected a number") from None


def read_route_xml(path: str | Path) -> list[ImportedRoute]:
    """Read a leaderboard route XML file.

    Raises:
        ConfigError: missing file, not XML, no <route>, a route with fewer than two
            waypoints, a waypoint without x/y, or a non-numeric coordinate (one line
            naming the file).
    """
    p = Path(path)
    try:
        root = ET.parse(p).getroot()
    except FileNotFoundError:
        raise ConfigError(f"{p}: route file not found") from None
    except ET.ParseError as e:
        raise ConfigError(f"{p}: not valid XML: {e}") from None
    routes = [root] if root.tag == "route" else root.findall(".//route")
    if not routes:
        raise ConfigError(f"{p}: no <route> element (expected CARLA leaderboard route XML)")
    out = []
    for r in routes:
        rid = r.get("id", str(len(out)))
        town = r.get("town") or ""
        if not town:
            raise ConfigError(f"{p}: route {rid} has no 'town' attribute")
        wps = r.findall("waypoint") or r.findall("./waypoints/position")
        if len(wps) < 2:
            raise ConfigError(f"{p}: route {rid} has {len(wps)} waypoint(s); at least 2 are needed")
        pts = [(_float(w, "x", p), _float(w, "y", p)) for w in wps]
        yaw = wps[0].get("yaw")
        spec = RouteSpec(start=pts[0], goal=pts[-1], via=tuple(pts[1:-1]),
                         start_yaw_deg=float(yaw) if yaw is not None else None)
        out.append(ImportedRoute(route_id=rid, town=town, spec=spec))
    return out


def _num(v: float) -> str:
    return repr(float(round(v, 3)))


def routes_to_toml(routes: list[ImportedRoute], *, name: str, source: str, base: str | None = None) -> str:
    """A scenario TOML text holding the routes (all must be in one town).

    Args:
        routes: imported routes.
        name: scenario name.
        source: the XML file (a comment).
        base: optional text of a scenario to extend (its ``name``, ``town`` and
            ``[[routes]]`` are replaced).

    Raises:
        ConfigError: the routes span several towns.
    """
    towns = sorted({r.town for r in routes})
    if len(towns) != 1:
        raise ConfigError(f"{source}: routes in several towns ({', '.join(towns)}); import one town at a time "
                          f"with --town")
    lines = [f"# Imported from CARLA leaderboard route XML {source} by `drive-il routes import`.",
             f'name = "{name}"', f'town = "{towns[0]}"']
    if base:
        import tomllib
        data = tomllib.loads(base)
        for k in ("name", "town", "routes"):
            data.pop(k, None)
        lines.append("# settings of the base scenario follow")
        lines.append(_dump_flat(data))
    for r in routes:
        s = r.spec
        lines.append("")
        lines.append(f"[[routes]]  # leaderboard route {r.route_id}")
        lines.append(f"start = [{_num(s.start[0])}, {_num(s.start[1])}]")
        lines.append(f"goal = [{_num(s.goal[0])}, {_num(s.goal[1])}]")
        if s.via:
            lines.append("via = [" + ", ".join(f"[{_num(x)}, {_num(y)}]" for x, y in s.via) + "]")
        if s.start_yaw_deg is not None:
            lines.append(f"start_yaw_deg = {_num(s.start_yaw_deg)}")
    return "\n".join(lines) + "\n"


def _val(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, list):
        return "[" + ", ".join(_val(x) for x in v) + "]"
    raise TypeError(type(v))


def _dump_flat(data: dict) -> str:
    """Minimal TOML writer for scenario tables (scalars, arrays, tables, arrays of tables)."""
    out, tables = [], []
    for k, v in data.items():
        if isinstance(v, dict):
            tables.append((k, v, False))
        elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            tables.append((k, v, True))
        else:
            out.append(f"{k} = {_val(v)}")
    for k, v, many in tables:
        for item in (v if many else [v]):
            out.append("")
            out.append(f"[[{k}]]" if many else f"[{k}]")
            for kk, vv in item.items():
                if isinstance(vv, dict):
                    raise TypeError("nested tables deeper than one level are not supported")
                out.append(f"{kk} = {_val(vv)}")
    return "\n".join(out)
