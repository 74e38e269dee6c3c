"""Weights-only Keras files (issue 22, item 3), written in the test by the tools that write them: tf_keras
`save_weights("x.h5")`, Keras 3 `save_weights("x.weights.h5")`, and a file laid out as keras-applications
wrote the ones `keras.applications` downloads into ~/.keras/models.

Each is identified from its layer names and weight shapes (the file name says nothing, or lies), rebuilt
from Keras's own MobileNetV2 and converted: the port reproduces the Keras model the weights came from, its
backbone loads strict=True into stock torchvision, `parity check` certifies eval + train. Weights of
another network, and a file cut short, are refused in one line.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from convert.model.agreement import FEATURE_MAP_TOL
from tests.zoo.keras_models import calibrate, images

SIZE = 32  # MobileNetV2's smallest input; its weights do not depend on the size


@dataclass(frozen=True)
class Written:
    path: Path
    model: object  # the Keras model whose weights the file holds (the reference)
    alpha: float
    classes: int  # 0: no classifier
    form: str  # the Source's form convert reports


def _mobilenet_v2(keras, alpha: float, classes: int, seed: int, size: int = SIZE):
    """Keras Applications' MobileNetV2 with seeded weights and BN that does real work."""
    keras.utils.set_random_seed(seed)
    top = {"include_top": True, "classes": classes} if classes else {"include_top": False}
    model = keras.applications.MobileNetV2(alpha=alpha, weights=None, input_shape=(size, size, 3), **top)
    calibrate(model, size, (-1.0, 1.0), seed)
    return model


def _as_keras_applications_wrote_it(model, path: Path) -> None:
    """The layout of keras-applications' released files, written with h5py: what tf_keras's legacy saver
    writes (root `layer_names`, per-layer `weight_names`, datasets at `<layer>/<weight name>`), with the
    release's own details: names stored as bytes, `Conv1_pad` and `input_1` listed without weights, and the
    classifier named `Logits` (keras_applications/mobilenet_v2.py; tf.keras renamed it `predictions`)."""
    import h5py

    rename = {"predictions": "Logits"}
    names = ["input_1", "Conv1_pad"] + [rename.get(layer.name, layer.name) for layer in model.layers[1:]]
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = np.array([n.encode() for n in names])
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = b"2.2.4"
        for layer in model.layers:
            name = rename.get(layer.name, layer.name)
            group = f.create_group(name if layer is not model.layers[0] else "input_1")
            weights = [(f"{name}/{w.name.split('/')[-1]}", w.numpy()) for w in layer.weights]
            group.attrs["weight_names"] = np.array([n.encode() for n, _ in weights], dtype="S")
            for n, value in weights:
                group.create_dataset(n, data=value)
        f.create_group("Conv1_pad").attrs["weight_names"] = np.array([], dtype="S")


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> dict[str, Written]:
    import keras
    import tf_keras

    root = tmp_path_factory.mktemp("weights")
    top = _mobilenet_v2(tf_keras, 0.35, 7, seed=1)
    # as Keras Applications' _no_top files are: the same body, its classifier left out
    no_top = tf_keras.applications.MobileNetV2(alpha=0.35, weights=None, input_shape=(SIZE, SIZE, 3), include_top=False)
    for layer in (x for x in no_top.layers if x.weights):
        layer.set_weights(top.get_layer(layer.name).get_weights())
    k3 = _mobilenet_v2(keras, 0.5, 0, seed=3)  # 0.5 has 0.35's stem: only the later widths tell them apart
    files = {
        # the name a download has, the contents another width and class count: identified by contents
        "applications": Written(root / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224.h5", top, 0.35, 7,
                                "keras_weights_h5"),
        "tf_keras-no-top": Written(root / "no_top.h5", no_top, 0.35, 0, "keras_weights_h5"),
        "keras3-no-top": Written(root / "model.weights.h5", k3, 0.5, 0, "keras3_weights_h5"),
    }
    _as_keras_applications_wrote_it(top, files["applications"].path)
    no_top.save_weights(str(files["tf_keras-no-top"].path))
    k3.save_weights(str(files["keras3-no-top"].path))
    files["tf_keras-top"] = Written(root / "top.h5", top, 0.35, 7, "keras_weights_h5")
    top.save_weights(str(files["tf_keras-top"].path))
    files["renamed"] = Written(root / "mystery.bin", k3, 0.5, 0, "keras3_weights_h5")  # no name hint at all
    shutil.copy(files["keras3-no-top"].path, files["renamed"].path)
    return files


