"""MobileNetV3 Large and Small as parity sees them: probe points, their TF tensors, references, expectations.

Points are named by torchvision's module paths: `features.0:bn` / `features.0:act` the stem (after its BN,
after its hard-swish), `features.4.block.1:bn` / `:act` a Conv2dNormActivation inside an inverted residual
(expand, depthwise), `features.4.block.2:act` a squeeze-excitation's ReLU and `features.4.block.2:out` its
output (the feature map gated by the hard-sigmoid), `features.4.block.3:bn` the projection, `features.4:out`
the block's output (after the residual add where there is one), `features.12:bn` / `:act` the last 1x1
conv, `pool`, then `classifier.0` and `classifier.3` (torchvision's Linears, Keras's head 1x1 convs) where
the port uses torchvision's classifier, and `output`. TF's taps (the graph reader's, per layer) are aligned
by layer index: a graph's order is torchvision's.
"""

from __future__ import annotations

import functools
from typing import Any

from convert.port.canonical import Slot, slots_of
from parity.arch.layout import TorchvisionLayout, loaded
from parity.arch.layout import tf_tensors_for as layout_tensors
from parity.arch.registry import register
from parity.points import Point

# the activation torchvision's modules apply and what TF writes for it, by torch type name
TF_NAMES = {"Hardswish": "hard-swish x·ReLU6(x+3)/6", "ReLU": "ReLU", "Hardsigmoid": "hard-sigmoid ReLU6(x+3)/6"}
FAULTS = {
    "Hardswish": "another activation where the source applies hard-swish: negative inputs above -3 are no longer "
                 "kept (small negative outputs), positive ones no longer damped below 3",
    "ReLU": "another activation where the source applies ReLU: the block computes another function from there on",
    "Hardsigmoid": "another gate where the source's squeeze-excitation applies hard-sigmoid: the channels are "
                   "scaled otherwise",
}


def _block(key: str) -> str:
    """features.4.block.1.1 -> features.4; features.0.1 -> features.0."""
    return ".".join(key.split(".")[:2])


def points_for(slots: list[Slot], pool: str | None = "avg", output: bool = True, classifier: bool = True,
               activations: dict[str, str] | None = None) -> list[Point]:
    """All probe points in execution order (see the module docstring). `activations`: torchvision's
    activation module path of each BN's Conv2dNormActivation (none for a projection)."""
    pts: list[Point] = []
    first_dense = True
    for i, s in enumerate(slots):
        if s.kind == "bn":
            unit = s.key.rpartition(".")[0]  # the Conv2dNormActivation: [conv, bn, activation]
            pts.append(Point(f"{unit}:bn", i, ":bn", s.key))
            act = f"{unit}.2"
            if activations is None or act in activations:
                pts.append(Point(f"{unit}:act", i, ":act", act))
            nxt = slots[i + 1].key if i + 1 < len(slots) else ""
            if ".block." in s.key and _block(nxt) != _block(s.key):  # the projection: the block ends here
                pts.append(Point(f"{_block(s.key)}:out", i, ":out", _block(s.key)))
        elif s.kind == "conv" and s.key.endswith(".fc1"):  # squeeze-excitation: its ReLU
            se = s.key[: -len(".fc1")]
            pts.append(Point(f"{se}:act", i, ":act", f"{se}.activation"))
        elif s.kind == "conv" and s.key.endswith(".fc2"):  # ... and the gated feature map
            se = s.key[: -len(".fc2")]
            pts.append(Point(f"{se}:out", i, ":out", se))
        elif s.kind == "dense":
            if pool is not None and first_dense:
                pts.append(Point("pool", i, "pool", "pool"))
            first_dense = False
            if classifier and s.shape[0]:  # torchvision's classifier holds the source's head
                pts.append(Point(s.key, i, "", s.key))
    if output:
        pts.append(Point("output", len(slots), "output", ""))
    return pts


def tf_tensors_for(points: list[Point], taps: dict[int, dict[str, str]], pooled: str | None) -> dict[str, str]:
    """Probe point name -> TF tensor, through the source's per-layer taps (parity.arch.layout). A block
    without a residual add ends at its projection's BN: that is its output."""
    return layout_tensors(points, taps, pooled, fallback=lambda p, tap: (
        tap.get(":bn") if p.suffix == ":out" and p.module.count(".") == 1 else None))


