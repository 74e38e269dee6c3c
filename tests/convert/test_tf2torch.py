"""End to end: every source form, several alphas and sizes, converted via ONNX and checked against TF.

Each conversion is independently re-checked here: the written checkpoint is loaded through
`backbones.load` and compared with TF on 64 seeded probes (max|port - TF| / max|TF| <= 1e-5 on
logits and pooled features, identical top-1), and its state dict loads into plain torchvision.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import backbones
from convert import checkpoint
from convert.probe import agreement, probe_inputs
from convert.torch_side import torch_outputs

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


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_port_reproduces_tf(converted, case):
    src_path, out, result = converted(case)
    assert result.ok, [(a.what, a.rel) for p in result.paths for a in p.agreements]
    model = backbones.load(out)
    assert not model.training
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


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_onnx_runtime_matches_tf(converted, case):
    _, _, result = converted(case)
    (ort,) = [a for a in result.paths[0].agreements if a.what.startswith("ONNX Runtime")]
    assert ort.rel <= 1e-5 and ort.top1_agree == 1.0, ort


@pytest.mark.parametrize("case", CASES[:6], ids=IDS[:6])
def test_state_dict_loads_into_plain_torchvision(converted, case):
    from torchvision.models import mobilenet_v2

    _, out, _ = converted(case)
    sd, meta = checkpoint.load(out)
    plain = mobilenet_v2(width_mult=meta["alpha"], num_classes=meta["num_classes"])
    plain.load_state_dict(sd, strict=True)  # raises on any key or shape difference


@pytest.mark.parametrize("case", CASES[:6], ids=IDS[:6])
def test_semantics_recorded(converted, case):
    """TF semantics, not torchvision's: eps 1e-3, momentum 1 - 0.999, asymmetric SAME on stride-2 at even sizes."""
    _, out, _ = converted(case)
    meta = backbones.load(out).tfport_meta
    assert all(b["eps"] == pytest.approx(1e-3) for b in meta["bn"].values())
    assert all(b["momentum"] == pytest.approx(0.001) for b in meta["bn"].values())
    assert meta["padding"]["features.0.0"] == "tf_same"  # stride-2 conv on an even size
    assert meta["padding"]["features.1.conv.0.0"] == "symmetric"  # stride-1 3x3
    assert meta["input_range"] == [-1.0, 1.0]
    assert meta["source"]["sha256"] == checkpoint.sha256_file(case_source(converted, case))


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
    from convert.canonical import Conv2dSame

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
