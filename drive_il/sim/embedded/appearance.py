"""A town's look in the embedded renderer, drawn from a seed: ground colours and texture,
lane-paint wear, and roadside objects (buildings, trees, poles, fences).

A camera policy trained on one town learns that town's look; training towns that look
different make it generalise (issue 17). :class:`Appearance` holds the look:

* :meth:`Appearance.default` is the renderer's historical look, bit for bit (the
  raster's colours of :data:`DEFAULT_GROUND`, no paint wear, no objects);
* :meth:`Appearance.from_seed` draws one from ``numpy.random.default_rng(seed)``:
  asphalt tone, grain and repair patches, paint opacity and wear (faded, broken
  marks), sidewalk and terrain colours, and the density, size and colours of the
  roadside objects.

The ground part is painted into the town's raster (:mod:`.paint`, :mod:`.raster`), so
it is static in the world and moves with the camera as the ground does. The objects
are a :class:`Scenery`: vertical boxes and tapered hexagonal prisms placed once per town
and appearance (:meth:`Scenery.build`) from the town's
:class:`~drive_il.maps.geometry.MapGeometry` with a seeded rng, never on drivable
surfaces (driving lanes and junctions), buildings behind the sidewalks and verges; the
camera (:mod:`.camera`) draws them as 3D primitives with its pinhole model (painter's
order by depth) and the depth/label render (:mod:`.depth_labels`) labels them with CARLA
0.9.16 semantic tags (:data:`TAG_BUILDING` 3, :data:`TAG_FENCE` 5, :data:`TAG_POLE` 6,
:data:`TAG_VEGETATION` 9; ``carla::rpc::CityObjectLabel``).

Selection (:func:`appearance_for`): a town named ``procedural:<seed>`` gets
``Appearance.from_seed(seed)``; an explicit appearance seed (a scenario's
``appearance_seed`` where it has one) overrides; every other town keeps the default.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import astuple, dataclass, field

import cv2
import numpy as np

from ...maps.geometry import LaneClass, MapGeometry

__all__ = [
    "APPEARANCE_VERSION",
    "DEFAULT_GROUND",
    "KIND_BOX",
    "KIND_CANOPY",
    "KIND_SOLID",
    "SCENERY_STREAM",
    "TAG_BUILDING",
    "TAG_FENCE",
    "TAG_POLE",
    "TAG_VEGETATION",
    "Appearance",
    "Scenery",
    "appearance_for",
]

RGB = tuple[float, float, float]

#: Ground colours (RGB) per :class:`~drive_il.maps.geometry.LaneClass` code of the
#: default look (terrain grass, asphalt, shoulder, concrete sidewalk, parking, border,
#: median grass, red bike lane, other).
DEFAULT_GROUND: tuple[RGB, ...] = (
    (92.0, 112.0, 58.0), (86.0, 86.0, 88.0), (78.0, 78.0, 80.0), (158.0, 156.0, 150.0),
    (96.0, 96.0, 98.0), (150.0, 148.0, 140.0), (88.0, 110.0, 56.0), (120.0, 70.0, 62.0),
    (100.0, 96.0, 90.0),
)

#: CARLA 0.9.16 semantic tags of the objects (``carla::rpc::CityObjectLabel``).
TAG_BUILDING, TAG_FENCE, TAG_POLE, TAG_VEGETATION = 3, 5, 6, 9

#: Object kinds: a box drawn face by face (buildings), a box drawn as one silhouette
#: (poles, fences, trunks), a tapered hexagonal prism drawn as one silhouette (canopies).
KIND_SOLID, KIND_BOX, KIND_CANOPY = 0, 1, 2

#: Bumped whenever a seeded look's raster painting changes (part of the raster cache
#: key of non-default looks; the default look's key is unchanged).
APPEARANCE_VERSION = 2

#: Second entry of the object placement rng's seed: ``default_rng([seed, SCENERY_STREAM])``.
SCENERY_STREAM = 17

_PROCEDURAL = re.compile(r"procedural:(\d+)")


def _c(rgb) -> RGB:
    return tuple(float(min(max(v, 0.0), 255.0)) for v in rgb)  # type: ignore[return-value]


@dataclass(frozen=True)
class Appearance:
    """The look of a town (see the module docstring). Frozen; equal appearances give
    identical rasters, objects and frames.

    Attributes:
        seed: the seed it was drawn from (None: the default look).
        ground: RGB per LaneClass code (9 entries; :data:`DEFAULT_GROUND`).
        grain: multiplier of the per-pixel grain amplitude (1 = default).
        tint: multiplier of the low-frequency tint fields (blotches; 1 = default).
        patches: asphalt repair patches and cracks per 100 m^2 of road surface.
        patch_shade: RGB offset range of a patch (patches draw a shade in [-1, 1] x this).
        paint_opacity: lane paint opacity (1 = default fresh paint).
        paint_wear: share of lane paint worn away in broken, blotchy places [0, 1]
            (0 = default crisp paint).
        building_density, tree_density, pole_density, fence_density: roadside objects
            [0, 1] (0 = none; the default has none).
        setback: buildings' distance behind the paved area (sidewalks) [m].
        building_height: (min, max) [m].
        building_frontage: (min, max) [m].
        building_gap: (min, max) gap between buildings [m].
        building_colours: facade colours drawn from (RGB).
        roof_colour: RGB of flat roofs.
        foliage: (RGB, RGB): canopy colours mixed between.
        trunk_colour, pole_colour, fence_colour: RGB.
        tree_size: (min, max) canopy radius [m].
    """

    seed: int | None = None
    ground: tuple[RGB, ...] = DEFAULT_GROUND
    grain: float = 1.0
    tint: float = 1.0
    patches: float = 0.0
    patch_shade: float = 0.0
    paint_opacity: float = 1.0
    paint_wear: float = 0.0
    building_density: float = 0.0
    tree_density: float = 0.0
    pole_density: float = 0.0
    fence_density: float = 0.0
    setback: float = 3.0
    building_height: tuple[float, float] = (6.0, 20.0)
    building_frontage: tuple[float, float] = (8.0, 20.0)
    building_gap: tuple[float, float] = (1.0, 6.0)
    building_colours: tuple[RGB, ...] = ((150.0, 140.0, 125.0),)
    roof_colour: RGB = (90.0, 88.0, 86.0)
    foliage: tuple[RGB, RGB] = ((60.0, 90.0, 40.0), (80.0, 110.0, 50.0))
    trunk_colour: RGB = (90.0, 70.0, 50.0)
    pole_colour: RGB = (120.0, 122.0, 125.0)
    fence_colour: RGB = (110.0, 100.0, 90.0)
    tree_size: tuple[float, float] = (1.5, 3.0)
    _key: str = field(default="", init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.ground) != len(DEFAULT_GROUND):
            raise ValueError(f"Appearance.ground: {len(DEFAULT_GROUND)} colours expected, got {len(self.ground)}")
        for name in ("paint_opacity", "paint_wear", "building_density", "tree_density", "pole_density",
                     "fence_density"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"Appearance.{name} must be in [0, 1], got {v!r}")
        fields = astuple(self)[:-1]
        dflt = _DEFAULT_FIELDS.get("f")
        key = "" if dflt is None or fields[1:] == dflt else hashlib.sha1(repr(fields).encode()).hexdigest()[:12]
        object.__setattr__(self, "_key", key)

    # -- construction ------------------------------------------------------------------
    @classmethod
    def default(cls) -> Appearance:
        """The renderer's historical look (identical frames)."""
        return cls()

    @classmethod
    def from_seed(cls, seed: int) -> Appearance:
        """A look drawn from ``numpy.random.default_rng(seed)`` (deterministic)."""
        seed = int(seed)
        rng = np.random.default_rng(seed)
        u = rng.uniform
        # asphalt: grey level and a slight warm/cool cast
        L = u(58.0, 112.0)
        w = u(-4.0, 4.0)
        asphalt = _c((L + w, L, L - w + 2.0))
        # sidewalks: concrete (grey, warm or cool) or red/brown pavers
        if rng.random() < 0.25:
            sidewalk = _c((u(130, 175), u(95, 130), u(80, 110)))
        else:
            S = u(118.0, 185.0)
            t = u(-6.0, 6.0)
            sidewalk = _c((S + t, S, S - t - 4.0))
        border = _c(v * u(0.9, 1.0) for v in sidewalk)
        # terrain: lush, dark, dry grass or dirt
        palette = ((92, 112, 58), (62, 88, 44), (138, 128, 80), (122, 100, 74), (104, 118, 70))
        i, j = rng.integers(len(palette), size=2)
        m = u(0.0, 1.0)
        terr = tuple(a + (b - a) * m + u(-8, 8) for a, b in zip(palette[i], palette[j]))
        terrain = _c(terr)
        median = _c(v + u(-6, 6) for v in terrain)
        bike = _c((u(100, 140), u(55, 85), u(50, 75)))
        ground = (terrain, asphalt, _c(v * u(0.85, 1.0) for v in asphalt), sidewalk,
                  _c(v + u(0, 12) for v in asphalt), border, median, bike,
                  _c((u(85, 115), u(85, 110), u(80, 100))))
        rural = rng.random() < 0.15
        n_col = int(rng.integers(3, 7))
        facades = []
        for _ in range(n_col):
            kind = rng.random()
            if kind < 0.35:    # brick
                facades.append(_c((u(120, 170), u(60, 95), u(45, 75))))
            elif kind < 0.7:   # concrete / render
                g = u(110, 200)
                facades.append(_c((g + u(-8, 8), g + u(-8, 8), g + u(-10, 6))))
            else:              # painted plaster
                facades.append(_c((u(140, 225), u(120, 210), u(90, 190))))
        h0 = u(4.0, 10.0)
        f0 = u(6.0, 12.0)
        g0 = u(0.0, 3.0)
        fol_a = _c((u(35, 80), u(60, 115), u(25, 55)))
        fol_b = _c(v * u(1.05, 1.35) for v in fol_a)
        return cls(
            seed=seed, ground=ground, grain=float(u(0.6, 1.9)), tint=float(u(0.4, 2.2)),
            patches=float(u(0.0, 1.5)), patch_shade=float(u(4.0, 22.0)),
            paint_opacity=float(u(0.6, 1.0)), paint_wear=float(u(0.0, 0.6)),
            building_density=0.0 if rural else float(u(0.3, 1.0)),
            tree_density=float(u(0.5, 1.0) if rural else u(0.0, 1.0)),
            pole_density=float(u(0.2, 1.0)), fence_density=float(u(0.0, 0.7)),
            setback=float(u(1.0, 6.0)),
            building_height=(h0, h0 + u(4.0, 30.0)), building_frontage=(f0, f0 + u(4.0, 16.0)),
            building_gap=(g0, g0 + u(0.5, 6.0)), building_colours=tuple(facades),
            roof_colour=_c((u(50, 110),) * 3), foliage=(fol_a, fol_b),
            trunk_colour=_c((u(60, 100), u(45, 75), u(30, 55))),
            pole_colour=_c((u(70, 160),) * 3), fence_colour=_c((u(70, 160), u(60, 140), u(50, 120))),
            tree_size=(u(1.0, 2.0), u(2.2, 3.5)),
        )

    # -- properties ------------------------------------------------------------------------
    @property
    def is_default(self) -> bool:
        """True when this look renders exactly as :meth:`default`."""
        return self._key == ""

    @property
    def key(self) -> str:
        """A short digest of the look's fields ("" for the default): raster cache keys."""
        return self._key

    @property
    def has_objects(self) -> bool:
        return max(self.building_density, self.tree_density, self.pole_density, self.fence_density) > 0.0


