"""The one regression head every backbone gets: pooled features -> (x, y) in normalised coordinates.

    [Linear -> BatchNorm1d -> ReLU -> Dropout] x len(hidden)  ->  Linear(2)

The groups are the user's "linear-bn-dropout" blocks; the ReLU is there because without a
nonlinearity stacked groups collapse to one affine map. The BatchNorm takes its batch statistics
over all ranks under torchrun (see backbones.dist), so data-parallel training equals one process.
"""

from __future__ import annotations

from torch import nn

from backbones.dist import CrossRankBatchNorm1d

OUTPUTS = 2  # (x, y)


class RegressionHead(nn.Sequential):
    def __init__(self, in_features: int, *, hidden: tuple[int, ...] = (512, 256), dropout: float = 0.25) -> None:
        if in_features < 1 or any(h < 1 for h in hidden):
            raise ValueError(f"layer sizes must be positive, got in_features={in_features}, hidden={hidden}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        layers: list[nn.Module] = []
        width = in_features
        for h in hidden:
            # no bias: the BatchNorm right after subtracts the batch mean, so a bias would only collect
            # gradient noise (which Adam would turn into full-size random steps)
            layers += [nn.Linear(width, h, bias=False), CrossRankBatchNorm1d(h), nn.ReLU(inplace=True),
                       nn.Dropout(dropout)]
            width = h
        layers.append(nn.Linear(width, OUTPUTS))
        super().__init__(*layers)
