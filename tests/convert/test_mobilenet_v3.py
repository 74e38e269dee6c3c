"""MobileNetV3 Large and Small (issue 23): Keras's networks into stock torchvision keys, end to end.

One module-scoped 64x64 MobileNetV3Small (tf_keras, Keras's own top: GAP -> 1x1 conv -> hard-swish ->
Dropout -> 1x1 conv logits -> softmax, 10 classes; Rescaling inside; seeded weights, biases and BN
statistics) converted once by the CLI, checked once by `parity check`, trained once; the naive port (its
weights in plain torchvision, a plain state dict) must fail naming padding, momentum and the input range.
What agrees between Keras and torchvision (hard activations, squeeze widths, every conv's width and kernel)
is measured on the real definitions. Large and the other forms run with scripts/test --exhaustive.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from tests.conftest import assert_one_line_error, run_cli, run_main

SIZE = (64, 64)
CLASSES = 10
SIZES = ("mobilenet_v3_small", "mobilenet_v3_large")


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """(sample folder, the Keras .h5 with Keras's top, its port, the tf_keras model)."""
    import tf_keras

    from convert.sample import SampleSpec, write_samples

    d = tmp_path_factory.mktemp("mobilenet_v3_small")
    (src,) = write_samples(d, SampleSpec(arch="mobilenet_v3_small", size=SIZE, classes=CLASSES),
                           ("keras2_h5",)).values()
    out = d / "port" / "ported.pth"
    out.parent.mkdir()
    proc = run_main("convert", "tf2torch", str(src), "-o", str(out))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return d, src, out, tf_keras.models.load_model(src, compile=False)


def test_hard_activations_are_torchs():
    """Keras's hard-swish x * ReLU6(x + 3) / 6 and hard-sigmoid ReLU6(x + 3) / 6, computed by TF's own ops
    as Keras writes them, equal torch's Hardswish and Hardsigmoid (float32, the kinks at -3 and 3 included)."""
    import tensorflow as tf
    import torch

    x = np.concatenate([np.linspace(-8, 8, 4001), [-3.0, 3.0, 0.0, -1e-7, 1e-7, 300.0]]).astype(np.float32)
    sigmoid = (tf.nn.relu6(x + 3.0) * (1.0 / 6.0)).numpy()
    swish = (tf.constant(x) * sigmoid).numpy()
    t = torch.from_numpy(x)
    np.testing.assert_allclose(torch.nn.Hardsigmoid()(t).numpy(), sigmoid, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(torch.nn.Hardswish()(t).numpy(), swish, rtol=1e-6, atol=1e-6)
    assert not np.allclose(torch.relu(t).numpy(), swish, atol=1e-3)  # what it would be told apart from


@pytest.mark.parametrize("arch", SIZES, ids=SIZES)
def test_keras_widths_are_torchvisions(arch):
    """Every conv of the Keras table (convert.arch.mobilenet_v3.keras_convs, alpha 1.0) has the width and
    kernel of torchvision's conv in the same place, and Keras's squeeze width `_depth(c * 0.25)` (its own
    function) is torchvision's `_make_divisible(c // 4, 8)` for every squeeze-excitation block."""
    import torch
    from keras.src.applications.mobilenet_v3 import _depth

    from convert.arch import get

    family = get(arch)
    with torch.device("meta"):
        tv = family.torchvision({}, 0)
    convs = [(int(m.weight.shape[0]), int(m.weight.shape[-1])) for m in tv.modules() if isinstance(m, torch.nn.Conv2d)]
    from convert.arch.mobilenet_v3 import keras_convs

    assert keras_convs(family.table) == convs
    ses = [m for m in tv.modules() if type(m).__name__ == "SqueezeExcitation"]
    assert ses and all(se.fc1.out_channels == _depth(se.fc1.in_channels * 0.25) for se in ses)


KERAS_VARIANTS = [("mobilenet_v3_small", 1.0, False), ("mobilenet_v3_large", 1.0, False),
                  pytest.param("mobilenet_v3_small", 0.75, False, marks=pytest.mark.exhaustive),
                  pytest.param("mobilenet_v3_large", 1.0, True, marks=pytest.mark.exhaustive)]


@pytest.mark.parametrize(("arch", "alpha", "minimalistic"), KERAS_VARIANTS,
                         ids=["small", "large", "small-alpha0.75", "large-minimalistic"])
def test_keras_table_is_kerass_network(arch, alpha, minimalistic):
    """The table require_twin recognises variants by is Keras's own network: every Conv2D / DepthwiseConv2D
    of keras.applications' model, in order, has the table's filters and kernel."""
    import keras

    from convert.arch import get
    from convert.arch.mobilenet_v3 import keras_convs

    family = get(arch)
    model = getattr(keras.applications, family.keras_name)(input_shape=(32, 32, 3), weights=None, include_top=False,
                                                           alpha=alpha, minimalistic=minimalistic)
    convs = [(layer.kernel.shape[-1] if type(layer).__name__ == "Conv2D" else layer.kernel.shape[-2],
              layer.kernel.shape[0]) for layer in model.layers if type(layer).__name__ in ("Conv2D", "DepthwiseConv2D")]
    assert keras_convs(family.table, alpha, minimalistic) == convs


def test_the_port_is_the_source_and_torchvision_keys(small):
    """Fed the source's own input (0..255 pixels: Rescaling is inside), the port returns the source's output
    (<= 1e-5 relative, same top-1) and pooled features; its backbone and classifier load strict=True into
    stock torchvision mobilenet_v3_small(num_classes=10); TF SAME on the stem and every stride-2 depthwise,
    eps 1e-3, momentum 0.001, the rescaling carried."""
    import tf_keras
    import torch
    from torchvision.models import mobilenet_v3_small

    from convert.model.probe import probe_inputs
    from convert.port import checkpoint
    from convert.port.head import torchvision_keys

    _, _, out, keras = small
    model = checkpoint.load_module(out)
    meta = model.tfport_meta
    assert meta["arch"] == "mobilenet_v3_small" and meta["num_classes"] == CLASSES
    assert meta["head"]["classifier"]["activation"] == "softmax" and meta["head"]["output"] == "classifier"
    assert {k for k, v in meta["padding"].items() if v == "tf_same"} == {
        "features.0.0", "features.1.block.0.0", "features.2.block.1.0", "features.4.block.1.0", "features.9.block.1.0"}
    assert len(meta["bn"]) == 34 and all(np.isclose(b["eps"], 1e-3, rtol=1e-6) for b in meta["bn"].values())
    assert {b["momentum"] for b in meta["bn"].values()} == {0.001}
    assert meta["input_range"] == [0.0, 255.0]
    assert np.allclose(meta["preprocess"]["scale"], 1 / 127.5) and meta["preprocess"]["offset"] == [-1.0] * 3
    x = probe_inputs(4, SIZE, tuple(meta["input_range"]), seed=3)
    ref = keras(x, training=False).numpy()
    # the backbone's pooling is the last GlobalAveragePooling2D (each squeeze-excitation has its own before it)
    gap = [layer for layer in keras.layers if type(layer).__name__ == "GlobalAveragePooling2D"][-1]
    ref_pooled = tf_keras.Model(keras.input, gap.output)(x, training=False).numpy().reshape(len(x), -1)
    pooled = []
    hook = model.pool.register_forward_hook(lambda _m, _i, o: pooled.append(o.numpy()))
    with torch.no_grad():
        got = model(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy()
    hook.remove()
    assert np.abs(pooled[0] - ref_pooled).max() / np.abs(ref_pooled).max() <= 1e-5
    assert np.abs(got - ref).max() / np.abs(ref).max() <= 1e-5
    assert (got.argmax(1) == ref.argmax(1)).all()
    mobilenet_v3_small(num_classes=CLASSES).load_state_dict(torchvision_keys(model.state_dict()), strict=True)


def test_parity_check_passes_eval_and_train(small):
    d, _, out, _ = small
    report = d / "parity.json"
    proc = run_main("parity", "check", str(out), "--json", str(report))
    assert proc.returncode == 0, proc.stdout[-3000:]
    rep = json.loads(report.read_text())
    assert rep["modes_passed"] == ["eval", "train"]
    points = {(p["point"], p["mode"]) for p in rep["points"] if p["reference"] == "tf"}
    # the stem, an SE unit's ReLU and gated output, a projection, a block, the last conv, in both modes
    inner = {"features.0:act", "features.4.block.2:act", "features.4.block.2:out", "features.4.block.3:bn",
             "features.4:out", "features.12:act", "pool"}
    assert {(p, m) for p in inner for m in ("eval", "train")} <= points
    assert {("classifier.0", "eval"), ("classifier.3", "eval"), ("output", "eval")} <= points  # torchvision's Linears
    checks = {c["name"]: c for c in rep["checks"]}
    assert checks["padding"]["passed"] and checks["activation"]["passed"]


def test_naive_port_fails_naming_padding_momentum_and_input_range(small):
    """The same weights in plain torchvision mobilenet_v3_small (a plain state dict, as users hold): symmetric
    padding from the stem on, momentum 0.01, no rescaling of the 0..255 input. (torchvision's eps 0.001 is
    TF's: that check passes.)"""
    import torch

    from convert.port import checkpoint
    from convert.port.head import torchvision_keys

    d, src, out, _ = small
    plain = d / "naive.pth"
    torch.save(torchvision_keys(checkpoint.load_module(out).state_dict()), plain)
    report = d / "naive.json"
    proc = run_main("parity", "check", str(plain), "--source", str(src), "--json", str(report))
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-2000:]
    rep = json.loads(report.read_text())
    assert rep["first_divergent"]["point"] == "features.0:bn"
    checks = {c["name"]: c for c in rep["checks"]}
    assert not checks["padding"]["passed"] and checks["padding"]["point"] == "features.0:bn"
    assert "first features.0.0 pads symmetric" in checks["padding"]["evidence"]
    convs = checks["padding"]["details"]["convs"]
    assert convs[0] == "features.0.0" and len(convs) == 5  # the stem and every stride-2 depthwise
    assert not checks["bn_momentum"]["passed"] and "0.01" in checks["bn_momentum"]["evidence"]
    assert not checks["preprocessing"]["passed"] and "[0.0, 255.0]" in checks["preprocessing"]["fix"]
    assert checks["bn_eps"]["passed"] and checks["activation"]["passed"]


def test_relu_for_hard_swish_is_named_at_its_layer(small):
    """The stem's Hardswish swapped for a ReLU in the port's module (what a converter that knows only ReLU
    writes): parity diverges first at features.0:act and the activation check names hard-swish there."""
    import copy
    import dataclasses

    import torch

    from parity.candidates import load_candidate
    from parity.references import resolve_source
    from parity.results import ParityConfig
    from parity.run import run

    _, _, out, _ = small
    cand = load_candidate(out)
    faulty = dataclasses.replace(cand, module=copy.deepcopy(cand.module))
    faulty.module.features[0][2] = torch.nn.ReLU()
    report = run(faulty, resolve_source(cand, None), ParityConfig(probes=4, against=("tf",), modes=("eval",)))
    assert not report.passed and report.first_divergent.point == "features.0:act"
    (act,) = [c for c in report.checks if c.name == "activation"]
    assert not act.passed and act.point == "features.0:act" and "hard-swish" in act.evidence
    assert "features.0.2" in act.evidence and act.fix == "use nn.Hardswish"


@pytest.mark.exhaustive
def test_relu_for_hard_swish_in_an_onnx_file_is_localised(small, tmp_path):
    """The port's own ONNX export with the stem's hard-swish (Add 3, Clip, Mul 1/6, Mul x) ending in a Relu
    of x instead: as an onnx2torch candidate it diverges first at the next BN, features.1.block.0:bn."""
    import onnx

    d, src, out, _ = small
    model = onnx.load(str(out.with_suffix(".onnx")))
    producer = {o: n for n in model.graph.node for o in n.output}
    swish = next(n for n in model.graph.node if n.op_type == "Mul" and any(
        (p := producer.get(i)) is not None and p.op_type == "Mul" and getattr(producer.get(p.input[0]), "op_type", "")
        == "Clip" for i in n.input))
    x = next(i for i in swish.input if producer.get(i) is None or producer[i].op_type != "Mul")
    swish.op_type = "Relu"
    del swish.input[:]
    swish.input.append(x)
    path = tmp_path / "relu.onnx"
    onnx.save(model, str(path))
    report = tmp_path / "r.json"
    proc = run_cli("parity", "check", str(path), "--source", str(src), "--json", str(report))
    assert proc.returncode == 1, proc.stdout[-3000:]
    assert json.loads(report.read_text())["first_divergent"]["point"] == "features.1.block.0:bn"


def test_mmdnn_refuses_naming_hard_swish(small, tmp_path):
    """MMdnn 0.3.1's IR has no hard-swish: `--via mmdnn` is one line, exit 2, nothing written."""
    _, src, _, _ = small
    out = tmp_path / "p.pth"
    proc = run_main("convert", "tf2torch", str(src), "-o", str(out), "--via", "mmdnn")
    line = assert_one_line_error(proc, 2, "has no HardSwish or HardSigmoid op")
    assert "--via onnx" in line and not list(tmp_path.iterdir())


@pytest.mark.parametrize(("arch", "alpha", "minimalistic", "named"),
                         [("mobilenet_v3_small", 1.0, True, "minimalistic=True"),
                          ("mobilenet_v3_large", 0.75, False, "alpha=0.75"),
                          ("mobilenet_v3_large", 0.75, True, "alpha=0.75, minimalistic=True")],
                         ids=["small-minimalistic", "large-alpha0.75", "large-both"])
def test_require_twin_names_the_keras_variant(arch, alpha, minimalistic, named):
    """A body with the widths and kernels of a Keras variant torchvision has no builder for is refused naming
    it; alpha 1.0's passes; a body of no Keras variant is left to the canonical mapping's message."""
    from convert.arch import get
    from convert.arch.mobilenet_v3 import keras_convs
    from convert.model.spec import ConvSpec, ModelSpec
    from convert.runtime.errors import TfportError

    def spec(convs):
        return ModelSpec([ConvSpec(f"c{i}", np.zeros((o, 1, k, k), np.float32), 1, False, (0,) * 4, False)
                          for i, (o, k) in enumerate(convs)], (64, 64, 3), arch)

    family = get(arch)
    with pytest.raises(TfportError, match=f"a {family.title} with {named}, which torchvision has no twin"):
        family.require_twin(spec(keras_convs(family.table, alpha, minimalistic)), "m.h5")
    family.require_twin(spec(keras_convs(family.table)), "m.h5")
    family.require_twin(spec(keras_convs(family.table)[:-1]), "m.h5")


@pytest.mark.exhaustive
def test_minimalistic_is_refused_naming_the_variant(tmp_path):
    """Keras's minimalistic=True (ReLU, 3x3, no squeeze-excitation) has no torchvision builder: one line."""
    import tf_keras

    path = tmp_path / "minimalistic.h5"
    tf_keras.applications.MobileNetV3Small(input_shape=(32, 32, 3), weights=None, include_top=False,
                                           minimalistic=True).save(path)
    proc = run_cli("convert", "tf2torch", str(path), "-o", str(tmp_path / "p.pth"))
    line = assert_one_line_error(proc, 2, "a MobileNetV3Small with minimalistic=True, which torchvision has no twin")
    assert "mobilenet_v3_small" in line and not (tmp_path / "p.pth").exists()


def test_the_trainer_trains_the_certified_port(small):
    """`backbones train --backbone PORT.pth` on the port `parity check` certified above (eval + train): pooled
    576 features into the head, BN in train mode, the BN monitor naming torchvision's paths."""
    d, _, out, _ = small
    assert (out.parent / (out.name + ".parity.json")).exists(), "run after test_parity_check_passes_eval_and_train"
    data, run = d / "data", d / "run"
    assert run_cli("backbones", "make-data", str(data), "--n", "20", "--size", "64").returncode == 0
    proc = run_main("backbones", "train", "--backbone", str(out), "--data", str(data), "--out", str(run),
                    "--epochs", "2", "--bs", "4", "--bn", "train", "--img-size", "64")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    result = json.loads((run / "result.json").read_text())
    assert result["status"] == "done" and len(result["epochs"]) == 2
    assert result["forecasts"][0]["layers"] == 34 and result["forecasts"][0]["momentum"] == 0.001
    worst = [row.rsplit(",", 1)[-1] for row in (run / "log.csv").read_text().splitlines()[1:]]
    assert worst and all(re.fullmatch(r"features\.\d+(\.block\.\d+)?\.1", w) for w in worst), worst


# --- the exhaustive matrix: Large end to end, every other form of both sizes --------------------------------
@pytest.fixture(scope="module")
def large(tmp_path_factory):
    """(sample folder, 64 px MobileNetV3Large .h5 with Keras's top, its port): converted by the CLI."""
    from convert.sample import SampleSpec, write_samples

    d = tmp_path_factory.mktemp("mobilenet_v3_large")
    (src,) = write_samples(d, SampleSpec(arch="mobilenet_v3_large", size=SIZE, classes=CLASSES),
                           ("keras2_h5",)).values()
    out = d / "ported.pth"
    proc = run_main("convert", "tf2torch", str(src), "-o", str(out))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return d, src, out


@pytest.mark.exhaustive
def test_large_is_certified_and_its_naive_port_fails(large):
    """Large as Small above: strict=True into mobilenet_v3_large(10), parity eval + train, and the plain state
    dict failing at the stem on padding, momentum and the input range."""
    import torch
    from torchvision.models import mobilenet_v3_large

    from convert.port import checkpoint
    from convert.port.head import torchvision_keys

    d, src, out = large
    sd = torchvision_keys(checkpoint.load_module(out).state_dict())
    mobilenet_v3_large(num_classes=CLASSES).load_state_dict(sd, strict=True)
    proc = run_cli("parity", "check", str(out), "--json", str(d / "parity.json"))
    assert proc.returncode == 0, proc.stdout[-3000:]
    rep = json.loads((d / "parity.json").read_text())
    assert rep["modes_passed"] == ["eval", "train"]
    points = {p["point"] for p in rep["points"]}
    assert {"features.4.block.2:out", "features.13.block.2:out", "features.7:out", "features.16:act"} <= points
    torch.save(sd, d / "naive.pth")
    proc = run_cli("parity", "check", str(d / "naive.pth"), "--source", str(src), "--json", str(d / "naive.json"))
    assert proc.returncode == 1, proc.stdout[-3000:]
    naive = json.loads((d / "naive.json").read_text())
    failed = {c["name"]: c for c in naive["checks"] if not c["passed"]}
    assert naive["first_divergent"]["point"] == "features.0:bn"
    assert {"padding", "bn_momentum", "preprocessing"} <= set(failed) and failed["padding"]["point"] == "features.0:bn"


FORMS = [(arch, form) for arch in SIZES for form in ("keras3", "savedmodel", "keras2_pb", "transfer_h5")]


def test_large_keras3_with_kerass_top_converts(tmp_path):
    """Keras 3's Large with its 1000-class top, as scripts/forms_table.py writes it (64 px): its decomposed BNs
    fused back are checked at the pooled features and logits, not at the softmax, which turns the logits'
    float32 rounding into 1.4e-5 relative output error (this form was refused for it)."""
    from convert import pipeline
    from convert.sample import SampleSpec, write_samples

    (src,) = write_samples(tmp_path, SampleSpec(arch="mobilenet_v3_large", size=(64, 64)), ("keras3",)).values()
    result = pipeline.convert(src, tmp_path / "p.pth", via="onnx")
    assert result.ok, result
    path = result.paths[0]
    assert path.canonical.meta["arch"] == "mobilenet_v3_large" and not path.canonical.meta["bn_folded"]
    (note,) = [n for n in result.source.notes if "fused back" in n]
    # compared at the logits the fuse differs by float32 rounding (1.5e-6 to 2.1e-6 measured on two machines);
    # at the softmax the same graphs differed by 7.9e-6 to 1.39e-5, over FUSE_TOL on one of them
    assert float(re.search(r"output equal to ([0-9.e+-]+)\)", note).group(1)) <= 5e-6, note


@pytest.mark.exhaustive
@pytest.mark.parametrize(("arch", "form"), FORMS, ids=[f"{a.rsplit('_', 1)[1]}-{f}" for a, f in FORMS])
def test_every_form_converts(tmp_path, arch, form):
    """Each form's port, Keras 3's decomposed BN fused back, certified by parity in eval and train mode."""
    import parity
    from convert import pipeline
    from convert.sample import SampleSpec, write_samples

    (src,) = write_samples(tmp_path, SampleSpec(arch=arch, size=SIZE, classes=CLASSES), (form,)).values()
    result = pipeline.convert(src, tmp_path / "p.pth", via="onnx")
    assert result.ok and result.paths[0].canonical.meta["arch"] == arch
    assert not result.paths[0].canonical.meta["bn_folded"]
    report = parity.check(str(tmp_path / "p.pth"))
    assert report and report.modes_passed == ["eval", "train"], report.summary()


@pytest.mark.exhaustive
def test_alpha_0_75_is_refused_naming_the_variant(tmp_path):
    import tf_keras

    path = tmp_path / "a075.h5"
    tf_keras.applications.MobileNetV3Large(input_shape=(32, 32, 3), weights=None, include_top=False,
                                           alpha=0.75).save(path)
    proc = run_cli("convert", "tf2torch", str(path), "-o", str(tmp_path / "p.pth"))
    assert_one_line_error(proc, 2, "a MobileNetV3Large with alpha=0.75, which torchvision has no twin")


@pytest.mark.exhaustive
@pytest.mark.parametrize("arch", SIZES, ids=SIZES)
def test_tflite_float32_converts(tmp_path, arch):
    """The TFLite converter's file of the sample (BN folded, HARD_SWISH ops, the squeeze-excitation's + 3
    folded into its second conv's bias, Rescaling as MUL/ADD): converted, input affine and classifier kept;
    parity certifies eval mode (the converter folded BN: no statistics to compare train mode with)."""
    import tensorflow as tf

    import parity
    from convert import pipeline
    from convert.sample import SampleSpec, keras2_model

    path = tmp_path / f"{arch}.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(
        keras2_model(SampleSpec(arch=arch, size=SIZE, classes=CLASSES))).convert())
    result = pipeline.convert(path, tmp_path / "p.pth", via="onnx")
    assert result.ok, [str(a) for p in result.paths for a in p.agreements]
    meta = result.paths[0].canonical.meta
    assert meta["arch"] == arch and meta["num_classes"] == CLASSES and meta["bn_folded"]
    assert meta["input_range"] == [0.0, 255.0] and np.allclose(meta["preprocess"]["scale"], 1 / 127.5)
    report = parity.check(str(tmp_path / "p.pth"))
    assert report and report.modes_passed == ["eval"], report.summary()