_DEFAULT_FIELDS: dict[str, tuple] = {}
_DEFAULT_FIELDS["f"] = astuple(Appearance())[1:-1]


def appearance_for(town: str, seed: int | None = None) -> Appearance:
    """The appearance of a town: ``from_seed(seed)`` when a seed is given, else
    ``from_seed(N)`` for a town named ``procedural:N``, else the default."""
    if seed is not None:
        return Appearance.from_seed(int(seed))
    m = _PROCEDURAL.fullmatch(str(town).strip())
    if m is not None:
        return Appearance.from_seed(int(m.group(1)))
    return Appearance.default()


# ---------------------------------------------------------------------------------------
# Scenery: the objects of a town
# ---------------------------------------------------------------------------------------

#: Faces of a box given by 8 corners (bottom 0-3, top 4-7; corner 0 at (+length/2,
#: -width/2) in the box's frame, then (+, +), (-, +), (-, -)): the sides facing +forward,
#: +right, -forward, -right, then top and bottom.
BOX_SIDES = ((0, 1, 5, 4), (1, 2, 6, 5), (2, 3, 7, 6), (3, 0, 4, 7))
BOX_TOP = (4, 5, 6, 7)
BOX_BOTTOM = (0, 1, 2, 3)
#: Faces of the hexagonal prism (12 corners: bottom 0-5, top 6-11).
HEX_FACES = tuple((i, (i + 1) % 6, 6 + (i + 1) % 6, 6 + i) for i in range(6)) + ((6, 7, 8, 9, 10, 11), (0, 1, 2, 3, 4, 5))
BOX_FACES6 = BOX_SIDES + (BOX_TOP, BOX_BOTTOM)

