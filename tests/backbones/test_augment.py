"""Augmentation moves the keypoint exactly where it moves the pixels.

A bright blob is drawn at the keypoint, the image is transformed, and the brightest pixel must sit
at the transformed keypoint (within one pixel: bilinear resampling of a blob on a pixel grid)."""

from __future__ import annotations

import pytest
import torch

from backbones import augment

SIZE = 64


def _blob(points: torch.Tensor) -> torch.Tensor:
    """Gaussian dots (sigma 1.2 px) at normalised points (N, 2) -> images (N, 1, SIZE, SIZE)."""
    c = (torch.arange(SIZE, dtype=torch.float32) + 0.5) / SIZE  # pixel centres, as in backbones.data
    dx = (c[None, None, :] - points[:, 0, None, None]) * SIZE
    dy = (c[None, :, None] - points[:, 1, None, None]) * SIZE
    return torch.exp(-(dx**2 + dy**2) / (2 * 1.2**2))[:, None]


def _peak(images: torch.Tensor) -> torch.Tensor:
    flat = images[:, 0].flatten(1).argmax(1)
    return torch.stack([(flat % SIZE).float() + 0.5, (flat // SIZE).float() + 0.5], 1) / SIZE


POINTS = torch.tensor([[0.3, 0.4], [0.7, 0.2], [0.5, 0.5], [0.15, 0.8]])
ONES = torch.ones(len(POINTS))
CASES = {
    "identity": augment.Affine(ONES, ONES, torch.zeros(4, 2)),
    "flip": augment.Affine(-ONES, ONES, torch.zeros(4, 2)),
    "shift": augment.Affine(ONES, ONES, torch.tensor([[0.2, -0.1], [-0.3, 0.25], [0.1, 0.1], [0.4, -0.5]])),
    "zoom-in": augment.Affine(ONES, ONES * 1.2, torch.zeros(4, 2)),
    "zoom-out": augment.Affine(ONES, ONES * 0.8, torch.zeros(4, 2)),
    "all": augment.Affine(torch.tensor([-1.0, 1, -1, 1]), torch.tensor([1.1, 0.9, 1.2, 1.0]),
                          torch.tensor([[0.1, 0.05], [-0.1, 0.2], [0.0, -0.2], [0.3, 0.1]])),
    "sampled": augment.sample(augment.AugmentSpec(), POINTS, torch.Generator().manual_seed(0)),
}


@pytest.mark.parametrize("affine", list(CASES.values()), ids=list(CASES))
def test_keypoint_follows_pixels(affine):
    moved = affine.points(POINTS)
    peaks = _peak(affine.images(_blob(POINTS)))
    assert torch.all((peaks - moved).abs() * SIZE <= 1.0), (peaks * SIZE, moved * SIZE)


def test_flip_mirrors_x_only():
    a = CASES["flip"]
    assert torch.allclose(a.points(POINTS), torch.stack([1 - POINTS[:, 0], POINTS[:, 1]], 1))


def test_sampled_keypoints_stay_inside():
    pts = torch.rand(500, 2, generator=torch.Generator().manual_seed(1))
    spec = augment.AugmentSpec(max_shift=0.3, max_scale=1.5)
    moved = augment.sample(spec, pts, torch.Generator().manual_seed(2)).points(pts)
    half = (1 - augment.KEEP_INSIDE) / 2
    assert moved.min() >= half - 1e-6 and moved.max() <= 1 - half + 1e-6
