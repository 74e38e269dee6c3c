"""The comparison stages: eval mode a few probes at a time, eval mode of a candidate whose points cannot be
found (its BatchNorm modules' outputs in call order), train mode in parts of the points, and the
points again at a second input size. Each returns its point results."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from parity.capture import NOTHING, by_source_name, capture_generic, capture_torch, tf_values
from parity.hypotheses import HypothesisTest, Tested, tests_for
from parity.metrics import Comparison, PointResult, Tolerance, compare
from parity.points import Point
from parity.prober import Prober
from parity.references import TorchReference


@dataclass(frozen=True)
class EvalResults:
    by_ref: dict[str, list[PointResult]]  # per reference, in network order
    output: np.ndarray | None  # the candidate's output on every probe (ONNX Runtime's reference)
    tested: list[Tested]  # the named hypotheses at the `:act` points and the output (parity.hypotheses)


def eval_stage(prober: Prober, refs: dict[str, TorchReference], tf_runner, x: np.ndarray, tensors: dict[str, str],
               tol: Tolerance, notes: list[str], progress: Callable[[str], None], step: int,
               tf_activation: str = "") -> EvalResults:
    """Eval mode, `step` probes at a time (the runner's own batch where it has one): TF's capture of every
    point the candidate has, the candidate's, compared and TF's dropped, then each torchvision
    reference's, compared with the candidate's and dropped; each point's figures accumulate over the
    steps (parity.metrics.Comparison), and so do the named hypotheses at its `:act` points and output."""
    step = tf_runner.batch or step
    points = prober.points  # TF's are compared where TF has them; a torchvision reference's where it has them
    names = {p.name for p in points}
    tensors = {n: t for n, t in tensors.items() if n in names}  # what the candidate has no tensor for is not fetched
    acc: dict[str, dict[str, Comparison]] = {r: {} for r in ("tf", *refs)}
    hyp: dict[str, HypothesisTest] = tests_for({p.name: p.suffix for p in points if p.name in tensors},
                                               tf_activation, tol)

    def add(ref: str, name: str, cand_v: np.ndarray, ref_v: np.ndarray):
        if name not in acc[ref]:
            acc[ref][name] = Comparison(name, ref, "eval", tol)
        return acc[ref][name].add(cand_v, ref_v)

    outputs: list[np.ndarray] = []
    twice: set[str] = set()
    for lo in range(0, len(x), step):
        xs = x[lo : lo + step]
        xs_nchw = np.ascontiguousarray(xs.transpose(0, 3, 1, 2))
        progress(f"TF, candidate{', torchvision' if refs else ''}: probe points (eval), probes "
                 f"{lo + 1}-{lo + len(xs)} of {len(x)}")
        tf_vals = tf_values(tf_runner, xs, tensors, points)
        cand_vals = prober(xs, points, step)
        # a module run twice in one forward: its point is two tensors, which fit no reference (they fail)
        twice.update(n for n, v in cand_vals.items() if len(v) != len(xs))
        for name, ref_v in tf_vals.items():  # every point TF has is compared: one never produced fails
            sums = add("tf", name, cand_vals.get(name, NOTHING), ref_v)
            if name in hyp:
                hyp[name].add(cand_vals.get(name, NOTHING), ref_v, sums)
        del tf_vals
        if "output" in cand_vals:
            outputs.append(cand_vals["output"])
        for ref_name, ref in refs.items():
            for name, v in capture_torch(ref.model, ref.points, ref.prep(xs_nchw), step).items():
                if name in cand_vals:
                    add(ref_name, name, cand_vals[name], v)
        del cand_vals
    for name in sorted(twice):
        notes.append(f"candidate computed {name} more than once per forward pass")
    by_ref = {r: [c.result() for p in points if (c := acc[r].get(p.name)) is not None] for r in acc}
    tested = [t for p in points if p.name in hyp for t in hyp[p.name].results()]
    return EvalResults(by_ref, np.concatenate(outputs) if len(outputs) > 1 else outputs[0] if outputs else None,
                       tested)


def generic_eval_stage(candidate, source, tf_runner, x: np.ndarray, tensors: dict[str, str], points: list[Point],
                       batch: int, tol: Tolerance, notes: list[str],
                       progress: Callable[[str], None]) -> list[PointResult]:
    """Eval mode of a candidate not laid out like torchvision whose forward does not trace (parity.traced):
    its BatchNorm modules' outputs in call order against TF's BN points, and its output against the
    source's."""
    progress("TF: capturing probe points (eval)")
    tf_vals = tf_values(tf_runner, x, tensors, points)
    progress("candidate: BatchNorm outputs and output (eval)")
    xin = x if candidate.input_layout == "NHWC" else x.transpose(0, 3, 1, 2)
    per_bn, out, called = capture_generic(candidate.module, xin, batch)
    per_bn = by_source_name(per_bn, called, [b.name for b in source.spec.bns])
    bn_points = [p for p in points if p.suffix == ":bn"]
    results = []
    # layouts are declared, never fitted: TF's are NHWC (converted above); a BatchNorm's output is NCHW
    # by its own definition (it normalises dim 1), so it is compared as captured, never permuted to fit
    for k, p in enumerate(bn_points):
        if p.name in tf_vals:
            results.append(compare(p.name, "tf", "eval", per_bn[k] if k < len(per_bn) else NOTHING,
                                   tf_vals[p.name], tol))
    if len(per_bn) != len(bn_points):
        notes.append(f"candidate ran {len(per_bn)} BatchNorm modules, the source has {len(bn_points)}")
    if "output" not in tf_vals:
        (tf_vals["output"],) = tf_runner.run(x, [source.info.output])
    results.append(compare("output", "tf", "eval", out, tf_vals["output"], tol))
    return results


def train_stage(prober: Prober, tr, t_tensors: dict[str, str], x: np.ndarray, batch: int, tol: Tolerance,
                eval_results: list[PointResult], part_bytes: int) -> list[PointResult]:
    """TF's graph with every BN in training mode against a train-mode copy of the candidate (Dropout
    kept off), point by point. TF's captures are fetched in parts of at most `part_bytes` (network
    order), each compared and dropped before the next: batch statistics need every probe in one batch,
    so parts split the points, not the probes. A part's TF run computes only the network up to its last
    point, and the candidate's forward stops there too; its sizes come from the eval stage's shapes."""
    nbytes = {r.point: 4 * math.prod(r.shape) for r in eval_results if r.reference == "tf" and r.mode == "eval"}
    points = prober.points
    names = [p.name for p in points if p.name in t_tensors and p.suffix not in ("", "output")]
    parts: list[list[str]] = [[]]
    size = 0  # bytes in the last part
    for n in names:
        if parts[-1] and size + nbytes.get(n, 0) > part_bytes:
            parts.append([])
            size = 0
        parts[-1].append(n)
        size += nbytes.get(n, 0)
    model = prober.in_train_mode()
    got: dict[str, PointResult] = {}
    for part in parts:
        tf_part = tf_values(tr, x, {n: t_tensors[n] for n in part}, points)
        vals = model(x, [p for p in points if p.name in tf_part], batch, stop_early=True)
        for name in part:
            if name in vals:
                got[name] = compare(name, "tf", "train", vals.pop(name), tf_part.pop(name), tol)
        del tf_part, vals
    return [got[n] for n in names if n in got]


def second_size_stage(prober: Prober, runner, tensors: dict[str, str], x: np.ndarray, batch: int,
                      tol: Tolerance) -> list[PointResult]:
    """Every point the candidate has, against TF, on probes of another size: where the source's input
    size is open, padding that only fits one size (constant pads written for it) shows here."""
    points = [p for p in prober.points if p.name in tensors]
    tf_vals = tf_values(runner, x, tensors, points)
    cand_vals = prober(x, points, batch)
    return [compare(p.name, "tf", "eval", cand_vals.get(p.name, NOTHING), tf_vals[p.name], tol)
            for p in points if p.name in tf_vals]