#: Drawing range per kind [m] (beyond: not drawn; haze hides them anyway).
MAX_DIST_BUILDING = 160.0
MAX_DIST_TREE = 100.0
MAX_DIST_SMALL = 50.0
MAX_DIST_TRUNK = 35.0

_GRID = 0.5            # placement grid [m]
_GRID_MAX_CELLS = 24_000_000
_MARGIN = 30.0         # objects are placed up to this far beyond the road network [m]


@dataclass(frozen=True, eq=False)
class Scenery:
    """Static roadside objects of one town and appearance (world frame, metres).

    Every object is a convex solid standing on the ground: a box (8 corners) or a
    tapered hexagonal prism (12 corners), given by its corners (padded to 12 by
    repeating corner 0).

    Attributes:
        kind: (N,) int8 :data:`KIND_SOLID` | :data:`KIND_BOX` | :data:`KIND_CANOPY`.
        corners: (N, 12, 3) float64 world corners (x, y, z) [m].
        centre: (N, 3) centre of each object's bounding sphere; radius: (N,) its radius.
        frame: (N, 6) footprint frame (cx, cy, cos yaw, sin yaw, half length, half width).
        normals: (N, 4, 2) outward horizontal normals of a box's side faces.
        z: (N, 2) bottom and top [m].
        colour: (N, 2, 3) float64 base RGB (sides, top).
        tag: (N,) uint8 CARLA semantic tag.
        max_dist: (N,) drawing range [m] of the footprint.
        reach: (N,) drawing range of the centre: ``max_dist`` + the footprint's half
            diagonal [m] (what the camera tests).
    """

    kind: np.ndarray
    corners: np.ndarray
    centre: np.ndarray
    radius: np.ndarray
    frame: np.ndarray
    normals: np.ndarray
    z: np.ndarray
    colour: np.ndarray
    tag: np.ndarray
    max_dist: np.ndarray
    reach: np.ndarray

    def __len__(self) -> int:
        return int(len(self.kind))

    @classmethod
    def empty(cls) -> Scenery:
        return cls(np.zeros(0, np.int8), np.zeros((0, 12, 3)), np.zeros((0, 3)), np.zeros(0),
                   np.zeros((0, 6)), np.zeros((0, 4, 2)), np.zeros((0, 2)), np.zeros((0, 2, 3)),
                   np.zeros(0, np.uint8), np.zeros(0), np.zeros(0))

    def footprint_distance(self, x: float, y: float, idx: np.ndarray | None = None) -> np.ndarray:
        """Horizontal distance [m] from (x, y) to each object's footprint rectangle."""
        f = self.frame if idx is None else self.frame[idx]
        dx = x - f[:, 0]
        dy = y - f[:, 1]
        lx = np.abs(dx * f[:, 2] + dy * f[:, 3]) - f[:, 4]
        ly = np.abs(-dx * f[:, 3] + dy * f[:, 2]) - f[:, 5]
        np.maximum(lx, 0.0, out=lx)
        np.maximum(ly, 0.0, out=ly)
        return np.hypot(lx, ly)

    def footprints(self) -> list[np.ndarray]:
        """The ground footprint polygon (K, 2) of each object (its bottom corners)."""
        out = []
        for k, c in zip(self.kind, self.corners):
            out.append(c[:6, :2] if k == KIND_CANOPY else c[:4, :2])
        return out

    # -- placement ----------------------------------------------------------------------
    @classmethod
    def build(cls, geom: MapGeometry, look: Appearance, *, seed: int | None = None) -> Scenery:
        """Place the objects of ``look`` beside the roads of ``geom``.

        Deterministic: ``default_rng([seed, SCENERY_STREAM])`` (``seed`` defaults to the
        appearance's). A placement grid of 0.5 m holds the drivable surface (driving
        lanes and junction hulls, dilated by one cell) and the paved one (every lane
        class but terrain and median, and the junction aprons); objects are kept by the
        distance of every grid cell of their footprint to those surfaces:

        * poles 0.9-1.4 m beyond the drivable edge, every 18-60 m;
        * trees with their whole canopy 0.5 m off the drivable surface, along the roads
          (2-6 m beyond the paved edge) and scattered over the open terrain;
        * fences: 6 m panels following the outer edge of the paved area, in stretches;
        * buildings (boxes facing the nearest road) wholly behind the paved area by
          ``look.setback``, never overlapping each other.
        """
        if not look.has_objects:
            return cls.empty()
        s = look.seed if seed is None else seed
        rng = np.random.default_rng([int(s or 0) & 0xFFFFFFFF, SCENERY_STREAM])
        grid = _Grid(geom)
        objs: list[tuple] = []
        # 1. buildings
        if look.building_density > 0.0:
            _place_buildings(grid, look, rng, objs)
        # 2. fences
        if look.fence_density > 0.0:
            _place_fences(grid, look, rng, objs)
        # 3. trees
        if look.tree_density > 0.0:
            _place_trees(grid, look, rng, objs)
        # 4. poles
        if look.pole_density > 0.0:
            _place_poles(grid, look, rng, objs)
        if not objs:
            return cls.empty()
        return cls._from_records(objs)

    @classmethod
    def _from_records(cls, objs: list[tuple]) -> Scenery:
        n = len(objs)
        kind = np.zeros(n, np.int8)
        corners = np.zeros((n, 12, 3))
        frame = np.zeros((n, 6))
        normals = np.zeros((n, 4, 2))
        zz = np.zeros((n, 2))
        colour = np.zeros((n, 2, 3))
        tag = np.zeros(n, np.uint8)
        max_dist = np.zeros(n)
        for i, (k, cx, cy, yaw, hl, hw, z0, z1, side, top, t, md) in enumerate(objs):
            c, s = math.cos(yaw), math.sin(yaw)
            kind[i] = k
            frame[i] = (cx, cy, c, s, hl, hw)
            zz[i] = (z0, z1)
            colour[i, 0] = side
            colour[i, 1] = top
            tag[i] = t
            max_dist[i] = md
            if k == KIND_CANOPY:
                pts = []
                for z, r in ((z0, hl), (z1, hl * 0.55)):
                    for j in range(6):
                        a = yaw + j * math.pi / 3.0
                        pts.append((cx + r * math.cos(a), cy + r * math.sin(a), z))
                corners[i] = pts
                frame[i, 4] = frame[i, 5] = hl * 0.94
            else:
                loc = ((hl, -hw), (hl, hw), (-hl, hw), (-hl, -hw))
                pts = []
                for z in (z0, z1):
                    for f_, r_ in loc:
                        pts.append((cx + f_ * c - r_ * s, cy + f_ * s + r_ * c, z))
                corners[i, :8] = pts
                corners[i, 8:] = pts[0]
                # outward normals of the sides (0: +right, 1: -fwd, 2: -right, 3: +fwd)
                # sides (0,1,5,4): corners (hl,-hw)-(hl,hw): the front (+fwd) face, etc.
                fwd = (c, s)
                rgt = (-s, c)
                normals[i] = (fwd, rgt, (-c, -s), (s, -c))
        centre = np.stack([frame[:, 0], frame[:, 1], zz.mean(axis=1)], axis=1)
        radius = np.sqrt(np.max(np.sum((corners - centre[:, None, :]) ** 2, axis=2), axis=1))
        reach = max_dist + np.hypot(frame[:, 4], frame[:, 5])
        for a in (kind, corners, centre, radius, frame, normals, zz, colour, tag, max_dist, reach):
            a.setflags(write=False)
        return cls(kind, corners, centre, radius, frame, normals, zz, colour, tag, max_dist, reach)


