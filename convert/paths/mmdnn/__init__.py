"""The MMdnn path: the real MMdnn 0.3.1 (TF parser -> IR -> PyTorch emitter), kept as it emits.

Two outputs, because users hold the first and the toolkit needs the second:
  - MMdnn's emitted PyTorch model, code and weights exactly as MMdnn writes them (every BatchNorm with
    `momentum=0.0`, which is what the diagnosis downstream is about), loaded by
    convert.paths.mmdnn.emitted.load_emitted;
  - the canonical backbone, mapped from MMdnn's IR and IR weights (convert.readers.mmdnn_ir).

  run.py      what MMdnn is given (the source's frozen graph, fused BN, no preprocessing) and running it
  emitted.py  MMdnn's emitted model in PyTorch: loaded without its pickle, run on the probes
MMdnn itself runs under convert.compat.mmdnn's shims.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from collections.abc import Mapping

import numpy as np

from convert.compat.mmdnn import MMDNN_VERSION
from convert.paths.base import Progress, via
from convert.paths.result import PathResult
from convert.runtime.errors import fail

# the activations a model may have that MMdnn 0.3.1's IR has no op for (MobileNetV3's), by the spec's names
NO_IR_OP = {"hard_swish": "HardSwish", "hard_sigmoid": "HardSigmoid"}


def missing_ops(spec) -> list[str]:
    """The ops of the source (its layers' activations, as the readers found them) MMdnn's IR lacks."""
    kinds = {getattr(layer, "activation", None) for layer in spec.layers}
    return [op for kind, op in NO_IR_OP.items() if kind in kinds]


def flatten_bug(spec) -> str:
    """Why MMdnn's emitted model cannot reproduce a source ("" where nothing known stops it): its PyTorch
    emitter flattens the NCHW map (`torch.reshape` / `.view`) while the Dense after it keeps TF's NHWC
    columns (MMdnn's VGG bug), which differs wherever the flattened map is more than one pixel."""
    f = spec.flatten if spec.pool == "flatten" else None
    if f is None or f.order != "NHWC" or f.shape[1] * f.shape[2] == 1:
        return ""
    return ("MMdnn 0.3.1 flattens the NCHW map where the first Dense keeps TF's NHWC columns (its flatten-order "
            "bug)")


@via("mmdnn")
def convert_path(source, x: np.ndarray, ref: Mapping[str, np.ndarray], progress: Progress, torch_half) -> PathResult:
    """MMdnn's artifacts, its emitted model and the canonical backbone on the probes (both in the torch half)."""
    from convert.arch import in_torchvision_order
    from convert.model.agreement import agreement
    from convert.model.semantics import with_source_semantics
    from convert.model.tolerance import REL_TOL, class_scores, dense_scale, loose_output
    from convert.paths.mmdnn.run import BACKBONE_INPUT, read_mmdnn_ir, run_mmdnn
    from convert.paths.worker import CanonicalRef, canonical_outputs, emitted
    from convert.runtime.bounds import stage

    if source.graph_def is None:
        raise fail(f"{source.path}: MMdnn reads TensorFlow graphs, not TFLite flatbuffers; use --via onnx")
    missing = missing_ops(source.spec)
    if missing:
        raise fail(f"{source.path}: MMdnn {MMDNN_VERSION}'s IR has no {' or '.join(missing)} op: its TF parser splits "
                   "them into Add/Relu6/Mul on Constant nodes, which no layer of the IR maps to; use --via onnx")
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="tfport-mmdnn-") as tmp:
        with stage("MMdnn"):
            res = run_mmdnn(source, tmp, progress)
        progress("MMdnn's emitted PyTorch model and the canonical backbone on the probe inputs")
        pre = source.spec.preprocess if res.input == BACKBONE_INPUT else None
        x_mm = x if pre is None else (x * np.float32(pre.scale) + np.float32(pre.offset)).astype(np.float32)
        ran = torch_half.submit(emitted, str(res.code), str(res.weights), x_mm)
        spec = with_source_semantics(in_torchvision_order(read_mmdnn_ir(res), source.spec.arch), source.spec)
        mapped = torch_half.submit(canonical_outputs, "mmdnn", spec, str(source.path), x)
        artifacts = {".mmdnn.py": res.code.read_bytes(), ".mmdnn.npy": res.weights.read_bytes()}
        with stage("torch side"):
            logits, out, bn_momenta = ran()  # before the folder with MMdnn's files goes
    with stage("torch side"):
        meta, outputs = mapped()
    result = PathResult("mmdnn", CanonicalRef("mmdnn", meta), artifacts=artifacts, outputs=outputs)
    scale = dense_scale(source.spec, ref.get("pooled"))
    own = [agreement("MMdnn emitted model vs TF: output", out, ref["output"], logits=class_scores(source.spec),
                     elementwise=loose_output(source.spec),
                     scale=dense_scale(source.spec, ref.get("pooled"), output=True))]
    if "logits" in ref and len(source.spec.head) == 1:  # the logits are its last Linear's output only then
        own.append(agreement("MMdnn emitted model vs TF: logits", logits, ref["logits"], logits=True, scale=scale))
    bug = flatten_bug(source.spec)
    if bug:  # measured and shown, but MMdnn's own model: the canonical port (its IR, columns permuted) gates
        own = [dataclasses.replace(a, gating=False) for a in own]
        if not all(a.ok(REL_TOL) for a in own):
            result.notes.append(f"{bug}: its emitted model computes another function (output rel {own[0].rel:.2g}); "
                                "the canonical port, read from its IR with those columns permuted, does not")
    result.agreements.extend(own)
    momenta = sorted(set(bn_momenta.values()))
    if momenta:
        result.notes.append(f"MMdnn's emitted model sets BatchNorm momentum {momenta} (PyTorch semantics): "
                            + ("running statistics never update in train mode" if momenta == [0.0] else "as emitted"))
    if res.route != "frozen graph":
        result.notes.append(res.route)
    result.notes.append(f"MMdnn {MMDNN_VERSION} wall time: parse {res.parse_s:.2f} s, emit {res.emit_s:.2f} s")
    result.seconds = time.perf_counter() - t0
    return result
