"""parity.native: the one-pass comparison kernel, its build and its way back to numpy.

The kernel's figures must be numpy's (float64 truth to float32 rounding; the worst element's index exactly,
the first of equals), on any length (blocks of 2048 and a remainder), and wherever a sum is not finite the
comparison must come out exactly as numpy's passes give it (the first NaN placed, overflow summed in
float64)."""

from __future__ import annotations

import dataclasses
import math
import subprocess

import numpy as np
import pytest

import parity.metrics as metrics
import parity.native as native
from parity.metrics import EVAL_TOL, compare


@pytest.fixture(scope="module")
def fused():
    fn = native.kernel()
    assert fn is not None, "parity.native's kernel did not build (a C compiler as `cc` or $CC)"
    return fn


@pytest.mark.parametrize("n", [1, 7, 2048, 2049, 100_003])
def test_one_pass_gives_every_figure(fused, n):
    rng = np.random.default_rng(n)
    r = rng.standard_normal(n).astype(np.float32) * 3
    c = r + rng.standard_normal(n).astype(np.float32) * 1e-3
    (m, sa, dd, cc, rr, clo, chi, rlo, rhi), at = fused(c, r)
    c64, r64 = c.astype(np.float64), r.astype(np.float64)
    d = np.abs(c - r)  # float32 differences, as the kernel takes them
    assert at == int(np.argmax(d)) and m == float(d.max())
    assert (clo, chi, rlo, rhi) == (c.min(), c.max(), r.min(), r.max())  # what parity.hypotheses reads
    for got, want in ((sa, np.abs(c64 - r64).sum()), (dd, ((c64 - r64) ** 2).sum()), (cc, (c64 * c64).sum()),
                      (rr, (r64 * r64).sum())):
        assert math.isclose(got, want, rel_tol=1e-6)


def test_the_first_of_equal_differences_is_the_worst(fused):
    """Ties keep the first index, as numpy's argmax does; it may sit in the first block or a later one."""
    r = np.zeros(10_000, np.float32)
    c = r.copy()
    c[[5, 4000, 9000]] = [0.5, -0.5, 0.5]
    assert fused(c, r)[1] == 5
    c[5] = 0.25
    assert fused(c, r)[1] == 4000
    assert fused(r, r) == ([0.0] * 9, 0)  # nothing differs: index 0, as np.argmax of zeros


@pytest.mark.parametrize("bad", [np.nan, np.inf, 3e19])  # 3e19: float32 sums of squares overflow
def test_a_sum_that_is_not_finite_hands_the_comparison_to_numpy(bad, monkeypatch):
    rng = np.random.default_rng(0)
    r = rng.standard_normal((2, 3, 70, 70)).astype(np.float32)
    c = r + np.float32(1e-4)
    c[1, 2, 33, 44] = bad
    with_kernel = compare("p", "tf", "eval", c, r, EVAL_TOL)
    monkeypatch.setattr(metrics, "_fused", lambda: None)
    numpy_only = compare("p", "tf", "eval", c, r, EVAL_TOL)
    for got, want in zip(dataclasses.astuple(with_kernel), dataclasses.astuple(numpy_only), strict=True):
        assert got == want or (got != got and want != want)  # NaN where numpy has NaN
    assert with_kernel.worst_index == (1, 2, 33, 44) and not with_kernel.passed


def test_strided_operands_are_read_as_values_not_as_memory(monkeypatch):
    """nditer hands two arrays that share one inner stride (every third value of each) to the kernel as strided
    views, not buffered copies: the kernel, which reads contiguous memory, must get contiguous values."""
    rng = np.random.default_rng(5)
    base_r = rng.standard_normal((4, 90_000)).astype(np.float32)
    base_c = base_r + rng.standard_normal(base_r.shape).astype(np.float32) * 1e-3
    c, r = base_c[:, ::3], base_r[:, ::3]
    with_kernel = compare("p", "tf", "eval", c, r, EVAL_TOL)
    monkeypatch.setattr(metrics, "_fused", lambda: None)
    numpy_only = compare("p", "tf", "eval", c, r, EVAL_TOL)
    assert with_kernel.worst_index == numpy_only.worst_index and with_kernel.max_abs == numpy_only.max_abs
    for f in ("mean_abs", "rel_l2", "cosine"):
        assert math.isclose(getattr(with_kernel, f), getattr(numpy_only, f), rel_tol=1e-6), f


def test_a_failed_build_leaves_numpy_s_path(tmp_path, monkeypatch):
    """No compiler (or one that fails) is no error: the build raises, kernel() is None, and nothing is left
    in the cache; TFPORT_NATIVE=0 turns the kernel off without a build."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv("CC", "false")
    with pytest.raises(subprocess.CalledProcessError):
        native.build()
    native.kernel.cache_clear()
    try:
        assert native.kernel() is None
        assert not list((tmp_path / "tfport" / "native").iterdir())  # no half-written library
        monkeypatch.delenv("CC")
        monkeypatch.setenv(native.ENV, "0")
        native.kernel.cache_clear()
        assert native.kernel() is None and not native.library_path().exists()
    finally:
        native.kernel.cache_clear()


def test_the_build_is_keyed_by_its_source(tmp_path, monkeypatch):
    """A changed kernel source is another library file, so a stale build is never loaded."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    built = native.build()
    assert built.is_file() and built.parent == tmp_path / "tfport" / "native"
    edited = tmp_path / "fused_sums.c"
    edited.write_text(native.SOURCE.read_text() + "\n/* edited */\n")
    monkeypatch.setattr(native, "SOURCE", edited)
    assert native.library_path() != built