@pytest.mark.exhaustive
@pytest.mark.parametrize("top", [True, False], ids=["top", "no_top"])
def test_keras_weights_file_converts(tmp_path, top):
    """A legacy-HDF5 weights file as Keras Applications' `weights_mobilenet_v3_small_224_1.0_float[_no_top_v2].h5`
    are laid out (tf_keras save_weights of the sample): recognised from its layers, rebuilt, converted, certified
    by parity against the rebuilt model in eval and train mode."""
    import parity
    from convert import pipeline
    from convert.sample import SampleSpec, keras2_model

    model = keras2_model(SampleSpec(arch="mobilenet_v3_small", size=SIZE, classes=CLASSES))
    if not top:
        import tf_keras

        base = tf_keras.applications.MobileNetV3Small(input_shape=(*SIZE, 3), weights=None, include_top=False)
        base.set_weights(model.get_weights()[: len(base.get_weights())])
        model = base
    path = tmp_path / "weights.h5"
    model.save_weights(path)
    result = pipeline.convert(path, tmp_path / "p.pth", via="onnx", input_size=SIZE)
    assert result.ok and result.source.form == "keras_weights_h5"
    meta = result.paths[0].canonical.meta
    assert meta["arch"] == "mobilenet_v3_small" and meta["num_classes"] == (CLASSES if top else 0)
    report = parity.check(str(tmp_path / "p.pth"))
    assert report and report.modes_passed == ["eval", "train"], report.summary()


