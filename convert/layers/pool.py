"""Keras's global pooling layers as a torch module."""

from __future__ import annotations

import torch
from torch import nn


class GlobalPool(nn.Module):
    """Keras's GlobalAveragePooling2D / GlobalMaxPooling2D: (N, C, H, W) -> (N, C)."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        if kind not in ("avg", "max"):
            raise ValueError(f"unknown pooling {kind!r}; known: avg, max")
        self.kind = kind

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x.mean((2, 3)) if self.kind == "avg" else x.amax((2, 3)))

    def extra_repr(self) -> str:
        return self.kind


class Flatten(nn.Module):
    """Keras's Flatten before a Dense, in the order the Dense's columns are laid out: "NCHW" is torchvision's
    `torch.flatten(x, 1)` (a canonical port's, its first Dense's columns permuted to it); "NHWC" is TF's
    own order, (N, C, H, W) read as (N, H, W, C)."""

    def __init__(self, order: str = "NCHW") -> None:
        super().__init__()
        if order not in ("NCHW", "NHWC"):
            raise ValueError(f"unknown flatten order {order!r}; known: NCHW, NHWC")
        self.order = order

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(x if self.order == "NCHW" else x.permute(0, 2, 3, 1), 1)

    def extra_repr(self) -> str:
        return self.order


def pooling(kind: str | None, flatten_order: str = "NCHW") -> nn.Module | None:
    """The module between a backbone and its head, as a port's head plan names it (None: no pooling)."""
    if kind is None:
        return None
    return Flatten(flatten_order) if kind == "flatten" else GlobalPool(kind)
