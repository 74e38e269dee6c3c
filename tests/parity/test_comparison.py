"""parity.metrics.Comparison: figures accumulated over slices of the probes equal those of the whole arrays.

parity's eval stage compares 2 probes at a time (parity.run.EVAL_STEP) so that one slice's activations
are held, not all of them; the verdict must not depend on how the probes were sliced."""

from __future__ import annotations

import math

import numpy as np
import pytest

import parity.metrics as metrics
from parity.metrics import EVAL_TOL, Comparison, compare

pytestmark = pytest.mark.usefixtures("both_comparison_paths")  # tests/parity/conftest.py


def _sliced(cand: np.ndarray, ref: np.ndarray, step: int):
    c = Comparison("p", "tf", "eval", EVAL_TOL)
    for lo in range(0, len(cand), step):
        c.add(cand[lo : lo + step], ref[lo : lo + step])
    return c.result()


@pytest.fixture()
def pair():
    rng = np.random.default_rng(0)
    ref = rng.standard_normal((8, 6, 5, 4)).astype(np.float32)
    cand = ref + rng.standard_normal(ref.shape).astype(np.float32) * 1e-5
    cand[5, 2, 1, 3] += 0.5  # the worst element sits in a later slice
    return cand, ref.transpose(0, 2, 3, 1).copy().transpose(0, 3, 1, 2)  # TF's NHWC seen as NCHW: a view


@pytest.mark.parametrize("step", [1, 2, 3, 8])
def test_sliced_equals_whole(pair, step):
    cand, ref = pair
    whole, part = compare("p", "tf", "eval", cand, ref, EVAL_TOL), _sliced(cand, ref, step)
    assert part.worst_index == whole.worst_index == (5, 2, 1, 3)
    assert (part.shape, part.max_abs, part.bound, part.passed) == (whole.shape, whole.max_abs, whole.bound, False)
    for f in ("mean_abs", "rel_l2", "cosine"):  # float32 per chunk: slicing moves the chunks' rounding only
        assert math.isclose(getattr(part, f), getattr(whole, f), rel_tol=1e-6)


