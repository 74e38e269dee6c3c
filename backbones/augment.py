"""Augmentation that moves the keypoint with the image: horizontal flip, shift and scale.

One affine map per image, applied to the pixels with ``grid_sample`` and to the keypoint with the
same numbers, so the two cannot drift apart. Coordinates: grid_sample with ``align_corners=False``
puts -1 and +1 at the image edges, exactly like our normalised [0, 1] (v = 2u - 1).

Forward map of a point in [-1, 1] units:   p' = scale * (flip * p_x, p_y) + shift
grid_sample wants the inverse (output pixel -> where to read in the input):
                                            p  = (flip * (p'_x - shift_x), p'_y - shift_y) / scale

Parameters are drawn for a whole split at once from a generator seeded by (seed, epoch): a sample's
augmentation depends on its index, not on which batch or process it lands in.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

KEEP_INSIDE = 0.95  # shifts are clipped so the keypoint stays within 95 % of the image (in [-1, 1] units)


@dataclass(frozen=True)
class AugmentSpec:
    flip: float = 0.5  # probability of a horizontal flip
    max_shift: float = 0.1  # fraction of the image size, each axis
    min_scale: float = 0.9  # < 1 zooms out, > 1 zooms in
    max_scale: float = 1.2


@dataclass(frozen=True)
class Affine:
    """Per-image parameters, each (N,) or (N, 2) for the shift."""

    flip: torch.Tensor  # +1 or -1
    scale: torch.Tensor
    shift: torch.Tensor  # in [-1, 1] units

    def __getitem__(self, idx: torch.Tensor) -> Affine:
        return Affine(self.flip[idx], self.scale[idx], self.shift[idx])

    def points(self, uv: torch.Tensor) -> torch.Tensor:
        """Move normalised [0, 1] keypoints (N, 2)."""
        p = uv * 2 - 1
        p = torch.stack([p[:, 0] * self.flip, p[:, 1]], dim=1) * self.scale[:, None] + self.shift
        return (p + 1) / 2

    def images(self, images: torch.Tensor) -> torch.Tensor:
        """Resample float images (N, C, H, W); pixels from outside the image are zero."""
        n = images.shape[0]
        inv = 1 / self.scale
        theta = torch.zeros(n, 2, 3, dtype=images.dtype)
        theta[:, 0, 0] = self.flip * inv
        theta[:, 0, 2] = -self.flip * self.shift[:, 0] * inv
        theta[:, 1, 1] = inv
        theta[:, 1, 2] = -self.shift[:, 1] * inv
        grid = F.affine_grid(theta, list(images.shape), align_corners=False)
        return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def sample(spec: AugmentSpec, keypoints: torch.Tensor, generator: torch.Generator) -> Affine:
    """Draw parameters for every keypoint (N, 2), keeping each keypoint inside the image."""
    n = keypoints.shape[0]
    u = torch.rand(n, 4, generator=generator)
    flip = torch.where(u[:, 0] < spec.flip, -1.0, 1.0)
    scale = spec.min_scale + (spec.max_scale - spec.min_scale) * u[:, 1]
    shift = (u[:, 2:] * 2 - 1) * spec.max_shift * 2
    # where the keypoint lands before the shift; clip the shift so that it stays inside
    p = keypoints * 2 - 1
    landed = torch.stack([p[:, 0] * flip, p[:, 1]], dim=1) * scale[:, None]
    shift = torch.clamp(shift, -KEEP_INSIDE - landed, KEEP_INSIDE - landed)
    return Affine(flip, scale, shift)
