"""What a model does to its input before the first convolution, fitted from its values: x * scale + offset."""

from __future__ import annotations

import numpy as np


def affine_fit(x: np.ndarray, y0: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(offset, scale) per channel where y = x * scale + offset at every pixel, else None. offset = f(0);
    scale is the least-squares slope of f(x) - f(0) over the image x (values up to 256): f(1) - f(0) loses
    float32's digits (a Normalization's ~(1 - 127.5) / 127 - (-127.5 / 127): ~3e-6 relative off, which 52
    layers grow past a port's 1e-5); the slope over the whole range keeps them."""
    if y.shape != x.shape:
        return None
    offset = y0[0, 0, 0]
    dx = x.astype(np.float64).reshape(-1, x.shape[-1])
    dy = (y - offset).reshape(-1, y.shape[-1])
    scale = (dx * dy).sum(0) / np.maximum((dx * dx).sum(0), 1e-30)
    fit = x.astype(np.float64) * scale + offset
    return (offset, scale) if np.abs(fit - y).max() <= 1e-5 * max(np.abs(y).max(), 1.0) else None
