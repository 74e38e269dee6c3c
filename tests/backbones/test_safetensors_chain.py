"""`ported.safetensors` through the real chain, as a user runs it: `convert tf2torch -o ported.safetensors`
→ `backbones.load` and `convert repair` read it → `parity check` certifies its sha256 → `backbones train
--backbone ported.safetensors` trains; one byte of one tensor changed → the trainer refuses (exit 1)."""

from __future__ import annotations

import json

import pytest
import torch

import backbones
from convert.port import checkpoint
from convert.runtime.files import sha256_file
from tests.conftest import run_cli

from .conftest import train_argv

SIZE = 64  # the smallest size whose last maps are not 1x1 (the trainer's images stay at 32 px)


def _flip_one_tensor_byte(path, key: str) -> None:
    """The lowest mantissa byte of `key`'s first element: the weights change, the file still reads."""
    data = bytearray(path.read_bytes())
    size = int.from_bytes(data[:8], "little")
    start = 8 + size + json.loads(data[8 : 8 + size])[key]["data_offsets"][0]
    data[start] ^= 1
    path.write_bytes(bytes(data))


@pytest.mark.exhaustive  # ~27 s; .safetensors: tests/convert/test_safetensors.py, the chain: test_end_to_end
def test_convert_parity_train(samples, noses, tmp_path):
    from safetensors import safe_open

    from convert.repair import repair

    src = samples.get("keras2_h5", 0.35, (SIZE, SIZE))
    port = tmp_path / "ported.safetensors"
    proc = run_cli("convert", "tf2torch", str(src), "-o", str(port), "--probes", "4")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    with safe_open(str(port), "pt") as f:
        header = f.metadata()
    meta = json.loads(header["metadata"])
    assert header["format"] == "tfport.ported" and meta["alpha"] == 0.35 and meta["input_size"] == [SIZE, SIZE]
    assert (tmp_path / "ported.onnx").exists() and meta["artifacts"]["onnx.onnx"] == "ported.onnx"
    assert not [f for f in tmp_path.iterdir() if f.name.endswith(".tmp")]

    model = backbones.load(port)  # the whole function, metadata attached
    assert model.tfport_meta == meta and not model.training

    agreements, fixed = repair(port, tmp_path / "fixed.safetensors", probes=4)
    assert fixed is not None, agreements
    ours, theirs = checkpoint.load(port)[0], checkpoint.load(fixed)[0]
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
    from torchvision.models import mobilenet_v2  # README: a repaired port loads strict=True into torchvision too

    mobilenet_v2(width_mult=0.35, num_classes=meta["num_classes"]).load_state_dict(
        {k: v for k, v in theirs.items() if not k.startswith("head.")}, strict=True)

    proc = run_cli("parity", "check", str(port))  # the default probes: the trainer's gate takes no fewer
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    cert = json.loads((tmp_path / "ported.safetensors.parity.json").read_text())
    assert cert["checkpoint"] == {"name": "ported.safetensors", "sha256": sha256_file(port)}
    assert cert["modes_passed"] == ["eval", "train"]

    run = tmp_path / "run"
    proc = run_cli("backbones", *train_argv(noses, run, backbone=port))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert (run / "checkpoint.pt").exists()

    _flip_one_tensor_byte(port, "features.0.0.weight")
    proc = run_cli("backbones", *train_argv(noses, tmp_path / "run2", backbone=port))
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "sha256 differs" in proc.stderr and "Traceback" not in proc.stderr
