"""Per-point comparison: metrics and a pass/fail against tolerances given as data."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from parity.tolerances import EVAL_ATOL, EVAL_RTOL, TRAIN_ATOL, TRAIN_RTOL


@dataclass(frozen=True)
class Tolerance:
    """Pass when max|cand - ref| <= atol + rtol * max|ref| (per point). Defaults: parity.tolerances."""

    atol: float = EVAL_ATOL
    rtol: float = EVAL_RTOL

    def bound(self, ref: np.ndarray) -> float:
        return self.bound_at(float(np.abs(ref).max(initial=0.0)))

    def bound_at(self, max_ref: float) -> float:
        """The bound for a reference whose largest magnitude is max_ref."""
        return self.atol + self.rtol * max_ref


# The defaults every certificate must meet (the trainer's gate refuses a looser one); why these
# numbers: parity.tolerances.
EVAL_TOL = Tolerance()
TRAIN_TOL = Tolerance(atol=TRAIN_ATOL, rtol=TRAIN_RTOL)


@dataclass(frozen=True)
class PointResult:
    point: str
    reference: str
    mode: str
    shape: tuple[int, ...]
    max_abs: float
    mean_abs: float
    rel_l2: float
    cosine: float
    worst_index: tuple[int, ...]
    bound: float
    passed: bool

    def __bool__(self) -> bool:
        return self.passed

    def to_json(self) -> dict:
        d = asdict(self)
        d["shape"], d["worst_index"] = list(self.shape), list(self.worst_index)
        return d


# elements per chunk: float64 sums without float64 copies of whole activations (a 224 feature map at
# batch 8 holds ~10M values); chunks stay in cache, so this is ~9x faster than whole-array float64
_CHUNK = 1 << 16


def compare(point: str, reference: str, mode: str, cand: np.ndarray, ref: np.ndarray, tol: Tolerance) -> PointResult:
    """Compare as given: same layout, no permutation is ever tried to make shapes or values fit.

    One pass over both arrays in float64 chunks: max|Δ| and where, mean|Δ|, ‖Δ‖/‖ref‖, cosine, max|ref|.
    NaN or Inf anywhere makes max|Δ| non-finite, which fails the point; so does a comparison of nothing
    (no elements: a capture that never happened is not agreement)."""
    cand, ref = np.asarray(cand), np.asarray(ref)
    if cand.shape != ref.shape or not ref.size:
        return PointResult(point, reference, mode, tuple(cand.shape), float("inf"), float("inf"), float("inf"),
                           0.0, (), tol.bound(ref), False)
    s = _Sums.of(cand.reshape(-1), ref.reshape(-1))
    n = cand.size
    worst = tuple(int(i) for i in np.unravel_index(s.argmax, cand.shape)) if n else ()
    nref, ncand = math.sqrt(s.rr), math.sqrt(s.cc)
    cos = s.cr / (ncand * nref) if ncand and nref else float(ncand == nref)
    bound = tol.bound_at(s.max_ref)
    return PointResult(point, reference, mode, tuple(cand.shape), s.max_abs, s.sum_abs / n if n else 0.0,
                       math.sqrt(s.dd) / nref if nref else ncand, cos, worst, bound,
                       math.isfinite(s.max_abs) and s.max_abs <= bound)


@dataclass
class _Sums:
    max_abs: float = 0.0
    argmax: int = 0
    sum_abs: float = 0.0
    dd: float = 0.0  # Σ Δ²
    cc: float = 0.0  # Σ cand²
    rr: float = 0.0  # Σ ref²
    cr: float = 0.0  # Σ cand·ref
    max_ref: float = 0.0

    @classmethod
    def of(cls, c: np.ndarray, r: np.ndarray) -> _Sums:
        s = cls()
        for lo in range(0, c.size, _CHUNK):
            c64 = c[lo : lo + _CHUNK].astype(np.float64)
            r64 = r[lo : lo + _CHUNK].astype(np.float64)
            d = np.subtract(c64, r64)
            np.abs(d, out=d)
            i = int(np.argmax(d))  # the first NaN, if any
            if math.isfinite(s.max_abs) and not d[i] <= s.max_abs:
                s.max_abs, s.argmax = float(d[i]), lo + i
            s.sum_abs += float(d.sum())
            s.dd += float(d @ d)
            s.cc += float(c64 @ c64)
            s.rr += float(r64 @ r64)
            s.cr += float(c64 @ r64)
            np.abs(r64, out=r64)
            s.max_ref = max(s.max_ref, float(r64.max()))
        return s
