"""MobileNetV3 Large and Small (Howard et al. 2019): Keras Applications' `MobileNetV3Large/Small` and
torchvision's `mobilenet_v3_large/small`.

Same layers in the same order (stem conv, inverted residual blocks of [expand 1x1] -> depthwise 3x3/5x5
-> [squeeze-excitation] -> project 1x1, a last 1x1 conv, then pooling and the classifier), so the
canonical mapping fills torchvision's slots by execution order. What differs is semantics, carried as
metadata and set on torchvision's modules (convert.port.build), as for MobileNetV2:
  - preprocessing inside the model: `include_preprocessing=True` puts Rescaling(1/127.5, offset=-1) first,
    so the source is fed 0..255 pixels (torchvision's is fed ImageNet mean/std): the port keeps the affine;
  - padding: the stem is a 3x3/2 conv with TF SAME (0 before, 1 after on even sizes), every stride-2
    depthwise is ZeroPadding2D(correct_pad) + VALID, which is TF SAME at the declared size (5x5: 1
    before, 2 after); torchvision pads symmetrically;
  - BN eps 1e-3 and Keras momentum 0.999 (PyTorch 0.001); torchvision builds eps 0.001, momentum 0.01.
What agrees (tests/convert/test_mobilenet_v3.py measures each): hard-swish x * ReLU6(x + 3) / 6 is torch's
Hardswish, hard-sigmoid ReLU6(x + 3) / 6 its Hardsigmoid; Keras's squeeze width `_depth(c * 0.25)` is
torchvision's `_make_divisible(c // 4, 8)` for every block; the head's 1x1 convs on the pooled 1x1 map
are torchvision's `classifier.0` / `classifier.3` Linears.

Widths: Keras's `alpha` scales the block outputs only (the stem stays 16, expansions follow the scaled
inputs); torchvision's `width_mult` scales every table entry. They agree at alpha 1.0 only, and
`minimalistic=True` (ReLU, 3x3 kernels, no squeeze-excitation) has no torchvision builder at all: those
variants are refused in one line naming them (`require_twin`), rather than ported into a non-stock model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from convert.arch.mobilenet_v2 import make_divisible
from convert.arch.registry import register
from convert.runtime.errors import fail

if TYPE_CHECKING:
    from convert.model.census import Census
    from convert.model.spec import ModelSpec
    from convert.model.weights import Shapes, WeightsMatch

# Keras Applications' block tables (keras/src/applications/mobilenet_v3.py, `stack_fn`), one row per
# inverted residual block: expansion, output filters (before alpha), kernel ("k": 5, or 3 when
# minimalistic), stride, squeeze-excitation, activation ("hs": hard-swish, or ReLU when minimalistic)
SMALL = (
    (1, 16, 3, 2, True, "relu"),
    (72 / 16, 24, 3, 2, False, "relu"),
    (88 / 24, 24, 3, 1, False, "relu"),
    (4, 40, "k", 2, True, "hs"),
    (6, 40, "k", 1, True, "hs"),
    (6, 40, "k", 1, True, "hs"),
    (3, 48, "k", 1, True, "hs"),
    (3, 48, "k", 1, True, "hs"),
    (6, 96, "k", 2, True, "hs"),
    (6, 96, "k", 1, True, "hs"),
    (6, 96, "k", 1, True, "hs"),
)
LARGE = (
    (1, 16, 3, 1, False, "relu"),
    (4, 24, 3, 2, False, "relu"),
    (3, 24, 3, 1, False, "relu"),
    (3, 40, "k", 2, True, "relu"),
    (3, 40, "k", 1, True, "relu"),
    (3, 40, "k", 1, True, "relu"),
    (6, 80, 3, 2, False, "hs"),
    (2.5, 80, 3, 1, False, "hs"),
    (2.3, 80, 3, 1, False, "hs"),
    (2.3, 80, 3, 1, False, "hs"),
    (6, 112, 3, 1, True, "hs"),
    (6, 112, 3, 1, True, "hs"),
    (6, 160, "k", 2, True, "hs"),
    (6, 160, "k", 1, True, "hs"),
    (6, 160, "k", 1, True, "hs"),
)
STEM = 16  # Keras's stem conv: 16 filters whatever alpha
SE_RATIO = 0.25
# widths Keras's MobileNetV3 accepts (any alpha with weights=None; ImageNet weights exist for 0.75 and 1.0):
# those a refusal names, alpha 1.0 the only one with a torchvision twin
KERAS_ALPHAS = (0.35, 0.5, 0.75, 1.0, 1.25, 1.5)


def keras_convs(table: tuple, alpha: float = 1.0, minimalistic: bool = False) -> list[tuple[int, int]]:
    """(output channels, kernel size) of every conv of Keras's MobileNetV3 body, in execution order (stem,
    per block [expand], depthwise, [squeeze, excite], project; the last 1x1 conv): its structure as data."""
    kernel = 3 if minimalistic else 5
    convs = [(STEM, 3)]
    infilters = STEM
    for block_id, (expansion, filters, k, _stride, se, _act) in enumerate(table):
        expanded = make_divisible(infilters * expansion)  # Keras's `_depth`, torchvision's `_make_divisible`
        if block_id:
            convs.append((expanded, 1))
        convs.append((expanded, kernel if k == "k" else k))
        if se and not minimalistic:
            convs += [(make_divisible(expanded * SE_RATIO), 1), (expanded, 1)]
        infilters = make_divisible(filters * alpha)
        convs.append((infilters, 1))
    convs.append((make_divisible(infilters * 6), 1))
    return convs


def keras_variant_of(table: tuple, found: list[tuple[int, int]]) -> tuple[float, bool] | None:
    """(alpha, minimalistic) of the Keras variant whose convs are `found`, None where none is."""
    for minimalistic in (False, True):
        for alpha in KERAS_ALPHAS:
            if found == keras_convs(table, alpha, minimalistic):
                return alpha, minimalistic
    return None


TOP = ("Conv_2", "Logits")  # Keras's top: the 1x1 conv after the pooling, then the logits 1x1 conv


def _keras_conv_keys(blocks: int) -> list[str]:
    """Keras's MobileNetV3 conv layers (`layer_key`s) in execution order: the stem, per block [expand],
    depthwise, [squeeze-excitation's two convs], project, the last 1x1 conv (those a variant lacks are
    absent from a file)."""
    keys = ["conv"]
    for i in range(blocks):
        prefix = "expanded_conv" if i == 0 else f"expanded_conv_{i}"
        keys += [f"{prefix}_{part}" for part in ("expand", "depthwise", "squeeze_excite_conv",
                                                  "squeeze_excite_conv_1", "project")]
    return keys + ["conv_1"]


def spec_convs(spec: ModelSpec) -> list[tuple[int, int]]:
    """(output channels, kernel size) of every conv a reader found, in the same order."""
    return [(int(c.weight.shape[0]), int(c.weight.shape[-1])) for c in spec.convs]


class _MobileNetV3:
    """What Large and Small share; each registers with its table and torchvision builder."""

    table: ClassVar[tuple]
    builder: ClassVar[str]  # torchvision.models' function
    keras_name: ClassVar[str]  # keras.applications' class
    body = ("features",)
    classifier = "classifier"
    # torchvision's classifier: Linear(C, last) -> Hardswish -> Dropout -> Linear(last, classes); Keras's top:
    # GAP -> 1x1 conv (bias) -> hard-swish -> Dropout -> 1x1 conv logits, the same function on a 1x1 map
    classifier_hidden: ClassVar[tuple[str, ...]] = ("hard_swish",)  # convert.arch.structure

    def recognise(self, census: Census) -> bool:
        return census.depthwise == len(self.table) and not census.max_pools and not census.concats

    def variants(self, first_conv_filters: int | None) -> list[dict[str, Any]]:
        return [{}]  # alpha 1.0, not minimalistic: the only variant torchvision builds (require_twin)

    def variant_of(self, meta: dict[str, Any]) -> dict[str, Any]:
        return {}

    def torchvision(self, variant: dict[str, Any], num_classes: int):
        """torchvision's builder; a feature extractor's (0 classes) without torch's zero-element warning."""
        import warnings

        from torchvision import models

        if variant:
            raise fail(f"{self.title} has no variants torchvision builds; got {variant}")
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Initializing zero-element tensors is a no-op")
            return getattr(models, self.builder)(num_classes=num_classes)

    def keras_application(self, keras, variant: dict[str, Any], **kwargs):
        return getattr(keras.applications, self.keras_name)(weights=None, **variant, **kwargs)

    def keras_variant(self, layers: list) -> dict[str, Any]:
        return {}

    def require_twin(self, spec: ModelSpec, where: str) -> None:
        """Refuse, in one line naming it, a Keras variant torchvision has no builder for (alpha other than
        1.0, minimalistic=True): recognised from the convs' widths and kernels, before any conversion runs.
        A body of no Keras variant is left to the canonical mapping, which names the first misfit."""
        self._refuse_variant(keras_variant_of(self.table, spec_convs(spec)), where)

    def _refuse_variant(self, variant: tuple[float, bool] | None, where: str) -> None:
        if variant is None or variant == (1.0, False):
            return
        alpha, minimalistic = variant
        named = ", ".join([f"alpha={alpha:g}"] * (alpha != 1.0) + ["minimalistic=True"] * minimalistic)
        raise fail(f"{where}: a {self.title} with {named}, which torchvision has no twin of "
                   f"(torchvision's {self.builder} is Keras's alpha=1.0, minimalistic=False: "
                   "squeeze-excitation, hard-swish, 5x5 kernels); only that variant is ported")

    # weight files (Keras Applications' weights_mobilenet_v3_*_float[_no_top_v2].h5, tf_keras save_weights)
    weights_signature = ("layers Conv, expanded_conv[_N]/ (expand, depthwise, squeeze_excite/Conv[_1], project) and "
                         "Conv_1 (tf_keras's names; Keras 3's flattened: expanded_conv_N_depthwise)")

    def recognise_weights(self, shapes: Shapes, where: str) -> WeightsMatch | None:
        """Its body by Keras's layer names, as tf_keras writes them (Keras Applications' downloads:
        `expanded_conv/depthwise`) or Keras 3 (`expanded_conv_depthwise`; `layer_key` reads both), its size by
        the number of blocks, the variant from every conv's width and kernel in execution order (built from
        the names: a Keras 3 file lists its layers alphabetically), Keras's top (Conv_2, Logits) with the
        class count from the logits' kernel."""
        from convert.model.weights import WeightsMatch, layer_key

        names = {layer_key(n): n for n in shapes}
        keyed = {layer_key(n): v for n, v in shapes.items()}
        depthwise = [n for n in keyed if n.startswith("expanded_conv") and n.endswith("_depthwise")]
        if "conv" not in keyed or "conv_1" not in keyed or len(depthwise) != len(self.table):
            return None
        order = _keras_conv_keys(len(self.table))
        convs = [(keyed[n][0][-2] if n.endswith("_depthwise") else keyed[n][0][-1], keyed[n][0][0])
                 for n in order if keyed.get(n)]
        variant = keras_variant_of(self.table, convs)
        if variant is None:
            raise fail(f"{where}: {self.title} layer names with widths of no Keras {self.title} (alphas "
                       f"{', '.join(map(str, KERAS_ALPHAS))}, minimalistic or not)")
        self._refuse_variant(variant, where)
        top = [n for n in TOP if layer_key(n) in keyed]
        if not top:
            return WeightsMatch({}, include_top=False, classes=0)
        logits = keyed.get(layer_key("Logits"), ())
        if top != list(TOP) or len(logits) != 2 or len(logits[0]) != 4:
            raise fail(f"{where}: {self.title} weights with part of Keras's top ({', '.join(top)}); Keras "
                       f"Applications' has both {' and '.join(TOP)}")
        return WeightsMatch({}, include_top=True, classes=int(logits[0][-1]),
                            classifier_layers=tuple(names[layer_key(n)] for n in TOP))

    # structure (ordering, strides, bias folding)
    # with include_preprocessing=False the backbone is fed what Rescaling(1/127.5, -1) makes of pixels
    input_range = (-1.0, 1.0)
    # the raw input a sample model is fed: Keras builds include_preprocessing=True, 0..255 pixels
    keras_input_range = (0.0, 255.0)
    folds_conv_bias = False  # only the squeeze-excitation convs carry a bias, as torchvision's do

    def execution_order(self, layers: list) -> list[int]:
        return list(range(len(layers)))  # the squeeze-excitation runs in line: a graph's order is torchvision's


@register
class MobileNetV3Large(_MobileNetV3):
    name = "mobilenet_v3_large"
    title = "MobileNetV3Large"
    signature = f"{len(LARGE)} depthwise convs (3x3 and 5x5), squeeze-excitation units and no max-pooling"
    table = LARGE
    builder = "mobilenet_v3_large"
    keras_name = "MobileNetV3Large"


@register
class MobileNetV3Small(_MobileNetV3):
    name = "mobilenet_v3_small"
    title = "MobileNetV3Small"
    signature = f"{len(SMALL)} depthwise convs (3x3 and 5x5), squeeze-excitation units and no max-pooling"
    table = SMALL
    builder = "mobilenet_v3_small"
    keras_name = "MobileNetV3Small"
