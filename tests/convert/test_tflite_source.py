"""TFLite float32 flatbuffers as a source: detection by content, the folded-BN walk, the reference runner,
tf2onnx's TFLite front end, and the files refused (quantized, truncated, not a MobileNetV2).

Every file is written by the real TFLiteConverter from one seeded tf_keras MobileNetV2 (alpha 0.35, 96x96)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from convert.model.spec import TF_DEFAULT_BN_EPS, BNSpec, ConvSpec, DenseSpec
from convert.paths.onnx.tflite import tflite_to_onnx
from convert.readers.tflite import conv_pads, detect, read_tflite
from convert.runners.tflite import TFLiteRunner
from convert.runtime.errors import TfportError
from tests.zoo.tflite_writer import sample_images, tflite_bytes, write_tflite

SIZE = 96
REL_TOL = 1e-5


@dataclass(frozen=True)
class Zoo:
    root: Path
    x: np.ndarray  # probe images, NHWC in [-1, 1]
    keras_out: np.ndarray  # the Keras model's outputs on x
    model: object  # the tf_keras model every file came from

    def __getitem__(self, name: str) -> Path:
        return self.root / name


def _graph_def_bytes() -> bytes:
    import tensorflow as tf

    fn = tf.function(lambda x: x * 2.0).get_concrete_function(tf.TensorSpec([1, 4], tf.float32))
    return fn.graph.as_graph_def().SerializeToString()


def _tiny_cnn():
    """A conv net with one depthwise conv and no residual adds: a TFLite file that is not a MobileNetV2."""
    import tf_keras

    tf_keras.utils.set_random_seed(3)
    return tf_keras.Sequential([
        tf_keras.Input((32, 32, 3)),
        tf_keras.layers.Conv2D(8, 3, strides=2, padding="same"),
        tf_keras.layers.DepthwiseConv2D(3, padding="same"),
        tf_keras.layers.ReLU(6.0),
        tf_keras.layers.GlobalAveragePooling2D(),
        tf_keras.layers.Dense(4),
    ])


@pytest.fixture(scope="session")
def zoo(tmp_path_factory) -> Zoo:
    root = tmp_path_factory.mktemp("tflite")
    x = sample_images(8, SIZE, seed=5)
    written = write_tflite(root / "mnv2.tflite", size=SIZE, inputs=x)
    write_tflite(root / "mnv2_int8.tflite", size=SIZE, quantize=True, model=written.model)
    data = written.path.read_bytes()
    (root / "mnv2.bin").write_bytes(data)  # renamed: detection must not care
    (root / "truncated.tflite").write_bytes(data[: len(data) // 2])
    (root / "short.tflite").write_bytes(data[:4])
    pb = _graph_def_bytes()
    (root / "graph.pb").write_bytes(pb)
    (root / "graph_pb.tflite").write_bytes(pb)  # a GraphDef with a TFLite name
    (root / "tiny_cnn.tflite").write_bytes(tflite_bytes(_tiny_cnn()))
    return Zoo(root, x, written.outputs, written.model)


@pytest.fixture(scope="session")
def read(zoo):
    return read_tflite(zoo["mnv2.tflite"], "mnv2.tflite")


@pytest.fixture(scope="session")
def fetched(zoo, read) -> dict[str, np.ndarray]:
    """The output and every tap, fetched by TFLite tensor name in one TFLiteRunner pass."""
    spec, info = read
    names = [info.output] + sorted({t for taps in spec.taps.values() for t in taps.values()})
    runner = TFLiteRunner(zoo["mnv2.tflite"])
    try:
        return dict(zip(names, runner.run(zoo.x, names), strict=True))
    finally:
        runner.close()


@pytest.fixture(scope="session")
def onnx_model(zoo):
    return tflite_to_onnx(zoo["mnv2.tflite"])


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / np.abs(b).max())


# --- detection ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "expected"), [
    ("mnv2.tflite", True),
    ("mnv2.bin", True),
    ("truncated.tflite", True),  # the header is intact: detection says TFLite, reading refuses it
    ("graph.pb", False),
    ("graph_pb.tflite", False),
    ("short.tflite", False),
    ("missing.tflite", False),
], ids=["tflite", "renamed-bin", "truncated-header-intact", "graph-pb", "pb-named-tflite", "4-bytes", "missing"])
def test_detect_by_content(zoo, name, expected):
    assert detect(zoo[name]) is expected


# --- the walk ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("kind", "expected"), [("all", 52), ("conv", 35), ("depthwise", 17)],
                         ids=["all", "conv", "depthwise"])
def test_conv_census(read, kind, expected):
    convs = read[0].convs
    depthwise = sum(c.depthwise for c in convs)
    assert {"all": len(convs), "conv": len(convs) - depthwise, "depthwise": depthwise}[kind] == expected


def test_every_conv_is_followed_by_its_folded_bn(read):
    spec, _ = read
    body = spec.layers[:-1]
    assert isinstance(spec.layers[-1], DenseSpec) and spec.layers[-1].weight.shape == (1000, 1280)
    assert {(type(a), type(b)) for a, b in zip(body[0::2], body[1::2], strict=True)} == {(ConvSpec, BNSpec)}
    bns = spec.bns
    assert all(bn.folded and bn.eps == TF_DEFAULT_BN_EPS for bn in bns)
    np.testing.assert_allclose(np.concatenate([bn.gamma for bn in bns]), np.sqrt(1 + TF_DEFAULT_BN_EPS), rtol=1e-7)
    assert not np.concatenate([bn.mean for bn in bns]).any()
    assert (np.concatenate([bn.var for bn in bns]) == 1).all()


@pytest.mark.parametrize(("conv_index", "conv", "bn"), [
    (0, "Conv1", "bn_Conv1"),
    (1, "expanded_conv_depthwise", "expanded_conv_depthwise_BN"),
    (50, "block_16_project", "block_16_project_BN"),
    (51, "Conv_1", "Conv_1_bn"),
], ids=["first-conv", "depthwise", "project", "last-conv"])
def test_folded_weights_match_keras(zoo, read, conv_index, conv, bn):
    """TFLite's folding, read back into PyTorch layouts, equals Keras's kernel x gamma / sqrt(var + eps)."""
    spec, _ = read
    layer = zoo.model.get_layer(bn)
    g, b, m, v = (np.asarray(w, np.float64) for w in layer.get_weights())
    scale = g / np.sqrt(v + layer.epsilon)
    kernel = np.asarray(zoo.model.get_layer(conv).get_weights()[0], np.float64)
    if conv_index == 1:  # depthwise (kH, kW, C, 1) -> (C, 1, kH, kW)
        expected = kernel.transpose(2, 3, 0, 1) * scale[:, None, None, None]
    else:  # HWIO -> OIHW
        expected = kernel.transpose(3, 2, 0, 1) * scale[:, None, None, None]
    position = spec.layers.index(spec.convs[conv_index])
    np.testing.assert_allclose(spec.layers[position].weight, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(spec.layers[position + 1].beta, b - m * scale, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("conv_index", "pads", "stride", "same"), [
    (0, (0, 1, 0, 1), 2, True),  # 96 -> 48: TF SAME puts the extra pixel after
    (1, (1, 1, 1, 1), 1, True),
    (4, (0, 1, 0, 1), 2, True),  # Keras ZeroPadding2D + VALID, folded by the converter into SAME
    (51, (0, 0, 0, 0), 1, False),  # the last 1x1 conv is VALID in the file
], ids=["Conv1-s2", "depthwise-s1", "block_1_depthwise-pad-folded", "Conv_1-1x1-valid"])
def test_padding(read, conv_index, pads, stride, same):
    c = read[0].convs[conv_index]
    assert (c.pads, c.stride, c.same) == (pads, stride, same)


@pytest.mark.parametrize(("padding", "size", "kernel", "stride", "explicit", "expected"), [
    (0, (96, 96), (3, 3), 2, None, ((0, 1, 0, 1), True)),
    (0, (7, 7), (1, 1), 1, None, ((0, 0, 0, 0), True)),
    (1, (97, 97), (3, 3), 2, (0, 1, 0, 1), ((0, 1, 0, 1), False)),
    (1, (48, 48), (3, 3), 1, None, ((0, 0, 0, 0), False)),
    (0, (50, 50), (3, 3), 1, (1, 1, 1, 1), ((2, 2, 2, 2), False)),
], ids=["same-s2", "same-1x1", "pad-then-valid", "valid", "pad-then-same-adds"])
def test_conv_pads(padding, size, kernel, stride, explicit, expected):
    assert conv_pads(padding, size, kernel, stride, explicit) == expected


def test_info(read):
    spec, info = read
    assert info.input_shape == (None, SIZE, SIZE, 3) and spec.input_shape == (SIZE, SIZE, 3)
    assert info.pooled is not None and "global_average_pooling2d" in info.pooled
    assert info.logits == spec.taps[len(spec.layers) - 1][""]
    assert spec.origin == "tflite"


@pytest.mark.parametrize(("suffix", "expected"), [(":act", 35), (":bn", 17), (":out", 10), ("", 1)],
                         ids=["act-fused-relu6", "bn-project", "out-residual", "dense"])
def test_tap_census(read, suffix, expected):
    """ReLU6 is fused into 35 convs (no ':bn' there), 17 projections have ':bn', 10 of them a residual ADD."""
    assert sum(suffix in taps for taps in read[0].taps.values()) == expected


# --- the reference runner ----------------------------------------------------------------------------
def test_runner_matches_keras(zoo, read, fetched):
    assert _rel(fetched[read[1].output], zoo.keras_out) <= REL_TOL


def test_taps_are_readable_with_the_layers_channels(read, fetched):
    spec, _ = read
    channels = {i: (layer.weight.shape[0] if isinstance(layer, DenseSpec) else layer.beta.shape[0])
                for i, layer in enumerate(spec.layers) if i in spec.taps}
    wrong = [(i, s, fetched[t].shape) for i, taps in spec.taps.items() for s, t in taps.items()
             if fetched[t].shape[0] != 8 or fetched[t].shape[-1] != channels[i]]
    assert wrong == []


def _conv_nhwc(x: np.ndarray, w: np.ndarray, stride: int, pads: tuple[int, int, int, int]) -> np.ndarray:
    """A plain conv (float64): NHWC input, OIHW weight, explicit pads (top, bottom, left, right)."""
    xp = np.pad(x.astype(np.float64), ((0, 0), pads[:2], pads[2:], (0, 0)))
    kh, kw = w.shape[2:]
    oh, ow = (xp.shape[1] - kh) // stride + 1, (xp.shape[2] - kw) // stride + 1
    taps = ((xp[:, i : i + stride * oh : stride, j : j + stride * ow : stride], w[:, :, i, j])
            for i in range(kh) for j in range(kw))
    return sum(np.einsum("nhwc,oc->nhwo", patch, k) for patch, k in taps)


def _first_act_numpy(zoo, spec) -> np.ndarray:
    conv, bn = spec.layers[0], spec.layers[1]
    y = _conv_nhwc(zoo.x, conv.weight.astype(np.float64), conv.stride, conv.pads)
    y = (y - bn.mean) / np.sqrt(bn.var.astype(np.float64) + bn.eps) * bn.gamma + bn.beta
    return np.clip(y, 0, 6)


def _first_act_keras(zoo, spec) -> np.ndarray:
    import tf_keras

    m = zoo.model
    return np.asarray(tf_keras.Model(m.input, m.get_layer("Conv1_relu").output)(zoo.x, training=False))


@pytest.mark.parametrize("reference", [_first_act_numpy, _first_act_keras], ids=["numpy-from-spec", "keras-Conv1_relu"])
def test_first_act_tap_is_relu6_of_the_first_conv(zoo, read, fetched, reference):
    spec, _ = read
    assert ":bn" not in spec.taps[1]
    act = fetched[spec.taps[1][":act"]]
    assert act.min() >= 0 and act.max() <= 6 and (act == 0).any()
    assert _rel(act, reference(zoo, spec)) <= REL_TOL


# --- tf2onnx's TFLite front end ----------------------------------------------------------------------
def test_onnx_matches_tflite(zoo, read, fetched, onnx_model):
    from convert.runners.onnx import OrtRunner

    (out,) = OrtRunner(onnx_model.SerializeToString()).run(zoo.x, [read[1].output])
    assert _rel(out, fetched[read[1].output]) <= REL_TOL


@pytest.mark.parametrize(("op", "expected"), [("Conv", 52), ("Clip", 35), ("BatchNormalization", 0), ("Transpose", 1)],
                         ids=["conv", "clip-relu6", "no-bn", "one-input-transpose"])
def test_onnx_census(onnx_model, op, expected):
    assert Counter(n.op_type for n in onnx_model.graph.node)[op] == expected


def test_onnx_convs_carry_the_folded_bias(onnx_model):
    assert {len(n.input) for n in onnx_model.graph.node if n.op_type == "Conv"} == {3}


# --- refused files -----------------------------------------------------------------------------------
def _read(path: Path) -> None:
    read_tflite(path, path.name)


def _run(path: Path) -> None:
    TFLiteRunner(path).run(np.zeros((1, SIZE, SIZE, 3), np.float32), [])


@pytest.mark.parametrize("entry", [_read, _run], ids=["read_tflite", "TFLiteRunner"])
def test_quantized_is_refused(zoo, entry):
    with pytest.raises(TfportError, match="quantized"):
        entry(zoo["mnv2_int8.tflite"])


@pytest.mark.parametrize("entry", [_read, _run], ids=["read_tflite", "TFLiteRunner"])
@pytest.mark.parametrize(("name", "says"), [
    ("truncated.tflite", "corrupt or truncated"),
    ("short.tflite", "not a TFLite flatbuffer"),
    ("graph_pb.tflite", "not a TFLite flatbuffer"),
], ids=["first-half", "4-bytes", "graphdef"])
def test_corrupt_is_refused(zoo, entry, name, says):
    with pytest.raises(TfportError, match=says):
        entry(zoo[name])


def test_other_architecture_is_refused(zoo):
    """Refused naming every registered architecture (the list grows as architectures register) and what
    the file has."""
    from convert.arch.registry import ARCHITECTURES

    titles = " or ".join(a.title for a in ARCHITECTURES.values())
    with pytest.raises(TfportError, match=f"not a {titles}: found 1 CONV_2D, 1 DEPTHWISE_CONV_2D") as e:
        _read(zoo["tiny_cnn.tflite"])
    assert "MobileNet v1-like" in str(e.value)


@pytest.mark.exhaustive  # ~40 s: from_keras_model saves the whole Keras model first
@pytest.mark.parametrize("quantize", [False, True], ids=["float32", "int8"])
def test_the_writers_route_writes_what_from_keras_model_writes(zoo, quantize):
    """tests/zoo/tflite_writer.tflite_bytes hands the converter the model's forward, not the Keras model: the
    same flatbuffer, byte for byte, as TFLiteConverter.from_keras_model, but for the converter's record of the
    API it was called through (the CONVERSION_METADATA buffer: one byte differs)."""
    from tests.zoo.tflite_writer import tflite_bytes

    ours = tflite_bytes(zoo.model, quantize=quantize)
    keras = tflite_bytes(zoo.model, quantize=quantize, keras_route=True)
    assert ours != keras and _without_conversion_metadata(ours) == _without_conversion_metadata(keras)


def _without_conversion_metadata(data: bytes) -> bytes:
    from tensorflow.lite.python import schema_py_generated as fb

    model = fb.Model.GetRootAs(data, 0)
    out = bytearray(data)
    for i in range(model.MetadataLength()):
        if model.Metadata(i).Name() == b"CONVERSION_METADATA":
            buf = model.Buffers(model.Metadata(i).Buffer())
            start = buf._tab.Vector(buf._tab.Offset(4))
            out[start:start + buf.DataLength()] = bytes(buf.DataLength())
    return bytes(out)
