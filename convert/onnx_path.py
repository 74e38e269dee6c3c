"""The ONNX path: real tf2onnx -> model.onnx (onnx.checker, ONNX Runtime) -> canonical PyTorch.

tf2onnx folds BatchNorm into the preceding Conv in one registered rewrite of its back-to-back
optimizer (`('Conv', 'BatchNormalization')`). We run every optimizer but that one, so the ONNX model
keeps BatchNormalization nodes with their running statistics and the canonical backbone keeps them
too. Where BN arrives already decomposed (Keras 3 graphs: Mul/Add on constants), tf2onnx folds it
away regardless; the reader then marks those BN layers `folded` (eval-mode faithful only).

ONNX vs PyTorch, side by side:
  Conv  W (O, I/group, kH, kW), pads [top, left, bottom, right], auto_pad SAME_UPPER = TF SAME
  BatchNormalization  inputs X, scale, B, input_mean, input_var; epsilon attr (ONNX default 1e-5)
  Gemm / MatMul + Add  weight (in, out) for MatMul; Gemm honours transB
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from convert.errors import fail
from convert.spec import BNSpec, ConvSpec, DenseSpec, ModelSpec, TF_DEFAULT_BN_EPS

OPSET = 17


@contextlib.contextmanager
def _keep_batchnorm() -> Iterator[None]:
    """Leave out tf2onnx's Conv+BatchNormalization fusion for the duration of one conversion."""
    from tf2onnx.optimizer import back_to_back_optimizer as b2b

    key = ("Conv", "BatchNormalization")
    handler = b2b._func_map.pop(key, None)
    try:
        yield
    finally:
        if handler is not None:
            b2b._func_map[key] = handler


@contextlib.contextmanager
def collect_between_optimizers() -> Iterator[None]:
    """Free each discarded graph copy before tf2onnx's next optimizer pass.

    tf2onnx's optimize_graph deep-copies the whole graph (weights included) before every optimizer;
    the copies it drops hold reference cycles, so they wait for a full collection that rarely comes:
    at 224 px they added ~0.65 GB to conversion's peak. Objects alive before the conversion (TF's
    modules) are frozen out of the collector meanwhile, which makes each collection cheap (the
    conversion got faster, 1.96 -> 1.53 s, not slower)."""
    import gc

    from tf2onnx import optimizer

    originals = dict(optimizer._optimizers)

    def collected(factory):
        def make():
            gc.collect()
            return factory()
        return make

    gc.collect()
    gc.freeze()
    for name, factory in originals.items():
        optimizer._optimizers[name] = collected(factory)
    try:
        yield
    finally:
        optimizer._optimizers.clear()
        optimizer._optimizers.update(originals)
        gc.unfreeze()


def tf_to_onnx(graph_def, input_name: str, output_name: str, keep_bn: bool = True):
    """Convert a frozen GraphDef with tf2onnx (same steps as tf2onnx.convert.from_graph_def)."""
    import tensorflow as tf
    from tf2onnx import tf_loader
    from tf2onnx.convert import _convert_common

    ins, outs = [input_name], [output_name]
    with tf.Graph().as_default() as g, tf_loader.tf_session(graph=g):
        tf.import_graph_def(graph_def, name="")
        frozen = tf_loader.tf_optimize(ins, outs, graph_def)
    with _keep_batchnorm() if keep_bn else contextlib.nullcontext(), collect_between_optimizers():
        model, _ = _convert_common(frozen, name="mobilenet_v2", continue_on_error=False, opset=OPSET,
                                   input_names=ins, output_names=outs)
    return model


def check_onnx(model) -> None:
    import onnx

    try:
        onnx.checker.check_model(model, full_check=True)
    except onnx.checker.ValidationError as e:
        raise fail(f"tf2onnx produced an invalid ONNX model: {str(e).splitlines()[0]}")


