"""Saving the overlay: PNG frames, an animated GIF, TensorBoard images.

* PNG: one file per presented frame, ``DIR/overlay_000123.png`` (``pygame.image.save``).
* GIF: every ``gif_every``-th frame, downscaled by ``gif_scale``, written with Pillow
  when the recorder is closed.
* TensorBoard: :func:`log_overlay_image` calls ``SummaryWriter.add_image`` with an
  (H, W, 3) uint8 array (``dataformats="HWC"``). ``add_video`` is not used: it logs
  nothing with moviepy 2.x (pytorch#147317).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pygame

__all__ = ["ScreenRecorder", "surface_to_array", "log_overlay_image", "write_gif"]

log = logging.getLogger(__name__)


def surface_to_array(surface: "pygame.Surface") -> np.ndarray:
    """The surface as an (H, W, 3) uint8 RGB array (a copy; ``pygame.image.tobytes``,
    several times faster than ``surfarray.array3d``)."""
    w, h = surface.get_size()
    return np.frombuffer(pygame.image.tobytes(surface, "RGB"), np.uint8).reshape(h, w, 3).copy()


def log_overlay_image(writer: Any, tag: str, surface: "pygame.Surface", step: int) -> None:
    """Log the overlay to TensorBoard as an image.

    Args:
        writer: a ``torch.utils.tensorboard.SummaryWriter`` (anything with ``add_image``).
        tag: e.g. "overlay/episode_3".
        surface: the overlay surface (``Overlay.surface``).
        step: global step.
    """
    writer.add_image(tag, surface_to_array(surface), step, dataformats="HWC")


def write_gif(path: str | Path, frames: list[np.ndarray], *, fps: float = 10.0) -> Path:
    """Write (H, W, 3) uint8 frames as an animated GIF (Pillow, looping).

    Raises:
        ValueError: no frames.
    """
    from PIL import Image

    if not frames:
        raise ValueError("write_gif: no frames")
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    imgs = [Image.fromarray(f).convert("P", palette=Image.Palette.ADAPTIVE, colors=128) for f in frames]
    imgs[0].save(p, save_all=True, append_images=imgs[1:], duration=int(round(1000.0 / fps)),
                 loop=0, optimize=False)
    return p


class ScreenRecorder:
    """Saves presented overlay frames as PNG files and/or an animated GIF.

    Args:
        png_dir: folder for ``overlay_NNNNNN.png`` (created), or None; NNNNNN counts
            presented frames.
        png_every: save every n-th presented frame as PNG (a 1280x720 PNG costs
            tens of milliseconds).
        gif: GIF file written by :meth:`close`, or None.
        gif_every: keep every n-th frame for the GIF.
        gif_scale: downscale factor of GIF frames.
        gif_fps: GIF playback rate.
        max_gif_frames: the GIF keeps at most this many frames (the first ones).
    """

    def __init__(self, *, png_dir: str | Path | None = None, png_every: int = 1, gif: str | Path | None = None,
                 gif_every: int = 2, gif_scale: float = 0.5, gif_fps: float = 10.0,
                 max_gif_frames: int = 600) -> None:
        self.png_dir = Path(png_dir) if png_dir is not None else None
        if self.png_dir is not None:
            self.png_dir.mkdir(parents=True, exist_ok=True)
        self.png_every = max(1, int(png_every))
        self.gif = Path(gif) if gif is not None else None
        self.gif_every = max(1, int(gif_every))
        self.gif_scale = float(gif_scale)
        self.gif_fps = float(gif_fps)
        self.max_gif_frames = int(max_gif_frames)
        self.frames_seen = 0
        self.saved: list[Path] = []
        self._gif_frames: list[np.ndarray] = []

    def add(self, surface: "pygame.Surface") -> None:
        """Record one presented frame."""
        if self.png_dir is not None and self.frames_seen % self.png_every == 0:
            p = self.png_dir / f"overlay_{self.frames_seen:06d}.png"
            pygame.image.save(surface, str(p))
            self.saved.append(p)
        if self.gif is not None and self.frames_seen % self.gif_every == 0 \
                and len(self._gif_frames) < self.max_gif_frames:
            w, h = surface.get_size()
            small = pygame.transform.smoothscale(surface, (max(1, int(w * self.gif_scale)),
                                                           max(1, int(h * self.gif_scale))))
            self._gif_frames.append(surface_to_array(small))
        self.frames_seen += 1

    def close(self) -> Path | None:
        """Write the GIF (if asked for and any frame was seen); returns its path."""
        out = None
        if self.gif is not None and self._gif_frames:
            out = write_gif(self.gif, self._gif_frames, fps=self.gif_fps)
            log.info("wrote %s (%d frames)", out, len(self._gif_frames))
            self._gif_frames = []
        return out
