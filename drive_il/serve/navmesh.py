"""The pedestrians' navigation mesh of a town, in the binary form the ``carla`` client loads.

CARLA's walkers are steered by the client: ``world.get_random_location_from_navigation``,
``controller.ai.walker``'s ``start`` / ``go_to_location`` / ``set_max_speed`` and
``world.set_pedestrians_cross_factor`` run a Recast/Detour crowd inside the client
library, which sends the walkers' new poses to the server each tick (``ApplyWalkerState``
commands). The client asks the server for the mesh with ``get_required_files("Nav")``
and ``request_file(name)`` (CARLA 0.9.16 ``WalkerNavigation``); without one every
random location is None and no walker moves.

The mesh is built from the town's lane surfaces (:attr:`drive_il.maps.TownMap.map_geometry`,
the quads the embedded camera paints): sidewalk quads are sidewalk polygons, driving
quads inside a junction are crosswalk polygons (the client's walkers cross there, and
stop and look first), the other driving, shoulder, border and parking quads are road
polygons (only walkers with the cross factor's permission use them). Quad vertices
shared by neighbouring quads (same cross-section samples, merged on a 1 cm grid) connect
the polygons. The junction aprons of the map geometry are left out: their convex hulls
cover the whole junction, and such large polygons overlapping the crossings crash the
client's path planner.

Format (facts of the formats, written here from their field lists):

* the file: CARLA's ``NavMeshSetHeader`` (``int magic 'MSET', int version 1, int
  numTiles``, then Detour's ``dtNavMeshParams``: ``float orig[3], tileWidth,
  tileHeight, int maxTiles, maxPolys``), then per tile ``(dtTileRef u32, int dataSize)``
  and the tile data;
* the tile: Detour's navmesh data version 7 (magic 'DNAV'): ``dtMeshHeader`` (15 ints,
  walkable height/radius/climb, bmin[3], bmax[3], bvQuantFactor), vertices (float[3]
  each), ``dtPoly`` (firstLink u32, verts u16[6], neis u16[6], flags u16, vertCount u8,
  areaAndtype u8), zeroed ``dtLink`` space (12 bytes each, filled by the client),
  ``dtPolyDetail`` (vertBase u32, triBase u32, vertCount u8, triCount u8, padded to 12)
  and the detail triangles (4 bytes: a fan over each polygon's own vertices plus its
  boundary-edge flags); no bounding-volume tree (Detour then tests every polygon);
* Recast's frame is y-up: (x, y, z)_recast = (x, z, y)_CARLA, polygons wound so
  that Detour's ``dtTriArea2D`` of their fans is positive;
* CARLA's area ids (0 block, 1 sidewalk, 2 crosswalk, 3 road, 4 grass) and polygon
  flags (0x02 sidewalk, 0x04 crosswalk, 0x08 road, 0x10 grass): random locations are
  drawn on sidewalks; walkers not allowed to cross exclude road polygons.
"""

from __future__ import annotations

import hashlib
import logging
import math
import struct
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["AREA_CROSSWALK", "AREA_ROAD", "AREA_SIDEWALK", "FLAG_CROSSWALK", "FLAG_ROAD",
           "FLAG_SIDEWALK", "NavMesh", "build_navmesh", "navmesh_file"]

log = logging.getLogger(__name__)

#: CARLA's walker area ids (carla::nav::NavAreas) and polygon flags (SamplePolyFlags).
AREA_SIDEWALK, AREA_CROSSWALK, AREA_ROAD = 1, 2, 3
FLAG_SIDEWALK, FLAG_CROSSWALK, FLAG_ROAD = 0x02, 0x04, 0x08

_MSET = (ord("M") << 24) | (ord("S") << 16) | (ord("E") << 8) | ord("T")
_DNAV = (ord("D") << 24) | (ord("N") << 16) | (ord("A") << 8) | ord("V")
_NAVMESH_VERSION = 7
_VERTS_PER_POLY = 6
_MAX_TILES = 4
_MESH_HEADER = struct.Struct("<15i3f3f3ff")  # dtMeshHeader (100 bytes)
_POLY = struct.Struct("<I6H6HHBB")  # dtPoly (32 bytes)
_LINK_SIZE = 12  # dtLink: ref u32, next u32, edge, side, bmin, bmax
_DETAIL = struct.Struct("<IIBB2x")  # dtPolyDetail (12 bytes)
_GRID = 0.01  # vertex merge grid [m]
assert _MESH_HEADER.size == 100 and _POLY.size == 32 and _DETAIL.size == 12


