"""Read a float32 TFLite flatbuffer into a :class:`ModelSpec` (convert.runners.tflite runs it as the reference).

The TFLite converter folds every BatchNorm into the conv before it (weights scaled, the shift becomes
the conv bias) and fuses ReLU6 into the conv op, so a .tflite keeps no BN statistics and no tensor
between BN and ReLU6. The reader therefore describes each conv as ConvSpec + BNSpec(folded=True)
with mean 0, var 1, gamma sqrt(1 + eps) — the identity — and beta the conv bias: the same convention
as the ONNX path's folded BN (eval-mode faithful only).

The walk is by op type and tensor flow, never by tensor names (TFLite names are `;`-joined lists of
the TF ops fused into one). The interpreter supplies ops, tensors and constant values; the
flatbuffer itself supplies what the interpreter does not expose: each op's builtin options
(stride, padding, fused activation).

TFLite vs PyTorch, side by side:
  CONV_2D            filter OHWI (O, kH, kW, I), bias (O,), SAME|VALID  -> Conv2d weight OIHW
  DEPTHWISE_CONV_2D  filter (1, kH, kW, C), depth multiplier 1          -> Conv2d(groups=C) (C, 1, kH, kW)
  fused RELU6        conv output is already clamped to [0, 6]           -> ReLU6 after the (folded) BN
  PAD + VALID conv   explicit zero pad [[0,0],[t,b],[l,r],[0,0]]        -> pads (t, b, l, r)
  FULLY_CONNECTED    weights (out, in), bias (out,)                     -> Linear weight (out, in)
  HARD_SWISH         x * ReLU6(x + 3) / 6                               -> Hardswish after the (folded) BN
  MEAN -> CONV_2D (RELU) -> CONV_2D (RELU6, bias + 3) -> MUL(1/6) -> MUL(x, .)
                     a squeeze-excitation; the converter folds hard-sigmoid's + 3 into the second conv's
                     bias and its ReLU6 into the conv                   -> SqueezeExcitation fc1, fc2 (bias - 3)
  RESHAPE -> FC      an NHWC map flattened, (h, w, c) order            -> FlattenSpec("NHWC")
  MUL / ADD on constants before the first conv: the model's own input affine (Keras's Rescaling)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from convert import arch as architectures
from convert.compat.tflite import ops_details, quiet_tflite
from convert.model.census import Census
from convert.model.spec import BNSpec, ConvSpec, DenseSpec, FlattenSpec, InputAffine, ModelSpec, tf_same_pads
from convert.runtime.errors import fail
from convert.runtime.registry import Registry

TFLITE_IDENTIFIER = b"TFL3"  # the flatbuffer file_identifier of TFLite's schema.fbs, at bytes 4..8
# enum values of TFLite's schema.fbs (Padding, ActivationFunctionType)
_SAME, _VALID = 0, 1
_ACT_NONE, _ACT_RELU, _ACT_RELU6 = 0, 1, 3
_FUSED = {_ACT_RELU: "relu", _ACT_RELU6: "relu6"}  # the activations a conv or dense may carry fused, by spec name
HARD_SIGMOID_SHIFT = 3.0  # hard-sigmoid ReLU6(x + 3) / 6: the converter adds the 3 to the conv's bias


_WEIGHTED = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")


QUANTIZED_MSG = "its weights are not the float model; port the float32 .tflite or the Keras/SavedModel it came from"


def detect(path: str | Path) -> bool:
    """True when the file's own bytes say TFLite (identifier "TFL3" at bytes 4..8), whatever its extension."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError:  # missing, a folder, unreadable: not a TFLite file
        return False
    return len(head) == 8 and head[4:8] == TFLITE_IDENTIFIER


@dataclass(frozen=True)
class TFLiteInfo:
    """What the walk learns besides the layers: the tensors the reference is read at (TFLite tensor names)."""

    input: str
    input_shape: tuple[int | None, ...]  # the file's signature; None where it leaves a dim free (the batch)
    output: str
    pooled: str | None
    logits: str | None  # the tensor before SOFTMAX (or the dense output where there is no softmax)
    op_counts: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class _Op:
    index: int
    kind: str  # the builtin operator's name, e.g. "CONV_2D"
    inputs: tuple[int, ...]  # tensor indices; -1 for an omitted optional input (a conv without bias)
    outputs: tuple[int, ...]
    options: object  # the flatbuffer's builtin options (Conv2DOptionsT, ...) or None


