"""Files as users hold them, written in the test by the very Keras that writes them, converted and checked.

For each: `convert` writes a port; fed the source's own input (0..255 pixels where the model
preprocesses itself) the port returns the source's own output; its backbone loads strict=True into
stock torchvision; `parity check` passes with the modes the source allows (train mode only where the
source holds BN statistics). Files Keras itself cannot read back, or that are random at inference,
are refused in one line.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from convert.model.agreement import FEATURE_MAP_TOL
from tests.zoo.keras_models import images

# (kind, keras version, form) -> what the metadata must say: classifier outputs, head output, preprocessing inside
CONVERTS = {
    "tutorial-k2-h5": (("tutorial", "k2", "h5"), 1, "classifier", True),
    "tutorial-k2-keras": (("tutorial", "k2", "keras"), 1, "classifier", True),
    "tutorial-k2-savedmodel": (("tutorial", "k2", "savedmodel"), 1, "classifier", True),
    "tutorial-k3-keras": (("tutorial", "k3", "keras"), 1, "classifier", True),
    "features_none-k3-keras": (("features_none", "k3", "keras"), 0, "feature_map", False),
    "features_avg-k2-h5": (("features_avg", "k2", "h5"), 0, "pooled", False),
    "features_max-k3-h5": (("features_max", "k3", "h5"), 0, "pooled", False),
    "regression-k3-keras": (("regression", "k3", "keras"), 0, "head", True),
    "regression-k2-h5": (("regression", "k2", "h5"), 0, "head", True),
    "pooled_flatten-k2-h5": (("pooled_flatten", "k2", "h5"), 0, "head", False),
    "classifier_gmp-k3-keras": (("classifier_gmp", "k3", "keras"), 0, "head", False),
    # no Keras save: a TF-Hub-style tf.Module SavedModel, a TF1-era graph-mode Keras frozen graph
    "tfmodule-savedmodel": (("classifier", "tfmodule", "savedmodel"), 5, "classifier", False),
    "tf1-keras-pb": (("classifier", "tf1", "pb"), 1000, "classifier", False),
    # TF-slim's own layers, frozen as TF 1.x froze them: FusedBatchNorm v1, batch-1 input, 1001 classes
    "slim-v1-pb": (("bn_v1", "slim", "pb"), 1001, "classifier", False),
    # other widths and input sizes
    "tutorial-k3-keras-a0.5-128": (("tutorial", "k3", "keras", 128, 0.5), 1, "classifier", True),
    "regression-k2-h5-a1-160x160": (("regression", "k2", "h5", 160, 1.0), 0, "head", True),
}
# Keras 3's export(): BN traced decomposed and no Keras model to read statistics from: eval mode only
EVAL_ONLY = {
    "regression-k3-savedmodel": (("regression", "k3", "savedmodel"), 0, "head", True),
    # the TFLite converter folds BN into the convolutions
    "tflite-float32": (("classifier", "tflite", "tflite"), 1000, "classifier", False),
}
REFUSED = {
    # Keras 3 writes this .h5 but cannot read it back (its op layers take constants positionally)
    "tutorial-k3-h5": (("tutorial", "k3", "h5"), ("save the model as .keras",)),
    # Keras 3's export() of the tutorial model keeps RandomFlip/RandomRotation live in the serving graph: the
    # refusal names them
    "tutorial-k3-savedmodel": (("tutorial", "k3", "savedmodel"), ("augmentation is live", "random_flip")),
}
# the form each file is detected as (README: by its own bytes; the Keras that wrote it picks the loader)
FORM = {("k2", "h5"): "keras2_h5", ("k2", "keras"): "keras2_keras", ("k2", "savedmodel"): "keras2_savedmodel",
        ("k3", "h5"): "keras3_h5", ("k3", "keras"): "keras3_keras", ("k3", "savedmodel"): "savedmodel",
        ("tfmodule", "savedmodel"): "savedmodel", ("tf1", "pb"): "graph_pb", ("slim", "pb"): "graph_pb",
        ("tflite", "tflite"): "tflite"}


@pytest.fixture(scope="session")
def ported(zoo_ported):
    """case -> (source path, Built, ported.pth, ConversionResult): tests/conftest.py's zoo_ported."""
    return zoo_ported


