"""The trainer end to end, in-process through the CLI's main(): the numbers and the lines it prints."""

from __future__ import annotations

import json
import re

import pytest
import torch

from backbones import state
from backbones.cli import main

from .conftest import certify, write_ported


def _result(out) -> dict:
    return json.loads((out / "result.json").read_text())


def _losses(out) -> list[float]:
    """Every batch's train loss, then each epoch's train and valid loss."""
    epochs = _result(out)["epochs"]
    batches = [b for e in epochs for b in e["batch_losses"]]
    return batches + [v for e in epochs for v in (e["train_loss"], e["valid_loss"])]


def test_run_writes_table_log_plot_checkpoint(argv, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(argv(out)) == 0
    stdout = capsys.readouterr().out.splitlines()
    assert stdout[1].split() == ["epoch", "train_loss", "valid_loss", "time"]
    assert re.fullmatch(r"0\s+\d+\.\d{6}\s+\d+\.\d{6}\s+\d\d:\d\d", stdout[2])
    assert stdout[-1].startswith("DONE: mobilenet_v2: 2/2 epochs")
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.pt", "log.csv", "loss.png", "result.json"]
    assert (out / "log.csv").read_text().splitlines()[0] == ("epoch,train_loss,valid_loss,seconds,lr,bn_shift_sigma,"
                                                             "bn_log_var_ratio,bn_worst_layer")
    assert _result(out)["cached"] is True and _result(out)["passed"] is True


def test_nan_loss_stops_with_epoch_and_batch(argv, tmp_path, capsys):
    out = tmp_path / "nan"
    assert main(argv(out, "--max-lr", "1e30")) == 1
    last = capsys.readouterr().out.splitlines()[-1]
    assert re.match(r"STOPPED: .*train loss is (nan|inf) at epoch 0, batch \d+ \(of 4", last), last
    assert _result(out)["status"] == "stopped"


@pytest.mark.parametrize("head", ["default", "fastai"])
def test_cached_equals_uncached(argv, tmp_path, head):
    """Frozen backbone, BN eval, no augmentation: features once == backbone every batch (same seed),
    bit for bit, as the README promises (fastai's head: the feature maps are what is cached)."""
    assert main(argv(tmp_path / "cached", "--epochs", "3", "--head", head)) == 0
    assert main(argv(tmp_path / "uncached", "--epochs", "3", "--head", head, "--no-feature-cache")) == 0
    assert _result(tmp_path / "cached")["cached"] and not _result(tmp_path / "uncached")["cached"]
    assert _losses(tmp_path / "cached") == _losses(tmp_path / "uncached")


RESUMABLE = {
    "cached-head": (),
    "bn-train-augment": ("--bn", "train", "--augment", "--bn-momentum", "0.1"),
}


@pytest.mark.parametrize("extra", list(RESUMABLE.values()), ids=list(RESUMABLE))
def test_resume_equals_uninterrupted(argv, tmp_path, capsys, extra):
    full, parts = tmp_path / "full", tmp_path / "parts"
    assert main(argv(full, *extra)) == 0
    assert main(argv(parts, "--stop-after", "1", *extra)) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("PAUSED: mobilenet_v2: 1/2 epochs")
    assert main(argv(parts, "--resume", *extra)) == 0
    assert _losses(parts) == _losses(full)  # exactly
    a, b = state.load(full / state.NAME), state.load(parts / state.NAME)
    assert a["model"].keys() == b["model"].keys()
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])


def test_resume_refuses_a_different_plan(argv, tmp_path, capsys):
    out = tmp_path / "r"
    assert main(argv(out, "--stop-after", "1")) == 0
    assert main(argv(out, "--resume", "--bs", "16")) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: --resume: {out / state.NAME} was trained with bs=8, this run has 16"]


