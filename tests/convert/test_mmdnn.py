"""The MMdnn path on the real MMdnn 0.3.1: its emitted model, the canonical backbone, the shims.

Cases cover every form the issue names (slim .pb, Keras-2 .h5, nested transfer .h5), both alphas
(1.0, 0.35) and both input sizes (224, 160) without running the full cross product.
"""

from __future__ import annotations

import dataclasses
import pickle
import types
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

import convert  # noqa: F401  (import-order guard before torch/TF)
from convert.compat import mmdnn as mmdnn_compat
from convert.model.agreement import agreement
from convert.model.probe import probe_inputs
from convert.paths.mmdnn.emitted import emitted_bn_momenta, emitted_outputs, load_emitted
from convert.paths.mmdnn.run import MmdnnResult, read_mmdnn_ir, run_mmdnn
from convert.runtime.errors import TfportError
from tests.zoo.payloads import Payload

REL_TOL = 1e-5
PROBES = 16

CASES = [
    # (form, alpha, (H, W)); keras2_h5 0.35/160 first: its samples include the slim .pb of that size
    ("keras2_h5", 0.35, (160, 160)),
    ("slim_pb", 1.0, (224, 224)),
    ("slim_pb", 0.35, (160, 160)),
    ("transfer_h5", 1.0, (160, 160)),
]
IDS = [f"{f}-a{a:g}-{s[0]}" for f, a, s in CASES]


@dataclass
class Run:
    source: object  # convert.sources.Source
    result: MmdnnResult
    x: np.ndarray
    ref: dict[str, np.ndarray]  # TF outputs on x: logits, pooled, output


@pytest.fixture(scope="session")
def mmdnn_runs(samples, tmp_path_factory):
    """Run MMdnn once per case (and TF once on the probes); tests read the results."""
    from convert.runners.tf import TFRunner
    from convert.sources import load_source

    cache: dict[tuple, Run] = {}

    def get(form: str, alpha: float, size: tuple[int, int]) -> Run:
        key = (form, alpha, size)
        if key not in cache:
            source = load_source(samples.get(form, alpha, size))
            out = tmp_path_factory.mktemp(f"mmdnn-{form}-{alpha:g}-{size[0]}")
            result = run_mmdnn(source, out)
            x = probe_inputs(PROBES, source.spec.input_shape[:2], seed=7)
            names = {"logits": source.info.logits, "pooled": source.info.pooled, "output": source.info.output}
            ref = dict(zip(names, TFRunner(source.graph_def, source.info).run(x, list(names.values())), strict=True))
            cache[key] = Run(source, result, x, ref)
        return cache[key]

    return get


@pytest.fixture(scope="session")
def canonical_of():
    """The canonical backbone mapped from a run's IR, built as a torchvision MobileNetV2 (once per run)."""
    from convert.model.semantics import with_source_semantics
    from convert.port.canonical import to_torchvision

    cache: dict[Path, tuple] = {}

    def get(run: Run):
        if run.result.ir_pb not in cache:
            spec = with_source_semantics(read_mmdnn_ir(run.result), run.source.spec)
            canonical = to_torchvision(spec, str(run.source.path))
            cache[run.result.ir_pb] = (canonical, canonical.module())
        return cache[run.result.ir_pb]

    return get


def _emitted(run: Run):
    return load_emitted(run.result.code, run.result.weights)


# --- MMdnn's emitted model: the artifact users hold ---------------------------------------------------

