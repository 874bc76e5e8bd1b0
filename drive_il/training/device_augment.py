"""Training augmentation and preprocessing done batched on the training device.

On a GPU a small network such as DAVE-2 (66x200 input) trains at tens of thousands of
samples per second, and the per-sample numpy/OpenCV image work of
:class:`~drive_il.training.augment.SampleTransform` in the DataLoader workers becomes
the limit. With ``SampleTransform(..., defer_image_ops=True)`` the workers only draw
the random numbers (the same draws, in the same order, so the labels are the same as
on the CPU path) and compute the corrected labels; :class:`DeviceAugment` then does the
image work on the whole collated batch wherever it lies (GPU or CPU), in this order,
following the same formulas as :mod:`drive_il.training.augment` (DAVE-2, Bojarski et
al. 2016, arXiv:1604.07316: viewpoint transform with flat ground below the horizon and
infinitely far points above it; photometric changes as in common DAVE-2
reproductions) and :mod:`drive_il.policies.preprocessing`:

1. **viewpoint warp**: one ``torch.nn.functional.grid_sample`` (bilinear, border
   replicated, ``align_corners=True`` for the pixel index convention) whose sampling
   grid maps each output pixel through the sky homography above the horizon row and
   the ground homography below it (``viewpoint_homographies``), as the two
   ``cv2.warpPerspective`` calls of ``warp_viewpoint`` do; only the rows kept by the
   crop are computed;
2. **brightness** and **shadow**: elementwise, the same float32 arithmetic as the
   lookup tables of ``random_brightness``/``random_shadow`` (``floor(x * f + 0.5)``,
   saturated); the shadow's side of the line is decided per pixel from the line's
   rounded end points (``cv2.fillPoly``'s rasterisation is approximated);
3. **crop** (``crop_rows``) and **resize**: per axis, a weighted sum of a few source
   rows/columns with the weights of ``cv2.resize`` (``INTER_AREA``: the exact area
   overlaps when shrinking, OpenCV's two-tap rule when an axis grows; ``INTER_LINEAR``:
   bilinear with half-pixel centres). ``F.interpolate(mode="area")`` is adaptive
   average pooling, which differs from OpenCV for non-integer factors (e.g. ALVINN's
   56x200 -> 30x32), and a matrix product could run in TF32 on a GPU, hence the
   explicit taps (elementwise, float32);
4. **colour**: OpenCV's fixed-point ``RGB2YUV`` / ``RGB2GRAY`` formulas (14/15-bit
   coefficients), exact in float32, or a band;
5. **mirror** (``aug_flip``): the frames to mirror flipped left to right (the labels
   were mirrored by the transform).

Every stage is rounded to whole grey levels like the uint8 CPU path, so the output is
the (B, C, h, w) float32 batch in [0, 255] with whole values that ``preprocess_uint8``
produces (the network's own normalisation is unchanged).

How close to the CPU path (``tests/training/test_device_augment.py``; random blurred
frames, OpenCV 5.0, figures in grey levels over 256 frames: mean |diff|, 99th
percentile, max, share of values that differ):

* DAVE-2 (66x200 camera, YUV, no resize; also the 88x200 camera cropped to 66 rows):
  no augmentation and brightness only: identical; viewpoint only: 0.001, 0, 1, 0.1 %
  (float bilinear vs OpenCV's); shadow only: 0.03, 0, 87, 0.13 % (pixels on the
  shadow's edge, where ``cv2.fillPoly``'s rasterisation and the per-pixel rule
  disagree); all: 0.03, 0, 108, 0.2 %; a batch of mixed augmentations: 0.007, 0, 95,
  0.08 %.
* with a resize: ALVINN (56x200 -> 30x32 area, blue): 0.002, 0, 1 without augmentation,
  0.08, 3, 26 with all of them (edge pixels averaged in); ``"linear"`` resizes and
  ``"area"`` growing an axis: 1 grey level on 11-13 % of the values (OpenCV's
  fixed-point uint8 weights), mean 0.11-0.21.

On a CUDA GPU (H200, torch 2.11) the output equals the CPU torch output bit for bit,
TF32 on or off, and a batch of 256 DAVE-2 frames with every augmentation takes 1.5 ms
(about 170 000 samples/s; 1024 frames: 3.7 ms), against about 2 400 samples/s per
worker core for the CPU path (4 700 for the deferred transform, which still draws the
numbers and computes the labels). On a CPU the batched path is slower than the
per-sample one: use it with an accelerator.

Use::

    transform, dev_aug = make_train_transform(preset.preprocessing, preset.augmentation,
                                              rig=rig, reference=reference, on_device=True)
    ...                                    # DataLoader workers run `transform`
    batch = {k: v.to(device) for k, v in batch.items()}
    batch = dev_aug(batch)                 # batch["image"]: (B, C, h, w) float32 in [0, 255]
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping

import numpy as np
import torch
import torch.nn.functional as F

from ..camera import PinholeCamera
from ..policies.preprocessing import PreprocessConfig, crop_rows
from ..policies.presets import AugmentConfig
from .augment import SampleTransform

__all__ = ["AUG_KEYS", "DeviceAugment", "make_train_transform", "resize_taps"]

log = logging.getLogger(__name__)

#: The parameter keys of a deferred :class:`SampleTransform`, consumed by :class:`DeviceAugment`.
AUG_KEYS = ("aug_homography", "aug_horizon", "aug_brightness", "aug_shadow", "aug_flip")

_INTERPOLATIONS = ("area", "linear")
_COLOURS = ("yuv", "rgb", "gray", "red", "green", "blue")


def resize_taps(n_in: int, n_out: int, interpolation: str, *, area_path: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """The weights of ``cv2.resize`` along one axis, as taps.

    Args:
        n_in: source size [px].
        n_out: output size [px].
        interpolation: ``"area"`` or ``"linear"``.
        area_path: for ``"area"``: OpenCV averages exact area overlaps only when neither
            axis grows (``scale_x >= 1 and scale_y >= 1``); otherwise it uses a two-tap
            rule on both axes (pass False).

    Returns:
        (index, weight): (n_out, K) int64 source indices and float64 weights; output
        pixel i is ``sum_k weight[i, k] * source[index[i, k]]``.
    """
    scale = n_in / n_out
    rows: list[list[tuple[int, float]]] = []
    if interpolation == "area" and area_path:
        for i in range(n_out):
            a = i * scale
            b = min(a + scale, float(n_in))
            cell = b - a
            taps = []
            for j in range(math.floor(a), min(math.ceil(b), n_in)):
                w = min(b, j + 1.0) - max(a, float(j))
                if w > 1e-9:
                    taps.append((j, w / cell))
            rows.append(taps)
    else:
        inv = n_out / n_in
        for i in range(n_out):
            if interpolation == "area":
                sx = math.floor(i * scale)
                fx = (i + 1) - (sx + 1) * inv
                fx = 0.0 if fx <= 0 else fx - math.floor(fx)
            else:
                fx = (i + 0.5) * scale - 0.5
                sx = math.floor(fx)
                fx -= sx
            if sx < 0:
                sx, fx = 0, 0.0
            if sx >= n_in - 1:
                sx, fx = n_in - 1, 0.0
            rows.append([(sx, 1.0 - fx)] + ([(sx + 1, fx)] if fx > 0 else []))
    k = max(len(r) for r in rows)
    index = np.zeros((n_out, k), np.int64)
    weight = np.zeros((n_out, k), np.float64)
    for i, taps in enumerate(rows):
        for t, (j, w) in enumerate(taps):
            index[i, t], weight[i, t] = j, w
    return index, weight


def _round(x: torch.Tensor) -> torch.Tensor:
    """Saturate to [0, 255] and round half up (OpenCV's fixed-point descaling); the small
    offset keeps a tie that float32 computed a hair low a tie."""
    return torch.floor(x.clamp(0.0, 255.0) + (0.5 + 1e-3)).clamp_(max=255.0)


def _lut(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """``_scale_lut`` of augment.py applied to whole grey levels: floor(clip(x f + 0.5))."""
    return torch.floor((x * factor + 0.5).clamp(0.0, 255.0))


class DeviceAugment(torch.nn.Module):
    """Viewpoint warp, brightness, shadow, crop, resize and colour conversion of a
    collated batch, on the batch's device (module doc).

    Args:
        preprocessing: the model's preprocessing (checked with :meth:`supports`).

    Raises:
        ValueError: a preprocessing that :meth:`supports` refuses.
    """

    def __init__(self, preprocessing: PreprocessConfig) -> None:
        super().__init__()
        ok, why = self.supports(preprocessing)
        if not ok:
            raise ValueError(f"DeviceAugment cannot reproduce this preprocessing: {why}")
        self.preprocessing = preprocessing
        self._taps: dict[tuple, tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]] = {}

    @staticmethod
    def supports(preprocessing: PreprocessConfig) -> tuple[bool, str]:
        """(True, "") when :class:`DeviceAugment` reproduces ``preprocessing``, else
        (False, the reason) and the caller keeps the CPU path."""
        if preprocessing.color_space not in _COLOURS:
            return False, f"colour space {preprocessing.color_space!r} has no device implementation"
        if preprocessing.interpolation not in _INTERPOLATIONS:
            return False, f"interpolation {preprocessing.interpolation!r} has no device implementation"
        return True, ""

    def _resize_taps(self, h_in: int, w_in: int, device: torch.device):
        cfg = self.preprocessing
        key = (h_in, w_in, str(device))
        if key not in self._taps:
            area_path = h_in >= cfg.height and w_in >= cfg.width
            iy, wy = resize_taps(h_in, cfg.height, cfg.interpolation, area_path=area_path)
            ix, wx = resize_taps(w_in, cfg.width, cfg.interpolation, area_path=area_path)
            self._taps[key] = (torch.from_numpy(iy).to(device), torch.from_numpy(wy).float().to(device),
                               torch.from_numpy(ix).to(device), torch.from_numpy(wx).float().to(device))
        return self._taps[key]

    @staticmethod
    def _apply_taps(x: torch.Tensor, index: torch.Tensor, weight: torch.Tensor, dim: int) -> torch.Tensor:
        n_out, k = index.shape
        g = x.index_select(dim, index.reshape(-1))                 # (..., n_out * k, ...)
        shape = list(x.shape)
        shape[dim:dim + 1] = [n_out, k]
        g = g.reshape(shape)
        wshape = [1] * len(shape)
        wshape[dim], wshape[dim + 1] = n_out, k
        return (g * weight.reshape(wshape)).sum(dim + 1)

    @staticmethod
    def _warp(img: torch.Tensor, hom: torch.Tensor, horizon: torch.Tensor, top: int, bottom: int) -> torch.Tensor:
        """Rows [top, bottom) of the viewpoint-warped (B, 3, H, W) float frames."""
        _, _, h, w = img.shape
        dev = img.device
        u = torch.arange(w, device=dev, dtype=torch.float32)[None, None, :]           # (1, 1, W)
        v = torch.arange(top, bottom, device=dev, dtype=torch.float32)[None, :, None]  # (1, hc, 1)
        hm = hom.float()
        ground = (v[..., 0] >= horizon.float()[:, None])[:, :, None, None]          # (B, hc, 1, 1)
        hr = torch.where(ground, hm[:, None, 0], hm[:, None, 1])                     # (B, hc, 3, 3)
        # output pixel (u, v) -> source (x, y): elementwise, no matmul (TF32-safe)
        q = [hr[:, :, i, 0, None] * u + hr[:, :, i, 1, None] * v + hr[:, :, i, 2, None] for i in range(3)]
        z = torch.where(q[2].abs() < 1e-12, torch.full_like(q[2], 1e-12), q[2])
        x = (q[0] / z).clamp(-2.0, w + 1.0)
        y = (q[1] / z).clamp(-2.0, h + 1.0)
        grid = torch.stack([x * (2.0 / max(w - 1, 1)) - 1.0, y * (2.0 / max(h - 1, 1)) - 1.0], -1)
        out = F.grid_sample(img, grid, mode="bilinear", padding_mode="border", align_corners=True)
        return _round(out)

    @torch.no_grad()
    def forward(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The batch with ``image`` augmented and preprocessed.

        Args:
            batch: a collated batch of a deferred :class:`SampleTransform` (``image``
                (B, 3, H, W) uint8 raw frames and the ``aug_*`` parameters; without
                them the frames are only preprocessed), on any device.

        Returns:
            a new dict: ``image`` (B, C, h, w) float32 in [0, 255] (whole values), the
            other entries as given, the ``aug_*`` entries removed.

        Raises:
            ValueError: not a (B, 3, H, W) image batch, or a crop that leaves no rows.
        """
        cfg = self.preprocessing
        raw = batch["image"]
        if raw.ndim != 4 or raw.shape[1] != 3:
            raise ValueError(f"expected a (B, 3, H, W) batch of raw frames, got {tuple(raw.shape)}")
        b, _, h, w = raw.shape
        dev = raw.device
        top, bottom = crop_rows(h, cfg)
        img = raw.float()
        hom = batch.get("aug_homography")
        if hom is not None:
            eye = torch.eye(3, device=dev, dtype=hom.dtype)
            warped = (hom != eye).flatten(1).any(1)                   # (B,)
            out = self._warp(img, hom, batch["aug_horizon"], top, bottom)
            img = torch.where(warped[:, None, None, None], out, img[:, :, top:bottom])
        else:
            img = img[:, :, top:bottom]
        bright = batch.get("aug_brightness")
        if bright is not None:
            img = _lut(img, bright.float().reshape(b, 1, 1, 1))
        shadow = batch.get("aug_shadow")
        if shadow is not None:
            s = shadow.float()
            x0 = torch.floor(s[:, 0] + 0.5)[:, None, None]
            x1 = torch.floor(s[:, 1] + 0.5)[:, None, None]
            rows = torch.arange(top, bottom, device=dev, dtype=torch.float32)[None, :, None]
            cols = torch.arange(w, device=dev, dtype=torch.float32)[None, None, :]
            xl = x0 + (x1 - x0) * rows / float(h)                    # the line at each row
            right = s[:, 3][:, None, None] > 0.5
            mask = torch.where(right, cols >= torch.ceil(xl - 0.5), cols <= torch.floor(xl + 0.5))
            mask = mask & (s[:, 2] != 1.0)[:, None, None]
            img = torch.where(mask[:, None], _lut(img, s[:, 2].reshape(b, 1, 1, 1)), img)
        if img.shape[2] != cfg.height or img.shape[3] != cfg.width:
            iy, wy, ix, wx = self._resize_taps(img.shape[2], w, dev)
            img = self._apply_taps(img, iy, wy, 2)
            img = _round(self._apply_taps(img, ix, wx, 3))
        img = self._colour(img)
        flip = batch.get("aug_flip")
        if flip is not None:
            img = torch.where((flip > 0.5).reshape(b, 1, 1, 1), img.flip(3), img)
        out = {k: v for k, v in batch.items() if k not in AUG_KEYS}
        out["image"] = img
        return out

    def _colour(self, img: torch.Tensor) -> torch.Tensor:
        """RGB (B, 3, h, w) whole grey levels -> (B, C, h, w), OpenCV's uint8 formulas
        (integer arithmetic, exact in float32)."""
        cs = self.preprocessing.color_space
        r, g, b = img[:, 0:1], img[:, 1:2], img[:, 2:3]
        if cs == "yuv":   # cv2 RGB2YUV: 14-bit coefficients, U and V from the rounded Y
            y = torch.floor((r * 4899.0 + g * 9617.0 + b * 1868.0 + 8192.0) / 16384.0)
            u = torch.floor(((b - y) * 8061.0 + (128.0 * 16384.0 + 8192.0)) / 16384.0)
            v = torch.floor(((r - y) * 14369.0 + (128.0 * 16384.0 + 8192.0)) / 16384.0)
            return torch.cat([y, u, v], 1).clamp_(0.0, 255.0)
        if cs == "gray":  # cv2 RGB2GRAY: 15-bit coefficients
            return torch.floor((r * 9798.0 + g * 19235.0 + b * 3735.0 + 16384.0) / 32768.0).clamp_(0.0, 255.0)
        if cs in ("red", "green", "blue"):
            return img[:, ("red", "green", "blue").index(cs)][:, None].contiguous()
        return img.contiguous()


def make_train_transform(preprocessing: PreprocessConfig, augmentation: AugmentConfig | None, *,
                         rig: Mapping[str, PinholeCamera] | None = None,
                         reference: tuple[float, float] = (0.0, 0.0),
                         on_device: bool = False) -> tuple[SampleTransform, DeviceAugment | None]:
    """The training transform, with the image work on the device or not.

    Returns:
        (transform, dev_aug): with ``on_device`` False, today's
        :class:`SampleTransform` and None; with True, a deferred transform
        (``defer_image_ops=True``) and the :class:`DeviceAugment` to apply to each
        collated batch after it is moved to the device (``batch = dev_aug(batch)``).
        When :meth:`DeviceAugment.supports` refuses the preprocessing, a warning is
        logged and the CPU path is returned (dev_aug None).
    """
    if on_device:
        ok, why = DeviceAugment.supports(preprocessing)
        if ok:
            return (SampleTransform(preprocessing, augmentation, rig=rig, reference=reference, defer_image_ops=True),
                    DeviceAugment(preprocessing))
        log.warning("augmentation stays on the CPU: %s", why)
    return SampleTransform(preprocessing, augmentation, rig=rig, reference=reference), None
