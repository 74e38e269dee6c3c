"""MMdnn's IR (graph .pb + weights .npy) read into a :class:`ModelSpec`, one handler per IR op.

The IR is what MMdnn's TF parser understood; reading the canonical backbone from it (not from the
source) makes the MMdnn path independent of the ONNX path. Nodes are stored in the parser's
topological order, which is execution order. Any op that is neither a MobileNetV2 layer nor pure
structure is refused by name, so a mis-parse (Keras 3's decomposed BN arrives as Mul/Sub/Rsqrt)
can never turn into a silently wrong backbone.

MMdnn IR vs PyTorch, side by side (the IR keeps TF's NHWC layouts):
  Conv            weights HWIO; pads [0, top, left, 0, 0, bottom, right, 0]     -> Conv2d weight OIHW
  DepthwiseConv   weights (kH, kW, C, 1)                                       -> Conv2d(groups=C) (C, 1, kH, kW)
  BatchNorm       scale/bias/mean/var; epsilon float32 (as TF's); no momentum     -> BatchNorm2d
  FullyConnected  weights (in, out), bias                                      -> Linear weight (out, in)
  Pad             pads as for Conv (Keras's ZeroPadding2D before a VALID conv) -> that conv's pads
  Pool / ReduceMean  global average pooling; a 1x1 Conv after it is slim's classifier -> Linear
  Reshape / Flatten  a 4-D (NHWC) map flattened before a Dense: (h, w, c) columns   -> FlattenSpec("NHWC")
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from convert.model.layouts import tf_conv_kernel, tf_depthwise_kernel
from convert.model.spec import BNSpec, ConvSpec, DenseSpec, FlattenSpec, ModelSpec
from convert.runtime.errors import fail
from convert.runtime.registry import Registry

# ops that carry no weights and do not change the layer sequence
STRUCTURAL = ("DataInput", "Relu6", "Relu", "Add", "Squeeze", "Softmax", "Identity", "Dropout")

HANDLERS: Registry = Registry("MMdnn IR op")


@dataclass
class IRWalk:
    where: str
    weights: dict[str, dict[str, np.ndarray]]
    layers: list = field(default_factory=list)
    pads_of: dict[str, tuple[int, int, int, int]] = field(default_factory=dict)  # Pad node -> pads
    pooled: bool = False
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)  # node -> its output shape (NHWC, -1 free)
    flatten: FlattenSpec | None = None
    nodes: dict = field(default_factory=dict)  # IR node name -> node

    def conv_read(self, name: str) -> str | None:
        """The Conv whose output reaches node `name` through its BN, activation, a Pad or a pooling, else None
        (ConvSpec.reads)."""
        node = self.nodes.get(name.split(":")[0])
        for _ in range(32):  # a few nodes between two convs of a chain
            if node is None or node.op in ("Conv", "DepthwiseConv"):
                return None if node is None else node.name
            if node.op not in ("BatchNorm", "Relu", "Relu6", "Pad", "Pool", "Identity") or len(node.input) != 1:
                return None
            node = self.nodes.get(node.input[0].split(":")[0])
        return None

    def weight(self, node, key: str) -> np.ndarray:
        try:
            return np.asarray(self.weights[node.name][key], dtype=np.float32)
        except KeyError:
            raise fail(f"{self.where}: MMdnn's IR weights have no '{key}' for '{node.name}'") from None


def _ints(node, key: str) -> list[int]:
    return [int(i) for i in node.attr[key].list.i]


def _text(node, key: str) -> str:
    return node.attr[key].s.decode() if key in node.attr else ""


def _nhwc_pads(node, where: str) -> tuple[int, int, int, int]:
    """IR pads [n, top, left, c, n, bottom, right, c] -> (top, bottom, left, right)."""
    p = _ints(node, "pads")
    if len(p) != 8:
        raise fail(f"{where}: MMdnn IR node '{node.name}' has pads {p}, expected 8 NHWC values")
    return p[1], p[5], p[2], p[6]


@HANDLERS.register(*STRUCTURAL)
def _structure(walk: IRWalk, node) -> None:
    return None


@HANDLERS.register("Pad")
def _pad(walk: IRWalk, node) -> None:
    if _text(node, "mode").lower() != "constant":
        raise fail(f"{walk.where}: MMdnn IR pad '{node.name}' is {_text(node, 'mode')}, MobileNetV2 pads with zeros")
    walk.pads_of[node.name] = _nhwc_pads(node, walk.where)


@HANDLERS.register("Pool", "ReduceMean")
def _pool(walk: IRWalk, node) -> None:
    """TF's global pooling (MMdnn writes GlobalAveragePooling2D's Mean as Pool AVG); a MAX pool on a feature
    map (ResNet50's stem, 3x3/2 after ZeroPadding2D(1); VGG16's 2x2/2) is the backbone's own."""
    if node.op == "Pool" and _text(node, "pooling_type") == "MAX" and not node.attr["global_pooling"].b:
        return  # the backbone's own max-pool: ResNet50's stem (3x3/2), VGG16's blocks (2x2/2)
    if node.op == "Pool" and _text(node, "pooling_type") != "AVG":
        raise fail(f"{walk.where}: MMdnn IR pool '{node.name}' is {_text(node, 'pooling_type')} pooling, not average")
    walk.pooled = True