@pytest.mark.parametrize("case", CASES, ids=IDS)
@pytest.mark.filterwarnings("ignore:Implicit dimension choice for softmax")
def test_emitted_model_matches_tf(mmdnn_runs, case):
    run = mmdnn_runs(*case)
    logits, output = emitted_outputs(_emitted(run), run.x)
    a_logits = agreement("logits", logits, run.ref["logits"], logits=True)
    a_out = agreement("output", output, run.ref["output"])
    assert a_logits.ok(REL_TOL), a_logits
    assert a_out.ok(REL_TOL), a_out


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_emitted_bn_momentum_is_zero(mmdnn_runs, case):
    """The diagnosis downstream rests on this: MMdnn emits momentum=0.0 on every BatchNorm."""
    run = mmdnn_runs(*case)
    momenta = emitted_bn_momenta(_emitted(run))
    assert len(momenta) == len(run.source.spec.bns)
    assert set(momenta.values()) == {0.0}
    assert run.result.code.read_text().count("momentum=0.0)") == len(run.source.spec.bns)


@pytest.mark.parametrize("case", CASES[:1], ids=IDS[:1])
def test_emitted_running_stats_never_move_in_train_mode(mmdnn_runs, case):
    """Momentum 0 in practice: a train-mode pass leaves every running statistic where it was."""
    import torch

    run = mmdnn_runs(*case)
    model = _emitted(run).train()
    before = {k: v.clone() for k, v in model.state_dict().items() if k.endswith(("running_mean", "running_var"))}
    with torch.no_grad():
        model(torch.from_numpy(np.ascontiguousarray(run.x[:4].transpose(0, 3, 1, 2))))
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_mmdnn_steps_are_timed(mmdnn_runs):
    result = mmdnn_runs(*CASES[0]).result
    assert result.parse_s > 0 and result.emit_s > 0
    assert result.route == "frozen graph"
    for path in (result.ir_json, result.ir_pb, result.ir_weights, result.code, result.weights):
        assert path.is_file() and path.stat().st_size > 0


# --- the canonical backbone, mapped from MMdnn's IR ----------------------------------------------------

@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_canonical_keeps_source_bn_statistics(mmdnn_runs, canonical_of, case):
    run = mmdnn_runs(*case)
    canonical, _ = canonical_of(run)
    assert canonical.meta["bn_folded"] is False
    keys = list(canonical.meta["bn"])  # execution order, as the source lists its BNs
    assert len(keys) == len(run.source.spec.bns)
    for key, bn in zip(keys, run.source.spec.bns, strict=True):
        sd = canonical.state_dict
        np.testing.assert_array_equal(sd[f"{key}.running_mean"].numpy(), bn.mean, err_msg=key)
        np.testing.assert_array_equal(sd[f"{key}.running_var"].numpy(), bn.var, err_msg=key)
        np.testing.assert_array_equal(sd[f"{key}.weight"].numpy(), bn.gamma, err_msg=key)
        np.testing.assert_array_equal(sd[f"{key}.bias"].numpy(), bn.beta, err_msg=key)
        assert canonical.meta["bn"][key]["eps"] == pytest.approx(bn.eps, rel=1e-6)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_canonical_matches_tf(mmdnn_runs, canonical_of, case):
    from convert.paths.worker import torch_outputs

    run = mmdnn_runs(*case)
    canonical, model = canonical_of(run)
    outs = torch_outputs(model, run.x)
    pooled, logits = outs["pooled"], outs["logits"]
    a_pool = agreement("pooled", pooled, run.ref["pooled"])
    a_logits = agreement("logits", logits, run.ref["logits"], logits=True)
    assert a_pool.ok(REL_TOL) and a_logits.ok(REL_TOL), (a_pool, a_logits)
    assert canonical.meta["alpha"] == case[1]
    assert canonical.meta["input_size"] == list(case[2])


# --- Keras 3: routed through tf_keras, or refused ----------------------------------------------------

@pytest.fixture(scope="session")
def keras3_run(samples, tmp_path_factory):
    from convert.runners.tf import TFRunner
    from convert.sources import load_source

    source = load_source(samples.get("keras3", 1.0, (96, 96)))
    result = run_mmdnn(source, tmp_path_factory.mktemp("mmdnn-keras3"))
    x = probe_inputs(PROBES, (96, 96), seed=7)
    names = {"logits": source.info.logits, "output": source.info.output}
    ref = dict(zip(names, TFRunner(source.graph_def, source.info).run(x, list(names.values())), strict=True))
    return Run(source, result, x, ref)


