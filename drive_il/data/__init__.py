"""Demonstrations on disk: episode storage, the recorder, noise injection, the dataset.

* :mod:`.storage`: one HDF5 file per episode (tree drawn there), ``manifest.jsonl``,
  :class:`EpisodeReader`, :func:`list_episodes`, :func:`scan_dir`.
* :mod:`.recorder`: :class:`EpisodeRecorder`, the rollout observer that writes them.
* :mod:`.noise`: :class:`NoiseConfig`, :class:`NoiseInjector` (CIL spikes, DART noise).
* :mod:`.dataset`: :class:`EpisodeDataset` (torch) and :func:`split_by_episode`
  (imported lazily: ``from drive_il.data import EpisodeDataset`` imports torch).
* :mod:`.tools`: ``data info`` / ``data verify`` reports.
* :mod:`.synthetic`: synthetic episodes for tests and benchmarks.
"""

from __future__ import annotations

from typing import Any

from .noise import NoiseConfig, NoiseInjector
from .recorder import EpisodeRecorder
from .storage import (SCHEMA_VERSION, EpisodeMeta, EpisodeReader, EpisodeWriter, ScanReport, episode_filename,
                      finished_episode_indices, list_episodes, read_manifest, scan_dir)

__all__ = [
    "SCHEMA_VERSION",
    "EpisodeMeta",
    "EpisodeReader",
    "EpisodeWriter",
    "EpisodeRecorder",
    "ScanReport",
    "NoiseConfig",
    "NoiseInjector",
    "EpisodeDataset",
    "split_by_episode",
    "episode_filename",
    "finished_episode_indices",
    "list_episodes",
    "read_manifest",
    "scan_dir",
]


def __getattr__(name: str) -> Any:  # lazy: the dataset needs torch
    if name in ("EpisodeDataset", "split_by_episode"):
        from . import dataset

        return getattr(dataset, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
