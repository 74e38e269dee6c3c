"""BatchNorm statistics for randomly initialised backbones, so they behave like trained ones.

torchvision's MobileNetV2 at random init, in eval mode (running mean 0, variance 1), shrinks its
activations layer after layer: its pooled features come out around 1e-10, and a head on them trains
on rounding noise. A trained network's running statistics describe the data it was trained on.
Estimating them on smooth random images in [-1, 1] (TF's input range) gives a random network that
state — statistics of a different input distribution than a nose dataset fed ImageNet-normalised,
which is exactly the situation of a ported TF backbone.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from backbones.bn import bn_layers


def smooth_images(n: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """Images in [-1, 1] with spatial structure (upsampled noise), not white noise."""
    coarse = torch.rand(n, 3, max(size // 8, 2), max(size // 8, 2), generator=generator) * 2 - 1
    return F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)


@torch.no_grad()
def calibrate_bn(model: nn.Module, *, size: int, seed: int = 0, batches: int = 4, batch: int = 16) -> None:
    """Set every BN's running statistics to their average over smooth [-1, 1] images (weights untouched)."""
    layers = bn_layers(model)
    saved = [(m.momentum, m.training) for m in layers]
    for m in layers:
        m.momentum = None  # cumulative average over the calibration batches
        m.reset_running_stats()
        m.train()
    g = torch.Generator().manual_seed(seed)
    for _ in range(batches):
        model(smooth_images(batch, size, g))
    for m, (momentum, training) in zip(layers, saved, strict=True):
        m.momentum = momentum
        m.num_batches_tracked.zero_()
        m.train(training)