@pytest.mark.filterwarnings("ignore:Implicit dimension choice for softmax")
def test_keras3_converts_with_its_bn_fused_back(keras3_run, canonical_of):
    """Keras 3 traces BN decomposed; the source's graph has it fused back from the model's statistics, so
    MMdnn parses the source's own graph (no tf_keras rebuild of the config) and keeps the statistics."""
    run = keras3_run
    assert run.source.info.op_counts.get("FusedBatchNormV3") == 52
    assert run.result.route == "frozen graph"
    logits, _ = emitted_outputs(_emitted(run), run.x)
    a = agreement("logits", logits, run.ref["logits"], logits=True)
    assert a.ok(REL_TOL), a
    canonical, _ = canonical_of(run)
    mean = canonical.state_dict["features.0.1.running_mean"].numpy()
    bn = next(x for x in run.source.keras_model.layers if x.__class__.__name__ == "BatchNormalization")
    np.testing.assert_array_equal(mean, np.asarray(bn.moving_mean))


def test_keras3_statistics_are_checked_before_they_are_fused_back(keras3_run):
    """README: the statistics read from the Keras 3 model are checked against the graph's `x * a + b`, and the
    rewritten graph against the traced one; either disagreeing is refused, not fused."""
    import tensorflow as tf

    from convert.model.semantics import same_affine
    from convert.model.spec import BNSpec
    from convert.readers.tf_graph import read_graph
    from convert.sources.bn_fuse import check_same_function
    from convert.sources.keras_files import keras_bn_layers

    source = keras3_run.source
    layer = keras_bn_layers(source.keras_model)[5]
    real = BNSpec(layer.name, *(np.asarray(w, np.float64) for w in layer.get_weights()), float(layer.epsilon))
    a = real.gamma / np.sqrt(real.var + real.eps)
    folded = BNSpec("graph", a, real.beta - real.mean * a, 0 * real.mean, 0 * real.var + 1 - real.eps, real.eps,
                    folded=True)  # the graph's y = x * a + b, as a BN with unit statistics
    assert same_affine(folded, real)
    assert not same_affine(folded, dataclasses.replace(real, mean=real.mean + 0.1))  # other statistics
    other = tf.compat.v1.GraphDef()
    other.CopyFrom(source.graph_def)
    node = next(n for n in other.node if n.name.endswith("/tfport_fused/mean"))
    mean = tf.make_ndarray(node.attr["value"].tensor)
    node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(mean + 0.5))
    read_graph(other, "k3")  # still a MobileNetV2; only the numbers differ
    with pytest.raises(TfportError, match="differs from the traced one"):
        check_same_function(source.graph_def, other, source.info, "k3", keras3_run.x[:2])


def test_decomposed_bn_graph_refused_in_one_line(keras3_run, tmp_path):
    """The same Keras 3 graph without its Keras model (a frozen export): refused, nothing written."""
    from convert.sources.base import LoadOptions, graph_source
    from convert.sources.keras_files import frozen_graph_def

    traced = frozen_graph_def(keras3_run.source.keras_model)  # as Keras 3 traces it: BN decomposed
    graph_only = graph_source(keras3_run.source.path, "graph_pb", traced, LoadOptions())
    with pytest.raises(TfportError) as e:
        run_mmdnn(graph_only, tmp_path)
    msg = str(e.value)
    assert "\n" not in msg and "decomposed" in msg and "MMdnn" in msg
    assert list(tmp_path.iterdir()) == []


