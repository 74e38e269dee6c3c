"""parity.run holds one slice of activations at a time; how it slices must not change a verdict.

Eval: EVAL_STEP probes at a time, each point's figures accumulated (parity.metrics.Comparison). Train:
batch statistics need every probe at once, so TF's captures are fetched in parts of the points
(TRAIN_PART_BYTES), each part's TF run and the candidate's forward stopping at its last point."""

from __future__ import annotations

import pytest

from parity import run as parity_run
from parity.candidates import load_candidate

CASE = ("keras2_h5", 1.0, (96, 96))


def _run(converted, monkeypatch, step: int, part_bytes: int):
    monkeypatch.setattr(parity_run, "EVAL_STEP", step)
    monkeypatch.setattr(parity_run, "TRAIN_PART_BYTES", part_bytes)
    _, out, _ = converted(CASE)
    cand = load_candidate(out)
    rep = parity_run.run(cand, parity_run.resolve_source(cand, None),
                         parity_run.ParityConfig(probes=4, against=("tf", "torchvision")))
    return {(r.point, r.reference, r.mode): r for r in rep.results}, rep


def test_slicing_changes_no_point_and_no_verdict(converted, monkeypatch):
    whole, rep_whole = _run(converted, monkeypatch, step=4, part_bytes=1 << 40)  # 4 probes at once, one part
    sliced, rep_sliced = _run(converted, monkeypatch, step=1, part_bytes=1)  # probe by probe, a part per point
    assert rep_whole.passed and rep_sliced.passed
    assert sliced.keys() == whole.keys()
    train = [k for k in whole if k[2] == "train"]
    assert len(train) > 90  # every BN, activation and block output of the 96 px port
    for k in train:  # the same batch, the same numbers: parts only choose what is fetched when
        assert sliced[k].max_abs == whole[k].max_abs and sliced[k].worst_index == whole[k].worst_index
    for k, r in whole.items():  # eval: batch 1 vs 4 may round differently in float32, never across the bound
        assert (sliced[k].shape, sliced[k].passed) == (r.shape, r.passed), k
        if not r.passed:  # plain torchvision's deviations (shown, not gating): the same deviation
            assert sliced[k].max_abs == pytest.approx(r.max_abs, rel=1e-3), k
    assert any(not r.passed for r in whole.values())  # ...which exist: the comparison above is not vacuous
