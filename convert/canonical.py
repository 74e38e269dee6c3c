"""The canonical backbone: torchvision's MobileNetV2 layout, carrying the source's TF semantics.

Mapping is by execution order and shape: every reader yields conv/BN/dense layers in the order they
run, which is the order of torchvision's modules. Nothing is transposed here (readers already hold
PyTorch layouts), so a weight in the wrong layout fails the shape check instead of being "fixed" by
trying permutations until something fits.

TF semantics kept as parameter values on torchvision's own modules (state-dict keys unchanged):
  - padding: TF SAME on stride-2 convs pads (0 before, 1 after) on even sizes; torchvision pads 1 on
    both sides. Such convs become `Conv2dSame`, which pads like TF for any input size;
  - BN eps: the source's (TF 1e-3; torchvision 1e-5);
  - BN momentum: PyTorch momentum = 1 - TF decay (Keras momentum 0.999 -> 0.001).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from convert.argtypes import ALPHAS
from convert.errors import fail
from convert.portnet import PortedMobileNetV2
from convert.spec import TF_DEFAULT_BN_DECAY, BNSpec, ConvSpec, DenseSpec, ModelSpec, tf_same_pads

MAX_CLASSES = 100_000  # ImageNet-21k has 21,843; a 1280 x 100k head is already 512 MB


def make_divisible_tv(v: float, divisor: int = 8) -> int:
    """torchvision's (and Keras's) channel rounding for width multipliers."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


class Conv2dSame(nn.Conv2d):
    """Conv2d that pads like TF's SAME for whatever input size arrives (extra pixel after)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (kh, kw), (sh, sw) = self.kernel_size, self.stride
        t, b = tf_same_pads(x.shape[-2], kh, sh)
        left, r = tf_same_pads(x.shape[-1], kw, sw)
        return super().forward(F.pad(x, (left, r, t, b)))


@dataclass(frozen=True)
class Slot:
    key: str  # torchvision module path, e.g. features.3.conv.1.0
    kind: str  # conv | depthwise | bn | dense
    shape: tuple[int, ...]


def torchvision_slots(alpha: float, num_classes: int) -> list[Slot]:
    """torchvision's MobileNetV2 parameter slots in execution order (built on the meta device)."""
    return list(_slots(float(alpha), int(num_classes)))


def tv_mobilenet_v2(alpha: float, num_classes: int) -> nn.Module:
    """torchvision's MobileNetV2; a feature extractor's (0 classes) without torch's warning that
    initialising its empty classifier is a no-op (printed on every load otherwise)."""
    import warnings

    from torchvision.models import mobilenet_v2

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Initializing zero-element tensors is a no-op")
        return mobilenet_v2(width_mult=alpha, num_classes=num_classes)


@functools.lru_cache(maxsize=16)
def _slots(alpha: float, num_classes: int) -> tuple[Slot, ...]:
    """Cached: building even a meta-device MobileNetV2 costs ~0.13 s, and a parity run asks ~5 times."""
    with torch.device("meta"):
        m = tv_mobilenet_v2(alpha, num_classes)
    out = []
    for key, mod in m.named_modules():
        if isinstance(mod, nn.Conv2d):
            kind = "depthwise" if mod.groups > 1 else "conv"
            out.append(Slot(key, kind, tuple(mod.weight.shape)))
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
    for i, (layer, slot) in enumerate(zip(layers, slots)):
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


