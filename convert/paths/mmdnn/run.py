"""Running the real MMdnn 0.3.1 (TF parser -> IR -> PyTorch emitter) on a source, all its files or none.

What MMdnn is given: the source's frozen GraphDef (MMdnn's `TensorflowParser2`, its frozen-graph
parser), with the input node, its (H, W, 3) shape and the output node. MMdnn reads fused BatchNorm
only: a Keras 3 model's graph arrives with its BN fused back (convert.sources.bn_fuse); a graph whose
BN is decomposed and whose statistics are nowhere (a Keras 3 export) is refused.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from convert.compat.mmdnn import MMDNN_VERSION
from convert.model.spec import ModelSpec
from convert.model.tf_names import node_name
from convert.paths.base import Progress
from convert.runtime.errors import OWN, TfportError, fail

_FUSED_BN_OPS = ("FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3")


# What run_mmdnn leaves in out_dir, by role: MMdnn's IR, then MMdnn's emitted PyTorch model.
IR_STEM = "mmdnn_ir"  # .json, .pb, .npy: MMdnn's parser writes all three


CODE_NAME = "mmdnn_model.py"


WEIGHTS_NAME = "mmdnn_model.npy"


@dataclass(frozen=True)
class MmdnnResult:
    """Where MMdnn's files are, what it was asked to convert, and how long each step took."""

    ir_json: Path
    ir_pb: Path
    ir_weights: Path
    code: Path
    weights: Path
    input: str  # node names MMdnn was given
    output: str
    input_shape: tuple[int, int, int]  # H, W, C
    parse_s: float  # TensorflowParser2: frozen graph -> IR (graph + weights), wall time
    emit_s: float  # PytorchEmitter: IR -> code + weights, wall time
    route: str  # "frozen graph" or how the graph MMdnn saw was made
    log: str  # what MMdnn printed


@dataclass(frozen=True)
class _Input:
    graph_def: object
    input: str
    output: str
    route: str


def _mmdnn_input(source) -> _Input:
    """The frozen graph MMdnn can parse: the source's own, with fused BatchNorm (a Keras 3 source's graph
    has had its BN fused back from the model's statistics by convert.sources.bn_fuse)."""
    counts = source.info.op_counts
    if any(counts.get(op) for op in _FUSED_BN_OPS) or not source.spec.bns:
        inp = (_without_preprocessing(source) if source.spec.preprocess is not None else
               _Input(source.graph_def, source.info.input, source.info.output, "frozen graph"))
        if source.spec.trusted_code:  # side effects the user let run (--trust-code) ran in TF's reference
            from convert.safety.graph import compute_only

            inp = dataclasses.replace(inp, graph_def=compute_only(inp.graph_def, [inp.output]))
        return dataclasses.replace(inp, graph_def=_dense_bias_as_bias_add(inp.graph_def))
    raise fail(f"{source.path}: BatchNorm is decomposed into Mul/Add in this graph (a Keras 3 export), which MMdnn "
               f"{MMDNN_VERSION} mis-parses into a broken model; convert the .keras file, save the model with "
               "tf_keras, or use --via onnx")


BACKBONE_INPUT = "tfport_backbone_input"


def _dense_bias_as_bias_add(gd):
    """Keras 3 adds a Dense's bias with AddV2; MMdnn 0.3.1 emits a broken matmul for MatMul + AddV2 and a
    correct Linear for MatMul + BiasAdd (tf_keras's form). Same function, the form MMdnn reads."""
    import tensorflow as tf

    out = tf.compat.v1.GraphDef()
    out.CopyFrom(gd)
    nodes = {n.name: n for n in out.node}
    for n in out.node:
        if n.op not in ("AddV2", "Add") or len(n.input) != 2:
            continue
        a, b = (nodes.get(i.split(":")[0]) for i in n.input)
        while b is not None and b.op == "Identity":
            b = nodes.get(b.input[0].split(":")[0])
        if a is not None and a.op == "MatMul" and b is not None and b.op == "Const" \
                and len(b.attr["value"].tensor.tensor_shape.dim) == 1:
            n.op = "BiasAdd"
            n.attr["data_format"].s = b"NHWC"
    return out


def _without_preprocessing(source) -> _Input:
    """The graph from the first convolution on: MMdnn 0.3.1 emits no RealDiv/Sub (the preprocessing inside
    tutorial-style models), so it is given what follows it; the port applies the source's affine itself."""
    import tensorflow as tf

    from convert.readers.tf_graph import GraphReader

    gd = tf.compat.v1.GraphDef()
    gd.CopyFrom(source.graph_def)
    reader = GraphReader(gd, str(source.path))
    first = next(n for n in reader.topo() if n.op in ("Conv2D", "DepthwiseConv2dNative"))
    pre = reader.producer(first.input[0])
    cut = pre if pre is not None and pre.op in ("Pad", "PadV2") else first
    ph = gd.node.add(name=BACKBONE_INPUT, op="Placeholder")
    ph.attr["dtype"].type = tf.float32.as_datatype_enum
    ph.attr["shape"].shape.CopyFrom(tf.TensorShape([None, *source.spec.input_shape]).as_proto())
    node = next(n for n in gd.node if n.name == cut.name)
    node.input[0] = BACKBONE_INPUT
    out = node_name(source.info.output)
    gd = tf.compat.v1.graph_util.extract_sub_graph(gd, [out])
    return _Input(gd, BACKBONE_INPUT + ":0", source.info.output,
                  "the graph after the model's own preprocessing (MMdnn emits no RealDiv/Sub); the port applies it")


