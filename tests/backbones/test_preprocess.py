"""Per-backbone input preprocessing: TF ports get [-1, 1], torchvision models ImageNet statistics."""

from __future__ import annotations

import pytest
import torch

from backbones import preprocess as pp
from convert.runtime.errors import TfportError


def test_tf_maps_unit_range_to_minus_one_one():
    x = torch.tensor([0.0, 0.5, 1.0]).view(1, 1, 3, 1).expand(1, 3, 3, 1)
    assert torch.allclose(pp.get("tf")(x)[0, :, :, 0], torch.tensor([-1.0, 0.0, 1.0]).expand(3, 3))


def test_imagenet_uses_mean_and_std():
    x = torch.full((1, 3, 1, 1), 0.485)
    y = pp.get("imagenet")(x)
    expect = (0.485 - torch.tensor([0.456, 0.406])) / torch.tensor([0.224, 0.225])
    assert y[0, 0, 0, 0].abs() < 1e-6 and torch.allclose(y[0, 1:, 0, 0], expect)


@pytest.mark.parametrize("rng,expect", [([-1, 1], "tf"), ([0, 255], "range[0,255]")], ids=["tf", "other"])
def test_from_metadata(rng, expect):
    assert pp.from_meta({"input_range": rng}).name == expect


@pytest.mark.parametrize("meta", [{}, {"input_range": [1, 1]}, {"input_range": "wide"}],
                         ids=["missing", "empty", "text"])
def test_bad_metadata_range(meta):
    with pytest.raises(TfportError):
        pp.from_meta(meta)


def test_unknown_name_lists_known():
    with pytest.raises(TfportError, match="known: imagenet, tf, unit"):
        pp.get("caffe")
