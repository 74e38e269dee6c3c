"""MobileNetV2 (Sandler et al. 2018): Keras Applications' `MobileNetV2` and torchvision's `mobilenet_v2`.

Same layers in the same order (stem conv, 17 inverted residual blocks of expand 1x1 -> depthwise 3x3 ->
project 1x1, a last 1x1 conv to 1280 channels, then pooling and one Dense), so the canonical mapping
fills torchvision's slots by execution order. What differs is semantics, carried as parameter values:
TF SAME padding on the stride-2 convs, BN eps 1e-3 and decay 0.999, inputs in [-1, 1].

Widths: Keras's `alpha` is torchvision's `width_mult`; both round channels with the same
`make_divisible` (multiples of 8, never more than 10 % below), so every Keras width has a torchvision twin.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from convert.arch.registry import register
from convert.model.options import MOBILENET_V2_ALPHAS
from convert.runtime.errors import fail

if TYPE_CHECKING:
    from convert.model.census import Census
    from convert.model.weights import Shapes, WeightsMatch

ALPHAS = MOBILENET_V2_ALPHAS  # Keras Applications' widths (its weight files exist for these)
DEPTHWISE_CONVS = 17  # one per inverted residual block
# each inverted residual block's output channels at alpha 1 (the paper's table 2, `c`; Keras's `filters`),
# block 0 first: Keras names it expanded_conv_ (no expansion), the others block_1_ .. block_16_
BLOCK_FILTERS = (16, 24, 24, 32, 32, 32, 64, 64, 64, 64, 96, 96, 96, 160, 160, 160, 320)
LAST_FILTERS = 1280  # Conv_1; widened above alpha 1, never narrowed (Keras: "no alpha applied to last conv")


def make_divisible(v: float, divisor: int = 8) -> int:
    """torchvision's (and Keras's) channel rounding for width multipliers."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


def _block(i: int) -> str:
    return "expanded_conv" if i == 0 else f"block_{i}"


def keras_widths(alpha: float) -> dict[str, int]:
    """The output channels of Keras's MobileNetV2 convs that fix its width: the stem, every projection,
    the last 1x1 conv (Keras's own rounding: `_make_divisible(int(filters * alpha), 8)` per projection)."""
    widths = {"Conv1": make_divisible(32 * alpha)}
    widths.update({f"{_block(i)}_project": make_divisible(int(f * alpha)) for i, f in enumerate(BLOCK_FILTERS)})
    widths["Conv_1"] = make_divisible(LAST_FILTERS * alpha) if alpha > 1.0 else LAST_FILTERS
    return widths


def keras_weighted_layers() -> tuple[str, ...]:
    """Every layer with weights in Keras Applications' MobileNetV2 body, in order (the classifier aside)."""
    names = ["Conv1", "bn_Conv1"]
    for i in range(len(BLOCK_FILTERS)):
        parts = ("depthwise", "project") if i == 0 else ("expand", "depthwise", "project")
        names += [n for part in parts for n in (f"{_block(i)}_{part}", f"{_block(i)}_{part}_BN")]
    return (*names, "Conv_1", "Conv_1_bn")


