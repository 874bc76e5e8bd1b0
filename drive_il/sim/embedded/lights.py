"""Traffic-light phases of the embedded world.

:class:`LightController` runs the heads of a town's
:class:`~drive_il.maps.signals.SignalLayout` as CARLA's traffic-light groups do: the heads
(OpenDRIVE controllers) of a group take turns; in its turn a head is green for
``green_s``, yellow for ``yellow_s``, then red, and after ``red_s`` of all-red clearance
the next head's turn starts; a head is red for the rest of the cycle. "The traffic lights
in the same group follow a cycle. The first one is set to green while the rest remain
frozen in red. The active one spends a few seconds in green, yellow and red, so there is
a period of time where all the lights are red. Then, the next traffic light starts its
cycle" (CARLA documentation, *Actors and blueprints*, "Traffic lights"; defaults green
10 s, yellow 3 s, red 2 s: ``carla.TrafficLight.get_green_time`` & co.).

One group with ``n`` turns has the period ``n (green_s + yellow_s + red_s)``; at group
time ``tau`` (sim time + the group's offset, modulo the period) turn
``i = floor(tau / (green_s + yellow_s + red_s))`` is active; its heads are green for the
first ``green_s`` of the turn and yellow for the next ``yellow_s``; every other head is
red. ``elapsed`` is the time since the head's lamp last changed (CARLA's
``TrafficLight.get_elapsed_time``).

``random_offset`` starts every group at a phase drawn uniformly over its period from the
controller's rng (the embedded world passes ``numpy.random.default_rng([seed, 2])``,
:data:`drive_il.sim.embedded.world.LIGHTS_STREAM`, a stream independent of the route's
and the traffic's); otherwise every group starts with its first turn green.

Cost: the per-head constants are prepared once. With a fixed step (the embedded world's
``dt``), a group's heads at each phase step are built once and kept (on the town: later
episodes and other seeds reuse them; at most one tuple per group and step of its cycle),
so :meth:`states` is a dict look-up per group once warm; otherwise it builds one frozen
:class:`~drive_il.types.TrafficLight` per head and step.
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Any

import numpy as np

from ...scenario import LightsConfig
from ...types import TrafficLight, TrafficLightState, slot_setters

if TYPE_CHECKING:  # pragma: no cover
    from ...maps.signals import SignalLayout

__all__ = ["LightController"]

_RED, _YELLOW, _GREEN = TrafficLightState.RED, TrafficLightState.YELLOW, TrafficLightState.GREEN
_EPS = 1e-9  # phase boundaries: a state starts at its boundary time exactly

# :meth:`LightController.states` builds one TrafficLight per head and step: slot by slot
# (drive_il.types.slot_setters). Every field is set: those the layout does not give get
# the field's default.
_NEW = object.__new__
_FIELDS = tuple(f.name for f in dataclasses.fields(TrafficLight))
_SETTERS = dict(zip(_FIELDS, slot_setters(TrafficLight, _FIELDS)))
_DEFAULTS = {f.name: f.default for f in dataclasses.fields(TrafficLight)
             if f.default is not dataclasses.MISSING}


class LightController:
    """Phases of every traffic-light head of a town.

    Args:
        layout: the town's signal layout (:func:`drive_il.maps.signals.signal_layout`).
        config: the scenario's ``[lights]`` (green_s, yellow_s, red_s [s],
            random_offset).
        rng: draws the groups' starting phases when ``config.random_offset``
            (one draw per group, in increasing group id); unused otherwise.
        dt: the fixed step [s] of every :meth:`step` call, or None for any steps.
            With a fixed step whose turn length (green_s + yellow_s + red_s) is a whole
            number of steps, the controller counts steps: time = n dt, the offsets are
            whole steps (``rng.integers``), and the heads of a group at each of its
            phase steps are built once and reused (``cache``).
        cache: where the groups' heads per phase step are kept (a dict; the embedded
            world passes one kept on the town, ``TownMap.memo``, so that later episodes
            reuse them); default: a dict of this controller's own. Only with ``dt``.

    Attributes:
        time: [s] since the start.
        offsets: group id -> its starting phase [s] (0 without ``random_offset``).
        period: group id -> its cycle [s].
        stepped: the controller counts fixed steps (see ``dt``).

    Raises:
        ValueError: ``random_offset`` without an rng; ``dt`` not positive.
    """

    __slots__ = ("layout", "config", "time", "offsets", "period", "stepped", "_turn", "_heads",
                 "_groups", "_last_t", "_last", "_dt", "_n", "_cache", "_gsteps")

    def __init__(self, layout: "SignalLayout", config: LightsConfig,
                 rng: np.random.Generator | None = None, *, dt: float | None = None,
                 cache: dict | None = None) -> None:
        self.layout = layout
        self.config = config
        self.time = 0.0
        g, y, r = float(config.green_s), float(config.yellow_s), float(config.red_s)
        self._turn = g + y + r
        if dt is not None and not (dt > 0.0 and math.isfinite(dt)):
            raise ValueError(f"LightController: dt must be > 0 s, got {dt}")
        steps = self._turn / dt if dt is not None else math.nan
        self.stepped = dt is not None and abs(steps - round(steps)) < 1e-6 and round(steps) >= 1
        self._dt = float(dt) if self.stepped else math.nan
        turn_steps = int(round(steps)) if self.stepped else 0
        self._n = 0
        if config.random_offset and rng is None and layout.groups:
            raise ValueError("LightController: random_offset needs an rng")
        self.period: dict[int, float] = {}
        self.offsets: dict[int, float] = {}
        gsteps: list[tuple[int, int, int]] = []  # (group id, offset steps, period steps)
        for gid in sorted(layout.groups):
            turns = layout.turns[gid]
            self.period[gid] = turns * self._turn
            off = 0.0
            if self.stepped:
                k = int(rng.integers(turns * turn_steps)) if config.random_offset else 0
                gsteps.append((gid, k, turns * turn_steps))
                off = k * self._dt
            elif config.random_offset:
                off = float(rng.uniform(0.0, self.period[gid]))
            self.offsets[gid] = off
        self._gsteps = gsteps
        # group id -> position in the per-step group table
        self._groups = [(gid, self.offsets[gid], self.period[gid]) for gid in sorted(layout.groups)]
        gpos = {gid: k for k, (gid, _, _) in enumerate(self._groups)}
        # per head: (group position, turn start [s], (slot setter, value) of the constant fields)
        self._heads = [(gpos[h.group_id], h.index * self._turn, _constant_slots(h, yellow_time=y))
                       for h in layout.heads]
        # heads in light_id order must be the groups' heads in group order for the
        # per-group reuse (signal_layout numbers them so)
        order = [gpos[h.group_id] for h in layout.heads]
        if order != sorted(order):
            self.stepped = False
        self._cache: dict = (cache if cache is not None else {}) if self.stepped else {}
        self._last_t = math.nan
        self._last: tuple[TrafficLight, ...] = ()

    def step(self, dt: float) -> None:
        """Advance by ``dt`` [s] (>= 0; with a fixed step, that step).

        Raises:
            ValueError: ``dt`` negative or not finite, or not the controller's fixed step.
        """
        if not (dt >= 0.0 and math.isfinite(dt)):
            raise ValueError(f"LightController.step: dt must be finite and >= 0, got {dt}")
        if self.stepped:
            if abs(dt - self._dt) > 1e-12:
                raise ValueError(f"LightController.step: dt must be the fixed step {self._dt} s, got {dt}")
            self._n += 1
            self.time = self._n * self._dt
        else:
            self.time += dt

    def _phase(self, start: float, tau: float, period: float) -> tuple[TrafficLightState, float]:
        """State and elapsed time of a head whose turn starts at ``start`` at group
        time ``tau``."""
        g = self.config.green_s
        y = self.config.yellow_s
        u = tau - start
        if -_EPS <= u < g - _EPS:
            return _GREEN, max(u, 0.0)
        if g - _EPS <= u < g + y - _EPS:
            return _YELLOW, max(u - g, 0.0)
        red_from = start + g + y
        e = (tau - red_from) % period
        if e > period - _EPS:
            e = 0.0
        return _RED, e

    def _group_tau(self, gid: int) -> float:
        if self.stepped:
            for g, off, m in self._gsteps:
                if g == gid:
                    return ((self._n + off) % m) * self._dt
        period = self.period[gid]
        tau = (self.time + self.offsets[gid]) % period
        return 0.0 if tau > period - _EPS else tau

    def state_of(self, light_id: int) -> tuple[TrafficLightState, float]:
        """(state, elapsed [s]) of one head now.

        Raises:
            KeyError: no head with this id.
        """
        h = self.layout.head(light_id)
        return self._phase(h.index * self._turn, self._group_tau(h.group_id), self.period[h.group_id])

    def _build(self, heads, taus) -> tuple[TrafficLight, ...]:
        phase = self._phase
        set_state, set_elapsed = _SETTERS["state"], _SETTERS["elapsed"]
        out = []
        for gk, start, const in heads:
            tau, period = taus[gk]
            st, el = phase(start, tau, period)
            lt = _NEW(TrafficLight)
            for put, value in const:
                put(lt, value)
            set_state(lt, st)
            set_elapsed(lt, el)
            out.append(lt)
        return tuple(out)

    def states(self) -> tuple[TrafficLight, ...]:
        """Every head now, as :class:`~drive_il.types.TrafficLight` values in
        ``light_id`` order (the same tuple again until the next :meth:`step`)."""
        t = self.time
        if t == self._last_t:
            return self._last
        if self.stepped:
            out: list[TrafficLight] = []
            cache, n, dt = self._cache, self._n, self._dt
            pos = 0
            for gk, (gid, off, m) in enumerate(self._gsteps):
                k = (n + off) % m
                key = (gid, k)
                part = cache.get(key)
                if part is None:
                    count = len(self.layout.groups[gid])
                    heads = [(0, start, const) for _, start, const in self._heads[pos:pos + count]]
                    part = cache[key] = self._build(heads, [(k * dt, self._groups[gk][2])])
                out.extend(part)
                pos += len(part)
            self._last = tuple(out)
        else:
            taus = []
            for _, off, period in self._groups:
                tau = (t + off) % period
                if tau > period - _EPS:
                    tau = 0.0
                taus.append((tau, period))
            self._last = self._build(self._heads, taus)
        self._last_t = t
        return self._last


def _constant_slots(head: Any, **given: Any) -> tuple[tuple[Any, Any], ...]:
    """(slot setter, value) of every TrafficLight field but ``state`` and ``elapsed``:
    ``given[name]``, else the head's attribute of the same name, else the field's
    default."""
    out = []
    for name in _FIELDS:
        if name in ("state", "elapsed"):
            continue
        if name in given:
            value = given[name]
        elif hasattr(head, name):
            value = getattr(head, name)
        elif name in _DEFAULTS:
            value = _DEFAULTS[name]
        else:  # pragma: no cover - a new required field of TrafficLight
            raise TypeError(f"LightController: TrafficLight field {name!r} has no value")
        out.append((_SETTERS[name], value))
    return tuple(out)
