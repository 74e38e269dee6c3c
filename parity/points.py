"""Probe points, named by torchvision's module paths, and their capture in PyTorch.

Names (DESIGN.md): the unit's torchvision path plus where in the unit the point sits —
`features.0:bn` after normalisation, `features.0:act` after ReLU6, `features.3:out` a residual block's
output, `pool` the pooled features, `classifier.1` the logits. A project BN that is not inside a
Conv2dNormActivation is named by its own path (`features.3.conv.3:bn`).
"""

from __future__ import annotations

from dataclasses import dataclass

from convert.port.canonical import Slot


@dataclass(frozen=True)
class Point:
    name: str
    slot_index: int  # index into torchvision_slots (and into the source's layers)
    suffix: str  # ":bn" | ":act" | ":out" | "" (dense) | "pool"
    module: str  # torchvision module path whose output this is (hook target)
    channels: int


def _unit_of_bn(key: str, slot_keys: set[str]) -> tuple[str, str | None]:
    """(unit path, activation module path or None) for a BN module path."""
    parent, _, idx = key.rpartition(".")
    conv_key = f"{parent}.0"
    if idx == "1" and conv_key in slot_keys:  # Conv2dNormActivation: [conv, bn, relu6]
        return parent, f"{parent}.2"
    return key, None


def points_for(slots: list[Slot], pool: str | None = "avg", output: bool = True) -> list[Point]:
    """All probe points of a port, in execution order: the backbone's (torchvision's module paths), the
    pooled features and torchvision's classifier where the port has them, then `output`: the whole
    function the source computes (its own input in, its own output out)."""
    keys = {s.key for s in slots}
    pts: list[Point] = []
    for i, s in enumerate(slots):
        if s.kind == "bn":
            unit, act = _unit_of_bn(s.key, keys)
            pts.append(Point(f"{unit}:bn", i, ":bn", s.key, s.shape[0]))
            if act:
                pts.append(Point(f"{unit}:act", i, ":act", act, s.shape[0]))
            elif s.key.startswith("features.") and ".conv." in s.key:
                block = s.key.split(".conv.")[0]
                pts.append(Point(f"{block}:out", i, ":out", block, s.shape[0]))
        elif s.kind == "dense":
            if pool is not None:
                pts.append(Point("pool", i, "pool", "pool", s.shape[1]))
            if s.shape[0]:  # a feature extractor's classifier has no outputs
                pts.append(Point(s.key, i, "", s.key, s.shape[0]))
    if output:
        pts.append(Point("output", len(slots), "output", "", 0))
    return pts


class AllCaptured(Exception):
    """Raised from the hook of the last point a forward pass was needed for: the rest is not run."""


class Capture:
    """Forward hooks on a torchvision-structured model collecting every probe point in one pass.

    `stop_early`: once every point has a value, the hook raises AllCaptured, so a forward pass wanted
    for the first points only (parity's train stage runs in parts) does not compute the rest. Values
    are only collected here; comparing them inside the hooks, between the model's ops, slowed both
    torch and numpy ~7x on 2 cores (their worker threads spin-wait on each other's cores)."""

    def __init__(self, model, points: list[Point], stop_early: bool = False) -> None:
        import torch

        self.values: dict[str, list] = {p.name: [] for p in points}
        self.left = set(self.values) if stop_early else None
        self.handles = []
        modules = dict(model.named_modules())
        for p in points:
            if p.suffix == "output":
                mod, hook = model, self._hook(p.name)  # the whole module's return value
            elif p.suffix == "pool" and p.module not in modules:  # plain torchvision: pools in forward()
                mod, hook = modules.get("features"), self._pool_hook(p.name, torch)
            else:
                mod, hook = modules.get(p.module), self._hook(p.name)
            if mod is not None:
                self.handles.append(mod.register_forward_hook(hook))

    def _add(self, name: str, value) -> None:
        self.values[name].append(value)
        if self.left is not None:
            self.left.discard(name)
            if not self.left:
                raise AllCaptured

    def _hook(self, name: str):
        def hook(_mod, _inp, out):
            self._add(name, out.detach().numpy().copy())
        return hook

    def _pool_hook(self, name: str, torch):
        def hook(_mod, _inp, out):
            self._add(name, torch.nn.functional.adaptive_avg_pool2d(out, 1).flatten(1).detach().numpy())
        return hook

    def close(self) -> None:
        for h in self.handles:
            h.remove()

    def result(self):
        import numpy as np

        return {k: v[0] if len(v) == 1 else np.concatenate(v) for k, v in self.values.items() if v}


def tf_tensors_for(points: list[Point], taps: dict[int, dict[str, str]], pooled: str | None) -> dict[str, str]:
    """Probe point name -> TF tensor name, through the source's per-layer taps (aligned by layer index)."""
    out: dict[str, str] = {}
    for p in points:
        if p.suffix in ("pool", "output"):
            if p.suffix == "pool" and pooled:
                out[p.name] = pooled
            continue
        tensor = taps.get(p.slot_index, {}).get(p.suffix)
        if tensor:
            out[p.name] = tensor
    return out
