"""Timing of the overlay against a bare baseline (used by ``drive-il bench overlay``;
kept here because pygame is imported only in :mod:`drive_il.viz`)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pygame

from ..types import EpisodeInfo, StepRecord
from . import panels
from .overlay import Overlay

__all__ = ["FrameCost", "overlay_cost"]


@dataclass(frozen=True, slots=True)
class FrameCost:
    """Per-frame cost [ms]: median and 95th percentile of the drawing thread's CPU
    time (``time.thread_time``), and the wall-clock median."""

    cpu_median: float
    cpu_p95: float
    wall_median: float


def _time(fn: Any, records: Sequence[StepRecord]) -> FrameCost:
    cpu = np.empty(len(records))
    wall = np.empty(len(records))
    for i, r in enumerate(records):
        w0, c0 = time.perf_counter(), time.thread_time()
        fn(r)
        cpu[i] = time.thread_time() - c0
        wall[i] = time.perf_counter() - w0
    return FrameCost(float(np.median(cpu) * 1e3), float(np.percentile(cpu, 95) * 1e3),
                     float(np.median(wall) * 1e3))


def overlay_cost(records: Sequence[StepRecord], *, carla_map: Any = None, size: tuple[int, int] = (1280, 720),
                 smooth: bool = False, warmup: int = 5) -> tuple[FrameCost, FrameCost]:
    """Time the full overlay (history update + every panel, off screen) and the
    baseline (``surface.fill`` + the camera frame made a surface, scaled to the same
    rectangle and blitted) over ``records``.

    Returns:
        (overlay cost, baseline cost).
    """
    ws = records[0].step.world_state
    info = EpisodeInfo(scenario="bench", town=ws.town, seed=0, dt=ws.dt, route=ws.route, driver="mixture")
    ov = Overlay(size=size, show=False, carla_map=carla_map, smooth=smooth, raise_on_quit=False)
    theme = ov.theme
    surf = pygame.Surface(size)
    cam_rect = ov.layout(ov.frame_of(records[0])[1]).camera

    def baseline(r: StepRecord) -> None:
        surf.fill(theme.background)
        panels.draw_camera(surf, cam_rect, ov.frame_of(r)[1], theme, smooth=smooth)

    def overlay(r: StepRecord) -> None:
        ov.update(r)
        ov.render(r)

    for r in records[:warmup]:
        baseline(r)
    base = _time(baseline, records)
    ov.on_episode_start(info, records[0].step)
    for r in records[:warmup]:  # fonts, text cache, lane cache
        overlay(r)
    ov.on_episode_start(info, records[0].step)
    cost = _time(overlay, records)
    ov.close()
    return cost, base
