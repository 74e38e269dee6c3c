"""Fault injection: each fault class put into a correct port is detected, localised and attributed.

The correct port passes first (no false alarm); then one fault at a time is written into a file a user
could hold and parity must name the right probe point and the right cause for the candidate loaded from
that file: weights or declared semantics in a checkpoint (a head without its final softmax among them); a
hand edit of MMdnn's emitted `.py` (reflect padding, a batch norm forced to batch statistics, which no
loader's `.eval()` undoes, one that never uses them, which only train mode shows, ReLU for one ReLU6);
ReLU for ReLU6 in an edited ONNX export. ReLU for ReLU6 is also put into the module itself, as a library
caller hands `parity.run` a module: no checkpoint can carry it (its module is rebuilt from the metadata).
Padding written for one input size: MMdnn's emitted `.py` and a port of a fixed-size source, checked
against the same network saved with an open input size, differ from TF SAME at a size of the other
parity; the port `convert repair` makes of that source does not.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import re
import shutil

import pytest
import torch

from convert.layers.conv_same import Conv2dSame
from parity.candidates import load_candidate
from parity.run import ParityConfig, resolve_source, run

CASE = ("keras2_h5", 1.0, (96, 96))
FAST = ParityConfig(probes=4, against=("tf", "torchvision"), modes=("eval",))


@pytest.fixture(scope="module")
def base(converted):
    _, out, _ = converted(CASE)
    cand = load_candidate(out)
    return cand, resolve_source(cand, None)


def _with_module(cand, mutate):
    c = dataclasses.replace(cand, module=copy.deepcopy(cand.module), meta=copy.deepcopy(cand.meta))
    mutate(c)
    return c


_FILES = itertools.count()


def _through_file(cand, mutate, folder):
    """The fault written into a checkpoint file (its weights and metadata), then loaded as a user would
    load it: whatever the file cannot carry is lost on the way."""
    from convert.port import checkpoint

    c = _with_module(cand, mutate)
    sd = {k: v for k, v in c.module.state_dict().items()}
    path = folder / f"fault-{next(_FILES)}.pth"
    checkpoint.save(path, sd, c.meta)
    return load_candidate(path)


def _failed(report, name):
    (c,) = [c for c in report.checks if c.name == name]
    assert not c.passed, c
    return c


def test_correct_port_passes_eval_and_train(base):
    cand, source = base
    report = run(cand, source, ParityConfig(probes=4))
    assert report.passed, report.summary()
    assert report.modes_passed == ["eval", "train"]
    assert report.first_divergent is None
    assert report.hazard["bn_momentum"] == pytest.approx(0.001)
    assert report.hazard["half_life_steps"] == pytest.approx(692.8, abs=0.1)


def _set_eps(c):
    c.module.features[5].conv[1][1].eps = 1e-5
    c.meta["bn"]["features.5.conv.1.1"]["eps"] = 1e-5


def _symmetric_padding(c):
    for name, m in list(c.module.named_modules()):
        if isinstance(m, Conv2dSame):
            sym = torch.nn.Conv2d(m.in_channels, m.out_channels, 3, m.stride, 1, groups=m.groups, bias=False)
            sym.weight = m.weight
            parent, _, child = name.rpartition(".")
            setattr(c.module.get_submodule(parent), child, sym)
            c.meta["padding"][name] = "symmetric"


def _momentum(value):
    def f(c):
        for m in c.module.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.momentum = value
        for bn in c.meta["bn"].values():
            bn["momentum"] = value
    return f


def _transpose_depthwise(c):
    w = c.module.features[2].conv[1][0].weight
    w.data = w.data.transpose(2, 3).contiguous()


def _bgr(c):
    w = c.module.features[0][0].weight
    w.data = w.data.flip(1).contiguous()


def _relu(c):
    for name, m in list(c.module.named_modules()):
        if isinstance(m, torch.nn.ReLU6):
            parent, _, child = name.rpartition(".")
            setattr(c.module.get_submodule(parent), child, torch.nn.ReLU())


def _saved_in_train_mode(c):
    c.module.train()
    with torch.no_grad():
        for m in c.module.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.momentum = 0.1
        for seed in range(3):
            c.module(torch.rand(4, 3, 96, 96, generator=torch.Generator().manual_seed(seed)) * 2 - 1)
        for m in c.module.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.momentum = 0.001
    c.module.eval()


def _imagenet_normalisation(c):
    c.meta["input_range"] = [-2.1179, 2.64]  # what ImageNet mean/std makes of [0, 1] pixels


def _logits_for_probabilities(c):
    c.meta["head"]["classifier"]["activation"] = "linear"  # the head's softmax left out: logits come out


FAULTS = {
    # name: (mutation, check that must fail, probe point it must localise to, words in the cause)
    "eps-one-layer": (_set_eps, "bn_eps", "features.5.conv.1:bn", "epsilon"),
    "symmetric-padding": (_symmetric_padding, "padding", "features.0:bn", "asymmetric"),
    "momentum-0.999": (_momentum(0.999), "bn_momentum", "features.0:bn", "decay was copied"),
    "momentum-0": (_momentum(0.0), "bn_momentum", "features.0:bn", "never move"),
    "depthwise-transposed": (_transpose_depthwise, "layout", "features.2.conv.1:bn", "transposed spatially"),
    "rgb-bgr": (_bgr, "layout", "features.0:bn", "BGR"),
    "relu-not-relu6": (_relu, "activation", "features.0:act", "ReLU6"),
    "saved-in-train-mode": (_saved_in_train_mode, "bn_statistics", "features.0:bn", "train-mode forward passes"),
    "imagenet-normalisation": (_imagenet_normalisation, "preprocessing", "features.0:bn", "normalisation"),
    # every other check passes: only the numbers at `output` can say it (softmax of them equals TF's)
    "softmax-missing": (_logits_for_probabilities, "head_activation", "output", "softmax missing"),
}


IN_MODULE_ONLY = ("relu-not-relu6",)  # no checkpoint can carry it (in a file: test_relu_for_relu6_in_an_onnx_file)


def _faulty(cand, fault, folder):
    mutate = FAULTS[fault][0]
    return _with_module(cand, mutate) if fault in IN_MODULE_ONLY else _through_file(cand, mutate, folder)


@pytest.mark.parametrize("fault", list(FAULTS), ids=list(FAULTS))
def test_fault_is_detected_localised_attributed(base, fault, tmp_path):
    cand, source = base
    _, check_name, point, cause_words = FAULTS[fault]
    report = run(_faulty(cand, fault, tmp_path), source, FAST)
    assert not report.passed
    c = _failed(report, check_name)
    assert c.point == point
    assert cause_words.lower() in (c.cause + c.evidence).lower()


NUMERIC = {  # faults that change eval-mode numbers: the first divergent point is where they act
    "symmetric-padding": "features.0:bn",
    "depthwise-transposed": "features.2.conv.1:bn",
    "rgb-bgr": "features.0:bn",
    "saved-in-train-mode": "features.0:bn",
}


@pytest.mark.parametrize("fault", list(NUMERIC), ids=list(NUMERIC))
def test_first_divergent_point(base, fault, tmp_path):
    cand, source = base
    report = run(_faulty(cand, fault, tmp_path), source, FAST)
    assert report.first_divergent is not None and report.first_divergent.point == NUMERIC[fault]


def test_relu_fault_diverges_at_an_activation(base):
    """Values above 6 exist only after some ReLUs: the first divergent point is an :act point."""
    cand, source = base
    report = run(_with_module(cand, _relu), source, FAST)
    assert report.first_divergent is not None and report.first_divergent.point.endswith(":act")


def test_undeclared_deviation_from_torchvision_fails(base):
    """A deviation not explained by the declared semantics (here ReLU) shows against torchvision+declared."""
    cand, source = base
    report = run(_with_module(cand, _relu), source, FAST)
    declared = [r for r in report.results if r.reference == "torchvision+declared"]
    assert declared and not all(declared)


def test_transposed_kernel_is_not_permuted_to_fit(base, tmp_path):
    """Same shape (3x3, H = W): a comparison that tried permutations would pass it; ours must not. The failing
    point keeps the layout its metadata declares (NCHW: batch 4, 96 channels, 96 / 2 / 2 = 24 px)."""
    cand, source = base
    report = run(_through_file(cand, _transpose_depthwise, tmp_path), source, FAST)
    bad = [r for r in report.results if r.reference == "tf" and not r.passed]
    assert bad and bad[0].point == "features.2.conv.1:bn"
    assert bad[0].shape == (4, 96, 24, 24) and bad[0].max_abs > bad[0].bound


class _ChannelsLastBN(torch.nn.BatchNorm2d):
    """A BatchNorm whose output comes out NHWC (an emitter's channels-last graph), permuted back after it."""

    def forward(self, x):
        return super().forward(x).permute(0, 2, 3, 1)


class _BackToNCHW(torch.nn.Module):
    def forward(self, x):
        return x.permute(0, 3, 1, 2)


def test_capture_in_another_layout_is_not_transposed_to_fit(base):
    """A candidate not laid out like torchvision (MMdnn's .py, onnx2torch) is captured at its BatchNorms, whose
    outputs are NCHW by declaration. One that comes out NHWC is compared as captured and fails; transposing it
    to fit the reference's shape would have passed it."""
    cand, source = base

    def channels_last_first_bn(c):
        bn = c.module.features[0][1]
        nhwc = _ChannelsLastBN(bn.num_features, eps=bn.eps, momentum=bn.momentum)
        nhwc.load_state_dict(bn.state_dict())
        c.module.features[0][1] = torch.nn.Sequential(nhwc.eval(), _BackToNCHW())

    generic = dataclasses.replace(_with_module(cand, channels_last_first_bn), torchvision_layout=False,
                                  kind="onnx2torch")
    report = run(generic, source, FAST)
    (first,) = [r for r in report.results if r.point == "features.0:bn" and r.reference == "tf"]
    assert not first.passed and first.shape == (4, 48, 48, 32)
    (out,) = [r for r in report.results if r.point == "output" and r.reference == "tf"]
    assert out.passed  # the model's own function is unchanged: only the layout of that capture differs


def test_semantics_declared_wrong_in_the_file_fail_the_declared_reference(base, tmp_path):
    """A checkpoint file whose metadata declares symmetric padding where the source pads SAME: the
    module built from it is self-consistent, so a "torchvision with the declared semantics" built from
    the candidate's own metadata would always agree. The reference is built from the source's own
    description instead, and here it must disagree (and TF too)."""
    from convert.port import checkpoint

    cand, source = base
    sd, meta = checkpoint.load(cand.path)
    same = [k for k, mode in meta["padding"].items() if mode == "tf_same"]
    assert same, "the case must have SAME-padded strided convs"
    meta = {**meta, "padding": {k: "symmetric" for k in meta["padding"]}}
    path = tmp_path / "declared-wrong.pth"
    checkpoint.save(path, sd, meta)
    report = run(load_candidate(path), source, FAST)
    declared = [r for r in report.results if r.reference == "torchvision+declared"]
    assert declared and not all(r.passed for r in declared)
    assert not report.passed


def test_relu_for_relu6_in_an_onnx_file_is_detected(base, tmp_path):
    """ReLU for ReLU6 carried by a file a user holds: the port's own ONNX export with every Clip(0, 6)
    made a Relu (what a converter that drops the upper clip writes). Checked as an onnx2torch candidate,
    the export as written equals TF at every point; the edited one must not. (onnx2torch's BatchNorms
    carry PyTorch's momentum 0.1, which the bn_momentum check fails either way: not what is tested.)"""
    import onnx

    cand, source = base
    export = cand.path.with_suffix(".onnx")
    clean = run(load_candidate(export), source, FAST)  # the export as written: every point equals TF's
    assert clean.results and all(r.passed for r in clean.results if r.reference == "tf")
    # probed wherever onnx2torch's graph has the tensor: every point TF has for the port but the pooled
    # features and torchvision's classifier, which the graph computes without a node of their own
    from parity import arch as architectures

    family = architectures.get(cand.meta.get("arch"))
    points = family.points(family.canonical(source.spec, "").meta, source.spec.pool, output=True)
    port = set(family.tf_tensors(points, source.spec.taps, source.info.pooled)) | {"output"}
    onnx_pts = {r.point for r in clean.results if r.reference == "tf"}
    assert onnx_pts == port - {"pool", "classifier.1"}
    assert sum(p.endswith(":act") for p in onnx_pts) == 35 and sum(p.endswith(":out") for p in onnx_pts) == 10
    model = onnx.load(str(export))
    clips = [n for n in model.graph.node if n.op_type == "Clip"]
    assert clips, "tf2onnx writes Relu6 as Clip(0, 6)"
    for n in clips:
        n.op_type = "Relu"
        del n.input[1:]
        del n.attribute[:]
    path = tmp_path / "relu.onnx"
    onnx.save(model, str(path))
    faulty = load_candidate(path)
    assert faulty.kind == "onnx2torch"
    report = run(faulty, source, FAST)
    assert not report.passed
    # onnx2torch's graph has the tensor after each activation: the first divergent point is the first one
    # whose values pass 6, and the cause is read from the numbers (clipped at 6 they equal TF's)
    assert report.first_divergent.point == "features.0:act"
    c = _failed(report, "activation")
    assert c.point == "features.0:act" and "ReLU where the source has ReLU6" in c.evidence
    assert "clip at 6" in c.cause


@pytest.fixture(scope="module")
def emitted(converted):
    """MMdnn's emitted code for the same source (`--via both` writes ported.mmdnn.py + .npy beside the port)."""
    _, out, _ = converted(CASE, via="both")
    code = out.with_suffix(".mmdnn.py")
    assert code.exists() and code.with_suffix(".npy").exists()
    return code


def _edit_once(pattern: str, replacement: str):
    """A hand edit of one line of the emitted code (the pattern must match exactly once)."""
    def edit(code: str) -> str:
        new, n = re.subn(pattern, replacement, code)
        assert n == 1, f"{pattern!r} matched {n} times in MMdnn's emitted code"
        return new
    return edit


EMITTED_FAULTS = {
    # name: (edit of the emitted code, check that must fail or None, first divergent point, words in the cause)
    # block 0's depthwise conv (features.1.conv.0, stride 1) pads (1, 1, 1, 1) as TF does, but reflects
    # instead of zero-padding. MMdnn pads in forward(), not in a module: no check reads that, the numbers do
    "reflect-padding": (_edit_once(r"(_expanded_conv_depthwise_depthwise_pad = F\.pad\(\w+, \(1, 1, 1, 1\))\)",
                                   r"\1, mode='reflect')"), None, "features.1.conv.0:bn", ""),
    # features.0's BatchNorm called as a training script calls it: batch statistics at inference, whatever
    # `.eval()` the loader calls (a module left in train mode, carried by a file)
    "bn-forced-to-train-mode": (_edit_once(r"self\.(\w+_bn_Conv1_FusedBatchNormV3)\((\w+)\)",
                                           r"F.batch_norm(\2, None, None, self.\1.weight, self.\1.bias, "
                                           r"training=True, eps=self.\1.eps)"),
                                "mode", "features.0:bn", "train mode"),
    # one F.relu6 (block 4's expansion, features.5.conv.0) made F.relu: MMdnn calls activations as functions,
    # which no hook sees; its traced graph has them, so the first divergent point is that activation's
    "relu-for-one-relu6": (_edit_once(r"F\.relu6\((\w+_block_4_expand_BN_FusedBatchNormV3)\)", r"F.relu(\1)"),
                           "activation", "features.5.conv.0:act", "ReLU where the source has ReLU6"),
}


def _emitted_candidate(code, folder, edit=None):
    """MMdnn's emitted .py as a user holds it, optionally hand-edited, weights .npy beside it."""
    text = code.read_text()
    path = folder / "emitted.py"
    path.write_text(edit(text) if edit else text)
    shutil.copy(code.with_suffix(".npy"), path.with_suffix(".npy"))
    return load_candidate(path)


def test_emitted_code_as_written_matches_tf_and_is_batch_independent(base, emitted, tmp_path):
    """No false alarm before the edits: every point equals TF's, and the mode check passes (MMdnn's momentum 0
    fails bn_momentum either way: not what is tested here)."""
    _, source = base
    report = run(_emitted_candidate(emitted, tmp_path), source, FAST)
    assert report.results and all(r.passed for r in report.results if r.reference == "tf")
    (mode,) = [c for c in report.checks if c.name == "mode"]
    assert mode.passed, mode


@pytest.mark.parametrize("fault", list(EMITTED_FAULTS), ids=list(EMITTED_FAULTS))
def test_fault_in_emitted_code_is_detected_localised(base, emitted, fault, tmp_path):
    _, source = base
    edit, check_name, point, cause_words = EMITTED_FAULTS[fault]
    cand = _emitted_candidate(emitted, tmp_path, edit)
    assert cand.kind == "mmdnn" and not cand.module.training  # loaded in eval mode, as every candidate is
    report = run(cand, source, FAST)
    assert not report.passed
    assert report.first_divergent is not None and report.first_divergent.point == point
    if check_name is not None:
        c = _failed(report, check_name)
        assert cause_words.lower() in (c.cause + c.evidence).lower()


def _running_statistics_always(code: str) -> str:
    """MMdnn's momentum 0 made 1 − decay (bn_momentum then has nothing to say), and features.0's batch norm
    called with its running statistics whatever the mode: eval mode computes what TF computes, train
    mode does not (a port whose BN never normalises with batch statistics trains a head on other features)."""
    n = code.count("momentum=0.0)")
    assert n == 52, n
    code = code.replace("momentum=0.0)", "momentum=0.001)")
    return _edit_once(r"self\.(\w+_bn_Conv1_FusedBatchNormV3)\((\w+)\)",
                      r"F.batch_norm(\2, self.\1.running_mean, self.\1.running_var, self.\1.weight, self.\1.bias, "
                      r"training=False, eps=self.\1.eps)")(code)


def test_a_fault_only_train_mode_shows_fails_train_mode_parity(base, emitted, tmp_path, capsys):
    """Exit 1 from `parity check`, the mode check naming the first train-mode point that differs. Every eval
    point passes and BN momentum is 1 − decay: without the train-mode points in the verdict and the mode
    check's train branch, nothing would fail for it."""
    import json

    from parity.cli import main

    _, source = base
    cand = _emitted_candidate(emitted, tmp_path, _running_statistics_always)
    code = main(["check", str(cand.path), "--source", str(source.path), "--probes", "4", "--against", "tf",
                 "--json", str(tmp_path / "r.json")])
    capsys.readouterr()
    report = json.loads((tmp_path / "r.json").read_text())
    assert code == 1 and report["passed"] is False and report["modes_passed"] == []
    points = report["points"]
    assert all(p["passed"] for p in points if p["mode"] == "eval")
    train = [p for p in points if p["mode"] == "train"]
    assert len(train) == 97 and [p["point"] for p in train if not p["passed"]][0] == "features.0:bn"
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["bn_momentum"]["passed"], checks["bn_momentum"]
    mode = checks["mode"]
    assert not mode["passed"] and mode["point"] == "features.0:bn" and "in train mode" in mode["evidence"]


@pytest.fixture(scope="module")
def open_size(base, tmp_path_factory):
    """The sample network as users save a backbone for any input size: the same tf_keras MobileNetV2 built with
    input_shape (None, None, 3), the sample's weights set on it, frozen. Its first conv pads SAME (by the size
    that arrives); Keras sizes its stride-2 ZeroPadding2D for even inputs, constant at every size."""
    import tf_keras

    from convert.sample import frozen_graph_def
    from convert.sources import load_source

    _, source = base
    fixed = tf_keras.models.load_model(source.path, compile=False)
    body = tf_keras.applications.MobileNetV2(input_shape=(None, None, 3), alpha=1.0, weights=None,
                                             include_top=False, pooling="avg")  # a top needs a fixed size
    top = tf_keras.layers.Dense(fixed.output_shape[-1], activation="softmax", name="predictions")
    model = tf_keras.Model(body.input, top(body.output))
    model.set_weights(fixed.get_weights())
    path = tmp_path_factory.mktemp("open") / "open.pb"
    path.write_bytes(frozen_graph_def(model).SerializeToString())
    return path, load_source(path, (96, 96))


def test_padding_written_for_one_size_fails_at_the_other_parity(emitted, open_size, tmp_path):
    """MMdnn's emitted code pads with constants computed for 96 px (F.pad(x, (0, 1, 0, 1)) before the first
    conv). Against the open-size source it equals TF at every point at 96, and differs at 97, where TF SAME
    pads 1 on both sides: the padding check names the size and the first point."""
    _, source = open_size
    report = run(_emitted_candidate(emitted, tmp_path), source, FAST)
    assert all(r.passed for r in report.results if r.reference == "tf")
    c = _failed(report, "padding")
    assert c.point == "features.0:bn" and "97x97" in c.evidence and "F.pad" in c.cause
    assert c.details["numeric"]["size"] == "97x97"


def test_a_port_pads_as_its_source_does_at_every_size_it_takes(base, open_size, tmp_path):
    """`convert repair` of the sample's port against the open-size source: its metadata keeps TF SAME
    where the source pads SAME and the constant pads where it pads constantly, the backbone still loads
    strict=True into stock torchvision, and parity passes at 96 and at 97."""
    from torchvision.models import mobilenet_v2

    from convert.port import checkpoint
    from convert.repair import repair

    cand, _ = base
    path, source = open_size
    _, fixed = repair(cand.path, tmp_path / "fixed.pth", path, probes=4)  # read at the 96 px the port records
    assert fixed is not None
    fixed_sd, meta = checkpoint.load(fixed)
    assert meta["padding"]["features.0.0"] == "tf_same"
    assert {k for k, v in meta["padding"].items() if v == [0, 1, 0, 1]} == {
        f"features.{i}.conv.1.0" for i in (2, 4, 7, 14)}  # the stride-2 depthwise convs after ZeroPadding2D
    mobilenet_v2(num_classes=meta["num_classes"]).load_state_dict(
        {k: v for k, v in fixed_sd.items() if not k.startswith("head.")}, strict=True)
    report = run(load_candidate(fixed), source, FAST)
    assert report.passed, report.summary()
    (pad,) = [c for c in report.checks if c.name == "padding"]
    assert "97x97" in pad.evidence and pad.details["numeric"]["points_compared"] == 97


@pytest.mark.exhaustive
def test_a_port_of_the_fixed_size_file_is_refused_against_the_open_size_one(base, open_size):
    """The fixed-size file's port pads TF SAME (Conv2dSame) where the open-size graph pads a constant (0, 1):
    the static check names the first such conv."""
    cand, _ = base
    static = _failed(run(cand, open_size[1], FAST), "padding")
    assert static.point == "features.2.conv.1:bn" and "[0, 1, 0, 1]" in static.evidence


def test_a_reference_that_could_not_run_is_not_certified(base, tmp_path):
    """The port copied without the ONNX export its metadata records: parity passes on what it could compare
    and says ONNX Runtime was skipped; the certificate lists what was compared, and the trainer's gate,
    reading the checkpoint's record of an export, refuses it naming the missing reference."""
    from parity import certificate
    from parity.results import compared

    cand, source = base
    alone = tmp_path / "ported.pth"
    shutil.copy(cand.path, alone)
    report = run(load_candidate(alone), source, dataclasses.replace(FAST, against=("tf", "onnx", "torchvision")))
    assert report.passed and any("ported.onnx is missing" in n for n in report.notes), report.notes
    assert compared(report.results) == (["tf", "torchvision", "torchvision+declared"], 4)
    certificate.write(report, alone)
    with pytest.raises(certificate.GateError, match="made without ONNX Runtime on the export beside it"):
        certificate.check_for_training(alone, "eval")
