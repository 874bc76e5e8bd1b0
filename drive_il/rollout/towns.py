"""Which town (and weather, and traffic density) an episode drives in, for a scenario
that names several (``towns``, ``weathers``, ``[traffic] densities``).

Each episode draws its town from its own seed, so an episode is the same whichever
worker drives it and whatever ran before: first an entry of ``scenario.towns``
(``town_draw = "uniform"``: uniformly, so ``"Town01"`` and ``"procedural:0-499"`` are
drawn equally often on average; ``"cycle"``: the entry ``seed mod len(towns)``, so
consecutive seeds take the entries in turn and a round of 6 episodes holds exactly 3 of
each), then, for a range, one of its towns uniformly (the same rng either way: an
episode whose entry is the same under both draws drives the same town). The episode
then runs on ``scenario.replace(town=..., towns=())``; its file records the drawn town (``EpisodeMeta.town``) and the scenario as
written (``scenario_json``, towns list included).

A ``weathers`` list is drawn the same way, uniformly, from a stream of its own
(``default_rng([seed, WEATHER_STREAM])``): the town draw does not change when a list of
weathers is added, and town and weather are drawn independently (a cycle over both would
tie each weather to one town). The episode's weather is recorded in ``EpisodeMeta.weather``.
A ``[traffic] densities`` list likewise (``default_rng([seed, DENSITY_STREAM])``): the
drawn NoCrash condition becomes the episode's ``traffic.density`` and is recorded in
``EpisodeMeta.density``.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..scenario import Scenario

__all__ = ["DENSITY_STREAM", "TOWN_STREAM", "WEATHER_STREAM", "episode_scenario", "scenario_towns"]

#: Second entry of the town draw's seed: ``default_rng([seed, TOWN_STREAM])``.
TOWN_STREAM = 4241
#: Second entry of the weather draw's seed: ``default_rng([seed, WEATHER_STREAM])``.
WEATHER_STREAM = 4242
#: Second entry of the traffic density draw's seed: ``default_rng([seed, DENSITY_STREAM])``.
DENSITY_STREAM = 4243


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


def _draw(options: tuple[str, ...], seed: int, stream: int) -> str:
    """One of ``options``, uniformly, from ``default_rng([seed, stream])``."""
    rng = np.random.default_rng([int(seed), stream])
    return options[int(rng.integers(len(options)))]


def episode_scenario(scenario: Scenario, seed: int) -> Scenario:
    """The single-town, single-weather, single-density scenario of the episode with
    ``seed`` (``scenario`` itself when it names one town, one weather and no densities)."""
    if scenario.traffic.densities:
        d = _draw(scenario.traffic.densities, seed, DENSITY_STREAM)
        scenario = scenario.replace(traffic=dataclasses.replace(scenario.traffic, density=d, densities=()))
    if scenario.weathers:
        scenario = scenario.replace(weather=_draw(scenario.weathers, seed, WEATHER_STREAM), weathers=())
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
