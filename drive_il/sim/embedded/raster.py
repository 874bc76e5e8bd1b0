"""Top-down raster of a town: the ground texture the embedded camera sees.

The raster is painted (:mod:`.paint`) from the town's lane polygons
(:attr:`drive_il.maps.towns.TownMap.map_geometry`, :mod:`drive_il.maps.geometry`) once per
town, resolution and crop, and cached on disk (memory-mapped, shared between processes;
:func:`raster_cache_dir`) and on the town itself (:meth:`drive_il.maps.towns.TownMap.memo`):
:meth:`MapRaster.for_town` returns the same object for the same town and arguments.

Frame and pixel convention (documented once, used by the camera and the world):

* CARLA world frame, left-handed seen from above: x east, y south. The raster's
  columns run along +x and its rows along +y, so an image of the raster viewed as is
  (row 0 at the top) is the map seen from above with north up, and the map's
  handedness is kept (no mirror): ``col = (x - x0) / res``, ``row = (y - y0) / res``.
* Pixel *centres* lie at integer (col, row), as OpenCV's drawing and warping
  functions assume.

Layers (``levels[0]`` is (H, W, 4) uint8):

* channels 0-2: RGB colour (asphalt with grain and blotches, paint, curbs, sidewalks,
  shoulders, grass/dirt terrain), deterministic from a seed derived from the map digest;
* channel 3: the :class:`~drive_il.maps.geometry.LaneClass` code of each pixel
  (``classes``); ``drivable`` is ``classes == LaneClass.DRIVING`` (driving lanes and
  junction surfaces).

``levels[k]`` (k >= 1) are ``cv2.pyrDown`` images (Gaussian pre-blur, half size) used by
the camera as a mipmap pyramid against aliasing; their channel 3 is meaningless. Four
channels because OpenCV's bilinear warp is ~1.6x faster on 4-channel images than on
3-channel ones (measured: 75 us vs 124 us for a 57x200 band on one core).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ...maps.geometry import LaneClass
from ...maps.towns import TownMap
from .appearance import APPEARANCE_VERSION, Appearance
from .paint import render

if TYPE_CHECKING:  # pragma: no cover
    import carla

__all__ = [
    "MARGIN",
    "MAX_PIXELS",
    "RASTER_VERSION",
    "RESOLUTIONS",
    "MapRaster",
    "choose_resolution",
    "raster_cache_dir",
]

log = logging.getLogger(__name__)

#: Bumped whenever the raster's content changes (part of the disk cache key).
RASTER_VERSION = 8

#: Raster resolutions tried, finest first [m/px].
RESOLUTIONS = (0.05, 0.1, 0.125, 0.15, 0.2, 0.25, 0.4, 0.5)
#: Pixel budget of level 0 (4 bytes each; the pyramid adds one third).
MAX_PIXELS = 80_000_000
#: Terrain margin around the road network [m].
MARGIN = 15.0


def choose_resolution(bounds: tuple[float, float, float, float], *, margin: float = MARGIN,
                      max_pixels: int = MAX_PIXELS) -> float:
    """The finest of :data:`RESOLUTIONS` whose raster of ``bounds`` + margin fits the budget."""
    w = bounds[2] - bounds[0] + 2 * margin
    h = bounds[3] - bounds[1] + 2 * margin
    for r in RESOLUTIONS:
        if (w / r) * (h / r) <= max_pixels:
            return r
    return RESOLUTIONS[-1]


def raster_cache_dir(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """``$DRIVE_IL_CACHE_DIR/raster`` or ``~/.cache/drive_il/raster``."""
    if cache_dir is not None:
        return Path(cache_dir)
    env = os.environ.get("DRIVE_IL_CACHE_DIR")
    base = Path(env) if env else Path.home() / ".cache" / "drive_il"
    return base / "raster"


class MapRaster:
    """A top-down raster of a town with a mipmap pyramid and a drivable layer.

    Build with :meth:`for_town` (cached); see the module docstring for the frame.

    Attributes:
        levels: tuple of (H_k, W_k, 4) uint8 arrays; level 0 = RGB + LaneClass code,
            level k = ``cv2.pyrDown`` of level k-1 (channel 3 meaningless there).
        res: level-0 resolution [m/px].
        x0, y0: world coordinates [m] of the centre of pixel (0, 0).
        digest: the key of this raster (map digest, resolution, bounds, version).
        border_value: the RGBX value sampled outside the raster (plain terrain).
    """

    def __init__(self, *, levels: Sequence[np.ndarray], res: float, x0: float, y0: float,
                 digest: str, border_value: tuple[int, int, int, int]) -> None:
        if not levels or levels[0].ndim != 3 or levels[0].shape[2] != 4 or levels[0].dtype != np.uint8:
            raise ValueError("MapRaster.levels[0] must be an (H, W, 4) uint8 array")
        self.levels = tuple(levels)
        self.res = float(res)
        self.x0 = float(x0)
        self.y0 = float(y0)
        self.digest = digest
        self.border_value = tuple(int(v) for v in border_value)
        self._drivable: np.ndarray | None = None

    # -- shape and frames ------------------------------------------------------------
    @property
    def height(self) -> int:
        return int(self.levels[0].shape[0])

    @property
    def width(self) -> int:
        return int(self.levels[0].shape[1])

    @property
    def colour(self) -> np.ndarray:
        """(H, W, 3) uint8 RGB view of level 0."""
        return self.levels[0][..., :3]

    @property
    def classes(self) -> np.ndarray:
        """(H, W) uint8 LaneClass codes (a view of level 0's channel 3)."""
        return self.levels[0][..., 3]

    @property
    def drivable(self) -> np.ndarray:
        """(H, W) bool: driving lanes and junction surfaces (computed once, cached)."""
        if self._drivable is None:
            self._drivable = self.classes == LaneClass.DRIVING
        return self._drivable

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """World extent (xmin, ymin, xmax, ymax) [m] covered by pixel centres."""
        return (self.x0, self.y0, self.x0 + (self.width - 1) * self.res, self.y0 + (self.height - 1) * self.res)

    @property
    def nbytes(self) -> int:
        """Bytes of all levels."""
        return int(sum(lv.nbytes for lv in self.levels))

    def world_to_pixel(self, x, y):
        """World (x, y) [m] -> raster (col, row) [px] (floats or arrays)."""
        return ((np.asarray(x) - self.x0) / self.res, (np.asarray(y) - self.y0) / self.res) \
            if isinstance(x, np.ndarray) else ((x - self.x0) / self.res, (y - self.y0) / self.res)

    def pixel_to_world(self, col, row):
        """Raster (col, row) [px] -> world (x, y) [m]."""
        return (self.x0 + col * self.res, self.y0 + row * self.res)

    def class_at(self, x: float, y: float) -> LaneClass:
        """LaneClass at world (x, y) (TERRAIN outside the raster)."""
        c = round((x - self.x0) / self.res)
        r = round((y - self.y0) / self.res)
        if 0 <= r < self.height and 0 <= c < self.width:
            return LaneClass(int(self.levels[0][r, c, 3]))
        return LaneClass.TERRAIN

    def is_drivable(self, x: float, y: float) -> bool:
        """True where world (x, y) [m] lies on a driving lane or junction surface."""
        c = round((x - self.x0) / self.res)
        r = round((y - self.y0) / self.res)
        if 0 <= r < self.height and 0 <= c < self.width:
            return int(self.levels[0][r, c, 3]) == LaneClass.DRIVING
        return False

    def is_drivable_many(self, xy: np.ndarray) -> np.ndarray:
        """Vectorised :meth:`is_drivable`.

        Args:
            xy: (N, 2) world points [m].

        Returns:
            (N,) bool.
        """
        xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        if len(xy) <= 8:
            return np.array([self.is_drivable(float(x), float(y)) for x, y in xy], dtype=bool)
        c = np.rint((xy[:, 0] - self.x0) / self.res).astype(np.int64)
        r = np.rint((xy[:, 1] - self.y0) / self.res).astype(np.int64)
        ok = (r >= 0) & (r < self.height) & (c >= 0) & (c < self.width)
        out = np.zeros(len(xy), dtype=bool)
        if ok.any():
            out[ok] = self.levels[0][r[ok], c[ok], 3] == LaneClass.DRIVING
        return out


    @classmethod
    def for_town(cls, town: TownMap, *, resolution: float | None = None,
                 bounds: tuple[float, float, float, float] | None = None, cache: bool = True,
                 cache_dir: str | os.PathLike[str] | None = None,
                 max_pixels: int = MAX_PIXELS, appearance: Appearance | None = None) -> MapRaster:
        """The raster of a town: from the town's memo, else the disk cache, else painted.

        Args:
            town: the town (its lane polygons ``town.map_geometry`` and ``digest``).
            resolution: [m/px]; None chooses from :data:`RESOLUTIONS` by the pixel budget
                (0.05 m for Town01-sized maps, coarser for Town04).
            bounds: restrict the raster to (xmin, ymin, xmax, ymax) [m] (tests, crops);
                default: the road network plus a terrain margin.
            cache: keep the raster on the town (same object next time) and on disk.
            cache_dir: disk cache folder (default :func:`raster_cache_dir`).
            max_pixels: level-0 pixel budget when choosing the resolution.
            appearance: the ground's look (:class:`~.appearance.Appearance`: colours,
                texture, paint wear); None or the default look keep the default raster
                (and its cache key); another look is painted and cached under a key
                with its :attr:`~.appearance.Appearance.key`.

        Returns:
            MapRaster (deterministic: the same town and arguments give identical arrays).

        Raises:
            MapError: the map has no lanes.
            ValueError: a bad resolution or bounds.
        """
        digest = town.digest or hashlib.sha1(town.xodr.encode("utf-8")).hexdigest()
        if resolution is not None and not (0.005 <= resolution <= 5.0):
            raise ValueError(f"resolution must be in [0.005, 5] m/px, got {resolution!r}")
        key_base = f"{digest[:16]}-v{RASTER_VERSION}"
        if bounds is not None:
            bx0, by0, bx1, by1 = (float(v) for v in bounds)
            if not (bx1 > bx0 and by1 > by0):
                raise ValueError(f"bounds must be (xmin, ymin, xmax, ymax) with max > min, got {bounds!r}")

        def area() -> tuple[float, float, float, float]:
            if bounds is not None:
                return bounds
            # the road network's extent: needs the lane polygons (not needed for a
            # cached raster of a given resolution)
            gx0, gy0, gx1, gy1 = town.map_geometry.bounds
            return (gx0 - MARGIN, gy0 - MARGIN, gx1 + MARGIN, gy1 + MARGIN)

        res = resolution if resolution is not None else choose_resolution(area(), margin=0.0, max_pixels=max_pixels)
        key = _key(key_base, res, bounds)
        look = None if appearance is None or appearance.is_default else appearance
        if look is not None:
            key += f"-a{APPEARANCE_VERSION}{look.key}"

        def make() -> MapRaster:
            hit = _load_cached(key, cache_dir) if cache else None
            if hit is not None:
                return hit
            t0 = time.perf_counter()
            levels, x0, y0, border = render(town.map_geometry, area(), res,
                                            seed=int(digest[:8], 16) if _is_hex(digest[:8]) else 0,
                                            appearance=look)
            raster = cls(levels=levels, res=res, x0=x0, y0=y0, digest=key, border_value=border)
            log.info("built raster %s (%dx%d at %.3f m/px, %.0f MB) in %.2f s", key, raster.width,
                     raster.height, res, raster.nbytes / 1e6, time.perf_counter() - t0)
            if cache:
                try:
                    raster = _save(raster, raster_cache_dir(cache_dir) / key)
                except OSError as e:  # a read-only home must not stop the simulator
                    log.warning("could not cache raster %s: %s", key, e)
            return raster

        if not cache:
            return make()
        return town.memo(("raster", key, None if cache_dir is None else str(cache_dir)), make)

    @classmethod
    def build(cls, carla_map: carla.Map, *, xodr: str | None = None, digest: str | None = None,
              resolution: float | None = None, bounds: tuple[float, float, float, float] | None = None,
              cache: bool = True, cache_dir: str | os.PathLike[str] | None = None,
              max_pixels: int = MAX_PIXELS) -> MapRaster:
        """The raster of a bare ``carla.Map`` (no TownMap): :meth:`for_town` of a new
        :meth:`TownMap.from_carla_map <drive_il.maps.towns.TownMap.from_carla_map>`, so
        only the disk cache is shared between calls.

        Args:
            carla_map: the town.
            xodr: its OpenDRIVE text (default: ``carla_map.to_opendrive()``).
            digest: SHA-1 of ``xodr`` (computed when None).
            resolution, bounds, cache, cache_dir, max_pixels: as :meth:`for_town`.

        Raises:
            MapError: the map has no lanes.
            ValueError: a bad resolution or bounds.
        """
        town = TownMap.from_carla_map(carla_map, xodr=xodr)
        if digest is not None and digest != town.digest:
            town = TownMap(name=town.name, map=carla_map, xodr=town.xodr, digest=digest)
        return cls.for_town(town, resolution=resolution, bounds=bounds, cache=cache,
                            cache_dir=cache_dir, max_pixels=max_pixels)


def _load_cached(key: str, cache_dir: str | os.PathLike[str] | None) -> MapRaster | None:
    """The raster ``key`` from the disk cache, or None."""
    d = raster_cache_dir(cache_dir) / key
    if (d / "meta.json").exists():
        try:
            return _load(d)
        except (OSError, ValueError, KeyError) as e:
            log.warning("ignoring unreadable raster cache %s: %s", d, e)
    return None


def _is_hex(s: str) -> bool:
    try:
        int(s, 16)
        return True
    except ValueError:
        return False


def _key(base: str, res: float, bounds) -> str:
    k = f"{base}-{round(res * 1000)}mm"
    if bounds is not None:
        h = hashlib.sha1(repr(tuple(round(float(v), 3) for v in bounds)).encode()).hexdigest()[:8]
        k += f"-crop{h}"
    return k



def _save(r: MapRaster, d: Path) -> MapRaster:
    d.parent.mkdir(parents=True, exist_ok=True)
    if (d / "meta.json").exists():
        return _load(d)
    tmp = Path(tempfile.mkdtemp(prefix=d.name + ".tmp", dir=d.parent))
    try:
        for k, lv in enumerate(r.levels):
            np.save(tmp / f"level{k}.npy", lv, allow_pickle=False)
        meta = {"res": r.res, "x0": r.x0, "y0": r.y0, "digest": r.digest, "levels": len(r.levels),
                "border_value": list(r.border_value), "version": RASTER_VERSION}
        (tmp / "meta.json").write_text(json.dumps(meta))
        try:
            os.replace(tmp, d)
        except OSError:
            if not (d / "meta.json").exists():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    _prune_old_versions(d)
    _prune_to_budget(d)
    return _load(d)


#: Default size budget of the raster disk cache [GB] (``DRIVE_IL_RASTER_CACHE_GB``).
RASTER_CACHE_GB = 8.0


def _prune_to_budget(keep: Path) -> None:
    """Keep the disk cache under ``$DRIVE_IL_RASTER_CACHE_GB`` (default
    :data:`RASTER_CACHE_GB`): remove the least recently used rasters (by the time their
    ``meta.json`` was last written or loaded), never ``keep``. Many generated towns
    (``procedural:0-499``) would otherwise fill the disk at ~0.1-0.3 GB each."""
    try:
        budget = float(os.environ.get("DRIVE_IL_RASTER_CACHE_GB", RASTER_CACHE_GB)) * 1e9
    except ValueError:
        budget = RASTER_CACHE_GB * 1e9
    entries = []
    for d in keep.parent.iterdir():
        meta = d / "meta.json"
        if not d.is_dir() or ".tmp" in d.name or not meta.exists():
            continue
        try:
            size = sum(f.stat().st_size for f in d.iterdir())
            entries.append((meta.stat().st_mtime, size, d))
        except OSError:  # removed by another process meanwhile
            continue
    total = sum(e[1] for e in entries)
    for _, size, d in sorted(entries, key=lambda e: e[0]):
        if total <= budget:
            break
        if d == keep:
            continue
        shutil.rmtree(d, ignore_errors=True)  # a process that maps it keeps its pages (POSIX)
        total -= size


def _prune_old_versions(d: Path) -> None:
    """Remove cached rasters of the same map from other RASTER_VERSIONs (a process that
    still maps one keeps its pages: unlinking mapped files is safe on POSIX)."""
    digest16 = d.name.split("-", 1)[0]
    for other in d.parent.glob(f"{digest16}-v*"):
        if other.is_dir() and not other.name.startswith(f"{digest16}-v{RASTER_VERSION}-") and ".tmp" not in other.name:
            shutil.rmtree(other, ignore_errors=True)


def _load(d: Path) -> MapRaster:
    meta = json.loads((d / "meta.json").read_text())
    try:
        os.utime(d / "meta.json")  # last used: the disk cache's eviction order
    except OSError:
        pass
    if meta.get("version") != RASTER_VERSION:
        raise ValueError(f"raster cache version {meta.get('version')} != {RASTER_VERSION}")
    # memory-mapped (pages shared between processes, loaded lazily), as plain ndarrays
    levels = [np.load(d / f"level{k}.npy", mmap_mode="r", allow_pickle=False).view(np.ndarray)
              for k in range(int(meta["levels"]))]
    return MapRaster(levels=levels, res=meta["res"], x0=meta["x0"], y0=meta["y0"], digest=meta["digest"],
                     border_value=tuple(meta["border_value"]))

