"""The shared head: Linear-BN-ReLU-Dropout groups then (x, y); its BN is plain BatchNorm1d in one process."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from backbones.dist import CrossRankBatchNorm1d
from backbones.head import RegressionHead


@pytest.mark.parametrize("hidden", [(16,), (32, 16), (32, 16, 8)], ids=["one-group", "two-groups", "three-groups"])
def test_shape_and_groups(hidden):
    head = RegressionHead(10, hidden=hidden, dropout=0.1)
    assert head(torch.randn(4, 10)).shape == (4, 2)
    kinds = [type(m) for m in head]
    assert kinds == [nn.Linear, CrossRankBatchNorm1d, nn.ReLU, nn.Dropout] * len(hidden) + [nn.Linear]


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_cross_rank_bn_is_batchnorm1d_in_one_process(mode):
    torch.manual_seed(0)
    ours, ref = CrossRankBatchNorm1d(5), nn.BatchNorm1d(5)
    x = torch.randn(8, 5) * 3 + 1
    for m in (ours, ref):
        getattr(m, mode)()
    assert torch.equal(ours(x), ref(x))
    assert torch.equal(ours.running_mean, ref.running_mean) and torch.equal(ours.running_var, ref.running_var)


@pytest.mark.parametrize("kwargs", [{"hidden": (0,)}, {"dropout": 1.0}], ids=["zero-width", "dropout-one"])
def test_bad_sizes(kwargs):
    with pytest.raises(ValueError):
        RegressionHead(10, **kwargs)
