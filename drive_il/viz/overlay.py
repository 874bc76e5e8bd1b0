"""The live overlay: learner-versus-expert lateral deviation on the lane, for any driver, on either world.

:class:`Overlay` is a rollout observer (``on_episode_start`` / ``on_step`` /
``on_episode_end``). Each step it draws, from the :class:`~drive_il.types.StepRecord`
alone (plus the ``carla.Map`` for lane boundaries):

* the main camera view (scaled up);
* steering gauges: the learner's prediction, the expert's label, the executed control
  (with values) and the executed pedals;
* a heading-up bird's-eye panel: lane boundaries and markings from the ``carla.Map``
  (cached per map, :func:`drive_il.viz.lanes.lane_geometry_for_map`), the route, the
  expert's intended path, the ego's recent trajectory coloured by lateral deviation (green -> red
  at the intervention threshold), intervention / takeover / collision markers, other
  vehicles;
* a strip chart of the lateral deviation over the last ``history_seconds`` with the
  +-threshold lines and intervention periods shaded;
* a speed bar under the gauges: the ego's speed, the expert's target speed
  (``StepRecord.expert_target_speed``) and the learner's
  (``StepRecord.learner_target_speed``, when its policy has a speed output), so
  learner-versus-expert speed is seen live;
* urban driving (issue 19): traffic lights at their stop lines (state colour) and walkers
  (dots) on the bird's-eye panel; in the camera view's top-right corner (when the world
  has traffic lights) the state of the next light on the route with the distance to its
  stop line (:meth:`Overlay.light_ahead`);
* a HUD: speed (km/h on screen, m/s inside), command, driver, beta, DAgger round,
  autonomy so far, interventions, events, FPS.

Layout at 1280x720 (scales with ``size``)::

    +------------------------------+-----------------+
    | camera                       | bird's-eye      |
    +------------------------------+                 |
    | steering gauges              |                 |
    +------------------------------+-----------------+
    | lateral deviation strip chart| HUD             |
    +------------------------------+-----------------+

Quitting: closing the window or pressing one of ``quit_keys`` (Esc; not q, which
toggles reverse for a human driver as in CARLA's manual_control) sets
:attr:`Overlay.quit_requested`;
``on_step`` then raises ``KeyboardInterrupt`` (the same as Ctrl-C, so every loop
stops and ``drive-il`` exits with 130) unless the overlay was built with
``raise_on_quit=False``, in which case only the flag is set.

Headless: with ``show=False`` nothing opens (an off-screen surface); with
``SDL_VIDEODRIVER=dummy`` a "window" is created off screen. ``record_screens`` saves
every presented frame as PNG (and ``gif`` an animated GIF at :meth:`Overlay.close`).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pygame

from ..types import EpisodeInfo, EpisodeResult, Step, StepRecord, TrafficLight
from . import panels
from .events import EventPump, Pacer, default_pump, ensure_pygame
from .history import OverlayHistory
from .lanes import LaneGeometry, lane_geometry_for_map
from .panels import Theme
from .recording import ScreenRecorder, log_overlay_image

if TYPE_CHECKING:  # pragma: no cover
    import carla

__all__ = ["Overlay", "Layout", "render_demo_screenshot"]

log = logging.getLogger(__name__)

#: The overlay shows the next traffic light on the route within this distance [m] of
#: the front bumper.
LIGHT_AHEAD_RANGE = 80.0


@dataclass(frozen=True, slots=True)
class Layout:
    """Panel rectangles [px] for a window size and a camera frame shape."""

    camera: "pygame.Rect"
    gauges: "pygame.Rect"
    chart: "pygame.Rect"
    birdseye: "pygame.Rect"
    hud: "pygame.Rect"

    @staticmethod
    def compute(size: tuple[int, int], frame_shape: tuple[int, int] | None) -> "Layout":
        """Layout for window ``size`` (W, H) and a camera frame (H, W) (or None)."""
        w, h = size
        m = 4
        right_w = int(w * 0.36)
        left_w = w - right_w
        bird_h = min(right_w, int(h * 0.64))
        birdseye = pygame.Rect(left_w, 0, right_w, bird_h).inflate(-m, -m)
        hud = pygame.Rect(left_w, bird_h, right_w, h - bird_h).inflate(-m, -m)
        aspect = (frame_shape[0] / frame_shape[1]) if frame_shape else 0.33
        cam_h = int(min(h * 0.52, left_w * aspect))
        gauges_h = max(90, int(h * 0.17))
        camera = pygame.Rect(0, 0, left_w, cam_h).inflate(-m, -m)
        gauges = pygame.Rect(0, cam_h, left_w, gauges_h).inflate(-m, -m)
        chart = pygame.Rect(0, cam_h + gauges_h, left_w, h - cam_h - gauges_h).inflate(-m, -m)
        return Layout(camera, gauges, chart, birdseye, hud)


class Overlay:
    """A rollout observer that draws the overlay (see module docstring).

    Args:
        size: window size (W, H) [px].
        camera: the camera to show (falls back to the first camera of the observation).
        show: open a window (``pygame.display``); False draws off screen only.
        record_screens: folder where presented frames are saved as PNG.
        record_every: save every n-th presented frame (default every frame).
        threshold: intervention threshold on |lateral deviation| [m] (chart lines and
            trail colours).
        carla_map: the town (lane boundaries); without one, the route's own lane is
            drawn. Can be set later with :meth:`set_map`.
        history_seconds: span of the strip chart and of the trail [s].
        scale: bird's-eye scale [px/m].
        gif: write the presented frames as an animated GIF there at :meth:`close`.
        raise_on_quit: ``on_step`` raises KeyboardInterrupt once quitting was asked.
        title: window title.
        pump: the event pump (default: the process-wide one).
        tensorboard: a SummaryWriter; every ``tensorboard_every``-th frame is logged
            as an image under ``overlay/episode_<n>``.
        smooth: bilinear scaling of the camera image.
        quit_keys: keys that ask to quit (pygame key codes).
        simulator: a Simulator whose ``map`` is read at every episode start (the
            map is valid after ``reset``; use this instead of ``carla_map`` when the
            overlay is built before the first reset).
        realtime: ``on_step`` waits so that steps are ``dt`` of wall time apart
            (watch the expert or a policy at the simulation's pace; a human driver and
            the human gate pace themselves).

    Attributes:
        surface: the drawn frame (the window surface when shown).
        quit_requested: the user asked to quit (window closed, a quit key).
        status_text: a line drawn in the HUD title (the viewer shows its state there).
        history: what is remembered of the episode.
    """

    def __init__(self, *, size: tuple[int, int] = (1280, 720), camera: str = "center", show: bool = True,
                 record_screens: str | Path | None = None, threshold: float = 1.0,
                 carla_map: "carla.Map | None" = None, history_seconds: float = 20.0, scale: float = 6.0,
                 gif: str | Path | None = None, raise_on_quit: bool = True, title: str = "drive_il",
                 pump: EventPump | None = None, tensorboard: Any = None, tensorboard_every: int = 20,
                 smooth: bool = False, quit_keys: tuple[int, ...] = (pygame.K_ESCAPE,),
                 simulator: Any = None, record_every: int = 1, realtime: bool = False) -> None:
        if threshold <= 0 or not math.isfinite(threshold):
            raise ValueError(f"Overlay.threshold must be > 0 [m], got {threshold!r}")
        self.size = (int(size[0]), int(size[1]))
        self.camera = camera
        self.show = show
        self.threshold = float(threshold)
        self.history_seconds = float(history_seconds)
        self.scale = float(scale)
        self.raise_on_quit = raise_on_quit
        self.smooth = smooth
        self.quit_keys = tuple(quit_keys)
        self.realtime = realtime
        self._pacer = Pacer()
        self.theme = Theme()
        self.quit_requested = False
        self.status_text = ""
        self.info: EpisodeInfo | None = None
        self.result: EpisodeResult | None = None
        self.history = OverlayHistory.for_seconds(self.history_seconds, 0.05)
        self.last_record: StepRecord | None = None
        self.tensorboard = tensorboard
        self.tensorboard_every = max(1, int(tensorboard_every))
        self._map = carla_map
        self._sim = simulator
        self._lanes: LaneGeometry | None = None
        self._layout: Layout | None = None
        self._layout_key: Any = None
        self._fps = 0.0
        self._last_wall: float | None = None
        self._frames = 0
        self._episode = 0
        pygame.font.init()
        if show:
            ensure_pygame()
            self.surface = pygame.display.set_mode(self.size)
            pygame.display.set_caption(title)
        else:
            self.surface = pygame.Surface(self.size)
        self._pump = pump
        self._cursor: int | None = None
        self._stops_key: Any = None
        self._stops: list[tuple[float, int]] = []
        self.recorder = (ScreenRecorder(png_dir=record_screens, png_every=record_every, gif=gif)
                         if (record_screens is not None or gif is not None) else None)

    # ------------------------------------------------------------------ observer API
    def set_map(self, carla_map: "carla.Map | None") -> None:
        """Use ``carla_map`` for the lane boundaries (cached per map)."""
        self._map = carla_map
        self._lanes = lane_geometry_for_map(carla_map) if carla_map is not None else None

    def on_episode_start(self, info: EpisodeInfo, first: Step) -> None:
        """Reset the history; read the route and the map's lanes."""
        self.info = info
        self.result = None
        self.last_record = None
        self._episode = info.episode
        dt = first.world_state.dt or info.dt
        self.history = OverlayHistory.for_seconds(self.history_seconds, dt)
        if self._sim is not None:
            m = getattr(self._sim, "town", None) or getattr(self._sim, "map", None)  # a TownMap holds its lanes
            if m is not None:
                self._map = m
        if self._map is not None:
            self._lanes = lane_geometry_for_map(self._map)
        else:
            route = info.route or first.world_state.route
            self._lanes = LaneGeometry.from_route(route) if route is not None else None

    def on_step(self, record: StepRecord) -> None:
        """Remember, draw and present one step; handle window events.

        Raises:
            KeyboardInterrupt: quitting was asked and ``raise_on_quit`` is set.
        """
        self.update(record)
        self.render(record)
        if self.realtime:
            self._pacer.wait(record.step.world_state.dt or 0.05)
        self.present()
        self.poll()
        if self.quit_requested and self.raise_on_quit:
            raise KeyboardInterrupt("overlay closed")

    def on_episode_end(self, result: EpisodeResult) -> None:
        """Draw the last frame with the termination reason."""
        self.result = result
        if self.last_record is not None:
            self.render(self.last_record)
            self.present()

    def on_episode_abort(self, reason: str) -> None:
        """The rollout was interrupted or lost its backend: draw the reason."""
        if self.info is None or self.last_record is None or (self.show and not pygame.display.get_init()):
            return
        self.result = EpisodeResult(info=self.info, termination=reason, steps=self.history.count)
        self.render(self.last_record)
        self.present()

    # ------------------------------------------------------------------ parts
    def update(self, record: StepRecord) -> None:
        """Add ``record`` to the history (no drawing)."""
        if self.history.count == 0 and self.info is None:
            self.history.dt = record.step.world_state.dt
        self.history.append(record)
        self.last_record = record
        now = time.perf_counter()
        if self._last_wall is not None:
            dtw = now - self._last_wall
            if dtw > 0:
                self._fps = 1.0 / dtw if self._fps == 0 else 0.9 * self._fps + 0.1 / dtw
        self._last_wall = now

    def frame_of(self, record: StepRecord) -> tuple[str, np.ndarray | None]:
        """(camera name, (H, W, 3) frame) shown for ``record``."""
        frames = record.step.observation.frames
        if self.camera in frames:
            return self.camera, frames[self.camera]
        for k, v in frames.items():
            return k, v
        return "", None

    def layout(self, frame: np.ndarray | None) -> Layout:
        key = (self.size, None if frame is None else frame.shape[:2])
        if key != self._layout_key:
            self._layout = Layout.compute(self.size, None if frame is None else frame.shape[:2])
            self._layout_key = key
        assert self._layout is not None
        return self._layout

    def render(self, record: StepRecord) -> "pygame.Surface":
        """Draw every panel for ``record`` (the history must already contain it).

        Returns:
            :attr:`surface`.
        """
        th = self.theme
        surf = self.surface
        ws = record.step.world_state
        cam_name, frame = self.frame_of(record)
        key = self._layout_key
        lay = self.layout(frame)
        if key != self._layout_key or self._frames == 0:
            surf.fill(th.background)  # the gaps between panels; the panels cover the rest
        h = self.history

        # camera
        cam_title = f"{cam_name} {frame.shape[1]}x{frame.shape[0]}" if frame is not None else ""
        dst = panels.draw_camera(surf, lay.camera, frame, th, title=cam_title, smooth=self.smooth)
        if record.driver == "human":
            panels.draw_banner(surf, dst, "HUMAN DRIVING", th.human, th)
        elif record.intervention:
            panels.draw_banner(surf, dst, "EXPERT INTERVENTION", th.threshold, th)
        if self.result is not None:
            panels.draw_banner(surf, lay.camera.move(0, lay.camera.height // 2 - 30),
                               f"episode end: {self.result.termination}", (255, 220, 90), th)

        # gauges, and the speed bar under them
        ex = record.executed
        g = lay.gauges
        bar_h = max(24, min(36, g.height // 3))
        panels.draw_speed_bar(surf, pygame.Rect(g.x, g.bottom - bar_h, g.width, bar_h),
                              speed=ws.ego.speed, theme=th,
                              expert_target=getattr(record, "expert_target_speed", None),
                              learner_target=getattr(record, "learner_target_speed", None))
        panels.draw_steering_gauges(
            surf, pygame.Rect(g.x, g.y, g.width, g.height - bar_h - 2),
            [("learner", None if record.learner is None else record.learner.steer, th.learner),
             ("expert", record.expert.steer, th.expert),
             ("executed", ex.steer, th.human if record.driver == "human" else th.executed)],
            th, throttle=ex.throttle, brake=ex.brake)

        # traffic light ahead and speeds, over the camera view
        lights = getattr(ws, "traffic_lights", ())
        if lights:
            light, gap = self.light_ahead(record)
            panels.draw_light_indicator(surf, (dst.right - 150, dst.y + 6), None if light is None else light.state,
                                        gap, th, size=max(8, min(14, dst.height // 12)))

        # bird's eye
        n_trail = h.capacity
        trail = np.column_stack((h.recent("x", n_trail), h.recent("y", n_trail)))
        panels.draw_birdseye(
            surf, lay.birdseye, ego=ws.ego, theme=th, lanes=self._lanes, route=ws.route,
            expert_path=record.expert_path, trail_xy=trail, trail_deviation=h.recent("lateral_deviation", n_trail),
            threshold=self.threshold, markers=h.markers, actors=ws.actors, scale=self.scale,
            title=f"bird's-eye  {ws.town}" if ws.town else "bird's-eye",
            lights=lights, walkers=getattr(ws, "walkers", ()),
            target_point=record.step.observation.target_point)

        # strip chart
        panels.draw_strip_chart(
            surf, lay.chart, t=h.recent("t"), lateral_deviation=h.recent("lateral_deviation"),
            intervention=h.recent("intervention"), now=ws.sim_time, threshold=self.threshold,
            theme=th, window=self.history_seconds,
            title=f"lateral deviation [m] (+ = right), threshold +-{self.threshold:g} m")

        # HUD
        panels.draw_hud(surf, lay.hud, self.hud_items(record), th,
                        title=self.status_text or "status")
        self._frames += 1
        return surf

    def light_ahead(self, record: StepRecord) -> tuple[TrafficLight | None, float | None]:
        """The next traffic light whose stop line the route passes, within
        :data:`LIGHT_AHEAD_RANGE` of the front bumper, and the distance to its stop line
        [m] along the route; (None, None) when there is none. The stop lines on the
        route are found once per route and set of lights by the expert's
        :meth:`drive_il.expert.local_planner.RouteTracker.light_stops` (lanes at the
        junction entry, else the route crossing the stop line)."""
        ws = record.step.world_state
        lights = getattr(ws, "traffic_lights", ())
        route = ws.route
        if not lights or route is None:
            return None, None
        key = (route, len(lights), lights[0].light_id, lights[-1].light_id)
        if self._stops_key is None or self._stops_key[0] is not route or self._stops_key[1:] != key[1:]:
            from ..expert.config import ExpertConfig
            from ..expert.local_planner import RouteTracker
            self._stops = RouteTracker(route, ExpertConfig()).light_stops(lights)
            self._stops_key = key
        front = record.route_progress + 0.5 * ws.ego.length
        for s_line, lid in self._stops:
            gap = s_line - front
            if gap < -0.5:
                continue
            if gap > LIGHT_AHEAD_RANGE:
                break
            for lt in lights:
                if lt.light_id == lid:
                    return lt, max(gap, 0.0)
        return None, None

    def hud_items(self, record: StepRecord) -> list[tuple[str, str, tuple[int, int, int] | None]]:
        """The HUD's (name, value, colour) lines for ``record``."""
        th = self.theme
        h = self.history
        ws = record.step.world_state
        obs = record.step.observation
        info = self.info
        route = ws.route
        speed = ws.ego.speed
        mode = info.driver if info is not None else record.driver
        driver = record.driver if record.driver == mode else f"{record.driver} ({mode})"
        drv_colour = {"human": th.human, "learner": th.learner, "expert": th.expert}.get(record.driver)
        items: list[tuple[str, str, Any]] = [
            ("driver", driver, drv_colour),
            ("command", getattr(obs.command, "name", str(obs.command)), None),
            ("speed", f"{speed * 3.6:5.1f} km/h", None),
            ("exp/lrn v", _targets(record), None),
            ("lat. dev.", f"{record.lateral_deviation:+.2f} m",
             panels.deviation_colour(abs(record.lateral_deviation) / self.threshold)),
            ("heading", f"{math.degrees(record.heading_error):+.1f} deg", None),
        ]
        if route is not None and route.length > 0:
            items.append(("progress", f"{record.route_progress:.0f}/{route.length:.0f} m "
                                      f"{100.0 * record.route_progress / route.length:.0f}%", None))
        else:
            items.append(("progress", f"{record.route_progress:.0f} m", None))
        beta = record.beta if record.beta is not None else (info.beta if info else None)
        rnd = record.dagger_round if record.dagger_round is not None else (info.dagger_round if info else None)
        items += [
            ("beta", "-" if beta is None else f"{beta:.2f}", None),
            ("round", "-" if rnd is None else str(rnd), None),
            ("autonomy", f"{h.autonomy:.1f} %", None),
            ("interv.", f"{h.interventions}  (human {h.human_interventions})",
             th.threshold if record.intervention else None),
            ("events", f"coll {h.collisions} off {h.off_road} inv {h.lane_invasions}", None),
            ("noise", "on" if record.noise else "off", None),
            ("light", *self._light_item(record)),
            ("sim time", f"{ws.sim_time:.2f} s", None),
            ("step", f"{h.count} (frame {ws.frame})", None),
            ("distance", f"{h.distance:.0f} m", None),
            ("town", (ws.town or "-")[:16], None),
            ("world", info.backend if info is not None else "-", None),
            ("weather", ws.weather, None),
            ("FPS", f"{self._fps:.0f}", None),
        ]
        return items

    def _light_item(self, record: StepRecord) -> tuple[str, tuple[int, int, int] | None]:
        if not getattr(record.step.world_state, "traffic_lights", ()):
            return "-", None
        light, gap = self.light_ahead(record)
        if light is None:
            return "none ahead", None
        return f"{light.state.name} {gap:.0f} m", panels.light_colour(light.state)

    def present(self) -> None:
        """Show the frame (window) and record it (PNG/GIF/TensorBoard)."""
        if self.show:
            pygame.display.flip()
        if self.recorder is not None:
            self.recorder.add(self.surface)
        if self.tensorboard is not None and (self._frames - 1) % self.tensorboard_every == 0:
            log_overlay_image(self.tensorboard, f"overlay/episode_{self._episode}", self.surface,
                              self.history.count)

    def poll(self) -> list["pygame.event.Event"]:
        """Handle window events: quit on window close or a ``quit_keys`` key. Sets
        :attr:`quit_requested`; never raises.

        Returns:
            The events seen (the viewer reads its keys from them).
        """
        if not self.show and self._pump is None:
            return []
        pump = self._pump or default_pump()
        if self._cursor is None:
            self._cursor = pump.cursor()
        events, self._cursor = pump.poll(self._cursor)
        for e in events:
            if e.type == pygame.QUIT or (e.type == pygame.KEYDOWN and e.key in self.quit_keys):
                self.quit_requested = True
        return events

    def screenshot(self, path: str | Path) -> Path:
        """Save the current frame as an image file (PNG by extension)."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        pygame.image.save(self.surface, str(p))
        return p

    def close(self) -> None:
        """Write the GIF (if any) and close the window."""
        if self.recorder is not None:
            self.recorder.close()
        if self.show and pygame.display.get_init():
            pygame.display.quit()

    def __enter__(self) -> "Overlay":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _targets(record: StepRecord) -> str:
    """'30.0 / 25.1 km/h': the expert's and the learner's target speeds of the record
    (NaN: '-')."""
    def f(v: Any) -> str:
        return "-" if v is None or not math.isfinite(v) else f"{v * 3.6:.1f}"
    return (f"{f(getattr(record, 'expert_target_speed', None))} / "
            f"{f(getattr(record, 'learner_target_speed', None))} km/h")


def render_demo_screenshot(path: str | Path = "docs/overlay.png", *, steps: int = 400, seed: int = 1,
                           size: tuple[int, int] = (1280, 720)) -> Path:
    """Render the overlay over a short DAgger-style episode and save its last frame
    (regenerates ``docs/overlay.png``: ``python -m drive_il.viz.overlay [PATH]``).

    The episode is :func:`drive_il.viz.demo.run_demo`: the embedded world on the demo
    road, the rule-based expert, a learner that drifts, DAgger mixture, DAVE-2
    interventions and a scripted human intervention, through the rollout.

    Args:
        path: the PNG to write (~100-200 KB at 1280x720).
        steps: control steps driven.
        seed: episode seed.
        size: window size [px].
    """
    from PIL import Image

    from .demo import DemoWorld, run_demo
    from .recording import surface_to_array

    ov = Overlay(size=size, show=False, threshold=1.0)
    demo = DemoWorld()
    ov.set_map(demo.map)
    run_demo(demo, [ov], steps=steps, seed=seed, learner_bias=0.05)
    if ov.last_record is not None:   # the last step, without the end-of-episode banner
        ov.result = None
        ov.render(ov.last_record)
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(surface_to_array(ov.surface))
    img.save(p, optimize=True)
    ov.close()
    return p


if __name__ == "__main__":  # pragma: no cover
    import sys

    out = render_demo_screenshot(sys.argv[1] if len(sys.argv) > 1 else "docs/overlay.png")
    print(out)
