"""The certificate says what it certifies, and the gate accepts only what a default `parity check` certifies.

A pass at `--atol 1 --rtol 1`, or `--against onnx` (no TF), is a pass of a weaker claim; these used to
train like any other."""

from __future__ import annotations

import types

import pytest

from parity import certificate

DEFAULT = {"atol": 1e-5, "rtol": 1e-4, "train_atol": 1e-4, "train_rtol": 2e-3,
           "against": ["tf", "onnx", "torchvision"], "tool_version": "test"}


def _certified(tmp_path, modes=("eval", "train"), **config):
    from convert.runtime.files import sha256_file

    ckpt = tmp_path / "ported.pth"
    ckpt.write_bytes(b"weights")
    ns = types.SimpleNamespace
    report = ns(candidate=ns(sha256=sha256_file(ckpt), bn_folded=False), source=ns(path="s.h5", sha256="0" * 64),
                config=ns(**{**DEFAULT, **config}), modes_passed=list(modes),
                hazard=ns(bn_momentum=0.001, half_life_steps=692.8))
    certificate.write(report, ckpt)
    return ckpt


@pytest.mark.parametrize("bn_mode", ["eval", "train"])
def test_default_certificate_is_accepted(tmp_path, bn_mode):
    cert = certificate.check_for_training(_certified(tmp_path), bn_mode)
    assert cert["references"] == ["tf", "onnx", "torchvision"] and cert["tolerances"]["rtol"] == 1e-4


WEAKER = {  # config -> BN mode -> words the refusal must carry
    "atol-1": ({"atol": 1.0}, "eval", "atol 1, looser than the default 1e-05"),
    "rtol-1": ({"rtol": 1.0}, "eval", "rtol 1, looser than the default 0.0001"),
    "no-tf": ({"against": ["onnx", "torchvision"]}, "eval", "without the TF source as a reference"),
    "train-rtol": ({"train_rtol": 0.5}, "train", "train_rtol 0.5, looser"),
}


@pytest.mark.parametrize("case", list(WEAKER), ids=list(WEAKER))
def test_weaker_certificate_is_refused_naming_why(tmp_path, case):
    config, bn_mode, words = WEAKER[case]
    ckpt = _certified(tmp_path, **config)
    with pytest.raises(certificate.GateError) as e:
        certificate.check_for_training(ckpt, bn_mode)
    assert words in str(e.value) and e.value.exit_code == 1


def test_train_tolerance_does_not_matter_for_eval_mode_bn(tmp_path):
    certificate.check_for_training(_certified(tmp_path, train_rtol=0.5), "eval")


def test_older_certificate_without_references_is_refused(tmp_path):
    import json

    ckpt = _certified(tmp_path)
    path = certificate.path_for(ckpt)
    cert = json.loads(path.read_text())
    del cert["references"]
    path.write_text(json.dumps(cert))
    with pytest.raises(certificate.GateError, match="records no references"):
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
