"""The port as a whole function: the source's input affine -> torchvision's MobileNetV2 -> the source's head.

Fed the array the source is fed (NCHW instead of NHWC, nothing else changed), it returns what the
source returns: 0..255 pixels into the tutorial model give its regression output; a feature extractor
gives its feature map or pooled vector. The backbone stays torchvision's: `features.*` and
`classifier.*` keep torchvision's module paths and state-dict keys (they load `strict=True` into
`torchvision.models.mobilenet_v2`); what the source has around it lives beside them:

  input_affine  x * scale + offset per channel (preprocess_input, Rescaling, Normalization), no weights
  pool          GlobalAveragePooling2D / GlobalMaxPooling2D; None: the output is the feature map
  classifier    torchvision's Dropout + Linear, used where the source's head is exactly pool -> Dense
  head          any other Dense stack (keys `head.N.*`, stored beside the backbone in the checkpoint)
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

ACTIVATION_MODULES: dict[str, type[nn.Module] | Any] = {
    "linear": nn.Identity,
    "relu": nn.ReLU,
    "relu6": nn.ReLU6,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "softmax": lambda: nn.Softmax(dim=1),
}


def activation(name: str) -> nn.Module:
    try:
        return ACTIVATION_MODULES[name]()
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; known: {', '.join(ACTIVATION_MODULES)}") from None


class InputAffine(nn.Module):
    """x * scale + offset per channel (NCHW). Values come from the metadata, so they are not state."""

    def __init__(self, scale: list[float], offset: list[float]) -> None:
        super().__init__()
        self.register_buffer("scale", torch.tensor(scale, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("offset", torch.tensor(offset, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale + self.offset

    def extra_repr(self) -> str:
        return f"scale={self.scale.flatten().tolist()}, offset={self.offset.flatten().tolist()}"


class GlobalPool(nn.Module):
    """Keras's GlobalAveragePooling2D / GlobalMaxPooling2D: (N, C, H, W) -> (N, C)."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        if kind not in ("avg", "max"):
            raise ValueError(f"unknown pooling {kind!r}; known: avg, max")
        self.kind = kind

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x.mean((2, 3)) if self.kind == "avg" else x.amax((2, 3)))

    def extra_repr(self) -> str:
        return self.kind


def head_plan(meta: dict[str, Any]) -> dict[str, Any]:
    """The head description of a checkpoint's metadata; version-1 metadata (classifier or nothing) too."""
    head = meta.get("head")
    if isinstance(head, dict) and "pool" in head:
        return head
    classes = int(meta.get("num_classes", 0))
    if head:  # version 1: a torchvision classifier, logits out
        return {"pool": "avg", "classifier": {"classes": classes, "activation": "linear",
                                              "source_layer": head.get("source_layer")},
                "layers": [], "output": "classifier"}
    return {"pool": "avg", "classifier": None, "layers": [], "output": "pooled"}


class PortedMobileNetV2(nn.Module):
    """See the module docstring. `tv` is a torchvision MobileNetV2 already carrying the TF semantics."""

    def __init__(self, tv: nn.Module, meta: dict[str, Any]) -> None:
        super().__init__()
        plan = head_plan(meta)
        pre = meta.get("preprocess")
        self.input_affine = InputAffine(pre["scale"], pre["offset"]) if pre else None
        self.features = tv.features
        self.classifier = tv.classifier
        self.pool = GlobalPool(plan["pool"]) if plan["pool"] else None
        cls = plan.get("classifier")
        self.classifier_activation = activation(cls.get("activation", "linear")) if cls else None
        self.head = nn.ModuleList(nn.Linear(int(layer["in"]), int(layer["out"])) for layer in plan.get("layers", []))
        self.head_activations = nn.ModuleList(activation(layer.get("activation", "linear"))
                                              for layer in plan.get("layers", []))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.input_affine is not None:
            x = self.input_affine(x)
        x = self.features(x)
        if self.pool is None:
            return x
        x = self.pool(x)
        if self.classifier_activation is not None:
            x = self.classifier_activation(self.classifier(x))
        for linear, act in zip(self.head, self.head_activations):
            x = act(linear(x))
        return x


def torchvision_keys(state_dict: dict[str, Any]) -> dict[str, Any]:
    """Everything but the source's own head: for a port, torchvision's features.* and classifier.*."""
    return {k: v for k, v in state_dict.items() if not k.startswith("head.")}


def head_keys(state_dict: dict[str, Any]) -> dict[str, Any]:
    """The source's own head beyond torchvision's classifier (head.N.weight / head.N.bias)."""
    return {k: v for k, v in state_dict.items() if k.startswith("head.")}