def test_ir_with_foreign_op_refused(tmp_path):
    """A mis-parse (decomposed BN arrives as Mul/Rsqrt) never becomes a backbone: unknown IR ops are named."""
    from convert.readers.mmdnn_ir import read_ir

    graph = mmdnn_compat.install_ir_proto().GraphDef()
    node = graph.node.add()
    node.name, node.op = "bn/batchnorm/mul", "Mul"
    (tmp_path / "ir.pb").write_bytes(graph.SerializeToString())
    np.save(tmp_path / "ir.npy", np.array({}, dtype=object), allow_pickle=True)
    with pytest.raises(TfportError, match="Mul node"):
        read_ir(tmp_path / "ir.pb", tmp_path / "ir.npy")


# --- bad input: one line, no partial output ---------------------------------------------------------

def test_graph_mmdnn_cannot_parse_refused(mmdnn_runs, tmp_path):
    """An op MMdnn 0.3.1 has no parser for (Elu in place of one Relu6): its own complaint, one line."""
    source = mmdnn_runs(*CASES[1]).source
    gd = type(source.graph_def)()
    gd.CopyFrom(source.graph_def)
    next(n for n in gd.node if n.op == "Relu6").op = "Elu"
    with pytest.raises(TfportError) as e:
        run_mmdnn(dataclasses.replace(source, graph_def=gd), tmp_path)
    msg = str(e.value)
    assert "\n" not in msg and "Elu" in msg and "MMdnn 0.3.1 cannot parse" in msg
    assert list(tmp_path.iterdir()) == []


def test_a_shim_bug_is_a_bug_not_mmdnn_refusing(mmdnn_runs, tmp_path, monkeypatch):
    """The identifier shim (convert.compat.mmdnn), called back from inside MMdnn, fails: MMdnn's broad wrapper
    lets it through as CallbackBug, which every CLI reports as exit 3 (tests/convert/test_bug_exit.py); before,
    it read "MMdnn 0.3.1 cannot emit PyTorch code for this model", exit 2. Nothing is left in the folder."""
    from convert.runtime.errors import CallbackBug

    class Injected(Exception):
        pass

    def broken(name):
        raise Injected(f"deliberate bug for {name}")

    source = mmdnn_runs(*CASES[2]).source
    monkeypatch.setattr(mmdnn_compat, "py_identifier", broken)
    with pytest.raises(CallbackBug) as e:
        run_mmdnn(source, tmp_path)
    assert isinstance(e.value.__cause__, Injected)
    assert list(tmp_path.iterdir()) == []


