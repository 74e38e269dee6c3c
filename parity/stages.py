"""The comparison stages: eval mode a few probes at a time, eval mode of a candidate whose points cannot be
found (its BatchNorm modules' outputs in call order), train mode in parts of the points, and the
points again at a second input size. Each returns its point results."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from convert.runners.tf_parts import PartFetcher
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
    step: int = 1  # probes per forward of the candidate: its first probe's output was computed in a batch of so many


def eval_stage(prober: Prober, refs: dict[str, TorchReference], tf_runner, x: np.ndarray, tensors: dict[str, str],
               tol: Tolerance, notes: list[str], progress: Callable[[str], None], step: int,
               tf_activation: str = "") -> EvalResults:
    """Eval mode, `step` probes at a time (the runner's own batch where it has one): TF's capture of every
    point the candidate has, then the candidate's forward, each point compared with TF's as the
    candidate produces it (TF's value dropped there), then each torchvision reference's forward, each
    point compared with the candidate's as it is produced; each point's figures accumulate over the
    steps (parity.metrics.Comparison), and so do the named hypotheses at its `:act` points and output.
    Held at once: TF's values of one step, shrinking as the candidate's (kept for the references) grow."""
    step = tf_runner.batch or step
    points = prober.points  # TF's are compared where TF has them; a torchvision reference's where it has them
    names = {p.name for p in points}
    tensors = {n: t for n, t in tensors.items() if n in names}  # what the candidate has no tensor for is not fetched
    ev = _EvalSteps(("tf", *refs), tests_for({p.name: p.suffix for p in points if p.name in tensors},
                                              tf_activation, tol), tol)
    kept = {p.name for ref in refs.values() for p in ref.points} | {"output"}  # what the references compare
    outputs: list[np.ndarray] = []
    for lo in range(0, len(x), step):
        xs = x[lo : lo + step]
        progress(f"TF, candidate{', torchvision' if refs else ''}: probe points (eval), probes "
                 f"{lo + 1}-{lo + len(xs)} of {len(x)}")
        cand_vals = ev.candidate(prober, xs, tf_values(tf_runner, xs, tensors, points), kept)
        if "output" in cand_vals:
            outputs.append(cand_vals["output"])
        xs_nchw = np.ascontiguousarray(xs.transpose(0, 3, 1, 2))
        for ref_name, ref in refs.items():
            ev.reference(ref_name, ref, ref.prep(xs_nchw), cand_vals)
        # this step's copies go before the next step's forward makes its own, not after it (the name would
        # hold them until then: two steps' copies at once, ResNet50 at 224 ~0.14 GB more at the peak)
        del cand_vals
    for name in sorted(ev.twice):
        notes.append(f"candidate computed {name} more than once per forward pass")
    by_ref = {r: [c.result() for p in points if (c := ev.acc[r].get(p.name)) is not None] for r in ev.acc}
    tested = [t for p in points if p.name in ev.hyp for t in ev.hyp[p.name].results()]
    return EvalResults(by_ref, np.concatenate(outputs) if len(outputs) > 1 else outputs[0] if outputs else None,
                       tested, min(step, len(x)))


class _EvalSteps:
    """The eval stage's comparisons, per reference and point, built up step by step; each step's forward
    passes hand their values to a sink (parity.capture.Sink), one batch of the step's probes each."""

    def __init__(self, refs: tuple[str, ...], hyp: dict[str, HypothesisTest], tol: Tolerance) -> None:
        self.acc: dict[str, dict[str, Comparison]] = {r: {} for r in refs}
        self.hyp = hyp
        self.tol = tol
        self.twice: set[str] = set()

    def comparison(self, ref: str, name: str) -> Comparison:
        if name not in self.acc[ref]:
            self.acc[ref][name] = Comparison(name, ref, "eval", self.tol)
        return self.acc[ref][name]

    def candidate(self, prober: Prober, xs: np.ndarray, tf_vals: dict[str, np.ndarray], kept: set[str]
                  ) -> dict[str, np.ndarray]:
        """The candidate's forward on the step's probes, each point compared with TF's where produced (TF's
        value dropped there); returns copies of the points in `kept`."""
        cand_vals: dict[str, np.ndarray] = {}
        called: set[str] = set()

        def sink(name: str, v: np.ndarray, _off: int) -> None:
            if name in called:  # a module run twice in one forward: two tensors, which fit no reference
                self.twice.add(name)
                if name in self.acc["tf"]:
                    self.acc["tf"][name].spoil((2 * len(v), *v.shape[1:]))
                if name in cand_vals:
                    cand_vals[name] = np.concatenate([cand_vals[name], v])
                return
            called.add(name)
            ref_v = tf_vals.pop(name, None)
            if ref_v is not None:
                sums = self.comparison("tf", name).add(v, ref_v)
                if name in self.hyp:
                    self.hyp[name].add(v, ref_v, sums)
            if name in kept:
                cand_vals[name] = v.copy(order="K")  # in its memory order (channels-last: TF's)

        prober(xs, prober.points, len(xs), sink=sink)
        for name, ref_v in tf_vals.items():  # every point TF has is compared: one never produced fails
            self.comparison("tf", name).add(NOTHING, ref_v)
        tf_vals.clear()
        return cand_vals

    def reference(self, ref_name: str, ref: TorchReference, x_nchw: np.ndarray, cand_vals: dict[str, np.ndarray]
                  ) -> None:
        """A torchvision reference's forward, each point compared with the candidate's where produced."""
        def sink(name: str, v: np.ndarray, _off: int) -> None:
            if name in cand_vals:
                self.comparison(ref_name, name).add(cand_vals[name], v)

        capture_torch(ref.model, ref.points, x_nchw, len(x_nchw), sink=sink)


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
    kept off), point by point. Batch statistics need every probe in one batch, so TF's values are
    fetched in parts of the points, at most `part_bytes` each (network order; sizes from the eval
    stage's shapes): one forward of the candidate, each point compared as it is produced, TF's next
    part fetched when the forward reaches it and the previous part dropped; each part's run feeds the
    tensors it reads from earlier parts' ops (convert.runners.tf_parts), so TF runs the network once.
    Where the probes take several batches (a source that fixes its batch), the candidate's forward runs
    once per part instead, every batch of it, comparing that part's points."""
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
    part_of = {n: k for k, part in enumerate(parts) for n in part}
    one_pass = len(x) <= batch
    model = prober.in_train_mode()
    comps = {n: Comparison(n, "tf", "train", tol) for n in names}
    held: dict[str, np.ndarray] = {}  # TF's values of the part fetched last
    fetched = [-1]
    seen: set[tuple[str, int]] = set()

    # one batch: each part's run feeds what it reads from earlier parts' ops, so TF runs each op once
    tf = PartFetcher(tr, [[t_tensors[n] for n in part] for part in parts]) if one_pass else tr

    def fetch(k: int) -> None:
        # the previous part is dropped before the next is fetched; its freed memory is not handed back to the
        # system between parts (malloc_trim): the next part, of about its size, reuses it, where pages handed
        # back are faulted in again (ResNet50 at 224, 7 parts: 0.3-0.4 s, the train stage's peak no higher
        # than the eval stage's)
        held.clear()
        held.update(tf_values(tf, x, {n: t_tensors[n] for n in parts[k]}, points))
        fetched[0] = k

    def candidate(name: str, v: np.ndarray, off: int) -> None:
        k = part_of.get(name)
        if k is None:
            return
        if (name, off) in seen:  # a module run twice in one forward fits no reference
            comps[name].spoil((2 * len(v), *v.shape[1:]))
            return
        if k != fetched[0]:
            if not one_pass:
                return  # another part's point, compared in its own forward
            fetch(k)
        seen.add((name, off))
        comps[name].add(v, held[name][off : off + batch] if name in held else NOTHING)

    wanted = [p for p in points if p.name in part_of]
    if one_pass:
        model(x, wanted, batch, sink=candidate)
    else:
        for k, part in enumerate(parts):
            fetch(k)
            model(x, [p for p in wanted if p.name in part], batch, stop_early=True, sink=candidate)
    held.clear()
    return [comps[n].result() for n in names if comps[n].rows or comps[n].misfit is not None]


def second_size_stage(prober: Prober, runner, tensors: dict[str, str], x: np.ndarray, batch: int,
                      tol: Tolerance) -> list[PointResult]:
    """Every point the candidate has, against TF, on probes of another size: where the source's input
    size is open, padding that only fits one size (constant pads written for it) shows here."""
    points = [p for p in prober.points if p.name in tensors]
    tf_vals = tf_values(runner, x, tensors, points)
    cand_vals = prober(x, points, batch)
    return [compare(p.name, "tf", "eval", cand_vals.get(p.name, NOTHING), tf_vals[p.name], tol)
            for p in points if p.name in tf_vals]
