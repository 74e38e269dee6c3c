"""ResNet50 (issue 22): Keras's v1 network into stock torchvision resnet50 keys, end to end.

One session-scoped 32x32 ResNet50 (tf_keras, include_top=False, GAP -> Dropout -> Dense softmax: the
transfer sample, seeded conv biases and BN statistics), converted once by the CLI through both paths
(the ONNX port written, MMdnn's emitted model beside it) and checked once by `parity check`; the naive
port (its weights in plain torchvision, a plain state dict) must fail naming the stride placement;
`convert repair` rebuilds MMdnn's emitted model (momentum 0) into the certified port. Other forms (Keras 3,
SavedModel, frozen .pb, TFLite, weights files) and their parity run with scripts/test --exhaustive.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from tests.conftest import run_cli, run_main

SIZE = (32, 32)


@pytest.fixture(scope="module")
def resnet(tmp_path_factory):
    """(sample folder, the transfer .h5, its port, the tf_keras model)."""
    import tf_keras

    from convert.sample import SampleSpec, write_samples

    d = tmp_path_factory.mktemp("resnet50")
    spec = SampleSpec(arch="resnet50", size=SIZE)
    (src,) = write_samples(d, spec, ("transfer_h5",)).values()
    out = d / "port" / "ported.pth"
    out.parent.mkdir()
    proc = run_main("convert", "tf2torch", str(src), "--via", "both", "-o", str(out))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return d, src, out, tf_keras.models.load_model(src, compile=False)


def test_execution_order_rebuilds_torchvision_order_from_graph_orders():
    """tf_keras's frozen graph runs the shortcut first with its BN interleaved, tf2onnx last: both map to
    torchvision's conv1, conv2, conv3, downsample, each conv followed by its BN."""
    import torch
    from torch import nn

    from convert.arch import get
    from convert.model.spec import BNSpec, ConvSpec

    with torch.device("meta"):
        tv = get("resnet50").torchvision({}, 0)
    layers, keys = [], []
    for key, m in tv.named_modules():
        if isinstance(m, nn.Conv2d):
            layers.append(ConvSpec(key, np.zeros(m.weight.shape, np.float32), 1, False, (0,) * 4, False))
            keys.append(key)
        elif isinstance(m, nn.BatchNorm2d):
            z = np.zeros(m.num_features, np.float32)
            layers.append(BNSpec(key, z, z, z, z, 1e-5))
            keys.append(key)
    names = [x.name for x in layers]

    def keras_order(names):  # per block: shortcut conv, conv1, shortcut BN, BN1, then the rest
        out, i = [], 0
        while i < len(names):
            if names[i].endswith(".0.conv1") and f"{names[i][:-6]}.downsample.0" in names:
                block = names[i][:-6]
                out += [f"{block}.downsample.0", names[i], f"{block}.downsample.1", names[i + 1]]
                out += [n for n in names[i + 2:] if n.startswith(block + ".") and "downsample" not in n]
                i = names.index(f"{block}.downsample.1") + 1
            else:
                out.append(names[i])
                i += 1
        return out

    by_name = dict(zip(names, layers, strict=True))
    shuffled = [by_name[n] for n in keras_order(names)]
    assert [x.name for x in shuffled] != names
    order = get("resnet50").execution_order(shuffled)
    assert [shuffled[i].name for i in order] == names
    assert get("resnet50").execution_order(layers) == list(range(len(layers)))


def _torchvision_layers(reads: bool):
    """ResNet50's conv and BN specs in torchvision's module order, named by its keys; with `reads`, each
    conv says which conv it reads (data flow: conv2 reads conv1, conv3 conv2; a shortcut no conv)."""
    import torch
    from torch import nn

    from convert.arch import get
    from convert.model.spec import BNSpec, ConvSpec

    with torch.device("meta"):
        tv = get("resnet50").torchvision({}, 0)
    layers = []
    for key, m in tv.named_modules():
        if isinstance(m, nn.Conv2d):
            parent, _, leaf = key.rpartition(".")
            before = f"{parent}.conv{int(leaf[-1]) - 1}" if leaf in ("conv2", "conv3") else None
            layers.append(ConvSpec(key, np.zeros(m.weight.shape, np.float32), 1, False, (0,) * 4, False,
                                   reads=before if reads else None))
        elif isinstance(m, nn.BatchNorm2d):
            z = np.zeros(m.num_features, np.float32)
            layers.append(BNSpec(key, z, z, z, z, 1e-5))
    return layers


