"""TF's values fetched in parts, each op run once (convert/runners/tf_parts.py): the same values as one
run fetching everything, no op of the network run twice over the parts, and a graph with control flow
(or a part fetched again out of order) run from its input instead."""

from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from convert.readers.tf_graph import GraphInfo  # noqa: E402
from convert.runners.tf import TFRunner  # noqa: E402
from convert.runners.tf_parts import PartFetcher, plan_parts  # noqa: E402


def _graph(cond: bool = False, eval_bn: bool = False):
    """A residual network in miniature: conv → train-mode fused BN → relu (a); conv (b); a + b (c); conv (d)."""
    g = tf.Graph()
    rng = np.random.default_rng(0)
    with g.as_default():
        x = tf.compat.v1.placeholder(tf.float32, (None, 8, 8, 3), name="input")
        w1 = tf.constant(rng.standard_normal((3, 3, 3, 4)).astype(np.float32))
        y = tf.nn.conv2d(x, w1, 1, "SAME", name="conv1")
        stats = {"mean": tf.fill([4], 0.5), "variance": tf.fill([4], 2.0)} if eval_bn else {}
        y, _, _ = tf.compat.v1.nn.fused_batch_norm(y, tf.ones(4), tf.zeros(4), is_training=not eval_bn, name="bn1",
                                                   **stats)
        a = tf.nn.relu(y, name="a")
        if cond:
            flag = tf.compat.v1.placeholder_with_default(False, (), name="learning_phase")
            off, on = tf.raw_ops.Switch(data=a, pred=flag, name="switch")  # a TF1 learning-phase switch
            a = tf.raw_ops.Merge(inputs=[off, on * 2.0], name="merge")[0]
        w2 = tf.constant(rng.standard_normal((3, 3, 4, 4)).astype(np.float32))
        b = tf.nn.conv2d(a, w2, 1, "SAME", name="b")
        c = tf.add(a, b, name="c")
        w3 = tf.constant(rng.standard_normal((1, 1, 4, 2)).astype(np.float32))
        tf.nn.conv2d(c, w3, 1, "SAME", name="d")
    return g.as_graph_def()


def _runner(gd) -> TFRunner:
    return TFRunner(gd, GraphInfo(input="input:0", pooled=None, logits=None, output="d:0", input_shape=(None, 8, 8, 3)))


def _ran(runner, fetches, feed) -> set[str]:
    """The ops one session.run executed (TF's own step stats)."""
    meta = tf.compat.v1.RunMetadata()
    opts = tf.compat.v1.RunOptions(trace_level=tf.compat.v1.RunOptions.FULL_TRACE)
    runner.sess.run(fetches, feed, options=opts, run_metadata=meta)
    return {n.node_name for d in meta.step_stats.dev_stats for n in d.node_stats}


PARTS = [["a:0"], ["b:0"], ["d:0"]]


def test_parts_equal_one_run_and_each_op_runs_once():
    runner = _runner(_graph())
    x = np.random.default_rng(1).standard_normal((4, 8, 8, 3)).astype(np.float32)
    whole = runner.run(x, [t for p in PARTS for t in p], maps=True)
    fetcher = PartFetcher(runner, PARTS)
    parts = [fetcher.run(x, p, maps=True)[0] for p in PARTS]
    for got, want in zip(parts, whole, strict=True):
        np.testing.assert_array_equal(got, want)  # fed tensors are the graph's own values: bit for bit
    steps = fetcher.steps
    assert steps is not None
    assert steps[0].keep == ("a:0",) and steps[1].feed == ("a:0",)  # b reads a; c reads a and b
    assert steps[2].feed == ("a:0", "b:0") and steps[1].keep == ("b:0",)
    # the ops each step runs, as TF reports them: conv1 and the BN once over all parts
    cache: dict = {}
    ran = []
    for s in steps:
        feed = {"input:0": x, **{t: cache[t] for t in s.feed}}
        ran.append(_ran(runner, [*s.fetch, *(t for t in s.keep if t not in s.fetch)], feed))
        cache.update(zip(s.keep, runner.sess.run(list(s.keep), feed), strict=True))
    for op in ("conv1", "bn1", "a", "b"):
        assert sum(op in r for r in ran) == 1, (op, ran)
    # run from the input each time (what parity did before): the first conv runs in every part
    assert all("conv1" in _ran(runner, p, {"input:0": x}) for p in PARTS)
    assert not fetcher.cache  # nothing is held once the last part is fetched


