"""What every architecture laid out like torchvision answers the same way: a base class the registered
architectures extend, overriding only where their network differs (ResNet's units, MobileNetV3's taps)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from convert.port.build import build, skeleton
from convert.port.canonical import Canonical, to_torchvision
from convert.port.head import torchvision_keys
from parity.points import Point


def loaded(make: Callable[[], Any], state_dict: dict[str, Any]) -> Any:
    """The model `make()` builds, holding `state_dict`'s own tensors (strict; `assign`, no copy): built as a
    skeleton (convert.port.build), without torchvision's random initialisation, which every key of the state
    dict replaces (ResNet50: 0.27 s per model on the CPU, 0.01 s so; parity builds three). Parity's
    references never write their weights, and a plain state dict read from a file is the candidate's own, so
    neither needs a copy (ResNet50: 100 MB and ~0.06 s per model)."""
    with skeleton():
        model = make()
    model = model.to_empty(device="cpu")  # what the state dict does not hold (a non-persistent buffer) is allocated
    model.load_state_dict(state_dict, assign=True)
    return model


def tf_tensors_for(points: list[Point], taps: dict[int, dict[str, str]], pooled: str | None,
                   fallback: Callable[[Point, dict[str, str]], str | None] = lambda p, tap: None) -> dict[str, str]:
    """Probe point name -> TF tensor name, through the source's per-layer taps (aligned by layer index);
    `fallback(point, its layer's taps)`: the tensor where the taps have none under the point's suffix."""
    out: dict[str, str] = {}
    for p in points:
        if p.suffix in ("pool", "output"):
            if p.suffix == "pool" and pooled:
                out[p.name] = pooled
            continue
        tap = taps.get(p.slot_index, {})
        tensor = tap.get(p.suffix) or fallback(p, tap)
        if tensor:
            out[p.name] = tensor
    return out


class TorchvisionLayout:
    """The defaults of parity.arch.Architecture for a network whose port is a torchvision model."""

    def canonical(self, spec: Any, where: str, tensors: bool = True) -> Canonical:
        return to_torchvision(spec, where, tensors)

    def tf_tensors(self, points: list[Point], taps: dict[int, dict[str, str]], pooled: str | None) -> dict[str, str]:
        return tf_tensors_for(points, taps, pooled)

    def with_source_semantics(self, meta: dict[str, Any]) -> Any:
        return build(meta)

    def backbone_state(self, state_dict: dict[str, Any]) -> dict[str, Any]:
        return torchvision_keys(state_dict)

    def units(self, model: Any) -> list[tuple[str, Any]]:
        """`features.N` in order (torchvision's MobileNets and VGG)."""
        return [(f"features.{i}", unit) for i, unit in enumerate(model.features)]

    def convs(self, model: Any) -> list[tuple[str, Any]]:
        import torch

        return [(n, m) for n, m in model.named_modules() if isinstance(m, torch.nn.Conv2d)]
