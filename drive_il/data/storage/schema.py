"""Episode file schema: layout version, file names, the per-step fields, and the root
attributes (:class:`EpisodeMeta`) with their (de)serialisation.

What every other module of the package agrees on; the tree is drawn in
:mod:`drive_il.data.storage`.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ...errors import DataError
from ...types import STOP_REASON_UNKNOWN

__all__ = [
    "SCHEMA_VERSION",
    "SUPPORTED_SCHEMA_VERSIONS",
    "FORMAT_NAME",
    "MANIFEST_NAME",
    "PARTIAL_SUFFIX",
    "EPISODE_SUFFIX",
    "STEP_FIELDS",
    "DRIVER_NAMES",
    "EVENT_FIELDS",
    "STEP_FIELD_DEFAULTS",
    "step_fields_of_version",
    "default_step_array",
    "EpisodeMeta",
    "episode_filename",
    "episode_index_from_path",
]

#: Version of the on-disk layout written by this code. Bump on any incompatible change.
#: Version 2 added the per-step ``target_speed``, ``learner_target_speed``, ``red_light``
#: and ``walker_collision`` arrays, version 3 ``stop_reason``, version 4 ``obstacle``
#: (:data:`STEP_FIELD_DEFAULTS`).
SCHEMA_VERSION = 4
#: Versions this code reads (version 1 files read with the arrays they lack filled in
#: from :data:`STEP_FIELD_DEFAULTS`).
SUPPORTED_SCHEMA_VERSIONS: tuple[int, ...] = (1, 2, 3, 4)
#: ``format`` attribute of every episode file.
FORMAT_NAME = "drive_il.episode"
MANIFEST_NAME = "manifest.jsonl"
PARTIAL_SUFFIX = ".partial"
EPISODE_SUFFIX = ".h5"

#: Per-step arrays: name -> (dtype, trailing shape, description).
STEP_FIELDS: dict[str, tuple[str, tuple[int, ...], str]] = {
    "frame": ("int64", (), "simulation frame number"),
    "sim_time": ("float64", (), "simulation time [s]"),
    "speed": ("float32", (), "ego speed [m/s]"),
    "pose": ("float64", (4,), "x, y, z [m], yaw [rad] in CARLA's world frame"),
    "command": ("int8", (), "RoadOption value in force"),
    "executed": ("float32", (3,), "steer, throttle, brake sent to the simulator"),
    "expert": ("float32", (3,), "expert label: steer, throttle, brake"),
    "learner": ("float32", (3,), "learner prediction (NaN when none ran)"),
    "intervention": ("bool", (), "expert or human took over"),
    "noise": ("bool", (), "executed control perturbed by noise injection"),
    "driver": ("uint8", (), "index into DRIVER_NAMES (attribute 'names')"),
    "lateral_deviation": ("float32", (), "lateral deviation [m], + = right of lane centre"),
    "heading_error": ("float32", (), "vehicle yaw minus lane direction [rad]"),
    "route_progress": ("float32", (), "arc length along the route [m]"),
    "collision": ("bool", (), "collision reported while executing the control"),
    "off_road": ("bool", (), "left the drivable surface"),
    "lane_invasion": ("bool", (), "crossed a lane marking"),
    "target_speed": ("float32", (), "the expert's target speed at this state [m/s] (speed label), NaN = unknown"),
    "learner_target_speed": ("float32", (), "target speed of the learner's speed head [m/s], NaN = none"),
    "red_light": ("bool", (), "crossed the stop line of its lane while red"),
    "walker_collision": ("bool", (), "hit a pedestrian"),
    "stop_reason": ("uint8", (), "why the expert's target speed is below the route's speed profile: index into "
                    "drive_il.types.STOP_REASONS (0 nothing, 1 red light, 2 yellow light, 3 walker, 4 vehicle), "
                    "255 = unknown"),
    "obstacle": ("float32", (2,), "what stop_reason names: gap from the front bumper along the route [m] and its "
                 "speed along the route [m/s]; gap +inf and speed NaN when nothing lowers the target speed, "
                 "both NaN = unknown"),
}
#: Event flags among STEP_FIELDS (EventKind values).
EVENT_FIELDS: tuple[str, ...] = ("collision", "off_road", "lane_invasion", "red_light", "walker_collision")
#: Per-step arrays added after schema version 1 -> (the version that added them, the
#: value that fills them when a file of an older version is read).
STEP_FIELD_DEFAULTS: dict[str, tuple[int, Any]] = {
    "target_speed": (2, float("nan")),
    "learner_target_speed": (2, float("nan")),
    "red_light": (2, False),
    "walker_collision": (2, False),
    "stop_reason": (3, STOP_REASON_UNKNOWN),
    "obstacle": (4, float("nan")),
}


def step_fields_of_version(version: int) -> tuple[str, ...]:
    """The STEP_FIELDS names a file of schema ``version`` stores (the others read as
    :data:`STEP_FIELD_DEFAULTS`)."""
    return tuple(k for k in STEP_FIELDS if k not in STEP_FIELD_DEFAULTS or STEP_FIELD_DEFAULTS[k][0] <= version)


def default_step_array(name: str, steps: int) -> np.ndarray:
    """The (T, ...) array that stands for a field a file of an older schema lacks:
    filled with its :data:`STEP_FIELD_DEFAULTS` value in its STEP_FIELDS dtype.

    Raises:
        KeyError: ``name`` is not a field added after version 1.
    """
    dtype, tail, _ = STEP_FIELDS[name]
    return np.full((int(steps), *tail), STEP_FIELD_DEFAULTS[name][1], dtype=dtype)
#: Codes of the per-step ``driver`` array (unknown names are appended per file).
DRIVER_NAMES: tuple[str, ...] = ("expert", "learner", "human")

_NAME_RE = re.compile(r"^episode_(\d+)\.h5$")


def episode_filename(episode: int) -> str:
    """File name of episode ``episode`` (its index within the run): ``episode_000012.h5``."""
    if episode < 0:
        raise ValueError(f"episode index must be >= 0, got {episode}")
    return f"episode_{episode:06d}{EPISODE_SUFFIX}"


def episode_index_from_path(path: str | Path) -> int | None:
    """The episode index encoded in a finished file's name, or None."""
    m = _NAME_RE.match(Path(path).name)
    return int(m.group(1)) if m else None


