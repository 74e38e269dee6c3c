"""Read a Keras MobileNetV2 (tf_keras or Keras 3, nested or not) into a :class:`ModelSpec`.

Keras carries what a frozen graph loses: each BatchNormalization's `momentum` (TF's decay, so PyTorch
momentum = 1 - momentum) and `epsilon`. Keras 2 and Keras 3 expose the same layer API for what we read.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

from convert.errors import fail
from convert.spec import BNSpec, ConvSpec, DenseSpec, ModelSpec, tf_same_pads


def flat_layers(model) -> Iterator:
    """Layers in execution order, nested models (a base inside a transfer model) expanded in place."""
    for layer in model.layers:
        if hasattr(layer, "layers") and getattr(layer, "layers", None):
            yield from flat_layers(layer)
        else:
            yield layer


def _in_hw(layer) -> tuple[int, int]:
    shape = tuple(layer.input.shape) if hasattr(layer, "input") else tuple(layer.input_shape)
    return shape[1], shape[2]


def read_keras(model, where: str) -> ModelSpec:
    layers: list = []
    pending_pad: tuple[int, int, int, int] | None = None
    ishape = tuple(model.inputs[0].shape)
    if len(ishape) != 4 or ishape[3] != 3:
        raise fail(f"{where}: input shape {ishape[1:]} is not (H, W, 3) NHWC images")
    if ishape[1] is None or ishape[2] is None:
        raise fail(f"{where}: input size is not fixed in the model; rebuild it with input_shape=(H, W, 3)")
    for layer in flat_layers(model):
        kind = layer.__class__.__name__
        if kind == "ZeroPadding2D":
            (t, b), (l, r) = layer.padding
            pending_pad = (t, b, l, r)
        elif kind in ("Conv2D", "DepthwiseConv2D"):
            layers.append(_conv(layer, kind == "DepthwiseConv2D", pending_pad, where))
            pending_pad = None
        elif kind == "BatchNormalization":
            g, b, m, v = (np.asarray(x, np.float32) for x in layer.get_weights())
            layers.append(BNSpec(layer.name, g, b, m, v, float(layer.epsilon), float(layer.momentum)))
        elif kind == "Dense":
            wt, bias = layer.get_weights()
            layers.append(DenseSpec(layer.name, np.ascontiguousarray(wt.T.astype(np.float32)), bias.astype(np.float32)))
    return ModelSpec(layers=layers, input_shape=(ishape[1], ishape[2], 3), origin="keras")


def _conv(layer, depthwise: bool, pad: tuple[int, int, int, int] | None, where: str) -> ConvSpec:
    weights = layer.get_weights()
    wt = np.asarray(weights[0], np.float32)
    bias = np.asarray(weights[1], np.float32) if len(weights) > 1 else None
    stride = layer.strides[0]
    if layer.strides[0] != layer.strides[1] or tuple(layer.dilation_rate) != (1, 1):
        raise fail(f"{where}: conv '{layer.name}' has strides {layer.strides} / dilation {layer.dilation_rate}")
    kh, kw = wt.shape[:2]
    h, w = _in_hw(layer)
    if pad is not None:
        h, w = h - pad[0] - pad[1], w - pad[2] - pad[3]
    same = layer.padding == "same"
    if same:
        pads = tf_same_pads(h, kh, stride) + tf_same_pads(w, kw, stride)
    else:
        pads = pad or (0, 0, 0, 0)
    torch_w = wt.transpose(2, 3, 0, 1) if depthwise else wt.transpose(3, 2, 0, 1)
    return ConvSpec(layer.name, np.ascontiguousarray(torch_w), stride, depthwise, pads, same, bias)
