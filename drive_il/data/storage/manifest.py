"""``manifest.jsonl``: one JSON line per finished episode, appended after the rename
(one ``write`` with O_APPEND, so a crash tears at most the last line), read back with
the torn lines reported, and rewritten whole (atomically) by the repair
(:func:`drive_il.data.tools.repair_dir`), which rebuilds lost lines from the finished
files (:func:`manifest_entry`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

from .schema import MANIFEST_NAME, _dumps

__all__ = ["MANIFEST_KEYS", "append_manifest", "manifest_entry", "read_manifest", "write_manifest"]

#: Keys of a manifest line that the episode file's root attributes determine (the repair
#: compares these; ``noisy_steps`` and ``interventions`` need the step arrays).
MANIFEST_KEYS: tuple[str, ...] = ("file", "schema_version", "episode", "seed", "scenario", "town", "weather",
                                  "driver", "dagger_round", "termination", "steps", "cameras")


def append_manifest(directory: str | Path, line: Mapping[str, Any], *, fsync: bool = False) -> None:
    """Append one JSON line to ``DIR/manifest.jsonl`` (one ``write`` call, O_APPEND)."""
    p = Path(directory) / MANIFEST_NAME
    data = (_dumps(dict(line)) + "\n").encode("utf-8")
    fd = os.open(p, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)


def read_manifest(directory: str | Path) -> tuple[list[dict], list[str]]:
    """The manifest's entries and its problems.

    Returns:
        (entries, problems): the parsed lines in order; one message per unreadable
        line (e.g. a line torn by a crash). A missing manifest gives ([], []).
    """
    p = Path(directory) / MANIFEST_NAME
    if not p.exists():
        return [], []
    entries, problems = [], []
    for i, raw in enumerate(p.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
            if not isinstance(obj, dict) or "file" not in obj:
                raise ValueError("not an object with a 'file' key")
            entries.append(obj)
        except ValueError as e:
            problems.append(f"{p}:{i}: unreadable manifest line ({e})")
    return entries, problems


def write_manifest(directory: str | Path, entries: Sequence[Mapping[str, Any]], *, fsync: bool = False) -> None:
    """Replace ``DIR/manifest.jsonl`` with ``entries`` (one line each): written to a
    temporary file beside it, then renamed over it, so a crash leaves the old or the new
    manifest, never half of one. Only for a writer holding the directory's lock."""
    p = Path(directory) / MANIFEST_NAME
    tmp = p.with_name(p.name + ".tmp")
    data = "".join(_dumps(dict(e)) + "\n" for e in entries).encode("utf-8")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, p)
    except BaseException:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise


def manifest_entry(reader: Any) -> dict[str, Any]:
    """The manifest line of a finished episode file, rebuilt from an open
    :class:`~drive_il.data.storage.EpisodeReader` (its root attributes and the
    ``noise`` / ``intervention`` step arrays): the same keys the writer appends."""
    import numpy as np

    m = reader.meta
    return {
        "file": reader.path.name,
        "schema_version": int(m.schema_version),
        "episode": int(m.episode),
        "seed": int(m.seed),
        "scenario": m.scenario,
        "town": m.town,
        "weather": m.weather,
        "density": m.density,
        "driver": m.driver,
        "dagger_round": m.dagger_round,
        "termination": m.termination,
        "steps": int(m.steps),
        "duration": float(m.duration),
        "distance": float(m.distance),
        "cameras": list(m.camera_names),
        "noisy_steps": int(np.count_nonzero(reader.steps["noise"])),
        "interventions": int(np.count_nonzero(reader.steps["intervention"])),
        "created": m.created,
    }