# --------------------------------------------------------------------------- metadata


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    if dataclasses.is_dataclass(o) and not isinstance(o, type):
        return dataclasses.asdict(o)
    if hasattr(o, "name") and hasattr(o, "value"):  # enums
        return o.name
    if isinstance(o, (set, frozenset)):
        return sorted(o)
    return str(o)


def _dumps(v: Any) -> str:
    return json.dumps(v, default=_json_default, sort_keys=True, allow_nan=True)


@dataclass(frozen=True)
class EpisodeMeta:
    """Per-episode metadata of an episode file (the root attributes).

    Attributes:
        path: the file.
        schema_version: on-disk layout version.
        scenario: scenario name; scenario_source: its file; scenario_dict: the full
            scenario as plain values.
        town, seed, episode, weather, backend: where and how it was driven.
        density: the traffic condition ("custom", "empty", "regular", "dense"; ""
            in files written before it was recorded).
        dt: fixed step [s].
        cameras: the camera rig, one dict per camera (name, width, height, fov_deg,
            x, y, z [m], pitch_deg, yaw_deg), as given by the rollout, completed with
            the recorded image size.
        vehicle: vehicle parameters (wheelbase [m], max_steer_deg, ...).
        expert_preset, driver: who taught / who drove.
        dagger_round: DAgger round or None; beta: DAgger beta or None.
        noise: noise-injection settings ({} when off).
        termination: how the episode ended ("" while partial).
        summary: metric name -> value.
        steps: number of recorded steps T.
        duration: T * dt [s]; distance: path length of the recorded poses [m].
        created: ISO 8601 UTC time the file was started.
        complete: the writer finished the file.
    """

    path: Path
    schema_version: int
    scenario: str
    town: str
    seed: int
    episode: int
    weather: str
    backend: str
    dt: float
    cameras: tuple[dict, ...]
    vehicle: dict
    expert_preset: str
    driver: str
    dagger_round: int | None
    beta: float | None
    noise: dict
    termination: str
    summary: dict
    steps: int
    duration: float
    distance: float
    created: str
    complete: bool
    scenario_source: str = ""
    scenario_dict: dict = field(default_factory=dict)
    drive_il_version: str = ""
    density: str = ""

    @property
    def camera_names(self) -> tuple[str, ...]:
        return tuple(c["name"] for c in self.cameras)

    def camera(self, name: str) -> dict:
        """The rig entry of camera ``name``.

        Raises:
            DataError: no such camera in this file.
        """
        for c in self.cameras:
            if c.get("name") == name:
                return c
        raise DataError(f"{self.path}: no camera {name!r} (cameras: {', '.join(self.camera_names)})")

    @property
    def wheelbase(self) -> float:
        """[m] (2.9 m when the file does not say)."""
        return float(self.vehicle.get("wheelbase", 2.9))

    @property
    def max_steer_angle(self) -> float:
        """Road-wheel angle at |steer| = 1 [rad]."""
        if "max_steer_deg" in self.vehicle:
            return math.radians(float(self.vehicle["max_steer_deg"]))
        if "max_steer_angle" in self.vehicle:
            return float(self.vehicle["max_steer_angle"])
        return math.radians(35.0)


