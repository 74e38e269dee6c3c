"""The canonical mapping: a source's layers into the stock torchvision model of its architecture.

Mapping is by execution order and shape: every reader yields conv/BN/dense layers in the order they
run, which is the order of torchvision's modules. Nothing is transposed here (readers already hold
PyTorch layouts), so a weight in the wrong layout fails the shape check instead of being "fixed" by
trying permutations until something fits. The semantics the source had (padding, eps, momentum, input
affine, head) go into the metadata, which convert.port.build sets on torchvision's own modules.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from convert import arch as architectures
from convert.model.layouts import flatten_columns
from convert.model.spec import TF_DEFAULT_BN_DECAY, BNSpec, ConvSpec, DenseSpec, ModelSpec, tf_same_pads
from convert.port.build import build
from convert.runtime.errors import fail


@dataclass(frozen=True)
class Slot:
    key: str  # torchvision module path, e.g. features.3.conv.1.0
    kind: str  # conv | depthwise | bn | dense
    shape: tuple[int, ...]
    stride: int = 1  # torchvision's (convs); where the source's differs, the metadata's `stride` says so
    bias: bool = False  # torchvision's conv has a bias of its own (VGG16's; MobileNetV3's squeeze-excitation fc1/fc2)


def torchvision_slots(arch: str, variant: dict[str, Any], num_classes: int) -> list[Slot]:
    """The parameter slots of the architecture's torchvision model in execution order (built on the meta device)."""
    return list(_slots(arch, json.dumps(variant, sort_keys=True), int(num_classes)))


def slots_of(meta: dict[str, Any]) -> list[Slot]:
    """The torchvision slots of the model a checkpoint's metadata describes."""
    arch = architectures.of(meta)
    return torchvision_slots(arch.name, arch.variant_of(meta), int(meta["num_classes"]))


@functools.lru_cache(maxsize=16)
def _slots(arch: str, variant: str, num_classes: int) -> tuple[Slot, ...]:
    """Cached: building even a meta-device MobileNetV2 costs ~0.13 s, and a parity run asks ~5 times."""
    from convert.port.build import skeleton  # build imports this module's neighbours: here, not at the top

    with skeleton():
        m = architectures.get(arch).torchvision(json.loads(variant), num_classes)
    out = []
    for key, mod in m.named_modules():
        if isinstance(mod, nn.Conv2d):
            kind = "depthwise" if mod.groups > 1 else "conv"
            out.append(Slot(key, kind, tuple(mod.weight.shape), int(mod.stride[0]), mod.bias is not None))
        elif isinstance(mod, nn.BatchNorm2d):
            out.append(Slot(key, "bn", (mod.num_features,)))
        elif isinstance(mod, nn.Linear):
            out.append(Slot(key, "dense", tuple(mod.weight.shape)))
    return tuple(out)


def _layer_kind(layer) -> str:
    if isinstance(layer, ConvSpec):
        return "depthwise" if layer.depthwise else "conv"
    return "bn" if isinstance(layer, BNSpec) else "dense"


def _layer_shape(layer) -> tuple[int, ...]:
    if isinstance(layer, ConvSpec):
        return tuple(layer.weight.shape)
    if isinstance(layer, BNSpec):
        return tuple(layer.gamma.shape)
    return tuple(layer.weight.shape)


def _first_mismatch(layers: list, slots: list[Slot]) -> int:
    for i, (layer, slot) in enumerate(zip(layers, slots, strict=False)):
        if _layer_kind(layer) != slot.kind or _layer_shape(layer) != slot.shape:
            return i
    return min(len(layers), len(slots)) if len(layers) != len(slots) else -1


def describe_found(spec: ModelSpec) -> str:
    convs = spec.convs
    dw = sum(c.depthwise for c in convs)
    k = sorted({c.weight.shape[-1] for c in convs})
    return f"{len(convs)} convolutions ({dw} depthwise, kernel sizes {k}), {len(spec.bns)} BatchNorms"


@dataclass
class Canonical:
    """The mapped port: torchvision-keyed tensors, the source's own head beside them, and the semantics."""

    state_dict: dict[str, torch.Tensor]
    meta: dict[str, Any] = field(default_factory=dict)
    head_state: dict[str, torch.Tensor] = field(default_factory=dict)  # head.N.* (not torchvision's)

    def module(self) -> nn.Module:
        """The whole port (input affine, backbone with these semantics, head), in eval mode."""
        model = build(self.meta)
        model.load_state_dict({**self.state_dict, **self.head_state}, strict=True)
        return model.eval()


