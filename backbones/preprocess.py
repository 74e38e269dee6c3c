"""Input preprocessing per backbone: which numbers the network expects for a pixel in [0, 1].

A backbone only works on inputs in the range its weights (and BN statistics) were trained on:
  - TF MobileNetV2 (and every port of it): ``x * 2 - 1``, i.e. [-1, 1]   (keras ``preprocess_input``);
  - torchvision's ImageNet models: ``(x - mean) / std`` with the ImageNet statistics.
The registry gives each backbone its own; ``--preprocess`` overrides it, e.g. ``imagenet`` to feed a
ported model the way fastai feeds every backbone (the seed experiment's setting).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from convert.runtime.errors import fail

if TYPE_CHECKING:
    import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Preprocess:
    """``(x - mean) / std`` per RGB channel, for x in [0, 1]."""

    name: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        mean = images.new_tensor(self.mean).view(1, 3, 1, 1)
        std = images.new_tensor(self.std).view(1, 3, 1, 1)
        return (images - mean) / std

    def describe(self) -> str:
        return f"{self.name} (mean {list(self.mean)}, std {list(self.std)})"


def from_range(lo: float, hi: float, name: str | None = None) -> Preprocess:
    """Map [0, 1] linearly onto [lo, hi]: x * (hi - lo) + lo == (x - mean) / std."""
    if not hi > lo:
        raise fail(f"input range [{lo}, {hi}] is empty; expected lo < hi")
    span = hi - lo
    mean, std = -lo / span + 0.0, 1.0 / span  # + 0.0: no -0.0 in messages
    return Preprocess(name or f"range[{lo:g},{hi:g}]", (mean,) * 3, (std,) * 3)


PREPROCESS: dict[str, Preprocess] = {
    "imagenet": Preprocess("imagenet", IMAGENET_MEAN, IMAGENET_STD),
    "tf": from_range(-1.0, 1.0, "tf"),  # [-1, 1], keras mobilenet_v2.preprocess_input
    "unit": from_range(0.0, 1.0, "unit"),  # [0, 1], the pixels as they are
}


def get(name: str) -> Preprocess:
    try:
        return PREPROCESS[name]
    except KeyError:
        raise fail(f"unknown preprocessing {name!r}; known: {', '.join(PREPROCESS)}") from None


def from_meta(meta: dict) -> Preprocess:
    """A ported checkpoint states its expected input range in its metadata (``input_range``)."""
    rng = meta.get("input_range")
    if not (isinstance(rng, (list, tuple)) and len(rng) == 2 and all(isinstance(v, (int, float)) for v in rng)):
        raise fail(f"checkpoint metadata has no usable input_range (got {rng!r}); expected [lo, hi]")
    lo, hi = float(rng[0]), float(rng[1])
    return PREPROCESS["tf"] if (lo, hi) == (-1.0, 1.0) else from_range(lo, hi)
