"""Pure drawing functions of the overlay's panels.

Each function takes plain data (numpy arrays, :mod:`drive_il.types` values, the lane
geometry) and a ``pygame.Surface`` with the rectangle to draw into, draws, and returns
nothing; none keeps state between calls except the :class:`Theme`'s text cache (in
the spirit of HighwayEnv's ``VehicleGraphics.display(vehicle, surface)``). They work on
any surface, on screen or off screen (``SDL_VIDEODRIVER=dummy``).

Bird's-eye frame: heading-up, ego-centred. A world point is taken into the ego's frame
(forward, right) [m] (:func:`drive_il.geometry.to_local`) and drawn at
``(cx + right * scale, cy - forward * scale)`` [px], ``scale`` in px/m.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pygame

from ..types import (
    ActorState,
    Route,
    TrafficLight,
    TrafficLightState,
    VehicleState,
    WalkerState,
)
from .history import Marker
from .lanes import LaneGeometry

__all__ = [
    "Theme",
    "deviation_colour",
    "draw_banner",
    "draw_birdseye",
    "draw_camera",
    "draw_hud",
    "draw_light_indicator",
    "draw_speed_bar",
    "draw_steering_gauges",
    "draw_strip_chart",
    "light_colour",
    "world_to_panel",
]

Colour = tuple[int, int, int]


@dataclass(slots=True)
class Theme:
    """Colours and fonts of the overlay, with a cache of rendered text.

    Attributes:
        background, panel, frame, fg, dim: general colours.
        road, grass, marking_white, marking_yellow: bird's-eye colours.
        learner, expert, executed, human, route, expert_path, ego, actor: series colours.
        font_sizes: small, normal, large [px].
    """

    background: Colour = (18, 20, 24)
    panel: Colour = (30, 33, 40)
    frame: Colour = (70, 75, 88)
    fg: Colour = (230, 232, 236)
    dim: Colour = (140, 146, 158)
    road: Colour = (62, 64, 70)
    junction: Colour = (72, 72, 78)
    grass: Colour = (34, 48, 36)
    marking_white: Colour = (225, 225, 225)
    marking_yellow: Colour = (235, 190, 40)
    learner: Colour = (255, 120, 40)
    expert: Colour = (70, 200, 255)
    executed: Colour = (235, 235, 235)
    human: Colour = (250, 90, 200)
    route: Colour = (80, 120, 255)
    expert_path: Colour = (70, 220, 255)
    ego: Colour = (250, 250, 250)
    actor: Colour = (200, 70, 70)
    threshold: Colour = (230, 70, 60)
    font_sizes: tuple[int, int, int] = (15, 19, 26)
    _fonts: dict = field(default_factory=dict, repr=False)
    _text_cache: dict = field(default_factory=dict, repr=False)
    _marking_styles: dict = field(default_factory=dict, repr=False)

    def font(self, size: int) -> pygame.font.Font:
        """pygame's default font at ``size`` px (loaded once)."""
        f = self._fonts.get(size)
        if f is None:
            if not pygame.font.get_init():
                pygame.font.init()
            f = pygame.font.Font(None, size)
            self._fonts[size] = f
        return f

    def text(self, s: str, size: int | None = None, colour: Colour | None = None,
             bg: Colour | None | str = "panel") -> pygame.Surface:
        """Rendered text (anti-aliased), cached by (text, size, colour, background).

        Args:
            bg: background colour (an opaque surface, blitted fastest), "panel" for
                :attr:`panel`, or None for a transparent background.
        """
        size = size or self.font_sizes[1]
        colour = colour or self.fg
        if bg == "panel":
            bg = self.panel
        key = (s, size, colour, bg)
        surf = self._text_cache.get(key)
        if surf is None:
            if len(self._text_cache) > 2048:
                self._text_cache.clear()
            surf = self.font(size).render(s, True, colour, bg)
            self._text_cache[key] = surf
        return surf


# ----------------------------------------------------------------------------- helpers
_DEVIATION_BINS = 9


