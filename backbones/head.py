"""Regression heads: backbone output -> (x, y) in normalised coordinates. One registry, three layouts.

    default  pooled -> [Linear -> BatchNorm1d -> ReLU -> Dropout] x len(hidden) -> Linear(2)
    linear   pooled -> Linear(2)
    fastai   feature map -> concat(avg, max) pool -> BatchNorm1d -> Dropout(ps/2) -> Linear(2C, 512)
             -> ReLU -> BatchNorm1d -> Dropout(ps) -> Linear(512, 2)          (fastai's create_head)

The default's groups are the user's "linear-bn-dropout" blocks; the ReLU is there because without a
nonlinearity stacked groups collapse to one affine map. fastai's head is what `vision_learner` puts on
every backbone: it pools the map itself (average and max side by side), and its Linear layers carry
no bias where a BatchNorm precedes them (fastai's LinBnDrop, bias=not bn). Every BatchNorm takes its
batch statistics over all ranks under torchrun (see backbones.dist), so data-parallel training equals
one process.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from backbones.dist import CrossRankBatchNorm1d
from backbones.head_kinds import HEAD_KINDS

OUTPUTS = 2  # (x, y)
FASTAI_HIDDEN = 512  # create_head's lin_ftrs default: [nf, 512, n_out]
FASTAI_PS = 0.5  # create_head's ps default: dropout ps/2 before the first Linear, ps before the last


class RegressionHead(nn.Sequential):
    def __init__(self, in_features: int, *, hidden: tuple[int, ...] = (512, 256), dropout: float = 0.25) -> None:
        if in_features < 1 or any(h < 1 for h in hidden):
            raise ValueError(f"layer sizes must be positive, got in_features={in_features}, hidden={hidden}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        layers: list[nn.Module] = []
        width = in_features
        for h in hidden:
            # no bias: the BatchNorm right after subtracts the batch mean, so a bias would only collect
            # gradient noise (which Adam would turn into full-size random steps)
            layers += [nn.Linear(width, h, bias=False), CrossRankBatchNorm1d(h), nn.ReLU(inplace=True),
                       nn.Dropout(dropout)]
            width = h
        layers.append(nn.Linear(width, OUTPUTS))
        super().__init__(*layers)


class LinearHead(nn.Sequential):
    def __init__(self, in_features: int) -> None:
        super().__init__(nn.Linear(in_features, OUTPUTS))


class ConcatPool(nn.Module):
    """fastai's AdaptiveConcatPool2d + Flatten: (N, C, H, W) -> (N, 2C), max first, then average."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x.amax(dim=(2, 3)), x.mean(dim=(2, 3))], dim=1)


class FastaiHead(nn.Sequential):
    def __init__(self, channels: int, *, hidden: int = FASTAI_HIDDEN, ps: float = FASTAI_PS) -> None:
        if channels < 1 or hidden < 1:
            raise ValueError(f"layer sizes must be positive, got channels={channels}, hidden={hidden}")
        nf = 2 * channels
        super().__init__(
            ConcatPool(),
            CrossRankBatchNorm1d(nf), nn.Dropout(ps / 2), nn.Linear(nf, hidden, bias=False), nn.ReLU(inplace=True),
            CrossRankBatchNorm1d(hidden), nn.Dropout(ps), nn.Linear(hidden, OUTPUTS, bias=False),
        )


@dataclass(frozen=True)
class HeadKind:
    name: str
    needs_map: bool  # the head pools the backbone's feature map itself
    build: Callable[..., nn.Module]  # (channels, hidden, dropout) -> head
    what: str


HEADS: dict[str, HeadKind] = {}


def register(kind: HeadKind) -> HeadKind:
    """One builder per name of HEAD_KINDS (the torch-free list that config and --help read)."""
    if kind.name not in HEAD_KINDS:
        raise ValueError(f"head {kind.name!r} is not in backbones.head_kinds.HEAD_KINDS ({', '.join(HEAD_KINDS)})")
    if kind.name in HEADS:
        raise ValueError(f"head {kind.name!r} registered twice")
    HEADS[kind.name] = kind
    return kind


register(HeadKind("default", False, lambda c, hidden, dropout: RegressionHead(c, hidden=hidden, dropout=dropout),
                  "avg pool -> [Linear, BN, ReLU, Dropout] x hidden -> Linear(2)"))
register(HeadKind("fastai", True, lambda c, hidden, dropout: FastaiHead(c),
                  "fastai create_head: concat pool -> BN, Dropout, Linear(2C, 512), ReLU -> BN, Dropout, "
                  "Linear(512, 2)"))
register(HeadKind("linear", False, lambda c, hidden, dropout: LinearHead(c), "avg pool -> Linear(2)"))


def build(kind: str, channels: int, *, hidden: tuple[int, ...] = (512, 256), dropout: float = 0.25) -> nn.Module:
    return HEADS[kind].build(channels, hidden, dropout)


def feature_map(features: nn.Module) -> nn.Module:
    """The backbone up to its feature map: a pooled backbone is (body, pooling...) in one Sequential."""
    if not isinstance(features, nn.Sequential) or len(features) < 2:
        raise ValueError("expected a pooled backbone: Sequential(body, pooling, ...)")
    pooling = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.AvgPool2d, nn.MaxPool2d, nn.Flatten)
    if not all(isinstance(m, pooling) or _is_pool(m) for m in list(features)[1:]):
        raise ValueError(f"expected pooling after the body, got {[type(m).__name__ for m in list(features)[1:]]}")
    return features[0]


def _is_pool(m: nn.Module) -> bool:
    """A port's own global pooling module (convert.layers.pool): parameter-free, named for what it does."""
    return "pool" in type(m).__name__.lower() and not any(True for _ in m.parameters())