class OrtRunner:
    """ONNX Runtime session over an ONNX model (bytes or path), fetching named outputs."""

    def __init__(self, model_bytes: bytes, extra_outputs: list[str] | None = None) -> None:
        import onnx
        import onnxruntime as ort

        model = onnx.load_from_string(model_bytes)
        known = {o.name for o in model.graph.output}
        for name in extra_outputs or []:
            if name not in known:
                model.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        opts.enable_mem_pattern = False  # its plan preallocates for the whole batch: +0.1 GB at 16 x 224 px
        self.sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        inp = self.sess.get_inputs()[0]
        self.input = inp.name
        self.batch = inp.shape[0] if isinstance(inp.shape[0], int) else None

    def run(self, x: np.ndarray, fetches: list[str]) -> list[np.ndarray]:
        step = self.batch or 4  # small batches: peak memory flat in the probe count, no slower on CPU
        outs: list[list[np.ndarray]] = [[] for _ in fetches]
        for i in range(0, len(x), step):
            res = self.sess.run(fetches, {self.input: x[i : i + step]})
            for acc, r in zip(outs, res):
                acc.append(r.reshape(len(r), -1) if r.ndim == 4 and r.shape[1:3] == (1, 1) else r)
        return [np.concatenate(o) for o in outs]


@dataclass
class _Graph:
    model: object

    def __post_init__(self) -> None:
        from onnx import numpy_helper

        g = self.model.graph
        self.init = {t.name: numpy_helper.to_array(t) for t in g.initializer}
        for n in g.node:  # tf2onnx sometimes leaves Constant nodes
            if n.op_type == "Constant":
                for a in n.attribute:
                    if a.name == "value":
                        self.init[n.output[0]] = numpy_helper.to_array(a.t)
        self.producer = {o: n for n in g.node for o in n.output}
        self.consumers: dict[str, list] = {}
        for n in g.node:
            for i in n.input:
                self.consumers.setdefault(i, []).append(n)

    def attr(self, node, name: str, default=None):
        from onnx import helper

        for a in node.attribute:
            if a.name == name:
                return helper.get_attribute_value(a)
        return default

    def const(self, name: str) -> np.ndarray | None:
        return self.init.get(name)

    def add_const_after(self, name: str) -> np.ndarray | None:
        """The constant operand of an Add that alone consumes `name` (a bias), else None."""
        add = self.only_consumer(name, "Add")
        return None if add is None else next((self.const(i) for i in add.input if self.const(i) is not None), None)

    def only_consumer(self, name: str, op: str | None = None):
        cs = self.consumers.get(name, [])
        while len(cs) == 1 and cs[0].op_type in ("Transpose", "Identity") and op != cs[0].op_type:
            cs = self.consumers.get(cs[0].output[0], [])
        if len(cs) == 1 and (op is None or cs[0].op_type == op):
            return cs[0]
        return None