# --- opening a file ------------------------------------------------------------------------------
def read_bytes(path: str | Path, where: str) -> bytes:
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise fail(f"{where}: cannot read ({e.strerror or type(e).__name__})") from None
    if len(data) < 8 or data[4:8] != TFLITE_IDENTIFIER:
        raise fail(f"{where}: not a TFLite flatbuffer (no '{TFLITE_IDENTIFIER.decode()}' identifier at bytes 4..8)")
    return data


def interpreter(data: bytes, where: str, *, preserve_all_tensors: bool):
    """An allocated tf.lite.Interpreter over the file's bytes, with TFLite's builtin kernels.

    The default XNNPACK delegate is left out: it replaces ops by DELEGATE nodes in the op list and
    owns their intermediate tensors; the builtin kernels are the file's reference semantics."""
    import tensorflow as tf

    resolver = tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    try:
        with quiet_tflite():
            interp = tf.lite.Interpreter(model_content=data, experimental_op_resolver_type=resolver,
                                         experimental_preserve_all_tensors=preserve_all_tensors)
        interp.allocate_tensors()
    except (ValueError, RuntimeError) as e:  # the flatbuffer verifier or op preparation refused the file
        detail = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise fail(f"{where}: corrupt or truncated TFLite file ({detail})") from None
    return interp


def flatbuffer(data: bytes, where: str):
    """The file as TFLite's own generated schema objects (ModelT), for what the interpreter hides."""
    from tensorflow.lite.python import schema_py_generated as schema

    try:
        return schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(bytearray(data), 0))
    except Exception as e:  # flatbuffers raises struct.error, IndexError, ... on bytes it cannot walk
        raise fail(f"{where}: corrupt TFLite flatbuffer ({type(e).__name__})") from None


def _builtin_names() -> dict[int, str]:
    from tensorflow.lite.python import schema_py_generated as schema

    return {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}


def input_detail(interp, where: str) -> dict:
    inputs = interp.get_input_details()
    if len(inputs) != 1:
        raise fail(f"{where}: expected one input tensor, found {len(inputs)}")
    return inputs[0]


def input_signature(detail: dict) -> tuple[int | None, ...]:
    """The input's declared shape: shape_signature (-1 = free) where the file has one, else its shape."""
    sig = detail["shape_signature"] if len(detail["shape_signature"]) else detail["shape"]
    return tuple(None if d < 0 else int(d) for d in sig)


# --- pure helpers ----------------------------------------------------------------------------------
def conv_pads(padding: int, size: tuple[int, int], kernel: tuple[int, int], stride: int,
              explicit: tuple[int, int, int, int] | None = None) -> tuple[tuple[int, int, int, int], bool]:
    """(pads (top, bottom, left, right), same) of a TFLite conv whose input is `size` (H, W).

    SAME pads like TF (the extra pixel after); an explicit zero PAD feeding the conv adds its pads
    (the usual case is PAD then VALID: exactly that pad). `same` says the pads follow the input size,
    which only a bare SAME conv does."""
    if padding not in (_SAME, _VALID):
        raise ValueError(f"TFLite padding {padding} is neither SAME ({_SAME}) nor VALID ({_VALID})")
    pads = (0, 0, 0, 0)
    if padding == _SAME:
        pads = tf_same_pads(size[0], kernel[0], stride) + tf_same_pads(size[1], kernel[1], stride)
    if explicit is None:
        return pads, padding == _SAME
    return tuple(a + b for a, b in zip(explicit, pads, strict=True)), False


def folded_bn(name: str, bias: np.ndarray) -> BNSpec:
    """The BN the converter folded away: y = x + bias."""
    return BNSpec.folded_affine(name, np.ones(1), bias)


# --- the walk --------------------------------------------------------------------------------------
HANDLERS: Registry = Registry("TFLite op")  # ops with no handler (RESHAPE, SQUEEZE, ...) pass through


