"""Framework-neutral description of a model: what every source and path is reduced to.

Weights are stored in PyTorch layouts (conv OIHW, depthwise (C, 1, kH, kW), dense (out, in)) so that
the canonical mapping never transposes anything: each reader converts its own layout exactly once,
at the place where it knows which layout it holds (TF HWIO / HWC1, ONNX OIHW, MMdnn's IR).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# Where a TF model carries no BN decay (a frozen graph), the momentum defaults to TF's own default
# decay 0.999 (tf.keras BatchNormalization, tf.compat.v1.layers, slim): PyTorch momentum = 1 - decay.
TF_DEFAULT_BN_DECAY = 0.999
# TF's BN epsilon default; torchvision's is 1e-5.
TF_DEFAULT_BN_EPS = 1e-3

# What a model may do to its input before the backbone, as users write it: x / 127.5 - 1 inside the
# model (preprocess_input), Rescaling(1/255), Normalization... The contract is the range the model's
# own input is fed in; these are the ranges people feed images in.
CONTRACT_RANGES: tuple[tuple[float, float], ...] = ((-1.0, 1.0), (0.0, 1.0), (0.0, 255.0))
# the range a TF MobileNetV2 backbone was built for (keras mobilenet_v2.preprocess_input)
BACKBONE_RANGE = (-1.0, 1.0)
ACTIVATIONS = ("linear", "relu", "relu6", "sigmoid", "softmax", "tanh", "hard_swish", "hard_sigmoid")
# hard-swish x * ReLU6(x + 3) / 6 and hard-sigmoid ReLU6(x + 3) / 6 (MobileNetV3): torch's Hardswish and
# Hardsigmoid. Graphs write them as ops (Keras: AddV2, Relu6, Mul or RealDiv, Mul), which readers recognise
# by data flow; ONNX and TFLite may also have them as one op (HardSwish, HARD_SWISH).


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
    # where no BN follows (a squeeze-excitation's convs): the activation applied to the conv's output
    # (one of ACTIVATIONS); None where a BN follows or the reader does not say
    activation: str | None = None
    # a squeeze-excitation conv: it runs on the globally pooled 1x1 map, and its output gates (multiplies)
    # the feature map that was pooled (MobileNetV3's SE units, torchvision's `SqueezeExcitation.fc1/fc2`)
    squeeze: bool = False
    # data flow: the name of the conv whose output this one reads through single-input ops (its BN,
    # activation, pad, pooling); None where an add, the input or an unknown op comes between, or the reader
    # does not say. Where topological order leaves branches open (ResNet's conv3 and projection shortcut,
    # both 64 -> 256 in layer1.0), it tells which conv reads which (convert.arch.resnet50.execution_order).
    reads: str | None = None


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
    # what follows the BN (one of ACTIVATIONS: "relu6", "relu", "hard_swish", "linear"), None where the
    # reader does not say
    activation: str | None = None

    @classmethod
    def folded_affine(cls, name: str, scale: np.ndarray, offset: np.ndarray, eps: float = TF_DEFAULT_BN_EPS) -> BNSpec:
        """A BN the source or a path folded away, y = x * scale + offset, written as BN with mean 0 and
        var 1 (gamma = scale * sqrt(1 + eps)): the same function in eval mode, no statistics to train with."""
        scale = np.broadcast_to(np.asarray(scale, np.float64).reshape(-1), np.shape(offset)[-1:])
        offset = np.asarray(offset, np.float32).reshape(-1)
        return cls(name, (scale * np.sqrt(1.0 + eps)).astype(np.float32), offset, np.zeros_like(offset),
                   np.ones_like(offset), eps, folded=True)


@dataclass(frozen=True)
class DenseSpec:
    name: str
    weight: np.ndarray  # (out, in)
    bias: np.ndarray
    activation: str = "linear"  # one of ACTIVATIONS, applied after the affine map


@dataclass(frozen=True)
class InputAffine:
    """What the model does to its input before the first convolution, per RGB channel: x * scale + offset.

    Found numerically (the ops between the input and the first convolution, evaluated), never by layer
    name: `preprocess_input` (x / 127.5 - 1), `Rescaling`, `Normalization`, a trusted affine `Lambda`."""

    scale: tuple[float, float, float]
    offset: tuple[float, float, float]
    ops: tuple[str, ...] = ()  # the source's own op / layer names, for the metadata

    @property
    def identity(self) -> bool:
        return all(s == 1.0 for s in self.scale) and all(o == 0.0 for o in self.offset)

    def contract(self) -> tuple[float, float]:
        """The input range the source is most plausibly fed in: of the usual ranges, the one this affine
        maps closest onto the backbone's [-1, 1] (x / 127.5 - 1 -> [0, 255]; Rescaling(1/255) -> [0, 255])."""
        def miss(rng: tuple[float, float]) -> float:
            lo, hi = rng
            return sum(
                abs(min(s * lo + o, s * hi + o) - BACKBONE_RANGE[0])
                + abs(max(s * lo + o, s * hi + o) - BACKBONE_RANGE[1])
                for s, o in zip(self.scale, self.offset, strict=False)
            )
        return min(CONTRACT_RANGES, key=miss)

    def to_json(self) -> dict:
        return {"scale": list(self.scale), "offset": list(self.offset), "ops": list(self.ops)}