@pytest.mark.parametrize("reads", [True, False], ids=["data_flow", "order_only"])
def test_execution_order_takes_conv3_by_data_flow_where_shapes_leave_it_open(reads):
    """tf2onnx's reading of a TFLite file runs layer1.0's shortcut between the 3x3 and conv3, both 64 -> 256:
    which conv reads the 3x3 (ConvSpec.reads) tells them apart; order alone takes the later one as the
    shortcut, wrongly here (conversion then fails on the outputs: it measured 0.32 relative)."""
    from convert.arch import get

    layers = _torchvision_layers(reads)
    names = [x.name for x in layers]

    def shortcut_before_conv3(names):
        out = list(names)
        for block in ("layer1.0", "layer2.0", "layer3.0", "layer4.0"):
            for key in (f"{block}.downsample.0", f"{block}.downsample.1"):
                out.remove(key)
            at = out.index(f"{block}.conv3")
            out[at:at] = [f"{block}.downsample.0", f"{block}.downsample.1"]
        return out

    by_name = dict(zip(names, layers, strict=True))
    shuffled = [by_name[n] for n in shortcut_before_conv3(names)]
    got = [shuffled[i].name for i in get("resnet50").execution_order(shuffled)]
    if reads:
        assert got == names
    else:  # layer1.0 alone is open (elsewhere the shortcut's input width differs from conv3's): swapped there
        assert got[6:10] == ["layer1.0.downsample.0", "layer1.0.downsample.1", "layer1.0.conv3", "layer1.0.bn3"]
        assert got[:6] + got[10:] == names[:6] + names[10:]


def test_keras3_batchnorms_pair_with_the_graph_by_what_they_compute():
    """Keras 3 lists ResNet50's first-block BNs as _1_bn, _2_bn, _0_bn, _3_bn; a traced graph may run the
    shortcut's first: each decomposed BN takes the Keras BN reproducing its x * a + b, wherever it is listed,
    and one no Keras BN reproduces refuses the file in one line."""
    from convert.model.spec import BNSpec
    from convert.runtime.errors import TfportError
    from convert.sources.keras_files import _in_graph_order

    rng = np.random.default_rng(0)

    def real(name, c):
        return BNSpec(name, rng.uniform(0.6, 1.4, c).astype(np.float32), rng.normal(0, 0.3, c).astype(np.float32),
                      rng.normal(0, 0.3, c).astype(np.float32), rng.uniform(0.5, 2, c).astype(np.float32), 1.001e-5)

    def folded(bn):
        a = bn.gamma.astype(np.float64) / np.sqrt(bn.var.astype(np.float64) + bn.eps)
        return BNSpec.folded_affine(bn.name + "#folded", a, bn.beta - bn.mean * a)

    keras_order = [real("conv2_block1_1_bn", 64), real("conv2_block1_2_bn", 64), real("conv2_block1_0_bn", 256),
                   real("conv2_block1_3_bn", 256)]
    graph = [folded(keras_order[i]) for i in (2, 0, 1, 3)]  # the shortcut's first
    assert [b.name for b in _in_graph_order(graph, keras_order, "x.keras")] == \
        ["conv2_block1_0_bn", "conv2_block1_1_bn", "conv2_block1_2_bn", "conv2_block1_3_bn"]
    with pytest.raises(TfportError, match="conv2_block1_0_bn' holds statistics that do not match"):
        _in_graph_order([folded(real("other", 256))] + graph[1:], keras_order, "x.keras")


