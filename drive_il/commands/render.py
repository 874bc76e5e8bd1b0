"""``drive-il render --out DIR``: a gallery of embedded-camera frames for a person to look at.

Scenes are found automatically on the town's lanes (``carla.Map`` waypoints): a straight,
a curve and the approach to a junction, each with a few NPC vehicles placed on lanes
ahead. Every weather preset is rendered on the straight; the curve and the junction
under a few presets; two rigs (the default 66x200 DAVE-2 camera and an 800x600 forward
camera) and a three-camera DAVE-2-style rig (left / centre / right, 0.7 m apart). One
contact sheet per rig puts the presets side by side. By default the generated towns are
used ("circuit" for the straight and the curve, "grid" for the junction), so the command
works on a bare machine.

``--urban`` renders the urban scene set instead (issue 19, the README's screenshots): an
800x600 forward camera on the approach to a signalised junction of the town's
traffic-light layout (:func:`drive_il.maps.signals.signal_layout`; Town01 when it is in
the maps folder, else the generated "grid"): ``lights_<Weather>.png`` for ClearNoon,
ClearSunset and HardRainNoon (the head of the approach red, its stop line painted,
walkers on the sidewalk) and ``pedestrian_crossing.png`` (a walker crossing the lane in
front of the car at the junction entry).
"""

from __future__ import annotations

import argparse
import itertools
import math
from pathlib import Path

__all__ = ["find_scenes", "register", "run", "urban_scene"]

_SUBSET = ("ClearNoon", "HardRainNoon", "ClearSunset")
_NPC_COLOURS = ((170, 30, 30), (30, 70, 160), (220, 220, 215), (40, 40, 45), (200, 160, 40))


def register(sub) -> None:
    p = sub.add_parser(
        "render",
        help="write a gallery of embedded-camera PNG frames (presets x scenes x rigs)",
        description="Render the embedded world's cameras: every weather preset on a straight, "
                    "a curve and a junction, with NPC vehicles, for two camera rigs and a "
                    "three-camera DAVE-2 rig. Prints the paths written.",
    )
    p.add_argument("--out", type=Path, required=True, help="output folder (created)")
    p.add_argument("--town", default=None,
                   help="town for every scene (default: generated 'circuit' for the straight and the "
                        "curve, 'grid' for the junction)")
    p.add_argument("--maps-dir", type=Path, default=None,
                   help="folder of OpenDRIVE towns (*.xodr); default: $DRIVE_IL_MAPS_DIR")
    p.add_argument("--presets", nargs="*", default=None,
                   help="weather presets for the straight (default: all)")
    p.add_argument("--resolution", type=float, default=None,
                   help="map raster resolution [m/px] (default: chosen by map size, 0.05 for small maps)")
    p.add_argument("--scale", type=int, default=3,
                   help="also write 66x200-style frames enlarged this many times (nearest), 1 = off")
    p.add_argument("--urban", action="store_true",
                   help="render the urban scene set instead: traffic lights on a junction approach in "
                        "three weather presets (lights_<Weather>.png) and a pedestrian crossing in front "
                        "of the car (pedestrian_crossing.png); town: --town, else Town01 when found, "
                        "else the generated 'grid'")
    p.set_defaults(func=run)


def _heading_change(wps) -> float:
    yaws = [math.radians(w.transform.rotation.yaw) for w in wps]
    tot = 0.0
    for a, b in itertools.pairwise(yaws):
        tot += (b - a + math.pi) % (2 * math.pi) - math.pi
    return tot


def find_scenes(carla_map) -> dict[str, object]:
    """Waypoints for "straight", "curve" and "junction" scenes (missing keys: none found).

    Deterministic: waypoints are scanned in the map's own order.
    """
    out: dict[str, object] = {}
    wps = [w for w in carla_map.generate_waypoints(4.0) if not w.is_junction]
    for w in wps:
        ahead = [w]
        cur = w
        for _ in range(12):  # 48 m ahead in 4 m steps
            nxt = cur.next(4.0)
            if not nxt:
                break
            cur = nxt[0]
            ahead.append(cur)
        if len(ahead) < 10:
            continue
        turn = abs(_heading_change(ahead))
        junction_ahead = [i for i, a in enumerate(ahead) if a.is_junction]
        if "straight" not in out and not junction_ahead and turn < math.radians(1.0):
            out["straight"] = w
        if "curve" not in out and not junction_ahead and math.radians(25) < turn < math.radians(120):
            out["curve"] = ahead[1]
        if "junction" not in out and junction_ahead and 3 <= junction_ahead[0] <= 5:
            out["junction"] = w
        if len(out) == 3:
            break
    return out