def _port_vs_source(src, built, out) -> float:
    """The port (loaded as users load it) against the source's own model on the source's own input: the
    Keras model where there is one, else the source run as itself (TF graph). Relative to max |output|, or
    for a single Dense head to what it sums (convert.model.tolerance.dense_scale: a bias-dominated regression
    output is a small difference of larger terms)."""
    import torch

    from backbones.ported import load
    from convert.model.agreement import agreement
    from convert.paths.worker import torch_outputs
    from convert.sources import load_source

    if built is not None:
        lo, hi = built.input_range
        x = images(6, int(built.model.input_shape[1]), lo, hi, seed=11)
        want = np.asarray(built.model(x, training=False), np.float64)
    else:
        source = load_source(src)
        x = images(6, source.spec.input_shape[0], *source.spec.input_range, seed=11)
        runner = source.runner()
        (want,) = runner.run(x, [source.info.output])
        runner.close()
    model = load(out)
    got = torch_outputs(model, x)
    scale = None
    if isinstance(model.classifier_activation, torch.nn.Identity) and "pooled" in got:  # a sum, not a probability
        w, b = (t.detach().numpy().astype(np.float64) for t in (model.classifier[-1].weight, model.classifier[-1].bias))
        scale = float((np.abs(got["pooled"]) @ np.abs(w).T + np.abs(b)).max())
    return agreement("port vs source", got["output"], np.asarray(want).reshape(got["output"].shape), scale=scale).rel


def _loose(out) -> bool:
    """The outputs convert holds to FEATURE_MAP_TOL (convert.model.tolerance.loose_output): feature maps, max
    pooling, heads of their own, softmax/sigmoid probabilities."""
    from convert.port import checkpoint

    _, meta = checkpoint.load(out)
    head = meta["head"]
    last = head["layers"][-1] if head["layers"] else head["classifier"]
    return (head["output"] in ("feature_map", "head") or head["pool"] == "max"
            or bool(last and last["activation"] in ("softmax", "sigmoid")))


CASES = {**CONVERTS, **EVAL_ONLY}
# Cases whose form and head another case already covers (another width or input size of a form; a head kind
# another Keras version exercises): run with `scripts/test --exhaustive`, keeping the default suite in budget.
COVERED_ELSEWHERE = {
    "regression-k2-h5": "k2 .h5 by tutorial-k2-h5 and features_avg-k2-h5; the regression head by regression-k3-keras",
    "classifier_gmp-k3-keras": "max pooling by features_max-k3-h5; a head of its own by regression-k3-keras",
    "tutorial-k3-keras-a0.5-128": "widths and sizes by tests/convert/test_tf2torch.py",
    "regression-k2-h5-a1-160x160": "widths and sizes by tests/convert/test_tf2torch.py",
    "mmdnn:tutorial-k3-keras": "MMdnn on a Keras 3 file by features_none-k3-keras and regression-k3-keras",
    "tutorial-k2-savedmodel": "tf_keras SavedModel by test_tf2torch.py; the tutorial's head by tutorial-k2-h5",
}


def _params(cases: dict, prefix: str = "") -> list:
    return [pytest.param(*v, id=k, marks=[pytest.mark.exhaustive] if prefix + k in COVERED_ELSEWHERE else [])
            for k, v in cases.items()]


@pytest.mark.parametrize("case,classes,output,preprocess", _params(CASES))
def test_converts_and_reproduces_the_source(ported, case, classes, output, preprocess):
    from convert.port import checkpoint

    src, built, out, result = ported(case)
    assert result.ok, [a for p in result.paths for a in p.agreements]
    assert result.source.form == FORM[case[1:3]]
    if result.source.form == "savedmodel":  # graph only: frozen, then checked against the signature itself
        assert any("graph only" in n and "equals the signature" in n for n in result.source.notes)
    sd, meta = checkpoint.load(out)
    assert meta["num_classes"] == classes and meta["head"]["output"] == output
    eval_only = any("faithful in eval mode only" in n for n in meta["notes"])  # and says so
    assert eval_only == (case in [c[0] for c in EVAL_ONLY.values()]) == meta["bn_folded"]
    assert (meta["preprocess"] is not None) == preprocess
    if preprocess:
        assert meta["input_range"] == [0.0, 255.0]
    if case[0] == "tutorial":  # Keras numbers a second model's layers (random_flip_1)
        assert [d.rstrip("_0123456789") for d in meta["dropped"]] == ["random_flip", "random_rotation"]
    assert _port_vs_source(src, built, out) <= (FEATURE_MAP_TOL if _loose(out) else 1e-5)


