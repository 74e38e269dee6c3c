"""The BN-statistics monitor: it names the drift that makes validation explode under --bn train.

The calibrated MobileNetV2's running statistics are those of smooth [-1, 1] images; the synthetic faces
arrive ImageNet-normalised (another distribution), as in the user's set-up. With momentum 0 the
running statistics never follow, so validation normalises with statistics far from what training
used; with momentum 0.1 they follow within a few dozen steps; under --bn eval there is nothing to drift.
"""

from __future__ import annotations

import csv
import math

import pytest
import torch
from torch import nn

from backbones.bn_monitor import SCALE_WARN, SHIFT_WARN, BNMonitor
from backbones.cli import main


def _train(argv, tmp_path, capsys, *extra):
    out = tmp_path / "run"
    code = main(argv(out, "--preprocess", "imagenet", *extra))
    captured = capsys.readouterr()
    rows = list(csv.DictReader((out / "log.csv").open()))
    return code, captured.out + captured.err, rows


@pytest.fixture(scope="module")
def argv160(tmp_path_factory, mobilenet_weights):
    """160 faces (128 train): 16 steps an epoch at bs 8, enough for momentum 0.1 to follow in epoch 0."""
    from backbones.synth import write_dataset

    from .conftest import train_argv

    data = tmp_path_factory.mktemp("noses160")
    write_dataset(data, n=160, size=32, seed=0, workers=1)
    return lambda out, *extra: train_argv(data, out, *extra, weights=mobilenet_weights)


def test_flags_momentum_zero_on_shifted_data(argv160, tmp_path, capsys):
    code, text, rows = _train(argv160, tmp_path, capsys, "--bn", "train", "--bn-momentum", "0", "--head", "fastai")
    assert code == 0
    shift = [float(r["bn_shift_sigma"]) for r in rows]
    scale = [float(r["bn_log_var_ratio"]) for r in rows]
    assert all(s > SHIFT_WARN or v > SCALE_WARN for s, v in zip(shift, scale, strict=True))
    assert all(r["bn_worst_layer"].startswith("features.") for r in rows)
    assert "bn_drift" in text and "WARNING: BN statistics drift: epoch 0:" in text
    assert text.count("WARNING: BN statistics drift") == 1  # README: warns once (both epochs are past it)
    assert f"{rows[0]['bn_worst_layer']}: validation normalises with statistics" in text


def test_quiet_for_momentum_point_one_after_enough_steps(argv160, tmp_path, capsys):
    code, text, rows = _train(argv160, tmp_path, capsys, "--bn", "train", "--bn-momentum", "0.1", "--head", "fastai")
    assert code == 0
    shift = [float(r["bn_shift_sigma"]) for r in rows]
    scale = [float(r["bn_log_var_ratio"]) for r in rows]
    assert max(shift) < SHIFT_WARN / 2 and max(scale) < SCALE_WARN / 2
    assert "bn_drift" in text and "BN statistics drift" not in text


def test_quiet_under_bn_eval(argv, tmp_path, capsys):
    code, text, rows = _train(argv, tmp_path, capsys, "--bn", "eval", "--head", "fastai")
    assert code == 0
    assert all(r["bn_shift_sigma"] == "" for r in rows) and "bn_drift" not in text and "drift" not in text


def test_drift_figures_are_the_definition():
    """One BN layer, hand-computed: RMS over channels of (mean of batch means - running mean) /
    sqrt(running var + eps), and of log(mean of batch vars / running var)."""
    bn = nn.BatchNorm2d(2, momentum=0.0)
    with torch.no_grad():
        bn.running_mean.copy_(torch.tensor([0.0, 1.0]))
        bn.running_var.copy_(torch.tensor([4.0, 1.0]))
    mon = BNMonitor(nn.Sequential(bn))
    bn.train()
    xs = [torch.full((2, 2, 3, 3), 2.0) + torch.randn(2, 2, 3, 3) * 0.5 for _ in range(3)]
    for x in xs:
        bn(x)
    bn.eval()
    bn(xs[0])  # eval passes are not collected
    d = mon.drift()
    mon.close()
    batch_means = torch.stack([x.mean(dim=(0, 2, 3)) for x in xs]).mean(0).double()
    batch_vars = torch.stack([x.var(dim=(0, 2, 3), unbiased=False) for x in xs]).mean(0).double()
    rv = torch.tensor([4.0, 1.0], dtype=torch.float64) + bn.eps
    want_shift = ((batch_means - torch.tensor([0.0, 1.0], dtype=torch.float64)) / rv.sqrt()).square().mean().sqrt()
    want_scale = ((batch_vars + bn.eps) / rv).log().square().mean().sqrt()
    assert d.shift == pytest.approx(float(want_shift), rel=1e-6)
    assert d.scale == pytest.approx(float(want_scale), rel=1e-6)
    assert math.isfinite(d.shift) and not mon._hooks
    # README: past 0.3 sigma or a variance factor of 3 it warns
    assert SHIFT_WARN == 0.3 and SCALE_WARN == pytest.approx(math.log(3.0))