def _npcs(w, rng_seed: int):
    """NPC ActorStates on lanes ahead of waypoint ``w`` (same lane 14 m and 32 m ahead,
    the opposite lane 22 m ahead)."""
    from ..types import ActorState

    actors = []
    k = 0
    for dist in (14.0, 32.0):
        nxt = w.next(dist)
        if nxt:
            t = nxt[0].transform
            actors.append(ActorState(actor_id=k + 1, x=t.location.x, y=t.location.y,
                                     yaw=math.radians(t.rotation.yaw), color=_NPC_COLOURS[(k + rng_seed) % 5]))
            k += 1
    nxt = w.next(22.0)
    if nxt:
        left = nxt[0].get_left_lane()
        if left is not None and str(left.lane_type) == "Driving" and left.lane_id * w.lane_id < 0:
            t = left.transform
            actors.append(ActorState(actor_id=k + 1, x=t.location.x, y=t.location.y,
                                     yaw=math.radians(t.rotation.yaw), color=_NPC_COLOURS[(k + rng_seed) % 5],
                                     length=4.9, width=2.0, height=1.6))
    return tuple(actors)


#: weather presets of the urban screenshots (noon, sunset, heavy rain)
URBAN_PRESETS = ("ClearNoon", "ClearSunset", "HardRainNoon")
#: ego distance before the stop line [m] for the lights and the crossing views
_LIGHT_VIEW, _CROSSING_VIEW = 22.0, 10.0


def urban_scene(town, distance: float = _LIGHT_VIEW):
    """(ego VehicleState, traffic lights (the approach's first), walkers on the
    sidewalk, the controlled lane's waypoint at the stop line) for an approach to a signalised junction of
    ``town``: the first head of its signal layout (by light id) whose lane runs straight
    for ``distance`` + 10 m before its stop line; the ego on that lane ``distance`` [m]
    before the stop line. Heads: the approach's red, the next head of its group green,
    the rest red (as a group's cycle). Without a signalised approach: a hand-built head
    at the first junction approach found (:func:`find_scenes`). Deterministic.

    Raises:
        ValueError: the town has no junction approach at all (one line naming the town).
    """
    import carla

    from ..maps.signals import signal_layout
    from ..types import TrafficLight, TrafficLightState, VehicleState, WalkerState

    m = town.map
    layout = signal_layout(town)
    chosen = ego_wp = line_wp = None
    for h in layout.heads:
        (x0, y0), (x1, y1) = h.stop_line
        L = math.hypot(x1 - x0, y1 - y0)
        if L <= 0.0:
            continue
        t = min(1.0, 1.75 / L)   # the rightmost lane, about half a lane from the right edge
        back = 0.5  # just before the line, on the incoming lane
        px = x0 + t * (x1 - x0) - back * math.cos(h.yaw)
        py = y0 + t * (y1 - y0) - back * math.sin(h.yaw)
        wp = m.get_waypoint(carla.Location(x=px, y=py, z=0.0))
        if wp is None or wp.is_junction or (wp.road_id, wp.lane_id) not in h.lanes:
            continue
        prev = wp.previous(distance + 10.0)
        if not prev:
            continue
        if abs(_heading_change([prev[0], wp])) > math.radians(3.0) or prev[0].is_junction:
            continue
        e = wp.previous(distance)
        if not e:
            continue
        chosen, ego_wp, line_wp = h, e[0], wp
        break
    if chosen is None:
        w = find_scenes(m).get("junction")
        if w is None:
            raise ValueError(f"{town.name}: no junction approach found for the urban scenes")
        ahead = w
        while not ahead.next(2.0)[0].is_junction:
            ahead = ahead.next(2.0)[0]
        t = ahead.transform
        yaw = math.radians(t.rotation.yaw)
        c, s = math.cos(yaw), math.sin(yaw)
        hw = 0.5 * ahead.lane_width
        x, y = t.location.x, t.location.y
        head = TrafficLight(light_id=1, x=x - (hw + 1.0) * s, y=y + (hw + 1.0) * c, yaw=yaw,
                            state=TrafficLightState.RED,
                            stop_line=((x - hw * s, y + hw * c), (x + hw * s, y - hw * c)),
                            lanes=((ahead.road_id, ahead.lane_id),))
        lights = (head,)
        e = ahead.previous(distance)
        ego_wp, line_wp = (e[0] if e else w), ahead
    else:
        group = layout.groups.get(chosen.group_id, (chosen.light_id,))
        k = group.index(chosen.light_id) if chosen.light_id in group else 0
        green = group[(k + 1) % len(group)] if len(group) > 1 else None
        lights = tuple(TrafficLight(light_id=h.light_id, x=h.x, y=h.y, yaw=h.yaw, z=h.z,
                                    state=TrafficLightState.GREEN if h.light_id == green else TrafficLightState.RED,
                                    junction_id=h.junction_id, group_id=h.group_id, stop_line=h.stop_line,
                                    lanes=h.lanes, height=h.height)
                       for h in sorted(layout.heads, key=lambda h: h.light_id != chosen.light_id))
    t = ego_wp.transform
    ego = VehicleState(x=t.location.x, y=t.location.y, yaw=math.radians(t.rotation.yaw))
    walkers = []
    colours = ((200, 60, 40), (40, 90, 170), (230, 200, 60), (70, 140, 80))
    for i, d in enumerate((distance - 4.0, distance * 0.5, 3.0)):
        nxt = ego_wp.next(max(d, 0.5))
        if not nxt:
            continue
        side = nxt[0]
        for _ in range(4):   # the sidewalk right of the lane
            side = side.get_right_lane()
            if side is None or str(side.lane_type) == "Sidewalk":
                break
        if side is None or str(side.lane_type) != "Sidewalk":
            continue
        st = side.transform
        walkers.append(WalkerState(actor_id=100000 + i, x=st.location.x, y=st.location.y,
                                   yaw=math.radians(st.rotation.yaw) + (math.pi if i % 2 else 0.0),
                                   speed=1.3, color=colours[i % len(colours)]))
    return ego, lights, tuple(walkers), line_wp