class _Grid:
    """Placement grid: drivable and paved masks, distances to them [m], occupancy."""

    def __init__(self, geom: MapGeometry) -> None:
        bx0, by0, bx1, by1 = geom.bounds
        x0, y0 = bx0 - _MARGIN, by0 - _MARGIN
        g = _GRID
        W = int(math.ceil((bx1 + _MARGIN - x0) / g)) + 1
        H = int(math.ceil((by1 + _MARGIN - y0) / g)) + 1
        while W * H > _GRID_MAX_CELLS:
            g *= 1.5
            W = int(math.ceil((bx1 + _MARGIN - x0) / g)) + 1
            H = int(math.ceil((by1 + _MARGIN - y0) / g)) + 1
        self.g, self.x0, self.y0, self.W, self.H = g, x0, y0, W, H
        drv = np.zeros((H, W), np.uint8)
        pav = np.zeros((H, W), np.uint8)

        def px(poly: np.ndarray) -> np.ndarray:
            return np.rint((np.asarray(poly) - (x0, y0)) / g * 16.0).astype(np.int32)

        cls = geom.quad_class
        Q = geom.quads
        d_q = [px(q) for q in Q[cls == LaneClass.DRIVING]] + [px(h) for h in geom.junction_hulls]
        p_q = [px(q) for q in Q[(cls != LaneClass.DRIVING) & (cls != LaneClass.TERRAIN) & (cls != LaneClass.MEDIAN)]]
        p_q += [px(a) for a in geom.junction_aprons]
        for poly in d_q:
            cv2.fillConvexPoly(drv, poly, 255, cv2.LINE_8, 4)
        for poly in p_q:
            cv2.fillConvexPoly(pav, poly, 255, cv2.LINE_8, 4)
        drv = cv2.dilate(drv, np.ones((3, 3), np.uint8))
        pav = cv2.max(pav, drv)
        self.drv = drv
        self.pav = pav
        self.d_drv = cv2.distanceTransform(255 - drv, cv2.DIST_L2, 5) * g
        self.d_pav = cv2.distanceTransform(255 - pav, cv2.DIST_L2, 5) * g
        # direction away from the paved area (smoothed gradient of its distance)
        sm = cv2.GaussianBlur(self.d_pav, (0, 0), 2.0)
        gx = cv2.Sobel(sm, cv2.CV_32F, 1, 0, ksize=3)
        gy = cv2.Sobel(sm, cv2.CV_32F, 0, 1, ksize=3)
        n = np.sqrt(gx * gx + gy * gy) + 1e-9
        self.nx, self.ny = gx / n, gy / n
        self.occupancy = np.zeros((H, W), np.uint8)

    def to_world(self, r, c):
        return self.x0 + c * self.g, self.y0 + r * self.g

    def poly_cells(self, poly: np.ndarray) -> tuple[slice, slice, np.ndarray] | None:
        """(row slice, col slice, mask) of the cells a world polygon covers (None: off grid)."""
        p = (np.asarray(poly) - (self.x0, self.y0)) / self.g
        c0, r0 = np.floor(p.min(axis=0)).astype(int) - 1
        c1, r1 = np.ceil(p.max(axis=0)).astype(int) + 2
        if c0 < 0 or r0 < 0 or c1 > self.W or r1 > self.H:
            return None
        m = np.zeros((r1 - r0, c1 - c0), np.uint8)
        cv2.fillConvexPoly(m, np.rint((p - (c0, r0)) * 16.0).astype(np.int32), 1, cv2.LINE_8, 4)
        # also every cell a corner falls in (small polygons)
        for x, y in p:
            m[min(max(int(round(y)) - r0, 0), m.shape[0] - 1), min(max(int(round(x)) - c0, 0), m.shape[1] - 1)] = 1
        return slice(r0, r1), slice(c0, c1), m.astype(bool)

    def free(self, poly: np.ndarray, min_drv: float, min_pav: float = 0.0) -> tuple | None:
        """The cells of ``poly`` when all of them are at least ``min_drv`` [m] from the
        drivable surface, ``min_pav`` from the paved one and unoccupied, else None."""
        pc = self.poly_cells(poly)
        if pc is None:
            return None
        rs, cs, m = pc
        if (self.d_drv[rs, cs][m] < min_drv).any():
            return None
        if min_pav > 0.0 and (self.d_pav[rs, cs][m] < min_pav).any():
            return None
        if self.occupancy[rs, cs][m].any():
            return None
        return pc

    def occupy(self, poly: np.ndarray, pad: float = 0.0) -> None:
        p = np.asarray(poly, np.float64)
        if pad > 0.0:
            c = p.mean(axis=0)
            d = p - c
            n = np.hypot(d[:, 0], d[:, 1])[:, None] + 1e-9
            p = p + d / n * pad
        pc = self.poly_cells(p)
        if pc is not None:
            rs, cs, m = pc
            self.occupancy[rs, cs][m] = 1


