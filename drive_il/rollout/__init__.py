"""Rollouts: one episode of a simulator driven by the expert, a learner or a human.

The parts, each in its own module:

* :mod:`.driver`: the :class:`Driver` protocol (expert, learner, human), the HG-DAgger
  :class:`Gate` and the :class:`NoiseSource` protocols;
* :mod:`.arbitration`: who drives this step (mode, DAgger beta mixture per step or
  per episode, DAVE-2 :class:`InterventionMonitor` until re-centred, human gate, noise injection);
* :mod:`.termination`: when an episode ends (:data:`TERMINATIONS`);
* :mod:`.spec`: :class:`RolloutSpec` and :class:`CollectSpec`, the typed, validated
  settings;
* :mod:`.episode`: :func:`run_episode`, the loop; the per-step record schema is
  :class:`drive_il.types.StepRow`, the metrics :mod:`drive_il.metrics`;
* :mod:`.observers`: the observer protocol, camera PNGs, summaries;
* :mod:`.collect`: resumable collection of episodes into a demonstration directory.

Layering: above ``sim``, ``expert``, ``policies`` and ``data``; below ``training``,
``evaluation``, ``dagger`` and ``viz``.
"""

from .arbitration import Arbiter, Decision, Drivers, InterventionMonitor, InterventionConfig
from .collect import CollectResult, collect
from .driver import Driver, Gate, NoiseSource
from .episode import episode_info, run_episode
from .observers import FrameSaver, Observer, format_summary, jsonable, write_json
from .spec import DRIVER_MODES, MIXING_MODES, CollectSpec, RolloutSpec
from .termination import TERMINATIONS, Termination, TerminationRules

__all__ = [
    "Arbiter", "Decision", "Drivers", "InterventionMonitor", "InterventionConfig",
    "CollectResult", "collect",
    "Driver", "Gate", "NoiseSource",
    "episode_info", "run_episode",
    "FrameSaver", "Observer", "format_summary", "jsonable", "write_json",
    "DRIVER_MODES", "MIXING_MODES", "CollectSpec", "RolloutSpec",
    "TERMINATIONS", "Termination", "TerminationRules",
]
