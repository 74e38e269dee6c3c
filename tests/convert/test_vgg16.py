"""VGG16 (issue 22): Keras's VGG16 into stock torchvision vgg16 keys, end to end, and its pitfall named.

One module-scoped 64x32 VGG16 (tf_keras, include_top=False -> Flatten -> Dense(32, relu) -> Dropout ->
Dense(5, softmax): the transfer sample, seeded conv and Dense biases), converted once by the CLI and
checked once by `parity check`. 64 px high, not 32: the last map is then 2x1x512, so NHWC and NCHW
flatten orders differ (at 32x32 the map is 1x1 and any order is the same); 32 wide keeps it cheap and
non-square. The naive port — its weights in plain torchvision with the first Dense's columns as Keras
holds them — must fail naming the flatten order. A 32 px GAP feature extractor converts in process. The
224 px include_top model (torchvision's whole classifier), the other forms, MMdnn and a Keras
Applications weights file run with scripts/test --exhaustive.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from tests.conftest import run_cli, run_main

SIZE = (64, 32)  # H, W: the last map is 2x1x512, where NHWC and NCHW flatten orders differ (at 32x32 it is 1x1)


@pytest.fixture(scope="module")
def vgg(tmp_path_factory):
    """(sample folder, the transfer .h5, its port, the tf_keras model), the model as `convert sample` builds it."""
    from convert.sample import SampleSpec, transfer_model

    d = tmp_path_factory.mktemp("vgg16")
    keras = transfer_model(SampleSpec(arch="vgg16", size=SIZE))
    src = d / "vgg16_64x32_transfer.h5"
    keras.save(src)
    out = d / "port" / "ported.pth"
    out.parent.mkdir()
    proc = run_main("convert", "tf2torch", str(src), "-o", str(out))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return d, src, out, keras


@pytest.mark.parametrize("src, dst", [("NHWC", "NCHW"), ("NCHW", "NHWC")], ids=["nhwc-to-nchw", "nchw-to-nhwc"])
def test_flatten_columns_read_the_same_map_in_the_other_order(src, dst):
    """A Dense on a map flattened `src`-wise equals the permuted Dense on the same map flattened `dst`-wise."""
    from convert.model.layouts import flatten_columns

    rng = np.random.default_rng(0)
    c, h, w = 4, 2, 3
    x = rng.normal(size=(2, c, h, w))
    flat = {"NCHW": x.reshape(2, -1), "NHWC": x.transpose(0, 2, 3, 1).reshape(2, -1)}
    weight = rng.normal(size=(5, c * h * w))
    np.testing.assert_allclose(flat[src] @ weight.T, flat[dst] @ flatten_columns(weight, (c, h, w), src, dst).T)
    assert not np.allclose(flat[dst] @ weight.T, flat[src] @ weight.T)  # the order matters at 2x3


def test_recognised_from_its_op_census():
    """13 convs, no depthwise, 5 max-pools: VGG16, with or without adds (preprocessing inside the model);
    4 pools is not, and the refusal says what a VGG16 has."""
    from convert.arch import recognise
    from convert.model.census import Census
    from convert.runtime.errors import TfportError

    assert recognise(Census(13, 0, 0, 5, 0), "f").name == "vgg16"
    assert recognise(Census(13, 0, 16, 5, 0), "f").name == "vgg16"
    with pytest.raises(TfportError, match="a VGG16 has 13 convs, no depthwise convs and 5 max-poolings"):
        recognise(Census(13, 0, 0, 4, 0), "f")


def test_a_pure_shift_after_a_conv_is_its_bias_where_torchvision_convs_have_one():
    """ONNX and TFLite readers describe "conv + bias, nothing after" as a folded BN (MobileNetV2's BN, folded by
    tf2onnx / the TFLite converter); for VGG16 (`conv_bias`) a pure shift is the conv's own bias, its taps
    moving with it, while a BN that scales stays a BN (the canonical mapping then names the misfit)."""
    from convert.arch import in_torchvision_order
    from convert.model.spec import BNSpec, ConvSpec, ModelSpec

    w = np.zeros((4, 3, 3, 3), np.float32)
    shift = BNSpec.folded_affine("c0/folded_bn", np.ones(1), np.arange(4, dtype=np.float32))
    scale = BNSpec.folded_affine("c1/folded_bn", np.full(4, 2.0), np.zeros(4, np.float32))
    layers = [ConvSpec("c0", w, 1, False, (1,) * 4, True), shift, ConvSpec("c1", w[:, :3], 1, False, (1,) * 4, True),
              scale]
    spec = ModelSpec(layers=list(layers), input_shape=(8, 8, 3), arch="vgg16", taps={1: {":act": "relu0"}, 3: {}})
    got = in_torchvision_order(spec)
    assert [type(x).__name__ for x in got.layers] == ["ConvSpec", "ConvSpec", "BNSpec"]
    np.testing.assert_array_equal(got.layers[0].bias, np.arange(4))
    assert got.taps[0] == {":act": "relu0"} and got.layers[2] is scale
    assert in_torchvision_order(dataclasses.replace(spec, arch="mobilenet_v2")).layers == layers  # BN it is


def test_the_description_without_tensors_is_the_ports(vgg, tmp_path):
    """parity describes the source without its tensors (to_torchvision(tensors=False): no copy, no fc1
    permutation, no finiteness pass): the same metadata as the port's. NaN weights never reach it: the
    source's loader refuses them in one line naming the layer (here the first Dense, whose columns the
    description leaves as they are), as the description with tensors does."""
    import shutil

    import h5py

    from convert.port.canonical import to_torchvision
    from convert.runtime.errors import TfportError
    from convert.sources import load_source

    _, src, _, _ = vgg
    spec = load_source(src).spec
    described = to_torchvision(spec, "src", tensors=False)
    assert described.meta == to_torchvision(spec, "src").meta
    assert all(t.numel() == 0 for t in described.state_dict.values()) and described.head_state

    dense = spec.head[0]
    weight = dense.weight.copy()
    weight[3, 7] = np.nan
    bad = dataclasses.replace(spec, layers=[dataclasses.replace(x, weight=weight) if x is dense else x
                                            for x in spec.layers])
    with pytest.raises(TfportError, match="contain NaN or Inf"):
        to_torchvision(bad, "src")
    nan_file = tmp_path / "nan.h5"
    shutil.copyfile(src, nan_file)
    with h5py.File(nan_file, "r+") as f:  # the first Dense ('fc'), as tf_keras saved it: (in, out)
        kernel = f["model_weights/fc/fc/kernel:0"]
        data = kernel[...]
        data[7, 3] = np.nan
        kernel[...] = data
    with pytest.raises(TfportError, match=f"layer '{dense.name}' has NaN or Inf in its weight"):
        load_source(nan_file)


def test_the_port_is_the_source_in_torchvision_keys(vgg):
    """Fed the source's input, the port returns the source's output (<= 1e-5 relative, same top-1) and its
    first Dense's output; its backbone loads strict=True into stock torchvision vgg16's features; the first
    Dense's columns are Keras's permuted from (h, w, c) to (c, h, w)."""
    import tf_keras
    import torch
    from torchvision.models import vgg16

    from convert.model.probe import probe_inputs
    from convert.port import checkpoint
    from convert.port.head import torchvision_keys

    _, _, out, keras = vgg
    model = checkpoint.load_module(out)
    meta = model.tfport_meta
    assert meta["arch"] == "vgg16" and meta["num_classes"] == 0  # a head of its own: head.0, head.1
    assert meta["flatten"] == {"order": "NCHW", "source_order": "NHWC", "shape": [512, 2, 1], "dense": "head.0"}
    assert meta["input_range"] == [-123.68, 151.061] and meta["bn"] == {} and meta["stride"] == {}
    assert [x["activation"] for x in meta["head"]["layers"]] == ["relu", "softmax"]
    kernel = keras.get_layer("fc").get_weights()[0]  # (1024, 32), rows in (h, w, c) order
    expect = kernel.T.reshape(32, 2, 1, 512).transpose(0, 3, 1, 2).reshape(32, -1)
    np.testing.assert_array_equal(model.state_dict()["head.0.weight"].numpy(), expect)
    x = probe_inputs(4, SIZE, tuple(meta["input_range"]), seed=3)
    ref = keras(x, training=False).numpy()
    ref_fc = tf_keras.Model(keras.input, keras.get_layer("fc").output)(x, training=False).numpy()
    got_fc = []
    hook = model.head[0].register_forward_hook(lambda _m, _i, o: got_fc.append(o.numpy()))
    with torch.no_grad():
        got = model(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy()
    hook.remove()
    assert np.abs(np.maximum(got_fc[0], 0) - ref_fc).max() / np.abs(ref_fc).max() <= 1e-5  # Keras's is after ReLU
    assert np.abs(got - ref).max() / np.abs(ref).max() <= 1e-5
    assert (got.argmax(1) == ref.argmax(1)).all()
    sd = torchvision_keys(model.state_dict())
    assert {k.split(".")[0] for k in sd} == {"features"}
    with torch.device("meta"):  # stock torchvision vgg16, its 120M-parameter classifier never allocated
        features = vgg16().features
    features.to_empty(device="cpu").load_state_dict({k[len("features."):]: v for k, v in sd.items()}, strict=True)


def test_parity_check_passes_in_eval_mode_and_says_why_not_train(vgg):
    """`parity.check` (what `python -m parity check` runs, in process: TF and torch are loaded already) passes
    the port and certifies it; the CLI's exit codes are the naive port's test below."""
    import parity

    d, _, out, _ = vgg
    report = parity.check(str(out))
    assert report, report.summary()
    report.write_certificate()
    rep = json.loads(report.write_json(d / "parity.json").read_text())
    assert rep["modes_passed"] == ["eval"]
    checks = {c["name"]: c for c in rep["checks"]}
    assert checks["flatten_order"]["passed"] and "NHWC columns permuted" in checks["flatten_order"]["evidence"]
    assert "no BatchNorm" in checks["mode"]["evidence"]
    assert not {"bn_eps", "bn_momentum", "bn_statistics"} & set(checks)  # nothing to compare without BN
    points = [p["point"] for p in rep["points"] if p["reference"] == "tf"]
    assert points[:3] == ["features.1", "features.3", "features.4"] and points[-3:] == ["head.0", "head.1", "output"]
    assert "features.30" in points and "pool" not in points  # a flatten head: the last pool's map is the point


def test_naive_port_fails_at_the_first_dense_naming_the_flatten_order(vgg):
    """The same weights in plain torchvision (a plain state dict, as users hold one), the first Dense's
    columns as Keras lays them out (h, w, c): every conv point passes, head.0 is the first divergent."""
    import torch

    from convert.port import checkpoint

    d, src, out, _ = vgg
    sd = checkpoint.load_module(out).state_dict()
    w = sd["head.0.weight"]
    sd["head.0.weight"] = w.reshape(32, 512, 2, 1).permute(0, 2, 3, 1).reshape(32, -1).contiguous()
    plain = d / "naive_vgg16.pth"
    torch.save(sd, plain)
    report = d / "naive.json"
    proc = run_main("parity", "check", str(plain), "--source", str(src), "--json", str(report),
                    "--against", "tf", "--probes", "2")
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-2000:]
    rep = json.loads(report.read_text())
    assert rep["first_divergent"]["point"] == "head.0"
    check = next(c for c in rep["checks"] if c["name"] == "flatten_order")
    assert not check["passed"] and check["point"] == "head.0"
    assert check["cause"] == "flatten order: NHWC columns where torchvision flattens NCHW"
    assert all(p["passed"] for p in rep["points"] if p["point"].startswith("features."))


def test_the_trainer_trains_the_certified_port(vgg):
    """`backbones train --backbone PORT.pth` on the port `parity check` certified above (eval): the pooled
    512 features (global average, as for torchvision's backbones, so any image size: 32 px here) into the head."""
    d, _, out, _ = vgg
    assert (out.parent / (out.name + ".parity.json")).exists(), "run after the parity check passes"
    data, run = d / "data", d / "run"
    assert run_cli("backbones", "make-data", str(data), "--n", "20", "--size", "32").returncode == 0
    proc = run_main("backbones", "train", "--backbone", str(out), "--data", str(data), "--out", str(run),
                    "--epochs", "2", "--bs", "4", "--img-size", "32")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    result = json.loads((run / "result.json").read_text())
    assert result["status"] == "done" and len(result["epochs"]) == 2
    assert all(np.isfinite(e["train_loss"]) for e in result["epochs"]), result["epochs"]


def test_a_gap_feature_extractor_is_features_and_the_pooled_vector(tmp_path):
    """include_top=False, pooling="avg" at 32 px (in process: TF is loaded already): no Flatten, no head, the
    pooled 512 features out; the state dict is `features.*` alone (no 120M-parameter classifier)."""
    import tf_keras

    from convert import pipeline
    from convert.model.probe import probe_inputs
    from convert.paths.worker import torch_outputs
    from convert.port import checkpoint

    tf_keras.utils.set_random_seed(1)
    keras = tf_keras.applications.VGG16(weights=None, include_top=False, pooling="avg", input_shape=(32, 32, 3))
    src = tmp_path / "vgg16_gap.h5"
    keras.save(src)
    result = pipeline.convert(src, tmp_path / "gap.pth")
    assert result.ok, [(a.what, a.rel) for p in result.paths for a in p.agreements]
    model = checkpoint.load_module(tmp_path / "gap.pth")
    meta = model.tfport_meta
    assert meta["head"] == {"pool": "avg", "classifier": None, "layers": [], "output": "pooled"}
    assert meta["flatten"] is None and meta["num_classes"] == 0
    assert {k.split(".")[0] for k in model.state_dict()} == {"features"}
    x = probe_inputs(2, (32, 32), tuple(meta["input_range"]), seed=2)
    ref = keras(x, training=False).numpy()
    got = torch_outputs(model, x)["output"]
    assert got.shape == (2, 512) and np.abs(got - ref).max() / np.abs(ref).max() <= 1e-5


@pytest.fixture(scope="module")
def top64(tmp_path_factory):
    """Keras's VGG16 with its top at 64x32, 10 classes: Flatten (2x1x512) -> fc1 -> fc2 -> predictions, which
    do not fit torchvision's classifier (25088 inputs): the port's own head, the same permutation."""
    from convert.sample import SampleSpec, keras2_model

    spec = SampleSpec(arch="vgg16", size=SIZE, classes=10)
    return tmp_path_factory.mktemp("vgg16_top64"), spec, keras2_model(spec)


@pytest.mark.exhaustive
@pytest.mark.parametrize("form", ["keras2_h5", "keras3", "savedmodel", "keras2_pb", "tflite"])
def test_every_form_converts(top64, form):
    """Every form users hold (TFLite's written by the converter users run): head.0 is fc1, columns permuted;
    `parity check` certifies each port in eval mode (no BatchNorm)."""
    import tensorflow as tf

    import parity
    from convert import pipeline
    from convert.sample import write_samples

    d, spec, k2 = top64
    if form == "tflite":
        src = d / "vgg16_64.tflite"
        src.write_bytes(tf.lite.TFLiteConverter.from_keras_model(k2).convert())
    else:
        (src,) = write_samples(d / form, spec, (form,), k2=k2).values()
    result = pipeline.convert(src, d / f"{form}.pth", via="onnx")
    assert result.ok, [(a.what, a.rel) for p in result.paths for a in p.agreements]
    meta = result.paths[0].canonical.meta
    assert meta["arch"] == "vgg16" and len(meta["head"]["layers"]) == 3
    assert meta["flatten"] == {"order": "NCHW", "source_order": "NHWC", "shape": [512, 2, 1], "dense": "head.0"}
    report = parity.check(str(d / f"{form}.pth"))
    assert report and report.modes_passed == ["eval"], report.summary()


@pytest.fixture(scope="module")
def mmdnn_port(vgg):
    """`--via mmdnn` on the transfer .h5: (the port, the stdout of convert); MMdnn's emitted .py and .npy beside."""
    d, src, _, _ = vgg
    out = d / "mmdnn" / "ported.pth"
    out.parent.mkdir()
    proc = run_main("convert", "tf2torch", str(src), "-o", str(out), "--via", "mmdnn")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    return out, proc.stdout


@pytest.mark.exhaustive  # ~35 s with MMdnn's conversion; `convert repair` of a new architecture by
# test_resnet50.py's repair tests, the Dense permutation NHWC -> NCHW by test_flatten_columns_* above
def test_repair_of_mmdnns_emitted_vgg16_is_the_certified_port(vgg, mmdnn_port, tmp_path):
    """`convert repair` on MMdnn's emitted VGG16 (a .py and its .npy, read as data): no BN, so its 13 convs stay
    convs; its two Dense layers go to the source's head (head.0, head.1), the first with its columns permuted
    from MMdnn's NHWC to the NCHW the port flattens in. The repaired port equals the direct one's weights and
    passes parity in eval mode."""
    from convert.port import checkpoint

    d, src, port, _ = vgg
    fixed = tmp_path / "fixed.pth"
    proc = run_main("convert", "repair", str(mmdnn_port[0].with_suffix(".mmdnn.py")), "--source", str(src),
                    "-o", str(fixed))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    repaired, meta = checkpoint.load(fixed)
    direct, _ = checkpoint.load(port)
    assert repaired.keys() == direct.keys() and {"head.0.weight", "head.1.weight"} <= repaired.keys()
    assert meta["path"] == "repair of ported.mmdnn.py"
    worst = max(float((repaired[k] - direct[k]).abs().max()) for k in direct if direct[k].is_floating_point())
    assert worst <= 1e-6, worst
    code = run_main("parity", "check", str(fixed), "--json", str(tmp_path / "p.json")).returncode
    assert code == 0 and json.loads((tmp_path / "p.json").read_text())["modes_passed"] == ["eval"]


@pytest.mark.exhaustive
def test_mmdnn_takes_the_graph_and_its_emitted_model_has_the_flatten_bug(vgg, mmdnn_port):
    """`--via mmdnn`: MMdnn 0.3.1's parser takes VGG16; its emitted model flattens NCHW with TF's NHWC columns
    (shown, not gating: the canonical port from its IR is held to 1e-5), and parity names that bug on the
    emitted .py a user holds."""
    d, src, _, _ = vgg
    out, stdout = mmdnn_port
    assert "flatten-order bug" in stdout
    report = d / "mmdnn.json"
    proc = run_cli("parity", "check", str(out.with_suffix(".mmdnn.py")), "--source", str(src), "--json", str(report))
    assert proc.returncode == 1
    check = next(c for c in json.loads(report.read_text())["checks"] if c["name"] == "flatten_order")
    assert check["cause"] == "flatten order: NHWC columns where MMdnn's emitted model flattens NCHW"


@pytest.mark.exhaustive
def test_the_224_top_is_torchvision_classifier_and_the_naive_port_fails_at_classifier_0(tmp_path):
    """Keras's include_top VGG16 at 224 px (7x7 map: torchvision's avgpool is the identity) is torchvision's
    vgg16 whole, classifier included (fc1 -> classifier.0, permuted); the naive port fails at classifier.0."""
    import torch
    from torchvision.models import vgg16

    from convert.port import checkpoint
    from convert.sample import SampleSpec, write_samples

    (src,) = write_samples(tmp_path, SampleSpec(arch="vgg16", size=(224, 224), classes=10), ("keras2_h5",)).values()
    out = tmp_path / "ported.pth"
    proc = run_cli("convert", "tf2torch", str(src), "-o", str(out), timeout=1800)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    model = checkpoint.load_module(out)
    meta = model.tfport_meta
    assert meta["num_classes"] == 10 and meta["head"]["layers"] == [] and meta["head"]["output"] == "classifier"
    assert meta["flatten"]["dense"] == "classifier.0" and meta["flatten"]["shape"] == [512, 7, 7]
    sd = model.state_dict()
    vgg16(num_classes=10).load_state_dict(sd, strict=True)
    w = sd["classifier.0.weight"]
    sd["classifier.0.weight"] = w.reshape(4096, 512, 7, 7).permute(0, 2, 3, 1).reshape(4096, -1).contiguous()
    plain = tmp_path / "naive.pth"
    torch.save(sd, plain)
    report = tmp_path / "naive.json"
    proc = run_cli("parity", "check", str(plain), "--source", str(src), "--json", str(report), "--against", "tf",
                   "--probes", "2", timeout=1800)
    assert proc.returncode == 1, proc.stdout[-3000:]
    rep = json.loads(report.read_text())
    assert rep["first_divergent"]["point"] == "classifier.0"
    check = next(c for c in rep["checks"] if c["name"] == "flatten_order")
    assert check["cause"] == "flatten order: NHWC columns where torchvision flattens NCHW"


@pytest.mark.exhaustive
def test_a_keras_applications_weights_file_converts(tmp_path):
    """What `~/.keras/models/vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5` is (tf_keras save_weights, the
    legacy layout): recognised by its layers' names, rebuilt at --input-size, converted, certified in eval mode."""
    import tf_keras

    import parity
    from convert import pipeline

    tf_keras.utils.set_random_seed(2)
    tf_keras.applications.VGG16(weights=None, include_top=False, input_shape=(32, 32, 3)).save_weights(
        tmp_path / "vgg16_notop.h5")
    result = pipeline.convert(tmp_path / "vgg16_notop.h5", tmp_path / "w.pth", input_size=(32, 32))
    assert result.ok and result.paths[0].canonical.meta["arch"] == "vgg16"
    assert "VGG16 without its classifier" in result.source.notes[0]
    report = parity.check(str(tmp_path / "w.pth"))
    assert report and report.modes_passed == ["eval"], report.summary()
