"""End to end: every source form, several alphas and sizes, converted via ONNX and checked against TF.

Each conversion is independently re-checked here: the written checkpoint is loaded through
`backbones.load` and compared with TF on 64 seeded probes (max|port - TF| / max|TF| <= 1e-5 on
logits and pooled features, identical top-1), and its state dict loads into plain torchvision.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import backbones
from convert.model.agreement import agreement
from convert.model.probe import probe_inputs
from convert.paths.worker import torch_outputs
from convert.port import checkpoint
from convert.port.module import PortedNet as PortedMobileNetV2
from convert.runners.tf import TFRunner
from convert.runtime.files import sha256_file

CASES = [
    # (form, alpha, size)
    ("slim_pb", 1.0, (96, 96)),
    ("keras2_h5", 1.0, (96, 96)),
    ("keras2_pb", 1.0, (96, 96)),
    ("keras3", 1.0, (96, 96)),
    ("savedmodel", 1.0, (96, 96)),
    ("transfer_h5", 1.0, (96, 96)),
    ("keras2_pb", 0.35, (96, 96)),
    ("keras2_pb", 1.4, (96, 96)),
    ("slim_pb", 0.35, (160, 160)),
    ("slim_pb", 0.35, (224, 224)),
    ("slim_pb", 0.35, (225, 225)),
    ("keras2_pb", 0.35, (128, 192)),
]
IDS = [f"{f}-a{a:g}-{s[0]}x{s[1]}" for f, a, s in CASES]
# covered by a sibling (scripts/test --exhaustive runs them): another even size of the same form and width (96,
# 224 and 128x192 cover it); keras2_pb at width 1 (the form by widths 0.35 and 1.4, width 1 at 96 by slim_pb
# and keras2_h5)
COVERED_ELSEWHERE = {("slim_pb", 0.35, (160, 160)), ("keras2_pb", 1.0, (96, 96))}
PARAMS = [pytest.param(c, id=i, marks=[pytest.mark.exhaustive] if c in COVERED_ELSEWHERE else [])
          for c, i in zip(CASES, IDS, strict=True)]


@pytest.mark.parametrize("case", PARAMS)
def test_port_reproduces_tf(converted, case):
    src_path, out, result = converted(case)
    assert result.ok, [(a.what, a.rel) for p in result.paths for a in p.agreements]
    model = backbones.load(out)
    assert isinstance(model, PortedMobileNetV2) and not model.training  # README: the port as a whole function
    source = result.source
    x = probe_inputs(64, source.spec.input_shape[:2], seed=123)  # not the pipeline's own probes
    ref_pooled, ref_logits = source.runner().run(x, [source.info.pooled, source.info.logits])
    outs = torch_outputs(model, x)
    pooled, logits = outs["pooled"], outs["logits"]
    a_pool = agreement("pooled", pooled, ref_pooled)
    a_log = agreement("logits", logits, ref_logits, logits=True)
    assert a_pool.rel <= 1e-5 and a_log.rel <= 1e-5, (a_pool, a_log)
    assert a_log.top1_agree == 1.0
    alpha = case[1]
    assert model.tfport_meta["alpha"] == alpha
    assert model.tfport_meta["input_size"] == list(case[2])


@pytest.mark.parametrize("case", PARAMS)
def test_onnx_runtime_matches_tf(converted, case):
    """The export beside the port: ported.onnx passes onnx.checker, keeps every BatchNormalization (tf2onnx's
    Conv+BN fusion left out, so the statistics survive), and ONNX Runtime on it reproduces TF."""
    import onnx

    _, out, result = converted(case)
    (ort,) = [a for a in result.paths[0].agreements if a.what.startswith("ONNX Runtime")]
    assert ort.rel <= 1e-5 and ort.top1_agree == 1.0, ort
    export = out.parent / "ported.onnx"
    assert checkpoint.load(out)[1]["artifacts"]["onnx.onnx"] == export.name
    model = onnx.load(str(export))
    onnx.checker.check_model(model)
    assert sum(n.op_type == "BatchNormalization" for n in model.graph.node) == 52


# README "Checkpoint format": the payload and every metadata key it lists
PAYLOAD_KEYS = {"format", "version", "state_dict", "head", "metadata"}
META_KEYS = {"format_version", "arch", "alpha", "num_classes", "head", "preprocess", "input_range", "dropped",
             "trusted_code", "input_size", "layout", "bn", "momentum_from", "padding", "stride", "conv_bias_folded",
             "flatten", "bn_folded", "source", "path",
             "paths_checked", "conversion_check", "artifacts", "notes", "tool"}


def test_checkpoint_is_the_documented_format(converted):
    _, out, _ = converted(CASES[1])
    payload = torch.load(out, weights_only=True)  # no code runs on load
    assert set(payload) == PAYLOAD_KEYS and payload["format"] == "tfport.ported" and payload["version"] == 1
    assert payload["head"] == {}  # GAP + one Dense: torchvision's classifier holds the head
    meta = json.loads(payload["metadata"])
    assert set(meta) == META_KEYS and meta["format_version"] == 2
    assert set(meta["head"]) == {"pool", "classifier", "layers", "output"}
    assert set(meta["source"]) == {"path", "sha256", "form", "input", "output"}
    assert meta["layout"] == {"input": "NCHW", "color": "RGB"} and meta["tool"]["name"] == "tfport"
    assert meta["path"] == "onnx" and meta["paths_checked"] == ["onnx"]
    assert all(set(b) == {"eps", "momentum"} for b in meta["bn"].values())


@pytest.mark.parametrize("case", PARAMS[:6])
def test_state_dict_loads_into_plain_torchvision(converted, case):
    from torchvision.models import mobilenet_v2

    _, out, _ = converted(case)
    sd, meta = checkpoint.load(out)
    plain = mobilenet_v2(width_mult=meta["alpha"], num_classes=meta["num_classes"])
    plain.load_state_dict(sd, strict=True)  # raises on any key or shape difference


@pytest.mark.parametrize("case", PARAMS[:6])
def test_semantics_recorded(converted, case):
    """TF semantics, not torchvision's: eps 1e-3, momentum 1 - 0.999, asymmetric SAME on stride-2 at even sizes."""
    _, out, _ = converted(case)
    meta = backbones.load(out).tfport_meta
    assert all(b["eps"] == pytest.approx(1e-3) for b in meta["bn"].values())
    assert all(b["momentum"] == pytest.approx(0.001) for b in meta["bn"].values())
    assert meta["padding"]["features.0.0"] == "tf_same"  # stride-2 conv on an even size
    assert meta["padding"]["features.1.conv.0.0"] == "symmetric"  # stride-1 3x3
    assert meta["input_range"] == [-1.0, 1.0]
    assert meta["source"]["sha256"] == sha256_file(case_source(converted, case))


