"""Episode storage: one HDF5 file per episode, versioned, crash-safe.

A demonstration directory (one per collection run or DAgger round) looks like::

    DIR/
      manifest.jsonl                 one JSON line per finished episode (appended)
      episode_000000.h5              finished episodes (readers list only these)
      episode_000001.h5
      episode_000002.h5.partial      the episode being written (ignored by readers;
                                     left behind by a crash, reported by `data verify`)

    episode_NNNNNN.h5
      /  attrs                       format = "drive_il.episode", schema_version = 4
                                     (version 1 files read too: see below),
                                     created (ISO 8601 UTC), drive_il_version,
                                     scenario, scenario_source, scenario_json,
                                     town, seed, episode, weather, backend, dt [s],
                                     density (traffic condition; absent in older
                                       files),
                                     cameras_json (rig: name, width, height, fov_deg,
                                       x, y, z [m], pitch_deg, yaw_deg per camera),
                                     vehicle_json (wheelbase [m], max_steer_deg, ...),
                                     expert_preset, driver, dagger_round (-1 = none),
                                     beta (NaN = none), noise_json,
                                     -- written when the episode ends: --
                                     termination, summary_json, steps (T),
                                     duration [s], distance [m], complete = True
      /frames/<camera>               (T, H, W, 3) uint8 RGB, chunks (1, H, W, 3),
                                     no compression, HDF5 fletcher32 checksum per
                                     chunk (files of older versions: none)
      /steps/<field>                 per-step arrays, see STEP_FIELDS:
         frame (T,) int64            simulation frame number
         sim_time (T,) float64       [s]
         speed (T,) float32          [m/s]
         pose (T, 4) float64         x, y, z [m], yaw [rad] (CARLA world frame)
         command (T,) int8           RoadOption value
         executed (T, 3) float32     steer, throttle, brake sent to the simulator
         expert (T, 3) float32       the expert's label (always)
         learner (T, 3) float32      the learner's prediction, NaN when none ran
         intervention (T,) bool      the expert/human took over at this step
         noise (T,) bool             the executed control was perturbed (noise.py)
         driver (T,) uint8           index into the attribute ``names`` of the dataset
         lateral_deviation (T,) f32  [m], + = right of the lane centre
         heading_error (T,) float32  [rad]
         route_progress (T,) float32 [m] along the route
         collision (T,) bool         events reported while executing the control
         off_road (T,) bool
         lane_invasion (T,) bool
         red_light (T,) bool         crossed its lane's stop line while red
         walker_collision (T,) bool  hit a pedestrian
         target_speed (T,) float32   the expert's target speed [m/s] (speed label; NaN
                                     when unknown)
         learner_target_speed (T,) f32  a learner speed head's target [m/s], NaN = none
                                     (the last four: schema version 2; a version 1
                                     file reads them as NaN / False, STEP_FIELD_DEFAULTS)
         stop_reason (T,) uint8      why the expert's target speed is below the route's
                                     profile: index into drive_il.types.STOP_REASONS
                                     (0 nothing, 1 red light, 2 yellow light, 3 walker,
                                     4 vehicle; 255 unknown; schema version 3: older
                                     files read it as 255)
         obstacle (T, 2) f32         what stop_reason names (drive_il.expert.Lead): gap
                                     from the front bumper along the route [m] (to a
                                     vehicle's rear, a walker, a stop line) and its
                                     speed along the route [m/s]; (+inf, NaN) when
                                     nothing lowers the target speed, (NaN, NaN) unknown
                                     (schema version 4: older files read NaN)
      /route/xy (N, 2) float64, yaw (N,) float64 [rad], s (N,) float64 [m],
             commands (N,) int8      the episode's route (absent when none)

Durability: the file is written as ``NAME.h5.partial`` with HDF5's default (earliest)
library version and no SWMR, closed, then renamed into place with ``os.replace``; the
manifest line is appended afterwards. A SIGKILL therefore loses at most the episode in
progress (REFERENCES.md: with libver="latest" and no SWMR a kill -9 left 0 of 4 files
readable; write-then-rename leaves every finished file intact). The per-step scalars
are buffered in memory and written once at the end (fletcher32-checksummed datasets);
frames are written as they come, one chunk per frame through HDF5's filter pipeline, so
that every chunk carries its checksum and bit rot is found by ``drive-il data verify``
and by the readers. The layout follows the habit of LeRobot's
``lerobot_dataset.py``: a version in every file from day one, the tree drawn here.

Readers (:class:`EpisodeReader`, :func:`list_episodes`, the Dataset) ignore
``*.partial``; an unknown schema version or a damaged file is a
:class:`~drive_il.errors.DataError` naming the file.

The package, one module a job: :mod:`.schema` (version, file names, STEP_FIELDS,
:class:`EpisodeMeta` and the root attributes), :mod:`.writer`, :mod:`.reader`,
:mod:`.manifest`, :mod:`.scan` (data directories), :mod:`.rig` (camera rig entries and
checks). Import the names from here.
"""

from __future__ import annotations

from .manifest import MANIFEST_KEYS, append_manifest, manifest_entry, read_manifest, write_manifest
from .reader import EpisodeReader, iter_readers
from .rig import RIG_KEYS, RigChecker, rig_entries
from .scan import LOCK_NAME, ScanReport, finished_episode_indices, list_episodes, locked_directory, scan_dir
from .schema import (DRIVER_NAMES, EPISODE_SUFFIX, EVENT_FIELDS, FORMAT_NAME, MANIFEST_NAME, PARTIAL_SUFFIX,
                     SCHEMA_VERSION, STEP_FIELD_DEFAULTS, STEP_FIELDS, SUPPORTED_SCHEMA_VERSIONS, EpisodeMeta,
                     default_step_array, episode_filename, episode_index_from_path, step_fields_of_version)
from .writer import EpisodeWriter, PartialEpisodeFile

__all__ = [
    "DRIVER_NAMES", "EPISODE_SUFFIX", "EVENT_FIELDS", "FORMAT_NAME", "MANIFEST_NAME", "PARTIAL_SUFFIX",
    "SCHEMA_VERSION", "STEP_FIELDS", "SUPPORTED_SCHEMA_VERSIONS", "EpisodeMeta", "episode_filename",
    "episode_index_from_path", "STEP_FIELD_DEFAULTS", "default_step_array", "step_fields_of_version",
    "EpisodeWriter", "PartialEpisodeFile",
    "EpisodeReader", "iter_readers",
    "MANIFEST_KEYS", "append_manifest", "manifest_entry", "read_manifest", "write_manifest",
    "LOCK_NAME", "ScanReport", "finished_episode_indices", "list_episodes", "locked_directory", "scan_dir",
    "RIG_KEYS", "RigChecker", "rig_entries",
]
