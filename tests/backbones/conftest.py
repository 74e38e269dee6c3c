"""Fixtures for the backbones tests: a tiny synthetic dataset, a ported checkpoint, certificates.

Everything is small (40 faces at 32 px, MobileNetV2 at 32 px input) so the whole directory runs in
well under two minutes on two CPU cores.
"""

from __future__ import annotations

import shutil
import types
from pathlib import Path

import pytest
import torch

from convert.port import checkpoint
from convert.runtime.files import sha256_file

N_IMAGES = 40  # 32 train, 8 valid (every 5th image is valid)
IMG = 32


@pytest.fixture(scope="package", autouse=True)
def _one_thread():
    """Small batches gain nothing from a second thread, and lose a lot when the other core is busy. For this
    package's tests only: session-scoped, it stayed on for every later test in the process, and torch's
    convolutions round differently on one thread than on two (parity's figures moved at 1e-7, which
    tests/reliability/test_determinism.py caught in a worker that had run these tests first)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def noses(tmp_path_factory) -> Path:
    from backbones.synth import write_dataset

    folder = tmp_path_factory.mktemp("noses")
    write_dataset(folder, n=N_IMAGES, size=IMG, seed=0, workers=1)
    return folder


def write_ported(path: Path, *, momentum: float = 0.0, alpha: float = 0.35, seed: int = 0) -> str:
    """A ported checkpoint in convert's format (what `python -m convert tf2torch` writes), without TF:
    torchvision's MobileNetV2 weights with calibrated BN statistics, plus the metadata the canonical
    builder reads."""
    from torchvision.models import mobilenet_v2

    from backbones.calibrate import calibrate_bn

    torch.manual_seed(seed)
    model = mobilenet_v2(width_mult=alpha)
    calibrate_bn(model, size=IMG, seed=seed)
    bn = {name: {"eps": 1e-3, "momentum": momentum} for name, m in model.named_modules()
          if isinstance(m, torch.nn.BatchNorm2d)}
    meta = {"arch": "mobilenet_v2", "alpha": alpha, "num_classes": 1000, "input_size": [IMG, IMG],
            "input_range": [-1.0, 1.0], "padding": {}, "bn": bn, "head": None}
    return checkpoint.save(path, model.state_dict(), meta)


@pytest.fixture(scope="session")
def ported(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ported") / "ported.pth"
    write_ported(path)
    return path


@pytest.fixture
def port(ported, tmp_path) -> Path:
    """A private copy of the ported checkpoint: certificates are written beside it."""
    path = tmp_path / "port.pth"
    shutil.copyfile(ported, path)
    return path


def certify(ckpt: Path, *modes: str) -> None:
    """A passing parity certificate for exactly these bytes and BN modes, through parity's own writer
    (what `python -m parity check` leaves beside a checkpoint that passes)."""
    from parity import certificate

    sha = sha256_file(ckpt)
    ns = types.SimpleNamespace
    compared = [ns(reference=r, mode="eval", shape=(8, 10)) for r in ("tf", "torchvision+declared")]
    report = ns(candidate=ns(sha256=sha, bn_folded=False), source=ns(path="source.h5", sha256="0" * 64),
                config=ns(atol=1e-5, rtol=1e-4, train_atol=1e-4, train_rtol=2e-3, against=["tf", "torchvision"],
                          tool_version="test"),
                results=compared, modes_passed=list(modes), hazard=ns(bn_momentum=0.0, half_life_steps=None))
    certificate.write(report, ckpt)


@pytest.fixture(scope="session")
def mobilenet_weights(tmp_path_factory) -> Path:
    """torchvision MobileNetV2 with BN statistics of real-looking inputs: at random init its eval-mode
    features are ~1e-10 and a head would train on rounding noise (see backbones.calibrate)."""
    from backbones.seed_grid import calibrated_mobilenet

    path = tmp_path_factory.mktemp("weights") / "mobilenet_v2.pth"
    calibrated_mobilenet(path, seed=0, size=IMG)
    return path


def train_argv(data: Path, out: Path, *extra: str, backbone: str | Path = "mobilenet_v2",
               weights: Path | None = None) -> list[str]:
    """A small, fast training run: 32 px, bs 8 (4 batches an epoch), 2 epochs unless overridden."""
    return ["train", "--backbone", str(backbone), "--data", str(data), "--out", str(out), "--img-size", str(IMG),
            "--bs", "8", "--epochs", "2", "--head-hidden", "64", "32",
            *(["--weights", str(weights)] if weights else []), *extra]


@pytest.fixture(scope="session")
def argv(noses, mobilenet_weights):
    """train_argv on the shared dataset; the calibrated MobileNetV2 unless another backbone is named."""

    def make(out: Path, *extra: str, backbone: str | Path | None = None) -> list[str]:
        if backbone is None:
            return train_argv(noses, out, *extra, weights=mobilenet_weights)
        return train_argv(noses, out, *extra, backbone=backbone)

    return make