def deviation_colour(frac: float) -> Colour:
    """Green (0) -> yellow (0.5) -> red (>= 1) for ``frac`` = |lateral deviation| / threshold."""
    f = min(max(frac, 0.0), 1.0)
    if f < 0.5:
        return (int(60 + 390 * f), 220, 60)
    return (255, int(220 - 380 * (f - 0.5)), 50)


_BIN_COLOURS = [deviation_colour(i / (_DEVIATION_BINS - 1)) for i in range(_DEVIATION_BINS)]


def world_to_panel(xy: np.ndarray, ego_x: float, ego_y: float, ego_yaw: float,
                   cx: float, cy: float, scale: float) -> np.ndarray:
    """World points (N, 2) [m] -> panel pixels (N, 2) float, heading-up around the ego."""
    c, s = math.cos(ego_yaw), math.sin(ego_yaw)
    dx = xy[..., 0] - ego_x
    dy = xy[..., 1] - ego_y
    fwd = dx * c + dy * s
    right = -dx * s + dy * c
    out = np.empty(xy.shape, dtype=np.float64)
    out[..., 0] = cx + right * scale
    out[..., 1] = cy - fwd * scale
    return out


def _frame(surface: pygame.Surface, rect: pygame.Rect, theme: Theme, title: str | None = None) -> None:
    pygame.draw.rect(surface, theme.panel, rect)
    pygame.draw.rect(surface, theme.frame, rect, 1)
    if title:
        surface.blit(theme.text(title, theme.font_sizes[0], theme.dim), (rect.x + 6, rect.y + 4))


# ----------------------------------------------------------------------------- camera
def draw_camera(surface: pygame.Surface, rect: pygame.Rect, frame: np.ndarray | None,
                theme: Theme, *, title: str = "", smooth: bool = False) -> pygame.Rect:
    """The camera image scaled to fit ``rect`` (aspect kept, centred).

    Args:
        frame: (H, W, 3) uint8 RGB, or None (draws "no camera").
        smooth: bilinear scaling (``smoothscale``) instead of nearest neighbour.

    Returns:
        The rectangle the image covers.
    """
    if frame is None or frame.ndim != 3 or frame.shape[2] != 3:
        pygame.draw.rect(surface, theme.background, rect)
        t = theme.text("no camera", theme.font_sizes[2], theme.dim, theme.background)
        surface.blit(t, t.get_rect(center=rect.center))
        return rect
    h, w = frame.shape[:2]
    k = min(rect.width / w, rect.height / h)
    tw, th = max(1, int(w * k)), max(1, int(h * k))
    img = pygame.image.frombuffer(np.ascontiguousarray(frame).tobytes(), (w, h), "RGB")
    img = (pygame.transform.smoothscale if smooth else pygame.transform.scale)(img, (tw, th))
    dst = img.get_rect(center=rect.center)
    # clear only the letterbox around the image (the image covers the rest)
    for strip in (pygame.Rect(rect.x, rect.y, rect.width, dst.y - rect.y),
                  pygame.Rect(rect.x, dst.bottom, rect.width, rect.bottom - dst.bottom),
                  pygame.Rect(rect.x, dst.y, dst.x - rect.x, dst.height),
                  pygame.Rect(dst.right, dst.y, rect.right - dst.right, dst.height)):
        if strip.width > 0 and strip.height > 0:
            surface.fill(theme.background, strip)
    surface.blit(img, dst)
    pygame.draw.rect(surface, theme.frame, dst, 1)
    if title:
        surface.blit(theme.text(title, theme.font_sizes[0], theme.fg, None), (dst.x + 6, dst.y + 4))
    return dst