# The orders a Flatten lays a feature map's values out in, slowest-varying axis first: TF (NHWC) flattens
# column (h * W + w) * C + c; torchvision (NCHW, `torch.flatten(x, 1)`) column (c * H + h) * W + w.
FLATTEN_ORDERS = ("NHWC", "NCHW")


@dataclass(frozen=True)
class FlattenSpec:
    """A Flatten between the last feature map and the first Dense (VGG16's fc1, a fine-tuned base's own
    first Dense): the order the graph lays the map's values out in, and the map's shape. Dense weights in
    a spec keep the graph's column order; the canonical mapping permutes them into torchvision's NCHW."""

    order: str  # one of FLATTEN_ORDERS
    shape: tuple[int, int, int]  # C, H, W of the flattened map

    def __post_init__(self) -> None:
        if self.order not in FLATTEN_ORDERS:
            raise ValueError(f"flatten order {self.order!r} is not one of {FLATTEN_ORDERS}")

    @property
    def size(self) -> int:
        c, h, w = self.shape
        return c * h * w


Layer = ConvSpec | BNSpec | DenseSpec


@dataclass
class ModelSpec:
    """One backbone with what surrounds it, as a source or a conversion path sees it, in execution order."""

    layers: list[Layer]
    input_shape: tuple[int, int, int]  # H, W, C
    arch: str = "mobilenet_v2"  # the registered architecture (convert.arch) the readers recognised
    input_range: tuple[float, float] = (-1.0, 1.0)
    origin: str = ""  # "keras2", "keras3", "graph", "onnx", "mmdnn"
    notes: list[str] = field(default_factory=list)
    # per layer index: where that layer's probe points are in the source graph
    # (":bn" after normalisation, ":act" after ReLU6, ":out" after the residual add; "" for dense)
    taps: dict[int, dict[str, str]] = field(default_factory=dict)
    # around the backbone: the input affine inside the model, the pooling after it (None: the output is
    # the feature map), layers dropped as identity at inference (augmentation), code the source ran
    preprocess: InputAffine | None = None
    pool: str | None = "avg"  # "avg" | "max" (global pooling), "flatten" (then `flatten` says how), None
    flatten: FlattenSpec | None = None
    dropped: list[str] = field(default_factory=list)
    trusted_code: list[str] = field(default_factory=list)
    # the source's graph leaves H and W to the caller: its padding must hold at every size it takes (a
    # constant pad stays constant, TF SAME follows the size that arrives), not only at input_shape's
    size_open: bool = False

    @property
    def backbone(self) -> list[Layer]:
        return [x for x in self.layers if not isinstance(x, DenseSpec)]

    @property
    def head(self) -> list[DenseSpec]:
        return [x for x in self.layers if isinstance(x, DenseSpec)]

    @property
    def convs(self) -> list[ConvSpec]:
        return [x for x in self.layers if isinstance(x, ConvSpec)]

    @property
    def bns(self) -> list[BNSpec]:
        return [x for x in self.layers if isinstance(x, BNSpec)]



def tf_same_pads(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TF's SAME padding along one axis: the extra pixel goes after (bottom/right), never before."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2
