"""Fixtures shared by parity's tests."""

from __future__ import annotations

import pytest

import parity.metrics as metrics
from parity.native import kernel


@pytest.fixture(params=["native", "numpy"])
def both_comparison_paths(request):
    """A test run on both of parity's ways to compare: the one-pass kernel (parity.native, which this machine
    builds: a failed build fails the test) and numpy's passes (no compiler, TFPORT_NATIVE=0). Its own patch,
    which a test's `monkeypatch.undo()` leaves in place."""
    with pytest.MonkeyPatch.context() as mp:
        if request.param == "numpy":
            mp.setattr(metrics, "_fused", lambda: None)
        else:
            assert kernel() is not None, "parity.native's kernel did not build (a C compiler as `cc` or $CC)"
        yield request.param
