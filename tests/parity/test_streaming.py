"""parity.run holds one slice of activations at a time; how it slices must not change a verdict.

Eval: EVAL_STEP probes at a time, each point's figures accumulated (parity.metrics.Comparison). Train:
batch statistics need every probe at once, so TF's captures are fetched in parts of the points
(TRAIN_PART_BYTES), each as the candidate's one forward reaches it; the candidate's values are compared
where they are produced and never kept."""

from __future__ import annotations

import pytest

from parity import run as parity_run
from parity.candidates import load_candidate

CASE = ("keras2_h5", 1.0, (96, 96))


def _run(converted, monkeypatch, step: int, part_bytes: int):
    monkeypatch.setattr(parity_run, "EVAL_STEP", step)
    monkeypatch.setattr(parity_run, "EVAL_HELD_PER_WEIGHTS", float("inf"))  # EVAL_STEP decides, whatever the size
    monkeypatch.setattr(parity_run, "TRAIN_PART_BYTES", part_bytes)
    _, out, _ = converted(CASE)
    cand = load_candidate(out)
    rep = parity_run.run(cand, parity_run.resolve_source(cand, None),
                         parity_run.ParityConfig(probes=4, against=("tf", "torchvision")))
    return {(r.point, r.reference, r.mode): r for r in rep.results}, rep


def _count_train_work(monkeypatch) -> tuple[list[int], list[int]]:
    """(TF's train-mode fetches, by how many points each; the train-mode candidate's forwards), as they happen."""
    from parity import stages
    from parity.prober import Prober

    fetches, forwards, training = [], [], []
    tf_values, train_stage, in_train_mode = stages.tf_values, parity_run.train_stage, Prober.in_train_mode

    def fetch(runner, x, tensors, points):
        if training:
            fetches.append(len(tensors))
        return tf_values(runner, x, tensors, points)

    def train(*a, **k):
        training.append(True)
        try:
            return train_stage(*a, **k)
        finally:
            training.clear()

    def counted(self):
        p = in_train_mode(self)
        p.model.register_forward_pre_hook(lambda *_: forwards.append(1))
        return p

    monkeypatch.setattr(stages, "tf_values", fetch)
    monkeypatch.setattr(parity_run, "train_stage", train)
    monkeypatch.setattr(Prober, "in_train_mode", counted)
    return fetches, forwards


def test_slicing_changes_no_point_and_no_verdict(converted, monkeypatch):
    whole, rep_whole = _run(converted, monkeypatch, step=4, part_bytes=1 << 40)  # 4 probes at once, one part
    fetches, forwards = _count_train_work(monkeypatch)
    from parity import stages

    fetchers, part_fetcher = [], stages.PartFetcher
    monkeypatch.setattr(stages, "PartFetcher", lambda *a: fetchers.append(part_fetcher(*a)) or fetchers[-1])
    sliced, rep_sliced = _run(converted, monkeypatch, step=1, part_bytes=1)  # probe by probe, a part per point
    # each part's run fed what it reads from earlier parts (convert.runners.tf_parts): TF ran each op once
    (fetcher,) = fetchers
    assert fetcher.steps is not None and all(s.feed for s in fetcher.steps[1:])
    assert rep_whole.passed and rep_sliced.passed
    assert sliced.keys() == whole.keys()
    train = [k for k in whole if k[2] == "train"]
    assert len(train) > 90  # every BN, activation and block output of the 96 px port
    # TF's parts fetched as the candidate's one train-mode forward reaches them, each point compared where
    # it is produced: a part per point, every point fetched once, one forward
    assert fetches == [1] * len(train) and forwards == [1]
    for k in train:  # the same batch, the same numbers: parts only choose what is fetched when
        assert sliced[k].max_abs == whole[k].max_abs and sliced[k].worst_index == whole[k].worst_index
    for k, r in whole.items():  # eval: batch 1 vs 4 may round differently in float32, never across the bound
        assert (sliced[k].shape, sliced[k].passed) == (r.shape, r.passed), k
        if not r.passed:  # plain torchvision's deviations (shown, not gating): the same deviation
            assert sliced[k].max_abs == pytest.approx(r.max_abs, rel=1e-3), k
    assert any(not r.passed for r in whole.values())  # ...which exist: the comparison above is not vacuous


def test_references_and_the_train_copy_share_the_candidates_weights(converted):
    """torchvision references and the train-mode copy hold the candidate's weight tensors, not copies
    (ResNet50: 100 MB each); the train copy's BN statistics are its own and move, the candidate's do not."""
    import numpy as np
    import torch

    from parity import arch as architectures
    from parity.prober import Prober
    from parity.references import torchvision_references

    _, out, _ = converted(CASE)
    cand = load_candidate(out)
    arch = architectures.get(cand.meta["arch"])
    src = parity_run.resolve_source(cand, None)
    points = arch.points(arch.canonical(src.spec, str(src.path)).meta, src.spec.pool, output=True)
    prober = Prober.of(cand, points, arch)  # in parity.run's order: the candidate made channels-last first
    refs, _ = torchvision_references(arch, cand, cand.meta, points)
    weight = cand.module.state_dict()["features.0.0.weight"]
    assert weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous()
    for ref in refs.values():
        assert ref.model.state_dict()["features.0.0.weight"].data_ptr() == weight.data_ptr()

    train = prober.in_train_mode()
    assert train.model.state_dict()["features.0.0.weight"].data_ptr() == weight.data_ptr()
    mean = cand.module.state_dict()["features.0.1.running_mean"]
    before = mean.clone()
    with torch.no_grad():
        train.model(torch.from_numpy(np.random.default_rng(0).uniform(-1, 1, (4, 3, 96, 96)).astype(np.float32)))
    assert torch.equal(mean, before)
    assert not torch.equal(train.model.state_dict()["features.0.1.running_mean"], before)


def test_eval_step_holds_tf_values_in_proportion_to_the_weights():
    """EVAL_STEP probes a step, fewer where one step's TF values outweigh EVAL_HELD_PER_WEIGHTS x the weights
    (per probe from TF's static shapes); EVAL_STEP where a shape is unknown."""
    import types

    import tensorflow as tf

    g = tf.Graph()
    with g.as_default():
        tf.zeros((1, 112, 112, 32), name="a")  # 1.6 MB a probe
        tf.zeros((1, 56, 56, 24), name="b")  # 0.3 MB
        tf.compat.v1.placeholder(tf.float32, (None, None, None, 8), name="open")
    runner = types.SimpleNamespace(graph=g)
    per_probe = 4 * (112 * 112 * 32 + 56 * 56 * 24)
    step = parity_run.eval_step
    assert parity_run.EVAL_STEP == 2 and parity_run.EVAL_HELD_PER_WEIGHTS == 1.5
    assert step(runner, {"a": "a:0", "b": "b:0"}, weight_bytes=2 * per_probe) == 2  # ResNet50's proportions
    assert step(runner, {"a": "a:0", "b": "b:0"}, weight_bytes=per_probe // 4) == 1  # MobileNetV2's
    assert step(runner, {"a": "a:0", "open": "open:0"}, weight_bytes=1) == 2  # a size TF does not know
    assert step(runner, {"a": "a:0", "gone": "gone:0"}, weight_bytes=1) == 2
    assert step(types.SimpleNamespace(batch=1), {"a": "a:0"}, weight_bytes=1) == 2  # TFLite's runner: no graph