def test_existing_run_is_not_overwritten(argv, tmp_path, capsys):
    out = tmp_path / "r"
    assert main(argv(out)) == 0
    before = (out / state.NAME).read_bytes()
    assert main(argv(out)) == 2
    assert "pass --resume" in capsys.readouterr().err
    assert (out / state.NAME).read_bytes() == before


WARN = "BN running statistics cannot follow"


@pytest.mark.parametrize("momentum,warns", [("0", True), ("0.001", True), ("0.1", False)],
                         ids=["mmdnn-0", "tf-0.001", "pytorch-0.1"])
def test_bn_train_warns_when_running_stats_cannot_follow(argv, tmp_path, capsys, momentum, warns):
    """2 epochs x 4 batches: 0.9^8 = 43 % left (follows); 0.999^8 = 99 % and 0^8 = 100 % (cannot)."""
    assert main(argv(tmp_path / "w", "--bn", "train", "--bn-momentum", momentum)) == 0
    err = capsys.readouterr().err
    assert (WARN in err) == warns
    if warns:
        left = {"0": "100%", "0.001": "99%"}[momentum]
        assert f"WARNING: {WARN}: BN momentum {momentum} on 52 layers over 8 training batches: the running " \
               f"statistics still hold {left} of the source's at the end" in err


def test_bn_eval_has_no_forecast(argv, tmp_path, capsys):
    assert main(argv(tmp_path / "e", "--bn-momentum", "0")) == 0
    assert WARN not in capsys.readouterr().err


# ---------------------------------------------------------------- the parity gate
def test_gate_refuses_uncertified_port(argv, port, tmp_path, capsys):
    out = tmp_path / "g"
    assert main(argv(out, backbone=port)) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: parity gate: ") and "no parity certificate" in err[0]
    assert not out.exists()  # nothing half-written


def test_gate_accepts_certified_port(argv, port, tmp_path, capsys):
    certify(port, "eval")
    assert main(argv(tmp_path / "g", backbone=port)) == 0
    assert "inputs tf" in capsys.readouterr().out  # the port's own [-1, 1] preprocessing


def test_gate_refuses_bn_train_on_eval_only_certificate(argv, port, tmp_path, capsys):
    certify(port, "eval")
    assert main(argv(tmp_path / "g", "--bn", "train", backbone=port)) == 1
    assert "certified for eval-mode BatchNorm only" in capsys.readouterr().err


def test_gate_refuses_changed_bytes(argv, port, tmp_path, capsys):
    certify(port, "eval", "train")
    write_ported(port, seed=1)  # same file, same architecture, other weights: another sha256
    assert main(argv(tmp_path / "g", backbone=port)) == 1
    assert "sha256 differs" in capsys.readouterr().err


def test_gate_override_is_loud(argv, port, tmp_path, capsys):
    assert main(argv(tmp_path / "g", "--no-parity-gate", backbone=port)) == 0
    assert "WARNING: PARITY GATE SKIPPED" in capsys.readouterr().err


@pytest.mark.parametrize("freeze,trains_conv", [("backbone", False), ("none", True)], ids=["head-only", "fine-tune"])
def test_freeze_policy_decides_what_is_saved_and_trained(argv, mobilenet_weights, tmp_path, freeze, trains_conv):
    """The checkpoint holds what can change: the backbone's convolutions only when they train."""
    assert main(argv(tmp_path / "f", "--freeze", freeze, "--bn", "train", "--bn-momentum", "0.1")) == 0
    saved = state.load(tmp_path / "f" / state.NAME)["model"]
    conv = "backbone.0.0.0.weight"  # MobileNetV2's first convolution: features.0.0.weight in torchvision
    assert (conv in saved) == trains_conv
    if trains_conv:
        assert not torch.equal(saved[conv], torch.load(mobilenet_weights)["features.0.0.weight"])
    assert "backbone.0.0.1.weight" in saved and "backbone.0.0.1.running_mean" in saved  # BN affine + stats
    assert any(k.startswith("head.") for k in saved)


