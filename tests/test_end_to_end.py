"""The whole chain, as a user runs it: `convert tf2torch` → `parity check` → certificate → `backbones train`.

Nothing hand-made: the port, its certificate and the trainer's decision all come from the real CLIs. The
gate must accept what parity certified, and refuse the same weights with one byte changed, and a
certificate made at a looser tolerance than the default — naming why."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import run_cli

CASE = ("keras2_h5", 0.35, (96, 96))
IMG = 32  # the trainer's input size: the port is fully convolutional


@pytest.fixture(scope="session")
def certified(samples, tmp_path_factory) -> Path:
    """A sample converted and certified by the CLIs: ported.pth, ported.onnx, ported.pth.parity.json."""
    d = tmp_path_factory.mktemp("e2e")
    out = d / "ported.pth"
    proc = run_cli("convert", "tf2torch", str(samples.get(*CASE)), "-o", str(out))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    proc = run_cli("parity", "check", str(out))  # the defaults: what the trainer's gate requires
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    return out


@pytest.fixture(scope="session")
def faces(tmp_path_factory) -> Path:
    from backbones.synth import write_dataset

    folder = tmp_path_factory.mktemp("faces")
    write_dataset(folder, n=40, size=IMG, seed=0, workers=1)
    return folder


def _train(backbone: Path, data: Path, out: Path):
    return run_cli("backbones", "train", "--backbone", str(backbone), "--data", str(data), "--out", str(out),
                   "--img-size", str(IMG), "--bs", "4", "--epochs", "1", "--head-hidden", "16")


def _copy(ckpt: Path, folder: Path) -> Path:
    """The checkpoint and what lies beside it (export, certificate), in another folder."""
    folder.mkdir()
    for f in ckpt.parent.iterdir():
        shutil.copy(f, folder / f.name)
    return folder / ckpt.name


def _gate_refusal(proc) -> str:
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    (line,) = [x for x in proc.stderr.splitlines() if x.startswith("error: parity gate: ")]
    return line


def test_certified_port_trains(certified, faces, tmp_path):
    cert = json.loads((certified.parent / (certified.name + ".parity.json")).read_text())
    assert cert["modes_passed"] == ["eval", "train"] and "tf" in cert["references"]
    assert cert["tolerances"]["atol"] == 1e-5 and cert["tolerances"]["rtol"] == 1e-4
    proc = _train(certified, faces, tmp_path / "run")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert (tmp_path / "run" / "result.json").exists()


def test_one_byte_changed_is_refused(certified, faces, tmp_path):
    """Same file name, same certificate beside it, one byte of one weight different: other weights."""
    import torch

    from convert.port import checkpoint

    ckpt = _copy(certified, tmp_path / "changed")
    sd, meta = checkpoint.load(ckpt)
    key = "features.5.conv.1.0.weight"
    w = sd[key].clone().contiguous()
    w.view(torch.uint8).view(-1)[0] ^= 1  # the lowest mantissa bit of the first element
    sd[key] = w
    checkpoint.save(ckpt, sd, meta)
    assert "sha256 differs" in _gate_refusal(_train(ckpt, faces, tmp_path / "run"))
    assert not (tmp_path / "run").exists()


@pytest.mark.exhaustive  # ~15 s; the gate's refusal of a loose certificate, named, by
# tests/parity/test_certificate.py (atol-1, rtol-1 and the references/probes cases)
def test_certificate_at_loose_tolerance_is_refused(certified, faces, tmp_path):
    """`parity check --atol 1` passes and writes a certificate; the trainer refuses it and says why."""
    ckpt = _copy(certified, tmp_path / "loose")
    proc = run_cli("parity", "check", str(ckpt), "--probes", "4", "--atol", "1", "--against", "tf")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    line = _gate_refusal(_train(ckpt, faces, tmp_path / "run"))
    assert "atol 1, looser than the default 1e-05" in line
    # and what else it falls short of, all named: the references and probes a default check compares
    assert "made without torchvision with the source's semantics and ONNX Runtime on the export beside it" in line
    assert "made on 4 probe(s), fewer than the default 8" in line
