"""ResNet50 as parity sees it: its probe points, their TF tensors, its references, what checks expect.

Points are named by torchvision's module paths: `conv1:bn` / `conv1:act` the stem, `layer2.0.conv1:bn`
after a bottleneck conv's BN, `layer2.0.downsample:bn` after the projection shortcut's, `layer2.0:out`
a bottleneck's output (after the add and its ReLU), `pool`, `fc`, `output`. A bottleneck's inner ReLUs
are one shared torchvision module (`layer2.0.relu`, called three times), so they are not points: the
BN before each is. TF's taps (the graph reader's, per layer) are aligned by layer index once the
source's layers are in torchvision's order (convert.arch.resnet50.execution_order).
"""

from __future__ import annotations

from typing import Any

from convert.port.canonical import Slot, slots_of
from parity.arch.layout import TorchvisionLayout, loaded
from parity.arch.registry import register
from parity.points import Point

STAGES = ("layer1", "layer2", "layer3", "layer4")


def _unit(bn_key: str) -> str:
    """The point name's unit for a BN path: bn1 -> conv1, layer2.0.bn1 -> layer2.0.conv1,
    layer2.0.downsample.1 -> layer2.0.downsample."""
    if bn_key.endswith(".downsample.1"):
        return bn_key[: -len(".1")]
    parent, _, leaf = bn_key.rpartition(".")
    conv = "conv" + leaf[len("bn"):]
    return f"{parent}.{conv}" if parent else conv


def _block(key: str) -> str | None:
    """layer2.0.bn3 -> layer2.0; the stem -> None."""
    parts = key.split(".")
    return ".".join(parts[:2]) if parts[0] in STAGES else None


def points_for(slots: list[Slot], pool: str | None = "avg", output: bool = True) -> list[Point]:
    """All probe points in execution order: per BN its `:bn`, the stem's ReLU, each bottleneck's output
    after its last BN (the shortcut's where it has one), pool, fc where it has outputs, output."""
    pts: list[Point] = []
    for i, s in enumerate(slots):
        if s.kind == "bn":
            pts.append(Point(f"{_unit(s.key)}:bn", i, ":bn", s.key))
            block = _block(s.key)
            if block is None:
                pts.append(Point("conv1:act", i, ":act", "relu"))
            nxt = slots[i + 1].key if i + 1 < len(slots) else ""
            if block is not None and _block(nxt) != block:
                pts.append(Point(f"{block}:out", i, ":out", block))
        elif s.kind == "dense":
            if pool is not None:
                pts.append(Point("pool", i, "pool", "pool"))
            if s.shape[0]:
                pts.append(Point(s.key, i, "", s.key))
    if output:
        pts.append(Point("output", len(slots), "output", ""))
    return pts


@register("resnet50")
class ResNet50(TorchvisionLayout):
    """torchvision's `models.resnet50` layout (v1.5); Keras's ResNet50 (v1) aligned to it by layer index."""

    activation = "ReLU"
    tf_activation = "Relu"
    block_output_activated = True  # a bottleneck's output is relu(add): parity.traced finds `:out` there
    activation_fault = "ReLU6 instead of ReLU: activations above 6 are clipped"
    input_point = "conv1:bn"
    input_convention = ("Keras ResNet50 (caffe, outside the model): RGB -> BGR, minus [103.939, 116.779, 123.68], "
                        "no scaling")
    stride_fault = ("stride on the 3x3 (torchvision v1.5) where the source has it on the first 1x1 (v1): the same "
                    "weights compute another function from that block on")

    def points(self, meta: dict[str, Any], pool: str | None, output: bool) -> list[Point]:
        return points_for(slots_of({**meta, "arch": "resnet50"}), pool, output=output)

    def torchvision(self, state_dict: dict[str, Any], meta: dict[str, Any]) -> Any:
        import warnings

        from torchvision.models import resnet50

        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Initializing zero-element tensors is a no-op")
            return loaded(lambda: resnet50(num_classes=int(state_dict["fc.weight"].shape[0])),
                          self.backbone_state(state_dict))

    def plain(self, state_dict: dict[str, Any]) -> tuple[Any, dict[str, Any]] | None:
        """Stock torchvision resnet50 holding a plain state dict (None where it is not one)."""
        if "conv1.weight" not in state_dict or "fc.weight" not in state_dict:
            return None
        try:
            model = self.torchvision(state_dict, {})
        except RuntimeError:
            return None
        return model, {"arch": "resnet50", "num_classes": int(state_dict["fc.weight"].shape[0])}

    def units(self, model: Any) -> list[tuple[str, Any]]:
        stem = [(name, getattr(model, name)) for name in ("conv1", "bn1", "relu", "maxpool")]
        return stem + [(f"{s}.{i}", block) for s in STAGES for i, block in enumerate(getattr(model, s))]

    def point_of_conv(self, path: str) -> str:
        if path.endswith(".downsample.0"):
            return f"{path[: -len('.0')]}:bn"
        return f"{path}:bn"  # conv1, layer2.0.conv1 -> their BN's point

    def wrong_activations(self, model: Any) -> list[tuple[str, str]]:
        import torch

        return [(n, type(m).__name__) for n, m in model.named_modules() if isinstance(m, torch.nn.ReLU6)]
