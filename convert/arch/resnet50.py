"""ResNet50 (He et al. 2015): Keras Applications' `ResNet50` (v1) and torchvision's `resnet50` (v1.5).

Same weights, same shapes, another function where nobody looks: Keras's v1 network strides its
downsampling blocks on the first 1x1 conv (`conv3_block1_1_conv`, and the 1x1 shortcut `_0_conv`);
torchvision's "v1.5" strides the 3x3 (`layer2.0.conv2`). A naive port loads `strict=True` and computes
something else. What differs is carried as metadata and set on torchvision's modules (convert.port.build):
  - strides: per conv, where the source's stride is not torchvision's (`layer2.0.conv1` 2, `.conv2` 1);
  - conv biases (Keras's convs have them, torchvision's do not): folded into the BN that follows,
    running_mean - b — exact in eval mode and in train mode, where the batch mean absorbs the bias;
  - BN eps 1.001e-5 and Keras momentum 0.99 (PyTorch 0.01);
  - stem: ZeroPadding2D(3) + 7x7/2 VALID is torchvision's padding 3; ZeroPadding2D(1) + MaxPool 3/2
    VALID after a ReLU is torchvision's maxpool padding 1 (-inf), since every value it pads is >= 0.
Keras's `resnet50.preprocess_input` (caffe: RGB->BGR, minus [103.939, 116.779, 123.68]) runs outside the
model: the port's input contract is the source's own raw input, as for MobileNetV2 (docs/architecture.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from convert.arch.registry import register
from convert.runtime.errors import fail

if TYPE_CHECKING:
    from convert.model.census import Census
    from convert.model.weights import Shapes, WeightsMatch

CONVS = 53  # stem + 16 bottlenecks x 3 + 4 projection shortcuts
BLOCKS = (3, 4, 6, 3)  # bottlenecks per stage (torchvision's layer1..layer4)


FEATURES = 2048  # conv5's output channels: what the pooling hands the classifier


def keras_kernels() -> dict[str, tuple[int, int, int, int]]:
    """Every conv of Keras Applications' ResNet50 by its layer name, with its kernel shape (kH, kW, in, out):
    the stem `conv1_conv`, then per stage (conv2..conv5) and block `_1_conv` 1x1, `_2_conv` 3x3, `_3_conv`
    1x1 (4x wide), and the first block's projection shortcut `_0_conv`; each with its BN `..._bn`."""
    kernels = {"conv1_conv": (7, 7, 3, 64)}
    width, channels = 64, 64
    for stage, blocks in enumerate(BLOCKS, start=2):
        for b in range(1, blocks + 1):
            name = f"conv{stage}_block{b}"
            if b == 1:
                kernels[f"{name}_0_conv"] = (1, 1, channels, 4 * width)
            kernels[f"{name}_1_conv"] = (1, 1, channels if b == 1 else 4 * width, width)
            kernels[f"{name}_2_conv"] = (3, 3, width, width)
            kernels[f"{name}_3_conv"] = (1, 1, width, 4 * width)
        channels, width = 4 * width, 2 * width
    return kernels


