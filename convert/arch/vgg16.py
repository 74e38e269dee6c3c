"""VGG16 (Simonyan & Zisserman 2014): Keras Applications' `VGG16` and torchvision's `vgg16`.

Same 13 convs (3x3, stride 1, SAME = torchvision's padding 1, each with a bias and a ReLU, no BN) in the
same order, the same five 2x2/2 max-pools, so the canonical mapping fills torchvision's `features.N`
slots by execution order, biases included. The pitfall is after the backbone: Keras's `Flatten` runs over
NHWC, so the first Dense after it (fc1, 25088 -> 4096 at 224 px; the user's own first Dense on a
fine-tuned `include_top=False` base) reads its inputs in (h, w, c) order, where torchvision flattens NCHW
(c, h, w). Shapes match either way, so a port that copies fc1's columns as they are (MMdnn's famous VGG
bug) loads `strict=True` and computes another function. The readers record the order the source
flattens in (`convert.model.spec.FlattenSpec`), the canonical mapping permutes that Dense's columns into
NCHW, and the metadata's `flatten` says so (convert.port.build flattens in the order it names).

Heads: Keras's top (Flatten -> fc1 relu -> fc2 relu -> predictions) is torchvision's classifier
(Linear, ReLU, Dropout, Linear, ReLU, Dropout, Linear) wherever its shapes fit, i.e. a 7x7 map (224 px),
where torchvision's `AdaptiveAvgPool2d(7)` is the identity; at other sizes, and for any other Dense stack,
the head is the port's own (`head.N.*`) after the same NCHW flatten. A feature extractor's state dict is
`features.*` alone (torchvision's 120M-parameter classifier is not allocated for a backbone that has none).

No BatchNorm: eval and train mode compute the same function up to dropout (torchvision's classifier has
two Dropout layers, Keras's top none), so parity certifies eval mode and says why train mode is not
compared. Keras's `vgg16.preprocess_input` (caffe: RGB->BGR, minus the ImageNet mean) runs outside the
model, as ResNet50's: the port's input contract is the source's own raw input.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from convert.arch.registry import register
from convert.runtime.errors import fail

if TYPE_CHECKING:
    from convert.model.census import Census
    from convert.model.weights import Shapes, WeightsMatch

CONVS = 13  # 2 + 2 + 3 + 3 + 3 per block
MAX_POOLS = 5  # one closing each block
BLOCKS = (2, 2, 3, 3, 3)  # convs per block (Keras: block1_conv1 .. block5_conv3)
TOP = ("fc1", "fc2", "predictions")  # Keras Applications' top, after `flatten`


def keras_weighted_layers() -> tuple[str, ...]:
    """Every layer with weights in Keras Applications' VGG16 body, in order (its top aside)."""
    return tuple(f"block{b}_conv{i}" for b, n in enumerate(BLOCKS, start=1) for i in range(1, n + 1))


@register
class VGG16:
    name = "vgg16"
    title = "VGG16"
    signature = f"{CONVS} convs, no depthwise convs and {MAX_POOLS} max-poolings"
    body = ("features",)
    classifier = "classifier"

    def recognise(self, census: Census) -> bool:
        # adds are not counted against it: preprocessing inside a model (x - mean, Normalization) adds too, and
        # no residual network has exactly these convs and pools
        return (census.convs == CONVS and not census.depthwise and census.max_pools == MAX_POOLS
                and not census.concats)

    def variants(self, first_conv_filters: int | None) -> list[dict[str, Any]]:
        return [{}]  # one width

    def variant_of(self, meta: dict[str, Any]) -> dict[str, Any]:
        return {}

    def torchvision(self, variant: dict[str, Any], num_classes: int):
        """torchvision's vgg16; a feature extractor (0 classes) without a classifier at all: its two hidden
        Linears (25088 x 4096, 4096 x 4096) would be ~480 MB of zeros in every backbone's state dict."""
        from torch import nn
        from torchvision.models import vgg16

        if variant:
            raise fail(f"VGG16 has no variants; got {variant}")
        if num_classes:
            return vgg16(num_classes=num_classes)
        import torch

        device = torch.empty(0).device  # the caller's default (meta while slots are read and ports built)
        with torch.device("meta"):  # the classifier is never allocated, wherever the caller builds
            model = vgg16(num_classes=1)
        model.classifier = nn.Sequential()
        if device.type != "meta":
            model = model.to_empty(device=device)
            for m in model.features.modules():  # torchvision's own init of its convs
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                    nn.init.zeros_(m.bias)
        return model

    # weight files (Keras Applications .h5: vgg16_weights_tf_dim_ordering_tf_kernels[_notop].h5, save_weights)
    weights_signature = "layers block1_conv1 .. block5_conv3, and fc1, fc2, predictions with the top"

    def recognise_weights(self, shapes: Shapes, where: str) -> WeightsMatch | None:
        """Its 13 convs by layer name; the top as Keras Applications' own three Dense layers (fc1's rows fix
        the input size: 25088 is 224 px, which --input-size must then give); the classes from predictions."""
        from convert.model.weights import WeightsMatch

        body = keras_weighted_layers()
        if not all(name in shapes for name in body):
            return None
        extra = [name for name in shapes if name not in body]
        if not extra:
            return WeightsMatch({}, include_top=False, classes=0)
        if extra == list(TOP) and all(len(shapes[n]) == 2 and len(shapes[n][0]) == 2 for n in TOP):
            return WeightsMatch({}, include_top=True, classes=shapes["predictions"][0][1], classifier_layers=TOP)
        shown = ", ".join(f"{n} {list(map(list, shapes[n]))}" for n in extra[:3]) + (" ..." if len(extra) > 3 else "")
        raise fail(f"{where}: VGG16 weights with layers Keras Applications' VGG16 does not have: {shown}; only "
                   f"its own top ({', '.join(TOP)}) fits; for a model of your own, convert the file model.save() "
                   "writes")

    def keras_application(self, keras, variant: dict[str, Any], **kwargs):
        return keras.applications.VGG16(weights=None, **kwargs)

    def keras_variant(self, layers: list) -> dict[str, Any]:
        return {}

    # structure (ordering, strides, biases, the classifier's shape)
    # keras vgg16.preprocess_input (caffe) runs outside the model, as ResNet50's: BGR minus the ImageNet mean
    input_range = (-123.68, 151.061)
    folds_conv_bias = False  # no BN to fold into: the bias is torchvision's own conv bias
    conv_bias = True  # torchvision's convs carry a bias (a path's "conv + bias" is that, not a folded BN)
    # torchvision's classifier takes the flattened 7x7 map (its avgpool is the identity there) through
    # Linear, ReLU, Dropout, Linear, ReLU, Dropout, Linear: a source head fits it where it is a Flatten, then
    # two Dense with ReLU and one more, each of the classifier's shape
    classifier_input = "flatten"
    classifier_hidden = ("relu", "relu")
    # how a fine-tuned VGG16 is usually saved (the sample's transfer model): Flatten -> Dense(units, relu) -> ...
    transfer_head = ("flatten", 32)

    def execution_order(self, layers: list) -> list[int]:
        return list(range(len(layers)))  # no branches: a graph's order is torchvision's

