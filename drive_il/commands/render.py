"""``drive-il render --out DIR``: a gallery of embedded-camera frames for a person to look at.

Scenes are found automatically on the town's lanes (``carla.Map`` waypoints): a straight,
a curve and the approach to a junction, each with a few NPC vehicles placed on lanes
ahead. Every weather preset is rendered on the straight; the curve and the junction
under a few presets; two rigs (the default 66x200 DAVE-2 camera and an 800x600 forward
camera) and a three-camera DAVE-2-style rig (left / centre / right, 0.7 m apart). One
contact sheet per rig puts the presets side by side. By default the generated towns are
used ("circuit" for the straight and the curve, "grid" for the junction), so the command
works on a bare machine.
"""

from __future__ import annotations

import argparse
import itertools
import math
from pathlib import Path

__all__ = ["find_scenes", "register", "run"]

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


def run(args: argparse.Namespace) -> int:
    import cv2
    import numpy as np

    from ..errors import MapError
    from ..scenario import WEATHER_PRESETS, CameraConfig
    from ..sim.embedded.camera import Camera
    from ..sim.embedded.raster import MapRaster
    from ..sim.embedded.weather import WeatherLook
    from ..maps import load_town
    from ..types import VehicleState

    presets = tuple(args.presets) if args.presets else WEATHER_PRESETS
    for p in presets:
        if p not in WEATHER_PRESETS:
            raise MapError(f"--presets: unknown weather preset {p!r} (known: {', '.join(WEATHER_PRESETS)})")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
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
