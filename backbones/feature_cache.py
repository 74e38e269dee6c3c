"""The feature cache: where the backbone is a fixed function of the image, its features are computed
once per split and the head trains on them (same losses as running the backbone every batch)."""

from __future__ import annotations

import torch
from torch import nn

from backbones.batches import ImageSource, eval_chunks
from backbones.config import TrainConfig
from backbones.dist import Context


def cacheable(cfg: TrainConfig) -> bool:
    """The backbone is a fixed function of the image — frozen weights, BN on running statistics that
    never update, no augmentation — so its features can be computed once and the head trained on them."""
    return cfg.feature_cache and cfg.freeze == "backbone" and cfg.bn == "eval" and not cfg.augment


@torch.no_grad()
def compute_features(backbone: nn.Module, src: ImageSource, size: int, ctx: Context) -> torch.Tensor:
    """Features (pooled vectors or maps, as the head takes them) of a whole split on every rank: each
    computes its chunks, the disjoint rows are summed."""
    backbone.eval()
    full: torch.Tensor | None = None
    for idx, real in eval_chunks(len(src), size, ctx):
        f = backbone(src.batch(idx, None)[0])[:real]
        if full is None:
            full = f.new_zeros((len(src), *f.shape[1:]))
        full[idx[:real]] = f
    if full is None:  # this rank had no chunk: the shape comes from one image
        shape = backbone(src.batch(torch.zeros(size, dtype=torch.long), None)[0]).shape[1:]
        full = torch.zeros((len(src), *shape))
    return ctx.sum(full)
