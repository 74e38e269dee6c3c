"""Per-point comparison: metrics and a pass/fail against tolerances given as data."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class Tolerance:
    """Pass when max|cand - ref| <= atol + rtol * max|ref| (per point)."""

    # float32 through ~50 layers: correct ports measured max|Δ| <= 1.05e-5 · max|ref| (96 and 224 inputs);
    # rtol 1e-4 keeps a 10x margin against false alarms while any real fault is orders larger
    atol: float = 1e-5
    rtol: float = 1e-4

    def bound(self, ref: np.ndarray) -> float:
        return self.atol + self.rtol * float(np.abs(ref).max(initial=0.0))


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


def compare(point: str, reference: str, mode: str, cand: np.ndarray, ref: np.ndarray, tol: Tolerance) -> PointResult:
    """Compare as given: same layout, no permutation is ever tried to make shapes or values fit."""
    cand = np.asarray(cand, np.float64)
    ref = np.asarray(ref, np.float64)
    if cand.shape != ref.shape:
        return PointResult(point, reference, mode, tuple(cand.shape), float("inf"), float("inf"), float("inf"),
                           0.0, (), tol.bound(ref), False)
    diff = np.abs(cand - ref)
    worst = tuple(int(i) for i in np.unravel_index(int(np.argmax(diff)), diff.shape)) if diff.size else ()
    nref = float(np.linalg.norm(ref))
    ncand = float(np.linalg.norm(cand))
    cos = float((cand.ravel() @ ref.ravel()) / (ncand * nref)) if ncand and nref else float(ncand == nref)
    bound = tol.bound(ref)
    max_abs = float(diff.max(initial=0.0))
    finite = bool(np.isfinite(cand).all())
    return PointResult(point, reference, mode, tuple(cand.shape), max_abs, float(diff.mean()) if diff.size else 0.0,
                       float(np.linalg.norm(cand - ref) / nref) if nref else float(np.linalg.norm(cand)), cos, worst,
                       bound, finite and max_abs <= bound)
