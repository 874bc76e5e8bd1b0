"""Rollout observers: the protocol, camera PNGs, summaries as text and JSON.

Observers are composed, not subclassed (imitation's ``TrajectoryAccumulator``): any
object with ``on_episode_start(info, first_step)``, ``on_step(record)`` and
``on_episode_end(result)`` (which may return the path of a file it wrote), and
optionally ``on_episode_abort(reason)`` or ``discard()`` (called instead of
``on_episode_end`` when the episode is interrupted or the backend is lost: a recorder
discards its partial file). The episode recorder lives in
:mod:`drive_il.data.recorder`, the overlay in :mod:`drive_il.viz.overlay`, the
intervention trace in :mod:`drive_il.evaluation.trace`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Iterable, Protocol

from ..types import EpisodeInfo, EpisodeResult, Step, StepRecord

__all__ = ["Observer", "FrameSaver", "format_summary", "write_json", "jsonable"]


class Observer(Protocol):
    """Receives the episode as it happens (see the module docstring)."""

    def on_episode_start(self, info: EpisodeInfo, first: Step) -> None: ...

    def on_step(self, record: StepRecord) -> None: ...

    def on_episode_end(self, result: EpisodeResult) -> Any: ...


class FrameSaver:
    """Writes every ``every``-th camera frame as PNG:
    ``DIR/ep{episode:03d}_{camera}_{frame:06d}.png``.

    Args:
        out_dir: destination folder (created).
        every: keep one frame in ``every`` steps.
        cameras: camera names to save (None = all).
    """

    def __init__(self, out_dir: str | Path, *, every: int = 1, cameras: Iterable[str] | None = None) -> None:
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.every = max(1, int(every))
        self.cameras = set(cameras) if cameras else None
        self._ep = 0
        self._n = 0
        self.written = 0

    def _save(self, step: Step) -> None:
        from PIL import Image
        for name, img in step.observation.frames.items():
            if self.cameras is None or name in self.cameras:
                p = self.out_dir / f"ep{self._ep:03d}_{name}_{step.observation.frame:06d}.png"
                Image.fromarray(img).save(p)
                self.written += 1

    def on_episode_start(self, info: EpisodeInfo, first: Step) -> None:
        self._ep = info.episode
        self._n = 0

    def on_step(self, record: StepRecord) -> None:
        if self._n % self.every == 0:
            self._save(record.step)
        self._n += 1

    def on_episode_end(self, result: EpisodeResult) -> None:
        return None


def format_summary(result: EpisodeResult) -> str:
    """Human-readable per-episode summary (what ``drive-il drive`` prints)."""
    s = result.summary
    i = result.info
    lines = [
        f"episode {i.episode} seed {i.seed} town {i.town} weather {i.weather} driver {i.driver}: "
        f"{result.termination} after {result.steps} steps ({s.get('elapsed_s', 0):.1f} s)",
        f"  distance {s['distance']:.1f} m | route completion {s['route_completion']:.1f} % | "
        f"|lateral deviation| mean {s['lateral_deviation_mean']:.3f} p95 {s['lateral_deviation_p95']:.3f} max {s['lateral_deviation_max']:.3f} m",
        f"  collisions {int(s['collisions'])} | off-road {int(s['off_road'])} | lane invasions "
        f"{int(s['lane_invasions'])} ({int(s['lane_invasions_outside_junctions'])} outside junctions) | "
        f"steps/s {s['steps_per_s']:.0f}",
    ]
    if not math.isnan(s.get("disagreement_mean", float("nan"))) or s.get("interventions", 0):
        lines.append(
            f"  interventions {int(s['interventions'])} ({s['interventions_per_km']:.2f}/km) | autonomy "
            f"{s['autonomy']:.1f} % | steering disagreement mean {s['disagreement_mean']:.3f}")
    if result.path:
        lines.append(f"  recorded {result.path}")
    return "\n".join(lines)


def jsonable(v: Any) -> Any:
    """Plain JSON values (NaN -> null)."""
    if isinstance(v, float):
        return None if (math.isnan(v) or math.isinf(v)) else v
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    if hasattr(v, "item"):
        return jsonable(v.item())
    return v


def write_json(path: str | Path, data: Any) -> Path:
    """Write ``data`` as indented JSON (NaN as null); creates parent folders."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(jsonable(data), indent=2) + "\n")
    return p
