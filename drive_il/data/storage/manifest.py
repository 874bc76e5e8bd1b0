"""``manifest.jsonl``: one JSON line per finished episode, appended after the rename
(one ``write`` with O_APPEND, so a crash tears at most the last line), and read back
with the torn lines reported.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

from .schema import MANIFEST_NAME, _dumps

__all__ = ["append_manifest", "read_manifest"]


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
