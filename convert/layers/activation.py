"""Activations by the names the spec uses (convert.model.spec.ACTIVATIONS), as torch modules."""

from __future__ import annotations

from typing import Any

from torch import nn

ACTIVATION_MODULES: dict[str, type[nn.Module] | Any] = {
    "linear": nn.Identity,
    "relu": nn.ReLU,
    "relu6": nn.ReLU6,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "softmax": lambda: nn.Softmax(dim=1),
    "hard_swish": nn.Hardswish,  # x * ReLU6(x + 3) / 6, as Keras's hard_swish / hard_silu
    "hard_sigmoid": nn.Hardsigmoid,  # ReLU6(x + 3) / 6, as Keras's MobileNetV3 hard_sigmoid
}


def activation(name: str) -> nn.Module:
    try:
        return ACTIVATION_MODULES[name]()
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; known: {', '.join(ACTIVATION_MODULES)}") from None