@contextlib.contextmanager
def _quiet_tf() -> Iterator[None]:
    """MMdnn calls TF-1 APIs that log deprecation warnings; keep them out of the user's terminal."""
    import tensorflow as tf

    logger = tf.get_logger()
    level = logger.level
    logger.setLevel("ERROR")
    try:
        yield
    finally:
        logger.setLevel(level)


def _mmdnn_failure(step: str, where: str, e: Exception, log: str) -> TfportError:
    said = [line for line in log.splitlines() if line.strip() and "is saved as" not in line]
    detail = said[-1].strip() if said else (str(e).splitlines()[0] if str(e) else type(e).__name__)
    return fail(f"{where}: MMdnn {MMDNN_VERSION} cannot {step} this model ({type(e).__name__}: {detail[:200]})")


def _mmdnn_step(step: str, where: str, log: io.StringIO, fn: Callable[[], None]) -> float:
    """Run one MMdnn step under the compatibility shims, its prints kept in `log`; wall seconds."""
    from convert.compat.mmdnn import mmdnn_compat

    t0 = time.perf_counter()
    with mmdnn_compat(), _quiet_tf(), contextlib.redirect_stdout(log):
        try:
            fn()
        except OWN:  # bad input named already; a shim of tfport's (convert.compat.mmdnn) failing is a bug
            raise
        except Exception as e:  # MMdnn signals what it cannot handle with assert, KeyError, ...
            raise _mmdnn_failure(step, where, e, log.getvalue()) from e
    return time.perf_counter() - t0


def run_mmdnn(source, out_dir: str | Path, progress: Progress = lambda s: None) -> MmdnnResult:
    """Run MMdnn's TF parser and PyTorch emitter on `source` (a convert.sources.Source).

    Writes mmdnn_ir.{json,pb,npy}, mmdnn_model.py and mmdnn_model.npy into out_dir, all or none."""
    out = Path(out_dir)
    if not out.is_dir():
        raise fail(f"{out}: output folder does not exist")
    where = str(source.path)
    inp = _mmdnn_input(source)
    hwc = tuple(int(d) for d in source.spec.input_shape)
    work = Path(tempfile.mkdtemp(prefix=".mmdnn.", dir=out))
    log = io.StringIO()
    try:
        frozen = work / "frozen.pb"
        frozen.write_bytes(inp.graph_def.SerializeToString())
        ir = str(work / IR_STEM)
        nodes = [node_name(inp.input)], [node_name(inp.output)]  # tfport's part, outside MMdnn's wrapper
        code, weights = str(work / CODE_NAME), str(work / WEIGHTS_NAME)

        def parse() -> None:  # MMdnn only, from here on: what fails inside is MMdnn's or a shim's
            from mmdnn.conversion.tensorflow.tensorflow_frozenparser import TensorflowParser2

            TensorflowParser2(str(frozen), [list(hwc)], *nodes).run(ir)

        def emit() -> None:
            from mmdnn.conversion.pytorch.pytorch_emitter import PytorchEmitter

            PytorchEmitter((ir + ".pb", ir + ".npy")).run(code, weights, "test")

        progress(f"MMdnn {MMDNN_VERSION}: TF frozen graph -> IR (TensorflowParser2)")
        parse_s = _mmdnn_step("parse", where, log, parse)
        progress(f"MMdnn {MMDNN_VERSION}: IR -> PyTorch code and weights (PytorchEmitter)")
        emit_s = _mmdnn_step("emit PyTorch code for", where, log, emit)
        unsupported = [line for line in log.getvalue().splitlines() if "has not supported operator" in line]
        if unsupported:
            raise fail(f"{where}: MMdnn {MMDNN_VERSION} left ops out of the PyTorch code ({unsupported[0].strip()})")
        frozen.unlink()
        names = [IR_STEM + ".json", IR_STEM + ".pb", IR_STEM + ".npy", CODE_NAME, WEIGHTS_NAME]
        for name in names:
            if not (work / name).is_file():
                raise fail(f"{where}: MMdnn {MMDNN_VERSION} did not write {name}")
        moved: list[Path] = []
        try:
            for name in names:
                os.replace(work / name, out / name)
                moved.append(out / name)
        except OSError as e:
            for f in moved:
                f.unlink(missing_ok=True)
            raise fail(f"{out}: cannot write MMdnn's files ({e.strerror})") from e
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return MmdnnResult(
        ir_json=out / (IR_STEM + ".json"), ir_pb=out / (IR_STEM + ".pb"), ir_weights=out / (IR_STEM + ".npy"),
        code=out / CODE_NAME, weights=out / WEIGHTS_NAME, input=node_name(inp.input), output=node_name(inp.output),
        input_shape=hwc, parse_s=parse_s, emit_s=emit_s, route=inp.route, log=log.getvalue(),
    )


def read_mmdnn_ir(result: MmdnnResult) -> ModelSpec:
    """MMdnn's IR graph and weights -> ModelSpec (see convert.readers.mmdnn_ir)."""
    from convert.readers.mmdnn_ir import read_ir

    spec = read_ir(result.ir_pb, result.ir_weights)
    if spec.input_shape != result.input_shape:
        raise fail(f"{result.ir_pb}: IR input {spec.input_shape} differs from the {result.input_shape} MMdnn was given")
    return spec
