"""Folding the Keras learning phase out of frozen TF1-era graphs (convert/readers/learning_phase.py).

The MobileNetV2 files (alpha 0.35, 96x96) are written by tests/zoo/tf1_keras.py in a subprocess, the way
a TF1 user froze a Keras model: graph mode with v1 control flow (Switch/Merge) or with v2 control flow
(If ops calling library functions). Tiny hand-built graphs cover the edges.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from convert.model.spec import BNSpec
from convert.readers.learning_phase import fold_learning_phase
from convert.readers.tf_graph import read_graph
from convert.runtime.errors import TfportError

ROOT = Path(__file__).resolve().parents[2]
WRITER = ROOT / "tests" / "zoo" / "tf1_keras.py"
VARIANTS = {"switch-merge": [], "if": ["--v2-control-flow"]}  # writer flags per control-flow flavour
# per flavour: the op the learning phase steers, and counts a frozen MobileNetV2 (52 BatchNorms) holds
RAW = {
    "switch-merge": ("Switch", {"Merge": 52, "If": 0, "StatelessIf": 0}),
    "if": ("If", {"If": 52, "Switch": 0, "Merge": 0}),
}
CONTROL_FLOW = {"Switch", "Merge", "If", "StatelessIf", "PlaceholderWithDefault"}
REL_TOL = 1e-6


def _parse(data: bytes):
    import tensorflow as tf

    gd = tf.compat.v1.GraphDef()
    gd.ParseFromString(data)
    return gd


@pytest.fixture(scope="session")
def tf1_graphs(tmp_path_factory) -> dict:
    """Both flavours written at once (two subprocesses), then parsed."""
    d = tmp_path_factory.mktemp("tf1_keras")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    args = ["--alpha", "0.35", "--size", "96"]
    procs = {
        v: subprocess.Popen([sys.executable, str(WRITER), str(d / f"{v}.pb"), *args, *flags],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for v, flags in VARIANTS.items()
    }
    graphs = {}
    for v, proc in procs.items():
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-3000:]
        assert out == "", out  # the writer prints nothing on success
        graphs[v] = _parse((d / f"{v}.pb").read_bytes())
    return graphs


@pytest.fixture(scope="session")
def folded(tf1_graphs) -> dict:
    return {v: fold_learning_phase(gd, f"{v}.pb") for v, gd in tf1_graphs.items()}


def _run(gd, fetch: str, feed: dict) -> np.ndarray:
    """Run with TF's graph optimisers off: fused Conv+BN+ReLU kernels would otherwise apply to the folded graph
    only (no Switch in the way) and differ in the last float bits, hiding what the rewrite itself does."""
    import tensorflow as tf
    from tensorflow.core.protobuf import config_pb2, rewriter_config_pb2

    opts = config_pb2.OptimizerOptions(opt_level=config_pb2.OptimizerOptions.L0, do_constant_folding=False,
                                       do_common_subexpression_elimination=False, do_function_inlining=False)
    config = config_pb2.ConfigProto(graph_options=config_pb2.GraphOptions(
        optimizer_options=opts, rewrite_options=rewriter_config_pb2.RewriterConfig(disable_meta_optimizer=True)))
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(gd, name="")
    with tf.compat.v1.Session(graph=graph, config=config) as sess:
        return sess.run(fetch, feed)


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


def _one(gd, op: str):
    found = [n for n in gd.node if n.op == op]
    assert len(found) == 1, [n.name for n in found]
    return found[0]


@pytest.fixture(scope="session")
def outputs(tf1_graphs, folded) -> dict:
    """Per flavour: the softmax of the original with learning phase False and True, and of the folded graph."""
    x = np.random.default_rng(0).uniform(-1, 1, (4, 96, 96, 3)).astype(np.float32)
    res = {}
    for v, gd in tf1_graphs.items():
        image, phase = _one(gd, "Placeholder").name + ":0", _one(gd, "PlaceholderWithDefault").name + ":0"
        fetch = _one(gd, "Softmax").name + ":0"
        res[v] = {
            "false": _run(gd, fetch, {image: x, phase: False}),
            "true": _run(gd, fetch, {image: x, phase: True}),
            "folded": _run(folded[v][0], fetch, {image: x}),
        }
    return res


def _bn_training(gd) -> Counter:
    """is_training of every FusedBatchNorm*, in the graph and in its library functions."""
    nodes = list(gd.node) + [nd for f in gd.library.function for nd in f.node_def]
    return Counter(n.attr["is_training"].b for n in nodes if n.op.startswith("FusedBatchNorm"))


def _steered_by(gd, phase: str) -> Counter:
    """Ops whose predicate (Switch input 1, If input 0) is the learning phase, through Identity ops."""
    nodes = {n.name: n for n in gd.node}
    steered: Counter = Counter()
    for n in gd.node:
        pred = n.input[1] if n.op == "Switch" else n.input[0] if n.op in ("If", "StatelessIf") else None
        while pred is not None and nodes[pred.split(":")[0]].op == "Identity":
            pred = nodes[pred.split(":")[0]].input[0]
        if pred is not None and pred.split(":")[0] == phase:
            steered[n.op] += 1
    return steered


# --- the TF1 files are what a TF1 user holds --------------------------------------------------------
@pytest.mark.parametrize("variant", list(RAW), ids=list(RAW))
def test_raw_file_has_learning_phase_switch(tf1_graphs, variant):
    gd = tf1_graphs[variant]
    steered_op, counts = RAW[variant]
    phase = _one(gd, "PlaceholderWithDefault")
    assert phase.attr["dtype"].type == 10  # DT_BOOL
    census = Counter(n.op for n in gd.node)
    assert {op: census[op] for op in counts} == counts
    assert set(_steered_by(gd, phase.name)) == {steered_op}
    assert _bn_training(gd) == Counter({True: 52, False: 52})  # both branches of every BN frozen in


# --- after folding: inference only ----------------------------------------------------------------
@pytest.mark.parametrize("variant", list(VARIANTS), ids=list(VARIANTS))
def test_folded_graph_is_inference_only(tf1_graphs, folded, variant):
    gd, notes = folded[variant]
    census = Counter(n.op for n in gd.node)
    assert not CONTROL_FLOW & set(census), census
    image = _one(gd, "Placeholder")
    assert image.name == _one(tf1_graphs[variant], "Placeholder").name and image.attr["dtype"].type == 1  # float
    assert _bn_training(gd) == Counter({False: 52})
    assert not gd.library.function  # inlined or pruned: nothing calls them any more
    phase = _one(tf1_graphs[variant], "PlaceholderWithDefault").name
    assert f"'{phase}'" in notes[0] and "False" in notes[0], notes


@pytest.mark.parametrize("variant", list(VARIANTS), ids=list(VARIANTS))
def test_folded_output_equals_inference_run(outputs, variant):
    assert _rel(outputs[variant]["folded"], outputs[variant]["false"]) <= REL_TOL


@pytest.mark.parametrize("variant", list(VARIANTS), ids=list(VARIANTS))
def test_training_run_differs_clearly(outputs, variant):
    """Proves the fixture can tell the branches apart: folding the training branch would fail above."""
    assert _rel(outputs[variant]["true"], outputs[variant]["false"]) > 0.1
    assert _rel(outputs[variant]["folded"], outputs[variant]["true"]) > 0.1


@pytest.mark.parametrize("variant", list(VARIANTS), ids=list(VARIANTS))
def test_folded_graph_reads_as_mobilenet_v2(folded, variant):
    spec, info = read_graph(folded[variant][0], f"{variant}.pb")
    assert sum(isinstance(layer, BNSpec) for layer in spec.layers) == 52
    assert info.output.startswith(_one(folded[variant][0], "Softmax").name)


# --- tiny graphs ----------------------------------------------------------------------------------
def _tiny(build) -> tuple:
    """(GraphDef, names) of a graph built by `build(x)` in graph mode; x is a float placeholder."""
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, (2, 3), name="x")
        names = build(tf, x)
    return graph.as_graph_def(), names


def _plain_matmul(tf, x):
    y = tf.nn.relu6(tf.matmul(x, tf.constant(np.ones((3, 4), np.float32))), name="y")
    return {"out": y.name}


def _data_switch(tf, x):
    """Control flow on the data, no learning phase: not ours to fold."""
    f, t = tf.raw_ops.Switch(data=x, pred=tf.reduce_sum(x) > 0)
    out, _ = tf.raw_ops.Merge(inputs=[f * 2.0, t * 3.0], name="out")
    return {"out": out.name}


def _switch_merge(phase):
    def build(tf, x):
        lp = phase(tf)
        f, t = tf.raw_ops.Switch(data=x, pred=tf.identity(lp))
        merged, index = tf.raw_ops.Merge(inputs=[f * 2.0, t * 3.0])
        out = tf.add(merged, tf.cast(index, tf.float32) * 100.0, name="out")  # reads Merge's value_index too
        return {"out": out.name, "phase": lp.name}
    return build


def _if(phase):
    def build(tf, x):
        lp = phase(tf)
        out = tf.identity(tf.cond(lp, lambda: x * 3.0, lambda: x * 2.0 + 1.0), name="out")
        return {"out": out.name, "phase": lp.name}
    return build


def _placeholder(tf):
    return tf.compat.v1.placeholder(tf.bool, (), name="training")


def _with_default(tf):
    return tf.compat.v1.placeholder_with_default(False, (), name="lp")


UNCHANGED = {"plain-matmul": _plain_matmul, "data-dependent-switch": _data_switch}


@pytest.mark.parametrize("build", list(UNCHANGED.values()), ids=list(UNCHANGED))
def test_graph_without_learning_phase_is_unchanged(build):
    gd, _ = _tiny(build)
    before = gd.SerializeToString()
    out, notes = fold_learning_phase(gd, "tiny.pb")
    assert out is gd and notes == [] and gd.SerializeToString() == before


@pytest.mark.parametrize("variant", list(VARIANTS), ids=list(VARIANTS))
def test_folded_mobilenet_folds_to_itself(folded, variant):
    gd = folded[variant][0]
    out, notes = fold_learning_phase(gd, f"{variant}.pb")
    assert out is gd and notes == []


FOLDS = {
    "placeholder-switch-merge": _switch_merge(_placeholder),
    "with-default-switch-merge": _switch_merge(_with_default),
    "placeholder-if": _if(_placeholder),
    "with-default-if": _if(_with_default),
}


@pytest.mark.parametrize("build", list(FOLDS.values()), ids=list(FOLDS))
def test_tiny_learning_phase_folds_to_false_branch(build):
    gd, names = _tiny(build)
    out, notes = fold_learning_phase(gd, "tiny.pb")
    assert not CONTROL_FLOW & {n.op for n in out.node} and [n.name for n in out.node if n.op == "Placeholder"] == ["x"]
    x = np.arange(6, dtype=np.float32).reshape(2, 3) - 2.5
    want = _run(gd, names["out"], {"x:0": x, names["phase"]: False})
    np.testing.assert_array_equal(_run(out, names["out"], {"x:0": x}), want)
    assert not np.array_equal(_run(gd, names["out"], {"x:0": x, names["phase"]: True}), want)


def _switch_on_data(tf, x):
    f, t = tf.raw_ops.Switch(data=x, pred=tf.compat.v1.placeholder_with_default(False, (), name="lp"))
    m, _ = tf.raw_ops.Merge(inputs=[f * 2.0, t * 3.0])
    f2, t2 = tf.raw_ops.Switch(data=m, pred=tf.reduce_sum(m) > 0, name="data_switch")
    tf.raw_ops.Merge(inputs=[f2 + 1.0, t2 - 1.0], name="out")
    return {"mentions": "Switch 'data_switch'"}


def _if_on_data(tf, x):
    lp = tf.compat.v1.placeholder_with_default(False, (), name="lp")
    y = tf.cond(lp, lambda: x * 3.0, lambda: x * 2.0)
    out = tf.cond(tf.reduce_sum(y) > 0, lambda: y + 1.0, lambda: y - 1.0, name="data_cond")
    return {"mentions": f"If '{out.op.inputs[0].op.name}'"}


def _two_phases(tf, x):
    a = tf.compat.v1.placeholder_with_default(False, (), name="lp_a")
    b = tf.compat.v1.placeholder(tf.bool, (), name="lp_b")
    f, t = tf.raw_ops.Switch(data=x, pred=a)
    f2, t2 = tf.raw_ops.Switch(data=x, pred=b)
    tf.raw_ops.Merge(inputs=[f + f2, t + t2], name="out")
    return {"mentions": "cannot tell which is the learning phase"}


REFUSED = {"switch-on-data": _switch_on_data, "if-on-data": _if_on_data, "two-learning-phases": _two_phases}


@pytest.mark.parametrize("build", list(REFUSED.values()), ids=list(REFUSED))
def test_control_flow_not_steered_by_learning_phase_is_refused(build):
    gd, names = _tiny(build)
    with pytest.raises(TfportError) as err:
        fold_learning_phase(gd, "tiny.pb")
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith("tiny.pb: ") and names["mentions"] in msg, msg