@register
class MobileNetV2:
    name = "mobilenet_v2"
    title = "MobileNetV2"
    signature = f"{DEPTHWISE_CONVS} depthwise convs, residual adds and no max-pooling"
    body = ("features",)
    classifier = "classifier"

    def recognise(self, census: Census) -> bool:
        return census.depthwise == DEPTHWISE_CONVS and not census.max_pools and not census.concats

    def variants(self, first_conv_filters: int | None) -> list[dict[str, Any]]:
        """Every width, the one whose stem has as many filters as the source's first conv first."""
        stem = 32 if first_conv_filters is None else first_conv_filters
        return [{"alpha": a} for a in sorted(ALPHAS, key=lambda a: abs(make_divisible(32 * a) - stem))]

    def variant_of(self, meta: dict[str, Any]) -> dict[str, Any]:
        alpha = float(meta["alpha"])
        # a width no MobileNetV2 has would allocate without bound (alpha 40 is ~22 GB)
        if not any(math.isclose(alpha, a) for a in ALPHAS):
            raise fail(
                f"checkpoint metadata: alpha {alpha:g} is not a MobileNetV2 width ({', '.join(map(str, ALPHAS))})"
            )
        return {"alpha": alpha}

    def torchvision(self, variant: dict[str, Any], num_classes: int):
        """torchvision's MobileNetV2; a feature extractor's (0 classes) without torch's warning that
        initialising its empty classifier is a no-op (printed on every load otherwise)."""
        import warnings

        from torchvision.models import mobilenet_v2

        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Initializing zero-element tensors is a no-op")
            return mobilenet_v2(width_mult=float(variant["alpha"]), num_classes=num_classes)

    def keras_application(self, keras, variant: dict[str, Any], **kwargs):
        return keras.applications.MobileNetV2(alpha=variant["alpha"], weights=None, **kwargs)

    def keras_variant(self, layers: list) -> dict[str, Any]:
        """The width of a Keras MobileNetV2 from its layers: the stem's filters, then (several widths share
        a stem) block 1's projection."""
        first = next(layer for layer in layers if layer.__class__.__name__ == "Conv2D")
        proj = [layer for layer in layers if layer.name == "expanded_conv_project"]
        for a in ALPHAS:
            if make_divisible(32 * a) == first.filters and (not proj or proj[0].filters == make_divisible(int(16 * a))):
                return {"alpha": a}
        raise fail("cannot infer the width (alpha) of the Keras MobileNetV2")

    # weight files (Keras Applications .h5, save_weights)
    weights_signature = "layers Conv1, expanded_conv_*, block_1_* .. block_16_* (expand, depthwise, project) and Conv_1"

    def recognise_weights(self, shapes: Shapes, where: str) -> WeightsMatch | None:
        """Its body by layer name; the width from every projection's filters (0.35 and 0.5 share a stem);
        the classifier as the one other layer, a Dense from Conv_1's channels (its name changed between
        Keras releases)."""
        from convert.model.weights import WeightsMatch

        body = keras_weighted_layers()
        if not all(name in shapes for name in body):
            return None
        found = {name: shapes[name][0][-1] if shapes[name] else 0 for name in keras_widths(1.0)}
        alpha = next((a for a in ALPHAS if keras_widths(a) == found), None)
        if alpha is None:
            raise fail(f"{where}: MobileNetV2 layers of no Keras width: Conv1 has {found['Conv1']} filters, "
                       f"block_16_project {found['block_16_project']}, Conv_1 {found['Conv_1']} "
                       f"(alphas {', '.join(map(str, ALPHAS))})")
        last = found["Conv_1"]
        extra = [name for name in shapes if name not in body]
        if not extra:
            return WeightsMatch({"alpha": alpha}, include_top=False, classes=0)
        dense = extra[0]
        kernel = shapes[dense]
        if len(extra) == 1 and len(kernel) == 2 and len(kernel[0]) == 2 and kernel[0][0] == last \
                and kernel[1] == (kernel[0][1],):
            return WeightsMatch({"alpha": alpha}, include_top=True, classes=kernel[0][1], classifier_layers=(dense,))
        shown = ", ".join(f"{n} {list(map(list, shapes[n]))}" for n in extra[:3]) + (" ..." if len(extra) > 3 else "")
        raise fail(f"{where}: MobileNetV2 weights (alpha {alpha:g}) with layers Keras Applications' MobileNetV2 "
                   f"does not have: {shown}; only its own classifier (one Dense from {last} channels) fits; "
                   "for a model of your own, convert the file model.save() writes")

    # structure (ordering, strides, bias folding)
    input_range = (-1.0, 1.0)  # keras mobilenet_v2.preprocess_input: x / 127.5 - 1
    folds_conv_bias = False  # its convs have no bias in any Keras or slim graph: one there is another network

    def execution_order(self, layers: list) -> list[int]:
        return list(range(len(layers)))  # no weighted branches: a graph's order is torchvision's
