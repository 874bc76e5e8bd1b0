"""Preprocessing: crop, resize (INTER_AREA), colour space; one function for training
and driving."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from drive_il.policies.preprocessing import (
    PreprocessConfig,
    crop_rows,
    preprocess,
    preprocess_batch,
    preprocess_uint8,
)


def _frame(h=120, w=320, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def test_dave2_crop_resize_yuv_matches_cv2_reference():
    img = _frame()
    cfg = PreprocessConfig(crop_top=0.25, crop_bottom=0.125, height=66, width=200, color_space="yuv")
    out = preprocess(img, cfg)
    assert out.shape == (3, 66, 200) and out.dtype == np.float32
    ref = cv2.cvtColor(cv2.resize(img[30:105], (200, 66), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2YUV)
    assert np.array_equal(out, ref.transpose(2, 0, 1).astype(np.float32))


def test_crop_in_pixels_and_fractions_agree():
    assert crop_rows(120, PreprocessConfig(crop_top=30, crop_bottom=15, crop_units="px")) == (30, 105)
    assert crop_rows(120, PreprocessConfig(crop_top=0.25, crop_bottom=0.125)) == (30, 105)
    with pytest.raises(ValueError):
        crop_rows(20, PreprocessConfig(crop_top=15, crop_bottom=10, crop_units="px"))
    with pytest.raises(ValueError):
        PreprocessConfig(crop_top=0.6, crop_bottom=0.5)


def test_single_band_and_gray():
    img = _frame(66, 200)
    blue = preprocess_uint8(img, PreprocessConfig(height=30, width=32, color_space="blue"))
    assert blue.shape == (1, 30, 32)
    ref = cv2.resize(img, (32, 30), interpolation=cv2.INTER_AREA)[:, :, 2]
    assert np.array_equal(blue[0], ref)
    gray = preprocess_uint8(img, PreprocessConfig(height=66, width=200, color_space="gray"))
    assert gray.shape == (1, 66, 200)
    rgb = preprocess_uint8(img, PreprocessConfig(height=66, width=200, color_space="rgb"))
    assert np.array_equal(rgb, img.transpose(2, 0, 1))  # same size: untouched


def test_batch_equals_single_and_bad_input():
    cfg = PreprocessConfig()
    imgs = np.stack([_frame(66, 200, s) for s in range(3)])
    b = preprocess_batch(imgs, cfg)
    assert b.shape == (3, 3, 66, 200)
    for i in range(3):
        assert np.array_equal(b[i], preprocess(imgs[i], cfg))
    with pytest.raises(ValueError):
        preprocess(np.zeros((66, 200), np.uint8), cfg)
    with pytest.raises(ValueError):
        preprocess(np.zeros((66, 200, 3), np.float32), cfg)
