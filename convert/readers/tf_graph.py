"""Read a frozen TF GraphDef into a :class:`ModelSpec` (convert.runners.tf runs it as the reference).

The walk is by op type and data flow, never by node names, so slim graphs (`MobilenetV2/...`),
frozen Keras graphs (`mobilenetv2_1.00_224/...`) and anything renamed read the same way.

TF vs PyTorch, side by side:
  Conv2D                 filter HWIO, NHWC, padding SAME|VALID|EXPLICIT  -> Conv2d weight OIHW
  DepthwiseConv2dNative  filter (kH, kW, C, 1)                          -> Conv2d(groups=C) (C, 1, kH, kW)
  FusedBatchNorm*        (x - mean) * rsqrt(var + epsilon) * scale + offset (epsilon attr, no decay)
  MatMul (+ BiasAdd)     weight (in, out)                               -> Linear weight (out, in)
  Reshape (Flatten)      NHWC map -> (N, H*W*C), h, w, c order          -> FlattenSpec("NHWC"): torch flattens (c, h, w)
  AddV2(x, 3) -> Relu6 -> Mul(1/6) | RealDiv(6)          hard-sigmoid        -> Hardsigmoid
  ... -> Mul(x, hard-sigmoid(x))                          hard-swish          -> Hardswish
  Mean(x, [1, 2]) -> 1x1 convs -> Mul(x, gate)            squeeze-excitation  -> SqueezeExcitation (fc1, fc2)
The hard activations and squeeze-excitation units are recognised by data flow and their constants'
values (tf_keras and Keras 3 write them with different ops and names), never by names.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from convert import arch as architectures
from convert.model.census import Census
from convert.model.layouts import tf_conv_kernel, tf_depthwise_kernel
from convert.model.spec import (
    ACTIVATIONS,
    BNSpec,
    ConvSpec,
    DenseSpec,
    FlattenSpec,
    InputAffine,
    ModelSpec,
    tf_same_pads,
)
from convert.model.tf_names import data_consumers, downstream, node_name
from convert.readers.input_affine import affine_fit
from convert.runtime.errors import fail

_PASS_THROUGH = {"Identity", "ReadVariableOp", "Snapshot", "StopGradient"}


_BN_OPS = {"FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3"}


# global pooling after the backbone: GlobalAveragePooling2D (Mean), slim's AvgPool, GlobalMaxPooling2D (Max)
_POOL_OPS = {"Mean": "avg", "AvgPool": "avg", "Max": "max"}


# a Dense's activation, TF op -> name (convert.model.spec.ACTIVATIONS)
_ACTIVATION_OPS = {"Softmax": "softmax", "Sigmoid": "sigmoid", "Relu": "relu", "Relu6": "relu6", "Tanh": "tanh"}


# what may follow the pooling: dense layers (MatMul or slim's 1x1 conv), their bias and activation,
# Dropout (Identity at inference), slim's Squeeze, Flatten of the pooled 1x1 map (Reshape, its shape
# computed by Shape/StridedSlice/Pack), and graph bookkeeping
_HEAD_OPS = (_PASS_THROUGH | set(_ACTIVATION_OPS) | {"Const", "NoOp", "MatMul", "BiasAdd", "Add", "AddV2", "Conv2D",
                                                      "Squeeze", "Reshape", "Shape", "StridedSlice", "Pack"})

# ops between two convs of one chain, each with one data input (ConvSpec.reads): the first conv's bias,
# BN (fused, or Keras 3's Mul/AddV2 on constants), activation, the next conv's pad, a pooling
_READ_THROUGH = _PASS_THROUGH | _BN_OPS | {"BiasAdd", "Mul", "Add", "AddV2", "Sub", "Relu", "Relu6", "Pad", "PadV2",
                                          "MaxPool"}

# hard-sigmoid ReLU6(x + 3) / 6: the add of 3, then a multiply by 1/6 or a division by 6 after the Relu6
_ADD_OPS = ("AddV2", "Add")
_SCALE_OPS = {"Mul": 1.0 / 6.0, "RealDiv": 6.0}


@dataclass(frozen=True)
class HardActivation:
    """One hard-sigmoid or hard-swish written as ops: its kind, its input tensor, its output node, its ops."""

    kind: str  # "hard_sigmoid" | "hard_swish"
    input: str  # the tensor it is applied to
    output: str  # the node whose output is the activation's
    ops: tuple[str, ...]  # every node of the pattern (output included)


def parse_graph_def(data: bytes, where: str):
    """Parse GraphDef bytes; any protobuf failure is bad input, not a crash."""
    import tensorflow as tf
    from google.protobuf.message import DecodeError

    gd = tf.compat.v1.GraphDef()
    try:
        gd.ParseFromString(data)
    except (DecodeError, ValueError, RuntimeError) as e:
        detail = str(e).splitlines()[0] if str(e) else "unparsable"
        raise fail(f"{where}: not a TensorFlow GraphDef ({type(e).__name__}: {detail})") from None
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
    # (GraphDef, the tf.Graph the reader imported from it) where that graph is the file's own (input size
    # fixed in the file): the first runner of that very GraphDef takes it instead of importing it again
    # (ResNet50: 0.57 s); any later one imports its own
    imported: tuple[Any, Any] | None = field(default=None, repr=False, compare=False)

    def take_imported(self, gd) -> Any:
        if self.imported is None or self.imported[0] is not gd:
            return None
        graph, self.imported = self.imported[1], None
        return graph


class GraphReader:
    def __init__(self, gd, where: str, input_size: tuple[int, int] | None = None) -> None:
        self.gd = gd
        self.where = where
        self.nodes = {n.name: n for n in gd.node}
        self.consumers = data_consumers(gd)
        self.input_size = input_size
        self.hard: dict[str, HardActivation] = {}  # by output node; filled by read()
        self.hard_ops: set[str] = set()
        self._bn_convs: set[str] = set()  # convs a decomposed BN was read after (read())
        self._data: set[str] | None = None  # nodes computed from the input (_from_input)
        self.ph = None
        self.hw: tuple[int, int] | None = None
        self.size_open = False
        self._sess = None
        self._tf_graph = None

    # --- helpers -------------------------------------------------------------------------
    def producer(self, inp: str):
        node = self.nodes.get(node_name(inp))
        while node is not None and node.op in _PASS_THROUGH:
            node = self.nodes.get(node_name(node.input[0]))
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
            raise fail(f"{self.where}: {what} of '{node_name(inp)}' is not a constant: freeze the graph first")
        return v

    def topo(self) -> list:
        """Nodes in execution order (Kahn's algorithm over data and control edges, stable)."""
        edges: dict[str, list[str]] = {}
        indeg = dict.fromkeys(self.nodes, 0)
        for n in self.gd.node:
            for i in n.input:
                if node_name(i) in self.nodes:
                    edges.setdefault(node_name(i), []).append(n.name)
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
        self.size_open = h is None or w is None
        if h is None or w is None:
            if self.input_size is None:
                raise fail(f"{self.where}: input size is not fixed in the graph; give --input-size HxW")
            h, w = self.input_size
        self.ph, self.hw = ph, (h, w)

        order = self.topo()
        counts: dict[str, int] = {}
        for n in order:
            # a concatenation counts as an architecture's only on feature maps (Keras 3's exported
            # RandomRotation concatenates its transform's rows even at inference)
            if n.op == "ConcatV2" and len(self.shape(n.name) or ()) != 4:
                continue
            counts[n.op] = counts.get(n.op, 0) + 1
        arch = recognise(counts, self.where)
        self._find_hard_activations(order)
        layers: list = []
        pooled = logits = None
        pooled_node = pool = flatten = None
        before_activation: dict[int, str] = {}  # per Dense layer index: its output before its activation
        first_conv = None
        squeeze: set[str] = set()  # nodes between a squeeze-excitation's pooling and its gate
        for n in order:
            ins = [i for i in n.input if not i.startswith("^")]
            if n.name in self.hard_ops:  # a hard activation's ops: one activation, read where it ends
                if n.name in self.hard and pooled_node is not None and layers and isinstance(layers[-1], DenseSpec):
                    layers[-1] = dataclasses.replace(layers[-1], activation=self.hard[n.name].kind)
                continue
            if pooled_node is not None and n.op not in _HEAD_OPS:
                raise fail(f"{self.where}: after the backbone's pooling, op {n.op} ('{n.name}') is not something "
                           f"tfport reproduces; supported heads: Dropout, Dense with {'/'.join(ACTIVATIONS)} "
                           "activation, one after another")
            if n.op in ("Conv2D", "DepthwiseConv2dNative"):
                if pooled_node is not None:  # slim's logits: a 1x1 conv on the pooled map
                    wt = self.need_const(ins[1], "filter")
                    bias = self._bias_after(n)
                    layers.append(DenseSpec(n.name, np.ascontiguousarray(wt[0, 0].T), bias))
                    continue
                first_conv = first_conv or n
                conv = self._conv(n, ins)
                if n.name in squeeze:
                    conv = dataclasses.replace(conv, squeeze=True, activation=self._activation_after(
                        self._bias_node(n) or n.name)[0])
                layers.append(conv)
            elif n.op == "Mul" and (conv_name := self._open_conv(ins[0], layers)) is not None:
                bn = self._decomposed_bn(n, ins)
                if bn is not None:
                    self._bn_convs.add(conv_name)
                    layers.append(bn)
            elif n.op in _BN_OPS:
                if n.attr["is_training"].b:
                    raise fail(
                        f"{self.where}: BatchNorm '{n.name}' is in training mode; export the graph for inference"
                    )
                g, b, m, v = (self.need_const(i, "BN parameter").astype(np.float32) for i in ins[1:5])
                layers.append(BNSpec(n.name, g, b, m, v, float(n.attr["epsilon"].f)))
            elif n.op in _POOL_OPS and pooled_node is None and self._is_global_pool(n) and \
                    (gate := self._se_gate(n)) is not None:  # a squeeze-excitation's pooling, not the backbone's
                squeeze |= self._between(n.name, gate.name)
            elif n.op in _POOL_OPS and pooled_node is None and self._is_global_pool(n):
                pooled_node, pool = n, _POOL_OPS[n.op]
                pooled = n.name + ":0"
            elif n.op == "Reshape" and pooled_node is None and layers and (chw := self._flattens(n)) is not None:
                # Keras's Flatten of the feature map (VGG16's top, a fine-tuned base's head): TF's NHWC order;
                # no `pooled` tensor: its values are the map's, in another order than the port's
                pooled_node, pool, flatten = n, "flatten", FlattenSpec("NHWC", chw)
            elif n.op == "MatMul":
                wt = self.need_const(ins[1], "weights")
                if n.attr["transpose_b"].b:
                    wt = wt.T
                layers.append(DenseSpec(n.name, np.ascontiguousarray(wt.T), self._bias_after(n)))
            elif n.op in _ACTIVATION_OPS and pooled_node is not None and layers and isinstance(layers[-1], DenseSpec):
                layers[-1] = dataclasses.replace(layers[-1], activation=_ACTIVATION_OPS[n.op])
                before_activation[len(layers) - 1] = ins[0] if ":" in ins[0] else ins[0] + ":0"
        outputs = [n for n in order if n.op not in ("NoOp", "Const") and not self.consumers.get(n.name)]
        output = (outputs[-1].name + ":0") if outputs else ""
        if layers and isinstance(layers[-1], DenseSpec):  # the logits: the last Dense's, before its activation
            logits = before_activation.get(len(layers) - 1, output)
        info = GraphInfo(ph.name + ":0", pooled, logits, output, dims, counts,
                         imported=None if self.size_open else (self.gd, self._graph()))
        spec = ModelSpec(layers=layers, input_shape=(h, w, 3), arch=arch, origin="graph", pool=pool,
                         input_range=architectures.get(arch).input_range, size_open=self.size_open,
                         flatten=flatten)
        if first_conv is not None:
            spec.preprocess = self._input_affine(first_conv)
            if spec.preprocess is not None:
                spec.input_range = spec.preprocess.contract()
        spec.layers = layers = self.with_activations(layers)
        spec.taps = self._taps(layers)
        return spec, info

    def _flattens(self, n) -> tuple[int, int, int] | None:
        """(C, H, W) where Reshape `n` flattens a 4-D feature map (N, H, W, C) into (N, H*W*C), else None."""
        shape, out = self.shape(n.input[0]), self.shape(n.name)
        if shape is None or out is None or len(shape) != 4 or len(out) != 2 or None in shape[1:]:
            return None
        _, h, w, c = shape
        return (c, h, w) if out[1] in (None, h * w * c) else None

    def _is_global_pool(self, n) -> bool:
        """Mean/Max over H and W of the last feature map (GlobalAverage/MaxPooling2D), or slim's full-size AvgPool."""
        shape = self.shape(n.input[0])
        if shape is None or len(shape) != 4:
            return False
        if n.op == "AvgPool":
            k = list(n.attr["ksize"].list.i)
            return k[1:3] == list(shape[1:3])
        axes = self.const(n.input[1])
        return axes is not None and sorted(int(a) % 4 for a in np.ravel(axes)) == [1, 2]

    # --- static shapes and evaluation in TF ---------------------------------------------------
    def _graph(self):
        """The graph imported once (input size fixed): TF's static shapes. No session unless one is run."""
        if self._tf_graph is None:
            import tensorflow as tf

            gd = self.gd
            if self.size_open:  # fixed at the size asked for, in a copy (the file's graph is left as it is)
                gd = type(self.gd)()
                gd.CopyFrom(self.gd)
                for n in gd.node:
                    if n.op == "Placeholder" and n.name == self.ph.name:
                        dims = n.attr["shape"].shape.dim
                        dims[1].size, dims[2].size = self.hw
            graph = tf.Graph()
            try:
                with graph.as_default():
                    tf.compat.v1.import_graph_def(gd, name="")
            except (ValueError, TypeError, KeyError, tf.errors.OpError) as e:
                raise fail(f"{self.where}: TensorFlow cannot import the graph ({type(e).__name__}: "
                           f"{str(e).splitlines()[0][:160] if str(e) else ''})") from None
            self._tf_graph = graph
        return self._tf_graph

    def _session(self):
        """A session on that graph, made only where something must be evaluated (preprocessing, Keras 3 BN)."""
        if self._sess is None:
            import tensorflow as tf

            self._sess = tf.compat.v1.Session(graph=self._graph())
        return self._sess

    def shape(self, inp: str) -> tuple[int | None, ...] | None:
        """TF's static shape of a tensor at the graph's input size (shape inference, no hand propagation)."""
        t = self._graph().get_tensor_by_name(inp.lstrip("^") if ":" in inp else inp + ":0")
        return None if t.shape.rank is None else tuple(t.shape.as_list())

    def close(self) -> None:
        if self._sess is not None:
            self._sess.close()
            self._sess = None
        self._tf_graph = None

    def _input_affine(self, first_conv) -> InputAffine | None:
        """What the graph does between its input and the first convolution, measured: a per-channel affine
        or a refusal. Augmentation layers are identity at inference and vanish here; preprocessing stays."""
        t = first_conv.input[0]
        pre = self.producer(t)
        if pre is not None and pre.op in ("Pad", "PadV2"):
            t, pre = pre.input[0], self.producer(pre.input[0])
        if pre is not None and pre.name == self.ph.name:
            return None
        ops = self._ops_between(self.ph.name, node_name(t))
        sess = self._session()
        h, w = self.hw
        feed = self.ph.name + ":0"
        fetch = t if ":" in t else t + ":0"
        rng = np.random.default_rng(0)
        xs = [np.zeros((1, h, w, 3), np.float32), rng.uniform(-1, 256, (1, h, w, 3)).astype(np.float32)]
        try:
            y0, yr, again = (np.asarray(sess.run(fetch, {feed: x}), np.float64) for x in xs + xs[1:])
        except Exception as e:  # noqa: BLE001  (anything TF raises evaluating the user's preprocessing)
            raise fail(f"{self.where}: cannot evaluate the ops before the first convolution ({', '.join(ops[:4])}): "
                       f"{type(e).__name__}") from None
        random = [o for o in ops if "random" in o.lower()]
        fit = affine_fit(xs[1], y0, yr)  # None where not a per-channel affine (or not the input's shape)
        if not np.array_equal(yr, again) or (random and y0.shape == xs[0].shape and fit is None):
            raise fail(
                f"{self.where}: augmentation is live in this graph at inference ({', '.join(random[:2] or ops[:2])}"
                "): the image is flipped/rotated before the first convolution, so the model's output is not "
                "a function of its input alone; save or export the model with the augmentation layers "
                "called with training=False, or without them"
            )
        if y0.shape != xs[0].shape:
            raise fail(
                f"{self.where}: the ops before the first convolution ({', '.join(ops[:4])}) turn the {h}x{w}x3 input "
                f"into {y0.shape[1:]}; only a per-channel affine (Rescaling, Normalization, preprocess_input) "
                "is reproduced"
            )
        if fit is None:
            raise fail(
                f"{self.where}: the ops before the first convolution ({', '.join(ops[:4])}) are not a per-channel "
                "affine x * scale + offset; only Rescaling, Normalization, preprocess_input-style "
                "preprocessing is reproduced"
            )
        offset, scale = fit
        affine = InputAffine(tuple(float(v) for v in np.float32(scale)), tuple(float(v) for v in np.float32(offset)),
                             tuple(ops))
        return None if affine.identity else affine

    def _ops_between(self, src: str, dst: str) -> list[str]:
        """Names of the compute ops on the paths from `src` to `dst` (what the metadata lists as carried)."""
        ancestors = self._upstream(dst)
        return [n.name for n in self.topo() if n.name in ancestors and n.name != src
                and n.op not in _PASS_THROUGH | {"Const", "Placeholder"} and src in self._upstream(n.name)]

    def _upstream(self, name: str) -> set[str]:
        seen, stack = set(), [name]
        while stack:
            x = stack.pop()
            if x in seen or x not in self.nodes:
                continue
            seen.add(x)
            stack.extend(node_name(i) for i in self.nodes[x].input)
        return seen

    # --- probe points ---------------------------------------------------------------------
    def _follow(self, name: str, ops: set[str]):
        """The single data consumer of `name` (through pass-through ops) if its op is in `ops`."""
        cs = [c for c in self.consumers.get(name, []) if c.op not in ("NoOp",)]
        while len(cs) == 1 and cs[0].op in _PASS_THROUGH:
            cs = self.consumers.get(cs[0].name, [])
        return cs[0] if len(cs) == 1 and cs[0].op in ops else None

    def _taps(self, layers: list) -> dict[int, dict[str, str]]:
        """Per layer index, the tensors after normalisation (:bn), after its activation (:act: ReLU6, ReLU, or a
        hard-swish's last Mul), after the residual add (:out; the ReLU that follows it where there is one); a
        squeeze-excitation's first conv after its activation (:act), its second at the gate's output (:out); a
        conv with no BN (VGG16's) after its activation (:act) and the max-pool that follows it (:pool)."""
        taps: dict[int, dict[str, str]] = {}
        for i, layer in enumerate(layers):
            if isinstance(layer, BNSpec):
                node = layer.name.split("#")[0]
                t = {":bn": node + ":0"}
                act = self._activation_after(node)[1]
                if act is not None:
                    t[":act"] = act + ":0"
                add = self._follow(node, {"AddV2", "Add"})
                if add is not None and add.name not in self.hard_ops:  # a block's output: the add, or the ReLU
                    t[":out"] = (self._follow(add.name, {"Relu"}) or add).name + ":0"  # after it (ResNet)
                taps[i] = t
            elif isinstance(layer, ConvSpec) and layer.squeeze:
                kind, act = self._activation_after(self._bias_node(self.nodes[layer.name]) or layer.name)
                gate = self._follow(act, {"Mul"}) if act is not None and kind == "hard_sigmoid" else None
                taps[i] = {":act": act + ":0"} if act is not None and gate is None else {}
                if gate is not None:
                    taps[i][":out"] = gate.name + ":0"
            elif isinstance(layer, DenseSpec):
                taps[i] = {
                    "": (self._follow(layer.name, {"BiasAdd", "Add", "AddV2"}) or self.nodes[layer.name]).name + ":0"
                }
            elif isinstance(layer, ConvSpec) and not (i + 1 < len(layers) and isinstance(layers[i + 1], BNSpec)):
                taps.update({i: t} if (t := self._conv_taps(layer)) else {})
        return taps

    def with_activations(self, layers: list) -> list:
        """Each BN with the activation that follows it (what torchvision's Conv2dNormActivation must apply)."""
        return [dataclasses.replace(x, activation=self._activation_after(x.name.split("#")[0])[0])
                if isinstance(x, BNSpec) else x for x in layers]

    # --- hard activations and squeeze-excitation, by data flow ----------------------------------
    def _find_hard_activations(self, order: list) -> None:
        """Every hard-sigmoid ReLU6(x + 3) / 6 and hard-swish x * hard-sigmoid(x) written as ops, by their
        data flow and constants: Add(x, 3) -> Relu6 -> Mul(1/6) or RealDiv(6) [-> Mul(x, .)]."""
        for relu6 in (n for n in order if n.op == "Relu6"):
            add = self.producer(relu6.input[0])
            if add is None or add.op not in _ADD_OPS:
                continue
            x = self._other_than_const(add, 3.0)
            scale = self._follow(relu6.name, set(_SCALE_OPS))
            if x is None or scale is None or self._other_than_const(scale, _SCALE_OPS[scale.op]) != relu6.name \
                    or (scale.op == "RealDiv" and self._tensor_of(scale.input[0]) != relu6.name):  # ReLU6(x) / 6
                continue
            ops = (add.name, relu6.name, scale.name)
            swish = next((c for c in self.consumers.get(scale.name, []) if c.op == "Mul"
                          and {self._tensor_of(i) for i in c.input} == {self._tensor_of(x), scale.name}), None)
            found = (HardActivation("hard_swish", x, swish.name, (*ops, swish.name)) if swish is not None
                     else HardActivation("hard_sigmoid", x, scale.name, ops))
            self.hard[found.output] = found
            self.hard_ops.update(found.ops)

    def _tensor_of(self, inp: str) -> str:
        """The producing node of a tensor, through pass-through ops (its identity for comparisons)."""
        node = self.producer(inp)
        return node.name if node is not None else node_name(inp)

    def _other_than_const(self, node, value: float) -> str | None:
        """For a binary op with one constant operand equal to `value` (every element), the other operand's
        producing node, else None."""
        ins = [i for i in node.input if not i.startswith("^")]
        if len(ins) != 2:
            return None
        for k in (0, 1):
            c = self.const(ins[k])
            if c is not None and c.size and np.allclose(c, value, rtol=1e-6, atol=0):
                return self._tensor_of(ins[1 - k])
        return None

    def _activation_after(self, name: str) -> tuple[str, str | None]:
        """(kind, output node) of the activation applied to node `name`'s output: a hard activation's, a
        lone Relu6 / Relu consumer's, else ("linear", None)."""
        for act in self.hard.values():
            if act.input == self._tensor_of(name):
                return act.kind, act.output
        relu = self._follow(name, {"Relu6", "Relu"})
        if relu is not None and relu.name not in self.hard_ops:
            return ("relu6" if relu.op == "Relu6" else "relu"), relu.name
        return "linear", None

    def _bias_node(self, conv) -> str | None:
        add = self._follow(conv.name, {"BiasAdd"})
        return add.name if add is not None else None

    def _se_gate(self, pool):
        """The Mul that gates a global pooling's own input by what is computed from the pooled values (a
        squeeze-excitation unit), else None: the pooling is the backbone's."""
        x = self._tensor_of(pool.input[0])
        for mul in (c for c in self._consumers_through(x) if c.op == "Mul"):
            others = [i for i in mul.input if not i.startswith("^") and self._tensor_of(i) != x]
            if len(others) == 1 and pool.name in self._upstream(node_name(others[0])):
                return mul
        return None

    def _consumers_through(self, name: str) -> list:
        """The consumers of a node's output, through pass-through ops."""
        out, stack = [], list(self.consumers.get(name, []))
        while stack:
            c = stack.pop()
            if c.op in _PASS_THROUGH:
                stack.extend(self.consumers.get(c.name, []))
            else:
                out.append(c)
        return out

    def _between(self, src: str, dst: str) -> set[str]:
        """The nodes downstream of `src` and upstream of `dst` (both excluded)."""
        return (downstream(self.consumers, src) & self._upstream(dst)) - {src, dst}

    def _conv_taps(self, conv: ConvSpec) -> dict[str, str]:
        """A conv with no BN (VGG16's): after its bias and activation (:act), after the max-pool that follows
        (:pool)."""
        out = self._follow(conv.name, {"BiasAdd", "Add", "AddV2"}) if conv.bias is not None else None
        act = self._activation_after((out or self.nodes[conv.name]).name)[1]
        if act is None:
            return {}
        pool = self._follow(act, {"MaxPool"})
        return {":act": act + ":0", **({":pool": pool.name + ":0"} if pool is not None else {})}

    def _open_conv(self, inp: str, layers: list) -> str | None:
        """The conv read so far whose output `inp` is and that no decomposed BN follows yet, else None. Not
        only the last layer: a graph's order may run a branch's conv (ResNet's projection shortcut) before
        its BN (shortcut conv, conv1, shortcut BN, BN1)."""
        conv = next((x for x in reversed(layers) if isinstance(x, ConvSpec) and self._is_conv_output(inp, x)), None)
        return None if conv is None or conv.name in self._bn_convs else conv.name

    def _is_conv_output(self, inp: str, conv: ConvSpec) -> bool:
        node = self.producer(inp)
        if node is not None and node.op == "BiasAdd" and conv.bias is not None:  # the conv's own bias
            node = self.producer(node.input[0])
        return node is not None and node.name == conv.name

    def _decomposed_bn(self, mul, ins) -> BNSpec | None:
        """Keras 3's BN in a frozen graph: y = x * a + b with a, b computed from constants.

        The statistics are not separable from a and b, so this is a folded BN (eval-mode faithful):
        mean 0, var 1, gamma = a * sqrt(1 + eps), beta = b."""
        add = self._follow(mul.name, {"AddV2", "Add"})
        if add is None:
            return None
        a = self.evaluate(ins[1])
        b_in = next(i for i in add.input if node_name(i) != mul.name and not i.startswith("^"))
        b = self.evaluate(b_in)
        if a is None or b is None:
            return None
        return BNSpec.folded_affine(add.name + "#folded", a, b)

    def evaluate(self, inp: str) -> np.ndarray | None:
        """Value of a tensor that depends on constants only (evaluated in TF), else None."""
        c = self.const(inp)
        if c is not None:
            return c
        if self.ph.name in self._upstream(node_name(inp)):
            return None
        t = inp if ":" in inp else inp + ":0"
        return np.asarray(self._session().run(t))

    def _bias_after(self, n) -> np.ndarray:
        for c in self.consumers.get(n.name, []):
            while c.op in _PASS_THROUGH and self.consumers.get(c.name):
                c = self.consumers[c.name][0]
            if c.op in ("BiasAdd", "Add", "AddV2"):
                b = self.evaluate(c.input[1])  # Keras 3: Squeeze(Reshape(constant))
                if b is not None:
                    return b.astype(np.float32).reshape(-1)
        raise fail(f"{self.where}: dense layer '{n.name}' has no constant bias")

    def _conv(self, n, ins) -> ConvSpec:
        if n.attr["data_format"].s not in (b"", b"NHWC"):
            raise fail(
                f"{self.where}: conv '{n.name}' is {n.attr['data_format'].s.decode()}; only NHWC graphs are read"
            )
        strides = list(n.attr["strides"].list.i)
        dil = list(n.attr["dilations"].list.i) or [1, 1, 1, 1]
        if strides[1] != strides[2] or any(d != 1 for d in dil):
            raise fail(f"{self.where}: conv '{n.name}' has strides {strides} / dilations {dil}, not a MobileNetV2 conv")
        stride = strides[1]
        wt = self.need_const(ins[1], "filter").astype(np.float32)
        kh, kw = wt.shape[:2]
        depthwise = n.op == "DepthwiseConv2dNative"
        torch_w = tf_depthwise_kernel(wt, self.where, n.name) if depthwise else tf_conv_kernel(wt)
        shape = self.shape(ins[0])
        if shape is None or len(shape) != 4 or shape[1] is None or shape[2] is None:
            raise fail(f"{self.where}: TensorFlow cannot infer the spatial size reaching '{n.name}' (shape {shape})")
        h, w = shape[1], shape[2]
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
        return ConvSpec(n.name, np.ascontiguousarray(torch_w), stride, depthwise, pads, padding == "SAME",
                        self._conv_bias(n), reads=self._conv_read(ins[0]))

    def _conv_read(self, inp: str) -> str | None:
        """The conv whose output reaches `inp` through ops with one data input (bias, BN fused or decomposed,
        activation, pad, pooling), else None (ConvSpec.reads)."""
        node = self.producer(inp)
        for _ in range(32):  # a conv's BN, activation, pad and pooling: a few ops, never a long chain
            if node is None or node.op in ("Conv2D", "DepthwiseConv2dNative"):
                return None if node is None else node.name
            if node.op not in _READ_THROUGH:
                return None
            data = [i for i in node.input if not i.startswith("^") and node_name(i) in self._from_input()]
            if len(data) != 1:  # a residual add: two data inputs
                return None
            node = self.producer(data[0])
        return None

    def _from_input(self) -> set[str]:
        """Every node computed from the input placeholder (once per graph)."""
        if self._data is None:
            self._data = downstream(self.consumers, self.ph.name) | {self.ph.name}
        return self._data

    def _conv_bias(self, n) -> np.ndarray | None:
        """The constant bias a conv's only consumer adds (Keras Conv2D use_bias: ResNet50's, VGG16's convs), else
        None; Keras 3 traces it as Squeeze(Reshape(variable)), a tensor of constants, evaluated."""
        add = self._follow(n.name, {"BiasAdd"})
        if add is None or node_name(add.input[0]) != n.name:
            return None
        b = self.evaluate(add.input[1])  # Keras 3: Squeeze(Reshape(constant))
        return None if b is None else np.asarray(b, np.float32).reshape(-1)


def recognise(counts: dict[str, int], where: str) -> str:
    """The registered architecture (convert.arch) whose op census the graph's op counts are."""
    census = Census(counts.get("Conv2D", 0), counts.get("DepthwiseConv2dNative", 0),
                    counts.get("AddV2", 0) + counts.get("Add", 0), counts.get("MaxPool", 0), counts.get("ConcatV2", 0))
    return architectures.recognise(census, where).name


def read_graph(gd, where: str, input_size: tuple[int, int] | None = None) -> tuple[ModelSpec, GraphInfo]:
    """A malformed graph (missing inputs, wrong attribute types, bad tensors) is bad input, not a bug."""
    reader = GraphReader(gd, where, input_size)
    try:
        return reader.read()
    except (KeyError, IndexError, ValueError, TypeError, AttributeError) as e:
        detail = str(e).splitlines()[0][:120] if str(e) else ""
        raise fail(f"{where}: malformed graph ({type(e).__name__}: {detail})") from None
    finally:
        reader.close()