def test_control_flow_in_the_data_path_runs_each_part_from_the_input():
    gd = _graph(cond=True)
    runner = _runner(gd)
    assert plan_parts(runner.graph, "input:0", PARTS) is None  # a Switch's untaken output cannot be fetched
    x = np.random.default_rng(2).standard_normal((2, 8, 8, 3)).astype(np.float32)
    whole = runner.run(x, ["a:0", "b:0", "d:0"], maps=True)
    fetcher = PartFetcher(runner, PARTS)
    for p, want in zip(PARTS, whole, strict=True):
        np.testing.assert_array_equal(fetcher.run(x, p, maps=True)[0], want)


def test_a_part_fetched_again_out_of_order_is_run_from_the_input():
    runner = _runner(_graph())
    x = np.random.default_rng(3).standard_normal((3, 8, 8, 3)).astype(np.float32)
    whole = dict(zip(["a:0", "b:0", "d:0"], runner.run(x, ["a:0", "b:0", "d:0"], maps=True), strict=True))
    fetcher = PartFetcher(runner, PARTS)
    for p in (PARTS[0], PARTS[1], PARTS[0], PARTS[2], PARTS[1], PARTS[2]):
        np.testing.assert_array_equal(fetcher.run(x, p, maps=True)[0], whole[p[0]])
    # an unplanned fetch set is the runner's own run
    np.testing.assert_array_equal(fetcher.run(x, ["c:0"])[0], runner.run(x, ["c:0"])[0])


def _train_mode(node) -> None:
    if node.op.startswith("FusedBatchNorm"):
        node.attr["is_training"].b = True


def test_a_variant_shares_the_weights_and_computes_what_its_own_graph_does():
    """TFRunner.import_variant: parity's train-mode graph, added to the eval runner's graph and session (its
    BNs edited, its weights the eval graph's own), equals the same edit imported as a graph of its own."""
    gd = _graph(eval_bn=True)  # the BN in eval mode, with statistics, as a frozen source holds it
    runner = _runner(gd)
    consts = sum(op.type == "Const" for op in runner.graph.get_operations())
    imported = runner.import_variant(gd, "train", _train_mode)
    assert {"conv1", "bn1", "a", "b", "c", "d"} <= imported and "input" not in imported
    assert sum(op.type == "Const" for op in runner.graph.get_operations()) == consts  # no second copy
    assert not any(n.node_def.attr["is_training"].b for n in runner.graph.get_operations()
                   if n.type.startswith("FusedBatchNorm") and not n.name.startswith("train/"))  # eval kept
    own = tf.compat.v1.GraphDef()
    own.CopyFrom(gd)
    for node in own.node:
        _train_mode(node)
    x = np.random.default_rng(4).uniform(-1, 1, (4, 8, 8, 3)).astype(np.float32)
    want = _runner(own).run(x, ["a:0", "d:0"], maps=True)
    got = runner.run(x, ["train/a:0", "train/d:0"], maps=True)
    evaluated = runner.run(x, ["a:0"], maps=True)[0]
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-6)
    assert np.abs(evaluated - want[0]).max() > 1e-2  # eval and train mode differ: the edit took


def test_fresh_session_drops_the_old_one_and_runs_the_same_graph():
    """parity's train stage opens a fresh session on the eval runner's graph (its eval executor, with its own
    copy of every constant, goes first): the old session is closed, the graph is the same, values equal."""
    runner = _runner(_graph(eval_bn=True))
    x = np.random.default_rng(2).standard_normal((3, 8, 8, 3)).astype(np.float32)
    before = runner.run(x, ["d:0", "a:0"], maps=True)
    old, graph = runner.sess, runner.graph
    runner.fresh_session()
    assert runner.sess is not old and runner.graph is graph and old._closed
    with pytest.raises(RuntimeError):
        old.run("d:0", {"input:0": x})
    for a, b in zip(before, runner.run(x, ["d:0", "a:0"], maps=True), strict=True):
        np.testing.assert_array_equal(a, b)
    runner.close()
