"""Towns: resolve a name to an OpenDRIVE road network, parse it, and hold it as a :class:`TownMap`.

A town name resolves, in this order, to

1. a path to an ``.xodr`` file (when the name is one),
2. ``<maps_dir>/<name>.xodr`` (stem matched case-insensitively), where ``maps_dir`` is
   the explicit argument, else ``$DRIVE_IL_MAPS_DIR``, else ``~/.local/share/drive_il/maps``
   when that folder exists (``drive-il maps pull`` fills it from a CARLA server),
3. a town the project generates itself (``circuit``, ``grid``; see
   :mod:`drive_il.maps.opendrive_gen`), so a bare machine always has a map.

``procedural:<seed>`` (an integer seed >= 0) is checked first, whatever the maps
directory holds: a town generated from ``numpy.random.default_rng(seed)`` by
:mod:`drive_il.maps.procedural`, named ``procedural:<seed>`` (canonical: no leading
zeros). A range ``procedural:<a>-<b>`` names several towns: :func:`expand_towns` lists
them; :func:`load_town` loads one seed.

The text is validated (XML, an ``<OpenDRIVE>`` root with ``<road>`` elements) before it
reaches the offline parser ``carla.Map(name, xodr_text)`` of the CARLA 0.9.16 client,
which gives the same lanes, waypoints and topology a CARLA server would.

:class:`TownMap` is the map model: besides the parsed ``carla.Map`` and its text it owns,
built lazily and once, everything derived from the road network -- the lane samples
(:class:`~drive_il.maps.sampling.LaneSampler`, the one walk over the waypoints), the
lane graph, the raster's map geometry, the overlay's lane geometry and the spawn points
-- and a memo for data of higher layers (the embedded world's rasters). A town pulled
from a CARLA server is wrapped with :meth:`TownMap.from_carla_map`.

Caching: parsed towns are kept in one :class:`TownCache` (a bounded LRU keyed by the
SHA-1 of the OpenDRIVE text). :data:`TOWNS` is the process-wide instance that
:func:`load_town` and :func:`load_xodr` use by default; it is the only module-level
cache of the map layer. Two names for the same text (a copy of a file) give two
TownMaps that share the parsed map and everything derived from it.

OpenDRIVE towns carry no spawn points (a CARLA server adds them from the Unreal level):
:mod:`drive_il.maps.spawns` generates them from driving-lane waypoints away from junctions.

All poses are in CARLA's world frame (x forward, y right, z up; OpenDRIVE's y negated,
which ``carla.Map`` already applies), yaw in radians.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import xml.etree.ElementTree as ET
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import MapError
from . import opendrive_gen, procedural
from .spawns import SpawnPoint, spawn_points

if TYPE_CHECKING:  # pragma: no cover
    import carla

    from .geometry import MapGeometry
    from .lane_chunks import LaneGeometry
    from .lane_graph import LaneGraph
    from .sampling import LaneSampler

__all__ = [
    "MAPS_DIR_ENV",
    "TOWNS",
    "USER_MAPS_DIR",
    "TownCache",
    "TownMap",
    "available_towns",
    "expand_towns",
    "find_town_file",
    "load_town",
    "load_xodr",
    "parse_xodr",
    "resolve_maps_dir",
    "town_for_map",
    "town_text",
]

log = logging.getLogger(__name__)

MAPS_DIR_ENV = "DRIVE_IL_MAPS_DIR"
"""Environment variable naming the maps directory."""
USER_MAPS_DIR = Path("~/.local/share/drive_il/maps")
"""User default maps directory (used only when it exists)."""
TOWN_CACHE_SIZE = 8
"""Parsed towns kept by :data:`TOWNS` (Town04's carla.Map holds a few MB)."""

_T = TypeVar("_T")


# --------------------------------------------------------------------------- the map model
class _Derived:
    """Values derived from one road network, each built once (thread-safe); shared by
    the TownMaps of the same text."""

    __slots__ = ("_lock", "_values")

    def __init__(self) -> None:
        self._lock = threading.RLock()  # re-entrant: a builder may need another value
        self._values: dict[Hashable, Any] = {}

    def get(self, key: Hashable, build: Callable[[], _T]) -> _T:
        with self._lock:
            try:
                return self._values[key]
            except KeyError:
                value = self._values[key] = build()
                return value

    def __contains__(self, key: Hashable) -> bool:
        return key in self._values


@dataclass(frozen=True)
class TownMap:
    """A parsed town and everything derived from its road network.

    Attributes:
        name: the town's name ("Town01", "circuit", or the file stem of a path).
        map: the road network, a ``carla.Map`` (parsed offline, or a CARLA server's;
            shared between the TownMaps of the same text: treat it as read-only).
        xodr: the OpenDRIVE text it was parsed from.
        path: the .xodr file, or None for a generated town or a server's map.
        generated: True for a town generated by :mod:`drive_il.maps.opendrive_gen`.
        digest: SHA-1 hex digest of ``xodr`` (the key of every cache of derived data:
            the town cache, the raster's disk cache).

    Derived data (properties, each built on first access and then the same object):
    :attr:`lane_samples`, :attr:`lane_graph`, :attr:`map_geometry`,
    :attr:`lane_geometry`, :attr:`spawn_points`; :meth:`memo` for higher layers.
    """

    name: str
    map: "carla.Map" = field(compare=False, repr=False)
    xodr: str = field(compare=False, repr=False)
    path: Path | None = None
    generated: bool = False
    digest: str = ""
    _derived: _Derived = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_derived", _Derived())

    # -- constructors -------------------------------------------------------------------
    @classmethod
    def from_carla_map(cls, carla_map: "carla.Map", *, name: str | None = None,
                       xodr: str | None = None, path: Path | None = None) -> "TownMap":
        """Wrap a ``carla.Map`` that did not come from :func:`load_town` (a CARLA
        server's ``world.get_map()``, a map parsed by hand).

        Args:
            carla_map: the road network.
            name: the town name (default: the last part of ``carla_map.name``,
                "/Game/Carla/Maps/Town01" -> "Town01").
            xodr: its OpenDRIVE text (default ``carla_map.to_opendrive()``).
            path: the file it came from, if any.

        Returns:
            A new TownMap (not cached: hold on to it to keep its derived data).
        """
        if xodr is None:
            xodr = carla_map.to_opendrive()
        if name is None:
            name = str(getattr(carla_map, "name", "") or "map").rstrip("/").rsplit("/", 1)[-1]
        return cls(name=name, map=carla_map, xodr=xodr, path=path, generated=False,
                   digest=_sha1(xodr))

    def renamed(self, name: str, *, path: Path | None, generated: bool) -> "TownMap":
        """The same road network under another name/path, sharing the parsed map and
        all derived data."""
        t = TownMap(name=name, map=self.map, xodr=self.xodr, path=path, generated=generated,
                    digest=self.digest)
        object.__setattr__(t, "_derived", self._derived)
        return t

    # -- derived data ---------------------------------------------------------------------
    def memo(self, key: Hashable, build: Callable[[], _T]) -> _T:
        """The value stored under ``key``, built with ``build()`` on first use.

        For data of higher layers that belongs to the town but cannot be a property
        here without importing upwards (the embedded world's rasters, keyed by
        resolution and bounds). Thread-safe; the value lives as long as the town.
        """
        return self._derived.get(("memo", key), build)

    def has_memo(self, key: Hashable) -> bool:
        """Whether :meth:`memo` holds a value for ``key``."""
        return ("memo", key) in self._derived

    @property
    def lane_samples(self) -> "LaneSampler":
        """The one sampler of this town's lanes (:class:`~drive_il.maps.sampling.LaneSampler`)."""
        from .sampling import LaneSampler
        return self._derived.get("lane_samples", lambda: LaneSampler(self.map, self.xodr))

    @property
    def lane_graph(self) -> "LaneGraph":
        """The lane graph for route planning (:class:`~drive_il.maps.lane_graph.LaneGraph`)."""
        from .lane_graph import LaneGraph
        return self._derived.get("lane_graph", lambda: LaneGraph.from_samples(self.lane_samples))

    @property
    def map_geometry(self) -> "MapGeometry":
        """Lane surfaces and markings as polygons, for the raster
        (:func:`~drive_il.maps.geometry.extract_geometry`)."""
        from .geometry import extract_geometry
        return self._derived.get("map_geometry", lambda: extract_geometry(self.lane_samples))

    @property
    def lane_geometry(self) -> "LaneGeometry":
        """Lane chunks for the overlay's bird's-eye panel
        (:class:`~drive_il.maps.lane_chunks.LaneGeometry`, 2 m spacing, 12 points a chunk)."""
        from .lane_chunks import LaneGeometry
        return self._derived.get("lane_geometry", lambda: LaneGeometry.from_samples(self.lane_samples))

    @property
    def spawn_points(self) -> tuple["SpawnPoint", ...]:
        """:func:`~drive_il.maps.spawns.spawn_points` of this town with the default spacing."""
        return self._derived.get("spawn_points", lambda: tuple(spawn_points(self.map)))


def _sha1(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------- the town cache
class TownCache:
    """Parsed towns, keyed by the SHA-1 of their OpenDRIVE text; the least recently used
    goes first when more than ``size`` are held. Thread-safe.

    Args:
        size: how many towns to keep (>= 1).

    Raises:
        ValueError: ``size`` < 1.
    """

    def __init__(self, size: int = TOWN_CACHE_SIZE) -> None:
        if size < 1:
            raise ValueError(f"TownCache size must be >= 1, got {size!r}")
        self.size = int(size)
        self._towns: OrderedDict[str, TownMap] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, digest: str) -> TownMap | None:
        """The town parsed from the text of SHA-1 ``digest``, or None."""
        with self._lock:
            town = self._towns.get(digest)
            if town is not None:
                self._towns.move_to_end(digest)
            return town

    def put(self, town: TownMap) -> TownMap:
        """Keep ``town`` (under ``town.digest``); returns the town held for that digest
        (an earlier one when another thread got there first)."""
        with self._lock:
            held = self._towns.setdefault(town.digest, town)
            self._towns.move_to_end(town.digest)
            while len(self._towns) > self.size:
                self._towns.popitem(last=False)
            return held

    def find_map(self, carla_map: Any) -> TownMap | None:
        """The held town whose ``map`` is ``carla_map`` (the very object), or None."""
        with self._lock:
            return next((t for t in self._towns.values() if t.map is carla_map), None)

    def clear(self) -> None:
        with self._lock:
            self._towns.clear()

    def __len__(self) -> int:
        return len(self._towns)


TOWNS = TownCache()
"""The process-wide town cache (the one module-level cache of :mod:`drive_il.maps`)."""


# --------------------------------------------------------------------------- resolution
def resolve_maps_dir(maps_dir: str | os.PathLike[str] | None = None) -> Path | None:
    """The maps directory: ``maps_dir`` > ``$DRIVE_IL_MAPS_DIR`` > the user default.

    An explicit or environment directory is returned even when it does not exist (so
    errors can name it); the user default ``~/.local/share/drive_il/maps`` only when it
    exists. Returns None when there is none.
    """
    if maps_dir is not None and str(maps_dir) != "":
        return Path(maps_dir).expanduser()
    env = os.environ.get(MAPS_DIR_ENV, "").strip()
    if env:
        return Path(env).expanduser()
    user = USER_MAPS_DIR.expanduser()
    return user if user.is_dir() else None


def _dir_towns(d: Path | None) -> dict[str, Path]:
    """{stem: path} of the .xodr files in ``d`` (empty when absent), sorted by stem."""
    if d is None or not d.is_dir():
        return {}
    files = sorted((p for p in d.iterdir() if p.suffix.lower() == ".xodr" and p.is_file()),
                   key=lambda p: p.name)
    return {p.stem: p for p in files}


def available_towns(maps_dir: str | os.PathLike[str] | None = None) -> list[str]:
    """Towns that :func:`load_town` can resolve: the maps directory's .xodr stems
    (sorted), then the generated towns not shadowed by a file."""
    files = _dir_towns(resolve_maps_dir(maps_dir))
    lower = {s.lower() for s in files}
    return list(files) + [g for g in opendrive_gen.GENERATED_TOWNS if g not in lower]


def find_town_file(name: str, maps_dir: str | os.PathLike[str] | None = None) -> Path | None:
    """``<maps_dir>/<name>.xodr`` (exact stem first, then case-insensitive), or None."""
    files = _dir_towns(resolve_maps_dir(maps_dir))
    if name in files:
        return files[name]
    matches = [p for s, p in files.items() if s.lower() == name.lower()]
    return matches[0] if matches else None


def expand_towns(spec: str) -> list[str]:
    """The town names ``spec`` stands for: a range ``procedural:0-499`` -> its 500
    names, ``procedural:<seed>`` -> its canonical name, any other name -> ``[spec]``
    (see :func:`drive_il.maps.procedural.expand_towns`).

    Raises:
        MapError: a bad procedural seed or range (one line).
    """
    return procedural.expand_towns(spec)


def _looks_like_path(name: str) -> bool:
    return name.lower().endswith(".xodr") or "/" in name or os.sep in name


def town_text(name: str | os.PathLike[str], maps_dir: str | os.PathLike[str] | None = None
              ) -> tuple[str, str, Path | None, bool]:
    """Resolve ``name`` without parsing it.

    Returns:
        (town name, OpenDRIVE text, path or None, generated).

    Raises:
        MapError: unknown town, or a missing/unreadable/empty file.
    """
    if isinstance(name, os.PathLike):
        path = Path(name).expanduser()
        return path.stem, _read_xodr(path), path, False
    if not isinstance(name, str) or not name.strip():
        raise MapError(f"town name must be a non-empty string or a path, got {name!r}")
    name = name.strip()
    if procedural.is_procedural(name):
        seed = procedural.parse_seed(name)
        return procedural.town_name(seed), procedural.generate(seed), None, True
    if _looks_like_path(name):
        path = Path(name).expanduser()
        return path.stem, _read_xodr(path), path, False
    path = find_town_file(name, maps_dir)
    if path is not None:
        return path.stem, _read_xodr(path), path, False
    if opendrive_gen.is_generated(name):
        return name.lower(), opendrive_gen.generate(name.lower()), None, True
    d = resolve_maps_dir(maps_dir)
    if d is None:
        where = (f"no maps directory (none given, ${MAPS_DIR_ENV} unset, "
                 f"{USER_MAPS_DIR} absent; `drive-il maps pull` fills one from a CARLA server)")
    elif not d.is_dir():
        where = f"maps directory {d} does not exist"
    else:
        where = f"no {name}.xodr in {d}"
    raise MapError(f"unknown town {name!r}: {where}; available towns: "
                   f"{', '.join(available_towns(maps_dir))}")


def _read_xodr(path: Path) -> str:
    if not path.exists():
        raise MapError(f"OpenDRIVE file {path} not found")
    if not path.is_file():
        raise MapError(f"OpenDRIVE file {path} is not a regular file")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise MapError(f"OpenDRIVE file {path} is not UTF-8 text ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise MapError(f"OpenDRIVE file {path} cannot be read: {e.strerror or e}") from None
    if not text.strip():
        raise MapError(f"OpenDRIVE file {path} is empty")
    return text


# --------------------------------------------------------------------------- parsing
def _validate_xml(text: str, source: str) -> None:
    """Cheap structural checks before handing ``text`` to carla (which may misbehave on
    garbage): XML, an OpenDRIVE root, roads with a planView geometry and lanes."""
    if not text.strip():
        raise MapError(f"{source}: empty OpenDRIVE text")
    try:
        root = ET.fromstring(text)
    except ET.ParseError as e:
        raise MapError(f"{source}: not valid XML ({e})") from None
    if root.tag != "OpenDRIVE":
        raise MapError(f"{source}: root element is <{root.tag}>, expected <OpenDRIVE>")
    roads = root.findall("road")
    if not roads:
        raise MapError(f"{source}: no <road> elements (an OpenDRIVE road network needs roads)")
    for road in roads:
        rid = road.get("id")
        if road.find("planView/geometry") is None:
            raise MapError(f"{source}: road {rid} has no <planView><geometry>")
        if road.find("lanes/laneSection/center/lane") is None:
            raise MapError(f"{source}: road {rid} has no <lanes><laneSection> with a centre lane")
        try:
            float(road.get("length", "nan"))
        except ValueError:
            raise MapError(f"{source}: road {rid} has a non-numeric length "
                           f"{road.get('length')!r}") from None


def parse_xodr(text: str, *, name: str = "town", source: str | None = None) -> "carla.Map":
    """Validate OpenDRIVE text and parse it with ``carla.Map(name, text)`` (not cached:
    :func:`load_town` caches whole towns).

    Args:
        text: the OpenDRIVE 1.4 XML.
        name: the map name given to carla.
        source: what to name in errors (a path or a town name; default ``name``).

    Returns:
        A new carla.Map.

    Raises:
        MapError: not XML, not OpenDRIVE, no roads, rejected by carla, or no driving
            lane waypoints.
    """
    source = source or name
    _validate_xml(text, source)
    import carla
    try:
        m = carla.Map(name, text)
        waypoints = m.generate_waypoints(5.0)
        topology = m.get_topology()
    except Exception as e:  # carla raises RuntimeError / IndexError from C++
        raise MapError(f"{source}: carla.Map could not parse the OpenDRIVE road network "
                       f"({type(e).__name__}: {e})") from None
    if not waypoints or not topology:
        raise MapError(f"{source}: the OpenDRIVE road network has no driving lanes "
                       "(carla.Map yields no waypoints)")
    return m


def _town(name: str, text: str, path: Path | None, generated: bool, source: str,
          cache: TownCache | None) -> TownMap:
    """The TownMap of ``text`` under ``name``, from ``cache`` when it holds the text."""
    digest = _sha1(text)
    held = cache.get(digest) if cache is not None else None
    if held is None:
        town = TownMap(name=name, map=parse_xodr(text, name=name, source=source), xodr=text,
                       path=path, generated=generated, digest=digest)
        if cache is None:
            return town
        held = cache.put(town)
    if (held.name, held.path, held.generated) == (name, path, generated):
        return held
    return held.renamed(name, path=path, generated=generated)


def load_xodr(path: str | os.PathLike[str], *, cache: TownCache | None = TOWNS) -> TownMap:
    """Load an .xodr file as a town named after its stem.

    Args:
        path: the file.
        cache: the town cache (default :data:`TOWNS`; None parses anew).

    Raises:
        MapError: missing, unreadable, empty or corrupt file.
    """
    p = Path(path).expanduser()
    return _town(p.stem, _read_xodr(p), p, False, str(p), cache)


def load_town(name: str | os.PathLike[str], maps_dir: str | os.PathLike[str] | None = None, *,
              cache: TownCache | None = TOWNS) -> TownMap:
    """Resolve and parse a town (see the module docstring for the resolution order).

    Args:
        name: a town name ("Town01", "circuit", "grid", "procedural:17") or a path to an
            .xodr file.
        maps_dir: the maps directory (default: ``$DRIVE_IL_MAPS_DIR``, then
            ``~/.local/share/drive_il/maps``).
        cache: the town cache (default :data:`TOWNS`, keyed by the text's SHA-1; None
            parses anew).

    Returns:
        The TownMap (the same object for the same name and text while cached).

    Raises:
        MapError: unknown town (naming where it looked and the available towns), or a
            missing, unreadable, empty or corrupt .xodr (naming the file).
    """
    town, text, path, generated = town_text(name, maps_dir)
    source = str(path) if path is not None else f"generated town {town!r}"
    return _town(town, text, path, generated, source, cache)


def town_for_map(carla_map: "carla.Map", *, cache: TownCache | None = TOWNS) -> TownMap:
    """The TownMap of a ``carla.Map``: the cached town that holds this very map, else a
    new :meth:`TownMap.from_carla_map` (not cached: pass TownMaps around to share
    derived data)."""
    held = cache.find_map(carla_map) if cache is not None else None
    return held if held is not None else TownMap.from_carla_map(carla_map)
