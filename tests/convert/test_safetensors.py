"""`ported.safetensors`: the same checkpoint in safetensors — tensors under the same keys, the metadata JSON
as one string in the header — written atomically, read by every reader of `ported.pth`; a damaged file
is one line and exit 2."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from convert.port import checkpoint
from convert.runtime.errors import TfportError
from convert.runtime.files import sha256_file
from tests.conftest import ROOT, assert_one_line_error

META = {"alpha": 0.35, "num_classes": 0, "head": {"layers": [{"in": 4, "out": 2}]}}


def _state() -> dict:
    return {"features.0.0.weight": torch.randn(16, 3, 3, 3), "features.0.1.num_batches_tracked": torch.tensor(0),
            "head.0.weight": torch.randn(2, 4), "head.0.bias": torch.zeros(2)}


def test_roundtrip_and_header(tmp_path):
    from safetensors import safe_open

    sd, p = _state(), tmp_path / "p.safetensors"
    sha = checkpoint.save(p, sd, META)
    assert sha == sha256_file(p)
    with safe_open(str(p), "pt") as f:
        header = f.metadata()
        assert set(f.keys()) == set(sd)  # torchvision keys and head.* side by side
    assert header["format"] == "tfport.ported" and header["version"] == "1"
    assert json.loads(header["metadata"]) == META
    loaded, meta = checkpoint.load(p)
    assert meta == META and set(loaded) == set(sd)
    assert all(torch.equal(loaded[k], v) and loaded[k].dtype == v.dtype for k, v in sd.items())
    assert checkpoint.declares_ported(p)


def test_same_content_as_pth(tmp_path):
    sd = _state()
    checkpoint.save(tmp_path / "p.pth", sd, META)
    checkpoint.save(tmp_path / "p.safetensors", sd, META)
    a, ma = checkpoint.load(tmp_path / "p.pth")
    b, mb = checkpoint.load(tmp_path / "p.safetensors")
    assert ma == mb and a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_plain_safetensors_state_dict(tmp_path):
    """A timm / Hugging Face style file: tensors only, no tfport header."""
    from safetensors.torch import save_file

    save_file({"features.0.0.weight": torch.ones(2, 2)}, str(tmp_path / "model.safetensors"))
    sd, meta = checkpoint.load_any(tmp_path / "model.safetensors")
    assert meta == {} and torch.equal(sd["features.0.0.weight"], torch.ones(2, 2))
    assert not checkpoint.declares_ported(tmp_path / "model.safetensors")
    with pytest.raises(TfportError, match="not a tfport ported checkpoint"):
        checkpoint.load(tmp_path / "model.safetensors")


def test_write_is_atomic(tmp_path, monkeypatch):
    """A write that dies half-way leaves the previous file whole and no temporary beside it."""
    import safetensors.torch

    p = tmp_path / "p.safetensors"
    checkpoint.save(p, _state(), META)
    before = p.read_bytes()

    def dies_half_way(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"\x00" * 100)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(safetensors.torch, "save_file", dies_half_way)
    with pytest.raises(TfportError, match="cannot write"):
        checkpoint.save(p, _state(), {"alpha": 1.0})
    assert p.read_bytes() == before and [f.name for f in tmp_path.iterdir()] == ["p.safetensors"]


def _damaged(tmp_path) -> dict[str, object]:
    good = tmp_path / "good.safetensors"
    checkpoint.save(good, _state(), META)
    data = good.read_bytes()
    return {"truncated": data[: len(data) // 2], "header-cut": data[:20], "empty": b"",
            "pth-bytes": b"PK\x03\x04" + b"\x00" * 60, "nan": None}


@pytest.mark.parametrize("kind", ["truncated", "header-cut", "empty", "pth-bytes", "nan"])
def test_damaged_file_is_one_error(tmp_path, kind):
    p = tmp_path / "bad.safetensors"
    content = _damaged(tmp_path)[kind]
    if content is None:
        checkpoint.save(p, {**_state(), "head.0.bias": torch.tensor([1.0, float("nan")])}, META)
    else:
        p.write_bytes(content)
    with pytest.raises(TfportError, match="bad.safetensors: " + ("head.0.bias contains NaN" if content is None
                                                                 else "not a readable safetensors file")):
        checkpoint.load_any(p)


def test_truncated_safetensors_through_the_clis(tmp_path):
    """parity check and convert repair on a cut file: one line, exit 2 (the trainer's case is in
    tests/backbones/test_load_errors.py)."""
    bad = tmp_path / "ported.safetensors"
    checkpoint.save(bad, _state(), META)
    bad.write_bytes(bad.read_bytes()[:300])
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "TF_CPP_MIN_LOG_LEVEL": "3"}
    argvs = [("parity", "check", str(bad)), ("convert", "repair", str(bad), "-o", str(tmp_path / "fixed.pth"))]
    procs = [subprocess.Popen([sys.executable, "-m", *a], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for a in argvs]
    for argv, p in zip(argvs, procs, strict=True):
        out, err = p.communicate(timeout=300)
        line = assert_one_line_error(subprocess.CompletedProcess(argv, p.returncode, out, err), 2, str(bad))
        assert "not a readable safetensors file" in line, line
    assert not (tmp_path / "fixed.pth").exists()


def test_other_version_is_named(tmp_path):
    from safetensors.torch import save_file

    p = tmp_path / "p.safetensors"
    header = {"format": "tfport.ported", "version": "²", "metadata": "{}"}
    save_file({"features.0.0.weight": torch.ones(1)}, str(p), header)
    with pytest.raises(TfportError, match="checkpoint version '²'; this tfport reads version 1"):
        checkpoint.load(p)


@pytest.fixture(scope="module")
def real_port(tmp_path_factory):
    """A whole MobileNetV2 (alpha 0.35) in the format convert writes, read by the same builder."""
    from tests.backbones.conftest import write_ported

    p = tmp_path_factory.mktemp("fz") / "ported.safetensors"
    write_ported(p)
    return p.read_bytes()


@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(muts=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), min_size=1, max_size=20),
       in_header=st.booleans(), cut=st.one_of(st.none(), st.floats(0, 1)))
def test_fuzzed_bytes_are_one_error(real_port, tmp_path_factory, muts, in_header, cut):
    """Whatever the bytes (mutations mostly in the JSON header, where the structure is), only TfportError."""
    data = bytearray(real_port)
    span = 8 + int.from_bytes(real_port[:8], "little") if in_header else len(data)
    for pos, val in muts:
        data[int(pos * span)] = val
    p = tmp_path_factory.mktemp("fz") / "p.safetensors"
    p.write_bytes(bytes(data[: int(cut * len(data))] if cut is not None else data))
    try:
        checkpoint.load_module(p)
    except TfportError:
        pass
