"""Framework-neutral description of a MobileNetV2: what every source and path is reduced to.

Weights are stored in PyTorch layouts (conv OIHW, depthwise (C, 1, kH, kW), dense (out, in)) so that
the canonical mapping never transposes anything: each reader converts its own layout exactly once,
at the place where it knows which layout it holds (TF HWIO / HWC1, ONNX OIHW, MMdnn's IR).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Union

import numpy as np

# Where a TF model carries no BN decay (a frozen graph), the momentum defaults to TF's own default
# decay 0.999 (tf.keras BatchNormalization, tf.compat.v1.layers, slim): PyTorch momentum = 1 - decay.
TF_DEFAULT_BN_DECAY = 0.999
# TF's BN epsilon default; torchvision's is 1e-5.
TF_DEFAULT_BN_EPS = 1e-3

PaddingMode = Literal["tf_same", "symmetric"]


@dataclass(frozen=True)
class ConvSpec:
    name: str  # the source's own name for the layer (for messages only)
    weight: np.ndarray  # OIHW; depthwise: (C, 1, kH, kW)
    stride: int
    depthwise: bool
    # pads (top, bottom, left, right) the source applies at its declared input size
    pads: tuple[int, int, int, int]
    # True when the source pads dynamically like TF "SAME" (depends on the input size)
    same: bool
    bias: np.ndarray | None = None


@dataclass(frozen=True)
class BNSpec:
    name: str
    gamma: np.ndarray
    beta: np.ndarray
    mean: np.ndarray
    var: np.ndarray
    eps: float
    decay: float | None = None  # TF decay (Keras `momentum`), None where the source has none
    folded: bool = False  # statistics were folded away by the source or the path: eval-mode only


@dataclass(frozen=True)
class DenseSpec:
    name: str
    weight: np.ndarray  # (out, in)
    bias: np.ndarray


Layer = Union[ConvSpec, BNSpec, DenseSpec]


@dataclass
class ModelSpec:
    """One MobileNetV2 as a source or a conversion path sees it, in execution order."""

    layers: list[Layer]
    input_shape: tuple[int, int, int]  # H, W, C
    input_range: tuple[float, float] = (-1.0, 1.0)
    origin: str = ""  # "keras2", "keras3", "graph", "onnx", "mmdnn"
    notes: list[str] = field(default_factory=list)
    # per layer index: where that layer's probe points are in the source graph
    # (":bn" after normalisation, ":act" after ReLU6, ":out" after the residual add; "" for dense)
    taps: dict[int, dict[str, str]] = field(default_factory=dict)

    @property
    def convs(self) -> list[ConvSpec]:
        return [x for x in self.layers if isinstance(x, ConvSpec)]

    @property
    def bns(self) -> list[BNSpec]:
        return [x for x in self.layers if isinstance(x, BNSpec)]

    @property
    def dense(self) -> DenseSpec | None:
        d = [x for x in self.layers if isinstance(x, DenseSpec)]
        return d[-1] if d else None


def tf_same_pads(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TF's SAME padding along one axis: the extra pixel goes after (bottom/right), never before."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2