class _Walk:
    def __init__(self, data: bytes, where: str) -> None:
        self.where = where
        self.interp = interpreter(data, where, preserve_all_tensors=False)
        model = flatbuffer(data, where)
        if not model.subgraphs:
            raise fail(f"{where}: a TFLite file with no subgraph")
        sub = model.subgraphs[0]
        self.tensors = {t["index"]: t for t in self.interp.get_tensor_details()}
        self.constant = {i for i, t in enumerate(sub.tensors or []) if _has_data(model.buffers[t.buffer])}
        self.ops = self._ops(ops_details(self.interp), model, sub)
        self.producer = {o: op for op in self.ops for o in op.outputs}
        self.consumers: dict[int, list[_Op]] = {}
        for op in self.ops:
            for i in op.inputs:
                if i >= 0:
                    self.consumers.setdefault(i, []).append(op)
        self.layers: list = []
        self.taps: dict[int, dict[str, str]] = {}
        self.explicit_pads: dict[int, tuple[int, int, int, int]] = {}  # PAD output tensor -> its pads
        self.pooled: str | None = None
        self.logits: str | None = None
        self.squeeze: set[int] = set()  # op indices of the convs inside a squeeze-excitation unit
        self.flatten: FlattenSpec | None = None

    def _ops(self, details: list[dict], model, sub) -> list[_Op]:
        """Ops in execution order from the interpreter, each with its builtin options from the flatbuffer."""
        from tensorflow.lite.python import schema_util

        operators = sub.operators or []
        if len(details) != len(operators):
            raise fail(f"{self.where}: the interpreter lists {len(details)} ops, the flatbuffer {len(operators)}")

        names = _builtin_names()
        ops = []
        for d, fb in zip(details, operators, strict=True):
            fb_kind = names.get(schema_util.get_builtin_code_from_operator_code(model.operatorCodes[fb.opcodeIndex]))
            if fb_kind not in (d["op_name"], "CUSTOM"):
                raise fail(f"{self.where}: op {d['index']} is {d['op_name']} to the interpreter "
                           f"but {fb_kind} in the file")
            ops.append(_Op(int(d["index"]), d["op_name"], tuple(int(i) for i in d["inputs"]),
                           tuple(int(i) for i in d["outputs"]), fb.builtinOptions))
        return ops

    # --- helpers -----------------------------------------------------------------------------------
    def name(self, tensor: int) -> str:
        return self.tensors[tensor]["name"]

    def shape(self, tensor: int) -> tuple[int, ...]:
        return tuple(int(d) for d in self.tensors[tensor]["shape"])

    def const(self, tensor: int, what: str, op: _Op) -> np.ndarray:
        """A constant's value; float16 weights behind a DEQUANTIZE (float16 files) are read as float32."""
        if tensor in self.constant:
            return np.array(self.interp.get_tensor(tensor))
        prod = self.producer.get(tensor)
        if prod is not None and prod.kind == "DEQUANTIZE" and prod.inputs[0] in self.constant:
            value = self.interp.get_tensor(prod.inputs[0])
            if value.dtype == np.float16:  # exact in float32: the file's weights, not an approximation
                return value.astype(np.float32)
        raise fail(f"{self.where}: {what} of {op.kind} '{self.name(op.outputs[0])}' is not a constant")

    def only_consumer(self, tensor: int, kinds: set[str]) -> _Op | None:
        cs = self.consumers.get(tensor, [])
        return cs[0] if len(cs) == 1 and cs[0].kind in kinds else None

    def weight_dtypes(self) -> list[np.dtype]:
        """The stored types of every conv / dense weight (through DEQUANTIZE where there is one)."""
        out = []
        for op in self.ops:
            if op.kind in _WEIGHTED and len(op.inputs) > 1:
                w = op.inputs[1]
                prod = self.producer.get(w)
                src = prod.inputs[0] if prod is not None and prod.kind in ("DEQUANTIZE", "QUANTIZE") else w
                out.append(np.dtype(self.tensors[src]["dtype"]))
        return out

    # --- checks ------------------------------------------------------------------------------------
    def refuse_quantized(self, input_detail: dict) -> None:
        dtypes = [np.dtype(input_detail["dtype"]), *self.weight_dtypes()]
        ints = [d for d in dtypes if d.kind in "iu"]
        if ints:
            raise fail(f"{self.where}: quantized TFLite ({ints[0].name}): {QUANTIZED_MSG}")
        if any(op.kind == "QUANTIZE" for op in self.ops):
            raise fail(f"{self.where}: quantized TFLite (QUANTIZE ops): {QUANTIZED_MSG}")

    def recognise(self, counts: dict[str, int]) -> str:
        """The registered architecture (convert.arch) whose op census the flatbuffer's op counts are."""
        census = Census(counts.get("CONV_2D", 0), counts.get("DEPTHWISE_CONV_2D", 0), counts.get("ADD", 0),
                        counts.get("MAX_POOL_2D", 0), counts.get("CONCATENATION", 0),
                        ("CONV_2D", "DEPTHWISE_CONV_2D", "MAX_POOL_2D", "CONCATENATION", "ADD"))
        return architectures.recognise(census, self.where).name

    # --- the walk ----------------------------------------------------------------------------------
    def read(self) -> tuple[ModelSpec, TFLiteInfo]:
        detail = input_detail(self.interp, self.where)
        dims = input_signature(detail)
        self.refuse_quantized(detail)
        counts: dict[str, int] = {}
        for op in self.ops:
            counts[op.kind] = counts.get(op.kind, 0) + 1
        arch = self.recognise(counts)
        if len(dims) != 4 or dims[3] != 3:
            raise fail(f"{self.where}: input '{detail['name']}' has shape {dims}, expected (N, H, W, 3) NHWC images")
        if dims[1] is None or dims[2] is None:
            raise fail(f"{self.where}: input size is not fixed in the file (shape {dims}); "
                       f"reconvert it at a fixed size")
        for op in self.ops:
            handler = HANDLERS.get(op.kind)
            if handler is not None:
                handler(self, op)
        outputs = self.interp.get_output_details()
        output = outputs[0]["name"] if outputs else ""
        if self.logits is None and self.layers and isinstance(self.layers[-1], DenseSpec):
            self.logits = self.taps[len(self.layers) - 1][""]
        info = TFLiteInfo(detail["name"], dims, output, self.pooled, self.logits, counts)
        spec = ModelSpec(
            layers=self.layers, input_shape=(dims[1], dims[2], 3), arch=arch, origin="tflite", taps=self.taps,
            input_range=architectures.get(arch).input_range,
            **({"pool": "flatten", "flatten": self.flatten} if self.flatten is not None else {}),
        )
        spec.preprocess = self.input_affine(detail["index"])
        if spec.preprocess is not None:
            spec.input_range = spec.preprocess.contract()
        spec.notes.append("TFLite folds BatchNorm into the convs: BN layers are identity + conv bias (eval-mode only)")
        spec.notes.append("TFLite fuses ReLU6 into the convs: no ':bn' probe point before a ReLU6 exists in the file")
        return spec, info

    def add_conv(self, op: _Op) -> None:
        opts = op.options
        x = op.inputs[0]
        if opts.strideH != opts.strideW or opts.dilationHFactor != 1 or opts.dilationWFactor != 1:
            raise fail(f"{self.where}: {op.kind} '{self.name(op.outputs[0])}' has strides "
                       f"({opts.strideH}, {opts.strideW}) / dilations ({opts.dilationHFactor}, "
                       f"{opts.dilationWFactor}), not a MobileNetV2 conv")
        act = opts.fusedActivationFunction
        if act != _ACT_NONE and act not in _FUSED:
            raise fail(f"{self.where}: {op.kind} '{self.name(op.outputs[0])}' fuses activation {_act_name(act)}; "
                       f"the registered architectures fuse only RELU6 or RELU")
        wt = self.const(op.inputs[1], "filter", op).astype(np.float32)
        depthwise = op.kind == "DEPTHWISE_CONV_2D"
        if depthwise:
            if wt.shape[0] != 1 or wt.shape[3] != self.shape(x)[3]:
                raise fail(f"{self.where}: depthwise '{self.name(op.outputs[0])}' has filter {wt.shape} on "
                           f"{self.shape(x)[3]} channels: MobileNetV2 uses depth multiplier 1")
            torch_w = wt.transpose(3, 0, 1, 2)  # (1, kH, kW, C) -> (C, 1, kH, kW)
        else:
            torch_w = wt.transpose(0, 3, 1, 2)  # OHWI -> OIHW
        out = op.outputs[0]
        stride = int(opts.strideH)
        size = self.shape(x)[1:3]
        pads, same = conv_pads(opts.padding, size, torch_w.shape[2:], stride, self.explicit_pads.get(x))
        bias = self.const(op.inputs[2], "bias", op) if len(op.inputs) > 2 and op.inputs[2] >= 0 else \
            np.zeros(torch_w.shape[0], np.float32)
        name = self.name(out)
        if op.index in self.squeeze:  # a squeeze-excitation conv: its bias is its own, no BN
            self.add_squeeze(op, ConvSpec(name, np.ascontiguousarray(torch_w), stride, depthwise, pads, same), bias)
            return
        self.layers.append(ConvSpec(name, np.ascontiguousarray(torch_w), stride, depthwise, pads, same,
                                    reads=self.conv_read(x)))
        taps = self._conv_taps(out, act)
        fused = "relu6" if act == _ACT_NONE and ":act" in taps else _FUSED.get(act, "linear")  # ReLU6 unfused
        self.layers.append(dataclasses.replace(folded_bn(name + "/folded_bn", bias), activation=fused))
        self.taps[len(self.layers) - 1] = taps

    def add_squeeze(self, op: _Op, conv: ConvSpec, bias: np.ndarray) -> None:
        """A squeeze-excitation conv: fused RELU (fc1), or fused RELU6 then MUL(1/6) (fc2's hard-sigmoid,
        its + 3 folded into the bias by the converter), whose output gates the pooled feature map."""
        act = op.options.fusedActivationFunction
        out = op.outputs[0]
        scale = self.only_consumer(out, {"MUL"})
        third = scale is not None and _const_equals(self, scale, out, 1.0 / 6.0)
        if act == _ACT_RELU6 and third:
            gate = self.only_consumer(scale.outputs[0], {"MUL"})
            conv = dataclasses.replace(conv, bias=(bias.astype(np.float64) - HARD_SIGMOID_SHIFT).astype(np.float32),
                                       activation="hard_sigmoid", squeeze=True)
            self.layers.append(conv)
            self.taps[len(self.layers) - 1] = {":out": self.name(gate.outputs[0])} if gate is not None else {}
        elif act == _ACT_RELU:
            self.layers.append(dataclasses.replace(conv, bias=bias.astype(np.float32), activation="relu", squeeze=True))
            self.taps[len(self.layers) - 1] = {":act": self.name(out)}
        else:
            raise fail(f"{self.where}: squeeze-excitation conv '{self.name(out)}' fuses {_act_name(act)}"
                       + ("" if act != _ACT_RELU6 else " without the hard-sigmoid's MUL(1/6)")
                       + "; MobileNetV3's fuse RELU, or RELU6 then MUL(1/6)")

    def input_affine(self, tensor: int) -> InputAffine | None:
        """MUL / ADD / SUB by constants from the input to the first op that is not one (Keras's Rescaling):
        the model's own input affine, composed; None where the input goes straight into a conv."""
        scale, offset, ops = np.ones(3), np.zeros(3), []
        while True:
            op = self.only_consumer(tensor, {"MUL", "ADD", "SUB"})
            if op is None or op.inputs[0] != tensor or op.inputs[1] not in self.constant:
                break
            c = np.broadcast_to(np.asarray(self.interp.get_tensor(op.inputs[1]), np.float64).reshape(-1), (3,))
            if op.kind == "MUL":
                scale, offset = scale * c, offset * c
            else:
                offset = offset + (c if op.kind == "ADD" else -c)
            ops.append(self.name(op.outputs[0]))
            tensor = op.outputs[0]
        if not ops:
            return None
        return InputAffine(tuple(float(v) for v in np.float32(scale)), tuple(float(v) for v in np.float32(offset)),
                           tuple(ops))

    def conv_read(self, tensor: int) -> str | None:
        """The conv whose output reaches `tensor` through a PAD or a MAX_POOL_2D (its BN and activation are
        fused into it), else None (ConvSpec.reads)."""
        op = self.producer.get(tensor)
        while op is not None and op.kind in ("PAD", "PADV2", "MAX_POOL_2D"):
            op = self.producer.get(op.inputs[0])
        return self.name(op.outputs[0]) if op is not None and op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D") else None

    def _conv_taps(self, out: int, act: int) -> dict[str, str]:
        """With RELU6 (RELU) fused, the conv output is ':act' and the BN output is in no tensor of the file."""
        taps = {":act" if act in _FUSED else ":bn": self.name(out)}
        if act == _ACT_NONE:
            relu = self.only_consumer(out, {"RELU6"})  # a ReLU6 the converter left unfused
            if relu is not None:
                taps[":act"] = self.name(relu.outputs[0])
            add = self.only_consumer(out, {"ADD"})
            if add is not None:
                taps[":out"] = self.name(add.outputs[0])
        return taps

    def add_dense(self, op: _Op, weight: np.ndarray, bias_input: int) -> None:
        """A Dense: FULLY_CONNECTED (a ReLU fused into a hidden one: VGG16's fc1, fc2), or slim's 1x1 CONV_2D
        on the pooled map. With an activation fused, the file holds no tensor before it: no '' tap."""
        act = getattr(op.options, "fusedActivationFunction", _ACT_NONE)
        if act != _ACT_NONE and act not in _FUSED:
            raise fail(f"{self.where}: dense '{self.name(op.outputs[0])}' fuses activation {_act_name(act)}; "
                       f"only RELU / RELU6 are read")
        bias = self.const(bias_input, "bias", op) if bias_input >= 0 else np.zeros(weight.shape[0], np.float32)
        self.layers.append(DenseSpec(self.name(op.outputs[0]), np.ascontiguousarray(weight, np.float32),
                                     bias.astype(np.float32).reshape(-1), _FUSED.get(act, "linear")))
        self.taps[len(self.layers) - 1] = {":act" if act in _FUSED else "": self.name(op.outputs[0])}

    def add_flatten(self, tensor: int) -> None:
        """A 4-D map flattened before a Dense (RESHAPE, or FULLY_CONNECTED taking the map itself): TFLite's
        tensors are NHWC, so the Dense's columns are in (h, w, c) order. After the global pooling (a 1x1 map:
        MobileNetV3's top) nothing is flattened in any order."""
        shape = self.shape(tensor)
        if (len(shape) == 4 and self.pooled is None and self.flatten is None
                and not any(isinstance(x, DenseSpec) for x in self.layers)):
            self.flatten = FlattenSpec("NHWC", (shape[3], shape[1], shape[2]))


