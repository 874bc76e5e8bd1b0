"""Tiny-budget smoke runs of ``drive-il bench record`` and ``drive-il bench data``
(figures are not asserted: machines are shared and noisy)."""

from __future__ import annotations

import re

from drive_il.cli import main


def test_bench_record_smoke(tmp_path, capsys):
    assert main(["bench", "record", "--steps", "12", "--repeats", "1", "--cameras", "1", "--height", "8",
                 "--width", "12", "--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"1 camera\(s\): recorder alone [\d,]+ frames/s", out)
    assert out.count("ratio") == 2 and "background=True" in out
    assert list(tmp_path.iterdir()) == []  # the temporary directory is gone


def test_bench_data_smoke(tmp_path, capsys):
    assert main(["bench", "data", "--episodes", "2", "--steps", "20", "--workers", "0", "--epochs", "1",
                 "--height", "8", "--width", "12", "--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "bare h5py" in out and out.count("0 worker(s)") == 2
    assert list(tmp_path.iterdir()) == []
