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


# elements per chunk: each chunk's figures are computed in the arrays' own precision (float32: a
# difference of two float32 values is exact or correctly rounded, and its max decides the verdict), in cache
# and by BLAS for the sums of squares and products, and accumulated over chunks in float64: ~2.5x faster
# than float64 copies of each chunk (parity compares ~470M values at 224), and where a chunk's float32
# sums overflow (values beyond ~1e19) that chunk is summed again in float64
_CHUNK = 1 << 16


def compare(point: str, reference: str, mode: str, cand: np.ndarray, ref: np.ndarray, tol: Tolerance) -> PointResult:
    """Compare as given: same layout, no permutation is ever tried to make shapes or values fit.

    Over both arrays in chunks (figures per chunk, sums in float64): max|Δ| and where, mean|Δ|, ‖Δ‖/‖ref‖,
    cosine, max|ref|.
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
        self.perm: tuple[int, ...] | None = None  # memory order both sides share (_memory_order), from slice 1
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
        if self.row_shape is None:
            self.perm = _memory_order(cand, ref)
        self.row_shape = tuple(cand.shape[1:])
        if sums is None or sums.perm != self.perm:
            sums = _Sums.of(cand, ref, self.perm)
        self.sums.merge(sums, offset=self.rows * math.prod(self.row_shape))
        self.rows += len(cand)
        return sums

    def spoil(self, shape: tuple[int, ...]) -> None:
        """The candidate gave this point values that fit no reference (a module run twice per forward: a
        tensor of `shape`): it fails, whatever was added."""
        self.misfit = self.misfit or tuple(shape)

    def result(self) -> PointResult:
        s, bound = self.sums, self.tol.bound_at(self.sums.max_ref)
        if self.misfit is not None or self.row_shape is None:
            return PointResult(self.point, self.reference, self.mode, self.misfit or (0,), float("inf"),
                               float("inf"), float("inf"), 0.0, (), bound, False)
        shape = (self.rows, *self.row_shape)
        n = math.prod(shape)
        worst = _unravel(s.argmax, shape, self.perm) if n else ()
        nref, ncand = math.sqrt(s.rr), math.sqrt(s.cc)
        cos = s.cr / (ncand * nref) if ncand and nref else float(ncand == nref)
        return PointResult(self.point, self.reference, self.mode, shape, s.max_abs, s.sum_abs / n if n else 0.0,
                           math.sqrt(s.dd) / nref if nref else ncand, cos, worst, bound,
                           math.isfinite(s.max_abs) and s.max_abs <= bound)


def _memory_order(c: np.ndarray, r: np.ndarray) -> tuple[int, ...] | None:
    """The axes from outermost to innermost in memory where both arrays lay their elements out that way, one
    contiguous block each, and it is not C order: a channels-last torch tensor seen beside TF's NHWC array,
    both shaped NCHW (parity.prober runs torchvision-laid-out candidates channels-last). Compared in that
    order they are read straight through (1.6 ns a value on the bench machine) instead of gathered across
    strides (4.2 ns). None: C order, or no order they share (compared in C order)."""
    if c.ndim < 2 or c.shape != r.shape:
        return None
    perm = tuple(sorted(range(c.ndim), key=lambda i: -c.strides[i]))  # stable: size-1 axes keep their place
    if perm == tuple(range(c.ndim)) or perm[0] != 0:  # the probes outermost: slices along axis 0 follow on
        return None
    if not (c.transpose(perm).flags.c_contiguous and r.transpose(perm).flags.c_contiguous):
        return None
    return perm


def _unravel(flat: int, shape: tuple[int, ...], perm: tuple[int, ...] | None) -> tuple[int, ...]:
    """The index in `shape` of the element `flat` places on in `perm`'s order (C order where None)."""
    if perm is None:
        return tuple(int(i) for i in np.unravel_index(flat, shape))
    at = np.unravel_index(flat, tuple(shape[p] for p in perm))
    index = [0] * len(shape)
    for axis, i in zip(perm, at, strict=True):
        index[axis] = int(i)
    return tuple(index)


def _identical(c: np.ndarray, r: np.ndarray) -> bool:
    """Equal values, the same memory order (both C-contiguous, one dtype; NaN never equal): the first value,
    then a short prefix, so that arrays that differ (every comparison with TF, nearly always in their first
    value) cost nearly nothing here (np.array_equal's own overhead was ~20 us a call, 3.5k calls a check)."""
    if not (c.flags.c_contiguous and r.flags.c_contiguous and c.dtype == r.dtype and c.shape == r.shape):
        return False
    if not c.size:
        return True
    cf, rf = c.reshape(-1), r.reshape(-1)
    if not cf[0] == rf[0]:  # NaN too
        return False
    head = min(c.size, 4096)
    return bool(np.array_equal(cf[:head], rf[:head]) and np.array_equal(cf, rf))


def _fused():
    """parity.native's kernel, or None: numpy's passes (no compiler, TFPORT_NATIVE=0)."""
    from parity.native import kernel

    return kernel()


def _ones(n: int, dtype) -> np.ndarray:
    """n ones of `dtype` (a view of one array per dtype, grown as needed)."""
    have = _ONES.get(np.dtype(dtype))
    if have is None or len(have) < n:
        have = _ONES[np.dtype(dtype)] = np.ones(max(n, _CHUNK), dtype)
    return have[:n]


