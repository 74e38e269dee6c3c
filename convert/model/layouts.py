"""TF's kernel layouts into PyTorch's, written once: each reader converts its own layout exactly here.

  TF Conv2D filter               HWIO (kH, kW, in, out)   -> Conv2d weight OIHW (out, in, kH, kW)
  TF DepthwiseConv2dNative       (kH, kW, C, multiplier)  -> Conv2d(groups=C) (C * multiplier, 1, kH, kW)
MMdnn's IR keeps TF's layouts, so its reader uses the same two functions.

  Flatten (NHWC) -> Dense        columns in (h, w, c) order    -> Linear after torch.flatten: (c, h, w) order
"""

from __future__ import annotations

import numpy as np

from convert.runtime.errors import fail


def tf_conv_kernel(w: np.ndarray) -> np.ndarray:
    """HWIO -> OIHW."""
    return w.transpose(3, 2, 0, 1)


def tf_depthwise_kernel(w: np.ndarray, where: str, name: str) -> np.ndarray:
    """(kH, kW, C, 1) -> (C, 1, kH, kW); a channel multiplier other than 1 is refused (no backbone tfport
    supports uses one)."""
    if w.shape[3] != 1:
        raise fail(f"{where}: depthwise '{name}' has channel multiplier {w.shape[3]}, MobileNetV2 uses 1")
    return w.transpose(2, 3, 0, 1)


def flatten_columns(weight: np.ndarray, chw: tuple[int, int, int], src: str, dst: str) -> np.ndarray:
    """A Dense weight (out, C*H*W) that reads a map flattened in order `src` ("NHWC" | "NCHW"), with its
    columns permuted to read the same map flattened in order `dst`: the same function, another layout."""
    c, h, w = chw
    if weight.ndim != 2 or weight.shape[1] != c * h * w:
        raise ValueError(f"dense weight {weight.shape} does not read a flattened {c}x{h}x{w} map")
    if src == dst:
        return weight
    axes = {"NHWC": (h, w, c), "NCHW": (c, h, w)}
    to = {("NHWC", "NCHW"): (0, 3, 1, 2), ("NCHW", "NHWC"): (0, 2, 3, 1)}[(src, dst)]
    return np.ascontiguousarray(weight.reshape(weight.shape[0], *axes[src]).transpose(to).reshape(weight.shape[0], -1))