def _has_data(buffer) -> bool:
    """A constant tensor's buffer holds data (or, in files over 2 GB, an offset to it)."""
    return (buffer.data is not None and len(buffer.data) > 0) or getattr(buffer, "offset", 0) > 1


def _act_name(code: int) -> str:
    from tensorflow.lite.python import schema_py_generated as schema

    return {v: k for k, v in vars(schema.ActivationFunctionType).items() if not k.startswith("_")}.get(code, str(code))


@HANDLERS.register("PAD", "PADV2")
def _pad(walk: _Walk, op: _Op) -> None:
    p = walk.const(op.inputs[1], "paddings", op).astype(np.int64)
    if p.shape != (4, 2) or p[0].any() or p[3].any():
        raise fail(f"{walk.where}: PAD '{walk.name(op.outputs[0])}' pads {p.tolist()}: only H and W pads are read")
    if op.kind == "PADV2" and float(walk.const(op.inputs[2], "pad value", op).reshape(-1)[0]) != 0.0:
        raise fail(f"{walk.where}: PADV2 '{walk.name(op.outputs[0])}' pads with a non-zero value")
    walk.explicit_pads[op.outputs[0]] = (int(p[1, 0]), int(p[1, 1]), int(p[2, 0]), int(p[2, 1]))


@HANDLERS.register("CONV_2D", "DEPTHWISE_CONV_2D")
def _conv(walk: _Walk, op: _Op) -> None:
    if walk.pooled is not None and op.kind == "CONV_2D":  # slim's logits: a 1x1 conv on the pooled map
        w = walk.const(op.inputs[1], "filter", op)  # (out, 1, 1, in)
        if w.shape[1:3] != (1, 1):
            raise fail(f"{walk.where}: {w.shape[1]}x{w.shape[2]} conv '{walk.name(op.outputs[0])}' after the pooling: "
                       f"expected slim's 1x1 logits conv")
        walk.add_dense(op, w[:, 0, 0, :], op.inputs[2] if len(op.inputs) > 2 else -1)
    else:
        walk.add_conv(op)