@dataclass(frozen=True)
class NavMesh:
    """A town's walker navigation mesh.

    Attributes:
        verts: (V, 3) float32 vertices, CARLA frame (x, y, z) [m].
        polys: list of vertex-index tuples (3..6 vertices each).
        areas: (P,) uint8 CARLA area id of each polygon.
        data: the ``MSET`` file the client loads.
        digest: first 16 hex digits of the file's SHA-256 (names the file in the
            client's cache).
    """

    verts: np.ndarray
    polys: tuple[tuple[int, ...], ...]
    areas: np.ndarray
    data: bytes
    digest: str

    @property
    def sidewalk_polys(self) -> list[int]:
        return [i for i, a in enumerate(self.areas) if a == AREA_SIDEWALK]


def _inside(hull: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Which of ``pts`` (N, 2) lie inside the convex polygon ``hull`` (K, 2)."""
    d = np.roll(hull, -1, axis=0) - hull
    rel = pts[:, None, :] - hull[None, :, :]
    cross = d[None, :, 0] * rel[..., 1] - d[None, :, 1] * rel[..., 0]
    return (cross >= -1e-9).all(axis=1) | (cross <= 1e-9).all(axis=1)


def _polygons(town: Any) -> tuple[list[np.ndarray], list[int]]:
    """The walkable polygons (each (n, 2), 3 <= n <= 6) and their area ids."""
    from ..maps.geometry import LaneClass
    g = town.map_geometry
    Q, C = np.asarray(g.quads, dtype=np.float64), np.asarray(g.quad_class)
    polys: list[np.ndarray] = []
    areas: list[int] = []
    centres = Q.mean(axis=1)
    in_junction = np.zeros(len(Q), bool)
    for hull in g.junction_hulls:
        in_junction |= _inside(np.asarray(hull, dtype=np.float64), centres)
    for q, c, j in zip(Q, C, in_junction):
        if c == LaneClass.SIDEWALK:
            area = AREA_SIDEWALK
        elif c in (LaneClass.DRIVING, LaneClass.SHOULDER, LaneClass.BORDER, LaneClass.PARKING):
            area = AREA_CROSSWALK if j and c == LaneClass.DRIVING else AREA_ROAD
        else:
            continue
        polys.append(q)
        areas.append(area)
    return polys, areas


def _area2(p: np.ndarray) -> float:
    """Twice the signed area of a polygon in CARLA's (x, y) (shoelace)."""
    x, y = p[:, 0], p[:, 1]
    return float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y))


def build_navmesh(town: Any) -> NavMesh:
    """The navigation mesh of ``town`` (a :class:`~drive_il.maps.TownMap`). Where all
    polygons need more than 65535 vertices (Detour's 16-bit indices in one tile), the
    road polygons are left out (walkers then cross only at junctions).

    Raises:
        ValueError: the town has no sidewalk, or its sidewalks and crossings alone need
            more than 65535 vertices.
    """
    t0 = time.perf_counter()
    raw, raw_areas = _polygons(town)
    if AREA_SIDEWALK not in raw_areas:
        raise ValueError(f"town {town.name!r} has no sidewalk: no walker navigation")
    try:
        nav = _build(town, raw, raw_areas)
    except _TooBig:
        keep = [i for i, a in enumerate(raw_areas) if a != AREA_ROAD]
        log.info("navigation mesh of %s: too many vertices with the roads, sidewalks and "
                 "crossings only", town.name)
        try:
            nav = _build(town, [raw[i] for i in keep], [raw_areas[i] for i in keep])
        except _TooBig as e:
            raise ValueError(f"town {town.name!r}: {e}") from None
    log.info("navigation mesh of %s: %d polygons, %d vertices, %d bytes in %.2f s", town.name,
             len(nav.polys), len(nav.verts), len(nav.data), time.perf_counter() - t0)
    return nav


class _TooBig(ValueError):
    pass


def _build(town: Any, raw: list[np.ndarray], raw_areas: list[int]) -> NavMesh:
    index: dict[tuple[int, int], int] = {}
    xy: list[tuple[float, float]] = []
    polys: list[tuple[int, ...]] = []
    areas: list[int] = []
    for p, a in zip(raw, raw_areas):
        if abs(_area2(p)) < 1e-4:
            continue
        if _area2(p) > 0:  # Detour's dtTriArea2D(x, z=y) > 0 is clockwise in CARLA's (x, y)
            p = p[::-1]
        ids = []
        for x, y in p:
            key = (int(np.rint(x / _GRID)), int(np.rint(y / _GRID)))
            i = index.get(key)
            if i is None:
                i = index[key] = len(xy)
                xy.append((key[0] * _GRID, key[1] * _GRID))
            if not ids or ids[-1] != i:
                ids.append(i)
        if len(ids) > 1 and ids[0] == ids[-1]:
            ids.pop()
        if len(set(ids)) >= 3 and len(ids) == len(set(ids)):
            polys.append(tuple(ids))
            areas.append(a)
    if len(xy) > 0xFFFF:
        raise _TooBig(f"{len(xy)} navigation vertices, more than 65535")
    z = _heights(town, xy)
    verts = np.column_stack([np.asarray(xy, np.float64), z]).astype(np.float32)
    data = _encode(verts, polys, areas)
    digest = hashlib.sha256(data).hexdigest()[:16]
    return NavMesh(verts=verts, polys=tuple(polys), areas=np.asarray(areas, np.uint8), data=data,
                   digest=digest)


