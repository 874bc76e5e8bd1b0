"""Report pieces that need no DAgger run."""

from drive_il.evaluation.report import intervention_section


def _row(kind, command, junction=True):
    return {"kind": kind, "command": command, "junction": junction}


def test_intervention_section_counts_kinds_and_commands():
    dagger = {"interventions": [_row("early-turn", "LEFT"), _row("early-turn", "LEFT"),
                                _row("under-steer", "RIGHT", junction=False)]}
    bc = {"interventions": []}
    lines = intervention_section((("BC (same labels)", bc), ("DAgger round 4", dagger)), "ClearNoon")
    text = "\n".join(lines)
    assert "## Where the expert took over (test town, ClearNoon)" in text
    assert "| BC (same labels) | 0 | 0 | - | - |" in text
    assert "| DAgger round 4 | 3 | 2 | early-turn 2, under-steer 1 | LEFT 2, RIGHT 1 |" in text


def test_intervention_section_skips_reports_without_a_trace():
    assert intervention_section((("BC", {"profiles": []}), ("DAgger", None)), "ClearNoon") == []