@pytest.fixture(scope="module")
def ported(written, tmp_path_factory):
    """(file, via) -> (ported.pth, ConversionResult), each converted once."""
    from convert import pipeline

    root = tmp_path_factory.mktemp("weights_ported")
    cache: dict = {}

    def get(key: str, via: str = "onnx"):
        if (key, via) not in cache:
            out = root / f"{key}-{via}" / "ported.pth"
            out.parent.mkdir()
            cache[key, via] = out, pipeline.convert(written[key].path, out, via=via, input_size=(SIZE, SIZE),
                                                    probes=8)
        return cache[key, via]

    return get


def test_tf_keras_save_weights_writes_the_layout_keras_applications_downloads(written):
    """tf_keras's legacy saver and keras-applications' files share one layout: root `layer_names`, each
    layer's `weight_names`, a dataset per name under the layer's group."""
    import h5py

    for key in ("tf_keras-top", "applications"):
        with h5py.File(written[key].path, "r") as f:
            assert "model_config" not in f.attrs and "layer_names" in f.attrs
            group = f["block_1_depthwise"]
            (name,) = [n.decode() if isinstance(n, bytes) else n for n in group.attrs["weight_names"]]
            assert name == "block_1_depthwise/depthwise_kernel:0" and group[name].shape[-1] == 1


IDENTIFIED = {  # file -> (form, alpha, classes)
    "tf_keras-top": ("keras_weights_h5", 0.35, 7),
    "tf_keras-no-top": ("keras_weights_h5", 0.35, 0),
    "applications": ("keras_weights_h5", 0.35, 7),
    "keras3-no-top": ("keras3_weights_h5", 0.5, 0),
    "renamed": ("keras3_weights_h5", 0.5, 0),
}


@pytest.mark.parametrize("key", list(IDENTIFIED), ids=list(IDENTIFIED))
def test_architecture_width_top_and_classes_come_from_the_contents(written, key):
    from convert.arch import recognise_weights
    from convert.sources import detect_form
    from convert.sources.keras_weights import FORMS
    from convert.sources.weights_h5 import read_weights

    form, alpha, classes = IDENTIFIED[key]
    path = written[key].path
    assert detect_form(path).name == "keras_weights"
    weights = read_weights(path)
    assert FORMS[weights.layout] == form
    arch, match = recognise_weights(weights.shapes, str(path))
    assert (arch.name, match.variant, match.include_top, match.classes) == ("mobilenet_v2", {"alpha": alpha},
                                                                           classes > 0, classes)


# The default suite converts the downloaded layout end to end; the other layouts differ from it only until
# the Keras model is rebuilt (test_the_rebuilt_reference_is_the_keras_model below): converting them through
# both paths is the exhaustive variant (scripts/test --exhaustive or TFPORT_EXHAUSTIVE=1, ~2 min more on 2 cores).
EXHAUSTIVE = pytest.mark.exhaustive
CONVERTED = {
    "applications": pytest.param("applications", "onnx", id="applications"),
    "keras3-no-top": pytest.param("keras3-no-top", "onnx", id="keras3-no-top", marks=EXHAUSTIVE),
    "tf_keras-no-top": pytest.param("tf_keras-no-top", "mmdnn", id="tf_keras-no-top-mmdnn", marks=EXHAUSTIVE),
}


@pytest.mark.parametrize("key,via", list(CONVERTED.values()))
def test_port_reproduces_the_keras_model_the_weights_came_from(written, ported, key, via):
    from backbones.ported import load
    from convert.paths.worker import torch_outputs
    from convert.port import checkpoint

    out, result = ported(key, via)
    assert result.ok and result.source.form == written[key].form
    _, meta = checkpoint.load(out)
    assert meta["source"]["form"] == written[key].form and meta["path"] == via
    assert meta["alpha"] == written[key].alpha and meta["num_classes"] == written[key].classes
    assert meta["input_size"] == [SIZE, SIZE] and not meta["bn_folded"]
    assert any(n.startswith("weights only") and "identified from" in n for n in meta["notes"])
    x = images(6, SIZE, -1.0, 1.0, seed=5)
    want = np.asarray(written[key].model(x, training=False), np.float64)
    got = torch_outputs(load(out), x)["output"].reshape(want.shape)
    # a feature extractor's output is the last map's own elements: convert's FEATURE_MAP_TOL (measured ~1e-5)
    rel = np.abs(got - want).max() / np.abs(want).max()
    print(f"{key} via {via}: port vs Keras rel {rel:.2e}")  # the figure the report quotes (pytest -s)
    assert rel <= (1e-5 if written[key].classes else FEATURE_MAP_TOL)
    if written[key].classes:
        assert (got.argmax(1) == want.argmax(1)).all()


