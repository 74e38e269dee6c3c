"""Named faults read from the numbers, for candidates whose code parity cannot inspect (an MMdnn `.py`,
an `.onnx`) and for the head of any candidate: a point that fails as it is, but passes once one named
difference is undone, names that difference as its cause.

Each hypothesis is a pair of functions applied to the candidate's and the source's values at a point
before they are compared again, at the point's own tolerance: ReLU for ReLU6 (the candidate's values
clipped at 6 equal the source's), ReLU6 for ReLU, and the head's final activation (softmax or sigmoid
of the candidate's output equals the source's: the candidate returns logits where the source returns
probabilities, or the other way round). Nothing is fitted: a hypothesis holds or it does not.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from parity.metrics import Comparison, PointResult, Tolerance


def _same(a: np.ndarray) -> np.ndarray:
    return a


def _clip6(a: np.ndarray) -> np.ndarray:
    return np.clip(a, 0.0, 6.0)


def _softmax(a: np.ndarray) -> np.ndarray:
    e = np.exp(a - a.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _sigmoid(a: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):  # exp(-a) of a large negative logit is inf: its sigmoid is 0
        return 1.0 / (1.0 + np.exp(-a))


@dataclass(frozen=True)
class Hypothesis:
    fault: str  # what the candidate does, in words ("ReLU where the source has ReLU6")
    cause: str
    fix: str
    cand: Callable[[np.ndarray], np.ndarray]  # applied to the candidate's values
    ref: Callable[[np.ndarray], np.ndarray]  # applied to the source's
    # whether the functions change anything, from (candidate's min, max, source's min, max): where they do
    # not, the point's own figures are the hypothesis's (no second pass over a 224 px feature map)
    changes: Callable[[float, float, float, float], bool] = lambda *_: True
    # softmax and sigmoid are applied in float64; a clip is exact in the values' own precision (float32), and
    # a 224 px feature map in float64 would cost twice the memory and time
    float64: bool = True


def _outside_0_6(lo: float, hi: float) -> bool:
    return lo < 0.0 or hi > 6.0


# by the source's activation (the architecture's `tf_activation`)
ACTIVATION: dict[str, Hypothesis] = {
    "Relu6": Hypothesis("ReLU where the source has ReLU6",
                        "the activation does not clip at 6: values above 6 pass through where the source clips them",
                        "use ReLU6 (torch.nn.ReLU6 / F.relu6; ONNX Clip(0, 6)) where the source has Relu6",
                        _clip6, _same, lambda c_lo, c_hi, r_lo, r_hi: _outside_0_6(c_lo, c_hi), float64=False),
    "Relu": Hypothesis("ReLU6 where the source has ReLU",
                       "the activation clips at 6 where the source passes every positive value",
                       "use ReLU (torch.nn.ReLU / F.relu; ONNX Relu) where the source has Relu", _same, _clip6,
                       lambda c_lo, c_hi, r_lo, r_hi: _outside_0_6(r_lo, r_hi), float64=False),
}

HEAD: tuple[Hypothesis, ...] = (
    Hypothesis("softmax missing", "the candidate returns logits where the source returns probabilities (its "
               "final softmax is missing)", "apply softmax to the candidate's output, or port the source's head "
               "with its activation", _softmax, _same),
    Hypothesis("sigmoid missing", "the candidate returns logits where the source returns probabilities (its "
               "final sigmoid is missing)", "apply sigmoid to the candidate's output, or port the source's head "
               "with its activation", _sigmoid, _same),
    Hypothesis("softmax added", "the candidate applies a softmax the source does not: it returns probabilities "
               "where the source returns logits", "drop the final softmax", _same, _softmax),
    Hypothesis("sigmoid added", "the candidate applies a sigmoid the source does not: it returns probabilities "
               "where the source returns logits", "drop the final sigmoid", _same, _sigmoid),
)


@dataclass(frozen=True)
class Tested:
    """A hypothesis compared at one point: the comparison after it is applied, and the largest values."""

    hypothesis: Hypothesis
    result: PointResult  # candidate vs source with the hypothesis applied
    cand_max: float
    ref_max: float

    @property
    def point(self) -> str:
        return self.result.point


class HypothesisTest:
    """The hypotheses at one point, built up over the same slices of probes as the point itself."""

    def __init__(self, point: str, hypotheses: tuple[Hypothesis, ...], tol: Tolerance) -> None:
        self.hypotheses = hypotheses
        self.comparisons = [Comparison(point, "tf", "eval", tol) for _ in hypotheses]
        self.cand_max = self.ref_max = -np.inf

    def add(self, cand: np.ndarray, ref: np.ndarray, sums=None) -> None:
        """The next slice of the point; `sums`: the point's own figures for it (parity.metrics.Comparison.add)."""
        if cand.shape != ref.shape or not ref.size:
            return  # the point itself fails on its shape; no hypothesis makes values of another shape equal
        if sums is not None and sums.extremes is not None:  # the kernel took them in the point's own pass
            c_lo, c_hi, r_lo, r_hi = sums.extremes
        else:
            c_lo, c_hi, r_lo, r_hi = float(cand.min()), float(cand.max()), float(ref.min()), float(ref.max())
        self.cand_max, self.ref_max = max(self.cand_max, c_hi), max(self.ref_max, r_hi)
        for h, comp in zip(self.hypotheses, self.comparisons, strict=True):
            if sums is not None and not h.changes(c_lo, c_hi, r_lo, r_hi):
                comp.add(cand, ref, sums=sums)
            elif h.float64:
                comp.add(h.cand(cand.astype(np.float64)), h.ref(ref.astype(np.float64)))
            else:
                comp.add(h.cand(cand), h.ref(ref))

    def results(self) -> list[Tested]:
        return [Tested(h, c.result(), self.cand_max, self.ref_max)
                for h, c in zip(self.hypotheses, self.comparisons, strict=True) if c.rows]


def tests_for(points_suffix: dict[str, str], tf_activation: str, tol: Tolerance) -> dict[str, HypothesisTest]:
    """A HypothesisTest for every `:act` point (the architecture's activation swapped) and for `output`
    (the head's final activation)."""
    out: dict[str, HypothesisTest] = {}
    act = ACTIVATION.get(tf_activation)
    for name, suffix in points_suffix.items():
        if suffix == ":act" and act is not None:
            out[name] = HypothesisTest(name, (act,), tol)
        elif suffix == "output":
            out[name] = HypothesisTest(name, HEAD, tol)
    return out


def first_holding(tested: list[Tested], failed: set[str]) -> Tested | None:
    """The first hypothesis (in point order) that holds at a point that failed as it is."""
    return next((t for t in tested if t.point in failed and t.result.passed), None)