_ONES: dict[np.dtype, np.ndarray] = {}


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
    perm: tuple[int, ...] | None = None  # the axis order the elements were taken in (argmax counts in it)
    # (min cand, max cand, min ref, max ref) where the kernel took them in its pass (parity.hypotheses reads
    # them instead of four passes of its own); None from numpy's passes
    extremes: tuple[float, float, float, float] | None = None

    @classmethod
    def of(cls, c: np.ndarray, r: np.ndarray, perm: tuple[int, ...] | None = None) -> _Sums:
        """The sums over two arrays of one shape, in C order of that shape, or of its axes taken in `perm`'s
        order (_memory_order): a view in another memory order (TF's NHWC seen as NCHW beside a contiguous
        NCHW tensor) is gathered a chunk at a time into nditer's buffer, never copied whole."""
        s = cls(perm=perm)
        if perm is not None:
            c, r = c.transpose(perm), r.transpose(perm)
        dtype = np.result_type(c.dtype, r.dtype, np.float32)
        fused = _fused() if dtype == np.float32 else None
        # the kernel's one pass over both arrays gives an identical pair's figures as it gives any pair's: an
        # equality pass first (np.array_equal: both arrays read, a bool array written and read) only cost time
        # (parity's declared reference, ResNet50 at 224: ~1.5 -> ~0.8 ms a 1.6 M-value point)
        if fused is None and _identical(c, r):
            return s._of_identical(c.reshape(-1).astype(dtype, copy=False))
        if fused is not None and s._of_fused(fused, c, r):
            return s
        s = cls(perm=perm)  # numpy's passes: no kernel, or a sum that is not finite (NaN, Inf, float32 overflow)
        lo = 0
        with np.errstate(over="ignore", invalid="ignore"):  # overflow and NaN are seen in the sums themselves
            for cc, rr in np.nditer([c, r], flags=["external_loop", "buffered", "zerosize_ok"], buffersize=_CHUNK,
                                    order="C", op_dtypes=[dtype, dtype], casting="same_kind"):
                s._chunk(cc, rr, lo)
                lo += len(cc)
        return s

    def _of_fused(self, fused, c: np.ndarray, r: np.ndarray) -> bool:
        """The sums by parity.native's one-pass kernel: the whole arrays where both are contiguous in the order
        taken, else nditer's buffered chunks. False where a sum is not finite: the caller starts over in numpy,
        whose passes place the first NaN and sum float32 overflow again in float64."""
        if c.flags.c_contiguous and r.flags.c_contiguous and c.dtype == r.dtype == np.float32:
            chunks = [(c.reshape(-1), r.reshape(-1))]
        else:
            chunks = np.nditer([c, r], flags=["external_loop", "buffered", "zerosize_ok"], buffersize=_CHUNK,
                               order="C", op_dtypes=[np.float32, np.float32], casting="same_kind")
        lo = 0
        for cc, rr in chunks:
            if not len(cc):
                continue
            # nditer buffers what it must cast or gather, but hands an operand it can walk with one stride as a
            # strided view (two arrays with every third value, say): the kernel reads contiguous memory only
            (m, sa, dd, sc, sr, clo, chi, rlo, rhi), at = fused(np.ascontiguousarray(cc), np.ascontiguousarray(rr))
            if not all(map(math.isfinite, (sa, dd, sc, sr))):
                return False
            if not m <= self.max_abs:
                self.max_abs, self.argmax = m, lo + at
            self.sum_abs += sa
            self.dd += dd
            self.cc += sc
            self.rr += sr
            self.cr += (sc + sr - dd) / 2
            self.max_ref = max(self.max_ref, rhi, -rlo)
            e = self.extremes or (clo, chi, rlo, rhi)
            self.extremes = (min(e[0], clo), max(e[1], chi), min(e[2], rlo), max(e[3], rhi))
            lo += len(cc)
        return True

    def _of_identical(self, c: np.ndarray) -> _Sums:
        """The sums of an array compared with an identical one, as `_chunk` gives them (Δ = 0 everywhere, so
        max|Δ|, its index and Σ|Δ|, ΣΔ² are 0; Σc² = Σr² = Σcr) in a third of its passes, where numpy computes
        the figures (no kernel): parity's reference with the source's declared semantics computes exactly the
        candidate's values at every point."""
        for lo in range(0, len(c), _CHUNK):
            cc = c[lo : lo + _CHUNK]
            with np.errstate(over="ignore", invalid="ignore"):
                sq = float(cc @ cc)
            if not math.isfinite(sq) and cc.dtype != np.float64:
                c64 = cc.astype(np.float64)
                sq = float(c64 @ c64)
            self.cc += sq
            self.rr += sq
            self.cr += sq
        if c.size:
            self.max_ref = max(float(c.max()), -float(c.min()))
        return self

    def _chunk(self, c: np.ndarray, r: np.ndarray, lo: int) -> None:
        """One chunk's figures in five passes over it beyond the difference itself (three dot products, |Δ|,
        its argmax; Σ|Δ| a dot product with ones, by BLAS: 3x numpy's pairwise sum), Σ c·r from the identity
        Σ Δ² = Σ c² + Σ r² - 2 Σ c·r. Run under `of`'s errstate."""
        d = np.subtract(c, r)
        dd, cc, rr = float(d @ d), float(c @ c), float(r @ r)
        if not (math.isfinite(dd) and math.isfinite(cc) and math.isfinite(rr)) and c.dtype != np.float64:
            c, r = c.astype(np.float64), r.astype(np.float64)  # overflow (or NaN/Inf: kept)
            d = c - r
            dd, cc, rr = float(d @ d), float(c @ c), float(r @ r)
        np.abs(d, out=d)
        i = int(np.argmax(d))  # the first NaN, if any
        if math.isfinite(self.max_abs) and not d[i] <= self.max_abs:
            self.max_abs, self.argmax = float(d[i]), lo + i
        self.sum_abs += float(d @ _ones(len(d), d.dtype))
        self.dd += dd
        self.cc += cc
        self.rr += rr
        self.cr += (cc + rr - dd) / 2
        if r.size:
            self.max_ref = max(self.max_ref, float(r.max()), -float(r.min()))

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
