"""The certificate says what it certifies, and the gate accepts only what a default `parity check` certifies.

A pass at `--atol 1 --rtol 1`, or `--against onnx` (no TF), is a pass of a weaker claim; these used to
train like any other."""

from __future__ import annotations

import types

import pytest

from parity import certificate

DEFAULT = {"atol": 1e-5, "rtol": 1e-4, "train_atol": 1e-4, "train_rtol": 2e-3,
           "against": ["tf", "onnx", "torchvision"], "tool_version": "test"}
EVERY = ("tf", "onnx", "torchvision", "torchvision+declared")


def _certified(tmp_path, modes=("eval", "train"), compared=EVERY, probes=8, export=True, **config):
    """A real checkpoint (recording an ONNX export beside it, or not) and the certificate a report that
    compared `compared` on `probes` probes writes for it."""
    import torch

    from convert.port import checkpoint

    ckpt = tmp_path / "ported.pth"
    meta = {"arch": "mobilenet_v2", "artifacts": {"onnx.onnx": "ported.onnx"} if export else {}}
    sha = checkpoint.save(ckpt, {"features.0.0.weight": torch.zeros(1)}, meta)
    ns = types.SimpleNamespace
    results = [ns(reference=r, mode="eval", shape=(probes, 10)) for r in compared]
    report = ns(candidate=ns(sha256=sha, bn_folded=False), source=ns(path="s.h5", sha256="0" * 64),
                config=ns(**{**DEFAULT, **config}), results=results, modes_passed=list(modes),
                hazard=ns(bn_momentum=0.001, half_life_steps=692.8))
    certificate.write(report, ckpt)
    return ckpt


@pytest.mark.parametrize("bn_mode", ["eval", "train"])
def test_default_certificate_is_accepted(tmp_path, bn_mode):
    cert = certificate.check_for_training(_certified(tmp_path), bn_mode)
    assert cert["references"] == list(EVERY) and cert["tolerances"]["rtol"] == 1e-4 and cert["probes"] == 8


def test_the_certificate_records_what_was_compared_not_what_was_asked(tmp_path):
    """Asked for tf, onnx, torchvision; ONNX Runtime could not run (no export file): the certificate says so."""
    import json

    ckpt = _certified(tmp_path, compared=("tf", "torchvision", "torchvision+declared"), probes=5)
    cert = json.loads(certificate.path_for(ckpt).read_text())
    assert cert["references"] == ["tf", "torchvision", "torchvision+declared"] and cert["probes"] == 5
    assert cert["references_asked"] == ["tf", "onnx", "torchvision"]


WEAKER = {  # (config, references compared, probes) -> BN mode -> words the refusal must carry
    "atol-1": (({"atol": 1.0}, EVERY, 8), "eval", "atol 1, looser than the default 1e-05"),
    "rtol-1": (({"rtol": 1.0}, EVERY, 8), "eval", "rtol 1, looser than the default 0.0001"),
    "no-tf": (({"against": ["onnx", "torchvision"]}, ("onnx", "torchvision", "torchvision+declared"), 8), "eval",
              "without the TF source as a reference"),
    "against-tf-only": (({"against": ["tf"]}, ("tf",), 8), "eval",
                        "without torchvision with the source's semantics and ONNX Runtime on the export beside it"),
    "onnx-skipped": (({}, ("tf", "torchvision", "torchvision+declared"), 8), "eval",
                     "without ONNX Runtime on the export beside it as a reference"),
    "4-probes": (({"against": ["tf", "onnx", "torchvision"]}, EVERY, 4), "eval",
                 "made on 4 probe(s), fewer than the default 8"),
    "train-rtol": (({"train_rtol": 0.5}, EVERY, 8), "train", "train_rtol 0.5, looser"),
}


@pytest.mark.parametrize("case", list(WEAKER), ids=list(WEAKER))
def test_weaker_certificate_is_refused_naming_why(tmp_path, case):
    (config, compared, probes), bn_mode, words = WEAKER[case]
    ckpt = _certified(tmp_path, compared=compared, probes=probes, **config)
    with pytest.raises(certificate.GateError) as e:
        certificate.check_for_training(ckpt, bn_mode)
    assert words in str(e.value) and e.value.exit_code == 1


def test_without_an_export_onnx_runtime_is_not_required(tmp_path):
    """A port with no ONNX export (--via mmdnn, convert repair): TF and torchvision with the source's semantics
    are the default set."""
    certificate.check_for_training(_certified(tmp_path, compared=("tf", "torchvision", "torchvision+declared"),
                                              export=False), "train")


def test_train_tolerance_does_not_matter_for_eval_mode_bn(tmp_path):
    certificate.check_for_training(_certified(tmp_path, train_rtol=0.5), "eval")


@pytest.mark.parametrize("key", ["references", "probes"])
def test_older_certificate_without_references_or_probes_is_refused(tmp_path, key):
    import json

    ckpt = _certified(tmp_path)
    path = certificate.path_for(ckpt)
    cert = json.loads(path.read_text())
    del cert[key]
    path.write_text(json.dumps(cert))
    with pytest.raises(certificate.GateError, match="records no references or probes compared"):
        certificate.check_for_training(ckpt, "eval")


def _cli_defaults():
    from parity.cli import build_parser

    args = build_parser().parse_args(["check", "ported.pth"])
    return args.atol, args.rtol


def test_cli_defaults_are_eval_tol_and_what_the_gate_requires(tmp_path):
    """`parity check` with no --atol/--rtol certifies exactly what the gate requires: at the CLI's defaults
    the certificate is accepted, a hair looser it is refused."""
    from parity.metrics import EVAL_TOL

    atol, rtol = _cli_defaults()
    assert (atol, rtol) == (EVAL_TOL.atol, EVAL_TOL.rtol)
    certificate.check_for_training(_certified(tmp_path, atol=atol, rtol=rtol), "eval")
    for key, value in (("atol", atol), ("rtol", rtol)):
        (tmp_path / key).mkdir()
        with pytest.raises(certificate.GateError, match=f"{key} .* looser than the default"):
            certificate.check_for_training(_certified(tmp_path / key, **{key: value * 1.01}), "eval")


def test_cli_defaults_come_from_the_one_place_the_tolerances_are_written(monkeypatch):
    """The CLI reads parity.tolerances (as parity.metrics does for EVAL_TOL): no literals of its own."""
    from parity import tolerances

    monkeypatch.setattr(tolerances, "EVAL_ATOL", 3e-5)
    monkeypatch.setattr(tolerances, "EVAL_RTOL", 3e-4)
    assert _cli_defaults() == (3e-5, 3e-4)


def test_parity_gate_asks_the_trainer_s_question(tmp_path, capsys):
    """`python -m parity gate PORTED` (the CI gate's last step): exit 0 and what it certifies, or exit 1 and one
    line naming what is missing."""
    from parity.cli import main

    (tmp_path / "ok").mkdir()
    assert main(["gate", str(_certified(tmp_path / "ok"))]) == 0
    assert "certified for training with BN in eval mode" in capsys.readouterr().out
    (tmp_path / "weak").mkdir()
    assert main(["gate", str(_certified(tmp_path / "weak", probes=4)), "--bn", "train"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "made on 4 probe(s)" in err[0]