def test_keras3_weight_names_are_recognised():
    """Keras 3 flattens the names tf_keras nests (`conv_bn` for `Conv/BatchNorm`, `expanded_conv_1_depthwise`)
    and its `.weights.h5` lists layers alphabetically: recognised by `layer_key` with the convs put back in
    execution order (the variant check reads their widths in that order); top and classes as for tf_keras."""
    import keras

    from convert.arch import recognise_weights
    from convert.model.weights import layer_key

    assert layer_key("expanded_conv_1/squeeze_excite/Conv_1") == "expanded_conv_1_squeeze_excite_conv_1"
    assert layer_key("Conv_1/BatchNorm") == "conv_1_bn" and layer_key("Logits") == "logits"
    model = keras.applications.MobileNetV3Small(input_shape=(32, 32, 3), weights=None, classes=CLASSES)
    shapes = {x.name: tuple(tuple(w.shape) for w in x.weights) for x in model.layers if x.weights}
    assert "conv_bn" in shapes and "Conv/BatchNorm" not in shapes
    arch, match = recognise_weights(dict(sorted(shapes.items())), "model.weights.h5")
    assert arch.name == "mobilenet_v3_small" and match.include_top and match.classes == CLASSES
    assert match.classifier_layers == ("conv_2", "logits")