@register
class ResNet50:
    name = "resnet50"
    title = "ResNet50"
    signature = f"{CONVS} convs, no depthwise convs and one max-pooling"
    body = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")
    classifier = "fc"

    def recognise(self, census: Census) -> bool:
        return census.convs == CONVS and not census.depthwise and census.max_pools == 1 and not census.concats

    def variants(self, first_conv_filters: int | None) -> list[dict[str, Any]]:
        return [{}]  # one width

    def variant_of(self, meta: dict[str, Any]) -> dict[str, Any]:
        return {}

    def torchvision(self, variant: dict[str, Any], num_classes: int):
        """torchvision's resnet50; a feature extractor's (0 classes) without torch's zero-element warning."""
        import warnings

        from torchvision.models import resnet50

        if variant:
            raise fail(f"ResNet50 has no variants; got {variant}")
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Initializing zero-element tensors is a no-op")
            return resnet50(num_classes=num_classes)

    def keras_application(self, keras, variant: dict[str, Any], **kwargs):
        return keras.applications.ResNet50(weights=None, **kwargs)

    def keras_variant(self, layers: list) -> dict[str, Any]:
        return {}

    # weight files (Keras Applications' resnet50_weights_tf_dim_ordering_tf_kernels[_notop].h5, save_weights)
    weights_signature = "layers conv1_conv/bn and conv2..5_blockN_0..3_conv/bn (3, 4, 6, 3 blocks)"

    def recognise_weights(self, shapes: Shapes, where: str) -> WeightsMatch | None:
        """Its body by Keras's layer names (tf_keras and Keras 3 name ResNet50's layers alike), each conv's
        kernel shape checked against the table; the classifier as the one other layer, a Dense from 2048
        features (keras-applications' release called it `probs`, Keras `predictions`)."""
        from convert.model.weights import WeightsMatch

        kernels = keras_kernels()
        if not all(name in shapes for name in kernels):
            return None
        for name, kernel in kernels.items():
            got = shapes[name]
            bn = shapes.get(name[: -len("conv")] + "bn", ())
            if not got or tuple(got[0]) != kernel or len(bn) != 4 or any(tuple(a) != (kernel[-1],) for a in bn):
                raise fail(f"{where}: ResNet50 layer names, but '{name}' holds {[list(a) for a in got]} with BN "
                           f"{[list(a) for a in bn]}; Keras's ResNet50 has a {list(kernel)} kernel and a BN of "
                           f"{kernel[-1]} channels there")
        body = set(kernels) | {name[: -len("conv")] + "bn" for name in kernels}
        extra = [name for name in shapes if name not in body]
        if not extra:
            return WeightsMatch({}, include_top=False, classes=0)
        dense = shapes[extra[0]]
        if len(extra) == 1 and len(dense) == 2 and len(dense[0]) == 2 and dense[0][0] == FEATURES \
                and tuple(dense[1]) == (dense[0][1],):
            return WeightsMatch({}, include_top=True, classes=int(dense[0][1]), classifier_layers=(extra[0],))
        shown = ", ".join(f"{n} {[list(a) for a in shapes[n]]}" for n in extra[:3]) + (" ..." if len(extra) > 3 else "")
        raise fail(f"{where}: ResNet50 weights with layers Keras Applications' ResNet50 does not have: {shown}; only "
                   f"its own classifier (one Dense from {FEATURES} features) fits; for a model of your own, convert "
                   "the file model.save() writes")

    # structure (ordering, strides, bias folding)
    # keras resnet50.preprocess_input (caffe) runs outside the model: BGR pixels minus the ImageNet mean
    # [103.939, 116.779, 123.68], so the raw input spans [-123.68, 255 - 103.939]
    input_range = (-123.68, 151.061)
    folds_conv_bias = True  # Keras's convs carry a bias before each BN: folded into its running mean

    def execution_order(self, layers: list) -> list[int]:
        """torchvision's order: per bottleneck conv1, conv2 (3x3), conv3, then `downsample` (the projection
        shortcut, Keras's `_0_conv`), each conv followed by its BN; dense layers stay last.

        A graph's topological order puts the shortcut anywhere beside the main branch (tf_keras's frozen
        graph: first, its BN interleaved with conv1's; tf2onnx: last), so the order is rebuilt from shapes
        and the dependencies every graph order keeps (conv1 before the 3x3, conv3 after it). The one case
        shapes leave open, layer1.0 (conv3 and the shortcut both 64 -> 256, both after the 3x3), takes the
        one that reads the 3x3's output (`ConvSpec.reads`, the readers' data flow) as conv3, else the later
        one; a wrong guess there changes the function, which conversion measures.
        Anything that is not a ResNet50 keeps its order (the shape check then names the first misfit)."""
        from convert.model.spec import BNSpec, ConvSpec  # numpy: not while --help is built

        identity = list(range(len(layers)))
        units = _units(layers)
        if units is None or len(units) != CONVS:
            return identity
        order = list(units[0])
        at = 1
        for blocks in BLOCKS:
            for b in range(blocks):
                size = 4 if b == 0 else 3
                block = _bottleneck(units[at:at + size], layers)
                if block is None:
                    return identity
                order += [i for unit in block for i in unit]
                at += size
        rest = [i for i in identity if i not in set(order)]
        if any(isinstance(layers[i], (ConvSpec, BNSpec)) for i in rest):
            return identity
        return order + rest


def _units(layers: list) -> list[tuple[int, int]] | None:
    """(conv index, BN index) pairs in the order the convs run: each BN belongs to the earliest earlier
    conv still without one that has as many output channels (a projection shortcut has 4x the channels of
    the conv beside it, so two open convs never share a width)."""
    from convert.model.spec import BNSpec, ConvSpec

    open_convs: list[int] = []
    pairs: dict[int, int] = {}
    for i, layer in enumerate(layers):
        if isinstance(layer, ConvSpec):
            open_convs.append(i)
        elif isinstance(layer, BNSpec):
            match = next((c for c in open_convs if layers[c].weight.shape[0] == layer.gamma.shape[0]), None)
            if match is None:
                return None
            open_convs.remove(match)
            pairs[match] = i
    if open_convs:
        return None
    return [(c, pairs[c]) for c in sorted(pairs)]


def _bottleneck(units: list[tuple[int, int]], layers: list) -> list[tuple[int, int]] | None:
    """One bottleneck's units as torchvision orders them: [conv1, conv2, conv3(, downsample)]."""
    shape = lambda u: layers[u[0]].weight.shape  # noqa: E731  (O, I, kH, kW)
    three = [k for k, u in enumerate(units) if shape(u)[-1] == 3]
    if len(three) != 1:
        return None
    k2 = three[0]
    mid_in, mid_out = shape(units[k2])[1], shape(units[k2])[0]
    first = [k for k in range(k2) if shape(units[k])[0] == mid_in]  # conv1 feeds the 3x3
    if len(first) != 1:
        return None
    k1 = first[0]
    rest = [k for k in range(len(units)) if k not in (k1, k2)]
    if len(units) == 3:
        return [units[k1], units[k2], units[rest[0]]] if rest[0] > k2 and shape(units[rest[0]])[1] == mid_out else None
    # conv3 reads the 3x3's output, so it runs after it; the shortcut reads the block input
    third = [k for k in rest if k > k2 and shape(units[k])[1] == mid_out]
    if not third:
        return None
    name = layers[units[k2][0]].name
    reading = [k for k in third if layers[units[k][0]].reads == name]
    # both fit only in layer1.0 (64 -> 256 either way): data flow says which reads the 3x3 where the reader
    # recorded it (ConvSpec.reads); else the later one is taken as the shortcut
    k3 = reading[0] if len(reading) == 1 else third[0]
    (kd,) = [k for k in rest if k != k3]
    return [units[k1], units[k2], units[k3], units[kd]]
