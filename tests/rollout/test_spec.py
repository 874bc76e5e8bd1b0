"""RolloutSpec / CollectSpec / TerminationRules / InterventionConfig: one-line ValueErrors
on creation."""

import math

import pytest

from drive_il.rollout import CollectSpec, RolloutSpec, InterventionConfig, TerminationRules


def test_defaults_drive_the_expert_for_the_scenario_length():
    s = RolloutSpec()
    assert (s.driver, s.beta, s.mixing, s.interventions, s.noise, s.max_steps) == ("expert", None, "step", None, None, None)
    assert s.termination == TerminationRules()


@pytest.mark.parametrize("kw, msg", [
    ({"driver": "robot"}, r"RolloutSpec.driver must be expert, learner, mixture or human, got 'robot'"),
    ({"driver": "mixture"}, r"driver='mixture' needs beta in \[0, 1\], got None"),
    ({"driver": "mixture", "beta": 1.5}, r"RolloutSpec.beta must be in \[0, 1\], got 1.5"),
    ({"driver": "mixture", "beta": -0.1}, r"beta must be in \[0, 1\], got -0.1"),
    ({"driver": "mixture", "beta": math.nan}, r"beta must be in \[0, 1\], got nan"),
    ({"beta": 2.0}, r"beta must be in \[0, 1\], got 2.0"),
    ({"driver": "mixture", "beta": 0.5, "mixing": "round"}, r"mixing must be 'step' or 'episode', got 'round'"),
    ({"max_steps": 0}, r"max_steps must be >= 1, got 0"),
    ({"dagger_round": -1}, r"dagger_round must be >= 0, got -1"),
])
def test_bad_rollout_spec(kw, msg):
    with pytest.raises(ValueError, match=msg) as e:
        RolloutSpec(**kw)
    assert "\n" not in str(e.value)


def test_valid_mixture_specs():
    assert RolloutSpec(driver="mixture", beta=0.0).beta == 0.0
    assert RolloutSpec(driver="mixture", beta=1.0, mixing="episode").mixing == "episode"


def test_spec_is_frozen():
    s = RolloutSpec()
    with pytest.raises(AttributeError):
        s.driver = "learner"


@pytest.mark.parametrize("kw, msg", [
    ({"episodes": -1}, "CollectSpec.episodes must be >= 0, got -1"),
    ({"episodes": 2, "max_failures": -1}, "CollectSpec.max_failures must be >= 0, got -1"),
])
def test_bad_collect_spec(kw, msg):
    with pytest.raises(ValueError, match=msg):
        CollectSpec(**kw)


def test_collect_spec_carries_a_rollout_spec():
    c = CollectSpec(episodes=3, first_seed=10, rollout=RolloutSpec(driver="mixture", beta=0.3))
    assert c.rollout.beta == 0.3 and CollectSpec(episodes=1).rollout == RolloutSpec()


@pytest.mark.parametrize("name", ["completion_margin", "off_route_distance", "stuck_speed", "stuck_seconds"])
def test_bad_termination_rules(name):
    with pytest.raises(ValueError, match=f"TerminationRules.{name} must be > 0, got 0"):
        TerminationRules(**{name: 0})


@pytest.mark.parametrize("kw, msg", [
    ({"threshold": 0.0}, "threshold must be > 0 m"),
    ({"threshold": 1.0, "recenter_deviation": 1.0}, r"recenter_deviation must be in \(0, threshold\)"),
])
def test_bad_takeover_config(kw, msg):
    with pytest.raises(ValueError, match=msg):
        InterventionConfig(**kw)