def test_conv_bias_folds_into_the_running_mean_in_eval_and_train_mode():
    """BN(conv(x) + b) == BN'(conv(x)) with running_mean - b: outputs equal over train steps, running
    means differ by exactly b, variances equal; then equal in eval mode."""
    import copy

    import torch
    from torch import nn

    torch.manual_seed(0)
    conv_b = nn.Conv2d(4, 6, 3, padding=1, bias=True)
    nn.init.normal_(conv_b.bias, 0, 2.0)
    bn = nn.BatchNorm2d(6, eps=1.001e-5, momentum=0.01)
    bn.running_mean.normal_(0, 1)
    bn.running_var.uniform_(0.5, 2)
    conv = nn.Conv2d(4, 6, 3, padding=1, bias=False)
    conv.weight.data.copy_(conv_b.weight.data)
    folded = copy.deepcopy(bn)
    folded.running_mean -= conv_b.bias.data
    a, b = nn.Sequential(conv_b, bn).train(), nn.Sequential(conv, folded).train()
    with torch.no_grad():
        for _ in range(5):
            x = torch.randn(8, 4, 10, 10) * 3 + 1
            ya, yb = a(x), b(x)
            assert float((ya - yb).abs().max()) <= 1e-5 * float(ya.abs().max())
        np.testing.assert_allclose(bn.running_mean - conv_b.bias, folded.running_mean, atol=1e-6)
        np.testing.assert_allclose(bn.running_var, folded.running_var, rtol=1e-6)
        a.eval(), b.eval()
        x = torch.randn(2, 4, 10, 10)
        assert float((a(x) - b(x)).abs().max()) <= 1e-5 * float(a(x).abs().max())


def test_sample_architectures_are_the_registered_ones():
    from convert.arch import ARCHITECTURES
    from convert.model.options import SAMPLE_ARCHS

    assert set(SAMPLE_ARCHS) == set(ARCHITECTURES)


def test_the_port_is_the_source_and_torchvision_keys(resnet):
    """Fed the source's input, the port returns the source's output (<= 1e-5 relative, same top-1); its
    backbone loads strict=True into stock torchvision resnet50(num_classes=5, the source's); v1 strides and folded
    conv biases recorded."""
    import torch
    from torchvision.models import resnet50

    from convert.model.probe import probe_inputs
    from convert.port import checkpoint
    from convert.port.head import torchvision_keys

    _, _, out, keras = resnet
    model = checkpoint.load_module(out)
    meta = model.tfport_meta
    assert meta["arch"] == "resnet50" and meta["num_classes"] == 5  # GAP -> Dense(5): torchvision's fc
    assert meta["stride"] == {f"layer{i}.0.conv{j}": 2 if j == 1 else 1 for i in (2, 3, 4) for j in (1, 2)}
    assert len(meta["conv_bias_folded"]) == 53
    assert {round(b["eps"], 9) for b in meta["bn"].values()} == {1.001e-5}
    assert {b["momentum"] for b in meta["bn"].values()} == {0.01}
    assert meta["input_range"] == [-123.68, 151.061]  # caffe-preprocessed BGR, as the Keras model is fed
    import tf_keras

    x = probe_inputs(4, SIZE, tuple(meta["input_range"]), seed=3)
    ref = keras(x, training=False).numpy()
    ref_pooled = tf_keras.Model(keras.input, keras.get_layer("gap").output)(x, training=False).numpy()
    pooled = []
    hook = model.pool.register_forward_hook(lambda _m, _i, o: pooled.append(o.numpy()))
    with torch.no_grad():
        got = model(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy()
    hook.remove()
    # caffe-range inputs through seeded weights saturate the softmax: the pooled 2048 features are the test
    assert np.abs(pooled[0] - ref_pooled).max() / np.abs(ref_pooled).max() <= 1e-5
    assert np.abs(got - ref).max() / np.abs(ref).max() <= 1e-5
    assert (got.argmax(1) == ref.argmax(1)).all()
    sd = torchvision_keys(model.state_dict())
    resnet50(num_classes=5).load_state_dict(sd, strict=True)


def test_parity_check_passes_eval_and_train(resnet):
    d, src, out, _ = resnet
    report = d / "parity.json"
    proc = run_main("parity", "check", str(out), "--json", str(report))
    assert proc.returncode == 0, proc.stdout[-3000:]
    rep = json.loads(report.read_text())
    assert rep["modes_passed"] == ["eval", "train"]
    checks = {c["name"]: c for c in rep["checks"]}
    assert checks["stride"]["passed"] and "7 with stride 2" in checks["stride"]["evidence"]
    points = {p["point"] for p in rep["points"]}
    assert {"conv1:bn", "layer2.0.conv1:bn", "layer2.0.downsample:bn", "layer2.0:out", "pool"} <= points


def test_naive_port_fails_at_layer2_0_naming_the_stride(resnet):
    """The same weights in plain torchvision resnet50 (a plain state dict, as users hold): v1.5 strides."""
    import torch

    from convert.port import checkpoint
    from convert.port.head import torchvision_keys

    d, src, out, _ = resnet
    plain = d / "naive_resnet50.pth"
    torch.save(torchvision_keys(checkpoint.load_module(out).state_dict()), plain)
    report = d / "naive.json"
    proc = run_main("parity", "check", str(plain), "--source", str(src), "--json", str(report))
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-2000:]
    rep = json.loads(report.read_text())
    assert rep["first_divergent"]["point"].startswith("layer2.0")
    stride = next(c for c in rep["checks"] if c["name"] == "stride")
    assert not stride["passed"] and stride["point"].startswith("layer2.0")
    assert "torchvision v1.5" in stride["cause"] and "first 1x1 (v1)" in stride["cause"]
    assert stride["details"]["convs"][0] == {"conv": "layer2.0.conv1", "candidate": 1, "source": 2}


