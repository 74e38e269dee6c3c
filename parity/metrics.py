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
    c = Comparison(point, reference, mode, tol)
    c.add(cand, ref)
    return c.result()


class Comparison:
    """One point's comparison built up over consecutive slices of the probes (axis 0): the figures
    `compare` gives for the whole arrays, without ever holding them whole (parity's eval stage runs a
    few probes at a time: scripts/bench memory_parity)."""

    def __init__(self, point: str, reference: str, mode: str, tol: Tolerance) -> None:
        self.point, self.reference, self.mode, self.tol = point, reference, mode, tol
        self.sums = _Sums()
        self.rows = 0  # probes added so far
        self.row_shape: tuple[int, ...] | None = None  # one probe's shape
        self.misfit: tuple[int, ...] | None = None  # the candidate's shape where it did not fit the reference

    def add(self, cand: np.ndarray, ref: np.ndarray, sums: _Sums | None = None) -> _Sums | None:
        """Add the next slice; returns its sums (None where it does not fit). `sums`: the slice's sums as
        another comparison of the very same arrays computed them (parity.hypotheses reuses them where a
        hypothesis changes nothing), instead of a second pass."""
        cand, ref = np.asarray(cand), np.asarray(ref)
        fits = cand.shape == ref.shape and ref.size and self.row_shape in (None, cand.shape[1:])
        if self.misfit is not None or not fits:
            self.misfit = self.misfit or tuple(cand.shape)
            self.sums.max_ref = max(self.sums.max_ref, float(np.abs(ref).max(initial=0.0)))
            return None
        self.row_shape = tuple(cand.shape[1:])
        sums = sums if sums is not None else _Sums.of(cand.reshape(-1), ref.reshape(-1))
        self.sums.merge(sums, offset=self.rows * math.prod(self.row_shape))
        self.rows += len(cand)
        return sums

    def result(self) -> PointResult:
        s, bound = self.sums, self.tol.bound_at(self.sums.max_ref)
        if self.misfit is not None or self.row_shape is None:
            return PointResult(self.point, self.reference, self.mode, self.misfit or (0,), float("inf"),
                               float("inf"), float("inf"), 0.0, (), bound, False)
        shape = (self.rows, *self.row_shape)
        n = math.prod(shape)
        worst = tuple(int(i) for i in np.unravel_index(s.argmax, shape)) if n else ()
        nref, ncand = math.sqrt(s.rr), math.sqrt(s.cc)
        cos = s.cr / (ncand * nref) if ncand and nref else float(ncand == nref)
        return PointResult(self.point, self.reference, self.mode, shape, s.max_abs, s.sum_abs / n if n else 0.0,
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

    def merge(self, o: _Sums, offset: int) -> None:
        """Add the sums of the elements that follow, `o.argmax` counted from `offset`; the first NaN or
        largest |Δ| is kept, as within one array."""
        if math.isfinite(self.max_abs) and not o.max_abs <= self.max_abs:
            self.max_abs, self.argmax = o.max_abs, offset + o.argmax
        self.sum_abs += o.sum_abs
        self.dd += o.dd
        self.cc += o.cc
        self.rr += o.rr
        self.cr += o.cr
        self.max_ref = max(self.max_ref, o.max_ref)