@HANDLERS.register("MEAN", "AVERAGE_POOL_2D")
def _pool(walk: _Walk, op: _Op) -> None:
    gate = _se_gate(walk, op) if walk.pooled is None else None
    if gate is not None:  # a squeeze-excitation's pooling, not the backbone's
        down = _downstream(walk, op.outputs[0])
        walk.squeeze |= {o.index for o in walk.ops if o.kind == "CONV_2D" and o.outputs[0] in down
                         and o.index < gate.index}
        return
    walk.pooled = walk.name(op.outputs[0])


def _se_gate(walk: _Walk, pool: _Op) -> _Op | None:
    """The MUL that gates the pooling's own input by what is computed from the pooled values, else None."""
    x = pool.inputs[0]
    down = _downstream(walk, pool.outputs[0])
    return next((m for m in walk.consumers.get(x, []) if m.kind == "MUL"
                 and any(i != x and i in down for i in m.inputs)), None)


def _downstream(walk: _Walk, tensor: int) -> set[int]:
    """Every tensor computed from `tensor` (itself included)."""
    seen, stack = set(), [tensor]
    while stack:
        t = stack.pop()
        if t in seen:
            continue
        seen.add(t)
        for c in walk.consumers.get(t, []):
            stack.extend(c.outputs)
    return seen