def _rect(cx, cy, yaw, hl, hw) -> np.ndarray:
    c, s = math.cos(yaw), math.sin(yaw)
    return np.array([(cx + f * c - r * s, cy + f * s + r * c)
                     for f, r in ((hl, -hw), (hl, hw), (-hl, hw), (-hl, -hw))])


def _thin(rng: np.random.Generator, xs: np.ndarray, ys: np.ndarray, spacing: float,
          limit: int) -> list[int]:
    """Indices of points in random order, at least ``spacing`` apart (greedy)."""
    order = rng.permutation(len(xs))
    cell = spacing
    taken: dict[tuple[int, int], list[tuple[float, float]]] = {}
    out = []
    sp2 = spacing * spacing
    for i in order:
        x, y = float(xs[i]), float(ys[i])
        kx, ky = int(math.floor(x / cell)), int(math.floor(y / cell))
        ok = True
        for ax in (kx - 1, kx, kx + 1):
            for ay in (ky - 1, ky, ky + 1):
                for (px, py) in taken.get((ax, ay), ()):
                    if (px - x) ** 2 + (py - y) ** 2 < sp2:
                        ok = False
                        break
                if not ok:
                    break
            if not ok:
                break
        if ok:
            taken.setdefault((kx, ky), []).append((x, y))
            out.append(int(i))
            if len(out) >= limit:
                break
    return out


