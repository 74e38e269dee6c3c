"""The source's input affine as a torch module: x * scale + offset per channel, NCHW."""

from __future__ import annotations

import torch
from torch import nn


class ChannelAffine(nn.Module):
    """x * scale + offset per channel (NCHW). Values come from the metadata, so they are not state."""

    def __init__(self, scale: list[float], offset: list[float]) -> None:
        super().__init__()
        self.register_buffer("scale", torch.tensor(scale, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("offset", torch.tensor(offset, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale + self.offset

    def extra_repr(self) -> str:
        return f"scale={self.scale.flatten().tolist()}, offset={self.offset.flatten().tolist()}"
