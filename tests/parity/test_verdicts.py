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
    from parity.run import NOTHING

    assert not compare("output", "tf", "eval", NOTHING, np.ones((2, 8, 3, 3), np.float32), EVAL_TOL)


def test_agreement_on_nothing_is_no_agreement():
    from convert.probe import agreement

    assert not agreement("canonical vs TF: output", np.empty((0, 5)), np.empty((0, 5))).ok(1e-5)


def test_conversion_without_any_path_is_not_ok():
    from convert.path_result import PathResult
    from convert.pipeline import ConversionResult

    assert not ConversionResult(source=None, paths=[]).ok
    assert not ConversionResult(source=None, paths=[PathResult("onnx", None)]).ok  # no agreement measured


def test_parity_report_over_no_points_fails():
    from parity.run import ParityReport

    report = ParityReport(candidate={}, source={}, config={}, results=[], checks=[], hazard={}, modes_passed=[])
    assert not report.passed
