"""Where the trainer's batches come from: images (augmented, preprocessed) or cached backbone features,
and how an eval pass splits a split over ranks."""

from __future__ import annotations

from typing import Protocol

import torch

from backbones import augment
from backbones import data as kdata
from backbones import preprocess as pp
from backbones.dist import Context


class BatchSource(Protocol):
    def __len__(self) -> int: ...
    def batch(self, idx: torch.Tensor, aug: augment.Affine | None) -> tuple[torch.Tensor, torch.Tensor]: ...


class ImageSource:
    """Images from memory -> [augment] -> backbone preprocessing."""

    def __init__(self, split: kdata.KeypointSet, prep: pp.Preprocess) -> None:
        self.split, self.prep = split, prep

    def __len__(self) -> int:
        return len(self.split)

    def batch(self, idx: torch.Tensor, aug: augment.Affine | None) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self.split.images[idx].float() / 255, self.split.targets[idx]
        if aug is not None:
            a = aug[idx]
            x, y = a.images(x), a.points(y)
        return self.prep(x), y


class FeatureSource:
    """Backbone features computed once (see backbones.feature_cache)."""

    def __init__(self, features: torch.Tensor, targets: torch.Tensor) -> None:
        self.features, self.targets = features, targets

    def __len__(self) -> int:
        return len(self.targets)

    def batch(self, idx: torch.Tensor, aug: augment.Affine | None) -> tuple[torch.Tensor, torch.Tensor]:
        return self.features[idx], self.targets[idx]


def eval_chunks(n: int, size: int, ctx: Context) -> list[tuple[torch.Tensor, int]]:
    """This rank's share of an eval pass over n samples: chunk k of `size` goes to rank k % world.

    Every chunk holds exactly `size` indices (the last one padded by repeating its first index;
    the int says how many are real): the backbone then always runs on batches of the training batch
    size, and oneDNN gives each image the same features bit for bit whether it comes in a training
    batch or in a chunk here (for another batch size it may differ in the last bit, which AdamW
    amplifies within a few steps)."""
    chunks = torch.arange(n).split(size)
    out = []
    for c in chunks[ctx.rank::ctx.world]:
        real = len(c)
        out.append((torch.cat([c, c[:1].expand(size - real)]), real))
    return out
