"""Every registered backbone builds without downloads and yields pooled features of its stated size."""

from __future__ import annotations

import pytest
import torch

from backbones import registry
from convert.runtime.errors import TfportError
from convert.runtime.files import sha256_file


@pytest.mark.parametrize("name", list(registry.REGISTRY), ids=list(registry.REGISTRY))
def test_features_have_the_registered_size(name):
    torch.manual_seed(0)
    b = registry.build(name)
    b.features.eval()
    with torch.no_grad():
        f = b.features(torch.randn(2, 3, 32, 32))
    assert tuple(f.shape) == (2, b.dim) == (2, registry.REGISTRY[name].dim)
    assert b.preprocess.name == "imagenet" and b.ported is None


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_local_weights_file_is_loaded(tmp_path, suffix):
    from safetensors.torch import save_file
    from torchvision.models import mobilenet_v2

    torch.manual_seed(1)
    ref = mobilenet_v2().eval()
    w = tmp_path / f"w{suffix}"
    if suffix == ".pth":
        torch.save(ref.state_dict(), w)
    else:  # a timm / Hugging Face style file
        save_file(ref.state_dict(), str(w))
    torch.manual_seed(2)  # a different random init, replaced by the file
    b = registry.build("mobilenet_v2", str(w))
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expect = torch.nn.functional.adaptive_avg_pool2d(ref.features(x), 1).flatten(1)
        assert torch.equal(b.features.eval()(x), expect)
    assert b.source["sha256"] and b.source["weights"] == str(w)


def test_ported_checkpoint_uses_its_metadata(ported):
    b = registry.build(str(ported))
    assert b.ported == str(ported) and b.preprocess.name == "tf" and b.dim == 1280
    assert b.source["kind"] == "ported" and len(b.source["sha256"]) == 64


def test_ported_safetensors_is_a_ported_backbone(ported, tmp_path):
    from convert.port import checkpoint

    sd, meta = checkpoint.load(ported)
    st = tmp_path / "ported.safetensors"
    checkpoint.save(st, sd, meta)
    b, ref = registry.build(str(st)), registry.build(str(ported))
    assert b.ported == str(st) and b.source["sha256"] == sha256_file(st) and b.dim == ref.dim
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(b.features.eval()(x), ref.features.eval()(x))


BAD = {
    "unknown-name": (("resnet18", None), "unknown backbone 'resnet18'; known: resnet34"),
    "missing-weights": (("resnet34", "nope.pth"), "no such file"),
    "weights-for-ported": (("x.pth", "w.pth"), "carries its own weights"),
    "missing-ported": (("missing.pth", None), "no such ported checkpoint"),
}


@pytest.mark.parametrize("args,message", list(BAD.values()), ids=list(BAD))
def test_bad_backbone_is_refused(tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(TfportError, match=message):
        registry.build(*args)


@pytest.mark.parametrize("content", [b"garbage", None], ids=["not-a-file-torch-reads", "wrong-model"])
def test_bad_weights_file(tmp_path, content):
    path = tmp_path / "w.pth"
    if content is None:
        torch.save({"fc.weight": torch.zeros(2, 2)}, path)
    else:
        path.write_bytes(content)
    with pytest.raises(TfportError, match="--weights"):
        registry.build("mobilenet_v2", str(path))


def test_corrupt_ported_checkpoint(tmp_path):
    (tmp_path / "bad.pth").write_bytes(b"\x00" * 100)
    with pytest.raises(TfportError, match="bad.pth"):  # the wording is convert.port.torch_files'
        registry.build(str(tmp_path / "bad.pth"))


def test_the_name_check_runs_without_torch():
    """The CLI checks --backbone before torch loads, so a typo fails at once: the registry, and the
    ported-checkpoint suffixes it takes from convert.checkpoint, import no torch."""
    import subprocess
    import sys

    code = ("import sys\nfrom backbones import registry\nregistry.check_name('port.safetensors')\n"
            "print('torch' in sys.modules, registry.PORTED_SUFFIXES)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True).stdout
    assert out.strip() == "False ('.pth', '.safetensors')"