def _band(grid: _Grid, d: np.ndarray, lo: float, hi: float, rng: np.random.Generator,
          cap: int = 60_000) -> tuple[np.ndarray, np.ndarray]:
    r, c = np.nonzero((d >= lo) & (d < hi))
    if len(r) > cap:
        k = rng.choice(len(r), cap, replace=False)
        k.sort()
        r, c = r[k], c[k]
    return r, c


def _pick_colour(rng, colours) -> RGB:
    base = colours[int(rng.integers(len(colours)))]
    k = rng.uniform(0.9, 1.1)
    return _c(v * k for v in base)


def _place_buildings(grid: _Grid, look: Appearance, rng, objs: list) -> None:
    sb = look.setback
    r, c = _band(grid, grid.d_pav, sb, sb + grid.g, rng)
    if len(r) == 0:
        return
    xs, ys = grid.to_world(r, c)
    lo_f, hi_f = look.building_frontage
    order = _thin(rng, xs, ys, max(2.0, lo_f * 0.5 / max(look.building_density, 0.05)), 4000)
    h_lo, h_hi = look.building_height
    for i in order:
        if rng.random() > look.building_density:
            continue
        nx, ny = float(grid.nx[r[i], c[i]]), float(grid.ny[r[i], c[i]])
        if abs(nx) + abs(ny) < 0.5:
            continue
        yaw = math.atan2(ny, nx)  # "forward" = away from the road
        front = rng.uniform(lo_f, hi_f)
        depth = rng.uniform(0.6, 1.3) * front
        hl, hw = 0.5 * depth, 0.5 * front
        cx = float(xs[i]) + nx * hl
        cy = float(ys[i]) + ny * hl
        poly = _rect(cx, cy, yaw, hl, hw)
        if grid.free(poly, min_drv=sb + 1.0, min_pav=0.5 * sb) is None:
            # a shallower building
            hl = 0.5 * max(5.0, 0.5 * depth)
            cx = float(xs[i]) + nx * hl
            cy = float(ys[i]) + ny * hl
            poly = _rect(cx, cy, yaw, hl, hw)
            if grid.free(poly, min_drv=sb + 1.0, min_pav=0.5 * sb) is None:
                continue
        h = float(rng.uniform(h_lo, h_hi) if rng.random() < 0.8 else rng.uniform(h_lo, 0.5 * (h_lo + h_hi)))
        grid.occupy(poly, pad=float(rng.uniform(*look.building_gap)))
        col = _pick_colour(rng, look.building_colours)
        objs.append((KIND_SOLID, cx, cy, yaw, hl, hw, 0.0, h, col, look.roof_colour, TAG_BUILDING,
                     MAX_DIST_BUILDING))