def run_urban(args: argparse.Namespace, out: Path) -> int:
    """``drive-il render --urban``: lights_<Weather>.png and pedestrian_crossing.png."""
    from ..errors import MapError
    from ..maps import load_town
    from ..scenario import CameraConfig
    from ..sim.embedded.camera import Camera
    from ..sim.embedded.raster import MapRaster
    from ..sim.embedded.weather import WeatherLook
    from ..types import VehicleState, WalkerState

    if args.town:
        town = load_town(args.town, args.maps_dir)
    else:
        try:
            town = load_town("Town01", args.maps_dir)
        except MapError as e:
            print(f"Town01 not available ({e}); using the generated 'grid' town")
            town = load_town("grid", None)
    raster = MapRaster.for_town(town, resolution=args.resolution)
    spec = CameraConfig(name="wide", width=800, height=600, fov_deg=90.0, x=1.4, z=1.5, pitch_deg=-3.0)
    written: list[Path] = []

    def save(img, name: str) -> None:
        from PIL import Image
        path = out / f"{name}.png"
        Image.fromarray(img).save(path, optimize=True)   # lossless, smallest PNG
        written.append(path)

    ego, lights, walkers, line_wp = urban_scene(town, _LIGHT_VIEW)
    for preset in URBAN_PRESETS:
        cam = Camera(spec, raster, WeatherLook.from_preset(preset))
        save(cam.render(ego, (), frame=0, seed=0, lights=lights, walkers=walkers), f"lights_{preset}")
    # a walker crossing the lane at the junction entry, seen from 14 m before the stop line
    e = line_wp.previous(_CROSSING_VIEW)
    t = (e[0] if e else line_wp).transform
    near = VehicleState(x=t.location.x, y=t.location.y, yaw=math.radians(t.rotation.yaw))
    lt = line_wp.transform
    yaw = math.radians(lt.rotation.yaw)
    f = 1.5  # just beyond the stop line, where the crossing is
    c, s = math.cos(yaw), math.sin(yaw)
    cross = tuple(WalkerState(actor_id=100010 + i, x=lt.location.x + f * c - off * s,
                              y=lt.location.y + f * s + off * c, yaw=yaw + sgn * math.pi / 2,
                              speed=1.4, on_road=True, color=col)
                  for i, (off, sgn, col) in enumerate(((0.4, -1.0, (190, 40, 50)), (-2.6, 1.0, (60, 110, 190)))))
    cam = Camera(spec, raster, WeatherLook.from_preset("ClearNoon"))
    save(cam.render(near, (), frame=0, seed=0, lights=lights, walkers=walkers + cross), "pedestrian_crossing")
    head = lights[0]
    print(f"urban scenes: {town.name}, light {head.light_id} (junction {head.junction_id}), "
          f"ego {_LIGHT_VIEW:.0f} m (lights) and {_CROSSING_VIEW:.0f} m (crossing) before its stop line")
    for p in written:
        print(p)
    return 0


