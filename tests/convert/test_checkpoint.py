"""The checkpoint format: whole-or-nothing writes, no code execution, one-line refusals."""

from __future__ import annotations

import pickle

import pytest
import torch

from convert.port import checkpoint
from convert.runtime.errors import TfportError
from convert.runtime.files import sha256_file
from tests.zoo.payloads import Payload


def test_roundtrip(tmp_path):
    sd = {"features.0.0.weight": torch.randn(3, 3)}
    sha = checkpoint.save(tmp_path / "p.pth", sd, {"alpha": 1.0})
    loaded, meta = checkpoint.load(tmp_path / "p.pth")
    assert torch.equal(loaded["features.0.0.weight"], sd["features.0.0.weight"])
    assert meta == {"alpha": 1.0}
    assert sha == sha256_file(tmp_path / "p.pth")


def test_pickle_payload_is_refused_and_not_run(tmp_path):
    marker = tmp_path / "PWNED"
    bad = tmp_path / "evil.pth"
    torch.save({"format": "tfport.ported", "version": 1, "state_dict": {}, "metadata": Payload(str(marker))}, bad,
               pickle_protocol=2)
    with pytest.raises(TfportError, match="refused"):
        checkpoint.load(bad)
    assert not marker.exists()


def test_plain_pickle_is_refused(tmp_path):
    marker = tmp_path / "PWNED"
    bad = tmp_path / "evil.pth"
    bad.write_bytes(pickle.dumps(Payload(str(marker))))
    with pytest.raises(TfportError):
        checkpoint.load(bad)
    assert not marker.exists()


@pytest.mark.parametrize("content", [b"", b"\x00" * 100, b"PK\x03\x04garbage"], ids=["empty", "zeros", "bad-zip"])
def test_corrupt_files(tmp_path, content):
    p = tmp_path / "x.pth"
    p.write_bytes(content)
    with pytest.raises(TfportError):
        checkpoint.load(p)


def test_truncated_checkpoint(tmp_path):
    p = tmp_path / "p.pth"
    checkpoint.save(p, {"w": torch.randn(64, 64)}, {})
    p.write_bytes(p.read_bytes()[:500])
    with pytest.raises(TfportError):
        checkpoint.load(p)


def test_nan_weights_refused(tmp_path):
    p = tmp_path / "p.pth"
    checkpoint.save(p, {"w": torch.tensor([1.0, float("nan")])}, {})
    with pytest.raises(TfportError, match="NaN"):
        checkpoint.load(p)


def test_failed_write_leaves_nothing(tmp_path):
    target = tmp_path / "missing" / "p.pth"
    with pytest.raises(TfportError, match="does not exist"):
        checkpoint.save(target, {"w": torch.ones(1)}, {})
    assert not any(tmp_path.rglob("*p.pth*"))


@pytest.mark.parametrize("key,value,message", [
    ("alpha", 40.0, "alpha 40 is not a MobileNetV2 width"),
    ("alpha", float("nan"), "not a MobileNetV2 width"),
    ("alpha", 1e308 * 10, "not a MobileNetV2 width"),
    ("num_classes", 10**9, "num_classes 1000000000 is outside"),
    ("num_classes", -1, "outside 0.."),
    ("num_classes", float("inf"), "does not describe a MobileNetV2"),
], ids=["alpha-40", "alpha-nan", "alpha-inf", "classes-1e9", "classes-negative", "classes-inf"])
def test_metadata_that_would_allocate_without_bound_is_refused(tmp_path, key, value, message):
    """Found by the fuzzer: alpha 40 in a checkpoint's metadata built a ~22 GB model and the OOM killer
    ended the process. Refused before anything is allocated."""
    from convert.port.build import build

    meta = {"alpha": 1.0, "num_classes": 1000, "padding": {}, "bn": {}, key: value}
    with pytest.raises(TfportError, match=message):
        build(meta)


@pytest.mark.parametrize("arch", ["mobilenet_v2", "resnet50", "mobilenet_v3_small", "vgg16"])
def test_a_skeleton_loaded_with_a_state_dict_is_that_state_dict(arch):
    """Parity's references and every rebuilt port are built as skeletons (meta device, torch.nn.init's
    functions no-ops) and then loaded: they must hold exactly the state dict, and torch.nn.init must be
    itself again afterwards, even where the build raised."""
    import torch

    from convert.arch import get
    from convert.port.build import skeleton
    from parity.arch.layout import loaded

    before = {n: getattr(torch.nn.init, n) for n in ("kaiming_normal_", "normal_", "zeros_", "uniform_")}
    torch.manual_seed(0)
    stock = get(arch).torchvision({"alpha": 1.0} if arch == "mobilenet_v2" else {}, 10 if arch != "vgg16" else 0)
    sd = stock.state_dict()
    model = loaded(lambda: get(arch).torchvision({"alpha": 1.0} if arch == "mobilenet_v2" else {},
                                                 10 if arch != "vgg16" else 0), sd)
    got = model.state_dict()
    assert got.keys() == sd.keys() and all(torch.equal(got[k], sd[k]) for k in sd)
    assert all(t.device.type == "cpu" for t in got.values())
    with pytest.raises(RuntimeError, match="boom"), skeleton():
        assert torch.nn.init.kaiming_normal_ is not before["kaiming_normal_"]
        raise RuntimeError("boom")
    assert {n: getattr(torch.nn.init, n) for n in before} == before
