"""tf2onnx's TFLite front end: a .tflite straight to ONNX (no TF graph to freeze)."""

from __future__ import annotations

from pathlib import Path

from convert.compat.tflite import quiet_tflite
from convert.readers.tflite import read_bytes


def tflite_to_onnx(path: str | Path, opset: int | None = None):
    """The ONNX model tf2onnx's TFLite front end makes of the file, checked by onnx.checker.

    tf2onnx reads the flatbuffer itself: convs arrive with the folded BN as their bias, fused RELU6
    as Clip(0, 6), and NHWC input as one Transpose to NCHW before the first Conv."""
    from tf2onnx.convert import from_tflite

    from convert.compat.tf2onnx import collect_between_optimizers
    from convert.paths.onnx.export import OPSET, check_onnx

    read_bytes(path, str(path))
    with quiet_tflite(), collect_between_optimizers():
        model, _ = from_tflite(str(path), opset=opset or OPSET)
    check_onnx(model)
    return model
