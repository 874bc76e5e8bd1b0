"""Behaviour pinned across refactors (issue 15): two small seeded DAgger runs (ALVINN
mixture DAgger on the circuit with traffic and noise; command-conditioned DAVE-2 with
three cameras in gated mode on the grid town) must reproduce the figures and episode
files recorded in ``pinned_figures.json`` before the architecture refactor.

Re-record deliberately (a change that is meant to alter behaviour) with
``python -m tests.dagger.pinned tests/dagger/pinned_figures.json`` and say so in the
commit.
"""

import json
from pathlib import Path

import pytest

from .pinned import JOBS, run_pinned

PINNED = json.loads((Path(__file__).parent / "pinned_figures.json").read_text())


@pytest.mark.parametrize("job", sorted(JOBS))
def test_pinned_dagger_run_reproduces_its_figures(tmp_path, job):
    got = json.loads(json.dumps(run_pinned(tmp_path, job)))
    want = PINNED[job]
    assert got["episodes"] == want["episodes"]  # labels, controls and frames, file by file
    assert got["rounds"] == want["rounds"]
    assert got["bc_matched"] == want["bc_matched"]
