"""The port as a whole function: the source's input affine -> a torchvision backbone -> the source's head.

Fed the array the source is fed (NCHW instead of NHWC, nothing else changed), it returns what the
source returns: 0..255 pixels into the tutorial model give its regression output; a feature extractor
gives its feature map or pooled vector. The backbone stays torchvision's: its modules keep torchvision's
attribute names (MobileNetV2's `features.*` and `classifier.*`), so their state-dict keys load
`strict=True` into the stock torchvision model; what the source has around it lives beside them:

  input_affine  x * scale + offset per channel (preprocess_input, Rescaling, Normalization), no weights
  pool          GlobalAveragePooling2D / GlobalMaxPooling2D, or Flatten (VGG16's, NCHW: metadata `flatten`);
                None: the output is the feature map
  classifier    torchvision's own classifier, used where the source's head is exactly pool -> Dense
  head          any other Dense stack (keys `head.N.*`, stored beside the backbone in the checkpoint)
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from convert.layers.activation import activation
from convert.layers.affine import ChannelAffine
from convert.layers.pool import pooling
from convert.port.head import head_plan


class PortedNet(nn.Module):
    """See the module docstring. `tv` is a stock torchvision model already carrying the TF semantics; `body`
    names its modules run before the pooling and `classifier` its classifier (convert.arch)."""

    def __init__(self, tv: nn.Module, meta: dict[str, Any], body: tuple[str, ...], classifier: str) -> None:
        super().__init__()
        plan = head_plan(meta)
        pre = meta.get("preprocess")
        self.input_affine = ChannelAffine(pre["scale"], pre["offset"]) if pre else None
        self.body = body
        for name in body:
            setattr(self, name, getattr(tv, name))
        self.classifier_name = classifier
        setattr(self, classifier, getattr(tv, classifier))
        # global pooling, or a Flatten in the order the first Dense's columns are laid out (metadata `flatten`)
        self.pool = pooling(plan["pool"], (meta.get("flatten") or {}).get("order", "NCHW"))
        cls = plan.get("classifier")
        self.classifier_activation = activation(cls.get("activation", "linear")) if cls else None
        self.head = nn.ModuleList(nn.Linear(int(layer["in"]), int(layer["out"])) for layer in plan.get("layers", []))
        self.head_activations = nn.ModuleList(activation(layer.get("activation", "linear"))
                                              for layer in plan.get("layers", []))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.input_affine is not None:
            x = self.input_affine(x)
        for name in self.body:
            x = getattr(self, name)(x)
        if self.pool is None:
            return x
        x = self.pool(x)
        if self.classifier_activation is not None:
            x = self.classifier_activation(getattr(self, self.classifier_name)(x))
        for linear, act in zip(self.head, self.head_activations, strict=True):
            x = act(linear(x))
        return x
