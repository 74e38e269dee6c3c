"""Seeded probe inputs: the images every conversion check and every parity point is measured on."""

from __future__ import annotations

import numpy as np


def probe_inputs(n: int, hw: tuple[int, int], value_range: tuple[float, float] = (-1.0, 1.0),
                 seed: int | np.random.Generator = 0) -> np.ndarray:
    """NHWC float32 images in the source's input range: smooth structure (upsampled coarse noise) plus
    pixel noise — not white noise, so every layer sees image-like statistics. The inputs every check
    compares on, and the batch the sample models' BN statistics are calibrated on (convert.sample).
    `seed` may be a Generator, whose stream the draws then continue."""
    rng = np.random.default_rng(seed)  # a Generator is returned as it is
    h, w = hw
    coarse = rng.uniform(-1, 1, (n, max(h // 8, 2), max(w // 8, 2), 3)).astype(np.float32)
    ys = np.linspace(0, coarse.shape[1] - 1, h).round().astype(int)
    xs = np.linspace(0, coarse.shape[2] - 1, w).round().astype(int)
    img = rng.standard_normal((n, h, w, 3), dtype=np.float32)  # float32 throughout: 6x faster than float64
    img *= 0.15
    img += coarse[:, ys][:, :, xs]
    np.clip(img, -1, 1, out=img)
    lo, hi = value_range
    img += 1
    img *= (hi - lo) / 2
    img += lo
    return img
