"""The Python API as a notebook calls it (README "Python API"): a model built in memory and passed as an
object — never saved by the caller — to `convert.tf2torch`, whose Port reproduces it; `parity.check(port,
model)` truthy, one line as text, its `_repr_html_` the `--html` page rendered in headless Chromium; code in
the model refused unless trusted; bad input one TfportError line."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

from tests.parity.test_report import GREEN, render_in_browser
from tests.zoo.keras_models import calibrate, keras_module, serving_module

SIZE, ALPHA = 96, 0.35
REL = 1e-5  # README: the port reproduces its source's output within 1e-5 relative
SHOTS = Path(__file__).resolve().parent / "output"  # the rendered reports, beside the test output, to look at


def mobilenet(version: str, seed: int = 0):
    """A small feature extractor with non-trivial BN statistics, as a user holds it after training."""
    K = keras_module(version)
    model = K.applications.MobileNetV2(alpha=ALPHA, input_shape=(SIZE, SIZE, 3), weights=None, include_top=False,
                                       pooling="avg")
    calibrate(model, SIZE, (-1.0, 1.0), seed)
    return model


def probes(n: int = 4, lo: float = -1.0, hi: float = 1.0) -> np.ndarray:
    return np.random.default_rng(7).uniform(lo, hi, (n, SIZE, SIZE, 3)).astype(np.float32)


def relative_error(port, model, x: np.ndarray) -> float:
    import torch

    ref = np.asarray(model(x, training=False))
    with torch.no_grad():
        out = port.module(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy()
    assert out.shape == ref.shape
    return float(np.abs(out - ref).max() / np.abs(ref).max())


@pytest.fixture(scope="module", params=["keras3", "tf_keras"])
def ported(request):
    """(model, Port): the model object handed to tf2torch as it is, nothing saved by the caller."""
    import convert

    model = mobilenet("k3" if request.param == "keras3" else "k2")
    before = set(Path(tempfile.gettempdir()).glob("tfport-*"))
    port = convert.tf2torch(model)
    made = set(Path(tempfile.gettempdir()).glob("tfport-*")) - before
    assert port.source.parent.parent in made  # the model's file: in the Port's own private temporary folder
    return request.param, model, port


def test_an_in_memory_model_becomes_a_port_that_reproduces_it(ported):
    import torch

    kind, model, port = ported
    assert isinstance(port.module, torch.nn.Module) and port.module.tfport_meta == port.meta
    assert port.meta["alpha"] == ALPHA and port.meta["num_classes"] == 0
    assert port.source.suffix == (".keras" if kind == "keras3" else ".h5")
    assert port.checks and all(a.rel <= REL for a in port.checks), port.checks
    rel = relative_error(port, model, probes())
    print(f"{kind}: port vs the in-memory model, max|Δ|/max|ref| = {rel:.2e}")
    assert rel <= REL


def test_the_port_is_the_module_backbones_load_returns(ported, tmp_path):
    import torch

    import backbones

    _, _, port = ported
    saved = port.save(tmp_path / "mine.safetensors")
    again = backbones.load(saved)
    assert type(again) is type(port.module) and again.tfport_meta["artifacts"] == {"onnx.onnx": "mine.onnx"}
    export = port.path.parent / port.meta["artifacts"]["onnx.onnx"]
    assert (tmp_path / "mine.onnx").read_bytes() == export.read_bytes()
    x = torch.from_numpy(probes(2).transpose(0, 3, 1, 2).copy())
    with torch.no_grad():
        assert torch.equal(again(x), port.module(x))


@pytest.fixture(scope="module")
def checked(ported):
    import parity

    kind, model, port = ported
    return kind, port, parity.check(port, model)  # the default probes: the trainer's gate takes no fewer


def test_parity_of_the_port_against_the_model_object_passes(checked, tmp_path):
    kind, port, report = checked
    assert report and report.passed and report.modes_passed == ["eval", "train"]
    line = str(report)
    assert "\n" not in line and line.startswith("PASSED: ") and line == report.summary()
    report.write_json(tmp_path / "r.json")
    assert json.loads((tmp_path / "r.json").read_text())["passed"] is True
    report.write_junit(tmp_path / "r.xml")
    assert 'failures="0"' in (tmp_path / "r.xml").read_text()


def test_the_report_renders_in_a_notebook_as_the_html_page(checked, tmp_path):
    """`_repr_html_` is the self-contained page `--html` writes (plot inlined), rendered by Chromium."""
    kind, _, report = checked
    html = report._repr_html_()
    assert "data:image/png;base64," in html and "per_layer_error.png" not in html.replace("alt=", "")
    page = tmp_path / "index.html"
    page.write_text(html)
    shown = render_in_browser(page, tmp_path)
    assert shown.verdict == "PASSED" and shown.banner == GREEN and shown.colours > 50
    assert "features.0:bn" in shown.dom
    SHOTS.mkdir(exist_ok=True)
    shutil.copyfile(tmp_path / "shot.png", SHOTS / f"api_report_{kind}.png")


def test_the_certificate_binds_to_the_bytes_checked(checked, tmp_path):
    from convert.runtime.errors import TfportError
    from parity.certificate import check_for_training

    _, port, report = checked
    cert = report.write_certificate()
    assert cert.parent == port.path.parent
    check_for_training(port.path, "train")  # the trainer's gate accepts it
    other = tmp_path / "other.pth"
    other.write_bytes(port.path.read_bytes() + b"\0")
    with pytest.raises(TfportError, match="not the checkpoint this report checked"):
        report.write_certificate(other)


def test_backbones_train_takes_the_certified_port(checked, tmp_path):
    """backbones.train mirrors `python -m backbones train`: the Port trains once its certificate is written
    (the gate reads it); a train-mode BN run is allowed because train mode was certified too."""
    import backbones
    from backbones.synth import write_dataset

    _, port, report = checked
    report.write_certificate()
    write_dataset(tmp_path / "data", n=20, size=SIZE, seed=0, workers=1)
    result = backbones.train(port, str(tmp_path / "data"), out=str(tmp_path / "run"), epochs=2, bs=4)
    assert result and result.exit_code == 0 and len(result.epochs) == 2
    assert (tmp_path / "run" / "result.json").is_file()


def test_a_different_model_object_fails_parity(ported):
    """The comparison decides for an in-memory source: other weights, same architecture -> FAILED."""
    import parity

    kind, _, port = ported
    other = mobilenet("k3" if kind == "keras3" else "k2", seed=5)
    report = parity.check(port.module, other, probes=2, against=("tf",))
    assert not report and str(report).startswith("FAILED: ")
    assert any("in memory" in n for n in report.notes)


def lambda_model(version: str):
    K = keras_module(version)
    inp = K.Input((SIZE, SIZE, 3))
    x = K.layers.Lambda(lambda t: t / 127.5 - 1.0, name="scale")(inp)
    base = K.applications.MobileNetV2(alpha=ALPHA, input_shape=(SIZE, SIZE, 3), weights=None, include_top=False,
                                      pooling="avg")
    calibrate(base, SIZE, (-1.0, 1.0), 3)
    return K.Model(inp, base(x))


@pytest.mark.parametrize("version", ["k3", "k2"], ids=["keras3", "tf_keras"])
def test_a_lambda_model_object_is_refused_unless_trusted(version):
    import convert
    from convert.runtime.errors import TfportError

    model = lambda_model(version)
    with pytest.raises(TfportError) as refused:
        convert.tf2torch(model)
    message = str(refused.value)
    assert "\n" not in message and "Lambda" in message and "trust" in message, message
    port = convert.tf2torch(model, trust_code=True)
    assert port.meta["trusted_code"] and port.meta["input_range"] == [0.0, 255.0]
    rel = relative_error(port, model, probes(2, 0.0, 255.0))
    print(f"{version} Lambda (trusted): max|Δ|/max|ref| = {rel:.2e}")
    assert rel <= REL


@pytest.mark.parametrize(
    "call,mentions",
    [
        (lambda: __import__("convert").tf2torch(42), "neither a path nor an in-memory model"),
        (lambda: __import__("convert").tf2torch("/nonexistent/model.h5"), "/nonexistent/model.h5"),
        (lambda: __import__("parity").check(object()), "is not a path"),
        (lambda: __import__("parity").check("/nonexistent/ported.pth"), "/nonexistent/ported.pth"),
        (lambda: __import__("backbones").train("no_such_net", "/nonexistent"), "/nonexistent"),
        (lambda: __import__("backbones").train("resnet34", "/x", lr=1), "unknown setting"),
    ],
    ids=["tf2torch-int", "tf2torch-missing", "check-object", "check-missing", "train-name", "train-setting"],
)
def test_bad_input_is_one_tfport_error_line(call, mentions):
    from convert.runtime.errors import TfportError

    with pytest.raises(TfportError) as e:
        call()
    assert "\n" not in str(e.value) and mentions in str(e.value), str(e.value)


SMALL = 64  # the TF-native objects below: one conversion each, at the smallest size the suite uses


def _serving_module(seed: int = 1):
    """A TF-Hub-style tf.Module with one serving signature around a tf_keras classifier (no Keras metadata)."""
    K = keras_module("k2")
    base = K.applications.MobileNetV2(alpha=ALPHA, input_shape=(SMALL, SMALL, 3), weights=None, include_top=False,
                                      pooling="avg")
    net = K.Model(base.input, K.layers.Dense(3, activation="softmax")(base.output))
    calibrate(net, SMALL, (-1.0, 1.0), seed)
    return serving_module(net, SMALL)


def _frozen_graph_def(seed: int = 2):
    """A tf.compat.v1.GraphDef frozen from a Keras 3 feature extractor, as TF's own freezer writes it."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    K = keras_module("k3")
    model = K.applications.MobileNetV2(alpha=ALPHA, input_shape=(SMALL, SMALL, 3), weights=None,
                                       include_top=False, pooling="avg")
    calibrate(model, SMALL, (-1.0, 1.0), seed)
    fn = tf.function(lambda x: model(x, training=False))
    frozen = convert_variables_to_constants_v2(fn.get_concrete_function(tf.TensorSpec([1, SMALL, SMALL, 3],
                                                                                      tf.float32)))
    return frozen.graph.as_graph_def(), model


