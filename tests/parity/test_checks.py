"""The semantic checks one by one, on small modules and a source description: no TF, no conversion.

Each builds the context a check reads (`parity.context.CheckContext`'s fields) around a module a user could hold."""

from __future__ import annotations

import copy
import types

import numpy as np
import pytest
import torch

from parity.checks import CHECKS
from parity.evidence import measure_momentum


def _ctx(module: torch.nn.Module, n_source_bns: int, decay: float = 0.999):
    source = types.SimpleNamespace(spec=types.SimpleNamespace(bns=[types.SimpleNamespace(decay=decay)] * n_source_bns))
    return types.SimpleNamespace(candidate=types.SimpleNamespace(module=module), source=source, points=[],
                                 measured_momentum=measure_momentum(module))


class _UpdatesUnlikeDeclared(torch.nn.BatchNorm2d):
    """Declares one momentum, applies another (a hand-written BN an emitter might produce)."""

    def forward(self, x):
        return torch.nn.functional.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                                              self.training, 0.1, self.eps)


def _bns(*layers: torch.nn.Module) -> torch.nn.Sequential:
    return torch.nn.Sequential(*layers).eval()


def test_no_batchnorm_is_a_clear_failure_not_a_traceback():
    """An onnx2torch model without BatchNorm: nothing to measure (was a TypeError formatting None)."""
    res = CHECKS["bn_momentum"](_ctx(_bns(torch.nn.Conv2d(3, 8, 3)), 3))
    assert not res.passed and "cannot be compared" in res.evidence and "nor measured" in res.evidence


def test_faithful_momentum_passes_with_per_layer_measurement():
    res = CHECKS["bn_momentum"](_ctx(_bns(*(torch.nn.BatchNorm2d(4, momentum=0.001) for _ in range(3))), 3))
    assert res.passed, res
    assert "measured 0.001" in res.evidence


def test_a_later_layer_updating_unlike_it_declares_is_named():
    """Only min() over layers against the first layer's declaration let this pass."""
    mods = [torch.nn.BatchNorm2d(4, momentum=0.001), torch.nn.BatchNorm2d(4, momentum=0.001),
            _UpdatesUnlikeDeclared(4, momentum=0.001)]
    res = CHECKS["bn_momentum"](_ctx(_bns(*mods), 3))
    assert not res.passed and "first 2 declares momentum 0.001" in res.evidence and "0.1×" in res.evidence
    assert res.details["layers"] == ["2"]


@pytest.mark.parametrize("n_source", [2, 4], ids=["fewer-in-source", "more-in-source"])
def test_layer_count_differs(n_source):
    res = CHECKS["bn_momentum"](_ctx(_bns(*(torch.nn.BatchNorm2d(4, momentum=0.001) for _ in range(3))), n_source))
    assert not res.passed and "candidate has 3 BatchNorm modules" in res.evidence


def _mode_ctx(module: torch.nn.Module, first_in_batch=None):
    spec = types.SimpleNamespace(input_shape=(8, 8, 3), input_range=(-1.0, 1.0))
    return types.SimpleNamespace(candidate=types.SimpleNamespace(module=module, input_layout="NCHW"),
                                 source=types.SimpleNamespace(spec=spec), results=[], train_skipped="",
                                 first_in_batch=first_in_batch)


def _eval_stage_output(module: torch.nn.Module):
    """(first probe NHWC, its output in a batch of two) as parity's eval stage leaves them (EVAL_STEP probes a
    forward), computed on a copy: the eval stage's forward is not what the mode check measures."""
    from convert.model.probe import probe_inputs

    x = probe_inputs(2, (8, 8), (-1.0, 1.0), seed=0)
    with torch.no_grad():
        out = copy.deepcopy(module)(torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))))
    return x[:1], out[:1].numpy()


class _BatchSizeNoise(torch.nn.Module):
    """Large outputs that move with the batch's size by `rel` of their scale, as float32 kernels that differ
    between a batch of one and of two do (relative 1.3e-4 measured on a naive MobileNetV3 port's logits)."""

    def __init__(self, rel: float) -> None:
        super().__init__()
        self.rel = rel

    def forward(self, x):
        out = 8600.0 * torch.ones(x.shape[0], 10)
        return out * (1 + self.rel * (x.shape[0] - 1))


MODES = {  # a library caller's module (parity.run takes one): what it does at inference, not its flag
    "eval": (lambda: _bns(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Dropout(0.5)), True),
    "float32-noise-at-large-outputs": (lambda: _BatchSizeNoise(1.3e-4), True),
    "batch-dependence-past-1e-3": (lambda: _BatchSizeNoise(2e-3), False),
    "bn-in-train-mode": (lambda: _bns(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4)).train(), False),
    "dropout-in-train-mode": (lambda: torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Dropout(0.5)), False),
}


@pytest.mark.parametrize("eval_output", [False, True], ids=["batch-of-two-here", "eval-stage-batch"])
@pytest.mark.parametrize("case", list(MODES), ids=list(MODES))
def test_mode_measures_whether_inference_depends_on_the_batch(case, eval_output):
    """Either way: a batch of two run by the check, or the eval stage's batched output against one forward of
    the first probe alone (parity.run passes it where the eval stage ran several probes a forward)."""
    build, passes = MODES[case]
    module = build()
    before = copy.deepcopy(module.state_dict())
    res = CHECKS["mode"](_mode_ctx(module, _eval_stage_output(module) if eval_output else None))
    assert res.passed is passes, res
    assert passes or "train mode" in res.cause
    assert all(torch.equal(v, module.state_dict()[k]) for k, v in before.items())  # measured on a copy
