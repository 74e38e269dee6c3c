"""Conv2d that pads like TF's SAME for whatever input size arrives: the extra pixel after, never before."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from convert.model.spec import tf_same_pads


class Conv2dSame(nn.Conv2d):
    """Conv2d that pads like TF's SAME for whatever input size arrives (extra pixel after)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (kh, kw), (sh, sw) = self.kernel_size, self.stride
        t, b = tf_same_pads(x.shape[-2], kh, sh)
        left, r = tf_same_pads(x.shape[-1], kw, sw)
        return super().forward(F.pad(x, (left, r, t, b)))
