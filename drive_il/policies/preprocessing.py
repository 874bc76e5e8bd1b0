"""Camera-frame preprocessing, defined once for training and driving.

The same frozen :class:`PreprocessConfig` is used by the training dataset transform
(:mod:`drive_il.training.augment`), by the driving policy
(:class:`drive_il.policies.driver.PolicyDriver`) and is stored inside every checkpoint
(``config.json``), so a policy always sees its frames exactly as it was trained on them.

Pipeline (pure, no state):

1. **crop** ``crop_top`` rows off the top (sky) and ``crop_bottom`` rows off the bottom
   (bonnet) of the camera frame, given as fractions of the frame height
   (``crop_units = "fraction"``) or in pixels (``crop_units = "px"``);
2. **resize** to ``height x width`` with ``cv2.resize`` (``cv2.INTER_AREA`` by default:
   the right filter for shrinking; a frame already of that size is not touched);
3. **colour**: ``"yuv"`` (``cv2.COLOR_RGB2YUV``, DAVE-2: Bojarski et al. 2016 feed YUV
   planes), ``"rgb"``, ``"gray"`` (``cv2.COLOR_RGB2GRAY``) or a single band
   ``"blue"``/``"green"``/``"red"`` (ALVINN: Pomerleau 1989 used the blue band of the
   colour camera, which gave the best road/non-road contrast).
4. output channel-first ``(C, height, width)``; values stay in [0, 255]. Normalisation
   is a fixed layer *inside* each network (DAVE-2's "normalization layer",
   ``x / 127.5 - 1``; ALVINN ``x / 255``), so it travels with the weights.

Resizing before the colour conversion is cheaper and equivalent up to rounding (the
RGB->YUV transform is affine per pixel, area resampling is a per-channel average).

Example::

    cfg = PreprocessConfig(camera="center", height=66, width=200, color_space="yuv")
    x = preprocess(frame, cfg)             # (3, 66, 200) float32 in [0, 255]
    xb = preprocess_batch(frames, cfg)     # (N, 3, 66, 200) float32
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..config import validate_fields
from ..errors import FieldError

__all__ = [
    "COLOR_SPACES",
    "PreprocessConfig",
    "crop_rows",
    "preprocess",
    "preprocess_batch",
    "preprocess_uint8",
]

#: Supported colour spaces and their channel counts.
COLOR_SPACES: dict[str, int] = {"yuv": 3, "rgb": 3, "gray": 1, "blue": 1, "green": 1, "red": 1}


@dataclass(frozen=True)
class PreprocessConfig:
    """How a camera frame becomes a network input.

    Attributes:
        camera: name of the camera (in the scenario's rig) whose frames the model reads;
            other cameras of the rig are used only as augmentation during training.
        crop_top: rows removed at the top (fraction of the frame height, or pixels).
        crop_bottom: rows removed at the bottom (fraction, or pixels).
        crop_units: ``"fraction"`` or ``"px"``.
        height: network input height [px].
        width: network input width [px].
        color_space: one of :data:`COLOR_SPACES`.
        interpolation: ``"area"`` (``cv2.INTER_AREA``) or ``"linear"`` (``cv2.INTER_LINEAR``).

    Raises:
        FieldError: (a ValueError) a value out of range, crops that leave no rows.
    """

    camera: str = "center"
    crop_top: float = field(default=0.0, metadata={"range": (0.0, 4096.0)})
    crop_bottom: float = field(default=0.0, metadata={"range": (0.0, 4096.0)})
    crop_units: str = field(default="fraction", metadata={"choices": ("fraction", "px")})
    height: int = field(default=66, metadata={"range": (4, 1024)})
    width: int = field(default=200, metadata={"range": (4, 1024)})
    color_space: str = field(default="yuv", metadata={"choices": tuple(COLOR_SPACES)})
    interpolation: str = field(default="area", metadata={"choices": ("area", "linear")})

    def __post_init__(self) -> None:
        validate_fields(self)
        if self.crop_units == "fraction" and self.crop_top + self.crop_bottom >= 1.0:
            raise FieldError("PreprocessConfig", "crop_bottom",
                             f"crop_top + crop_bottom must be < 1 (fractions of the height), got "
                             f"{self.crop_top} + {self.crop_bottom}")
        if self.crop_units == "px" and (self.crop_top != int(self.crop_top) or self.crop_bottom != int(self.crop_bottom)):
            raise FieldError("PreprocessConfig", "crop_top",
                             f"crop_top/crop_bottom in px must be whole numbers, got {self.crop_top}, {self.crop_bottom}")

    @property
    def channels(self) -> int:
        """Number of input channels C."""
        return COLOR_SPACES[self.color_space]

    @property
    def shape(self) -> tuple[int, int, int]:
        """Network input shape (C, height, width)."""
        return (self.channels, self.height, self.width)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (stored in checkpoints)."""
        return {
            "camera": self.camera, "crop_top": self.crop_top, "crop_bottom": self.crop_bottom,
            "crop_units": self.crop_units, "height": self.height, "width": self.width,
            "color_space": self.color_space, "interpolation": self.interpolation,
        }


def crop_rows(frame_height: int, cfg: PreprocessConfig) -> tuple[int, int]:
    """The row range [top, bottom) kept from a frame of ``frame_height`` rows.

    Raises:
        ValueError: the crop leaves no rows.
    """
    if cfg.crop_units == "fraction":
        top = int(round(cfg.crop_top * frame_height))
        bottom = frame_height - int(round(cfg.crop_bottom * frame_height))
    else:
        top = int(cfg.crop_top)
        bottom = frame_height - int(cfg.crop_bottom)
    if bottom - top < 1:
        raise ValueError(f"crop {cfg.crop_top}/{cfg.crop_bottom} ({cfg.crop_units}) leaves no rows "
                         f"of a {frame_height}-row frame")
    return top, bottom


def _interp(cfg: PreprocessConfig) -> int:
    import cv2
    return cv2.INTER_AREA if cfg.interpolation == "area" else cv2.INTER_LINEAR


def preprocess_uint8(image: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """Crop, resize and convert one RGB frame; uint8 output (cheap to batch and cache).

    Args:
        image: (H, W, 3) uint8 RGB frame.
        cfg: the preprocessing.

    Returns:
        (C, height, width) uint8, C = ``cfg.channels``.

    Raises:
        ValueError: not an (H, W, 3) uint8 image, or a crop that leaves no rows.
    """
    import cv2

    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {image.shape} {image.dtype}")
    top, bottom = crop_rows(image.shape[0], cfg)
    img = image[top:bottom]
    if img.shape[0] != cfg.height or img.shape[1] != cfg.width:
        img = cv2.resize(img, (cfg.width, cfg.height), interpolation=_interp(cfg))
    cs = cfg.color_space
    if cs == "yuv":
        img = cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2YUV)
    elif cs == "gray":
        return cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2GRAY)[None]
    elif cs in ("red", "green", "blue"):
        return np.ascontiguousarray(img[:, :, ("red", "green", "blue").index(cs)])[None]
    return np.ascontiguousarray(img.transpose(2, 0, 1))  # (3, h, w)


def preprocess(image: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """As :func:`preprocess_uint8`, as float32 in [0, 255] (the network input).

    Returns:
        (C, height, width) float32.
    """
    return preprocess_uint8(image, cfg).astype(np.float32)


def preprocess_batch(images: np.ndarray | Sequence[np.ndarray], cfg: PreprocessConfig,
                     *, dtype: Any = np.float32) -> np.ndarray:
    """Preprocess a batch of frames.

    Args:
        images: (N, H, W, 3) uint8 array or a sequence of (H, W, 3) frames.
        cfg: the preprocessing.
        dtype: output dtype (float32 by default, uint8 to keep bytes small).

    Returns:
        (N, C, height, width) array of ``dtype``.
    """
    n = len(images)
    out = np.empty((n, *cfg.shape), dtype=dtype)
    for i in range(n):
        out[i] = preprocess_uint8(images[i], cfg)
    return out