def test_truncated_source_refused(mmdnn_runs, tmp_path):
    from convert.sources import load_source

    data = Path(mmdnn_runs(*CASES[1]).source.path).read_bytes()
    bad = tmp_path / "truncated.pb"
    bad.write_bytes(data[: len(data) // 3])
    with pytest.raises(TfportError) as e:
        load_source(bad)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("cut", [0.5, 0.01], ids=["half", "header"])
def test_truncated_emitted_weights_refused(mmdnn_runs, tmp_path, cut):
    weights = mmdnn_runs(*CASES[0]).result.weights.read_bytes()
    bad = tmp_path / "w.npy"
    bad.write_bytes(weights[: int(len(weights) * cut)])
    with pytest.raises(TfportError, match="corrupt MMdnn weights") as e:
        load_emitted(mmdnn_runs(*CASES[0]).result.code, bad)
    assert "\n" not in str(e.value)


# --- the compatibility layer ------------------------------------------------------------------------

def test_safe_reader_refuses_pickled_code(tmp_path):
    marker = tmp_path / "payload-ran"
    evil = tmp_path / "evil.npy"
    weights = {"conv": {"weights": np.ones((3, 3, 3, 8), np.float32), "hook": Payload(marker)}}
    np.save(evil, np.array(weights, dtype=object), allow_pickle=True)
    with pytest.raises(TfportError, match="unsafe") as e:
        mmdnn_compat.read_weights(evil)
    assert "\n" not in str(e.value)
    assert not marker.exists()  # refused before the payload could run
    np.load(evil, allow_pickle=True)  # what MMdnn itself does: the payload is live
    assert marker.exists()


def test_safe_reader_reads_what_mmdnn_writes(mmdnn_runs):
    result = mmdnn_runs(*CASES[0]).result
    ir = mmdnn_compat.read_weights(result.ir_weights)
    emitted = mmdnn_compat.read_weights(result.weights)
    assert ir.keys() == emitted.keys()
    conv = next(k for k in ir if "weights" in ir[k] and ir[k]["weights"].ndim == 4)
    # MMdnn's emitter transposes TF's HWIO kernels to PyTorch's OIHW
    np.testing.assert_array_equal(emitted[conv]["weights"], ir[conv]["weights"].transpose(3, 2, 0, 1))


@pytest.mark.parametrize("payload", [np.arange(4.0), pickle.dumps({"a": 1})], ids=["plain-array", "not-npy"])
def test_safe_reader_refuses_non_weights(tmp_path, payload):
    path = tmp_path / "w.npy"
    if isinstance(payload, np.ndarray):
        np.save(path, payload)
    else:
        path.write_bytes(payload)
    with pytest.raises(TfportError):
        mmdnn_compat.read_weights(path)


def test_ir_proto_rebuilt_on_upb():
    from google.protobuf.internal import api_implementation

    mod = mmdnn_compat.install_ir_proto()
    assert mmdnn_compat.install_ir_proto() is mod  # idempotent
    assert getattr(mod, "__tfport_rebuilt__", False)
    assert api_implementation.Type() != "python"  # no fallback to the slow pure-Python protobuf
    assert mod.DT_FLOAT32 == mod.DataType.Value("DT_FLOAT32")
    g = mod.GraphDef()
    n = g.node.add()
    n.name, n.op = "x", "Conv"
    n.attr["strides"].list.i.extend([1, 2, 2, 1])
    assert mod.GraphDef.FromString(g.SerializeToString()) == g


@pytest.mark.parametrize(
    "name",
    ["mobilenetv2_1.00_224/Conv1/Conv2D", "transfer/mobilenetv2_0.35_160/block_1_pad/Pad", "1x1/conv", "class",
     "a-b[0]"],
    ids=["keras-scope", "nested-keras", "leading-digit", "keyword", "mmdnn-own"],
)
def test_identifiers_are_python(name):
    from mmdnn.conversion.common.DataStructure.graph import GraphNode

    mmdnn_compat.import_mmdnn()
    ident = mmdnn_compat.py_identifier(name)
    assert ident.isidentifier() and not __import__("keyword").iskeyword(ident)
    own = GraphNode.variable_name.fget(types.SimpleNamespace(real_name=name))  # MMdnn's own mapping
    if "." in name:
        assert not own.isidentifier()  # what breaks MMdnn's generated code without the shim


def test_identifier_collisions_numbered():
    table = mmdnn_compat.IdentifierTable()
    assert table("a.b") == "a_b" and table("a_b") == "a_b_2" and table("a.b") == "a_b"


def test_shims_restored_after_use():
    import tensorflow as tf
    from mmdnn.conversion.common.DataStructure.emitter import Emitter
    from mmdnn.conversion.common.DataStructure.graph import GraphNode
    from mmdnn.conversion.tensorflow import tensorflow_frozenparser as fp

    mmdnn_compat.import_mmdnn()
    before = (GraphNode.__dict__["variable_name"], Emitter.__dict__["_load_weights"])
    with mmdnn_compat.mmdnn_compat():
        assert fp.tensorflow is not tf and fp.tensorflow.reset_default_graph is tf.compat.v1.reset_default_graph
        assert fp.tensorflow.GraphDef is tf.compat.v1.GraphDef
        import imp  # noqa: F401  (served by importlib inside the block)

        assert imp.load_source is mmdnn_compat.load_source
    assert fp.tensorflow is tf
    assert (GraphNode.__dict__["variable_name"], Emitter.__dict__["_load_weights"]) == before