# ----------------------------------------------------------------------------- gauges
def draw_steering_gauges(surface: pygame.Surface, rect: pygame.Rect,
                         rows: Sequence[tuple[str, float | None, Colour]], theme: Theme, *,
                         throttle: float | None = None, brake: float | None = None) -> None:
    """Horizontal steering gauges, one row each, centred at steer = 0.

    Args:
        rows: (label, steer in [-1, 1] or None when absent, colour), e.g. the learner's
            prediction, the expert's label and the executed control.
        throttle, brake: executed pedals [0, 1], drawn as two short bars when given.
    """
    _frame(surface, rect, theme, "steering  (-1 left ... +1 right)")
    n = max(1, len(rows))
    top = rect.y + 22
    row_h = max(14, (rect.height - 28) // n)
    label_w = 150
    pedal_w = 90 if throttle is not None else 0
    x0 = rect.x + label_w
    bar_w = rect.width - label_w - pedal_w - 16
    mid = x0 + bar_w // 2
    small = theme.font_sizes[0]
    for i, (label, value, colour) in enumerate(rows):
        y = top + i * row_h
        bh = max(6, row_h - 8)
        by = y + (row_h - bh) // 2
        vtxt = "  n/a" if value is None else f"{value:+.3f}"
        surface.blit(theme.text(f"{label}", theme.font_sizes[1], colour), (rect.x + 8, by - 1))
        surface.blit(theme.text(vtxt, theme.font_sizes[1], theme.fg), (rect.x + 88, by - 1))
        pygame.draw.rect(surface, theme.background, (x0, by, bar_w, bh))
        for f in (-0.5, 0.5):
            xx = int(mid + f * bar_w / 2)
            pygame.draw.line(surface, theme.frame, (xx, by), (xx, by + bh - 1))
        pygame.draw.line(surface, theme.dim, (mid, by - 2), (mid, by + bh + 1))
        if value is not None and math.isfinite(value):
            v = min(max(value, -1.0), 1.0)
            xv = int(mid + v * bar_w / 2)
            pygame.draw.rect(surface, colour, (min(mid, xv), by + 2, abs(xv - mid) + 1, bh - 4))
            pygame.draw.rect(surface, theme.fg, (xv - 2, by - 2, 4, bh + 4))
    if throttle is not None:
        px = rect.right - pedal_w
        ph = rect.height - 34
        for j, (name, v, c) in enumerate((("thr", throttle, (90, 220, 90)), ("brk", brake or 0.0, (230, 70, 60)))):
            bx = px + 8 + j * 40
            pygame.draw.rect(surface, theme.background, (bx, rect.y + 22, 24, ph))
            fh = int(min(max(v, 0.0), 1.0) * ph)
            pygame.draw.rect(surface, c, (bx, rect.y + 22 + ph - fh, 24, fh))
            surface.blit(theme.text(name, small, theme.dim), (bx, rect.bottom - 13))


# ----------------------------------------------------------------------------- bird's eye
def _marking_style(kind: str, colour: str, theme: Theme) -> tuple[Colour | None, bool, int]:
    """(colour or None for no line, dashed, width) of a carla.LaneMarkingType name."""
    if kind in ("NONE", "Grass"):
        return None, False, 1
    c = theme.marking_yellow if colour == "Yellow" else theme.marking_white
    if kind == "":
        return (110, 112, 118), False, 1
    if kind == "Curb":
        return (150, 150, 150), False, 2
    dashed = kind.startswith("Broken") or kind == "BottsDots"
    width = 2 if kind in ("SolidSolid", "SolidBroken", "BrokenSolid", "BrokenBroken") else 1
    return c, dashed, width


def _polyline(surface: pygame.Surface, colour: Colour, pts: list, width: int, dashed: bool) -> None:
    if len(pts) < 2:
        return
    if dashed:
        line = pygame.draw.line
        for i in range(0, len(pts) - 1, 2):
            line(surface, colour, pts[i], pts[i + 1], width)
    else:
        pygame.draw.lines(surface, colour, False, pts, width)


def _box(x: float, y: float, yaw: float, length: float, width: float) -> np.ndarray:
    c, s = math.cos(yaw), math.sin(yaw)
    hl, hw = 0.5 * length, 0.5 * width
    corners = np.array([(hl, -hw), (hl, hw), (-hl, hw), (-hl, -hw)])
    # local (forward, right) -> world
    wx = x + corners[:, 0] * c - corners[:, 1] * s
    wy = y + corners[:, 0] * s + corners[:, 1] * c
    return np.column_stack((wx, wy))


def draw_birdseye(surface: pygame.Surface, rect: pygame.Rect, *, ego: VehicleState,
                  theme: Theme, lanes: LaneGeometry | None = None, route: Route | None = None,
                  expert_path: np.ndarray | None = None, trail_xy: np.ndarray | None = None,
                  trail_deviation: np.ndarray | None = None, threshold: float = 1.0,
                  markers: Iterable[Marker] = (), actors: Sequence[ActorState] = (),
                  scale: float = 6.0, title: str = "bird's-eye",
                  lights: Sequence[TrafficLight] = (), walkers: Sequence[WalkerState] = (),
                  target_point: tuple[float, float] | None = None) -> None:
    """Heading-up bird's-eye view of the lane around the ego.

    Args:
        ego: the ego vehicle (centre of the view; drawn pointing up).
        lanes: lane geometry (road fill and markings), or None.
        route: the route (drawn as a thin line).
        expert_path: (K, 2) the expert's intended path [m], world frame.
        trail_xy: (N, 2) the ego's recent positions [m], oldest first.
        trail_deviation: (N,) lateral deviation [m] at those positions (colours the trail
            green -> red as |lateral deviation| approaches ``threshold``).
        threshold: intervention threshold [m].
        markers: intervention and event markers (world positions).
        actors: other vehicles.
        scale: [px/m].
        lights: traffic lights, drawn at their stop lines in the colour of their state
            (:func:`light_colour`): a thick bar across the stop line and a dot at the
            pole.
        walkers: pedestrians, dots of their footprint radius (at least 4 px) in their
            clothes' colour, outlined.
        target_point: the route's target point a learner reads (the observation's
            ``target_point``, (forward, right) [m] in the ego frame,
            :mod:`drive_il.routing.target`): a ring in the route's colour, with a thin
            line from the ego; None: not drawn.
    """
    surface.fill(theme.grass, rect)
    clip = surface.get_clip()
    surface.set_clip(rect)
    cx = rect.centerx
    cy = rect.y + int(rect.height * 0.62)
    ex, ey, eyaw = ego.x, ego.y, ego.yaw
    # farthest visible point from the ego [m]
    radius = max(math.hypot(px - cx, py - cy) for px in (rect.left, rect.right)
                 for py in (rect.top, rect.bottom)) / scale + 1.0

    def tp(a: np.ndarray) -> np.ndarray:
        return world_to_panel(a, ex, ey, eyaw, cx, cy, scale)

    # road surface, then markings (each shared boundary once, see LaneChunk.draw_left)
    if lanes is not None and len(lanes):
        idx = lanes.near(ex, ey, radius)
        if len(idx):  # keep the chunks whose bounding circle meets the panel rectangle
            c = tp(lanes.centres[idx])
            r = lanes.radii[idx] * scale
            idx = idx[(c[:, 0] + r >= rect.left) & (c[:, 0] - r <= rect.right)
                      & (c[:, 1] + r >= rect.top) & (c[:, 1] - r <= rect.bottom)]
        if len(idx):
            pl = tp(lanes.points[lanes.point_index(idx)]).tolist()
            pos = 0
            sides = []
            polygon = pygame.draw.polygon
            road, junction = theme.road, theme.junction
            for i in idx.tolist():
                ch = lanes.chunks[i]
                n = len(ch.left)
                left, right = pl[pos:pos + n], pl[pos + n:pos + 2 * n]
                pos += 2 * n
                polygon(surface, junction if ch.is_junction else road, left + right[::-1])
                if not ch.is_junction:
                    if ch.draw_left:
                        sides.append((left, ch.left_marking, ch.left_color))
                    sides.append((right, ch.right_marking, ch.right_color))
            styles = theme._marking_styles
            for pts, kind, col in sides:
                st = styles.get((kind, col))
                if st is None:
                    st = styles[(kind, col)] = _marking_style(kind, col, theme)
                if st[0] is not None:
                    _polyline(surface, st[0], pts, st[2], st[1])

    # route near the ego
    if route is not None:
        xy = route.xy
        d2 = (xy[:, 0] - ex) ** 2 + (xy[:, 1] - ey) ** 2
        near = np.nonzero(d2 < radius * radius)[0]
        if len(near) >= 2:
            # contiguous runs of route indices
            breaks = np.nonzero(np.diff(near) > 1)[0] + 1
            for run in np.split(near, breaks):
                if len(run) >= 2:
                    pygame.draw.lines(surface, theme.route, False, tp(xy[run]).tolist(), 2)

    # the target point (a learner's input), ego frame -> panel
    if target_point is not None:
        f, r = float(target_point[0]), float(target_point[1])
        p = (round(cx + r * scale), round(cy - f * scale))
        pygame.draw.line(surface, theme.route, (cx, cy), p, 1)
        pygame.draw.circle(surface, theme.fg, p, 7, 3)
        pygame.draw.circle(surface, theme.route, p, 6, 2)

    # the expert's intended path
    if expert_path is not None and len(expert_path) >= 2:
        pts = tp(np.asarray(expert_path, dtype=np.float64)[:, :2])
        pygame.draw.lines(surface, theme.expert_path, False, pts.tolist(), 3)

    # the recent trajectory, coloured by lateral deviation (runs of equal colour bin)
    if trail_xy is not None and len(trail_xy) >= 2:
        pts = tp(trail_xy)
        if trail_deviation is None:
            pygame.draw.lines(surface, _BIN_COLOURS[0], False, pts.tolist(), 3)
        else:
            frac = np.abs(np.nan_to_num(trail_deviation)) / max(threshold, 1e-6)
            bins = np.minimum((frac * (_DEVIATION_BINS - 1) + 0.5).astype(np.int64), _DEVIATION_BINS - 1)
            cuts = np.nonzero(np.diff(bins))[0] + 1
            starts = np.concatenate(([0], cuts))
            ends = np.concatenate((cuts, [len(bins)]))
            pl = pts.tolist()
            for a, b in zip(starts.tolist(), ends.tolist()):
                seg = pl[max(0, a - 1):b]
                if len(seg) >= 2:
                    pygame.draw.lines(surface, _BIN_COLOURS[int(bins[a])], False, seg, 3)

    # traffic lights at their stop lines (colour of the state), walkers as dots
    r2 = radius * radius
    for lt in lights:
        (x0, y0), (x1, y1) = lt.stop_line
        if (0.5 * (x0 + x1) - ex) ** 2 + (0.5 * (y0 + y1) - ey) ** 2 > r2 and (lt.x - ex) ** 2 + (lt.y - ey) ** 2 > r2:
            continue
        col = light_colour(lt.state)
        p = tp(np.array([[x0, y0], [x1, y1], [lt.x, lt.y]]))
        if (x0, y0) != (x1, y1):
            pygame.draw.line(surface, (20, 20, 20), p[0], p[1], 7)
            pygame.draw.line(surface, col, p[0], p[1], 5)
        pygame.draw.circle(surface, (20, 20, 20), (int(p[2][0]), int(p[2][1])), 5)
        pygame.draw.circle(surface, col, (int(p[2][0]), int(p[2][1])), 4)
    if walkers:
        wr = max(4, round(0.3 * scale))
        for w in walkers:
            if (w.x - ex) ** 2 + (w.y - ey) ** 2 > r2:
                continue
            p = tp(np.array([[w.x, w.y]]))[0]
            c = (int(p[0]), int(p[1]))
            pygame.draw.circle(surface, w.color, c, wr)
            pygame.draw.circle(surface, theme.fg, c, wr, 1)

    # other vehicles
    for a in actors:
        if (a.x - ex) ** 2 + (a.y - ey) ** 2 > radius * radius:
            continue
        pygame.draw.polygon(surface, a.color if a.color else theme.actor,
                            tp(_box(a.x, a.y, a.yaw, a.length, a.width)).tolist())

    # markers
    for m in markers:
        if (m.x - ex) ** 2 + (m.y - ey) ** 2 > radius * radius:
            continue
        p = tp(np.array([[m.x, m.y]]))[0]
        px, py = int(p[0]), int(p[1])
        if m.kind == "intervention":
            pygame.draw.circle(surface, theme.threshold, (px, py), 7, 2)
            pygame.draw.line(surface, theme.threshold, (px - 5, py - 5), (px + 5, py + 5), 2)
            pygame.draw.line(surface, theme.threshold, (px - 5, py + 5), (px + 5, py - 5), 2)
        elif m.kind == "human":
            pygame.draw.circle(surface, theme.human, (px, py), 7, 2)
            pygame.draw.circle(surface, theme.human, (px, py), 2)
        else:
            pygame.draw.rect(surface, (255, 0, 255), (px - 5, py - 5, 10, 10), 2)

    # ego (heading-up: always pointing up)
    hl, hw = 0.5 * ego.length * scale, 0.5 * ego.width * scale
    body = [(cx - hw, cy - hl), (cx + hw, cy - hl), (cx + hw, cy + hl), (cx - hw, cy + hl)]
    pygame.draw.polygon(surface, theme.ego, body)
    pygame.draw.polygon(surface, (40, 40, 40), [(cx, cy - hl + 2), (cx - hw + 2, cy - hl + hw), (cx + hw - 2, cy - hl + hw)])

    # scale bar and title
    bar = 10.0 * scale
    bx, by = rect.x + 10, rect.bottom - 14
    pygame.draw.line(surface, theme.fg, (bx, by), (bx + bar, by), 2)
    surface.blit(theme.text("10 m", theme.font_sizes[0], theme.fg, theme.grass), (bx + bar + 6, by - 7))
    surface.set_clip(clip)
    pygame.draw.rect(surface, theme.frame, rect, 1)
    surface.blit(theme.text(title, theme.font_sizes[0], theme.dim, theme.grass), (rect.x + 6, rect.y + 4))
    lx = rect.right - 118
    for i, (name, c) in enumerate((("route", theme.route), ("expert path", theme.expert_path),
                                   ("trail (lat. dev.)", _BIN_COLOURS[0]))):
        y = rect.y + 8 + 15 * i
        pygame.draw.line(surface, c, (lx, y + 5), (lx + 16, y + 5), 3)
        surface.blit(theme.text(name, theme.font_sizes[0], theme.fg, theme.grass), (lx + 22, y))


# ----------------------------------------------------------------------------- strip chart
def draw_strip_chart(surface: pygame.Surface, rect: pygame.Rect, *, t: np.ndarray,
                     lateral_deviation: np.ndarray, intervention: np.ndarray | None, now: float,
                     threshold: float, theme: Theme, window: float = 20.0,
                     limit: float | None = None, title: str = "lateral dev. [m], + = right") -> None:
    """Lateral deviation over the last ``window`` seconds with +-``threshold`` lines.

    Args:
        t: (N,) sim time [s], oldest first.
        lateral_deviation: (N,) [m], + = right.
        intervention: (N,) bool, shaded where true (or None).
        now: the current sim time [s] (right edge).
        threshold: intervention threshold [m].
        window: seconds shown.
        limit: half-range of the y axis [m] (default max(2 * threshold, 0.5)).
    """
    _frame(surface, rect, theme, title)
    plot = pygame.Rect(rect.x + 44, rect.y + 22, rect.width - 54, rect.height - 40)
    pygame.draw.rect(surface, theme.frame, plot, 1)
    lim = limit if limit is not None else max(2.0 * threshold, 0.5)
    ky = plot.height / (2.0 * lim)
    kx = plot.width / window
    ymid = plot.centery

    def sx(tt: np.ndarray | float):
        return plot.right - (now - tt) * kx

    def sy(v: np.ndarray | float):
        return ymid - np.clip(v, -lim, lim) * ky if isinstance(v, np.ndarray) else ymid - min(max(v, -lim), lim) * ky

    # shaded interventions
    if intervention is not None and len(t) and intervention.any():
        on = intervention.astype(np.int8)
        edges = np.diff(np.concatenate(([0], on, [0])))
        starts = np.nonzero(edges == 1)[0]
        ends = np.nonzero(edges == -1)[0] - 1
        for a, b in zip(starts, ends):
            x0 = max(plot.x, int(sx(t[a])))
            x1 = min(plot.right, int(sx(t[b])) + 2)
            if x1 > x0:
                pygame.draw.rect(surface, (70, 35, 40), (x0, plot.y, x1 - x0, plot.height))
    # grid, thresholds
    pygame.draw.line(surface, theme.frame, (plot.x, ymid), (plot.right, ymid))
    for sgn in (-1, 1):
        y = int(sy(sgn * threshold))
        pygame.draw.line(surface, theme.threshold, (plot.x, y), (plot.right - 1, y))
    small = theme.font_sizes[0]
    for v in (-lim, 0.0, lim):
        lab = theme.text(f"{v:+.1f}", small, theme.dim)
        surface.blit(lab, (rect.x + 4, int(sy(v)) - 6))
    for k in range(0, int(window) + 1, 5):
        x = int(plot.right - k * kx)
        pygame.draw.line(surface, theme.frame, (x, plot.bottom), (x, plot.bottom + 3))
        lab = theme.text(f"-{k}s" if k else "now", small, theme.dim)
        surface.blit(lab, (x - lab.get_width() // 2, plot.bottom + 3))
    # the curve
    if len(t) >= 2:
        keep = t >= now - window
        tt, dd = t[keep], lateral_deviation[keep]
        if len(tt) >= 2:
            pts = np.column_stack((sx(tt), sy(np.nan_to_num(dd))))
            pygame.draw.lines(surface, theme.fg, False, pts.tolist(), 2)
    if len(lateral_deviation):
        v = float(lateral_deviation[-1])
        c = deviation_colour(abs(v) / max(threshold, 1e-6))
        surface.blit(theme.text(f"{v:+.2f} m", theme.font_sizes[1], c), (rect.right - 80, rect.y + 3))


# ----------------------------------------------------------------------------- HUD
def draw_hud(surface: pygame.Surface, rect: pygame.Rect, items: Sequence[tuple[str, str, Colour | None]],
             theme: Theme, *, title: str = "") -> None:
    """A two-column table of (name, value, colour or None) lines (clipped to ``rect``)."""
    clip = surface.get_clip()
    surface.set_clip(rect)
    _frame(surface, rect, theme, title)
    size = theme.font_sizes[1]
    line_h = size + 2
    cols = 2
    per_col = max(1, (rect.height - 26) // line_h)
    col_w = rect.width // cols
    for i, (name, value, colour) in enumerate(items):
        c, r = divmod(i, per_col)
        if c >= cols:
            break
        x = rect.x + 8 + c * col_w
        y = rect.y + 22 + r * line_h
        surface.blit(theme.text(name, size, theme.dim), (x, y))
        surface.blit(theme.text(value, size, colour or theme.fg), (x + 88, y))
    surface.set_clip(clip)


def draw_banner(surface: pygame.Surface, rect: pygame.Rect, text: str, colour: Colour, theme: Theme) -> None:
    """A large label in a translucent box at the top of ``rect`` (e.g. "HUMAN DRIVING")."""
    t = theme.text(text, theme.font_sizes[2], colour, None)
    box = t.get_rect(midtop=(rect.centerx, rect.y + 8)).inflate(16, 8)
    shade = pygame.Surface(box.size, pygame.SRCALPHA)
    shade.fill((0, 0, 0, 160))
    surface.blit(shade, box)
    pygame.draw.rect(surface, colour, box, 2)
    surface.blit(t, t.get_rect(center=box.center))


# ----------------------------------------------------------------------------- traffic lights, speed
#: panel colours of the traffic light states (CARLA's ``carla.TrafficLightState``)
_LIGHT_COLOURS: dict[int, Colour] = {
    int(TrafficLightState.RED): (235, 45, 35), int(TrafficLightState.YELLOW): (250, 200, 40),
    int(TrafficLightState.GREEN): (60, 220, 90), int(TrafficLightState.OFF): (120, 120, 120),
    int(TrafficLightState.UNKNOWN): (120, 120, 120),
}


def light_colour(state: TrafficLightState | int) -> Colour:
    """Panel colour of a traffic light state (grey for OFF and UNKNOWN)."""
    return _LIGHT_COLOURS.get(int(state), (120, 120, 120))


def draw_light_indicator(surface: pygame.Surface, pos: tuple[int, int], state: TrafficLightState | None,
                         distance: float | None, theme: Theme, *, size: int = 12) -> pygame.Rect:
    """A small traffic-light head (three lamps, the lit one in its colour) with the
    distance to its stop line, its top-left corner at ``pos`` [px].

    Args:
        state: the light's state, or None for "no light ahead" (all lamps dark, "--").
        distance: [m] to the stop line (None: not shown).
        size: lamp diameter [px].

    Returns:
        The rectangle drawn over.
    """
    x, y = pos
    pad = 3
    label = "--" if state is None else (TrafficLightState(int(state)).name +
                                        ("" if distance is None else f" {distance:.0f} m"))
    txt = theme.text(label, theme.font_sizes[1], theme.fg, None)
    box = pygame.Rect(x, y, size + 2 * pad + 6 + txt.get_width() + pad, 3 * size + 4 * pad)
    shade = pygame.Surface(box.size, pygame.SRCALPHA)
    shade.fill((0, 0, 0, 170))
    surface.blit(shade, box)
    lit = None if state is None else int(state)
    for k, st in enumerate((TrafficLightState.RED, TrafficLightState.YELLOW, TrafficLightState.GREEN)):
        c = light_colour(st) if lit == int(st) else tuple(v // 5 for v in light_colour(st))
        cy = y + pad + size // 2 + k * (size + pad)
        pygame.draw.circle(surface, c, (x + pad + size // 2, cy), size // 2)
    surface.blit(txt, (x + size + 2 * pad + 6, y + (box.height - txt.get_height()) // 2))
    return box


def draw_speed_bar(surface: pygame.Surface, rect: pygame.Rect, *, speed: float, theme: Theme,
                   expert_target: float | None = None, learner_target: float | None = None,
                   vmax: float | None = None) -> None:
    """A horizontal speed bar on a panel: the ego's speed as a filled bar, the
    expert's and the learner's target speeds as ticks (their colours), with km/h
    readouts (speeds in m/s inside).

    Args:
        speed: the ego's speed [m/s].
        expert_target, learner_target: target speeds [m/s]; None or NaN: not drawn.
        vmax: bar full scale [m/s] (default: 1.25 x the largest value, at least 10 m/s,
            rounded up to 5 m/s).
    """
    def ok(v):
        return v is not None and math.isfinite(v)

    vals = [abs(speed)] + [v for v in (expert_target, learner_target) if ok(v)]
    if vmax is None:
        vmax = max(10.0, 5.0 * math.ceil(1.25 * max(vals) / 5.0))
    _frame(surface, rect, theme)
    small = theme.font_sizes[0]
    parts = [(f"v {speed * 3.6:5.1f}", theme.fg)]
    if ok(expert_target):
        parts.append((f"expert {expert_target * 3.6:5.1f}", theme.expert))
    if ok(learner_target):
        parts.append((f"learner {learner_target * 3.6:5.1f}", theme.learner))
    parts.append(("km/h", theme.dim))
    x = rect.x + 6
    for t, c in parts:
        img = theme.text(t, small, c, None)
        surface.blit(img, (x, rect.y + 3))
        x += img.get_width() + 10
    bar = pygame.Rect(rect.x + 6, rect.y + 3 + small, rect.width - 12, max(4, rect.height - small - 8))
    pygame.draw.rect(surface, theme.background, bar)
    k = bar.width / vmax
    fw = int(min(max(abs(speed), 0.0), vmax) * k)
    pygame.draw.rect(surface, theme.executed, (bar.x, bar.y + 2, fw, bar.height - 4))
    for v, c in ((expert_target, theme.expert), (learner_target, theme.learner)):
        if ok(v):
            xv = bar.x + int(min(max(v, 0.0), vmax) * k)
            pygame.draw.rect(surface, c, (xv - 2, bar.y - 2, 4, bar.height + 4))
    pygame.draw.rect(surface, theme.frame, bar, 1)