@pytest.mark.parametrize("case,classes,output,preprocess", _params(CASES))
def test_backbone_loads_into_stock_torchvision(ported, case, classes, output, preprocess):
    _, _, out, _ = ported(case)
    payload = _loads_strict_into_torchvision(out)
    assert bool(payload["head"]) == (output == "head")


def _loads_strict_into_torchvision(out):
    """README: the backbone's state dict loads strict=True into stock torchvision (raises on any key or shape)."""
    import torch
    from torchvision.models import mobilenet_v2

    payload = torch.load(out, weights_only=True)
    meta = json.loads(payload["metadata"])
    tv = mobilenet_v2(width_mult=meta["alpha"], num_classes=meta["num_classes"])
    tv.load_state_dict(payload["state_dict"], strict=True)
    return payload


@pytest.mark.parametrize("case,classes,output,preprocess", _params(CASES))
def test_parity_agrees_with_convert(ported, case, classes, output, preprocess):
    from parity import certificate
    from parity.cli import main

    _, _, out, _ = ported(case)
    assert main(["check", str(out), "--probes", "4"]) == 0
    modes = certificate.read(out)["modes_passed"]
    assert modes == (["eval"] if any(case == c[0] for c in EVAL_ONLY.values()) else ["eval", "train"])


# MMdnn 0.3.1 emits no RealDiv/Sub: where the model preprocesses itself MMdnn is given the graph after
# that, and the port applies the source's affine; its own head and pooling come from the source too
MMDNN = {k: CONVERTS[k] for k in ("tutorial-k2-h5", "tutorial-k3-keras", "features_avg-k2-h5", "features_none-k3-keras",
                                  "regression-k3-keras", "tf1-keras-pb")}


@pytest.mark.parametrize("case,classes,output,preprocess", _params(MMDNN, "mmdnn:"))
def test_mmdnn_path_converts_and_parity_agrees(ported, case, classes, output, preprocess):
    from convert.port import checkpoint
    from parity.cli import main

    src, built, out, result = ported(case, "mmdnn")
    assert result.ok, [a for p in result.paths for a in p.agreements]
    _, meta = checkpoint.load(out)
    assert (
        meta["path"] == "mmdnn" and meta["head"]["output"] == output and (meta["preprocess"] is not None) == preprocess
    )
    assert _port_vs_source(src, built, out) <= (FEATURE_MAP_TOL if _loose(out) else 1e-5)
    _loads_strict_into_torchvision(out)  # the MMdnn path's port too, not only the ONNX path's
    assert main(["check", str(out), "--probes", "4"]) == 0


@pytest.mark.parametrize("case,words", list(REFUSED.values()), ids=list(REFUSED))
def test_unreadable_or_random_sources_are_refused(zoo, tmp_path, capsys, case, words):
    from convert.cli import main

    src, _ = zoo.get(*case)
    out = tmp_path / "ported.pth"
    assert main(["tf2torch", str(src), "-o", str(out)]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and all(w in err[0] for w in words), err
    assert not out.exists()


def test_mmdnn_does_not_read_tflite(zoo, tmp_path, capsys):
    from convert.cli import main

    src, _ = zoo.get("classifier", "tflite", "tflite")
    out = tmp_path / "ported.pth"
    assert main(["tf2torch", str(src), "-o", str(out), "--via", "mmdnn"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and "MMdnn reads TensorFlow graphs, not TFLite flatbuffers; use --via onnx" in err[0], err
    assert list(tmp_path.iterdir()) == []


def test_relu6_and_tanh_heads_and_a_normalization_found_by_its_numbers(ported):
    """README "Around the backbone": Dense activations relu6 and tanh are carried; a Normalization layer under a
    name that says nothing is found numerically as the per-channel affine (x - mean) / sqrt(var)."""
    from convert.port import checkpoint

    src, built, out, result = ported(("relu6_tanh", "k3", "keras"))
    assert result.ok, [a for p in result.paths for a in p.agreements]
    _, meta = checkpoint.load(out)
    assert [layer["activation"] for layer in meta["head"]["layers"]] == ["relu6", "tanh"]
    mean, var = np.array([127.5, 125.0, 122.0]), np.array([16256.0, 15800.0, 16600.0])
    assert meta["preprocess"]["scale"] == pytest.approx(1 / np.sqrt(var), rel=1e-4)
    assert meta["preprocess"]["offset"] == pytest.approx(-mean / np.sqrt(var), rel=1e-4)
    assert meta["input_range"] == [0.0, 255.0]
    assert _port_vs_source(src, built, out) <= FEATURE_MAP_TOL  # two Dense layers: a head of its own