def _place_fences(grid: _Grid, look: Appearance, rng, objs: list) -> None:
    off = float(rng.uniform(0.4, 1.2))
    r, c = _band(grid, grid.d_pav, off, off + grid.g, rng)
    if len(r) == 0:
        return
    xs, ys = grid.to_world(r, c)
    # stretches: a low-frequency field over the town, fences where it is high
    cell = 40.0
    gh, gw = int(grid.H * grid.g / cell) + 3, int(grid.W * grid.g / cell) + 3
    field_ = cv2.GaussianBlur(rng.standard_normal((gh, gw)).astype(np.float32), (0, 0), 0.8)
    field_ /= max(float(field_.std()), 1e-6)
    thr = float(np.quantile(field_, 1.0 - look.fence_density))
    L = 6.0
    h = float(rng.uniform(0.9, 1.8))
    for i in _thin(rng, xs, ys, L * 0.97, 20_000):
        fy = int((ys[i] - grid.y0) / cell) + 1
        fx = int((xs[i] - grid.x0) / cell) + 1
        if field_[fy, fx] < thr:
            continue
        nx, ny = float(grid.nx[r[i], c[i]]), float(grid.ny[r[i], c[i]])
        if abs(nx) + abs(ny) < 0.5:
            continue
        yaw = math.atan2(nx, -ny)  # along the edge
        poly = _rect(float(xs[i]), float(ys[i]), yaw, 0.5 * L, 0.05)
        if grid.free(poly, min_drv=0.8) is None:
            continue
        objs.append((KIND_BOX, float(xs[i]), float(ys[i]), yaw, 0.5 * L, 0.05, 0.0, h,
                     look.fence_colour, look.fence_colour, TAG_FENCE, MAX_DIST_SMALL))


