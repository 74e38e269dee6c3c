"""ResNet50 (issue 22): Keras's v1 network into stock torchvision resnet50 keys, end to end.

One session-scoped 32x32 ResNet50 (tf_keras, include_top=False, GAP -> Dropout -> Dense softmax: the
transfer sample, seeded conv biases and BN statistics), converted once by the CLI and checked once by
`parity check`; the naive port (its weights in plain torchvision, a plain state dict) must fail naming
the stride placement. Other forms (Keras 3, SavedModel, frozen .pb) run with scripts/test --exhaustive.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from tests.conftest import run_cli

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
    proc = run_cli("convert", "tf2torch", str(src), "-o", str(out))
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
    proc = run_cli("parity", "check", str(out), "--json", str(report))
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
    proc = run_cli("parity", "check", str(plain), "--source", str(src), "--json", str(report))
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-2000:]
    rep = json.loads(report.read_text())
    assert rep["first_divergent"]["point"].startswith("layer2.0")
    stride = next(c for c in rep["checks"] if c["name"] == "stride")
    assert not stride["passed"] and stride["point"].startswith("layer2.0")
    assert "torchvision v1.5" in stride["cause"] and "first 1x1 (v1)" in stride["cause"]
    assert stride["details"]["convs"][0] == {"conv": "layer2.0.conv1", "candidate": 1, "source": 2}


@pytest.mark.exhaustive
@pytest.mark.parametrize("form", ["keras3", "savedmodel", "keras2_pb", "keras2_h5"])
def test_every_form_converts(resnet, tmp_path, form):
    from convert import pipeline
    from convert.sample import SampleSpec, write_samples

    (src,) = write_samples(tmp_path, SampleSpec(arch="resnet50", size=SIZE), (form,)).values()
    result = pipeline.convert(src, tmp_path / "p.pth", via="onnx")
    assert result.ok and result.paths[0].canonical.meta["arch"] == "resnet50"


def test_the_trainer_trains_the_certified_port(resnet):
    """`backbones train --backbone PORT.pth` on the port `parity check` certified above (eval + train):
    pooled 2048 features into the head, BN in train mode, the BN monitor naming torchvision's paths."""
    d, _, out, _ = resnet
    assert (out.parent / (out.name + ".parity.json")).exists(), "run after test_parity_check_passes_eval_and_train"
    data, run = d / "data", d / "run"
    assert run_cli("backbones", "make-data", str(data), "--n", "20", "--size", "32").returncode == 0
    proc = run_cli("backbones", "train", "--backbone", str(out), "--data", str(data), "--out", str(run),
                   "--epochs", "2", "--bs", "4", "--bn", "train", "--img-size", "32")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    result = json.loads((run / "result.json").read_text())
    assert result["status"] == "done" and len(result["epochs"]) == 2
    assert result["forecasts"][0]["layers"] == 53 and result["forecasts"][0]["momentum"] == 0.01
    # the BN monitor names the worst layer by torchvision's paths (features.layer3.5.bn1), not Sequential indices
    worst = [row.rsplit(",", 1)[-1] for row in (run / "log.csv").read_text().splitlines()[1:]]
    assert worst and all(re.fullmatch(r"features\.(layer[1-4]\.\d+\.bn[1-3]|layer[1-4]\.0\.downsample\.1|bn1)", w)
                         for w in worst), worst
