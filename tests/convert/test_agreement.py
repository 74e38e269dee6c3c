"""convert.model.agreement: a port within the tolerance passes whatever its top-1 says, because a changed top-1
within it is a tie; top-1 is reported where the output ranks classes, and only there."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from convert.model.agreement import agreement
from convert.model.tolerance import REL_TOL


def test_a_tie_the_tolerance_cannot_decide_passes_and_is_reported():
    ref = np.array([[4.0, 4.0 - 1e-6, 0.5], [1.0, 3.0, 2.0]], np.float32)
    port = np.array([[4.0 - 1e-6, 4.0, 0.5], [1.0, 3.0, 2.0]], np.float32)  # probe 0's top two swapped by 1e-6
    a = agreement("output", port, ref, logits=True)
    assert a.rel <= REL_TOL and a.top1_agree == 0.5
    assert a.ok(REL_TOL)


def test_a_top_1_the_tolerance_decides_fails_by_the_error_itself():
    ref = np.array([[4.0, 1.0, 0.5]], np.float32)
    port = np.array([[1.0, 4.0, 0.5]], np.float32)
    a = agreement("output", port, ref, logits=True)
    assert a.top1_agree == 0.0 and a.rel > REL_TOL and not a.ok(REL_TOL)


@pytest.mark.parametrize("seed", range(20))
def test_a_changed_top_1_is_never_led_by_more_than_twice_the_largest_difference(seed):
    """Agreement.ok's reason for not gating on top-1, measured: wherever the port's argmax differs from the
    reference's, the reference's lead over the port's choice is at most 2 max |port - ref|."""
    rng = np.random.default_rng(seed)
    ref = rng.normal(size=(256, 10))
    port = ref + rng.normal(scale=0.3, size=ref.shape)
    a, b = ref.argmax(1), port.argmax(1)
    flipped = np.flatnonzero(a != b)
    assert flipped.size  # the noise is large enough to change some
    lead = ref[flipped, a[flipped]] - ref[flipped, b[flipped]]
    assert (lead <= 2 * np.abs(port - ref).max() + 1e-12).all()


@pytest.mark.parametrize("head,reported", [([], False), ([SimpleNamespace(activation="softmax")], True)])
def test_top_1_is_reported_for_class_scores_not_for_pooled_features(head, reported):
    from convert.pipeline import verify

    spec = SimpleNamespace(input_shape=(96, 96, 3), pool="avg", head=head)
    x = np.random.default_rng(0).uniform(size=(4, 8)).astype(np.float32)
    (output,) = verify(spec, {"output": x}, {"output": x})
    assert (output.top1_agree is not None) is reported and output.ok(REL_TOL)