def test_preprocess_override(argv, port, tmp_path, capsys):
    """fastai feeds every backbone ImageNet statistics; --preprocess imagenet does the same to a port."""
    certify(port, "eval")
    assert main(argv(tmp_path / "p", "--preprocess", "imagenet", backbone=port)) == 0
    assert "inputs imagenet" in capsys.readouterr().out


def test_defaults_adamw_and_one_cycle(noses, mobilenet_weights, tmp_path, monkeypatch):
    """README usage: --bs 8, --max-lr 0.01, --epochs 5, --head default, --freeze backbone, --bn eval, output in
    runs/NAME; AdamW + torch's OneCycleLR (its learning rate rises, then falls far below the peak)."""
    from backbones.cli import build_parser

    args = build_parser().parse_args(["train", "--backbone", "mobilenet_v2", "--data", "d"])
    assert (args.bs, args.max_lr, args.epochs, args.head, args.freeze, args.bn, args.out) == (
        8, 0.01, 5, "default", "backbone", "eval", None)
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--backbone", "mobilenet_v2", "--weights", str(mobilenet_weights), "--data", str(noses),
                 "--img-size", "32", "--epochs", "3", "--head-hidden", "16"]) == 0
    saved = state.load(tmp_path / "runs" / "mobilenet_v2" / state.NAME)
    assert saved["optimizer"]["param_groups"][0]["decoupled_weight_decay"] is True  # AdamW, not Adam
    assert {"total_steps", "_schedule_phases"} <= set(saved["scheduler"])  # OneCycleLR's own state
    lrs = [e["lr"] for e in _result(tmp_path / "runs" / "mobilenet_v2")["epochs"]]
    assert max(lrs) <= 0.01 and lrs == sorted(lrs, reverse=True) and lrs[-1] < 0.01 / 10  # past the peak: annealing


def test_train_losses_do_not_depend_on_the_backbone_bn_momentum(argv, tmp_path):
    """README (seed table): under --bn train, momentum changes only what validation normalises with: every
    training batch's loss is the same at momentum 0 and 0.1 (batch statistics), the validation losses are not."""
    runs = {}
    for m in ("0", "0.1"):
        assert main(argv(tmp_path / m, "--bn", "train", "--bn-momentum", m, "--no-feature-cache")) == 0
        runs[m] = _result(tmp_path / m)["epochs"]
    assert [b for e in runs["0"] for b in e["batch_losses"]] == [b for e in runs["0.1"] for b in e["batch_losses"]]
    assert [e["valid_loss"] for e in runs["0"]] != [e["valid_loss"] for e in runs["0.1"]]



def test_head_only_training_runs_on_one_thread_and_gives_the_count_back(argv, tmp_path):
    """Features cached, the head trains alone: its small batches run on one thread (backbones.trainer
    HEAD_ONE_THREAD_WORK: waking a second thread per op cost more than it shared), the count given back after the
    epochs; a batch past the bound keeps every thread."""
    from backbones.trainer import HEAD_ONE_THREAD_WORK, head_threads

    seen: list[int] = []

    def hook(module, _inputs, _output):
        if isinstance(module, torch.nn.Linear) and torch.is_grad_enabled():  # a training step's forward
            seen.append(torch.get_num_threads())

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    handle = torch.nn.modules.module.register_module_forward_hook(hook)
    try:
        assert main(argv(tmp_path / "run")) == 0
        after = torch.get_num_threads()
        head = torch.nn.Linear(1000, 1000)  # 1 001 000 parameters
        with head_threads(head, int(HEAD_ONE_THREAD_WORK // 1_001_000) + 1):
            large = torch.get_num_threads()
        with head_threads(head, 8):
            small = torch.get_num_threads()
        restored = torch.get_num_threads()
    finally:
        handle.remove()
        torch.set_num_threads(before)
    assert _result(tmp_path / "run")["cached"] is True
    assert seen and set(seen) == {1} and after == 2
    assert (large, small, restored) == (2, 1, 2)
