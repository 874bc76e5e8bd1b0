"""The learner as a :class:`~drive_il.driver.Driver`: a trained policy drives.

``PolicyDriver`` reads **only** ``step.observation`` (the frame of the camera it was
trained on, the speed, the navigation command and, for a model with
``target_point_input``, the route's target point), never the privileged world state:

* **lateral**: the policy's prediction, preprocessed exactly as in training (the
  checkpoint's :class:`~drive_il.policies.preprocessing.PreprocessConfig`), batch 1,
  ``torch.no_grad``, on ``device`` (the CPU by default, with one intra-op thread,
  restored afterwards; ``device="cuda"`` runs the network on the GPU). DAVE-2's 1/r is
  converted to ``steer`` with the driven vehicle's wheelbase and maximum road-wheel
  angle (1/r is independent of the car geometry, Bojarski et al. 2016); ALVINN's
  direction units decode to ``steer`` directly. A **path head**'s predicted path (K
  points in the ego frame, :mod:`drive_il.policies.path`) is followed with the expert's
  own lateral law: pure pursuit (:func:`drive_il.control.pure_pursuit_curvature`, from
  the rear axle) towards the path at the expert preset's look-ahead
  ``min(min_lookahead + lookahead_time * v, max_lookahead)``, capped at its
  ``max_steer`` (:func:`drive_il.policies.path.path_steer`); ``path_follower="expert"``
  adds the expert's curvature feed-forward, with the path's curvature at the car
  remembered from the last metres of predicted paths
  (:class:`drive_il.policies.path.PathFollower`: on the true path it no longer cuts tight
  corners, but our learners' predicted paths are too uneven near the car for it; README,
  "The learner's path follower"); the last path is kept in ``last_path``.
* **longitudinal**: a cruise controller — the expert's PID
  (:class:`drive_il.expert.controllers.LongitudinalController`, with the gains of the
  scenario's expert preset) — holds the scenario's ``target_speed``; while the command
  is a junction turn (LEFT/RIGHT) it holds ``turn_speed`` instead (the expert's
  ``junction_speed`` by default; the command is part of the observation). A curve
  governor caps that speed at ``sqrt(a_lat / |1/r|)``, the expert's own curve-speed rule
  (its ``lateral_accel_limit``), with 1/r the curvature of the learner's **own** steer
  (kinematic bicycle), held as a decaying peak (time constant ``curve_hold`` s) so the
  car keeps the slower speed through the whole bend. The learner thus slows in the bends
  it steers through, as the expert does, without reading the route. The learners of the
  papers predict steering only (ALVINN, DAVE-2); CIL's expert also slowed to ~15 km/h in
  turns (REFERENCES.md). With ``curve_governor="path"`` a path head's predicted path
  caps the speed too, *before* the bend: the expert's speed profile on that path
  (:func:`drive_il.policies.path.path_curve_speed`: the curve speed of each bend ahead,
  reached at the expert's ``comfort_decel``), never below ``min_speed``; the steer
  governor alone only slows once the car already steers into the bend.
* **longitudinal, with a speed head** (a preset's ``[output] speed = true``,
  :mod:`drive_il.policies.speed`; CILRS, Codevilla et al. ICCV 2019): the network's
  predicted target speed v (of the command's branch, from the frame and the measured
  speed) replaces the cruise speed and the turn speed: the same
  ``LongitudinalController`` tracks ``min(v, curve governor)``; a prediction below
  ``stop_speed`` (0.3 m/s) means stop: the target is 0 and the controller brakes (and
  holds the car with full brake once at rest, as the expert's stop does).
* **with an obstacle-gap head** too (``[output] obstacle_gap = true``): the predicted gap
  g [m] to what the expert would slow for caps that target at the stopped-obstacle
  braking curve ``sqrt(2 gap_deceleration max(0, g - gap_stop_distance))``
  (:func:`drive_il.policies.speed.gap_speed_cap`, the preset's settings: the expert's
  ``comfort_decel`` and standing gap); below ``stop_speed`` it stops as above. The speed
  head says *whether* to go; the gap says how close the car may get, from what the
  camera shows of the distance (Conditional Affordance Learning, Sauer et al., CoRL 2018,
  predicts such distances and drives with rules).

With a speed head, ``target_speed`` is the speed [m/s] the longitudinal controller was
asked to hold at the last step (the prediction after the governor's cap, 0 when
stopping); the overlay and the arbitration read it, as they read the expert's
``target_speed``. Without one it stays the cruise speed (``cruise_speed``), as before;
``last_target_speed`` is, in both cases, the target of the last step.
``predicted_speed`` is the speed head's raw output at the last step [m/s] (NaN without
a speed head), ``predicted_gap`` the gap head's [m] (NaN without one).

``predict_steer(observation)`` gives the learner's steer without acting (DAgger and
evaluation need the learner's prediction even when the expert drives).

Example::

    driver = PolicyDriver.from_checkpoint("runs/dave2", scenario=scenario)
    driver.reset(step)
    control = driver.act(step)
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np

from ..devices import is_cuda, resolve_device
from ..errors import CheckpointError
from ..types import Control, Observation, RoadOption, Step
from .checkpoint import CheckpointInfo, VehicleParams, check_camera_rig, load_checkpoint
from ..control import curvature_to_steer, steer_to_curvature
from .path import PathFollower, PursuitParams, path_curve_speed, path_steer
from .preprocessing import preprocess
from .speed import gap_speed_cap

__all__ = ["PolicyDriver"]

log = logging.getLogger(__name__)


class PolicyDriver:
    """A trained policy driving from camera frames (see module docstring).

    Args:
        policy: a checkpoint path (run or checkpoint directory), or a
            ``(module, CheckpointInfo)`` pair as returned by ``load_checkpoint``.
        scenario: the scenario driven: its camera rig is checked against the
            checkpoint's, its vehicle converts 1/r to steer, its ``target_speed`` and
            expert preset set the cruise control.
        vehicle: vehicle geometry override (default: the scenario's, else the
            checkpoint's).
        target_speed: cruise speed [m/s] (default: the scenario's, else 8 m/s); kept
            as ``cruise_speed`` (unused with a speed head).
        turn_speed: cruise speed while the command is LEFT or RIGHT [m/s] (default: the
            expert preset's ``junction_speed``; None there = ``target_speed``).
        expert_config: gains of the cruise controller (default: the scenario's expert
            preset).
        dt: control period [s] when the observation's sim time gives none (default:
            the scenario's).
        lateral_accel_limit: curve governor [m/s^2]: speed <= sqrt(a / |1/r|) of the
            learner's own steer (default: the expert preset's ``lateral_accel_limit``;
            ``math.inf`` turns the governor off).
        min_speed: the governor never asks for less [m/s] (default 2.0).
        curve_hold: time constant [s] of the decaying peak of |1/r| (default 1.0).
        stop_speed: with a speed head, a predicted speed below it [m/s] means stop
            (default 0.3).
        path_follower: how a path head's path is followed: ``"pursuit"`` (default)
            plain pure pursuit (:func:`~drive_il.policies.path.path_steer`);
            ``"expert"`` the expert's law, pure pursuit with the curvature feed-forward
            (:class:`~drive_il.policies.path.PathFollower`).
        curve_governor: what the curve governor reads: ``"steer"`` (default) the
            curvature of the learner's own steer; ``"path"`` that and, for a path head,
            the bends of its predicted path ahead (module docstring).
        device: where the network runs: ``cpu`` (default; one intra-op thread),
            ``cuda``, ``cuda:N``, ``auto``, or a ``torch.device``
            (:func:`drive_il.devices.resolve_device`). The checkpoint loads on the CPU
            and the module is moved there (a given module is moved in place).

    Raises:
        CheckpointError: unreadable checkpoint, or a scenario rig that lacks the model's
            camera or differs from the training rig.
        ConfigError: a bad ``device`` (``cuda`` without CUDA, unknown spec).
        ValueError: an unknown ``path_follower`` or ``curve_governor``.
    """

    name = "learner"
    #: the values of ``path_follower``
    PATH_FOLLOWERS = ("pursuit", "expert")
    #: the values of ``curve_governor``
    CURVE_GOVERNORS = ("steer", "path")

    def __init__(self, policy: str | Path | tuple[Any, CheckpointInfo], *, scenario: Any = None,
                 vehicle: VehicleParams | None = None, target_speed: float | None = None,
                 turn_speed: float | None = None, expert_config: Any = None, dt: float | None = None,
                 lateral_accel_limit: float | None = None, min_speed: float = 2.0,
                 curve_hold: float = 1.0, stop_speed: float = 0.3, device: Any = "cpu",
                 path_follower: str = "pursuit", curve_governor: str = "steer") -> None:
        import torch  # noqa: F401  (fail early if torch is missing)

        if path_follower not in self.PATH_FOLLOWERS:
            raise ValueError(f"path_follower: expected one of {', '.join(self.PATH_FOLLOWERS)}, got {path_follower!r}")
        if curve_governor not in self.CURVE_GOVERNORS:
            raise ValueError(f"curve_governor: expected one of {', '.join(self.CURVE_GOVERNORS)}, "
                             f"got {curve_governor!r}")
        self.path_follower = path_follower
        self.curve_governor = curve_governor
        self.device = resolve_device(device, flag="device")
        if isinstance(policy, (str, Path)):
            module, info = load_checkpoint(policy)
        else:
            module, info = policy
        module.eval()
        if is_cuda(self.device) or any(p.device != self.device for p in module.parameters()):
            module.to(self.device)
        self.policy = module
        self.info = info
        self.preprocessing = info.preprocessing
        if scenario is not None:
            check_camera_rig(info, scenario.cameras, source=f"scenario {scenario.name!r}")
        if vehicle is None:
            vehicle = (VehicleParams(wheelbase=scenario.vehicle.wheelbase,
                                     max_steer_angle=scenario.vehicle.max_steer_angle)
                       if scenario is not None else info.vehicle)
        self.vehicle = vehicle
        if expert_config is None:
            from ..expert.config import ExpertConfig, load_expert_config
            expert_config = load_expert_config(scenario.expert) if scenario is not None else ExpertConfig()
        self.expert_config = expert_config
        output = getattr(info.preset, "output", None)
        self.path_distances: tuple[float, ...] | None = (tuple(output.path_distances)
                                                         if output is not None and output.is_path else None)
        try:
            self.pursuit = PursuitParams.from_expert(expert_config)
        except (AttributeError, TypeError, ValueError):
            self.pursuit = PursuitParams.from_expert()
        self.last_path: np.ndarray | None = None
        self.follower = (PathFollower(self.path_distances, wheelbase=self.vehicle.wheelbase,
                                      max_steer_angle=self.vehicle.max_steer_angle, pursuit=self.pursuit)
                         if self.path_distances is not None and len(self.path_distances) >= 2
                         and path_follower == "expert" else None)
        self._follower_time: float | None = None
        self.cruise_speed = float(target_speed if target_speed is not None else
                                  (scenario.target_speed if scenario is not None else 8.0))
        if turn_speed is None:
            turn_speed = getattr(expert_config, "junction_speed", None)
        self.turn_speed = min(float(turn_speed), self.cruise_speed) if turn_speed is not None else self.cruise_speed
        #: the network predicts a target speed (``[output] speed = true``)
        self.has_speed_head = bool(getattr(module, "has_speed_head", False))
        if not stop_speed >= 0:
            raise ValueError(f"stop_speed must be >= 0 m/s, got {stop_speed!r}")
        self.stop_speed = float(stop_speed)
        self.predicted_speed: float = math.nan
        #: the network predicts the obstacle gap (``[output] obstacle_gap = true``)
        self.has_gap_head = self.has_speed_head and bool(getattr(module, "has_gap_head", False))
        self.predicted_gap: float = math.nan
        self.dt = float(dt if dt is not None else (scenario.dt if scenario is not None else 0.05))
        from ..expert.controllers import LongitudinalController
        self.cruise = LongitudinalController(expert_config)
        if lateral_accel_limit is None:
            lateral_accel_limit = float(getattr(expert_config, "lateral_accel_limit", math.inf))
        if not lateral_accel_limit > 0:
            raise ValueError(f"lateral_accel_limit must be > 0 m/s^2, got {lateral_accel_limit!r}")
        if not (min_speed >= 0 and curve_hold > 0):
            raise ValueError(f"min_speed must be >= 0 m/s and curve_hold > 0 s, got {min_speed!r}, {curve_hold!r}")
        self.lateral_accel_limit = float(lateral_accel_limit)
        self.min_speed = float(min_speed)
        self.curve_hold = float(curve_hold)
        self._curvature_peak = 0.0
        self._last_time: float | None = None
        self.last_steer: float = 0.0
        self.last_target_speed: float = self.cruise_speed

    @property
    def target_speed(self) -> float:
        """With a speed head: the speed [m/s] the longitudinal controller was asked to
        hold at the last step (the prediction capped by the curve governor, 0 when
        stopping; the cruise speed before the first step). Without one: the cruise
        speed, as before (the rollout workers rebuild a learner from this attribute,
        ``drive_il.rollout.parallel.jobs.DriverRecipe``); the governed cruise target of
        the last step is ``last_target_speed``."""
        return self.last_target_speed if self.has_speed_head else self.cruise_speed

    @classmethod
    def from_checkpoint(cls, checkpoint: str | Path, *, scenario: Any = None, **kwargs: Any) -> PolicyDriver:
        """Load a checkpoint (run or checkpoint directory) and check it against the
        scenario's camera rig (see the class docstring for ``kwargs``)."""
        return cls(checkpoint, scenario=scenario, **kwargs)

    def reset(self, step: Step) -> None:
        """Episode start: clear the cruise controller."""
        self.cruise.reset()
        self._last_time = None
        self.last_steer = 0.0
        self._curvature_peak = 0.0
        self.last_target_speed = self.cruise_speed
        self.last_path = None
        self.predicted_speed = math.nan
        self.predicted_gap = math.nan
        if self.follower is not None:
            self.follower.reset()
        self._follower_time = None

    def predict_steer(self, observation: Observation) -> float:
        """The policy's steer in [-1, 1] for this observation (no side effects but
        ``last_path`` for a path head, ``predicted_speed`` for a speed head,
        ``predicted_gap`` for an obstacle-gap head, and the path follower's memory, which
        advances by the speed times the sim time since the last call).

        Raises:
            CheckpointError: the observation lacks the model's camera.
        """
        import torch

        cam = self.preprocessing.camera
        frame = observation.frames.get(cam)
        if frame is None:
            raise CheckpointError(f"{self.info.path}: the model reads camera {cam!r}, the observation has "
                                  f"{', '.join(observation.frames) or 'no cameras'}")
        x = torch.from_numpy(preprocess(np.asarray(frame), self.preprocessing))[None]   # (1, C, h, w)
        p = self.policy
        command = torch.tensor([int(observation.command)], dtype=torch.long) if p.uses_command else None
        speed = torch.tensor([float(observation.speed)], dtype=torch.float32) if p.uses_speed else None
        extra: dict[str, Any] = {}
        if getattr(p, "uses_target_point", False):
            tp = observation.target_point
            if tp is None:
                raise CheckpointError(f"{self.info.path}: the model reads the route's target point "
                                      "(target_point_input); the observation has none (no route)")
            extra["target_point"] = torch.tensor([[float(tp[0]), float(tp[1])]], dtype=torch.float32)
        if is_cuda(self.device):
            x = x.to(self.device, non_blocking=True)
            command = command.to(self.device) if command is not None else None
            speed = speed.to(self.device) if speed is not None else None
            extra = {k: v.to(self.device) for k, v in extra.items()}
            threads = 1                                                   # the CPU threads do not matter
        else:
            threads = torch.get_num_threads()
        if threads != 1:
            torch.set_num_threads(1)
        try:
            with torch.no_grad():
                if self.has_gap_head:
                    out, v, g = p(x, command, speed, with_speed=True, with_gap=True, **extra)
                    v, g = float(v.float().reshape(-1)[0]), float(g.float().reshape(-1)[0])   # [m/s], [m]
                    self.predicted_speed = v if math.isfinite(v) else 0.0
                    self.predicted_gap = g if math.isfinite(g) else 0.0
                    out = out.float().cpu()
                elif self.has_speed_head:
                    out, v = p(x, command, speed, with_speed=True, **extra)
                    v = float(v.float().reshape(-1)[0])                       # target speed [m/s]
                    self.predicted_speed = v if math.isfinite(v) else 0.0
                    out = out.float().cpu()
                else:
                    out = p(x, command, speed, **extra).float().cpu()                  # (1, 1), (1, K) or (1, K, 2)
                if p.output_kind == "path":
                    pts = out.reshape(-1, 2).numpy().astype(np.float64)      # (K, 2) ego frame [m]
                    self.last_path = pts
                    if self.follower is not None:
                        t = float(observation.sim_time)
                        last, self._follower_time = self._follower_time, t
                        travelled = max(float(observation.speed), 0.0) * (t - last if last is not None and t > last
                                                                           else 0.0)
                        s = self.follower.steer(pts, float(observation.speed), travelled,
                                                int(observation.command) if p.uses_command else None)
                    else:
                        s = path_steer(pts, self.path_distances,
                                       float(observation.speed), wheelbase=self.vehicle.wheelbase,
                                       max_steer_angle=self.vehicle.max_steer_angle, pursuit=self.pursuit)
                elif p.output_kind == "curvature":
                    s = curvature_to_steer(float(out.reshape(-1)[0]), self.vehicle.wheelbase,
                                           self.vehicle.max_steer_angle)
                else:
                    s = float(p.output_to_steer(out).reshape(-1)[0])
        finally:
            if threads != 1:
                torch.set_num_threads(threads)
        return 0.0 if math.isnan(s) else max(-1.0, min(1.0, s))

    def curve_speed(self, steer: float, target: float, dt: float) -> float:
        """The curve governor: ``target`` [m/s] capped at ``sqrt(a_lat / k)``, k the
        decaying peak of the curvature |1/r| [1/m] of ``steer`` (kinematic bicycle), never
        below ``min_speed`` (nor above ``target``). Advances the peak by ``dt`` [s]."""
        k = abs(steer_to_curvature(float(steer), self.vehicle.wheelbase, self.vehicle.max_steer_angle))
        self._curvature_peak = max(k, self._curvature_peak * math.exp(-max(dt, 0.0) / self.curve_hold))
        if not math.isfinite(self.lateral_accel_limit) or self._curvature_peak <= 1e-9:
            return target
        v = math.sqrt(self.lateral_accel_limit / self._curvature_peak)
        return min(target, max(v, self.min_speed))

    def path_speed(self, target: float) -> float:
        """``target`` [m/s] capped by the bends of the last predicted path
        (``curve_governor="path"`` with a path head:
        :func:`~drive_il.policies.path.path_curve_speed` at the expert preset's
        ``lateral_accel_limit`` and ``comfort_decel``), never below ``min_speed`` (nor
        above ``target``); ``target`` itself otherwise."""
        if self.curve_governor != "path" or self.last_path is None or not math.isfinite(self.lateral_accel_limit):
            return target
        cap = path_curve_speed(self.last_path, self.path_distances,
                               lateral_accel_limit=self.lateral_accel_limit,
                               deceleration=float(getattr(self.expert_config, "comfort_decel", 2.0)))
        return min(target, max(cap, self.min_speed))

    def act(self, step: Step) -> Control:
        """Steer from the policy, throttle/brake from the longitudinal controller (the
        cruise speed, or the speed head's target; module docstring)."""
        obs = step.observation
        steer = self.predict_steer(obs)
        self.last_steer = steer
        dt = self.dt
        if self._last_time is not None and obs.sim_time > self._last_time:
            dt = obs.sim_time - self._last_time
        self._last_time = obs.sim_time
        if self.has_speed_head:
            v = max(0.0, self.predicted_speed)
            if self.has_gap_head:
                out = self.info.preset.output
                v = min(v, gap_speed_cap(self.predicted_gap, stop_distance=out.gap_stop_distance,
                                         deceleration=out.gap_deceleration))
            target = self.curve_speed(steer, self.path_speed(v), dt)
            if v < self.stop_speed:
                target = 0.0                                   # stop: the controller brakes
        else:
            turning = obs.command in (RoadOption.LEFT, RoadOption.RIGHT)
            target = self.turn_speed if turning else self.cruise_speed
            target = self.curve_speed(steer, self.path_speed(target), dt)
        self.last_target_speed = target
        throttle, brake = self.cruise.control(float(obs.speed), target, dt)
        return Control.clipped(steer, throttle, brake)
