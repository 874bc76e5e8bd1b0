"""Behaviour pinned across refactors (issue 15): two small seeded DAgger runs (ALVINN
mixture DAgger on the circuit with traffic and noise; command-conditioned DAVE-2 with
three cameras in gated mode on the grid town) must reproduce the figures and episode
files recorded in ``pinned_figures.json`` before the architecture refactor.

Discrete step columns and frames must match byte for byte, continuous columns to a
relative 1e-5 and the closed-loop figures to 2 % (another CPU's float kernels round
differently in the last bits; see ``pinned.PINNED_FLOAT_FIELDS``).

Re-record deliberately (a change that is meant to alter behaviour) with
``python -m tests.dagger.pinned tests/dagger/pinned_figures.json`` and say so in the
commit.
"""

import json
from pathlib import Path

import pytest

from .pinned import FIGURE_REL, JOBS, assert_pinned, run_pinned

PINNED = json.loads((Path(__file__).parent / "pinned_figures.json").read_text())


@pytest.mark.parametrize("job", sorted(JOBS))
def test_pinned_dagger_run_reproduces_its_figures(tmp_path, job):
    got = json.loads(json.dumps(run_pinned(tmp_path, job)))
    want = PINNED[job]
    assert_pinned(got["episodes"], want["episodes"], "episodes")  # labels, controls and frames, file by file
    assert_pinned(got["rounds"], want["rounds"], "rounds", FIGURE_REL)
    assert_pinned(got["bc_matched"], want["bc_matched"], "bc_matched", FIGURE_REL)