def to_torchvision(spec: ModelSpec, where: str) -> Canonical:
    """Assign the spec's layers to torchvision's slots, inferring alpha; keep the source's head as it is.

    The head goes into torchvision's classifier where it is exactly that (global average pooling, then
    one Dense); any other head is kept beside the backbone, and a feature extractor has none at all."""
    body, head = spec.backbone, spec.head
    if head and spec.pool is None:
        raise fail(f"{where}: dense layers on an unpooled feature map are not a MobileNetV2 head tfport reproduces")
    classifier = head[0] if spec.pool == "avg" and len(head) == 1 else None
    num_classes = int(classifier.weight.shape[0]) if classifier is not None else 0
    best: tuple[int, float] | None = None
    # the likeliest width first: the one whose stem has as many filters as the spec's first layer
    stem = body[0].weight.shape[0] if body and isinstance(body[0], ConvSpec) else 32
    for alpha in sorted(ALPHAS, key=lambda a: abs(make_divisible_tv(32 * a) - stem)):
        slots = torchvision_slots(alpha, num_classes)
        bad = _first_mismatch(body, slots[:-1])
        if bad == -1:
            return _assign(spec, slots, alpha, num_classes, classifier, where)
        if best is None or bad > best[0]:
            best = (bad, alpha)
    expect = torchvision_slots(1.0, 1000)
    n_conv = sum(s.kind in ("conv", "depthwise") for s in expect)
    n_dw = sum(s.kind == "depthwise" for s in expect)
    i, alpha = best  # type: ignore[misc]
    slots = torchvision_slots(alpha, num_classes)
    at = ""
    if i < len(body) and i < len(slots) - 1:
        layer = body[i]
        at = (f"; closest is alpha {alpha:g}, which differs at layer {i} '{layer.name}' "
              f"({_layer_kind(layer)} {_layer_shape(layer)} where {slots[i].key} needs {slots[i].kind} {slots[i].shape})")
    raise fail(f"{where}: not a MobileNetV2: found {describe_found(spec)}; a MobileNetV2 has {n_conv} "
               f"convolutions ({n_dw} depthwise, 3x3) and {n_conv} BatchNorms{at}")


def padding_mode(conv: ConvSpec, hw: tuple[int, int], where: str) -> str:
    k = conv.weight.shape[-1]
    if conv.pads == (k // 2,) * 4:
        return "symmetric"
    if conv.pads == tf_same_pads(hw[0], k, conv.stride) + tf_same_pads(hw[1], k, conv.stride):
        return "tf_same"
    raise fail(f"{where}: conv '{conv.name}' pads {conv.pads}: neither TF SAME nor symmetric padding")


def _assign(spec: ModelSpec, slots: list[Slot], alpha: float, num_classes: int, classifier: DenseSpec | None,
            where: str) -> Canonical:
    sd: dict[str, torch.Tensor] = {}
    bn_meta: dict[str, dict[str, float]] = {}
    padding: dict[str, str] = {}
    hw = spec.input_shape[:2]
    decays_known = all(b.decay is not None for b in spec.bns)
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))  # noqa: E731
    for layer, slot in zip(spec.backbone, slots):
        if isinstance(layer, ConvSpec):
            if layer.bias is not None and np.any(layer.bias != 0):
                raise fail(f"{where}: conv '{layer.name}' has a bias; MobileNetV2 convs have none (BN follows)")
            sd[slot.key + ".weight"] = t(layer.weight)
            padding[slot.key] = padding_mode(layer, hw, where)
            hw = (math.ceil(hw[0] / layer.stride), math.ceil(hw[1] / layer.stride))
        elif isinstance(layer, BNSpec):
            for name, arr in (("weight", layer.gamma), ("bias", layer.beta), ("running_mean", layer.mean), ("running_var", layer.var)):
                sd[f"{slot.key}.{name}"] = t(arr)
            sd[f"{slot.key}.num_batches_tracked"] = torch.tensor(0, dtype=torch.long)
            decay = layer.decay if layer.decay is not None else TF_DEFAULT_BN_DECAY
            bn_meta[slot.key] = {"eps": layer.eps, "momentum": round(1.0 - decay, 12)}
    cls_slot = slots[-1]
    if classifier is not None:
        if tuple(classifier.weight.shape) != cls_slot.shape:
            raise fail(f"{where}: dense '{classifier.name}' {tuple(classifier.weight.shape)} does not fit "
                       f"{cls_slot.key} {cls_slot.shape}")
        sd[cls_slot.key + ".weight"], sd[cls_slot.key + ".bias"] = t(classifier.weight), t(classifier.bias)
    else:  # a feature extractor or another head: torchvision's classifier holds nothing (0 outputs)
        sd[cls_slot.key + ".weight"] = torch.zeros(cls_slot.shape)
        sd[cls_slot.key + ".bias"] = torch.zeros(cls_slot.shape[0])
    head_state: dict[str, torch.Tensor] = {}
    layers = []
    extra = [] if classifier is not None else spec.head
    width = cls_slot.shape[1]
    for i, dense in enumerate(extra):
        if dense.weight.shape[1] != width:
            raise fail(f"{where}: dense '{dense.name}' takes {dense.weight.shape[1]} inputs where {width} arrive")
        head_state[f"head.{i}.weight"], head_state[f"head.{i}.bias"] = t(dense.weight), t(dense.bias)
        layers.append({"source_layer": dense.name, "in": int(dense.weight.shape[1]), "out": int(dense.weight.shape[0]),
                       "activation": dense.activation})
        width = dense.weight.shape[0]
    for key, value in {**sd, **head_state}.items():
        if value.is_floating_point() and not torch.isfinite(value).all():
            raise fail(f"{where}: weights of {key.rsplit('.', 1)[0]} contain NaN or Inf")
    output = ("feature_map" if spec.pool is None else "classifier" if classifier is not None
              else "head" if layers else "pooled")
    head = {"pool": spec.pool,
            "classifier": None if classifier is None else {"source_layer": classifier.name, "classes": num_classes,
                                                            "activation": classifier.activation},
            "layers": layers, "output": output}
    meta = {
        "arch": "mobilenet_v2",
        "alpha": alpha,
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
        "bn_folded": any(b.folded for b in spec.bns),
        "momentum_from": "source" if decays_known else f"default: 1 - TF default decay {TF_DEFAULT_BN_DECAY}",
    }
    return Canonical(sd, meta, head_state)


