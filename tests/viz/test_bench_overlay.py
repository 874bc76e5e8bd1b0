"""``drive-il bench overlay`` runs and prints one line per configuration with a ratio
(no timing is asserted: machines are shared)."""

from __future__ import annotations

import re

from drive_il.cli import main


def test_bench_overlay_prints_figures(capsys):
    assert main(["bench", "overlay", "--frames", "12", "--size", "640x360"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[0].startswith("overlay bench: 640x360")
    assert len(out) == 2
    assert re.search(r"demo road: overlay +[\d.]+ ms/frame CPU .*baseline fill\+camera blit +[\d.]+ "
                     r"ms/frame .*ratio +[\d.]+x", out[1])


def test_bench_overlay_bad_size(capsys):
    assert main(["bench", "overlay", "--size", "big"]) == 2
    assert "--size" in capsys.readouterr().err
