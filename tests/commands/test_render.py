"""``drive-il render``: the gallery on the generated towns (coarse rasters for speed)."""

from __future__ import annotations

import cv2
import pytest

pytest.importorskip("carla")

from drive_il.cli import main


def test_render_gallery(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DRIVE_IL_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "gallery"
    rc = main(["render", "--out", str(out), "--presets", "ClearNoon", "HardRainNoon",
               "--resolution", "0.2", "--scale", "1"])
    assert rc == 0
    printed = [line for line in capsys.readouterr().out.splitlines() if line.endswith(".png")]
    names = {p.split("/")[-1] for p in printed}
    # a straight, a curve and a junction; two rigs plus the three-camera rig; sheets
    for scene in ("circuit_straight", "circuit_curve", "grid_junction"):
        for rig in ("dave2", "wide"):
            assert f"{scene}_ClearNoon_{rig}.png" in names, (scene, rig, sorted(names))
        assert f"{scene}_ClearNoon_dave2x3.png" in names
    assert "circuit_straight_HardRainNoon_wide.png" in names
    assert {"contact_sheet_dave2.png", "contact_sheet_wide.png"} <= names
    for p in printed:
        assert (out / p.split("/")[-1]).exists()
    img = cv2.imread(str(out / "circuit_straight_ClearNoon_wide.png"))
    assert img.shape == (600, 800, 3)
    assert cv2.imread(str(out / "grid_junction_ClearNoon_dave2.png")).shape == (66, 200, 3)
    assert cv2.imread(str(out / "circuit_curve_ClearNoon_dave2x3.png")).shape == (66, 3 * 204, 3)
    # frames are not blank: sky and ground differ
    assert img[:100].mean() != pytest.approx(img[-100:].mean(), abs=5)


def test_render_rejects_unknown_preset(tmp_path, capsys):
    rc = main(["render", "--out", str(tmp_path), "--presets", "Sunny"])
    assert rc == 2
    assert "unknown weather preset 'Sunny'" in capsys.readouterr().err


def test_render_urban_scene_set(tmp_path, monkeypatch, capsys):
    """``--urban``: traffic lights in three presets and a pedestrian crossing (the
    generated grid town, whose junctions the signal layout signalises)."""
    import numpy as np

    monkeypatch.setenv("DRIVE_IL_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "urban"
    rc = main(["render", "--urban", "--town", "grid", "--out", str(out), "--resolution", "0.2"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "urban scenes: grid, light" in text
    names = sorted(line.split("/")[-1] for line in text.splitlines() if line.endswith(".png"))
    assert names == ["lights_ClearNoon.png", "lights_ClearSunset.png", "lights_HardRainNoon.png",
                     "pedestrian_crossing.png"]
    for n in names:
        img = cv2.cvtColor(cv2.imread(str(out / n)), cv2.COLOR_BGR2RGB).astype(int)
        assert img.shape == (600, 800, 3)
        # the approach's head is red: lit-lamp pixels above the horizon line's band
        r, g, b = img[..., 0], img[..., 1], img[..., 2]
        assert ((r > 200) & (g < 90) & (b < 90)).sum() >= 4, n
    # the crossing: walkers on the road ahead, between the car and the junction
    from drive_il.commands.render import urban_scene
    from drive_il.maps import load_town
    ego, lights, walkers, line_wp = urban_scene(load_town("grid", None))
    assert lights[0].state.name == "RED" and (line_wp.road_id, line_wp.lane_id) in lights[0].lanes
    assert walkers and all(np.hypot(w.x - ego.x, w.y - ego.y) < 30.0 for w in walkers)