SEMANTICS = ("arch", "num_classes", "bn", "padding", "stride", "conv_bias_folded", "input_range", "input_size",
             "bn_folded")


def test_repair_rebuilds_mmdnns_emitted_model_into_the_certified_port(resnet, tmp_path):
    """MMdnn's emitted ResNet50 (every BN momentum 0.0, conv biases kept, its own module order: each
    downsampling block's shortcut first) repaired with the source's semantics: the very port `parity check`
    certified above (tensors within float32 rounding, the same semantics: momentum 0.01, eps 1.001e-5, v1
    strides, biases folded), verified against TF on its pooled features; strict=True into torchvision."""
    from torchvision.models import resnet50

    from convert.port import checkpoint
    from convert.port.head import torchvision_keys
    from convert.repair import repair

    _, src, out, _ = resnet
    emitted = out.parent / "ported.mmdnn.py"
    assert emitted.read_text().count("momentum=0.0)") == 53
    agreements, fixed = repair(emitted, tmp_path / "fixed.pth", src, probes=4)
    assert fixed is not None and all(a.ok(1e-5) for a in agreements), agreements
    assert "repaired vs TF: pooled features" in {a.what for a in agreements}
    sd, meta = checkpoint.load(fixed)
    certified, cert_meta = checkpoint.load(out)
    assert meta["path"] == "repair of ported.mmdnn.py"
    assert {k: meta[k] for k in SEMANTICS} == {k: cert_meta[k] for k in SEMANTICS}
    assert {b["momentum"] for b in meta["bn"].values()} == {0.01}  # MMdnn's 0.0 rebuilt from Keras's 0.99
    assert sd.keys() == certified.keys()
    for key, value in certified.items():
        scale = max(float(value.abs().max()), 1.0) if value.is_floating_point() else 1.0
        assert float((sd[key].double() - value.double()).abs().max()) <= 1e-6 * scale, key
    resnet50(num_classes=5).load_state_dict(torchvision_keys(sd), strict=True)


@pytest.fixture(scope="module")
def forms(tmp_path_factory):
    """(form -> path, the tf_keras model): one seeded 32 px ResNet50 with Keras's top (10 classes) written by
    the tools that write each form: Keras 3, tf_keras SavedModel / frozen .pb / .h5, the TFLite converter."""
    import tensorflow as tf

    from convert.sample import SampleSpec, keras2_model, write_samples

    d = tmp_path_factory.mktemp("resnet50_forms")
    spec = SampleSpec(arch="resnet50", size=SIZE, classes=10)
    k2 = keras2_model(spec)
    paths = write_samples(d, spec, ("keras3", "savedmodel", "keras2_pb", "keras2_h5"), k2=k2)
    paths["tflite"] = d / "resnet50_32.tflite"
    paths["tflite"].write_bytes(tf.lite.TFLiteConverter.from_keras_model(k2).convert())
    return paths, k2


def _parity(port, tmp_path, *extra: str) -> tuple[int, dict]:
    report = tmp_path / "parity.json"
    proc = run_main("parity", "check", str(port), "--json", str(report), *extra)
    assert proc.returncode in (0, 1), proc.stdout[-2000:] + proc.stderr[-2000:]
    return proc.returncode, json.loads(report.read_text())