def build(meta: dict[str, Any]) -> nn.Module:
    """The port (convert.portnet): torchvision's MobileNetV2 with the semantics in `meta` (padding, eps,
    momentum), the source's input affine and head around it.

    Its tensors are allocated, not initialised (every caller loads a state dict next): torchvision's
    random initialisation would cost ~0.15 s per model for values that are overwritten anyway."""

    try:
        alpha, classes = float(meta["alpha"]), int(meta["num_classes"])
        # metadata is input: a width or class count no MobileNetV2 has would allocate without bound
        # (alpha 40 is ~22 GB; the fuzzer's first such example had the OOM killer end the process)
        if not any(math.isclose(alpha, a) for a in ALPHAS):
            raise fail(f"checkpoint metadata: alpha {alpha:g} is not a MobileNetV2 width ({', '.join(map(str, ALPHAS))})")
        if not 0 <= classes <= MAX_CLASSES:
            raise fail(f"checkpoint metadata: num_classes {classes} is outside 0..{MAX_CLASSES}")
        with torch.device("meta"):
            model = tv_mobilenet_v2(alpha, classes)
        modules = dict(model.named_modules())
        for key, mode in meta["padding"].items():
            conv = modules[key]
            if mode == "tf_same":
                same = Conv2dSame(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride,
                                  padding=0, groups=conv.groups, bias=conv.bias is not None)
                parent, _, child = key.rpartition(".")
                setattr(modules[parent], child, same)
            elif mode != "symmetric":
                raise fail(f"unknown padding mode {mode!r} for {key}")
        for key, bn in meta["bn"].items():
            modules[key].eps = float(bn["eps"])
            modules[key].momentum = float(bn["momentum"])
        with torch.device("meta"):
            net = PortedMobileNetV2(model, meta)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError) as e:
        raise fail(f"checkpoint metadata does not describe a MobileNetV2 ({type(e).__name__}: {str(e)[:120]})")
    net = net.to_empty(device="cpu")
    if net.input_affine is not None:  # buffers from metadata, not from the state dict: fill them here
        pre = meta["preprocess"]
        net.input_affine.scale.copy_(torch.tensor(pre["scale"], dtype=torch.float32).view(1, -1, 1, 1))
        net.input_affine.offset.copy_(torch.tensor(pre["offset"], dtype=torch.float32).view(1, -1, 1, 1))
    return net
