"""TF's kernel layouts into PyTorch's, written once: each reader converts its own layout exactly here.

  TF Conv2D filter               HWIO (kH, kW, in, out)   -> Conv2d weight OIHW (out, in, kH, kW)
  TF DepthwiseConv2dNative       (kH, kW, C, multiplier)  -> Conv2d(groups=C) (C * multiplier, 1, kH, kW)
MMdnn's IR keeps TF's layouts, so its reader uses the same two functions.
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
