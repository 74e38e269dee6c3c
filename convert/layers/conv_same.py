"""Conv2d that pads like TF's SAME for whatever input size arrives (the extra pixel after, never before), and
Conv2d after constant pads (a source's explicit pad, at every size)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from convert.model.spec import tf_same_pads


class Conv2dPadded(nn.Conv2d):
    """Conv2d after constant zero pads (top, bottom, left, right), whatever the input size: an explicit pad
    in the source (Keras's ZeroPadding2D) where the source's input size is open. Same state dict as Conv2d."""

    def __init__(self, *args, pads: tuple[int, int, int, int], **kwargs) -> None:
        super().__init__(*args, padding=0, **kwargs)
        self.pads = tuple(int(p) for p in pads)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t, b, left, r = self.pads
        return super().forward(F.pad(x, (left, r, t, b)))

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, pads={self.pads}"


class Conv2dSame(nn.Conv2d):
    """Conv2d that pads like TF's SAME for whatever input size arrives (extra pixel after)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (kh, kw), (sh, sw) = self.kernel_size, self.stride
        t, b = tf_same_pads(x.shape[-2], kh, sh)
        left, r = tf_same_pads(x.shape[-1], kw, sw)
        return super().forward(F.pad(x, (left, r, t, b)))