def _const_equals(walk: _Walk, op: _Op, other: int, value: float) -> bool:
    """A binary op's operand other than `other` is a constant equal to `value` (every element)."""
    ins = [i for i in op.inputs if i != other]
    return len(ins) == 1 and ins[0] in walk.constant and bool(
        np.allclose(walk.interp.get_tensor(ins[0]), value, rtol=1e-6, atol=0))


@HANDLERS.register("HARD_SWISH")
def _hard_swish(walk: _Walk, op: _Op) -> None:
    """x * ReLU6(x + 3) / 6 after a conv (its folded BN's activation) or after a dense layer (the head's)."""
    if not walk.layers:
        return
    i, last = len(walk.layers) - 1, walk.layers[-1]
    walk.layers[i] = dataclasses.replace(last, activation="hard_swish")
    if isinstance(last, BNSpec):
        walk.taps.setdefault(i, {})[":act"] = walk.name(op.outputs[0])


@HANDLERS.register("MAX_POOL_2D")
def _max_pool(walk: _Walk, op: _Op) -> None:
    """VGG16's pools after a conv's (fused) ReLU: that conv's ':pool' tap."""
    if len(walk.layers) - 1 in walk.taps:
        walk.taps[len(walk.layers) - 1][":pool"] = walk.name(op.outputs[0])


