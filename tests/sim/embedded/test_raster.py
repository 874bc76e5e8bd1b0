"""MapRaster: lane surfaces, markings of their OpenDRIVE width and dash pattern, the
drivable layer, determinism and the caches (on the town and on disk)."""

from __future__ import annotations

import numpy as np
import pytest

carla = pytest.importorskip("carla")

from drive_il.maps import TownMap
from drive_il.maps.geometry import DASH_GAP, DASH_LENGTH, LaneClass
from drive_il.sim.embedded.raster import MapRaster, choose_resolution

LANE = 3.5
SIDEWALK = 2.0
CENTRE_W = 0.15
EDGE_W = 0.12
LENGTH = 120.0


def straight_road_xodr(centre: str = "broken", centre_colour: str = "yellow") -> str:
    """One straight road along +x (OpenDRIVE y = 0): lanes 1/-1 driving 3.5 m with
    solid white 0.12 m edge marks, sidewalks 2 m with a curb, centre line ``centre``
    of width 0.15 m."""

    def lane(i: int, kind: str, width: float, mark: str) -> str:
        return (f'<lane id="{i}" type="{kind}" level="false"><width sOffset="0" a="{width}" b="0" c="0" d="0"/>'
                f"{mark}</lane>")

    edge = f'<roadMark sOffset="0" type="solid" color="white" width="{EDGE_W}" laneChange="none"/>'
    none = '<roadMark sOffset="0" type="none" color="white" laneChange="none"/>'
    cmark = f'<roadMark sOffset="0" type="{centre}" color="{centre_colour}" width="{CENTRE_W}" laneChange="none"/>'
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<OpenDRIVE><header revMajor="1" revMinor="4" name="straight" version="1" north="10" south="-10" east="{LENGTH}" west="0"/>
<road name="r1" length="{LENGTH}" id="1" junction="-1"><link/>
<planView><geometry s="0" x="0" y="0" hdg="0" length="{LENGTH}"><line/></geometry></planView>
<elevationProfile><elevation s="0" a="0" b="0" c="0" d="0"/></elevationProfile>
<lanes><laneSection s="0">
<left>{lane(2, "sidewalk", SIDEWALK, none)}{lane(1, "driving", LANE, edge)}</left>
<center><lane id="0" type="none" level="false">{cmark}</lane></center>
<right>{lane(-1, "driving", LANE, edge)}{lane(-2, "sidewalk", SIDEWALK, none)}</right>
</laneSection></lanes></road></OpenDRIVE>
"""


@pytest.fixture(scope="module")
def straight():
    text = straight_road_xodr()
    town = TownMap.from_carla_map(carla.Map("straight", text), xodr=text)
    r = MapRaster.for_town(town, resolution=0.05, cache=False)
    return town, text, r


def test_lane_classes_and_drivable(straight):
    _, _, r = straight
    # CARLA y = -OpenDRIVE y: lane -1 (right of the reference line) lies at y > 0
    assert r.class_at(60.0, 1.75) == LaneClass.DRIVING
    assert r.class_at(60.0, -1.75) == LaneClass.DRIVING
    assert r.class_at(60.0, LANE + 1.0) == LaneClass.SIDEWALK
    assert r.class_at(60.0, -LANE - 1.0) == LaneClass.SIDEWALK
    assert r.class_at(60.0, LANE + SIDEWALK + 3.0) == LaneClass.TERRAIN
    assert r.is_drivable(30.0, 3.3) and not r.is_drivable(30.0, 3.7)
    assert not r.is_drivable(-500.0, 0.0)  # outside the raster
    rng = np.random.default_rng(0)
    pts = np.column_stack([rng.uniform(-20, 140, 500), rng.uniform(-12, 12, 500)])
    many = r.is_drivable_many(pts)
    assert many.dtype == bool and many.shape == (500,)
    assert many.tolist() == [r.is_drivable(x, y) for x, y in pts]
    # drivable band is the two lanes: 7 m wide (+-1 px)
    col = round((60.0 - r.x0) / r.res)
    width = r.drivable[:, col].sum() * r.res
    assert abs(width - 2 * LANE) <= 2 * r.res


def _paint_runs(profile: np.ndarray, thr: float) -> list[tuple[int, int]]:
    on = profile > thr
    runs, start = [], None
    for i, v in enumerate(on):
        if v and start is None:
            start = i
        if not v and start is not None:
            runs.append((start, i))
            start = None
    if start is not None:
        runs.append((start, len(on)))
    return runs


def test_marking_width_and_dashes_in_raster(straight):
    _, _, r = straight
    rgb = np.asarray(r.colour).astype(np.float64)
    # across the road in the middle of a dash (dash k covers s in [12k, 12k + 6)), on
    # the carriageway only: yellow centre line (R high, B low)
    col = round((63.0 - r.x0) / r.res)
    r0, r1 = round((-LANE + 0.5 - r.y0) / r.res), round((LANE - 0.5 - r.y0) / r.res)
    across = rgb[r0:r1, col]
    yellow = across[:, 0] - across[:, 2]
    # half-maximum width of the yellow line (anti-aliased edges)
    base, peak = np.median(yellow), yellow.max()
    runs = _paint_runs(yellow, 0.5 * (base + peak))
    assert len(runs) == 1
    w = (runs[0][1] - runs[0][0]) * r.res
    assert abs(w - CENTRE_W) <= 0.1 * CENTRE_W + r.res * 0.5
    # along the centre line: dashes of DASH_LENGTH every DASH_LENGTH + DASH_GAP
    row = round((0.0 - r.y0) / r.res)
    along = rgb[row, :, 0] - rgb[row, :, 2]
    runs = _paint_runs(along, 0.5 * (np.median(along) + along.max()))
    lengths = [(b - a) * r.res for a, b in runs]
    full = [L for L in lengths[1:-1]]
    assert len(full) >= 4
    assert all(abs(L - DASH_LENGTH) <= 0.1 * DASH_LENGTH for L in full)
    starts = [a * r.res for a, _ in runs[1:]]
    periods = np.diff(starts)
    assert np.allclose(periods, DASH_LENGTH + DASH_GAP, atol=2 * r.res)


def test_build_is_deterministic_and_cached(straight, tmp_path, monkeypatch):
    town, text, r = straight
    r2 = MapRaster.for_town(town, resolution=0.05, cache=False)
    assert r2 is not r and len(r2.levels) == len(r.levels)
    for a, b in zip(r.levels, r2.levels):
        assert np.array_equal(np.asarray(a), np.asarray(b))
    monkeypatch.setenv("DRIVE_IL_CACHE_DIR", str(tmp_path))
    r3 = MapRaster.for_town(town, resolution=0.05)
    files = sorted(p.name for p in (tmp_path / "raster").iterdir())
    assert len(files) == 1 and "-50mm" in files[0]
    # the town keeps its raster: the same object; the disk copy equals the build
    assert MapRaster.for_town(town, resolution=0.05) is r3
    assert np.array_equal(np.asarray(r3.levels[0]), np.asarray(r.levels[0]))
    # another town of the same text (or a bare carla.Map) loads the disk copy
    other = TownMap.from_carla_map(town.map, xodr=text)
    r4 = MapRaster.for_town(other, resolution=0.05)
    r5 = MapRaster.build(town.map, xodr=text, resolution=0.05)
    assert r4 is not r3 and r4.digest == r5.digest == r3.digest
    assert np.array_equal(np.asarray(r4.levels[0]), np.asarray(r.levels[0]))
    assert np.array_equal(np.asarray(r5.levels[-1]), np.asarray(r.levels[-1]))


def test_texture_is_not_flat(straight):
    _, _, r = straight
    asphalt = np.asarray(r.colour)[np.asarray(r.classes) == LaneClass.DRIVING].astype(np.float64)
    assert 2.0 < asphalt[:, 1].std() < 40.0
    grass = np.asarray(r.colour)[np.asarray(r.classes) == LaneClass.TERRAIN].astype(np.float64)
    assert grass[:, 1].mean() > grass[:, 2].mean() + 10  # green-ish terrain


def test_pyramid_levels_halve(straight):
    _, _, r = straight
    for a, b in zip(r.levels, r.levels[1:]):
        assert b.shape[0] == (a.shape[0] + 1) // 2 and b.shape[1] == (a.shape[1] + 1) // 2
        assert b.shape[2] == 4


def test_choose_resolution_budget():
    assert choose_resolution((0, 0, 400, 330)) == 0.05
    r = choose_resolution((-515, -396, 414, 436))  # Town04's extent
    assert 0.05 < r <= 0.15


@pytest.mark.parametrize("seed", range(6))
def test_paint_strip_matches_its_definition(seed):
    """Each segment is evaluated on its own window only (speed): the pixels must equal
    those of the coverage evaluated over the whole strip's box (``windowed=False``), bit
    for bit, for random polylines at every angle (diagonals: the window must reach beyond
    the end points' box), wide and sub-pixel strips, capped and open ends, and strips cut
    by the image border."""
    from drive_il.sim.embedded.paint import _paint_strip
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (160, 200, 4), dtype=np.uint8)
    for k in range(8):
        n = int(rng.integers(2, 7))
        p0 = rng.uniform(-20.0, 220.0, 2)
        ang = rng.uniform(0.0, 2.0 * np.pi) + np.cumsum(rng.normal(0.0, 0.5, n - 1))
        step = rng.uniform(1.0, 30.0, n - 1)[:, None]
        pts = np.vstack([p0, p0 + np.cumsum(np.stack([np.cos(ang), np.sin(ang)], axis=1) * step, axis=0)])
        half = float(rng.choice([0.5, 1.2, 3.7, 8.0]))
        caps = (bool(rng.integers(2)), bool(rng.integers(2)))
        colour = tuple(float(v) for v in rng.uniform(0.0, 255.0, 3))
        ref = img.copy()
        _paint_strip(ref, pts, half, colour, cap_start=caps[0], cap_end=caps[1], windowed=False)
        _paint_strip(img, pts, half, colour, cap_start=caps[0], cap_end=caps[1])
        np.testing.assert_array_equal(img, ref)
