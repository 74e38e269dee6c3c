"""tf2onnx run with its dropped graph copies collected between optimizer passes, and left as found."""

import gc

import pytest

from convert.compat.tf2onnx import collect_between_optimizers


def test_collect_between_optimizers_frees_copies_and_restores_tf2onnx():
    from tf2onnx import optimizer

    before = dict(optimizer._optimizers)
    freed = []
    with collect_between_optimizers():
        assert gc.get_freeze_count() > 0  # what lived before is out of the collector's way
        assert all(optimizer._optimizers[k] is not before[k] for k in before)

        class Cycle:  # a dropped graph copy: garbage only a full collection finds
            def __init__(self):
                self.me = self

            def __del__(self):
                freed.append(1)

        Cycle()
        gc.disable()  # only the wrapper's own collection may free it
        try:
            next(iter(optimizer._optimizers.values()))()
        finally:
            gc.enable()
        assert freed, "the optimizer factory ran without collecting the dropped copies first"
    assert optimizer._optimizers == before
    assert gc.get_freeze_count() == 0


def test_restores_tf2onnx_when_conversion_fails():
    from tf2onnx import optimizer

    before = dict(optimizer._optimizers)
    with pytest.raises(RuntimeError), collect_between_optimizers():
        raise RuntimeError("tf2onnx failed")
    assert optimizer._optimizers == before and gc.get_freeze_count() == 0


@pytest.fixture(scope="module")
def small_graph():
    """A frozen tf_keras MobileNetV2 (alpha 0.35, 32 px, pooled features): (GraphDef, input, output)."""
    import tf_keras

    from convert.sample import frozen_graph_def

    tf_keras.utils.set_random_seed(0)
    net = tf_keras.applications.MobileNetV2(input_shape=(32, 32, 3), alpha=0.35, weights=None, include_top=False,
                                            pooling="avg")
    gd = frozen_graph_def(net)
    inputs = [n.name for n in gd.node if n.op == "Placeholder"]
    return gd, inputs[0] + ":0", gd.node[-1].name + ":0"


# where tf2onnx may differ between runs of the same conversion without any change in what is computed: its
# copy-per-pass default once left an extra Squeeze and Reshape in this suite (CI, stop 36)
SHAPE_OPS = frozenset({"Reshape", "Squeeze", "Unsqueeze", "Transpose", "Identity", "Flatten"})


def _assert_same_function(got, want):
    """The same compute ops (every Conv, BatchNormalization, Clip, Add...; shape plumbing aside) and ONNX Runtime's
    output equal to float32 rounding."""
    from collections import Counter

    import numpy as np

    assert Counter(o for o in got[0] if o not in SHAPE_OPS) == Counter(o for o in want[0] if o not in SHAPE_OPS)
    np.testing.assert_allclose(got[2], want[2], rtol=1e-6, atol=1e-6 * float(np.abs(want[2]).max()))


def _what_runs(model):
    """What an ONNX model computes, independent of the names tf2onnx numbers per process: its op sequence,
    its initializers' bytes, and ONNX Runtime's output on a seeded input."""
    import numpy as np
    import onnxruntime as ort

    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (inp,) = sess.get_inputs()
    x = np.random.default_rng(0).uniform(-1, 1, (2, *inp.shape[1:])).astype(np.float32)
    return ([n.op_type for n in model.graph.node], sorted(t.raw_data for t in model.graph.initializer),
            sess.run(None, {inp.name: x})[0])


def test_passes_in_place_give_tf2onnxs_own_result_and_leave_it_as_found(small_graph):
    """The passes run on the graph itself (no copy per pass) give what tf2onnx's default, a copy per pass,
    gives; the optimizer table and TF2ONNX_CATCH_ERRORS are as found afterwards."""
    import os

    from tf2onnx import optimizer

    from convert.compat.tf2onnx import optimizers_in_place
    from convert.paths.onnx.export import tf_to_onnx

    gd, inp, out = small_graph
    before = dict(optimizer._optimizers)
    with optimizers_in_place():
        assert os.environ["TF2ONNX_CATCH_ERRORS"] == "FALSE"
    assert optimizer._optimizers == before and "TF2ONNX_CATCH_ERRORS" not in os.environ
    in_place = _what_runs(tf_to_onnx(gd, inp, out))
    with collect_between_optimizers():  # tf2onnx's default way, as before optimizers_in_place
        from convert.compat.tf2onnx import convert_frozen, keep_batchnorm

        with keep_batchnorm():
            copied = _what_runs(_frozen_and_converted(gd, inp, out, convert_frozen))
    _assert_same_function(in_place, copied)


def _frozen_and_converted(gd, inp, out, convert_frozen):
    import tensorflow as tf
    from tf2onnx import tf_loader

    with tf.Graph().as_default() as g, tf_loader.tf_session(graph=g):
        tf.import_graph_def(gd, name="")
        frozen = tf_loader.tf_optimize([inp], [out], gd)
    return convert_frozen(frozen, name="tfport", opset=17, input_names=[inp], output_names=[out])


def test_a_failing_pass_runs_the_conversion_again_the_default_way(small_graph):
    """A pass that raises in place leaves a half-rewritten graph: the conversion runs again with tf2onnx's
    copies, where that pass is skipped, and gives the same model as without the failing pass."""
    from tf2onnx import optimizer

    from convert.paths.onnx.export import tf_to_onnx

    gd, inp, out = small_graph
    calls = []

    class Boom:
        graph_been_opt = False

        def optimize(self, graph, iteration):
            calls.append(iteration)
            graph.remove_node(graph.get_nodes()[0].name)  # half a rewrite, then a failure
            raise RuntimeError("boom")

    clean = _what_runs(tf_to_onnx(gd, inp, out))
    optimizer._optimizers["boom"] = Boom
    try:
        got = _what_runs(tf_to_onnx(gd, inp, out))
    finally:
        del optimizer._optimizers["boom"]
    assert calls[:2] == [0, 0]  # in place, failing in the first iteration; then again from the start, on copies
    _assert_same_function(got, clean)
    assert got[0].count("BatchNormalization") == 52  # the copies' run keeps BN unfused too
