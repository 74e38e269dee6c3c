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


def test_fastai_head_is_create_head():
    """fastai's create_head(nf, 2): concat pool, then LinBnDrop(2C, 512, p=ps/2, ReLU) and
    LinBnDrop(512, 2, p=ps): BatchNorm -> Dropout -> Linear (no bias after a BN) [-> ReLU]."""
    from backbones.head import ConcatPool, FastaiHead

    head = FastaiHead(6)
    kinds = [type(m) for m in head]
    assert kinds == [ConcatPool, CrossRankBatchNorm1d, nn.Dropout, nn.Linear, nn.ReLU,
                     CrossRankBatchNorm1d, nn.Dropout, nn.Linear]
    assert [m.p for m in head if isinstance(m, nn.Dropout)] == [0.25, 0.5]
    lin = [m for m in head if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features, m.bias is None) for m in lin] == [(12, 512, True), (512, 2, True)]
    assert head[1].num_features == 12 and head[5].num_features == 512
    head.eval()
    assert head(torch.randn(3, 6, 4, 5)).shape == (3, 2)


def test_concat_pool_is_max_then_average():
    from backbones.head import ConcatPool

    x = torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).reshape(2, 3, 2, 2)
    got = ConcatPool()(x)
    assert torch.equal(got[:, :3], x.amax(dim=(2, 3))) and torch.equal(got[:, 3:], x.mean(dim=(2, 3)))


def test_heads_registry_matches_config():
    from backbones.head import HEADS, LinearHead, build
    from backbones.head_kinds import HEAD_KINDS

    assert tuple(HEADS) == HEAD_KINDS
    assert isinstance(build("linear", 7), LinearHead) and build("linear", 7)(torch.randn(2, 7)).shape == (2, 2)
    assert HEADS["fastai"].needs_map and not HEADS["default"].needs_map


@pytest.mark.parametrize("name", ["fastai", "resnet_head"], ids=["twice", "not-in-HEAD_KINDS"])
def test_a_head_outside_the_one_list_is_refused(name):
    from backbones.head import HEADS, HeadKind, LinearHead, register

    before = dict(HEADS)
    with pytest.raises(ValueError, match=name):
        register(HeadKind(name, False, lambda c, hidden, dropout: LinearHead(c), "linear"))
    assert HEADS == before


def test_feature_map_takes_the_pooling_off():
    from backbones.head import feature_map

    body = nn.Conv2d(3, 4, 1)
    assert feature_map(nn.Sequential(body, nn.AdaptiveAvgPool2d(1), nn.Flatten(1))) is body
    with pytest.raises(ValueError):
        feature_map(nn.Sequential(body, nn.Linear(4, 4)))