@functools.lru_cache(maxsize=4)
def activation_modules(arch: str) -> dict[str, str]:
    """torchvision's activation modules of that size (path -> type name): what the source applies, since
    Keras's alpha 1.0 tables are torchvision's (convert.arch.mobilenet_v3; tests/convert/test_mobilenet_v3.py)."""
    import torch

    from convert.arch import get
    from convert.port.build import skeleton

    with skeleton():
        model = get(arch).torchvision({}, 0)
    kinds = (torch.nn.Hardswish, torch.nn.ReLU, torch.nn.Hardsigmoid)
    return {n: type(m).__name__ for n, m in model.named_modules() if isinstance(m, kinds)}


class _MobileNetV3Parity(TorchvisionLayout):
    """torchvision's `models.mobilenet_v3_*` layout; Keras's MobileNetV3 aligned to it by layer index."""

    name: str
    activation = "Hardswish"  # the stem, last conv and later blocks; ReLU early (per path: expected_activation)
    tf_activation = TF_NAMES["Hardswish"]
    activation_fault = FAULTS["Hardswish"]
    activation_summary = "every activation is torchvision's at its layer (Hardswish or ReLU; Hardsigmoid gates)"
    input_point = "features.0:bn"  # the stem's BN: the first point that sees the input's scale
    input_convention = ("Keras MobileNetV3: Rescaling(1/127.5, offset -1) inside the model (include_preprocessing), "
                        "fed 0..255 pixels; torchvision's is fed ImageNet mean/std")
    stride_fault = "a conv strides unlike the source's: every later feature map is computed at another resolution"

    def points(self, meta: dict[str, Any], pool: str | None, output: bool) -> list[Point]:
        meta = {**meta, "arch": self.name}
        return points_for(slots_of(meta), pool, output=output, classifier=int(meta.get("num_classes", 0)) > 0,
                          activations=self._activations())

    def tf_tensors(self, points: list[Point], taps: dict[int, dict[str, str]], pooled: str | None) -> dict[str, str]:
        return tf_tensors_for(points, taps, pooled)

    def _stock(self, num_classes: int):
        from convert.arch import get

        return get(self.name).torchvision({}, num_classes)

    def _activations(self) -> dict[str, str]:
        return activation_modules(self.name)

    def torchvision(self, state_dict: dict[str, Any], meta: dict[str, Any]) -> Any:
        return loaded(lambda: self._stock(int(state_dict["classifier.3.weight"].shape[0])),
                      self.backbone_state(state_dict))

    def plain(self, state_dict: dict[str, Any]) -> tuple[Any, dict[str, Any]] | None:
        """Stock torchvision holding a plain state dict of this size (None where the keys are not its)."""
        if "features.1.block.0.0.weight" not in state_dict or "classifier.3.weight" not in state_dict:
            return None
        try:
            model = self.torchvision(state_dict, {})
        except RuntimeError:
            return None
        return model, {"arch": self.name, "num_classes": int(state_dict["classifier.3.weight"].shape[0])}

    def point_of_conv(self, path: str) -> str:
        parent, _, leaf = path.rpartition(".")
        if leaf in ("fc1", "fc2"):
            return f"{parent}:out"  # a squeeze-excitation conv: its gated output
        return f"{parent}:bn"  # features.N[.block.K].0 -> its Conv2dNormActivation's BN

    def wrong_activations(self, model: Any) -> list[tuple[str, str]]:
        """(path, type name) of every activation module whose type is not the one torchvision (and the
        source) has there."""
        want = self._activations()
        have = dict(model.named_modules())
        return [(path, type(have[path]).__name__) for path, kind in want.items()
                if path in have and type(have[path]).__name__ != kind]

    def expected_activation(self, path: str) -> tuple[str, str, str]:
        """(torch name, TF name, what a wrong one does) of the activation at `path`."""
        kind = self._activations().get(path, self.activation)
        return kind, TF_NAMES[kind], FAULTS[kind]


@register("mobilenet_v3_large")
class MobileNetV3Large(_MobileNetV3Parity):
    name = "mobilenet_v3_large"


@register("mobilenet_v3_small")
class MobileNetV3Small(_MobileNetV3Parity):
    name = "mobilenet_v3_small"