def _small_error(port, reference, x: np.ndarray) -> float:
    import torch

    with torch.no_grad():
        out = port.module(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy()
    assert out.shape == reference.shape, (out.shape, reference.shape)
    return float(np.abs(out - reference).max() / np.abs(reference).max())


@pytest.mark.exhaustive
def test_a_tf_module_with_a_serving_signature_becomes_a_port():
    """A tf.Module (no Keras) is saved by tf.saved_model.save with its signature, then read as a SavedModel.
    Exhaustive: the default suite converts a tf.Module SavedModel written by the same tool in tests/convert/
    test_zoo.py (tfmodule-savedmodel); this adds only the in-memory hand-off (~20 s)."""
    import convert
    import parity

    module = _serving_module()
    port = convert.tf2torch(module, probes=4)
    assert port.source.name == "savedmodel" and port.meta["num_classes"] == 3
    x = np.random.default_rng(3).uniform(-1, 1, (3, SMALL, SMALL, 3)).astype(np.float32)
    ref = np.asarray(module.serve(x)["probabilities"])
    rel = _small_error(port, ref, x)
    print(f"tf.Module: max|Δ|/max|ref| = {rel:.2e}")
    assert rel <= REL and (port.module(__import__("torch").from_numpy(x.transpose(0, 3, 1, 2).copy()))
                           .argmax(1).numpy() == ref.argmax(1)).all()
    assert parity.check(port, module, probes=2, against=("tf",))


def test_a_graph_def_becomes_a_port():
    """A GraphDef object is written as the .pb TF would write and read as a frozen graph."""
    import convert

    graph_def, model = _frozen_graph_def()
    port = convert.tf2torch(graph_def, probes=4)
    assert port.source.suffix == ".pb" and port.meta["head"]["output"] == "pooled"
    x = np.random.default_rng(4).uniform(-1, 1, (2, SMALL, SMALL, 3)).astype(np.float32)
    rel = _small_error(port, np.asarray(model(x, training=False)), x)
    print(f"GraphDef: max|Δ|/max|ref| = {rel:.2e}")
    assert rel <= REL


def test_a_graph_def_with_a_file_reading_op_is_refused():
    """In-memory graphs get the file checks: a ReadFile in a GraphDef object is refused before anything runs."""
    import tensorflow as tf

    import convert
    from convert.runtime.errors import TfportError

    graph = tf.Graph()
    with graph.as_default():
        tf.io.read_file(tf.constant("/etc/hostname"), name="leak")
    with pytest.raises(TfportError) as refused:
        convert.tf2torch(graph.as_graph_def())
    assert "\n" not in str(refused.value) and "ReadFile" in str(refused.value), str(refused.value)


@pytest.mark.exhaustive  # ~18 s; the SavedModel it writes: test_zoo, test_tf2torch
def test_a_subclassed_tf_keras_model_is_written_as_a_savedmodel():
    """HDF5 holds functional and Sequential models only: a subclassed tf_keras model goes through the
    SavedModel fallback, and the port still reproduces it."""
    import convert

    K = keras_module("k2")
    base = K.applications.MobileNetV2(alpha=ALPHA, input_shape=(SMALL, SMALL, 3), weights=None, include_top=False,
                                      pooling="avg")
    calibrate(base, SMALL, (-1.0, 1.0), 6)

    class Wrapped(K.Model):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def call(self, x, training=False):
            return self.net(x, training=training)

    model = Wrapped(base)
    x = np.random.default_rng(5).uniform(-1, 1, (2, SMALL, SMALL, 3)).astype(np.float32)
    ref = np.asarray(model(x, training=False))
    port = convert.tf2torch(model, probes=4)
    assert port.source.name == "savedmodel"
    rel = _small_error(port, ref, x)
    print(f"subclassed tf_keras: max|Δ|/max|ref| = {rel:.2e}")
    assert rel <= REL