def _info_attrs(info: Any) -> dict[str, Any]:
    """Root attributes from an EpisodeInfo-like object (duck typed)."""
    dr = getattr(info, "dagger_round", None)
    beta = getattr(info, "beta", None)
    from ... import __version__
    return {
        "format": FORMAT_NAME,
        "schema_version": SCHEMA_VERSION,
        "drive_il_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "scenario": _s(getattr(info, "scenario", "")),
        "scenario_source": _s(getattr(info, "scenario_source", "") or ""),
        "scenario_json": _dumps(getattr(info, "scenario_dict", {}) or {}),
        "town": _s(getattr(info, "town", "")),
        "seed": int(getattr(info, "seed", 0)),
        "episode": int(getattr(info, "episode", 0)),
        "weather": _s(getattr(info, "weather", "")),
        "density": _s(getattr(info, "density", "")),
        "backend": _s(getattr(info, "backend", "")),
        "dt": float(getattr(info, "dt", 0.05)),
        "vehicle_json": _dumps(getattr(info, "vehicle", {}) or {}),
        "expert_preset": _s(getattr(info, "expert_preset", "")),
        "driver": _s(getattr(info, "driver", "")),
        "dagger_round": -1 if dr is None else int(dr),
        "beta": float("nan") if beta is None else float(beta),
        "noise_json": _dumps(getattr(info, "noise", {}) or {}),
        "termination": "",
        "summary_json": "{}",
        "steps": 0,
        "duration": 0.0,
        "distance": 0.0,
        "complete": False,
    }


def _s(v: Any) -> str:
    """A string attribute value (HDF5 strings cannot hold NUL: replaced by U+FFFD)."""
    return str(v).replace("\x00", "\ufffd")


def _attr_str(v: Any) -> str:
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    return str(v)


def _meta_from_attrs(path: Path, a: Mapping[str, Any]) -> EpisodeMeta:
    def js(key: str, default: Any) -> Any:
        if key not in a:
            return default
        try:
            return json.loads(_attr_str(a[key]))
        except ValueError as e:
            raise DataError(f"{path}: attribute {key!r} is not valid JSON ({e})") from None

    dr = int(a.get("dagger_round", -1))
    beta = float(a.get("beta", float("nan")))
    return EpisodeMeta(
        path=path,
        schema_version=int(a["schema_version"]),
        scenario=_attr_str(a.get("scenario", "")),
        scenario_source=_attr_str(a.get("scenario_source", "")),
        scenario_dict=js("scenario_json", {}),
        town=_attr_str(a.get("town", "")),
        seed=int(a.get("seed", 0)),
        episode=int(a.get("episode", 0)),
        weather=_attr_str(a.get("weather", "")),
        density=_attr_str(a.get("density", "")),
        backend=_attr_str(a.get("backend", "")),
        dt=float(a.get("dt", 0.05)),
        cameras=tuple(js("cameras_json", [])),
        vehicle=js("vehicle_json", {}),
        expert_preset=_attr_str(a.get("expert_preset", "")),
        driver=_attr_str(a.get("driver", "")),
        dagger_round=None if dr < 0 else dr,
        beta=None if math.isnan(beta) else beta,
        noise=js("noise_json", {}),
        termination=_attr_str(a.get("termination", "")),
        summary=js("summary_json", {}),
        steps=int(a.get("steps", 0)),
        duration=float(a.get("duration", 0.0)),
        distance=float(a.get("distance", 0.0)),
        created=_attr_str(a.get("created", "")),
        complete=bool(a.get("complete", False)),
        drive_il_version=_attr_str(a.get("drive_il_version", "")),
    )