@pytest.mark.parametrize("key,via", list(CONVERTED.values()))
def test_backbone_loads_strict_into_torchvision_and_parity_certifies_both_modes(written, ported, key, via):
    import torch
    from torchvision.models import mobilenet_v2

    from parity import certificate
    from parity.cli import main

    out, _ = ported(key, via)
    payload = torch.load(out, weights_only=True)
    mobilenet_v2(width_mult=written[key].alpha, num_classes=written[key].classes).load_state_dict(
        payload["state_dict"], strict=True)
    assert main(["check", str(out), "--probes", "4"]) == 0
    assert certificate.read(out)["modes_passed"] == ["eval", "train"]


@pytest.mark.parametrize("key", ["keras3-no-top"])  # the legacy layout: converted end to end above
def test_the_rebuilt_reference_is_the_keras_model_the_weights_came_from(written, key):
    """Every layout ends as the same thing, Keras's MobileNetV2 holding the file's arrays (tf_keras, whichever
    Keras wrote them), frozen: TF runs that graph as the reference, and it computes the original model."""
    from convert.sources import load_source

    source = load_source(written[key].path, (SIZE, SIZE))
    assert source.form == written[key].form and source.spec.arch == "mobilenet_v2"
    assert source.notes[0].startswith("weights only") and f"at {SIZE}x{SIZE}" in source.notes[0]
    x = images(4, SIZE, -1.0, 1.0, seed=6)
    runner = source.runner()
    (got,) = runner.run(x, [source.info.output])
    runner.close()
    want = np.asarray(written[key].model(x, training=False), np.float64).reshape(got.shape)
    # the same function, to float32 rounding that depends on the CPU's kernels: Keras 3's model against the frozen
    # tf_keras rebuild, 1.6e-6 measured on one machine and 1.06e-5 on an AMD EPYC (no-top map, ReLU6 at 6.0); a
    # weight put in another layer's place is off by more than 1e-1
    assert np.abs(got - want).max() / np.abs(want).max() <= 3e-5


def test_the_input_size_defaults_to_224(written):
    from convert.sources import load_source

    assert load_source(written["tf_keras-no-top"].path).spec.input_shape == (224, 224, 3)


def _refused(path: Path, tmp_path: Path, capsys) -> str:
    from convert.cli import main

    out = tmp_path / "ported.pth"
    assert main(["tf2torch", str(path), "-o", str(out), "--input-size", f"{SIZE}x{SIZE}"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and not out.exists(), err
    return err[0]


def test_weights_of_another_network_are_refused_naming_what_was_found(tmp_path, capsys):
    import tf_keras

    path = tmp_path / "mobilenet_v1.weights.h5"
    tf_keras.applications.MobileNet(alpha=0.25, weights=None, input_shape=(SIZE, SIZE, 3),
                                    include_top=False).save_weights(str(tmp_path / "v1.h5"))
    (tmp_path / "v1.h5").rename(path)
    err = _refused(path, tmp_path, capsys)
    assert "weights of no registered architecture" in err and "conv1, conv1_bn" in err and "a MobileNetV2 has" in err


@pytest.mark.parametrize("keep", [0.5, 0.98], ids=["half", "last-bytes"])
def test_a_weights_file_cut_short_is_one_line(written, tmp_path, capsys, keep):
    data = written["tf_keras-top"].path.read_bytes()
    path = tmp_path / "cut.h5"
    path.write_bytes(data[: int(len(data) * keep)])
    assert "corrupt" in _refused(path, tmp_path, capsys)


def test_mobilenet_v2_layers_of_no_keras_width_are_one_line(written, tmp_path, capsys):
    """Its layer names, but block 16's projection 8 channels wider than any Keras width has it."""
    import h5py

    path = tmp_path / "widened.h5"
    shutil.copy(written["tf_keras-no-top"].path, path)
    with h5py.File(path, "r+") as f:
        name = "block_16_project/block_16_project/kernel:0"
        kernel = f[name][()]
        del f[name]
        f[name] = np.concatenate([kernel, kernel[..., :8]], axis=-1)
    err = _refused(path, tmp_path, capsys)
    assert "MobileNetV2 layers of no Keras width" in err and "block_16_project 120" in err


def test_a_weights_file_linking_to_another_file_is_refused_before_it_is_read(written, tmp_path, capsys):
    """convert.safety.archives.check_hdf5 runs on weights files too: an HDF5 external link names a file on disk."""
    import h5py

    other, path = tmp_path / "elsewhere.h5", tmp_path / "linked.h5"
    with h5py.File(other, "w") as f:
        f["secret"] = np.zeros(3, np.float32)
    shutil.copy(written["tf_keras-no-top"].path, path)
    with h5py.File(path, "r+") as f:
        f["Conv1"]["telemetry"] = h5py.ExternalLink(str(other), "/")
    assert "external link" in _refused(path, tmp_path, capsys)