def read_onnx(model, where: str, input_hw: tuple[int, int]) -> ModelSpec:
    """ONNX graph -> ModelSpec; the graph is topologically sorted, which is execution order."""
    g = _Graph(model)
    layers: list = []
    hw = input_hw
    pending_pad: tuple[int, int, int, int] | None = None
    pooled = False
    for n in model.graph.node:
        op = n.op_type
        if op in ("GlobalAveragePool", "AveragePool", "ReduceMean"):
            pooled = True
        elif op == "Conv" and pooled:  # slim's logits: a 1x1 conv on the pooled map
            w, b = g.const(n.input[1]), g.const(n.input[2]) if len(n.input) > 2 else None
            if b is None:  # tf2onnx drops an all-zero bias
                b = g.add_const_after(n.output[0])
                b = np.zeros(w.shape[0], np.float32) if b is None else b
            if w is None:
                raise fail(f"{where}: logits conv '{n.name}' weight is not an initializer")
            layers.append(DenseSpec(n.name, np.ascontiguousarray(w[:, :, 0, 0].astype(np.float32)), b.astype(np.float32)))
        elif op == "Pad":
            pads = g.const(n.input[1]) if len(n.input) > 1 else np.array(g.attr(n, "pads"))
            if pads is None or len(pads) != 8:
                raise fail(f"{where}: Pad '{n.name}' has no constant 4-D pads")
            pads = [int(p) for p in pads]
            # NHWC pads [n, h, w, c, n, h, w, c] or NCHW [n, c, h, w, ...]: the two spatial axes are
            # the ones with non-zero entries
            begin, end = pads[:4], pads[4:]
            axes = (1, 2) if begin[3] == end[3] == 0 and (begin[1] or end[1] or begin[2] or end[2]) else (2, 3)
            pending_pad = (begin[axes[0]], end[axes[0]], begin[axes[1]], end[axes[1]])
        elif op == "Conv":
            w = g.const(n.input[1])
            if w is None:
                raise fail(f"{where}: Conv '{n.name}' weight is not an initializer")
            layers.extend(_conv(g, n, w.astype(np.float32), hw, pending_pad, where))
            stride = int(g.attr(n, "strides", [1, 1])[0])
            hw = (-(-hw[0] // stride), -(-hw[1] // stride))
            pending_pad = None
        elif op == "BatchNormalization":
            scale, bias, mean, var = (g.const(i) for i in n.input[1:5])
            if any(a is None for a in (scale, bias, mean, var)):
                raise fail(f"{where}: BatchNormalization '{n.name}' parameters are not initializers")
            layers.append(BNSpec(n.name, scale.astype(np.float32), bias.astype(np.float32), mean.astype(np.float32),
                                 var.astype(np.float32), float(g.attr(n, "epsilon", 1e-5))))
        elif op in ("Gemm", "MatMul"):
            w = g.const(n.input[1])
            if w is None:
                raise fail(f"{where}: dense '{n.name}' weight is not an initializer")
            if op == "Gemm":
                w = w if g.attr(n, "transB", 0) else w.T
                b = g.const(n.input[2]) if len(n.input) > 2 else None
            else:
                w = w.T
                b = g.add_const_after(n.output[0])
            if b is None:  # tf2onnx drops an all-zero bias
                b = np.zeros(w.shape[0], np.float32)
            layers.append(DenseSpec(n.name, np.ascontiguousarray(w.astype(np.float32)), b.astype(np.float32).reshape(-1)))
    return ModelSpec(layers=layers, input_shape=(*input_hw, 3), origin="onnx")


def _conv(g: _Graph, n, w: np.ndarray, hw, pending_pad, where: str) -> list:
    from convert.spec import tf_same_pads

    group = int(g.attr(n, "group", 1))
    kh, kw = w.shape[2:]
    stride = int(g.attr(n, "strides", [1, 1])[0])
    depthwise = group > 1
    if depthwise and (group != w.shape[0] or w.shape[1] != 1):
        raise fail(f"{where}: grouped conv '{n.name}' (group {group}, weight {w.shape}) is not depthwise")
    auto_pad = g.attr(n, "auto_pad", b"NOTSET")
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
    same = auto_pad == "SAME_UPPER"
    h, wd = hw
    if pending_pad is not None:
        pads = pending_pad
    elif same:
        pads = tf_same_pads(h, kh, stride) + tf_same_pads(wd, kw, stride)
    else:
        p = [int(x) for x in g.attr(n, "pads", [0, 0, 0, 0])]
        pads = (p[0], p[2], p[1], p[3])
        same = pads == tf_same_pads(h, kh, stride) + tf_same_pads(wd, kw, stride) and pads[0] != pads[1]
    out: list = [ConvSpec(n.name, np.ascontiguousarray(w), stride, depthwise, pads, same)]
    bias = g.const(n.input[2]) if len(n.input) > 2 else None
    # BN folded by tf2onnx (conv bias) or left as Mul/Add on constants (Keras 3 graphs)
    mul = g.only_consumer(n.output[0], "Mul")
    scale = np.ones(w.shape[0], np.float32)
    offset = bias.astype(np.float32) if bias is not None else None
    if mul is not None:
        s = next((g.const(i) for i in mul.input if g.const(i) is not None), None)
        add = g.only_consumer(mul.output[0], "Add")
        b = None if add is None else next((g.const(i) for i in add.input if g.const(i) is not None), None)
        if s is not None and b is not None:
            scale = s.astype(np.float32).reshape(-1) * np.ones(w.shape[0], np.float32)
            base = offset if offset is not None else 0.0
            offset = (base * scale + b.astype(np.float32).reshape(-1)).astype(np.float32)
    if offset is not None and g.only_consumer(n.output[0], "BatchNormalization") is None:
        eps = TF_DEFAULT_BN_EPS
        # y = x * scale + offset, written as BN with mean 0, var 1: gamma = scale * sqrt(1 + eps)
        gamma = (scale.astype(np.float64) * np.sqrt(1.0 + eps)).astype(np.float32)
        out.append(BNSpec(n.name + "/folded_bn", gamma, offset, np.zeros_like(offset), np.ones_like(offset), eps, folded=True))
    return out


def onnx_to_torch_module(model):
    """The PyTorch module onnx2torch builds from the ONNX model (for parity as a candidate)."""
    from onnx2torch import convert

    return convert(model)

