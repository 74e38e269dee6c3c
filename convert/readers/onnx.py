"""Read an ONNX graph (what tf2onnx wrote) into a :class:`ModelSpec`, by op type in topological order.

ONNX vs PyTorch, side by side:
  Conv  W (O, I/group, kH, kW), pads [top, left, bottom, right], auto_pad SAME_UPPER = TF SAME
  BatchNormalization  inputs X, scale, B, input_mean, input_var; epsilon attr (ONNX default 1e-5)
  Gemm / MatMul + Add  weight (in, out) for MatMul; Gemm honours transB
  ReduceMean(x) -> Conv (+ bias) ... -> Mul(x, gate)     a squeeze-excitation: its convs keep their bias
  Add(x, 3) -> Clip(0, 6) -> Mul(1/6) | Div(6) [-> Mul(x, .)], HardSigmoid(1/6, 0.5), HardSwish
                                                         hard-sigmoid / hard-swish (MobileNetV3)
  Reshape before a Dense  a flatten: NHWC where tf2onnx transposed the map back (perm [0, 2, 3, 1]), else NCHW
A BN that tf2onnx folded into the conv (a conv bias), or that arrived decomposed (Keras 3 graphs: Mul/Add
on constants), is read as a folded BN: eval-mode faithful only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from convert.model.spec import BNSpec, ConvSpec, DenseSpec, FlattenSpec, ModelSpec
from convert.runtime.errors import fail

# ops between two convs of one chain (ConvSpec.reads): bias, BN (kept, folded into Mul/Add), activation, the
# next conv's pad, a pooling, tf2onnx's layout ops
_READ_THROUGH = {"Add", "Mul", "BatchNormalization", "Relu", "Clip", "Pad", "MaxPool", "Transpose", "Identity",
                 "Reshape"}


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

    def bn_after(self, name: str):
        """The BatchNormalization that alone consumes `name`, through layout-only ops (tf2onnx puts a Reshape
        before the BN of a 1x1 feature map), else None."""
        cs = self.consumers.get(name, [])
        while len(cs) == 1 and cs[0].op_type in ("Transpose", "Identity", "Reshape", "Squeeze", "Unsqueeze"):
            cs = self.consumers.get(cs[0].output[0], [])
        return cs[0] if len(cs) == 1 and cs[0].op_type == "BatchNormalization" else None

    def origin(self, name: str) -> str:
        """A tensor's value as produced, through layout-only ops (tf2onnx's Transposes, Identity)."""
        node = self.producer.get(name)
        while node is not None and node.op_type in ("Transpose", "Identity"):
            name = node.input[0]
            node = self.producer.get(name)
        return name

    def upstream(self, name: str) -> set[str]:
        """Every tensor `name` is computed from (itself included)."""
        seen, stack = set(), [name]
        while stack:
            t = stack.pop()
            if t in seen:
                continue
            seen.add(t)
            node = self.producer.get(t)
            if node is not None:
                stack.extend(node.input)
        return seen

    def other_than_const(self, node, value: float) -> str | None:
        """For a binary op whose one operand is a constant equal to `value`, the other operand, else None."""
        if len(node.input) != 2:
            return None
        for k in (0, 1):
            c = self.const(node.input[k])
            if c is not None and c.size and np.allclose(c, value, rtol=1e-6, atol=0):
                return node.input[1 - k]
        return None

    def activation_after(self, name: str) -> tuple[str, str | None]:
        """(kind, output tensor) of the activation applied to tensor `name` (through layout-only ops): Relu,
        Clip(0, 6) (ReLU6), HardSwish, HardSigmoid, their decomposed forms; ("linear", None) where none."""
        x = self.origin(name)
        for c in self._consumers_through(name):
            if c.op_type == "Relu":
                return "relu", c.output[0]
            if c.op_type == "HardSwish":
                return "hard_swish", c.output[0]
            if c.op_type == "HardSigmoid" and np.isclose(self.attr(c, "alpha", 0.2), 1 / 6) and \
                    np.isclose(self.attr(c, "beta", 0.5), 0.5):
                return self._swish_or_sigmoid(x, c.output[0])
            if c.op_type == "Clip" and self._clip(c) == (0.0, 6.0):
                return "relu6", c.output[0]
            if c.op_type == "Add" and self.other_than_const(c, 3.0) is not None:
                clip = self.only_consumer(c.output[0], "Clip")
                if clip is None or self._clip(clip) != (0.0, 6.0):
                    continue
                scale = self.only_consumer(clip.output[0])
                if scale is not None and ((scale.op_type == "Mul" and self.other_than_const(scale, 1 / 6))
                                          or (scale.op_type == "Div" and scale.input[1] != clip.output[0]
                                              and self.other_than_const(scale, 6.0))):
                    return self._swish_or_sigmoid(x, scale.output[0])
        return "linear", None

    def _swish_or_sigmoid(self, x: str, sigmoid: str) -> tuple[str, str]:
        """hard-swish where a Mul multiplies x by its hard-sigmoid, else the hard-sigmoid itself."""
        for c in self._consumers_through(sigmoid):
            if c.op_type == "Mul" and {self.origin(i) for i in c.input} == {x, self.origin(sigmoid)}:
                return "hard_swish", c.output[0]
        return "hard_sigmoid", sigmoid

    def _clip(self, node) -> tuple[float, float] | None:
        lo = self.const(node.input[1]) if len(node.input) > 1 and node.input[1] else self.attr(node, "min")
        hi = self.const(node.input[2]) if len(node.input) > 2 and node.input[2] else self.attr(node, "max")
        return None if lo is None or hi is None else (float(np.ravel(lo)[0]), float(np.ravel(hi)[0]))

    def _consumers_through(self, name: str) -> list:
        out, stack = [], list(self.consumers.get(name, []))
        while stack:
            c = stack.pop()
            if c.op_type in ("Transpose", "Identity"):
                stack.extend(self.consumers.get(c.output[0], []))
            else:
                out.append(c)
        return out

    def se_gate(self, pool):
        """The Mul that gates a global pooling's own input by what is computed from the pooled values (a
        squeeze-excitation unit), else None: the pooling is the backbone's."""
        x = self.origin(pool.input[0])
        for mul in (n for n in self.model.graph.node if n.op_type == "Mul"):
            ins = [self.origin(i) for i in mul.input]
            if x in ins and len(ins) == 2:
                other = mul.input[1 - ins.index(x)]
                if pool.output[0] in self.upstream(other):
                    return mul
        return None

    def conv_read(self, name: str) -> str | None:
        """The Conv whose output reaches tensor `name` through ops with one non-constant input (its bias Add,
        BN, Mul/Add of a folded BN, Relu, Clip, Pad, MaxPool, layout ops), else None (ConvSpec.reads)."""
        node = self.producer.get(name)
        for _ in range(32):  # a few ops between two convs of a chain, never a long one
            if node is None or node.op_type == "Conv":
                return None if node is None else node.name
            if node.op_type not in _READ_THROUGH:
                return None
            data = [i for i in node.input if i and self.const(i) is None]
            if node.op_type in ("BatchNormalization", "Clip", "Pad", "Reshape"):
                data = data[:1]  # their other inputs are parameters (constants or shapes)
            if len(data) != 1:  # a residual Add: two data inputs
                return None
            node = self.producer.get(data[0])
        return None

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
    squeeze: set[str] = set()  # the convs between a squeeze-excitation's pooling and its gate
    flatten: FlattenSpec | None = None
    for n in model.graph.node:
        op = n.op_type
        if op in ("GlobalAveragePool", "ReduceMean") and not pooled and (gate := g.se_gate(n)) is not None:
            up = g.upstream(gate.output[0])
            squeeze |= {c.name for c in model.graph.node if c.op_type == "Conv" and c.output[0] in up
                        and n.output[0] in g.upstream(c.output[0])}
        elif op in ("GlobalAveragePool", "AveragePool", "ReduceMean"):
            pooled = True
        elif op == "Conv" and n.name in squeeze:
            w = g.const(n.input[1])
            b = g.const(n.input[2]) if len(n.input) > 2 else None
            if w is None:
                raise fail(f"{where}: squeeze-excitation conv '{n.name}' weight is not an initializer")
            bias = (np.zeros(w.shape[0], np.float32) if b is None else b).astype(np.float32).reshape(-1)
            kind, act = g.activation_after(n.output[0])
            scale = g.only_consumer(act) if kind == "relu6" and act is not None else None
            if scale is not None and ((scale.op_type == "Mul" and g.other_than_const(scale, 1 / 6))
                                      or (scale.op_type == "Div" and g.other_than_const(scale, 6.0))):
                # TFLite's converter folds hard-sigmoid's + 3 into the conv's bias (tf2onnx keeps it so)
                kind, bias = "hard_sigmoid", (bias.astype(np.float64) - 3.0).astype(np.float32)
            layers.append(ConvSpec(n.name, np.ascontiguousarray(w.astype(np.float32)), 1, False, (0, 0, 0, 0), False,
                                   bias, activation=kind, squeeze=True))
        elif op == "MaxPool":  # ResNet's stem (the pad before it is the pool's, not the next conv's); VGG's
            hw = _pool_hw(g, n, hw, pending_pad)
            pending_pad = None
        elif op in ("Reshape", "Flatten") and not pooled and flatten is None and _feeds_dense(g, n):
            flatten = _flatten(g, n, layers, hw, where)
        elif op == "Conv" and pooled:  # slim's logits: a 1x1 conv on the pooled map
            w, b = g.const(n.input[1]), g.const(n.input[2]) if len(n.input) > 2 else None
            if b is None:  # tf2onnx drops an all-zero bias
                b = g.add_const_after(n.output[0])
                b = np.zeros(w.shape[0], np.float32) if b is None else b
            if w is None:
                raise fail(f"{where}: logits conv '{n.name}' weight is not an initializer")
            layers.append(
                DenseSpec(n.name, np.ascontiguousarray(w[:, :, 0, 0].astype(np.float32)), b.astype(np.float32))
            )
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
                                 var.astype(np.float32), float(g.attr(n, "epsilon", 1e-5)),
                                 activation=g.activation_after(n.output[0])[0]))
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
            layers.append(
                DenseSpec(n.name, np.ascontiguousarray(w.astype(np.float32)), b.astype(np.float32).reshape(-1))
            )
    return ModelSpec(layers=layers, input_shape=(*input_hw, 3), origin="onnx",
                     **({"pool": "flatten", "flatten": flatten} if flatten is not None else {}))