def _heights(town: Any, xy: list[tuple[float, float]]) -> np.ndarray:
    """Ground height [m] under each vertex (the nearest lane's, from ``carla.Map``)."""
    import carla
    m = town.map
    out = np.zeros(len(xy))
    anyl = carla.LaneType.Any
    for i, (x, y) in enumerate(xy):
        try:
            wp = m.get_waypoint(carla.Location(x, y, 0.0), True, anyl)
        except RuntimeError:
            wp = None
        if wp is not None:
            out[i] = wp.transform.location.z
    return out


def _encode(verts: np.ndarray, polys: list[tuple[int, ...]], areas: list[int]) -> bytes:
    """The ``MSET`` file with one Detour tile (see the module docstring)."""
    npoly, nvert = len(polys), len(verts)
    rc = verts[:, [0, 2, 1]].astype(np.float32)  # Recast: x, up, z
    bmin = rc.min(axis=0) - np.float32(0.5)
    bmax = rc.max(axis=0) + np.float32(0.5)
    # neighbours across shared edges
    edges: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for pi, p in enumerate(polys):
        for j in range(len(p)):
            a, b = p[j], p[(j + 1) % len(p)]
            edges.setdefault((min(a, b), max(a, b)), []).append((pi, j))
    neis = [[0] * _VERTS_PER_POLY for _ in polys]
    links = 0
    for users in edges.values():
        if len(users) < 2:
            continue
        for pi, j in users:
            other = next(q for q, _ in users if q != pi) if any(q != pi for q, _ in users) else None
            if other is not None:
                neis[pi][j] = other + 1
                links += 1
    flags_of = {AREA_SIDEWALK: FLAG_SIDEWALK, AREA_CROSSWALK: FLAG_CROSSWALK, AREA_ROAD: FLAG_ROAD}
    body = bytearray()
    body += rc.astype("<f4").tobytes()
    for p, nb, a in zip(polys, neis, areas):
        vs = list(p) + [0] * (_VERTS_PER_POLY - len(p))
        body += _POLY.pack(0, *vs, *nb, flags_of[a], len(p), a & 0x3F)  # type 0: ground
    max_links = links + 1
    body += bytes(_LINK_SIZE * max_links)
    ntri = 0
    for p in polys:
        n = len(p) - 2
        body += _DETAIL.pack(0, ntri, 0, n)
        ntri += n
    tris = bytearray()
    for p in polys:
        nv = len(p)
        for j in range(2, nv):
            f = (1 << 2) | (1 if j == 2 else 0) | ((1 << 4) if j == nv - 1 else 0)
            tris += bytes((0, j - 1, j, f))
    body += tris
    body += bytes((-len(body)) % 4)
    header = _MESH_HEADER.pack(_DNAV, _NAVMESH_VERSION, 0, 0, 0, 0, npoly, nvert, max_links, npoly,
                               0, ntri, 0, 0, npoly, 1.8, 0.3, 0.5, *bmin, *bmax, 1.0)
    tile = header + bytes(body)
    max_polys = 1 << max(1, math.ceil(math.log2(max(npoly, 2))))
    tile_bits = 2  # log2(_MAX_TILES)
    poly_bits = int(math.log2(max_polys))
    if 32 - tile_bits - poly_bits < 10:
        raise ValueError(f"{npoly} navigation polygons: too many for 32-bit Detour references")
    tile_ref = 1 << (poly_bits + tile_bits)  # salt 1, tile 0
    params = struct.pack("<3fffii", float(bmin[0]), float(bmin[1]), float(bmin[2]),
                         float(bmax[0] - bmin[0]) + 1.0, float(bmax[2] - bmin[2]) + 1.0, _MAX_TILES, max_polys)
    return struct.pack("<iii", _MSET, 1, 1) + params + struct.pack("<Ii", tile_ref, len(tile)) + tile


def navmesh_file(town: Any) -> tuple[str, bytes]:
    """(file name, contents) of the town's mesh as the client caches it: the name
    carries the contents' digest, so a changed town is fetched anew. Built once per
    town (memoised on it, failures too).

    Raises:
        ValueError: the town has no navigation (see :func:`build_navmesh`).
    """
    def build() -> tuple[str, bytes] | str:
        try:
            nav = build_navmesh(town)
        except ValueError as e:
            return str(e)
        return f"drive_il/{town.name}/Nav/{town.name}_{nav.digest}.bin", nav.data
    got = town.memo("serve_navmesh", build)
    if isinstance(got, str):
        raise ValueError(got)
    return got
