"""TF SAME padding vs PyTorch: the asymmetric rule and Conv2dSame reproducing TF exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from convert.layers.conv_same import Conv2dSame
from convert.model.spec import tf_same_pads


@pytest.mark.parametrize(("size", "kernel", "stride", "expected"), [
    (224, 3, 2, (0, 1)),   # even: the extra pixel goes after, none before
    (225, 3, 2, (1, 1)),   # odd: symmetric, like torchvision
    (112, 3, 1, (1, 1)),
    (7, 1, 1, (0, 0)),
    (96, 3, 2, (0, 1)),
], ids=["even-s2", "odd-s2", "s1", "1x1", "96-s2"])
def test_tf_same_pads(size, kernel, stride, expected):
    assert tf_same_pads(size, kernel, stride) == expected


@pytest.mark.parametrize("size", [(32, 32), (33, 33), (32, 45)], ids=["even", "odd", "mixed"])
@pytest.mark.parametrize("depthwise", [False, True], ids=["conv", "depthwise"])
def test_conv2d_same_matches_tf(size, depthwise):
    import tensorflow as tf

    rng = np.random.default_rng(0)
    c = 4
    x = rng.normal(size=(2, *size, c)).astype(np.float32)
    if depthwise:
        k = rng.normal(size=(3, 3, c, 1)).astype(np.float32)
        ref = tf.nn.depthwise_conv2d(x, k, [1, 2, 2, 1], "SAME").numpy()
        conv = Conv2dSame(c, c, 3, 2, groups=c, bias=False)
        conv.weight.data = torch.from_numpy(k.transpose(2, 3, 0, 1).copy())
    else:
        k = rng.normal(size=(3, 3, c, 6)).astype(np.float32)
        ref = tf.nn.conv2d(x, k, [1, 2, 2, 1], "SAME").numpy()
        conv = Conv2dSame(c, 6, 3, 2, bias=False)
        conv.weight.data = torch.from_numpy(k.transpose(3, 2, 0, 1).copy())
    out = conv(torch.from_numpy(x.transpose(0, 3, 1, 2))).detach().numpy().transpose(0, 2, 3, 1)
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)
    # and torchvision's symmetric padding does NOT match on even sizes: the check has teeth
    if size[0] % 2 == 0:
        sym = torch.nn.functional.conv2d(torch.from_numpy(x.transpose(0, 3, 1, 2)), conv.weight, stride=2, padding=1,
                                         groups=conv.groups).detach().numpy().transpose(0, 2, 3, 1)
        assert np.abs(sym - ref).max() > 1e-2