def run(args: argparse.Namespace) -> int:
    import cv2
    import numpy as np

    from ..errors import MapError
    from ..maps import load_town
    from ..scenario import WEATHER_PRESETS, CameraConfig
    from ..sim.embedded.camera import Camera
    from ..sim.embedded.raster import MapRaster
    from ..sim.embedded.weather import WeatherLook
    from ..types import VehicleState

    presets = tuple(args.presets) if args.presets else WEATHER_PRESETS
    for p in presets:
        if p not in WEATHER_PRESETS:
            raise MapError(f"--presets: unknown weather preset {p!r} (known: {', '.join(WEATHER_PRESETS)})")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if getattr(args, "urban", False):
        return run_urban(args, out)
    towns = {"straight": args.town or "circuit", "curve": args.town or "circuit", "junction": args.town or "grid"}
    rigs = {
        "dave2": (CameraConfig(name="center"),),
        "wide": (CameraConfig(name="wide", width=800, height=600, fov_deg=90.0, x=1.4, z=1.5, pitch_deg=-5.0),),
        "dave2x3": (CameraConfig(name="left", y=-0.7), CameraConfig(name="center"), CameraConfig(name="right", y=0.7)),
    }
    written: list[Path] = []

    def save(img: np.ndarray, name: str, small: bool) -> None:
        path = out / f"{name}.png"
        cv2.imwrite(str(path), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
        written.append(path)
        if small and args.scale > 1:
            big = cv2.resize(img, None, fx=args.scale, fy=args.scale, interpolation=cv2.INTER_NEAREST)
            p2 = out / f"{name}_x{args.scale}.png"
            cv2.imwrite(str(p2), cv2.cvtColor(big, cv2.COLOR_RGB2BGR))
            written.append(p2)

    sheets: dict[str, list[tuple[str, np.ndarray]]] = {r: [] for r in rigs}
    loaded: dict[str, tuple] = {}
    for scene, town_name in towns.items():
        if town_name not in loaded:
            town = load_town(town_name, args.maps_dir)
            loaded[town_name] = (town, MapRaster.for_town(town, resolution=args.resolution), find_scenes(town.map))
        town, raster, scenes = loaded[town_name]
        w = scenes.get(scene)
        if w is None:
            print(f"{town.name}: no {scene} found, skipped")
            continue
        t = w.transform
        ego = VehicleState(x=t.location.x, y=t.location.y, yaw=math.radians(t.rotation.yaw))
        actors = _npcs(w, len(written))
        scene_presets = presets if scene == "straight" else tuple(p for p in _SUBSET if p in presets) or presets[:1]
        for preset in scene_presets:
            look = WeatherLook.from_preset(preset)
            for rig_name, rig in rigs.items():
                if rig_name == "dave2x3" and preset != scene_presets[0]:
                    continue
                frames = [Camera(c, raster, look).render(ego, actors, frame=0, seed=0) for c in rig]
                img = frames[0] if len(frames) == 1 else np.concatenate(
                    [np.concatenate([f, np.full((f.shape[0], 4, 3), 255, np.uint8)], axis=1) for f in frames], axis=1)
                small = rig[0].width <= 320
                save(img, f"{town.name}_{scene}_{preset}_{rig_name}", small)
                if scene == "straight" and rig_name != "dave2x3":
                    sheets[rig_name].append((preset, img))
    for rig_name, items in sheets.items():
        if not items:
            continue
        cols = 4 if items[0][1].shape[1] <= 320 else 3
        tiles = []
        for preset, img in items:
            tile = img if img.shape[1] > 320 else cv2.resize(img, None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST)
            tile = tile.copy()
            cv2.putText(tile, preset, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
            tiles.append(tile)
        h, wd = tiles[0].shape[:2]
        while len(tiles) % cols:
            tiles.append(np.zeros((h, wd, 3), np.uint8))
        rows = [np.concatenate(tiles[i:i + cols], axis=1) for i in range(0, len(tiles), cols)]
        sheet = np.concatenate(rows, axis=0)
        if sheet.shape[1] > 2400:
            f = 2400 / sheet.shape[1]
            sheet = cv2.resize(sheet, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
        path = out / f"contact_sheet_{rig_name}.png"
        cv2.imwrite(str(path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
        written.append(path)
    for p in written:
        print(p)
    return 0