def case_source(converted, case) -> Path:
    return converted(case)[0]


def test_momentum_comes_from_keras_decay(converted):
    """Keras carries BN decay (0.999): its port says momentum came from the source, not a default."""
    _, out, _ = converted(CASES[1])
    assert backbones.load(out).tfport_meta["momentum_from"] == "source"
    _, out, _ = converted(CASES[0])
    assert backbones.load(out).tfport_meta["momentum_from"].startswith("default")


def test_bn_statistics_kept(converted, samples):
    """tf2onnx would fold BN into the convs; the ONNX path keeps the source's running statistics."""
    src_path, out, result = converted(CASES[0])
    sd, meta = checkpoint.load(out)
    assert meta["bn_folded"] is False
    source = result.source
    first_bn = source.spec.bns[0]
    np.testing.assert_array_equal(sd["features.0.1.running_var"].numpy(), first_bn.var)
    np.testing.assert_array_equal(sd["features.0.1.running_mean"].numpy(), first_bn.mean)


def test_odd_size_pads_symmetric(converted):
    _, out, _ = converted(("slim_pb", 0.35, (225, 225)))
    meta = backbones.load(out).tfport_meta
    assert meta["padding"]["features.0.0"] == "symmetric"  # TF SAME pads (1, 1) on odd sizes


def test_padding_matters_numerically(converted):
    """Swapping the port's TF padding for torchvision's symmetric one breaks parity: the semantic is load-bearing."""
    from convert.layers.conv_same import Conv2dSame

    src_path, out, result = converted(CASES[0])
    model = backbones.load(out)
    for name, mod in list(model.named_modules()):
        if isinstance(mod, Conv2dSame):
            sym = torch.nn.Conv2d(mod.in_channels, mod.out_channels, 3, mod.stride, 1, groups=mod.groups, bias=False)
            sym.weight = mod.weight
            parent, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent), child, sym)
    source = result.source
    x = probe_inputs(8, (96, 96))
    (ref,) = source.runner().run(x, [source.info.logits])
    logits = torch_outputs(model, x)["logits"]
    assert agreement("logits", logits, ref).rel > 1e-3


def test_a_port_outside_the_tolerance_is_not_written(samples, tmp_path, monkeypatch, capsys):
    """`tf2torch` writes nothing unless the port reproduces TF: held to a tolerance no float32 port meets (0),
    the same real conversion ends FAILED, exit 1, with no checkpoint and no export beside it. The TF
    reference ran in its own thread beside the conversion."""
    import threading

    from convert.cli import main
    from convert.model import tolerance

    threads = []
    real_run = TFRunner.run

    def run(self, *a, **k):  # the real TF run, noting which thread runs it
        threads.append(threading.current_thread().name)
        return real_run(self, *a, **k)

    monkeypatch.setattr(TFRunner, "run", run)
    monkeypatch.setattr(tolerance, "REL_TOL", 0.0)
    out = tmp_path / "ported.pth"
    assert main(["tf2torch", str(samples.get("keras2_h5", 0.35, (96, 96))), "-o", str(out), "--probes", "2"]) == 1
    printed = " ".join(capsys.readouterr().out.split())  # rich wraps at the console's width
    assert "FAILED: the port does not reproduce" in printed and printed.endswith("nothing written")
    assert list(tmp_path.iterdir()) == []
    assert threads and all(t.startswith("tf-reference") for t in threads)
