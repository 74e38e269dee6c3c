"""parity.traced: a traced candidate's batch norms meet the source's by name where its module names are the
TF node names (MMdnn's), not by call order: MMdnn's ResNet50 calls each downsampling block's shortcut BN
before the block's first (the default-suite twin of tests/convert/test_resnet50.py's emitted-model case)."""

from __future__ import annotations

import torch
from torch import nn

from parity.points import Point
from parity.traced import trace


class _ShortcutFirst(nn.Module):
    """Two BNs named after TF nodes, the shortcut's called first: 8 channels, then the block's first, 4."""

    def __init__(self) -> None:
        super().__init__()
        self.block_0_bn_FusedBatchNormV3 = nn.BatchNorm2d(8)
        self.block_1_bn_FusedBatchNormV3 = nn.BatchNorm2d(4)

    def forward(self, x):
        shortcut = self.block_0_bn_FusedBatchNormV3(torch.cat([x, x], 1))
        return self.block_1_bn_FusedBatchNormV3(x), shortcut


POINTS = [Point("layer1.0.conv1:bn", 0, ":bn", "layer1.0.bn1"), Point("layer1.0.downsample:bn", 1, ":bn",
                                                                       "layer1.0.downsample.1")]
SOURCE = ["block/1_bn/FusedBatchNormV3", "block/0_bn/FusedBatchNormV3"]  # torchvision's order: conv1's BN first


def _targets(traced) -> dict[str, str]:
    """Point -> the module its node calls."""
    return {p: next(n.target for n in traced.graph.graph.nodes if n.name == node) for p, node in traced.nodes.items()}


def test_batch_norms_meet_the_source_by_name_not_call_order():
    traced = trace(_ShortcutFirst(), POINTS, source_bns=SOURCE)
    assert _targets(traced) == {"layer1.0.conv1:bn": "block_1_bn_FusedBatchNormV3",
                                "layer1.0.downsample:bn": "block_0_bn_FusedBatchNormV3"}


def test_without_names_they_meet_by_call_order():
    assert _targets(trace(_ShortcutFirst(), POINTS)) == {"layer1.0.conv1:bn": "block_0_bn_FusedBatchNormV3",
                                                         "layer1.0.downsample:bn": "block_1_bn_FusedBatchNormV3"}
