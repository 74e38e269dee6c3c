"""Read a frozen TF GraphDef into a :class:`ModelSpec`, and run it as the reference.

The walk is by op type and data flow, never by node names, so slim graphs (`MobilenetV2/...`),
frozen Keras graphs (`mobilenetv2_1.00_224/...`) and anything renamed read the same way.

TF vs PyTorch, side by side:
  Conv2D                 filter HWIO, NHWC, padding SAME|VALID|EXPLICIT  -> Conv2d weight OIHW
  DepthwiseConv2dNative  filter (kH, kW, C, 1)                          -> Conv2d(groups=C) (C, 1, kH, kW)
  FusedBatchNorm*        (x - mean) * rsqrt(var + epsilon) * scale + offset (epsilon attr, no decay)
  MatMul (+ BiasAdd)     weight (in, out)                               -> Linear weight (out, in)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from convert.errors import fail
from convert.spec import BNSpec, ConvSpec, DenseSpec, ModelSpec, tf_same_pads

_PASS_THROUGH = {"Identity", "ReadVariableOp", "Snapshot", "StopGradient"}
_BN_OPS = {"FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3"}
# ops that keep the spatial size of their 4-D input (Keras 3 decomposes BN into Mul/Sub/AddV2)
_ELEMENTWISE = _PASS_THROUGH | _BN_OPS | {"Relu6", "Relu", "AddV2", "Add", "BiasAdd", "Mul", "Sub"}


def parse_graph_def(data: bytes, where: str):
    """Parse GraphDef bytes; any protobuf failure is bad input, not a crash."""
    import tensorflow as tf
    from google.protobuf.message import DecodeError

    gd = tf.compat.v1.GraphDef()
    try:
        gd.ParseFromString(data)
    except (DecodeError, ValueError, RuntimeError) as e:
        raise fail(f"{where}: not a TensorFlow GraphDef ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else 'unparsable'})")
    if not gd.node:
        raise fail(f"{where}: a GraphDef with no nodes")
    return gd


@dataclass
class GraphInfo:
    """What the walk learns besides the layers: the tensors the reference is read at."""

    input: str
    pooled: str | None
    logits: str | None
    output: str
    input_shape: tuple[int | None, ...]
    op_counts: dict[str, int] = field(default_factory=dict)


def _name(inp: str) -> str:
    return inp.lstrip("^").split(":")[0]


class GraphReader:
    def __init__(self, gd, where: str, input_size: tuple[int, int] | None = None) -> None:
        self.gd = gd
        self.where = where
        self.nodes = {n.name: n for n in gd.node}
        self.consumers: dict[str, list] = {}
        for n in gd.node:
            for i in n.input:
                if not i.startswith("^"):
                    self.consumers.setdefault(_name(i), []).append(n)
        self.input_size = input_size

    # --- helpers -------------------------------------------------------------------------
    def producer(self, inp: str):
        node = self.nodes.get(_name(inp))
        while node is not None and node.op in _PASS_THROUGH:
            node = self.nodes.get(_name(node.input[0]))
        return node

    def const(self, inp: str) -> np.ndarray | None:
        from tensorflow.python.framework import tensor_util

        node = self.producer(inp)
        if node is None or node.op != "Const":
            return None
        return tensor_util.MakeNdarray(node.attr["value"].tensor)

    def need_const(self, inp: str, what: str) -> np.ndarray:
        v = self.const(inp)
        if v is None:
            raise fail(f"{self.where}: {what} of '{_name(inp)}' is not a constant: freeze the graph first")
        return v

    def topo(self) -> list:
        """Nodes in execution order (Kahn's algorithm over data and control edges, stable)."""
        edges: dict[str, list[str]] = {}
        indeg = dict.fromkeys(self.nodes, 0)
        for n in self.gd.node:
            for i in n.input:
                if _name(i) in self.nodes:
                    edges.setdefault(_name(i), []).append(n.name)
                    indeg[n.name] += 1
        ready = [n.name for n in self.gd.node if indeg[n.name] == 0]
        order = []
        while ready:
            name = ready.pop(0)
            order.append(self.nodes[name])
            for c in edges.get(name, []):
                indeg[c] -= 1
                if indeg[c] == 0:
                    ready.append(c)
        if len(order) != len(self.nodes):
            raise fail(f"{self.where}: the graph has a cycle; not a feed-forward network")
        return order

    # --- the walk ------------------------------------------------------------------------
    def read(self) -> tuple[ModelSpec, GraphInfo]:
        placeholders = [n for n in self.gd.node if n.op == "Placeholder"]
        if len(placeholders) != 1:
            raise fail(f"{self.where}: expected one input placeholder, found {len(placeholders)}")
        ph = placeholders[0]
        dims = tuple(d.size if d.size >= 0 else None for d in ph.attr["shape"].shape.dim)
        if len(dims) != 4 or dims[3] != 3:
            raise fail(f"{self.where}: input '{ph.name}' has shape {dims}, expected (N, H, W, 3) NHWC images")
        h, w = dims[1], dims[2]
        if h is None or w is None:
            if self.input_size is None:
                raise fail(f"{self.where}: input size is not fixed in the graph; give --input-size HxW")
            h, w = self.input_size
        sizes = {ph.name: (h, w)}  # spatial size of each 4-D tensor, propagated along the walk

        order = self.topo()
        counts: dict[str, int] = {}
        for n in order:
            counts[n.op] = counts.get(n.op, 0) + 1
        _refuse_other_architectures(counts, self.where)
        layers: list = []
        pooled = logits = None
        pooled_node = None
        for n in order:
            ins = [i for i in n.input if not i.startswith("^")]
            src_size = sizes.get(_name(ins[0])) if ins else None
            if n.op in _ELEMENTWISE:
                known = [sizes[_name(i)] for i in ins if _name(i) in sizes]
                if known:
                    sizes[n.name] = known[0]
            if n.op in ("Pad", "PadV2", "MirrorPad"):
                pads = self.need_const(ins[1], "padding")
                if src_size is not None:
                    sizes[n.name] = (src_size[0] + int(pads[1].sum()), src_size[1] + int(pads[2].sum()))
            elif n.op in ("Conv2D", "DepthwiseConv2dNative"):
                if pooled_node is not None:  # slim's logits: a 1x1 conv on the pooled map
                    wt = self.need_const(ins[1], "filter")
                    bias = self._bias_after(n)
                    layers.append(DenseSpec(n.name, np.ascontiguousarray(wt[0, 0].T), bias))
                    continue
                spec, out_size = self._conv(n, ins, src_size)
                layers.append(spec)
                sizes[n.name] = out_size
            elif n.op == "Mul" and layers and isinstance(layers[-1], ConvSpec) and self._is_conv_output(ins[0], layers[-1]):
                bn = self._decomposed_bn(n, ins)
                if bn is not None:
                    layers.append(bn)
            elif n.op in _BN_OPS:
                if n.attr["is_training"].b:
                    raise fail(f"{self.where}: BatchNorm '{n.name}' is in training mode; export the graph for inference")
                g, b, m, v = (self.need_const(i, "BN parameter").astype(np.float32) for i in ins[1:5])
                layers.append(BNSpec(n.name, g, b, m, v, float(n.attr["epsilon"].f)))
            elif n.op in ("Mean", "AvgPool"):
                pooled_node = n
                pooled = n.name + ":0"
            elif n.op == "MatMul":
                wt = self.need_const(ins[1], "weights")
                if n.attr["transpose_b"].b:
                    wt = wt.T
                layers.append(DenseSpec(n.name, np.ascontiguousarray(wt.T), self._bias_after(n)))
            elif n.op == "Softmax":
                logits = ins[0] if ":" in ins[0] else ins[0] + ":0"
        outputs = [n for n in order if n.op not in ("NoOp", "Const") and not self.consumers.get(n.name)]
        output = (outputs[-1].name + ":0") if outputs else logits or ""
        if logits is None and layers and isinstance(layers[-1], DenseSpec):
            logits = output
        info = GraphInfo(ph.name + ":0", pooled, logits, output, dims, counts)
        spec = ModelSpec(layers=layers, input_shape=(h, w, 3), origin="graph")
        spec.taps = self._taps(layers)
        return spec, info

    # --- probe points ---------------------------------------------------------------------
    def _follow(self, name: str, ops: set[str]):
        """The single data consumer of `name` (through pass-through ops) if its op is in `ops`."""
        cs = [c for c in self.consumers.get(name, []) if c.op not in ("NoOp",)]
        while len(cs) == 1 and cs[0].op in _PASS_THROUGH:
            cs = self.consumers.get(cs[0].name, [])
        return cs[0] if len(cs) == 1 and cs[0].op in ops else None

    def _taps(self, layers: list) -> dict[int, dict[str, str]]:
        """Per layer index, the tensors after normalisation (:bn), after ReLU6 (:act), after the residual add (:out)."""
        taps: dict[int, dict[str, str]] = {}
        for i, layer in enumerate(layers):
            if isinstance(layer, BNSpec):
                node = layer.name.split("#")[0]
                t = {":bn": node + ":0"}
                act = self._follow(node, {"Relu6"})
                if act is not None:
                    t[":act"] = act.name + ":0"
                add = self._follow(node, {"AddV2", "Add"})
                if add is not None:
                    t[":out"] = add.name + ":0"
                taps[i] = t
            elif isinstance(layer, DenseSpec):
                taps[i] = {"": (self._follow(layer.name, {"BiasAdd", "Add", "AddV2"}) or self.nodes[layer.name]).name + ":0"}
        return taps

    def _is_conv_output(self, inp: str, conv: ConvSpec) -> bool:
        node = self.producer(inp)
        return node is not None and node.name == conv.name

    def _decomposed_bn(self, mul, ins) -> BNSpec | None:
        """Keras 3's BN in a frozen graph: y = x * a + b with a, b computed from constants.

        The statistics are not separable from a and b, so this is a folded BN (eval-mode faithful):
        mean 0, var 1, gamma = a * sqrt(1 + eps), beta = b."""
        add = self._follow(mul.name, {"AddV2", "Add"})
        if add is None:
            return None
        a = self.evaluate(ins[1])
        b_in = next(i for i in add.input if _name(i) != mul.name and not i.startswith("^"))
        b = self.evaluate(b_in)
        if a is None or b is None:
            return None
        eps = 1e-3
        a = a.astype(np.float64).reshape(-1)
        return BNSpec(add.name + "#folded", (a * np.sqrt(1 + eps)).astype(np.float32), b.astype(np.float32).reshape(-1),
                      np.zeros_like(a, np.float32), np.ones_like(a, np.float32), eps, folded=True)

    def evaluate(self, inp: str) -> np.ndarray | None:
        """Value of a tensor that depends on constants only (evaluated in TF), else None."""
        c = self.const(inp)
        if c is not None:
            return c
        stack, seen = [_name(inp)], set()
        while stack:
            name = stack.pop()
            if name in seen:
                continue
            seen.add(name)
            node = self.nodes.get(name)
            if node is None or node.op == "Placeholder":
                return None
            stack.extend(_name(i) for i in node.input)
        import tensorflow as tf

        if not hasattr(self, "_sess"):
            graph = tf.Graph()
            with graph.as_default():
                tf.compat.v1.import_graph_def(self.gd, name="")
            self._sess = tf.compat.v1.Session(graph=graph)
        t = inp if ":" in inp else inp + ":0"
        return np.asarray(self._sess.run(t))

    def _bias_after(self, n) -> np.ndarray:
        for c in self.consumers.get(n.name, []):
            while c.op in _PASS_THROUGH and self.consumers.get(c.name):
                c = self.consumers[c.name][0]
            if c.op in ("BiasAdd", "Add", "AddV2"):
                b = self.const(c.input[1])
                if b is not None:
                    return b.astype(np.float32).reshape(-1)
        raise fail(f"{self.where}: dense layer '{n.name}' has no constant bias")

    def _conv(self, n, ins, src_size) -> tuple[ConvSpec, tuple[int, int]]:
        if n.attr["data_format"].s not in (b"", b"NHWC"):
            raise fail(f"{self.where}: conv '{n.name}' is {n.attr['data_format'].s.decode()}; only NHWC graphs are read")
        strides = list(n.attr["strides"].list.i)
        dil = list(n.attr["dilations"].list.i) or [1, 1, 1, 1]
        if strides[1] != strides[2] or any(d != 1 for d in dil):
            raise fail(f"{self.where}: conv '{n.name}' has strides {strides} / dilations {dil}, not a MobileNetV2 conv")
        stride = strides[1]
        wt = self.need_const(ins[1], "filter").astype(np.float32)
        kh, kw = wt.shape[:2]
        depthwise = n.op == "DepthwiseConv2dNative"
        if depthwise:
            if wt.shape[3] != 1:
                raise fail(f"{self.where}: depthwise '{n.name}' has channel multiplier {wt.shape[3]}, MobileNetV2 uses 1")
            torch_w = wt.transpose(2, 3, 0, 1)  # (kH, kW, C, 1) -> (C, 1, kH, kW)
        else:
            torch_w = wt.transpose(3, 2, 0, 1)  # HWIO -> OIHW
        if src_size is None:
            raise fail(f"{self.where}: cannot trace the spatial size reaching '{n.name}'")
        h, w = src_size
        padding = n.attr["padding"].s.decode()
        pads = (0, 0, 0, 0)
        pre = self.producer(ins[0])
        if pre is not None and pre.op in ("Pad", "PadV2"):
            p = self.need_const(pre.input[1], "padding")
            pads = (int(p[1][0]), int(p[1][1]), int(p[2][0]), int(p[2][1]))
            h, w = h - sum(pads[:2]), w - sum(pads[2:])  # size before the explicit pad
        if padding == "SAME":
            pads = tf_same_pads(h, kh, stride) + tf_same_pads(w, kw, stride)
        elif padding == "EXPLICIT":
            e = list(n.attr["explicit_paddings"].list.i)
            pads = (e[2], e[3], e[4], e[5])
        out = ((h + pads[0] + pads[1] - kh) // stride + 1, (w + pads[2] + pads[3] - kw) // stride + 1)
        return ConvSpec(n.name, np.ascontiguousarray(torch_w), stride, depthwise, pads, padding == "SAME"), out


def _refuse_other_architectures(counts: dict[str, int], where: str) -> None:
    """A MobileNetV2 has 17 depthwise convs, 10 residual adds, no max-pooling and no concatenation."""
    dw = counts.get("DepthwiseConv2dNative", 0)
    convs = counts.get("Conv2D", 0)
    adds = counts.get("AddV2", 0) + counts.get("Add", 0)
    pools = counts.get("MaxPool", 0)
    concat = counts.get("ConcatV2", 0)
    if dw == 17 and not pools and not concat:
        return
    if concat:
        guess = "Inception-like (concatenated branches)"
    elif pools and not dw:
        guess = "ResNet/VGG-like (max-pooling, no depthwise convs)"
    elif dw and adds == 0:
        guess = "MobileNet v1-like (depthwise convs, no residual adds)"
    else:
        guess = "an unknown architecture"
    raise fail(f"{where}: not a MobileNetV2: found {convs} Conv2D, {dw} depthwise, {pools} MaxPool, {concat} ConcatV2, "
               f"{adds} Add ops — {guess}; a MobileNetV2 has 17 depthwise convs, residual adds and no max-pooling")


def read_graph(gd, where: str, input_size: tuple[int, int] | None = None) -> tuple[ModelSpec, GraphInfo]:
    """A malformed graph (missing inputs, wrong attribute types, bad tensors) is bad input, not a bug."""
    try:
        return GraphReader(gd, where, input_size).read()
    except (KeyError, IndexError, ValueError, TypeError, AttributeError) as e:
        detail = str(e).splitlines()[0][:120] if str(e) else ""
        raise fail(f"{where}: malformed graph ({type(e).__name__}: {detail})") from None


class TFRunner:
    """Runs a frozen GraphDef in TF (graph mode) and fetches named tensors, batch by batch."""

    def __init__(self, gd, info: GraphInfo) -> None:
        import tensorflow as tf

        self.info = info
        self.graph = tf.Graph()
        with self.graph.as_default():
            tf.compat.v1.import_graph_def(gd, name="")
        self.sess = tf.compat.v1.Session(graph=self.graph)
        self.batch = info.input_shape[0]  # None: any batch; slim graphs fix it to 1

    def close(self) -> None:
        """Release the session's buffers now rather than when the garbage collector gets to it."""
        self.sess.close()

    def run(self, x: np.ndarray, fetches: list[str], progress: Callable[[int], None] | None = None) -> list[np.ndarray]:
        step = self.batch or 16
        outs: list[list[np.ndarray]] = [[] for _ in fetches]
        for i in range(0, len(x), step):
            res = self.sess.run(fetches, {self.info.input: x[i : i + step]})
            for acc, r in zip(outs, res):
                acc.append(np.asarray(r).reshape(len(x[i : i + step]), -1) if r.ndim != 4 or r.shape[1:3] == (1, 1) else r)
            if progress:
                progress(min(i + step, len(x)))
        return [o[0] if len(o) == 1 else np.concatenate(o) for o in outs]