# what a description without tensors holds for each weight (to_torchvision(tensors=False))
_NO_TENSOR = torch.empty(0)


def to_torchvision(spec: ModelSpec, where: str, tensors: bool = True) -> Canonical:
    """Assign the spec's layers to torchvision's slots, inferring the variant (width); keep the source's
    head as it is. `tensors=False`: the description alone (metadata; the state dicts hold empty tensors and
    the weights are neither copied, permuted nor checked): parity describes a source it never loads into
    torch (ResNet50: 0.09 s and 100 MB; VGG16 with its top: a 400 MB column permutation of fc1), whose
    NaN/Inf weights its loader refused already (convert.sources.base._require_finite).

    The head goes into torchvision's classifier where it is exactly that (the architecture's pooling —
    global average, VGG16's flatten — then its Dense layers with the classifier's shapes and hidden
    activations); any other head is kept beside the backbone, and a feature extractor has none at all."""
    arch = architectures.get(spec.arch)
    spec = architectures.in_torchvision_order(spec)
    body, head = spec.backbone, spec.head
    if head and spec.pool is None:
        raise fail(f"{where}: dense layers on an unpooled feature map are not a {arch.title} head tfport reproduces")
    if spec.pool == "flatten" and spec.flatten is None:
        raise fail(f"{where}: the graph flattens the feature map, but in no order this reader can name")
    best: tuple[int, dict[str, Any]] | None = None
    stem = body[0].weight.shape[0] if body and isinstance(body[0], ConvSpec) else None
    for variant in arch.variants(stem):
        classifier = _classifier(spec, arch, variant)
        num_classes = int(classifier[-1].weight.shape[0]) if classifier else 0
        slots = torchvision_slots(arch.name, variant, num_classes)
        bad = _first_mismatch(body, _body_slots(slots))
        if bad == -1:
            return _assign(spec, slots, arch.name, variant, num_classes, classifier, where, tensors)
        if best is None or bad > best[0]:
            best = (bad, variant)
    expect = torchvision_slots(arch.name, arch.variants(None)[0], 1000)
    n_conv = sum(s.kind in ("conv", "depthwise") for s in expect)
    n_dw = sum(s.kind == "depthwise" for s in expect)
    n_bn = sum(s.kind == "bn" for s in expect)
    kernels = ", ".join(f"{k}x{k}" for k in sorted({s.shape[-1] for s in expect if s.kind == "depthwise"}))
    i, variant = best  # type: ignore[misc]
    slots = _body_slots(torchvision_slots(arch.name, variant, 0))
    at = ""
    if i < len(body) and i < len(slots):
        layer = body[i]
        named = ", ".join(f"{k} {v:g}" for k, v in variant.items())
        at = (
            f"; {f'closest is {named}, which differs' if named else 'it differs'} at layer {i} '{layer.name}' "
            f"({_layer_kind(layer)} {_layer_shape(layer)} where {slots[i].key} needs {slots[i].kind} {slots[i].shape})"
        )
    raise fail(f"{where}: not a {arch.title}: found {describe_found(spec)}; a {arch.title} has {n_conv} "
               f"convolutions ({n_dw} depthwise{', ' + kernels if kernels else ''}) and {n_bn} BatchNorms{at}")


def _body_slots(slots: list[Slot]) -> list[Slot]:
    """The backbone's slots: every one before torchvision's classifier (its Linears come last)."""
    return [s for s in slots if s.kind != "dense"]


def _classifier(spec: ModelSpec, arch, variant: dict[str, Any]) -> list[DenseSpec]:
    """The source's head where it is exactly torchvision's classifier (the architecture's pooling, its Dense
    layers' shapes and hidden activations: MobileNetV2's and ResNet50's GAP -> one Dense; MobileNetV3's
    GAP -> Dense -> hard-swish -> Dense; VGG16's flatten -> Dense -> relu -> Dense -> relu -> Dense), else []:
    a head of its own (kept beside the backbone, even one of as many layers), or none."""
    shape = architectures.structure(arch)
    head = spec.head
    hidden = tuple(shape.classifier_hidden)
    if (not head or spec.pool != shape.classifier_input or len(head) != len(hidden) + 1
            or tuple(d.activation for d in head[:-1]) != hidden):
        return []
    dense = [s for s in torchvision_slots(arch.name, variant, int(head[-1].weight.shape[0])) if s.kind == "dense"]
    fits = len(dense) == len(head) and all(tuple(d.weight.shape) == s.shape for d, s in zip(head, dense, strict=True))
    return list(head) if fits else []


