"""Which town an episode drives in, for a scenario that names several (``towns``).

Each episode draws its town from its own seed, so an episode is the same whichever
worker drives it and whatever ran before: first an entry of ``scenario.towns``
(``town_draw = "uniform"``: uniformly, so ``"Town01"`` and ``"procedural:0-499"`` are
drawn equally often on average; ``"cycle"``: the entry ``seed mod len(towns)``, so
consecutive seeds take the entries in turn and a round of 6 episodes holds exactly 3 of
each), then, for a range, one of its towns uniformly (the same rng either way: an
episode whose entry is the same under both draws drives the same town). The episode
then runs on ``scenario.replace(town=..., towns=())``; its file records the drawn town (``EpisodeMeta.town``) and the scenario as
written (``scenario_json``, towns list included).
"""

from __future__ import annotations

import numpy as np

from ..scenario import Scenario

__all__ = ["TOWN_STREAM", "episode_scenario", "scenario_towns"]

#: Second entry of the town draw's seed: ``default_rng([seed, TOWN_STREAM])``.
TOWN_STREAM = 4241


def scenario_towns(scenario: Scenario) -> list[str]:
    """Every town a scenario may drive in (ranges expanded; ``[scenario.town]`` when it
    names no list)."""
    from ..maps import expand_towns
    if not scenario.towns:
        return [scenario.town]
    out: list[str] = []
    for spec in scenario.towns:
        out.extend(expand_towns(spec))
    return out


def episode_scenario(scenario: Scenario, seed: int) -> Scenario:
    """The single-town scenario of the episode with ``seed`` (``scenario`` itself when
    it names one town)."""
    if not scenario.towns:
        return scenario
    from ..maps import expand_towns
    rng = np.random.default_rng([int(seed), TOWN_STREAM])
    k = int(rng.integers(len(scenario.towns)))  # drawn under "cycle" too: the range's draw stays
    if scenario.town_draw == "cycle":
        k = int(seed) % len(scenario.towns)
    entry = scenario.towns[k]
    names = expand_towns(entry)
    town = names[int(rng.integers(len(names)))] if len(names) > 1 else names[0]
    return scenario.replace(town=town, towns=())


def check_towns(sim, scenario: Scenario) -> None:
    """Fail fast on a town that is not available: reset ``sim`` once on every town the
    scenario names (the first town of each range).

    Raises:
        MapError: an unknown town, a missing or corrupt ``.xodr`` (one line naming it).
    """
    if not scenario.towns:
        sim.reset(scenario, scenario.seed)
        return
    from ..maps import expand_towns
    for spec in scenario.towns:
        town = expand_towns(spec)[0]
        sim.reset(scenario.replace(town=town, towns=()), scenario.seed)
