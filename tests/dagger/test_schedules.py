import re

import pytest

from drive_il.dagger.schedules import BetaSchedule


def test_round_zero_is_behaviour_cloning():
    for kind in ("constant", "linear", "exponential", "lbc"):
        assert BetaSchedule(kind=kind, beta=0.3, rounds=4)(0) == 1.0


def test_schedules():
    assert BetaSchedule("constant", 0.3, 4)(3) == 0.3
    assert BetaSchedule("exponential", 0.5, 4)(1) == 0.5
    assert BetaSchedule("exponential", 0.5, 4)(3) == pytest.approx(0.125)
    lin = BetaSchedule("linear", 0.8, 4)
    assert [round(lin(i), 3) for i in (1, 2, 3, 4)] == [0.8, 0.6, 0.4, 0.2]
    lbc = BetaSchedule("lbc", 0.5, 4)
    # LBC: P(student) = 0.5 + 0.5 (1 - 0.95^e)  ->  beta = 0.5 * 0.95^e
    assert lbc(1, 0) == pytest.approx(0.5) and lbc(2, 10) == pytest.approx(0.5 * 0.95 ** 10)


@pytest.mark.parametrize("kw, msg", [
    ({"kind": "cosine"}, "BetaSchedule: field 'kind': expected one of ['constant', 'linear', 'exponential', 'lbc']"),
    ({"beta": 1.5}, "BetaSchedule: field 'beta': expected a number in [0.0, 1.0], got 1.5"),
    ({"rounds": 0}, "BetaSchedule: field 'rounds': expected an integer >= 1, got 0"),
])
def test_bad_schedule(kw, msg):
    with pytest.raises(ValueError, match=re.escape(msg)):  # a ConfigError (FieldError), a ValueError
        BetaSchedule(**kw)


def test_schedule_of_a_pipeline():
    from drive_il.pipeline import PipelineConfig
    s = BetaSchedule.of(PipelineConfig(beta_schedule="linear", beta=0.8, dagger_rounds=2))
    assert s == BetaSchedule("linear", 0.8, 2)