@HANDLERS.register("RESHAPE")
def _reshape(walk: _Walk, op: _Op) -> None:
    consumers = walk.consumers.get(op.outputs[0], [])
    if len(consumers) == 1 and consumers[0].kind == "FULLY_CONNECTED" and len(walk.shape(op.outputs[0])) == 2:
        walk.add_flatten(op.inputs[0])


@HANDLERS.register("FULLY_CONNECTED")
def _fully_connected(walk: _Walk, op: _Op) -> None:
    walk.add_flatten(op.inputs[0])  # a map fed to it directly is flattened by it, NHWC
    walk.add_dense(op, walk.const(op.inputs[1], "weights", op), op.inputs[2] if len(op.inputs) > 2 else -1)


@HANDLERS.register("SOFTMAX")
def _softmax(walk: _Walk, op: _Op) -> None:
    walk.logits = walk.name(op.inputs[0])


def read_tflite(path: str | Path, where: str) -> tuple[ModelSpec, TFLiteInfo]:
    """A float32 .tflite -> (ModelSpec, TFLiteInfo); quantized, corrupt or non-MobileNetV2 files are refused.

    Taps per layer index (the folded BN's index, as for graphs): ':act' is the conv output where RELU6
    is fused (then there is no ':bn': the file holds no tensor between BN and ReLU6), ':bn' the conv
    output where nothing is fused, ':out' the residual ADD's output; '' the dense output."""
    data = read_bytes(path, where)
    try:
        return _Walk(data, where).read()
    except (KeyError, IndexError, ValueError, TypeError, AttributeError) as e:
        detail = str(e).splitlines()[0][:120] if str(e) else ""
        raise fail(f"{where}: malformed TFLite model ({type(e).__name__}: {detail})") from None
