"""The registry itself: what an architecture provides (:class:`Architecture`), registration, lookup."""


from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple, Protocol

from convert.runtime.errors import fail

if TYPE_CHECKING:  # the CLIs import the registry while building --help: no dataclasses machinery then
    from convert.model.census import Census
    from convert.model.spec import ModelSpec
    from convert.model.weights import Shapes, WeightsMatch


class Architecture(Protocol):
    name: ClassVar[str]  # metadata's `arch`, e.g. "mobilenet_v2"
    title: ClassVar[str]  # for messages: "MobileNetV2"
    signature: ClassVar[str]  # what its graph has, for refusals: "17 depthwise convs, residual adds and no max-pooling"
    body: ClassVar[tuple[str, ...]]  # torchvision attributes run in order before the pooling ("features",)
    classifier: ClassVar[str]  # torchvision's classifier attribute ("classifier"; its last Linear is the dense slot)

    def recognise(self, census: Census) -> bool:
        """Is a graph with this op census this architecture?"""

    def variants(self, first_conv_filters: int | None) -> list[dict[str, Any]]:
        """Every variant (width, ...) the canonical mapping may try, likeliest first."""

    def variant_of(self, meta: dict[str, Any]) -> dict[str, Any]:
        """The variant recorded in checkpoint metadata, validated (metadata is input: no unbounded widths)."""

    def torchvision(self, variant: dict[str, Any], num_classes: int):
        """The stock torchvision model of that variant, random init, no weights downloaded."""

    def keras_application(self, keras, variant: dict[str, Any], **kwargs):
        """The Keras Applications model of that variant (weights=None), for sample models."""

    def keras_variant(self, layers: list) -> dict[str, Any]:
        """The variant of a Keras model of this architecture, from its (flattened) layers."""

    # weight files (Keras Applications .h5, save_weights)
    weights_signature: ClassVar[str]  # its weighted layers in words, for refusals: "Conv1, block_1..16_*, Conv_1"

    def recognise_weights(self, shapes: Shapes, where: str) -> WeightsMatch | None:
        """A weights-only file whose layers (name -> weight shapes, file order) are this architecture's: its
        variant, top and classes (None: not this architecture; one line if it is but fits no variant)."""

    # structure (ordering, strides, bias folding)
    # The range the backbone's own input is fed in where the model does no preprocessing itself: the
    # source's raw input (MobileNetV2: [-1, 1]; ResNet50: caffe-preprocessed BGR, [-123.68, 151.061]).
    input_range: ClassVar[tuple[float, float]]
    # A conv bias directly before its BN folds into the BN's running mean (mean - b): exact in eval and
    # train mode. Architectures whose torchvision convs have no bias and whose sources may (ResNet50) say so.
    folds_conv_bias: ClassVar[bool]

    def execution_order(self, layers: list) -> list[int]:
        """A permutation of a reader's layers into torchvision's module order (indices into `layers`).

        Readers yield layers in the graph's topological order, which for branches (ResNet's projection
        shortcut) is not torchvision's `named_modules` order and differs between graphs (TF, ONNX, TFLite);
        identity where the architecture has no branches with weights."""

    # Optional members (`structure` below reads them with these defaults, :class:`Structure`, so an
    # architecture says only where it differs):
    #   conv_bias: bool = False             torchvision's convs carry a bias (VGG16): a path's conv bias with
    #                                       nothing after it is that bias, not a BN the path folded away
    #   classifier_input: str = "avg"       the pooling before torchvision's classifier ("flatten": VGG16's
    #                                       flattened 7x7 map)
    #   classifier_hidden: tuple = ()       the activations of the classifier's Linears before its last one
    #                                       (MobileNetV3's ("hard_swish",), VGG16's ("relu", "relu"))
    #   transfer_head: tuple = ("avg", 0)   the sample transfer model's head: pooling, hidden Dense units (0: none)
    #   keras_input_range = (-1.0, 1.0)     what a sample's Keras application is fed (MobileNetV3, which
    #                                       rescales in the model: 0..255): its BN statistics' calibration


class Structure(NamedTuple):
    """An architecture's optional structure members, with their defaults (see :class:`Architecture`)."""

    conv_bias: bool = False
    classifier_input: str = "avg"
    classifier_hidden: tuple[str, ...] = ()
    transfer_head: tuple[str, int] = ("avg", 0)
    keras_input_range: tuple[float, float] = (-1.0, 1.0)


def structure(arch: Architecture) -> Structure:
    """What `arch` declares of :class:`Structure`, the defaults where it declares nothing."""
    return Structure(*(getattr(arch, name, default) for name, default in Structure._field_defaults.items()))


ARCHITECTURES: dict[str, Architecture] = {}
DEFAULT = "mobilenet_v2"  # what checkpoints written before the registry are


