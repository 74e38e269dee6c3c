"""MobileNetV2 as parity sees it: its probe points, their TF tensors, its references, what checks expect.

Points are named by torchvision's module paths: `features.0:bn` after normalisation, `features.0:act`
after ReLU6, `features.3:out` a block's output (where TF adds a residual, and for every block in
torchvision), `pool` the pooled features, `classifier.1` the logits, `output` the source's whole function.
A BN outside a Conv2dNormActivation (an inverted residual's projection) is named by its own path
(`features.3.conv.3:bn`).
"""

from __future__ import annotations

from typing import Any

from convert.port.canonical import Slot, slots_of
from parity.arch.layout import TorchvisionLayout, loaded
from parity.arch.registry import register
from parity.points import Point


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
            pts.append(Point(f"{unit}:bn", i, ":bn", s.key))
            if act:
                pts.append(Point(f"{unit}:act", i, ":act", act))
            elif s.key.startswith("features.") and ".conv." in s.key:
                block = s.key.split(".conv.")[0]
                pts.append(Point(f"{block}:out", i, ":out", block))
        elif s.kind == "dense":
            if pool is not None:
                pts.append(Point("pool", i, "pool", "pool"))
            if s.shape[0]:  # a feature extractor's classifier has no outputs
                pts.append(Point(s.key, i, "", s.key))
    if output:
        pts.append(Point("output", len(slots), "output", ""))
    return pts


@register("mobilenet_v2")
class MobileNetV2(TorchvisionLayout):
    """torchvision's `models.mobilenet_v2` layout; TF's Keras/slim MobileNetV2 aligned to it by layer index."""

    activation = "ReLU6"  # torchvision's Conv2dNormActivation: [conv, bn, ReLU6]
    tf_activation = "Relu6"
    activation_fault = "ReLU instead of ReLU6: activations above 6 are not clipped"
    input_point = "features.0:bn"  # the stem's BN: the first point that sees the input's scale
    input_convention = "TF MobileNetV2: x / 127.5 − 1"
    stride_fault = "a conv strides unlike the source's: every later feature map is computed at another resolution"

    def points(self, meta: dict[str, Any], pool: str | None, output: bool) -> list[Point]:
        return points_for(slots_of(meta), pool, output=output)

    def torchvision(self, state_dict: dict[str, Any], meta: dict[str, Any]) -> Any:
        from torchvision.models import mobilenet_v2

        return loaded(lambda: mobilenet_v2(width_mult=float(meta.get("alpha", 1.0)),
                                           num_classes=int(state_dict["classifier.1.weight"].shape[0])),
                      self.backbone_state(state_dict))

    def plain(self, state_dict: dict[str, Any]) -> tuple[Any, dict[str, Any]] | None:
        """Stock torchvision MobileNetV2 holding a plain state dict, at the width its stem has (None where
        the keys are not MobileNetV2's; bad input where no width fits them)."""
        from torchvision.models import mobilenet_v2

        from convert.arch.mobilenet_v2 import ALPHAS, make_divisible
        from convert.runtime.errors import fail

        if "features.0.0.weight" not in state_dict or "classifier.1.weight" not in state_dict:
            return None
        first = int(state_dict["features.0.0.weight"].shape[0])
        k = int(state_dict["classifier.1.weight"].shape[0])
        for alpha in [a for a in ALPHAS if make_divisible(32 * a) == first]:
            try:
                model = loaded(lambda a=alpha: mobilenet_v2(width_mult=a, num_classes=k), state_dict)
            except RuntimeError:
                continue
            return model, {"alpha": alpha, "num_classes": k}
        raise fail(f"state dict does not fit torchvision's MobileNetV2 at any alpha {ALPHAS}")

    def point_of_conv(self, path: str) -> str:
        return f"{path.rsplit('.', 1)[0]}:bn"  # features.N[.conv.K].0 -> its Conv2dNormActivation's BN

    def wrong_activations(self, model: Any) -> list[tuple[str, str]]:
        import torch

        return [(n, type(m).__name__) for n, m in model.named_modules()
                if n.endswith(".2") and isinstance(m, torch.nn.ReLU) and not isinstance(m, torch.nn.ReLU6)]