def _place_trees(grid: _Grid, look: Appearance, rng, objs: list) -> None:
    d = look.tree_density
    r_lo, r_hi = look.tree_size
    # along the roads, then scattered over the open terrain
    for lo, hi, spacing, cap in ((r_hi + 1.0, r_hi + 4.0, 9.0 + 20.0 * (1.0 - d), 4000),
                                 (8.0, 60.0, 15.0 + 40.0 * (1.0 - d), 3000)):
        r, c = _band(grid, grid.d_pav, lo, hi, rng)
        if len(r) == 0:
            continue
        xs, ys = grid.to_world(r, c)
        for i in _thin(rng, xs, ys, spacing, cap):
            rad = float(rng.uniform(r_lo, r_hi))
            x, y = float(xs[i]), float(ys[i])
            canopy = _rect(x, y, 0.0, rad, rad)
            pc = grid.free(canopy, min_drv=0.5)
            if pc is None:
                continue
            trunk_h = float(rng.uniform(1.6, 3.0))
            top = trunk_h + rad * float(rng.uniform(1.4, 2.6))
            grid.occupy(_rect(x, y, 0.0, 0.6, 0.6))
            yaw = float(rng.uniform(0.0, math.pi))
            m = float(rng.uniform(0.0, 1.0))
            fol = _c(a + (b - a) * m for a, b in zip(*look.foliage))
            tw = float(rng.uniform(0.12, 0.22))
            objs.append((KIND_BOX, x, y, yaw, tw, tw, 0.0, trunk_h + 0.3, look.trunk_colour, look.trunk_colour,
                         TAG_VEGETATION, MAX_DIST_TRUNK))
            objs.append((KIND_CANOPY, x, y, yaw, rad, rad, trunk_h * 0.6, top, fol, fol, TAG_VEGETATION,
                         MAX_DIST_TREE))


def _place_poles(grid: _Grid, look: Appearance, rng, objs: list) -> None:
    r, c = _band(grid, grid.d_drv, 0.9, 1.4, rng)
    if len(r) == 0:
        return
    xs, ys = grid.to_world(r, c)
    spacing = 60.0 - 42.0 * look.pole_density
    h = float(rng.uniform(5.0, 8.5))
    for i in _thin(rng, xs, ys, spacing, 4000):
        x, y = float(xs[i]), float(ys[i])
        poly = _rect(x, y, 0.0, 0.1, 0.1)
        if grid.free(poly, min_drv=0.6) is None:
            continue
        grid.occupy(poly)
        objs.append((KIND_BOX, x, y, 0.0, 0.1, 0.1, 0.0, h, look.pole_colour, look.pole_colour, TAG_POLE,
                     MAX_DIST_SMALL))
