"""Freeze/BN policies and the forecast of how much source statistics survive a --bn train run."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from backbones import bn


def _net(momentum: float | None = 0.1) -> nn.Module:
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4, momentum=momentum), nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4))
    return net


@pytest.mark.parametrize("momentum,steps,remaining", [(0.0, 500, 1.0), (0.001, 500, 0.999**500), (0.1, 50, 0.9**50)],
                         ids=["mmdnn-0", "tf-0.001", "pytorch-0.1"])
def test_forecast_is_one_minus_momentum_to_the_steps(momentum, steps, remaining):
    net = _net()
    bn.set_momentum(net, momentum)
    (f,) = bn.forecast(net, steps)
    assert f.layers == 2 and f.remaining == pytest.approx(remaining)
    assert f.follows == (remaining <= bn.FOLLOW_THRESHOLD)


def test_forecast_matches_what_torch_does():
    """Run k train-mode batches through a BN and measure the share of the initial stats left."""
    m = nn.BatchNorm2d(3, momentum=0.05)
    m.running_mean.fill_(10.0)
    for _ in range(20):
        m(torch.zeros(4, 3, 2, 2))  # batch mean 0: running mean decays towards 0
    (f,) = bn.forecast(m, 20)
    assert m.running_mean[0].item() / 10.0 == pytest.approx(f.remaining, rel=1e-5)


def test_forecast_lists_each_momentum_worst_first():
    net = _net(momentum=0.0)
    got = bn.forecast(net, 100)
    assert [f.momentum for f in got] == [0.0, 0.1]


@pytest.mark.parametrize("freeze,policy,trainable", [
    ("backbone", "eval", set()),
    ("backbone", "train", {"1.weight", "1.bias", "3.weight", "3.bias"}),
    ("none", "eval", {"0.weight", "0.bias", "1.weight", "1.bias", "2.weight", "2.bias", "3.weight", "3.bias"}),
], ids=["frozen-bn-eval", "frozen-bn-train(fastai)", "fine-tune"])
def test_trainable_parameters(freeze, policy, trainable):
    net = _net()
    bn.set_trainable(net, freeze=freeze, policy=bn.BN_POLICIES[policy])
    assert {n for n, p in net.named_parameters() if p.requires_grad} == trainable


@pytest.mark.parametrize("policy,training", [("eval", False), ("train", True)])
def test_bn_mode_follows_policy_not_model(policy, training):
    net = _net().train()
    bn.apply_mode(net, bn.BN_POLICIES[policy])
    assert all(m.training == training for m in bn.bn_layers(net))


def test_bn_layers_are_every_batchnorm_in_module_order_cross_rank_ones_too():
    """bn_layers finds BatchNorms through torch's public classes (convert.layers.batchnorm): the
    cross-rank BatchNorms that torchrun swaps in (backbones.dist) are found, in the same places."""
    from backbones.dist import CrossRankBatchNorm1d, CrossRankBatchNorm2d, to_cross_rank

    net = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4), nn.Sequential(nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4)),
                        nn.ReLU(), nn.Flatten(), nn.BatchNorm1d(4), CrossRankBatchNorm1d(4), nn.SyncBatchNorm(4))

    def names(layers):
        return [n for layer in layers for n, m in net.named_modules() if m is layer]

    before = names(bn.bn_layers(net))
    assert before == ["1", "2.1", "5", "6", "7"]
    to_cross_rank(net)
    after = bn.bn_layers(net)
    assert names(after) == before
    assert [type(m) for m in after] == [CrossRankBatchNorm2d, CrossRankBatchNorm2d, nn.BatchNorm1d,
                                        CrossRankBatchNorm1d, nn.SyncBatchNorm]
