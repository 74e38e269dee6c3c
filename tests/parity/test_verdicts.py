"""A verdict over nothing is not a pass: an empty comparison, an empty list of agreements or paths, a
point the candidate never produced. ("Writes nothing unless the port reproduces TF" needs every
output it writes to have been compared.)"""

from __future__ import annotations

import numpy as np

from parity.metrics import EVAL_TOL, compare


def test_comparing_nothing_fails():
    r = compare("output", "tf", "eval", np.empty((0, 4)), np.empty((0, 4)), EVAL_TOL)
    assert not r.passed


def test_a_point_never_captured_fails():
    from parity.capture import NOTHING

    assert not compare("output", "tf", "eval", NOTHING, np.ones((2, 8, 3, 3), np.float32), EVAL_TOL)


def test_agreement_on_nothing_is_no_agreement():
    from convert.model.agreement import agreement

    assert not agreement("canonical vs TF: output", np.empty((0, 5)), np.empty((0, 5))).ok(1e-5)


def test_conversion_without_any_path_is_not_ok():
    from convert.paths.result import PathResult
    from convert.pipeline import ConversionResult

    assert not ConversionResult(source=None, paths=[]).ok
    assert not ConversionResult(source=None, paths=[PathResult("onnx", None)]).ok  # no agreement measured


def test_parity_report_over_no_points_fails():
    from parity.results import ParityReport

    report = ParityReport(candidate={}, source={}, config={}, results=[], checks=[], hazard={}, modes_passed=[])
    assert not report.passed


def test_a_point_passes_at_atol_plus_rtol_times_max_ref():
    """README: a point passes when max|Δ| <= atol + rtol·max|ref|, defaults 1e-5 + 1e-4 (eval) and
    1e-4 + 2e-3 (train); compared as given, never permuted."""
    from parity.metrics import TRAIN_TOL

    assert (EVAL_TOL.atol, EVAL_TOL.rtol, TRAIN_TOL.atol, TRAIN_TOL.rtol) == (1e-5, 1e-4, 1e-4, 2e-3)
    ref = np.zeros((2, 3, 4, 4))
    ref[1, 2, 3, 0] = -10.0  # max|ref| 10: bound 1e-5 + 1e-3
    bound = 1e-5 + 1e-4 * 10.0
    at, over = ref.copy(), ref.copy()
    at[0, 1, 1, 1] += bound * (1 - 1e-9)
    over[0, 1, 1, 1] += bound * (1 + 1e-6)
    assert compare("p", "tf", "eval", at, ref, EVAL_TOL).passed
    r = compare("p", "tf", "eval", over, ref, EVAL_TOL)
    assert not r.passed and r.worst_index == (0, 1, 1, 1) and r.bound == bound
    assert compare("p", "tf", "train", over, ref, TRAIN_TOL).passed  # the looser train-mode bound
    spatial = np.random.default_rng(0).normal(size=(2, 3, 4, 4))
    assert not compare("p", "tf", "eval", spatial.transpose(0, 1, 3, 2), spatial, EVAL_TOL).passed


def _result(point: str, mode: str, passed: bool, reference: str = "tf"):
    from parity.metrics import PointResult

    return PointResult(point, reference, mode, (4, 8), 0.0 if passed else 1.0, 0.0, 0.0, 1.0, (), 1e-5, passed)


def test_a_train_mode_point_that_fails_fails_the_verdict():
    """Every eval point and every check passing, one train-mode point not: no pass, no mode certified (the
    verdict reads the train-mode points itself, not only through the mode check that names them)."""
    from parity.checks import CheckResult
    from parity.results import gating_passed, modes_passed

    evals = [_result(p, "eval", True) for p in ("features.0:bn", "output")]
    checks = [CheckResult("mode", True, "")]
    assert gating_passed(evals + [_result("features.0:bn", "train", True)], checks)
    assert modes_passed(evals + [_result("features.0:bn", "train", True)], checks) == ["eval", "train"]
    assert modes_passed(evals, checks) == ["eval"]  # train mode not compared: eval only
    train = [_result("features.0:bn", "train", True), _result("features.0:act", "train", False)]
    assert not gating_passed(evals + train, checks)
    assert modes_passed(evals + train, checks) == []