@pytest.mark.exhaustive
@pytest.mark.parametrize(("form", "modes"), [("keras3", ["eval", "train"]), ("savedmodel", ["eval", "train"]),
                                             ("keras2_pb", ["eval", "train"]), ("keras2_h5", ["eval", "train"]),
                                             ("tflite", ["eval"])],
                         ids=["keras3", "savedmodel", "keras2_pb", "keras2_h5", "tflite"])
def test_every_form_converts_and_passes_parity(forms, tmp_path, form, modes):
    """Keras 3's decomposed BN fused back (its shortcut BNs paired by what they compute): eval + train; the
    TFLite converter folds BN (eval only), its residual ADDs and MAX_POOL_2D read, layer1.0's conv3 told from
    its shortcut by data flow. Measured at 32 px: pooled features 1.6e-6 (TFLite) .. 2.0e-6 relative."""
    from convert import pipeline

    paths, _ = forms
    out = tmp_path / "p.pth"
    result = pipeline.convert(paths[form], out, via="onnx")
    assert result.ok, [str(a) for p in result.paths for a in p.agreements]
    meta = result.paths[0].canonical.meta
    assert meta["arch"] == "resnet50" and meta["num_classes"] == 10 and meta["bn_folded"] == (form == "tflite")
    pooled = next(a for a in result.paths[0].agreements if a.what == "canonical vs TF: pooled features")
    assert pooled.rel <= 1e-5
    code, report = _parity(out, tmp_path)
    assert code == 0 and report["modes_passed"] == modes, report.get("first_divergent")


@pytest.mark.exhaustive
def test_the_mmdnn_path_port_passes_parity(resnet, tmp_path):
    """`--via mmdnn`: the canonical port from MMdnn's IR (its conv biases folded, its shortcut-first order
    rebuilt) passes eval + train."""
    from convert import pipeline

    _, src, _, _ = resnet
    out = tmp_path / "p.pth"
    assert pipeline.convert(src, out, via="mmdnn").ok
    code, report = _parity(out, tmp_path)
    assert code == 0 and report["modes_passed"] == ["eval", "train"]


@pytest.mark.exhaustive  # ~18 s; BN order by name: tests/parity/test_traced.py
def test_mmdnns_emitted_model_fails_on_its_momentum_alone(resnet, tmp_path):
    """`parity check` on MMdnn's emitted ResNet50 as MMdnn users load it, probed in its traced graph: every
    point equals TF's in eval and in train mode (its BNs matched to TF's by name, not by its shortcut-first
    call order: by call order layer1.0.conv1:bn met the 256-channel shortcut BN); momentum 0 and no recorded
    input range fail, each named. Default probes: at 32 px layer4's maps are 1x1, and train-mode BN over 4
    values per channel amplifies float32 noise past the train tolerance (4 probes: 3 points at layer4.2)."""
    _, src, out, _ = resnet
    code, report = _parity(out.parent / "ported.mmdnn.py", tmp_path, "--source", str(src))
    assert code == 1
    failed = {c["name"]: c for c in report["checks"] if not c["passed"]}
    assert set(failed) == {"bn_momentum", "preprocessing"}, failed.get("mode")
    for mode in ("eval", "train"):
        points = [p for p in report["points"] if p["reference"] == "tf" and p["mode"] == mode]
        assert len(points) >= 70 and all(p["passed"] for p in points), [p["point"] for p in points if not p["passed"]]
    by_point = {p["point"]: p for p in report["points"] if p["mode"] == "eval"}
    assert by_point["layer1.0.conv1:bn"]["shape"][1] == 64 and by_point["layer1.0.downsample:bn"]["shape"][1] == 256


@pytest.mark.exhaustive
def test_repaired_mmdnn_port_passes_parity_eval_and_train(resnet, tmp_path):
    _, src, out, _ = resnet
    fixed = tmp_path / "fixed.pth"
    proc = run_cli("convert", "repair", str(out.parent / "ported.mmdnn.py"), "--source", str(src), "-o", str(fixed))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    code, report = _parity(fixed, tmp_path)
    assert code == 0 and report["modes_passed"] == ["eval", "train"]