def _float64_figures(cand: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    c, r = cand.astype(np.float64).ravel(), ref.astype(np.float64).ravel()
    d = c - r
    return {"max_abs": np.abs(d).max(), "mean_abs": np.abs(d).mean(), "rel_l2": np.linalg.norm(d) / np.linalg.norm(r),
            "cosine": c @ r / (np.linalg.norm(c) * np.linalg.norm(r))}


@pytest.mark.parametrize("scale", [1.0, 1e-3, 1e21])  # 1e21: float32 sums of squares overflow, float64 do not
def test_figures_equal_float64_ones(scale):
    """Each chunk (numpy: parity.metrics._CHUNK; the kernel: 2048 values) is summed in float32; the figures
    still equal whole-array float64 ones to 1e-6 over several chunks, and max|Δ| exactly (it decides the
    verdict). At 1e21 the kernel's float32 sums overflow and numpy's float64 passes take over."""
    rng = np.random.default_rng(1)
    ref = (rng.standard_normal(300_000) * scale).astype(np.float32)
    cand = ref + (rng.standard_normal(ref.shape) * 1e-4 * scale).astype(np.float32)
    got, want = compare("p", "tf", "eval", cand, ref, EVAL_TOL), _float64_figures(cand, ref)
    assert got.max_abs == want["max_abs"]
    for f in ("mean_abs", "rel_l2", "cosine"):
        assert math.isfinite(getattr(got, f)) and math.isclose(getattr(got, f), want[f], rel_tol=1e-6), f


def test_a_nan_in_a_later_slice_fails_where_it_is(pair):
    cand, ref = pair
    cand = cand.copy()
    cand[6, 0, 0, 0] = np.nan
    r = _sliced(cand, ref, 2)
    assert math.isnan(r.max_abs) and r.worst_index == (6, 0, 0, 0) and not r.passed


def test_a_slice_that_does_not_fit_fails_the_point_and_keeps_its_shape(pair):
    cand, ref = pair
    c = Comparison("p", "tf", "eval", EVAL_TOL)
    c.add(cand[:2], ref[:2])
    c.add(cand[2:4].transpose(0, 2, 3, 1), ref[2:4])  # never permuted to fit
    c.add(cand[4:], ref[4:])
    r = c.result()
    assert not r.passed and r.max_abs == float("inf") and r.shape == (2, 5, 4, 6)


def test_nothing_added_is_no_agreement():
    r = Comparison("p", "tf", "eval", EVAL_TOL).result()
    assert not r.passed and r.shape == (0,)


@pytest.mark.parametrize("shape", [(2, 64, 28, 28), (3, 1000), (1, 70001), (0, 5)])
def test_identical_arrays_take_one_pass_to_the_full_paths_figures(monkeypatch, shape):
    """parity's declared-semantics reference equals the candidate bit for bit at every point. With the
    kernel, that pair takes its one pass like any other (no equality pass before it: it only cost time);
    without it, numpy's short path skips Δ's passes and must give exactly the figures its full path gives."""
    a = np.random.default_rng(3).standard_normal(shape).astype(np.float32) * 1e3
    b = a.copy()
    one = None  # the kernel's figures, where this machine built it
    if metrics._fused() is not None:
        def no_equality_pass(c, r):
            raise AssertionError("an equality pass before the kernel's")

        monkeypatch.setattr(metrics, "_identical", no_equality_pass)
        one = metrics._Sums.of(a, b)
        assert (one.max_abs, one.sum_abs, one.dd) == (0, 0, 0) and one.cc == one.rr == one.cr
        monkeypatch.undo()
    monkeypatch.setattr(metrics, "_fused", lambda: None)  # numpy's passes (no compiler, TFPORT_NATIVE=0)
    short = metrics._Sums.of(a, b)
    monkeypatch.setattr(metrics, "_identical", lambda c, r: False)
    assert metrics._Sums.of(a, b) == short
    monkeypatch.undo()
    if a.size:
        if one is not None:
            assert one.cc == pytest.approx(short.cc, rel=1e-5) and one.max_ref == short.max_ref
        assert short.cc > 0 and short.max_ref == np.abs(a).max() and short.max_abs == 0
        res = compare("p", "ref", "eval", a, b, EVAL_TOL)
        assert res.passed and res.max_abs == 0 and res.cosine == pytest.approx(1.0, abs=1e-12)
        a[0, -1] = b[0, -1] = np.nan  # NaN equals nothing, itself included: the full path, which fails it
        assert not compare("p", "ref", "eval", a, b, EVAL_TOL).passed
        b[0, -1] = a[0, -1] = 1.0
        b[0, -1] += 1e-3  # differs in the last element only, past the prefix checked first
        assert compare("p", "ref", "eval", a, b, EVAL_TOL).max_abs == pytest.approx(1e-3, rel=1e-3)


@pytest.mark.parametrize("step", [1, 2, 8])
def test_channels_last_beside_tf_is_read_in_memory_order_with_the_same_figures(pair, monkeypatch, step):
    """parity runs torchvision-laid-out candidates channels-last (parity.prober.channels_last), so a point's
    value and TF's are both NHWC in memory, shaped NCHW: compared in that order (read straight through), with
    the figures and the worst element's NCHW index the C-order comparison gives."""
    cand, ref = pair
    cand_cl = cand.transpose(0, 2, 3, 1).copy().transpose(0, 3, 1, 2)  # what a channels-last tensor's numpy() is
    assert metrics._memory_order(cand_cl, ref) == (0, 2, 3, 1)
    assert metrics._memory_order(cand, ref) is None  # contiguous NCHW beside NHWC: no order both share
    assert metrics._memory_order(cand, cand) is None  # C order already
    fast = _sliced(cand_cl, ref, step)
    monkeypatch.setattr(metrics, "_memory_order", lambda c, r: None)
    slow = _sliced(cand_cl, ref, step)
    assert fast.worst_index == slow.worst_index == (5, 2, 1, 3)
    assert (fast.shape, fast.max_abs, fast.bound, fast.passed) == (slow.shape, slow.max_abs, slow.bound, False)
    for f in ("mean_abs", "rel_l2", "cosine"):
        assert math.isclose(getattr(fast, f), getattr(slow, f), rel_tol=1e-6)
    nan = cand_cl.copy()
    nan[6, 1, 0, 2] = np.nan
    monkeypatch.undo()
    bad = _sliced(nan, ref, step)
    assert not bad.passed and math.isnan(bad.max_abs) and bad.worst_index == (6, 1, 0, 2)


def test_memory_order_reads_identical_channels_last_arrays_on_the_short_path(monkeypatch):
    """The declared reference equals the candidate bit for bit, both channels-last: numpy's short path still."""
    monkeypatch.setattr(metrics, "_fused", lambda: None)
    a = np.random.default_rng(4).standard_normal((2, 8, 5, 3)).astype(np.float32)
    cl = a.transpose(0, 2, 3, 1).copy().transpose(0, 3, 1, 2)
    other = cl.copy(order="K")
    perm = metrics._memory_order(cl, other)
    assert perm == (0, 2, 3, 1)
    assert metrics._identical(cl.transpose(perm), other.transpose(perm))
    assert metrics._Sums.of(cl, other, perm).max_abs == 0
