"""What a weights-only Keras file is (Keras Applications' `.h5`, `save_weights`), found from its contents.

Such a file holds arrays by layer name and no model config: to run it, tfport rebuilds the network from
Keras's own definition. An architecture recognises its layer names and weight shapes and answers with a
:class:`WeightsMatch`: the variant (MobileNetV2's width) and whether the classifier is there, with how
many classes — never read from the file name, which users rename.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# layer name -> the shapes of its weights, in the order Keras stores them (kernel, bias; gamma, beta, mean, var)
Shapes = Mapping[str, tuple[tuple[int, ...], ...]]


@dataclass(frozen=True)
class WeightsMatch:
    variant: dict[str, Any]  # what arch.keras_application takes (MobileNetV2: {"alpha": 0.35})
    include_top: bool  # Keras Applications' classifier (its top: GAP + Dense; VGG16's fc1, fc2) is in the file
    classes: int  # its outputs; 0 without the classifier
    # the file's layers that are the classifier (the Dense's name differs between Keras releases:
    # keras-applications called MobileNetV2's "Logits", tf.keras "predictions")
    classifier_layers: tuple[str, ...] = field(default=())

    def application_kwargs(self) -> dict[str, Any]:
        """Keras Applications' keyword arguments for this file (weights=None and the input shape aside)."""
        return {"include_top": True, "classes": self.classes} if self.include_top else {"include_top": False}

    def describe(self) -> str:
        variant = ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}" for k, v in self.variant.items())
        # the file holds the Dense's arrays, not its activation: Keras Applications' own (softmax) is assumed
        top = (f"with its classifier ({self.classes} classes; Keras Applications' own top, softmax out — a "
               "head of your own needs the model file, model.save)" if self.include_top else "without its classifier")
        return f"{variant}, {top}" if variant else top


def layer_key(name: str) -> str:
    """A layer's name as both Kerases spell it: tf_keras's MobileNetV3 nests names (`Conv/BatchNorm`,
    `expanded_conv/squeeze_excite/Conv_1`, `Logits`) that Keras 3 flattens (`conv_bn`,
    `expanded_conv_squeeze_excite_conv_1`, `logits`); MobileNetV2's and ResNet50's names are the same in
    both, and stay distinct under this key."""
    return name.lower().replace("/batchnorm", "_bn").replace("/", "_")