def _pool_hw(g: _Graph, n, hw: tuple[int, int], pending_pad) -> tuple[int, int]:
    """A MaxPool's output size: TF's VALID pools floor ((h + pads - k) // s + 1: VGG16's 2x2/2 on odd maps),
    SAME_UPPER ceils."""
    stride = int(g.attr(n, "strides", [1, 1])[0])
    auto_pad = g.attr(n, "auto_pad", b"NOTSET")
    if (auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad) == "SAME_UPPER":
        return -(-hw[0] // stride), -(-hw[1] // stride)
    k = [int(v) for v in g.attr(n, "kernel_shape", [1, 1])]
    p = [int(v) for v in g.attr(n, "pads", [0, 0, 0, 0])]  # [top, left, bottom, right]
    extra = pending_pad or (0, 0, 0, 0)  # (top, bottom, left, right)
    return ((hw[0] + p[0] + p[2] + extra[0] + extra[1] - k[0]) // stride + 1,
            (hw[1] + p[1] + p[3] + extra[2] + extra[3] - k[1]) // stride + 1)


def _feeds_dense(g: _Graph, n) -> bool:
    cs = g.consumers.get(n.output[0], [])
    return len(cs) == 1 and cs[0].op_type in ("MatMul", "Gemm")


def _flatten(g: _Graph, n, layers: list, hw: tuple[int, int], where: str) -> FlattenSpec:
    """The order a Reshape/Flatten before a Dense lays the map out in: tf2onnx runs the convs NCHW and
    transposes back to TF's NHWC (perm [0, 2, 3, 1]) before flattening as TF does; without that
    Transpose the map is flattened NCHW, as torch does."""
    convs = [x for x in layers if isinstance(x, ConvSpec)]
    if not convs:
        raise fail(f"{where}: '{n.name}' flattens before any convolution")
    prod = g.producer.get(n.input[0])
    nhwc = prod is not None and prod.op_type == "Transpose" and list(g.attr(prod, "perm", [])) == [0, 2, 3, 1]
    return FlattenSpec("NHWC" if nhwc else "NCHW", (int(convs[-1].weight.shape[0]), *hw))


def _conv(g: _Graph, n, w: np.ndarray, hw, pending_pad, where: str) -> list:
    from convert.model.spec import tf_same_pads

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
    bias = g.const(n.input[2]) if len(n.input) > 2 else None
    # a conv bias before a BN of its own (ResNet's Keras convs): the conv's, which the canonical mapping
    # folds into that BN; without one, BN folded by tf2onnx (conv bias) or left as Mul/Add (Keras 3 graphs)
    mul = g.only_consumer(n.output[0], "Mul")
    own_bias = bias is not None and g.bn_after(n.output[0]) is not None
    out: list = [ConvSpec(n.name, np.ascontiguousarray(w), stride, depthwise, pads, same,
                          bias.astype(np.float32).reshape(-1) if own_bias else None, reads=g.conv_read(n.input[0]))]
    scale = np.ones(w.shape[0], np.float32)
    offset = bias.astype(np.float32) if bias is not None and not own_bias else None
    if mul is not None:
        s = next((g.const(i) for i in mul.input if g.const(i) is not None), None)
        add = g.only_consumer(mul.output[0], "Add")
        b = None if add is None else next((g.const(i) for i in add.input if g.const(i) is not None), None)
        if s is not None and b is not None:
            scale = s.astype(np.float32).reshape(-1) * np.ones(w.shape[0], np.float32)
            base = offset if offset is not None else 0.0
            offset = (base * scale + b.astype(np.float32).reshape(-1)).astype(np.float32)
    if offset is not None and g.bn_after(n.output[0]) is None:
        out.append(BNSpec.folded_affine(n.name + "/folded_bn", scale, offset))
    return out