@HANDLERS.register("Flatten", "Reshape")
def _flatten(walk: IRWalk, node) -> None:
    """A 4-D map flattened before the first Dense (VGG16's Flatten): the IR keeps TF's NHWC, so the Dense's
    columns are in (h, w, c) order. Any other reshape (slim's squeeze of a 1x1 map) is structure."""
    shape = walk.shapes.get(node.input[0]) if node.input else None
    if walk.flatten is None and not walk.pooled and shape is not None and len(shape) == 4 and min(shape[1:]) > 0 \
            and not any(isinstance(x, DenseSpec) for x in walk.layers):
        walk.flatten = FlattenSpec("NHWC", (shape[3], shape[1], shape[2]))


@HANDLERS.register("Conv", "DepthwiseConv")
def _conv(walk: IRWalk, node) -> None:
    w = walk.weight(node, "weights")
    bias = walk.weight(node, "bias") if "bias" in walk.weights.get(node.name, {}) else None
    if list(w.shape) != _ints(node, "kernel_shape"):
        raise fail(f"{walk.where}: MMdnn IR conv '{node.name}' weights {w.shape} do not match "
                   f"kernel_shape {_ints(node, 'kernel_shape')}")
    if walk.pooled:  # slim's classifier: a 1x1 conv on the pooled features
        walk.layers.append(DenseSpec(node.name, np.ascontiguousarray(w[0, 0].T),
                                     bias if bias is not None else np.zeros(w.shape[-1], np.float32)))
        return
    strides = _ints(node, "strides")
    if len(strides) != 4 or strides[1] != strides[2]:
        raise fail(f"{walk.where}: MMdnn IR conv '{node.name}' has strides {strides}, not a MobileNetV2 conv")
    depthwise = node.op == "DepthwiseConv"
    torch_w = tf_depthwise_kernel(w, walk.where, node.name) if depthwise else tf_conv_kernel(w)
    # MMdnn labels TF's SAME "SAME_LOWER" but stores TF's own pads (extra pixel after): trust the pads
    same = _text(node, "auto_pad").startswith("SAME")
    own = _nhwc_pads(node, walk.where)
    before = walk.pads_of.get(node.input[0]) if node.input else None  # Keras: ZeroPadding2D, then VALID
    if before is not None and any(own):
        raise fail(f"{walk.where}: MMdnn IR conv '{node.name}' pads twice (a Pad node and its own {own})")
    pads = before if before is not None else own
    walk.layers.append(ConvSpec(node.name, np.ascontiguousarray(torch_w), strides[1], depthwise, pads, same, bias,
                                reads=walk.conv_read(node.input[0] if node.input else "")))


@HANDLERS.register("BatchNorm")
def _batchnorm(walk: IRWalk, node) -> None:
    mean, var = walk.weight(node, "mean"), walk.weight(node, "var")
    gamma = walk.weight(node, "scale") if node.attr["scale"].b else np.ones_like(mean)
    beta = walk.weight(node, "bias") if node.attr["bias"].b else np.zeros_like(mean)
    walk.layers.append(BNSpec(node.name, gamma, beta, mean, var, float(node.attr["epsilon"].f)))


@HANDLERS.register("FullyConnected")
def _dense(walk: IRWalk, node) -> None:
    w = walk.weight(node, "weights")
    bias = walk.weight(node, "bias") if node.attr["use_bias"].b else np.zeros(w.shape[1], np.float32)
    walk.layers.append(DenseSpec(node.name, np.ascontiguousarray(w.T), bias.reshape(-1)))


def parse_ir_graph(data: bytes, where: str):
    from google.protobuf.message import DecodeError

    from convert.compat.mmdnn import install_ir_proto

    graph = install_ir_proto().GraphDef()
    try:
        graph.ParseFromString(data)
    except (DecodeError, ValueError, RuntimeError) as e:
        raise fail(f"{where}: not an MMdnn IR graph ({type(e).__name__})") from e
    if not graph.node:
        raise fail(f"{where}: an MMdnn IR graph with no nodes")
    return graph


def _input_hw(graph, where: str) -> tuple[int, int]:
    consumed = {i for n in graph.node for i in n.input}
    for n in graph.node:
        if n.op == "DataInput" and n.name in consumed:
            dims = [d.size for d in n.attr["shape"].shape.dim]
            if len(dims) == 4 and dims[3] == 3 and dims[1] > 0 and dims[2] > 0:
                return dims[1], dims[2]
            raise fail(f"{where}: MMdnn IR input '{n.name}' has shape {dims}, expected (N, H, W, 3)")
    raise fail(f"{where}: MMdnn IR graph has no input")


def read_ir(graph_path: str | Path, weights_path: str | Path) -> ModelSpec:
    """MMdnn's IR graph + IR weights -> ModelSpec (PyTorch layouts, execution order)."""
    from convert.compat.mmdnn import read_weights

    graph_path = Path(graph_path)
    try:
        data = graph_path.read_bytes()
    except OSError as e:
        raise fail(f"{graph_path}: cannot read ({e.strerror})") from e
    graph = parse_ir_graph(data, str(graph_path))
    walk = IRWalk(str(graph_path), read_weights(weights_path), nodes={n.name: n for n in graph.node})
    walk.shapes = {n.name: tuple(int(d.size) for d in n.attr["_output_shapes"].list.shape[0].dim)
                   for n in graph.node if n.attr["_output_shapes"].list.shape}
    for node in graph.node:
        handler = HANDLERS.get(node.op)
        if handler is None:
            raise fail(f"{graph_path}: MMdnn's IR has a {node.op} node ('{node.name}') that no MobileNetV2 layer "
                       f"maps to (known: {', '.join(sorted(HANDLERS))})")
        handler(walk, node)
    return ModelSpec(layers=walk.layers, input_shape=(*_input_hw(graph, str(graph_path)), 3), origin="mmdnn",
                     **({"pool": "flatten", "flatten": walk.flatten} if walk.flatten is not None else {}))
