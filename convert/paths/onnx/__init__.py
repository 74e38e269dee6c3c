"""The ONNX path: real tf2onnx -> model.onnx (onnx.checker, ONNX Runtime) -> the canonical backbone.

  export.py    tf2onnx on the frozen graph, BatchNormalization kept (convert.compat.tf2onnx)
  tflite.py    tf2onnx's TFLite front end, for `.tflite` sources
  to_torch.py  onnx2torch's module of an ONNX file (parity's candidate for `.onnx`)
The ONNX model is read back into a spec by convert.readers.onnx and run by convert.runners.onnx.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import numpy as np

from convert.paths.base import Progress, via
from convert.paths.result import PathResult


@via("onnx")
def convert_path(source, x: np.ndarray, ref: Mapping[str, np.ndarray], progress: Progress, torch_half) -> PathResult:
    """ONNX export -> ONNX Runtime on the probes, and the canonical port mapped from the ONNX graph (in
    the torch half, meanwhile)."""
    from convert.arch import in_torchvision_order
    from convert.model.agreement import agreement
    from convert.model.semantics import with_source_semantics
    from convert.model.tolerance import class_scores, dense_scale, loose_output
    from convert.paths.onnx.export import check_onnx, tf_to_onnx
    from convert.paths.worker import CanonicalRef, canonical_outputs
    from convert.readers.onnx import read_onnx
    from convert.runners.onnx import OrtRunner
    from convert.runtime.bounds import stage

    t0 = time.perf_counter()
    if source.graph_def is None:  # a TFLite flatbuffer: tf2onnx's TFLite front end (checks the model itself)
        from convert.paths.onnx.tflite import tflite_to_onnx

        progress("tf2onnx: converting the TFLite flatbuffer")
        with stage("tf2onnx"):
            model = tflite_to_onnx(source.path)
    else:
        progress("tf2onnx: converting the frozen graph")
        with stage("tf2onnx"):
            model = tf_to_onnx(source.graph_def, source.info.input, source.info.output, name=source.spec.arch)
        progress("onnx.checker")
        check_onnx(model)
    data = model.SerializeToString()
    progress("ONNX -> canonical torchvision layout, run on the probe inputs")
    spec = with_source_semantics(in_torchvision_order(read_onnx(model, str(source.path), source.spec.input_shape[:2]),
                                                     source.spec.arch), source.spec)
    pending = torch_half.submit(canonical_outputs, "onnx", spec, str(source.path), x)  # the worker runs it meanwhile
    progress("ONNX Runtime on the probe inputs")
    ort = OrtRunner(data)
    (out,) = ort.run(x, [ort.sess.get_outputs()[0].name])
    with stage("torch side"):
        meta, outputs = pending()
    result = PathResult("onnx", CanonicalRef("onnx", meta), artifacts={".onnx": data}, outputs=outputs)
    result.agreements.append(agreement("ONNX Runtime vs TF: output", out, ref["output"],
                                       logits=class_scores(source.spec), elementwise=loose_output(source.spec),
                                       scale=dense_scale(source.spec, ref.get("pooled"), output=True)))
    result.seconds = time.perf_counter() - t0
    if meta["bn_folded"]:
        result.notes.append("BN folded into the convolutions at the source (no statistics in its graph, none "
                            "in a Keras model): the port is faithful in eval mode only")
    return result