def _as_keras_applications_wrote_it(model, path) -> None:
    """resnet50_weights_tf_dim_ordering_tf_kernels.h5's layout (keras-applications' resnet_common, saved by
    Keras 2.2): root `layer_names` as bytes, every layer listed (those without weights too), `weight_names`
    per layer, the classifier named `probs`."""
    import h5py

    rename = {"predictions": "probs"}
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = np.array([rename.get(x.name, x.name).encode() for x in model.layers])
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = b"2.2.4"
        for layer in model.layers:
            name = rename.get(layer.name, layer.name)
            group = f.create_group(name)
            weights = [(f"{name}/{w.name.split('/')[-1]}", w.numpy()) for w in layer.weights]
            group.attrs["weight_names"] = np.array([n.encode() for n, _ in weights], dtype="S")
            for n, value in weights:
                group.create_dataset(n, data=value)


@pytest.mark.exhaustive
@pytest.mark.parametrize("kind", ["applications", "tf_keras_notop", "keras3_notop"])
def test_weights_files_convert_and_reproduce_the_model_they_came_from(forms, tmp_path, kind):
    """Weights only: Keras Applications' download layout (top, `probs`), tf_keras save_weights without top,
    Keras 3 `.weights.h5` without top; recognised, rebuilt at --input-size 32, converted: the port fed the
    original model's input returns its output (<= 1e-5 relative), strict=True into torchvision; the
    download layout certified eval + train."""
    import keras
    import tf_keras
    import torch

    from convert import pipeline
    from convert.arch import get
    from convert.model.probe import probe_inputs
    from convert.port import checkpoint
    from convert.port.head import torchvision_keys

    _, k2 = forms
    model = k2
    if kind != "applications":
        model = tf_keras.applications.ResNet50(input_shape=(*SIZE, 3), weights=None, include_top=False)
        model.set_weights(k2.get_weights()[: len(model.get_weights())])
    path = tmp_path / ("resnet50_weights_tf_dim_ordering_tf_kernels.h5" if kind == "applications" else
                       "notop.weights.h5" if kind == "keras3_notop" else "notop.h5")
    if kind == "applications":
        _as_keras_applications_wrote_it(model, path)
    elif kind == "keras3_notop":
        k3 = keras.applications.ResNet50(input_shape=(*SIZE, 3), weights=None, include_top=False)
        k3.set_weights(model.get_weights())
        k3.save_weights(str(path))
    else:
        model.save_weights(str(path))
    out = tmp_path / "p.pth"
    result = pipeline.convert(path, out, via="onnx", input_size=SIZE)
    assert result.ok and result.source.form == ("keras3_weights_h5" if kind == "keras3_notop" else "keras_weights_h5")
    port = checkpoint.load_module(out)
    x = probe_inputs(4, SIZE, tuple(port.tfport_meta["input_range"]), seed=5)
    pooled = []
    if port.pool is not None:  # the top's GAP; no-top files are feature extractors without pooling
        port.pool.register_forward_hook(lambda _m, _i, o: pooled.append(o.numpy()))
    with torch.no_grad():
        got = port(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy()
    if kind == "applications":  # its softmax saturates on caffe-range inputs: the pooled features say more
        ref = tf_keras.Model(model.input, model.get_layer("avg_pool").output)(x, training=False).numpy()
        got = pooled[0]
    else:  # the 1x1x2048 feature map, in TF's NHWC
        ref, got = model(x, training=False).numpy(), got.transpose(0, 2, 3, 1)
    assert np.abs(got - ref).max() / np.abs(ref).max() <= 1e-5
    classes = port.tfport_meta["num_classes"]
    assert classes == (10 if kind == "applications" else 0)
    get("resnet50").torchvision({}, classes).load_state_dict(torchvision_keys(port.state_dict()), strict=True)
    if kind == "applications":
        code, report = _parity(out, tmp_path)
        assert code == 0 and report["modes_passed"] == ["eval", "train"]


def test_the_trainer_trains_the_certified_port(resnet):
    """`backbones train --backbone PORT.pth` on the port `parity check` certified above (eval + train):
    pooled 2048 features into the head, BN in train mode, the BN monitor naming torchvision's paths."""
    d, _, out, _ = resnet
    assert (out.parent / (out.name + ".parity.json")).exists(), "run after test_parity_check_passes_eval_and_train"
    data, run = d / "data", d / "run"
    assert run_cli("backbones", "make-data", str(data), "--n", "20", "--size", "32").returncode == 0
    proc = run_main("backbones", "train", "--backbone", str(out), "--data", str(data), "--out", str(run),
                    "--epochs", "2", "--bs", "4", "--bn", "train", "--img-size", "32")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    result = json.loads((run / "result.json").read_text())
    assert result["status"] == "done" and len(result["epochs"]) == 2
    assert result["forecasts"][0]["layers"] == 53 and result["forecasts"][0]["momentum"] == 0.01
    # the BN monitor names the worst layer by torchvision's paths (features.layer3.5.bn1), not Sequential indices
    worst = [row.rsplit(",", 1)[-1] for row in (run / "log.csv").read_text().splitlines()[1:]]
    assert worst and all(re.fullmatch(r"features\.(layer[1-4]\.\d+\.bn[1-3]|layer[1-4]\.0\.downsample\.1|bn1)", w)
                         for w in worst), worst


def _weights_shapes(top: str | None = None, classes: int = 1000) -> dict:
    """A Keras ResNet50 weights file's layers -> weight shapes, in Keras's layer order (conv, bias; BN x4)."""
    from convert.arch.resnet50 import keras_kernels

    shapes: dict = {}
    for name, kernel in keras_kernels().items():
        shapes[name] = (kernel, (kernel[-1],))
        shapes[name[: -len("conv")] + "bn"] = ((kernel[-1],),) * 4
    if top:
        shapes[top] = ((2048, classes), (classes,))
    return shapes


@pytest.mark.parametrize(("top", "classes"), [("probs", 1000), ("predictions", 7), (None, 0)],
                         ids=["applications_probs", "tf_keras_top", "notop"])
def test_weights_files_are_recognised_from_layer_names_and_shapes(top, classes):
    """resnet50_weights_tf_dim_ordering_tf_kernels[_notop].h5 as keras-applications released it (classifier
    `probs`), tf_keras / Keras 3 save_weights (`predictions`), the no-top file: ResNet50, top and classes."""
    from convert.arch import recognise_weights

    arch, match = recognise_weights(_weights_shapes(top, classes), "w.h5")
    assert arch.name == "resnet50" and match.include_top == bool(top) and match.classes == classes
    assert match.classifier_layers == ((top,) if top else ())


@pytest.mark.parametrize(("edit", "says"), [
    ("head", "layers Keras Applications' ResNet50 does not have: fc1 [[2048, 256], [256]], probs"),
    ("kernel", "'conv3_block1_2_conv' holds [[1, 1, 128, 128], [128]]"),
], ids=["own_head", "wrong_kernel"])
def test_weights_files_of_another_network_are_refused_in_one_line(edit, says):
    from convert.arch import recognise_weights
    from convert.runtime.errors import TfportError

    shapes = _weights_shapes("probs" if edit == "head" else None)
    if edit == "head":  # a head of one's own: Dense(256) then the classifier
        shapes = {**{k: v for k, v in shapes.items() if k != "probs"}, "fc1": ((2048, 256), (256,)),
                  "probs": ((256, 5), (5,))}
    else:
        shapes["conv3_block1_2_conv"] = ((1, 1, 128, 128), (128,))
    with pytest.raises(TfportError, match=re.escape(says)):
        recognise_weights(shapes, "w.h5")


def test_a_resnet101_weights_file_is_not_a_resnet50():
    """ResNet101's layer names include ResNet50's and more (conv4_block7..23): not ResNet50's own head."""
    from convert.arch import recognise_weights
    from convert.runtime.errors import TfportError

    shapes = _weights_shapes()
    for b in range(7, 24):
        for i, k in ((1, (1, 1, 1024, 256)), (2, (3, 3, 256, 256)), (3, (1, 1, 256, 1024))):
            shapes[f"conv4_block{b}_{i}_conv"] = (k, (k[-1],))
            shapes[f"conv4_block{b}_{i}_bn"] = ((k[-1],),) * 4
    with pytest.raises(TfportError, match="ResNet50 weights with layers Keras Applications' ResNet50 does not have"):
        recognise_weights(shapes, "w.h5")
