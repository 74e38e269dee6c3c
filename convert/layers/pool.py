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
