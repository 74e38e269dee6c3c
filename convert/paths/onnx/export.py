"""The ONNX export: real tf2onnx on the frozen graph -> model.onnx, checked by onnx.checker.

tf2onnx folds BatchNorm into the preceding Conv in one registered rewrite of its back-to-back
optimizer (`('Conv', 'BatchNormalization')`). Every optimizer but that one runs, so the ONNX model
keeps BatchNormalization nodes with their running statistics and the canonical backbone keeps them
too. Where BN arrives already decomposed (Keras 3 graphs: Mul/Add on constants), tf2onnx folds it
away regardless; the reader (convert.readers.onnx) then marks those BN layers `folded`.
"""

from __future__ import annotations

import contextlib

from convert.runtime.errors import fail

OPSET = 17


def tf_to_onnx(graph_def, input_name: str, output_name: str, keep_bn: bool = True, name: str = "tfport"):
    """Convert a frozen GraphDef with tf2onnx (same steps as tf2onnx.convert.from_graph_def)."""
    import tensorflow as tf
    from tf2onnx import tf_loader

    from convert.compat.tf2onnx import collect_between_optimizers, convert_frozen, keep_batchnorm

    ins, outs = [input_name], [output_name]
    with tf.Graph().as_default() as g, tf_loader.tf_session(graph=g):
        tf.import_graph_def(graph_def, name="")
        frozen = tf_loader.tf_optimize(ins, outs, graph_def)
    with keep_batchnorm() if keep_bn else contextlib.nullcontext(), collect_between_optimizers():
        return convert_frozen(frozen, name=name, opset=OPSET, input_names=ins, output_names=outs)


def check_onnx(model) -> None:
    import onnx

    try:
        onnx.checker.check_model(model, full_check=True)
    except onnx.checker.ValidationError as e:
        raise fail(f"tf2onnx produced an invalid ONNX model: {str(e).splitlines()[0]}") from None
