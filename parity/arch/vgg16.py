"""VGG16 as parity sees it: its probe points, their TF tensors, its references, what checks expect.

Points are named by torchvision's module paths, with no suffix: `features.1` after the first conv's ReLU
(torchvision's ReLU module), `features.4` after the first max-pool, ... `features.30` the last pool; then
`pool` where the head pools globally, `classifier.0` / `.3` / `.6` where the head is torchvision's
classifier (each Linear's output, before its ReLU: TF's Dense before its activation), `head.N` where it is
the source's own, and `output`. TF's taps are the graph reader's per conv (`:act` after its ReLU, `:pool`
after the max-pool that follows) and per Dense, aligned by layer index (the same order in both).

No BatchNorm: there is no train-mode reference to compare with (parity.run says so), and eval mode
certifies the port.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from convert.port.canonical import Slot, slots_of
from convert.port.head import head_plan
from parity.arch.layout import TorchvisionLayout, loaded
from parity.arch.registry import register
from parity.points import Point

CONV_KEYS = tuple(f"features.{i}" for i in (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28))
POOLS = (4, 9, 16, 23, 30)  # torchvision's MaxPool2d modules in `features`


def points_for(slots: list[Slot], meta: dict[str, Any], pool: str | None = "avg",
               output: bool = True) -> list[Point]:
    """All probe points in execution order: per conv its ReLU and the pool after it, then the pooled
    features (global pooling only: a flatten is the last pool's map in another order), the classifier's
    Linears or the source's own head's, and `output`."""
    pts: list[Point] = []
    for i, s in enumerate(slots):
        if s.kind == "conv":
            k = int(s.key.rsplit(".", 1)[1])
            pts.append(Point(f"features.{k + 1}", i, ":act", f"features.{k + 1}"))
            if k + 2 in POOLS:
                pts.append(Point(f"features.{k + 2}", i, ":pool", f"features.{k + 2}"))
    n_body = sum(s.kind != "dense" for s in slots)
    if pool in ("avg", "max"):
        pts.append(Point("pool", n_body, "pool", "pool"))
    pts += [Point(s.key, i, "", s.key) for i, s in enumerate(slots) if s.kind == "dense" and s.shape[0]]
    layers = head_plan(meta).get("layers") or []
    pts += [Point(f"head.{j}", n_body + j, "", f"head.{j}") for j in range(len(layers))]
    if output:
        pts.append(Point("output", len(slots) + len(layers), "output", ""))
    return pts


@register("vgg16")
class VGG16(TorchvisionLayout):
    """torchvision's `models.vgg16` layout; Keras's VGG16 aligned to it by layer index."""

    activation = "ReLU"
    tf_activation = "Relu"
    activation_fault = "ReLU6 instead of ReLU: activations above 6 are clipped"
    input_point = "features.1"  # the first conv's ReLU: the first point that sees the input's scale
    input_convention = ("Keras VGG16 (caffe, outside the model): RGB -> BGR, minus [103.939, 116.779, 123.68], "
                        "no scaling")
    stride_fault = "a conv strides unlike the source's: every later feature map is computed at another resolution"

    def points(self, meta: dict[str, Any], pool: str | None, output: bool) -> list[Point]:
        return points_for(slots_of({**meta, "arch": "vgg16"}), meta, pool, output=output)

    def torchvision(self, state_dict: dict[str, Any], meta: dict[str, Any]) -> Any:
        """Stock torchvision vgg16 with the state dict's torchvision keys: its classifier where the state
        dict has one, else its features alone (a feature extractor's)."""
        from convert.arch import get

        sd = self.backbone_state(state_dict)
        classes = int(sd["classifier.6.weight"].shape[0]) if "classifier.6.weight" in sd else 0
        return loaded(lambda: get("vgg16").torchvision({}, classes), sd)

    def plain(self, state_dict: dict[str, Any]) -> tuple[Any, dict[str, Any]] | None:
        """Stock torchvision VGG16 holding a plain state dict (None where it is not one): `features.*` with
        torchvision's classifier (vgg16(num_classes=k)), or alone, or followed by Linears of a head of its
        own (`head.N.*`, as a tfport port's state dict names them), which read the map as torchvision
        flattens it (NCHW) — what a naive port of a fine-tuned VGG16 runs."""
        if not all(f"{k}.weight" in state_dict for k in CONV_KEYS):
            return None
        head = sorted({int(k.split(".")[1]) for k in state_dict if k.startswith("head.")})
        try:
            model = self.torchvision({k: v for k, v in state_dict.items() if not k.startswith("head.")}, {})
            if head:
                if head != list(range(len(head))) or "classifier.0.weight" in state_dict:
                    return None
                model = PlainHead(model.features, [state_dict[f"head.{j}.weight"] for j in head],
                                  [state_dict[f"head.{j}.bias"] for j in head])
        except (RuntimeError, KeyError):
            return None
        classes = int(state_dict["classifier.6.weight"].shape[0]) if "classifier.6.weight" in state_dict else 0
        return model, {"num_classes": classes}

    def point_of_conv(self, path: str) -> str:
        parent, _, k = path.rpartition(".")
        return f"{parent}.{int(k) + 1}"  # features.K -> its ReLU, features.K+1

    def wrong_activations(self, model: Any) -> list[tuple[str, str]]:
        import torch

        return [(n, type(m).__name__) for n, m in model.named_modules() if isinstance(m, torch.nn.ReLU6)]


class PlainHead(nn.Module):
    """torchvision's VGG16 features, torch's flatten (NCHW), then Linears holding the given tensors, with no
    activations between them (a plain state dict declares none), named `head.N` as a tfport port names them."""

    def __init__(self, features: nn.Module, weights: list, biases: list) -> None:
        super().__init__()
        self.features = features
        self.head = nn.ModuleList(nn.Linear(int(w.shape[1]), int(w.shape[0])) for w in weights)
        with torch.no_grad():
            for linear, w, b in zip(self.head, weights, biases, strict=True):
                linear.weight.copy_(w)
                linear.bias.copy_(b)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(self.features(x), 1)  # torchvision's order: NCHW
        for linear in self.head:
            x = linear(x)
        return x
