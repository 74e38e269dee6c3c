"""`python -m convert sample`: what each form is (README "python -m convert"), its BN statistics, what
scripts/demo converts. The forms are the session's samples (tests/conftest.py), read, not regenerated."""

from __future__ import annotations

import json
import re
import zipfile
from collections import Counter

import numpy as np
import pytest

from tests.conftest import ROOT


def _graph(path):
    import tensorflow as tf

    gd = tf.compat.v1.GraphDef()
    gd.ParseFromString(path.read_bytes())
    return gd


def _strided_padding(gd, ops=("Conv2D", "DepthwiseConv2dNative")) -> set[str]:
    return {n.attr["padding"].s.decode() for n in gd.node if n.op in ops and list(n.attr["strides"].list.i)[1] == 2}


def test_slim_pb_is_a_slim_style_frozen_graph(samples):
    gd = _graph(samples.get("slim_pb", 1.0, (96, 96)))
    ops = Counter(n.op for n in gd.node)
    assert ops["FusedBatchNormV3"] == 52 and ops["Relu6"] == 35 and "Pad" not in ops
    compute = [n.name for n in gd.node if n.op in ("Conv2D", "DepthwiseConv2dNative", "FusedBatchNormV3", "Relu6")]
    assert all(name.startswith("MobilenetV2/") for name in compute), compute[:3]
    assert _strided_padding(gd) == {"SAME"}


def test_keras2_pb_pads_explicitly_then_convolves_valid(samples):
    gd = _graph(samples.get("keras2_pb", 1.0, (96, 96)))
    ops = Counter(n.op for n in gd.node)
    assert ops["FusedBatchNormV3"] == 52 and ops["Pad"] == 4  # ZeroPadding2D before each stride-2 depthwise conv
    assert _strided_padding(gd, ("DepthwiseConv2dNative",)) == {"VALID"}
    assert _strided_padding(gd, ("Conv2D",)) == {"SAME"}  # Keras's first conv (Conv1) pads SAME itself


def test_keras_files_are_written_by_the_keras_they_name(samples):
    import h5py

    with h5py.File(samples.get("keras2_h5", 1.0, (96, 96)), "r") as f:
        assert str(f.attrs["keras_version"]).startswith("2.")  # tf_keras
    with zipfile.ZipFile(samples.get("keras3", 1.0, (96, 96))) as z:
        assert json.loads(z.read("metadata.json"))["keras_version"].startswith("3.")
        assert "config.json" in z.namelist()
    saved = samples.get("savedmodel", 1.0, (96, 96))
    assert (saved / "saved_model.pb").is_file() and (saved / "keras_metadata.pb").is_file()  # tf_keras's SavedModel


def test_transfer_h5_nests_the_base_then_gap_dropout_dense_softmax(samples):
    from convert.sources.keras_files import h5_config

    _, config = h5_config(samples.get("transfer_h5", 1.0, (96, 96)))
    layers = config["config"]["layers"]
    classes = [layer["class_name"] for layer in layers]
    assert classes[1] in ("Functional", "Model") and classes[2:] == ["GlobalAveragePooling2D", "Dropout", "Dense"]
    assert layers[-1]["config"]["activation"] == "softmax"


def test_bn_statistics_are_not_trivial():
    """gamma/beta drawn away from 1/0; the moving statistics are what a train-mode pass over images measures:
    the first BN's moving variance against the batch variance of its convolution on fresh images (its
    channel means are ~0 on zero-mean inputs, so the variances carry the evidence)."""
    import tf_keras

    from convert.model.probe import probe_inputs
    from convert.sample import SampleSpec, keras2_model

    model = keras2_model(SampleSpec(alpha=0.35, size=(32, 32)))  # the smallest input size `sample` takes
    bns = [x for x in model.layers if isinstance(x, tf_keras.layers.BatchNormalization)]
    assert len(bns) == 52
    for bn in bns:
        g, b, m, v = (np.asarray(w) for w in bn.get_weights())
        assert 0.6 <= g.min() and g.max() <= 1.4 and np.abs(g - 1).mean() > 0.1
        assert np.abs(b).mean() > 0.05
        assert np.abs(m).max() > 1e-3 and np.abs(v - 1).max() > 1e-2  # not Keras's initial (0, 1)
    conv = tf_keras.Model(model.input, model.get_layer("Conv1").output)
    y = np.asarray(conv(probe_inputs(64, (32, 32), seed=9)), np.float64)
    batch_mean, batch_var = y.mean(axis=(0, 1, 2)), y.var(axis=(0, 1, 2))
    _, _, m, v = (np.asarray(w, np.float64) for w in model.get_layer("bn_Conv1").get_weights())
    assert np.abs(m - batch_mean).max() < 0.25  # 16 images' means, plus the documented N(0, 0.05) noise
    assert np.corrcoef(batch_var, v)[0, 1] > 0.9  # measured 0.96
    assert np.median(v / batch_var) == pytest.approx(1.0, abs=0.25)  # measured 1.04


def test_alphas_and_sizes():
    """README: alpha in {0.35, 0.5, 0.75, 1.0, 1.3, 1.4}; any input size >= 32, square or not."""
    from convert.arch.mobilenet_v2 import ALPHAS
    from convert.cli import parse_size

    assert ALPHAS == (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)
    assert parse_size("32") == (32, 32) and parse_size("128x192") == (128, 192)
    # below 32 and other alphas: tests/convert/test_args.py (exit 2 before any work)


def test_demo_converts_what_sample_writes_by_default(samples):
    """scripts/demo: `convert sample --forms slim_pb` with the defaults (alpha 1.0, 224), then `tf2torch` of the
    file that writes (the session's slim sample at 1.0/224 is that very file)."""
    from convert.cli import build_parser

    demo = (ROOT / "scripts" / "demo").read_text()
    assert re.search(r'-m convert sample "\$OUT/samples" --forms slim_pb\n', demo)
    (converted,) = re.findall(r'-m convert tf2torch "\$OUT"/samples/(\S+) ', demo)
    args = build_parser().parse_args(["sample", "out", "--forms", "slim_pb"])
    assert (args.alpha, args.size) == (1.0, (224, 224))
    assert samples.get("slim_pb", 1.0, (224, 224)).name == converted
