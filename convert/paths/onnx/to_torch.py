"""onnx2torch's module for an ONNX model: parity's candidate for an `.onnx` file."""

from __future__ import annotations


def onnx_to_torch_module(model):
    """The PyTorch module onnx2torch builds from the ONNX model (for parity as a candidate)."""
    from onnx2torch import convert

    return convert(model)