def register(cls: type) -> type:
    """Class decorator: register one architecture under its `name` (duplicates raise)."""
    if cls.name in ARCHITECTURES:
        raise ValueError(f"architecture {cls.name!r} is registered twice")
    ARCHITECTURES[cls.name] = cls()
    return cls


def get(name: str | None) -> Architecture:
    """The architecture registered as `name` (None: checkpoints from before the registry, MobileNetV2)."""
    try:
        return ARCHITECTURES[name or DEFAULT]
    except (KeyError, TypeError):
        raise fail(f"architecture {name!r} is not supported; known: {', '.join(ARCHITECTURES)}") from None


def of(meta: dict[str, Any]) -> Architecture:
    """The architecture a checkpoint's metadata describes."""
    return get(meta.get("arch"))


def in_torchvision_order(spec: ModelSpec, arch: str | None = None) -> ModelSpec:
    """`spec` with its layers (and their taps) in torchvision's module order (the `execution_order` of
    `arch`, default the spec's own) and kinds: what the canonical mapping and the probe points' alignment
    index into. A path's reading of a graph does not know its architecture yet: it is the source's. Where
    the architecture's convs carry biases (`conv_bias`), a bias a path could only read as a folded BN
    (ONNX, TFLite: conv + bias, nothing after) goes back into its conv."""
    family = get(arch or spec.arch)
    if structure(family).conv_bias:
        spec = _biases_into_convs(spec)
    order = family.execution_order(spec.layers)
    if order == list(range(len(spec.layers))):
        return spec
    if sorted(order) != list(range(len(spec.layers))):
        raise ValueError(f"{spec.arch}: execution_order is not a permutation of {len(spec.layers)} layers")
    import dataclasses

    new_index = {old: new for new, old in enumerate(order)}
    taps = {new_index[i]: t for i, t in spec.taps.items() if i in new_index}
    return dataclasses.replace(spec, layers=[spec.layers[i] for i in order], taps=taps)


def recognise(census: Census, where: str) -> Architecture:
    """The registered architecture whose op census this is, or one line naming what the file looks like."""
    from convert.model.census import likeliest_family

    for arch in ARCHITECTURES.values():
        if arch.recognise(census):
            return arch
    titles = " or ".join(a.title for a in ARCHITECTURES.values())
    has = "; ".join(f"a {a.title} has {a.signature}" for a in ARCHITECTURES.values())
    raise fail(f"{where}: not a {titles}: found {census.describe()} — {likeliest_family(census)}; {has}")



def recognise_weights(shapes: Shapes, where: str) -> tuple[Architecture, WeightsMatch]:
    """The registered architecture a weights-only file holds, or one line naming what the file has. An
    architecture registered without the weight-file members is not one a weights file can be (yet)."""
    readers = [a for a in ARCHITECTURES.values() if hasattr(a, "recognise_weights")]
    for arch in readers:
        match = arch.recognise_weights(shapes, where)
        if match is not None:
            return arch, match
    names = list(shapes)
    shown = ", ".join(names[:4]) + (f", ..., {names[-1]}" if len(names) > 4 else "")
    has = "; ".join(f"a {a.title} has {a.weights_signature}" for a in readers)
    raise fail(f"{where}: weights of no registered architecture: {len(names)} layers with weights ({shown}); {has}")


def _biases_into_convs(spec: ModelSpec) -> ModelSpec:
    """Each folded BN that is a pure shift (scale 1: a conv's bias as ONNX and TFLite readers describe it)
    right after a bias-less conv, merged into that conv's bias; its taps move onto the conv. A BN that
    scales is left alone: it is no conv bias, and the canonical mapping names the misfit."""
    import dataclasses

    import numpy as np

    from convert.model.spec import BNSpec, ConvSpec

    layers: list = []
    taps: dict[int, dict[str, str]] = {}
    for i, layer in enumerate(spec.layers):
        prev = layers[-1] if layers else None
        if (isinstance(layer, BNSpec) and layer.folded and isinstance(prev, ConvSpec) and prev.bias is None
                and np.allclose(layer.gamma / np.sqrt(layer.var + layer.eps), 1.0, rtol=1e-6, atol=0)
                and not np.any(layer.mean)):
            layers[-1] = dataclasses.replace(prev, bias=np.asarray(layer.beta, np.float32))
            taps[len(layers) - 1] = {**taps.get(len(layers) - 1, {}), **spec.taps.get(i, {})}
            continue
        if i in spec.taps:
            taps[len(layers)] = spec.taps[i]
        layers.append(layer)
    if len(layers) == len(spec.layers):
        return spec
    return dataclasses.replace(spec, layers=layers, taps=taps)