def _head_input(spec: ModelSpec) -> int:
    """How many features reach the head: the flattened map's size, else the last conv's channels."""
    if spec.pool == "flatten" and spec.flatten is not None:
        return spec.flatten.size
    return _last_channels(spec)


def _last_channels(spec: ModelSpec) -> int:
    convs = spec.convs
    return int(convs[-1].weight.shape[0]) if convs else 0


def running_means(spec: ModelSpec) -> list[np.ndarray]:
    """Each BN's running mean as the port holds it: mean - b where a conv bias b precedes the BN (layers in
    torchvision's order), since BN(x + b) with mean m is BN(x) with mean m - b."""
    spec = architectures.in_torchvision_order(spec)
    out, bias = [], None
    for layer in spec.backbone:
        if isinstance(layer, ConvSpec):
            bias = layer.bias
        elif isinstance(layer, BNSpec):
            out.append(layer.mean if bias is None else (layer.mean.astype(np.float64) - bias).astype(np.float32))
            bias = None
    return out


def padding_mode(conv: ConvSpec, hw: tuple[int, int], where: str, size_open: bool = False) -> str | list[int]:
    """How the port pads `conv` (metadata `padding`): "tf_same" (Conv2dSame: by the size that arrives),
    "symmetric" (torchvision's k // 2), or [top, bottom, left, right] constant pads (Conv2dPadded).

    A source that fixes its input size is one function at that size: TF SAME and a constant pad of the
    same values are equal there, and the port takes TF SAME. A source whose size is open pads by what it
    is: SAME follows the size (a stride-2 conv pads (0, 1) at even sizes, (1, 1) at odd ones), an explicit
    pad (Keras's ZeroPadding2D, which MobileNetV2 sizes for even inputs) stays what it is at every size."""
    k = conv.weight.shape[-1]
    if size_open and conv.same and conv.stride > 1:
        return "tf_same"
    if conv.pads == (k // 2,) * 4:
        return "symmetric"
    if size_open and not conv.same:
        return list(conv.pads)
    if conv.pads == tf_same_pads(hw[0], k, conv.stride) + tf_same_pads(hw[1], k, conv.stride):
        return "tf_same"
    raise fail(f"{where}: conv '{conv.name}' pads {conv.pads}: neither TF SAME nor symmetric padding")


def _assign(spec: ModelSpec, slots: list[Slot], arch: str, variant: dict[str, Any], num_classes: int,
            classifier: list[DenseSpec], where: str, tensors: bool = True) -> Canonical:
    sd: dict[str, torch.Tensor] = {}
    bn_meta: dict[str, dict[str, float]] = {}
    padding: dict[str, str | list[int]] = {}
    strides: dict[str, int] = {}
    folded_bias: list[str] = []
    family = architectures.get(arch)
    hw = spec.input_shape[:2]
    decays_known = all(b.decay is not None for b in spec.bns)
    t = ((lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))) if tensors  # noqa: E731
         else (lambda a: _NO_TENSOR))
    bias: np.ndarray | None = None  # the conv bias the next BN absorbs
    for k, (layer, slot) in enumerate(zip(spec.backbone, _body_slots(slots), strict=False)):
        if isinstance(layer, ConvSpec):
            bias = None
            if slot.bias:  # torchvision's conv has a bias of its own (VGG16; MobileNetV3's SE): the source's, or 0
                sd[slot.key + ".bias"] = t(layer.bias if layer.bias is not None else np.zeros(slot.shape[0]))
            elif layer.bias is not None and np.any(layer.bias != 0):
                if not (family.folds_conv_bias and k + 1 < len(spec.backbone)
                        and isinstance(spec.backbone[k + 1], BNSpec)):
                    raise fail(f"{where}: conv '{layer.name}' has a bias; {family.title} convs have none "
                               "(BN follows)")
                bias = layer.bias.astype(np.float64)
                folded_bias.append(slot.key)
            sd[slot.key + ".weight"] = t(layer.weight)
            padding[slot.key] = padding_mode(layer, hw, where, spec.size_open)
            if layer.stride != slot.stride:  # ResNet v1's downsampling 1x1 vs torchvision v1.5's 3x3
                strides[slot.key] = int(layer.stride)
            hw = (math.ceil(hw[0] / layer.stride), math.ceil(hw[1] / layer.stride))
        elif isinstance(layer, BNSpec):
            # BN(x + b) = BN with running_mean - b: in train mode the batch mean carries b and cancels it
            mean = layer.mean if bias is None else (layer.mean.astype(np.float64) - bias).astype(np.float32)
            bias = None
            for name, arr in (
                ("weight", layer.gamma),
                ("bias", layer.beta),
                ("running_mean", mean),
                ("running_var", layer.var),
            ):
                sd[f"{slot.key}.{name}"] = t(arr)
            sd[f"{slot.key}.num_batches_tracked"] = torch.tensor(0, dtype=torch.long)
            decay = layer.decay if layer.decay is not None else TF_DEFAULT_BN_DECAY
            bn_meta[slot.key] = {"eps": layer.eps, "momentum": round(1.0 - decay, 12)}
    dense_slots = [s for s in slots if s.kind == "dense"]
    flatten, first = spec.flatten if spec.pool == "flatten" else None, None
    head_layers = list(classifier) if classifier else list(spec.head)
    if flatten is not None and head_layers:  # the first Dense reads the flattened map: its columns into NCHW
        if _head_input(spec) != head_layers[0].weight.shape[1] or flatten.shape[0] != _last_channels(spec):
            raise fail(f"{where}: dense '{head_layers[0].name}' takes {head_layers[0].weight.shape[1]} inputs where "
                       f"the flattened {'x'.join(map(str, flatten.shape))} map has {flatten.size}")
        if tensors:
            head_layers[0] = dataclasses.replace(head_layers[0], weight=flatten_columns(
                head_layers[0].weight, flatten.shape, flatten.order, "NCHW"))
    if classifier:
        for dense, slot in zip(head_layers, dense_slots, strict=True):
            if tuple(dense.weight.shape) != slot.shape:
                raise fail(f"{where}: dense '{dense.name}' {tuple(dense.weight.shape)} does not fit "
                           f"{slot.key} {slot.shape}")
            sd[slot.key + ".weight"], sd[slot.key + ".bias"] = t(dense.weight), t(dense.bias)
        first = dense_slots[0].key
    else:  # a feature extractor or another head: torchvision's classifier holds nothing (0 outputs)
        for slot in dense_slots:
            sd[slot.key + ".weight"] = torch.zeros(slot.shape)
            sd[slot.key + ".bias"] = torch.zeros(slot.shape[0])
    head_state: dict[str, torch.Tensor] = {}
    layers = []
    extra = [] if classifier else head_layers
    width = _head_input(spec)
    for i, dense in enumerate(extra):
        if dense.weight.shape[1] != width:
            raise fail(f"{where}: dense '{dense.name}' takes {dense.weight.shape[1]} inputs where {width} arrive")
        head_state[f"head.{i}.weight"], head_state[f"head.{i}.bias"] = t(dense.weight), t(dense.bias)
        layers.append({"source_layer": dense.name, "in": int(dense.weight.shape[1]), "out": int(dense.weight.shape[0]),
                       "activation": dense.activation})
        width = dense.weight.shape[0]
        first = first or "head.0"
    for key, value in ({**sd, **head_state} if tensors else {}).items():
        if value.is_floating_point() and not torch.isfinite(value).all():
            raise fail(f"{where}: weights of {key.rsplit('.', 1)[0]} contain NaN or Inf")
    output = ("feature_map" if spec.pool is None else "classifier" if classifier
              else "head" if layers else "pooled")
    head = {"pool": spec.pool,
            "classifier": None if not classifier else {"source_layer": classifier[-1].name, "classes": num_classes,
                                                        "activation": classifier[-1].activation,
                                                        "source_layers": [d.name for d in classifier]},
            "layers": layers, "output": output}
    meta = {
        "arch": arch,
        **variant,
        "num_classes": num_classes,
        "head": head,
        "input_size": list(spec.input_shape[:2]),
        "input_range": list(spec.input_range),
        "preprocess": spec.preprocess.to_json() if spec.preprocess is not None else None,
        "dropped": list(spec.dropped),
        "trusted_code": list(spec.trusted_code),
        "layout": {"input": "NCHW", "color": "RGB"},
        "bn": bn_meta,
        "padding": padding,
        "stride": strides,
        "conv_bias_folded": folded_bias,
        # a Flatten before the first Dense: the order the port flattens in (torchvision's NCHW, the first
        # Dense's columns permuted to it), the source's, the map's shape and which Dense reads it
        # (with no Dense after it, the port flattens as the source does: its output is the flattened map)
        "flatten": None if flatten is None else {"order": "NCHW" if first else flatten.order,
                                                 "source_order": flatten.order, "shape": list(flatten.shape),
                                                 "dense": first},
        "bn_folded": any(b.folded for b in spec.bns),
        "momentum_from": "source" if decays_known else f"default: 1 - TF default decay {TF_DEFAULT_BN_DECAY}",
    }
    return Canonical(sd, meta, head_state)
