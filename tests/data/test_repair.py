"""``drive-il data repair DIR`` (issue 16, defect 4): the manifest is rebuilt from the
finished episode files; one line per change, exit 0; damaged and partial files are
reported and left alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import h5py

from drive_il.cli import main
from drive_il.data.storage import read_manifest
from drive_il.data.tools import repair_dir


def _lines(d):
    return (d / "manifest.jsonl").read_text().splitlines()


def test_repair_rebuilds_missing_lines_and_drops_bad_ones(small_dir, capsys):
    orig = _lines(small_dir)
    man = small_dir / "manifest.jsonl"
    gone = json.loads(orig[0]) | {"file": "episode_000042.h5"}
    wrong = json.loads(orig[2]) | {"steps": 99}
    # line 1 missing (crash before the append), a repeated line, a line of a missing file,
    # a line that disagrees with its file, a torn last line
    man.write_text("\n".join([orig[0], orig[0], json.dumps(gone), json.dumps(wrong)]) + '\n{"file": "episo')
    assert main(["data", "verify", str(small_dir)]) == 1
    capsys.readouterr()
    assert main(["data", "repair", str(small_dir)]) == 0
    out = capsys.readouterr().out.splitlines()
    m = str(man)
    assert out == [
        f"{m}:5: unreadable manifest line (Unterminated string starting at: line 1 column 10 (char 9)): dropped",
        f"{m}: dropped a repeated line of episode_000000.h5",
        f"{m}: dropped the line of episode_000042.h5, which is not in the directory",
        f"{m}: rebuilt the line of episode_000002.h5 from the file (steps 99 -> 30)",
        f"{m}: added the missing line of episode_000001.h5 (rebuilt from the file; a crash between rename and "
        "manifest append?)",
        f"{small_dir}: repaired the manifest (5 change(s)); it lists 3 episode(s)",
    ]
    entries, problems = read_manifest(small_dir)
    assert problems == []
    assert sorted(entries, key=lambda e: e["file"]) == [json.loads(x) for x in orig]  # as the writer wrote them
    assert main(["data", "verify", str(small_dir)]) == 0
    capsys.readouterr()
    assert main(["data", "repair", str(small_dir)]) == 0  # idempotent
    assert capsys.readouterr().out.splitlines() == [f"{small_dir}: manifest OK (3 episode(s)), nothing to repair"]


def test_repair_leaves_damaged_and_partial_files_alone(small_dir):
    (small_dir / "manifest.jsonl").unlink()
    bad = small_dir / "episode_000001.h5"
    with open(bad, "r+b") as fh:
        fh.truncate(bad.stat().st_size - 100)
    size = bad.stat().st_size
    partial = small_dir / "episode_000003.h5.partial"
    partial.write_bytes(b"half")
    rep = repair_dir(small_dir)
    assert [c.split(": ", 1)[1] for c in rep.changes] == [
        "added the missing line of episode_000000.h5 (rebuilt from the file; a crash between rename and manifest "
        "append?)",
        "added the missing line of episode_000002.h5 (rebuilt from the file; a crash between rename and manifest "
        "append?)"]
    assert len(rep.left_alone) == 2
    assert rep.left_alone[0].startswith(f"{partial}: partial file left alone")
    assert rep.left_alone[1].startswith(f"{bad}: damaged or truncated") and rep.left_alone[1].endswith("; left alone")
    assert bad.stat().st_size == size and partial.read_bytes() == b"half"
    assert [e["file"] for e in read_manifest(small_dir)[0]] == ["episode_000000.h5", "episode_000002.h5"]


def test_repair_a_file_whose_line_disagrees_only_in_attributes(small_dir):
    p = small_dir / "episode_000000.h5"
    with h5py.File(p, "r+") as f:
        f.attrs["termination"] = "collision"
    rep = repair_dir(small_dir)
    assert rep.changes == [f"{small_dir / 'manifest.jsonl'}: rebuilt the line of episode_000000.h5 from the file "
                           "(termination 'route_completed' -> 'collision')"]
    assert read_manifest(small_dir)[0][0]["termination"] == "collision"


def _cli(*args):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([os.getcwd(), *sys.path])
    return subprocess.run([sys.executable, "-m", "drive_il", *args], capture_output=True, text=True, env=env,
                          timeout=120)


def test_cli_repair_errors_are_one_line(tmp_path, small_dir):
    from drive_il.data.storage import locked_directory

    r = _cli("data", "repair", str(tmp_path / "missing"))
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [f"drive-il: error: {tmp_path / 'missing'}: no such data directory"]
    with locked_directory(small_dir):  # a collection is writing it: never rewrite its manifest under it
        r = _cli("data", "repair", str(small_dir))
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "another process is writing this demonstration directory" in r.stderr
