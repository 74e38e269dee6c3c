"""Run parity: capture every probe point of the candidate and its references, compare, check, decide.

`run` is the orchestration alone; each step is its own module (capture, references, stages, evidence,
checks), and what a caller needs beside `run` is importable from here (ParityConfig, resolve_source).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from convert import TOOL_VERSION
from convert.runtime.memory import release_free_memory
from parity import arch as architectures
from parity.checks import CHECKS
from parity.context import CheckContext
from parity.evidence import hazard, measure_momentum, padding_at_second_size
from parity.hypotheses import Tested
from parity.metrics import PointResult
from parity.prober import Prober
from parity.references import TorchReference, onnx_reference, resolve_source, torchvision_references, train_reference
from parity.results import (
    REFERENCES,
    CandidateRecord,
    ConfigRecord,
    ParityConfig,
    ParityReport,
    SourceRecord,
    modes_passed,
)
from parity.stages import eval_stage, generic_eval_stage, train_stage

__all__ = ["REFERENCES", "ParityConfig", "ParityReport", "resolve_source", "run"]

# probes per eval step where the source takes any batch, at most: each step's activations (TF's, the
# candidate's, each reference's point by point) are compared and dropped before the next, so parity holds
# ~1/4 of what 8 probes at once would (224: ~0.15 GB instead of ~0.6 GB per capture); eval mode is per
# probe, so the figures are those of one batch (parity.metrics.Comparison)
EVAL_STEP = 2

# ... and fewer where one step's TF values would outweigh this many times the candidate's weights: what
# parity holds beyond its backends' own footprint (TF and torch hold the weights ~5 times over) stays in
# proportion to it. At 224: ResNet50 (102 MB of weights, 68 MB of values a probe) 2 probes a step;
# MobileNetV2 (14 MB, 52 MB a probe) and MobileNetV3 Large (22 MB, 38 MB) 1, which took MobileNetV2's eval
# peak from 1.10 to 0.95 GB private for 0.2 s (scripts/bench memory_parity_ratio: 0.89-1.02 GB baseline)
EVAL_HELD_PER_WEIGHTS = 1.5


def eval_step(tf_runner, tensors: dict[str, str], weight_bytes: int) -> int:
    """Probes per eval step: EVAL_STEP, fewer where TF's values of that many would outweigh
    EVAL_HELD_PER_WEIGHTS x `weight_bytes` (per probe from TF's static shapes; EVAL_STEP where unknown, or
    where the runner has no TF graph: the TFLite interpreter, which runs one probe at a time anyway)."""
    graph = getattr(tf_runner, "graph", None)  # a TFLite interpreter has none
    if graph is None:
        return EVAL_STEP
    per_probe = 0
    for name in tensors.values():
        try:
            shape = graph.get_tensor_by_name(name).shape
        except (KeyError, ValueError):
            return EVAL_STEP
        if shape.rank is None or not all(d is not None for d in shape.as_list()[1:]):
            return EVAL_STEP
        per_probe += 4 * int(np.prod(shape.as_list()[1:]))
    if not per_probe:
        return EVAL_STEP
    fits = EVAL_HELD_PER_WEIGHTS * weight_bytes / per_probe  # probes whose values fit the proportion
    return EVAL_STEP if fits >= EVAL_STEP else max(1, int(fits))

# TF's train-mode captures are fetched in parts of at most this many bytes (network order), each part
# compared with the candidate's and dropped before the next: batch statistics need every probe in one
# batch, so parts split the points, not the probes (224, 8 probes: ResNet50's 0.54 GB in 7 parts, not at
# once). Each part's run feeds what earlier ones computed (convert.runners.tf_parts), so
# more parts cost TF only their set-up: 160 -> 80 MB took ResNet50's train-stage peak down ~0.08 GB
TRAIN_PART_BYTES = 80 * 2**20

# why a network without BatchNorm (VGG16) is certified in eval mode alone: train mode computes the same
# function but for dropout, which parity's train mode keeps off (and the source's graph has no BN to switch)
NO_BN = ("the source has no BatchNorm: train mode computes what eval mode does, dropout aside (kept off in "
         "parity's train mode), so eval mode certifies it")


def run(candidate, source, cfg: ParityConfig = ParityConfig(),
        progress: Callable[[str], None] = lambda s: None) -> ParityReport:
    """Compare `candidate` with `source` (and the references `cfg.against` names) point by point in the
    modes `cfg.modes`, run every registered check, and report."""
    import torch

    from convert.model.probe import probe_inputs

    torch.manual_seed(cfg.seed)
    # what the candidate declares, else (MMdnn's .py, an .onnx: nothing declared) what the source is
    arch = architectures.get(candidate.meta.get("arch") or source.spec.arch)
    # the source's canonical description, without its weights (never loaded into torch here)
    source_meta = arch.canonical(source.spec, str(source.path), tensors=False).meta
    # the whole function is compared where the candidate claims to be one (a tfport port, MMdnn's emitted
    # model, an ONNX export); a plain torchvision state dict returns logits whatever the source returns, and
    # is compared up to them
    points = arch.points(source_meta, source.spec.pool, output=candidate.kind != "state_dict")
    tensors = arch.tf_tensors(points, source.spec.taps, source.info.pooled)
    if any(p.suffix == "output" for p in points):
        tensors["output"] = source.info.output
    hw = source.spec.input_shape[:2]
    x = probe_inputs(cfg.probes, hw, tuple(source.spec.input_range), cfg.seed)
    notes: list[str] = []
    if source.spec.trusted_code:
        notes.append(f"code from the source ran (--trust-code): {', '.join(source.spec.trusted_code)}")

    prober = Prober.of(candidate, points, arch, [b.name for b in source.spec.bns])
    found = _compare(arch, candidate, prober, source, source_meta, points, tensors, x, cfg, notes, progress)
    measured = measure_momentum(candidate.module)
    padding = (padding_at_second_size(prober, source, tensors, cfg.seed, cfg.tol, progress)
               if prober is not None else None)
    ctx = CheckContext(candidate, source, arch, points, found.results, measured, padding, found.train_skipped,
                       found.tested, found.first_in_batch(x))
    checks = [res for fn in CHECKS.values() if (res := fn(ctx)) is not None]
    return ParityReport(
        candidate=CandidateRecord(str(candidate.path), candidate.kind, candidate.sha256,
                                  bool(candidate.meta.get("bn_folded"))),
        source=SourceRecord(str(source.path), source.form, source.sha256, source_meta.get("alpha"), tuple(hw),
                            source_meta["num_classes"]),
        config=ConfigRecord.of(cfg, TOOL_VERSION), results=found.results, checks=checks,
        hazard=hazard(candidate.module, measured), modes_passed=modes_passed(found.results, checks), notes=notes)


@dataclass(frozen=True)
class _Found:
    results: list[PointResult]  # in report order (TF eval, ONNX Runtime, torchvision, TF train)
    train_skipped: str  # why train mode was not compared ("" where it was or was not asked)
    tested: list[Tested]  # the named hypotheses (parity.hypotheses)
    output: np.ndarray | None = None  # the candidate's output on every probe in eval mode
    step: int = 1  # probes per forward that computed it

    def first_in_batch(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """(the first probe, its output as computed in a batch with others), where it was (parity.checks.mode
        runs that probe alone against it)."""
        if self.output is None or self.step < 2 or len(self.output) != len(x):
            return None
        return x[:1], self.output[:1]


def _compare(arch, candidate, prober: Prober | None, source, source_meta, points, tensors, x, cfg: ParityConfig,
             notes: list[str], progress: Callable[[str], None]) -> _Found:
    """Every point result, in report order, and why train mode was not compared."""
    tf_runner = source.runner()
    try:
        return _compare_with(arch, candidate, prober, source, source_meta, points, tensors, x, cfg, notes,
                             progress, tf_runner)
    finally:
        tf_runner.close()


def _compare_with(arch, candidate, prober: Prober | None, source, source_meta, points, tensors, x,
                  cfg: ParityConfig, notes: list[str], progress: Callable[[str], None], tf_runner) -> _Found:
    batch = tf_runner.batch or cfg.probes
    results: list[PointResult] = []
    by_ref: dict[str, list[PointResult]] = {}
    cand_output, tested, step = None, [], 1
    if prober is not None:
        refs: dict[str, TorchReference] = {}
        if "torchvision" in cfg.against and candidate.torchvision_layout:
            refs, note = torchvision_references(arch, candidate, source_meta, points)
            if note:
                notes.append(note)
        elif "torchvision" in cfg.against:
            notes.append("torchvision references skipped: the candidate is not laid out like torchvision")
        weights = sum(t.numel() * t.element_size() for t in candidate.module.state_dict().values())
        ev = eval_stage(prober, refs, tf_runner, x, tensors, cfg.tol, notes, progress,
                        step=eval_step(tf_runner, tensors, weights),
                        tf_activation=arch.tf_activation)
        by_ref, cand_output, tested, step = ev.by_ref, ev.output, ev.tested, ev.step
        results.extend(by_ref.pop("tf"))
    else:
        notes.append("the candidate's forward cannot be traced: compared at its BatchNorm modules' outputs in call "
                     "order and at its output only")
        results.extend(generic_eval_stage(candidate, source, tf_runner, x, tensors, points, batch, cfg.tol, notes,
                                          progress))
    # train mode runs in the eval runner's graph and session (the weights shared), which closes after it
    train, train_skipped = _train(arch, candidate, prober, source, points, tf_runner, x, batch, cfg, results,
                                  progress)
    tf_runner.close()
    if "onnx" in cfg.against:
        # TF's graph and buffers are gone; the memory they freed is ONNX Runtime's to reuse, not handed back to
        # the system first (malloc_trim here cost ResNet50 0.25 s of pages faulted in again; the end's peak
        # stays below the eval stage's either way: 2.07 vs 2.10 GB private, MobileNetV2 1.03-1.06 vs 1.11)
        onnx = onnx_reference(candidate, x, cand_output, cfg.tol, notes, progress)
        if onnx is not None:  # a failing result is falsy: compared, and kept
            results.append(onnx)
    for ref_results in by_ref.values():  # torchvision, then torchvision+declared
        results.extend(ref_results)
    return _Found(results + train, train_skipped, tested, cand_output, step)


def _train(arch, candidate, prober: Prober | None, source, points, tf_runner, x, batch: int, cfg: ParityConfig,
           eval_results: list[PointResult], progress: Callable[[str], None]) -> tuple[list[PointResult], str]:
    """Train mode's point results, or why train mode was not compared ("" where it was or was not asked)."""
    if "train" not in cfg.modes:
        return [], ""
    if not source.spec.bns:  # a BN-free net (VGG16): eval mode certifies it, whatever the candidate's layout
        return [], NO_BN
    if prober is None:
        return [], "the candidate's forward cannot be traced: its points cannot be found"
    train_ref = None if candidate.meta.get("bn_folded") else train_reference(arch, source, points)
    if train_ref is None:
        return [], "BN folded into the convolutions at the source (its graph keeps no statistics): eval-mode BN only"
    progress("TF and candidate: probe points in train mode (batch statistics)")
    tf_runner.fresh_session()  # the eval executor's copy of the weights goes before the train parts build theirs
    release_free_memory()  # what the eval stage freed is not carried into the train stage
    t_tensors = train_ref.import_into(tf_runner)
    return train_stage(prober, tf_runner, t_tensors, x, batch, cfg.train_tol, eval_results,
                       part_bytes=TRAIN_PART_BYTES), ""
