"""The named hypotheses (parity.hypotheses) on arrays: a failing point that one undone difference makes equal
names that difference; one that it does not is not named; figures reused where a hypothesis changes nothing
are the figures a second pass would give."""

from __future__ import annotations

import numpy as np
import pytest

from parity.hypotheses import ACTIVATION, HEAD, HypothesisTest, first_holding
from parity.metrics import EVAL_TOL, Comparison

pytestmark = pytest.mark.usefixtures("both_comparison_paths")  # the kernel's extremes, and numpy's own passes


def _pre(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 4, (2, 8, 5, 5)).astype(np.float32)


def _tested(cand_slices, ref_slices, hypotheses):
    point = Comparison("p:act", "tf", "eval", EVAL_TOL)
    test = HypothesisTest("p:act", hypotheses, EVAL_TOL)
    for c, r in zip(cand_slices, ref_slices, strict=True):
        test.add(c, r, point.add(c, r))
    return point.result(), test.results()


CASES = {  # name: (candidate's activation, source's, hypotheses, the fault named or None)
    "relu-for-relu6": (lambda x: np.maximum(x, 0), lambda x: np.clip(x, 0, 6), (ACTIVATION["Relu6"],),
                       "ReLU where the source has ReLU6"),
    "relu6-for-relu": (lambda x: np.clip(x, 0, 6), lambda x: np.maximum(x, 0), (ACTIVATION["Relu"],),
                       "ReLU6 where the source has ReLU"),
    "upstream-difference": (lambda x: np.clip(x + 0.5, 0, 6), lambda x: np.clip(x, 0, 6), (ACTIVATION["Relu6"],),
                            None),
    "softmax-missing": (lambda x: x, lambda x: np.exp(x) / np.exp(x).sum(1, keepdims=True), HEAD,
                        "softmax missing"),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_a_failing_point_is_named_only_where_undoing_the_fault_makes_it_equal(case):
    cand_fn, ref_fn, hypotheses, named = CASES[case]
    x = [_pre(s).reshape(2, -1) if hypotheses is HEAD else _pre(s) for s in (0, 1)]
    point, tested = _tested([cand_fn(a) for a in x], [ref_fn(a) for a in x], hypotheses)
    assert not point.passed
    holding = first_holding(tested, {"p:act"})
    assert (holding.hypothesis.fault if holding else None) == named


def test_figures_reused_where_nothing_changes_equal_a_second_pass():
    """Slices where the candidate stays within [0, 6] reuse the point's own sums for the ReLU hypothesis."""
    x = [np.clip(_pre(s), 0, 5.9) for s in (0, 1)]
    ref = [a + np.float32(1e-3) for a in x]
    _, (tested,) = _tested(x, ref, (ACTIVATION["Relu6"],))
    again = Comparison("p:act", "tf", "eval", EVAL_TOL)
    for c, r in zip(x, ref, strict=True):
        again.add(np.clip(c, 0, 6), r)
    assert tested.result == again.result()