@pytest.mark.exhaustive
def test_keras3_weights_file_converts(tmp_path):
    """Keras 3 `save_weights` of the Small sample (its top, 10 classes): rebuilt with tf_keras (names matched
    by `layer_key`), converted, the port returning the Keras 3 model's output; parity certifies eval + train."""
    import keras
    import torch

    import parity
    from convert import pipeline
    from convert.model.probe import probe_inputs
    from convert.port import checkpoint
    from convert.sample import SampleSpec, keras2_model

    k2 = keras2_model(SampleSpec(arch="mobilenet_v3_small", size=SIZE, classes=CLASSES))
    k3 = keras.applications.MobileNetV3Small(input_shape=(*SIZE, 3), weights=None, classes=CLASSES)
    k3.set_weights(k2.get_weights())
    path = tmp_path / "small.weights.h5"
    k3.save_weights(str(path))
    out = tmp_path / "p.pth"
    result = pipeline.convert(path, out, via="onnx", input_size=SIZE)
    assert result.ok and result.source.form == "keras3_weights_h5"
    port = checkpoint.load_module(out)
    x = probe_inputs(4, SIZE, (0.0, 255.0), seed=5)
    ref = np.asarray(k3(x, training=False))
    with torch.no_grad():
        got = port(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy()
    assert np.abs(got - ref).max() / np.abs(ref).max() <= 1e-5
    report = parity.check(str(out))
    assert report and report.modes_passed == ["eval", "train"], report.summary()


@pytest.mark.exhaustive
def test_repair_rebuilds_a_plain_state_dict(small, tmp_path):
    """`convert repair` on MobileNetV3: the plain state dict (torchvision semantics, the naive port) becomes
    the certified port again: TF SAME padding, eps 1e-3, momentum 0.001, the in-model Rescaling; weights
    unchanged; verified against TF before it is written."""
    import torch

    from convert.port import checkpoint
    from convert.port.head import torchvision_keys
    from convert.repair import repair

    _, src, out, _ = small
    certified, cert_meta = checkpoint.load(out)
    torch.save(torchvision_keys(certified), tmp_path / "plain.pth")
    agreements, fixed = repair(tmp_path / "plain.pth", tmp_path / "fixed.pth", src, probes=4)
    assert fixed is not None and all(a.ok(1e-5) for a in agreements), agreements
    sd, meta = checkpoint.load(fixed)
    for key in ("bn", "padding", "preprocess", "input_range", "num_classes"):
        assert meta[key] == cert_meta[key], key
    assert all(torch.equal(sd[k], v) for k, v in torchvision_keys(certified).items())
