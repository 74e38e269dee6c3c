"""Run parity: capture every probe point of the candidate and its references, compare, check, decide."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from convert import TOOL_VERSION
from convert.runtime.errors import fail
from parity.checks import CHECKS, CheckResult, half_life
from parity.metrics import EVAL_TOL, TRAIN_TOL, Comparison, PointResult, Tolerance, compare
from parity.points import AllCaptured, Capture, Point, points_for, tf_tensors_for

REFERENCES = ("tf", "onnx", "torchvision")


@dataclass(frozen=True)
class ParityConfig:
    tol: Tolerance = EVAL_TOL
    train_tol: Tolerance = TRAIN_TOL  # batch statistics: see parity.metrics
    probes: int = 8
    seed: int = 0
    against: tuple[str, ...] = REFERENCES
    modes: tuple[str, ...] = ("eval", "train")


@dataclass
class ParityReport:
    candidate: dict[str, Any]
    source: dict[str, Any]
    config: dict[str, Any]
    results: list[PointResult]
    checks: list[CheckResult]
    hazard: dict[str, Any]
    modes_passed: list[str]
    notes: list[str] = field(default_factory=list)

    @property
    def first_divergent(self) -> PointResult | None:
        return next((r for r in self.results if r.reference == "tf" and r.mode == "eval" and not r.passed), None)

    @property
    def passed(self) -> bool:
        gating = [r for r in self.results if r.reference in ("tf", "onnx", "torchvision+declared") and r.mode == "eval"]
        return bool(gating) and all(gating) and all(self.checks)

    def __bool__(self) -> bool:
        return self.passed

    def summary(self) -> str:
        n_fail = sum(not r.passed for r in self.results if r.reference == "tf" and r.mode == "eval")
        bad = [c.name for c in self.checks if not c.passed]
        first = self.first_divergent
        return (f"{'PASSED' if self.passed else 'FAILED'}: {sum(1 for r in self.results if r.reference == 'tf' and r.mode == 'eval')} "
                f"points vs TF ({n_fail} divergent{', first ' + first.point if first is not None else ''}); checks failed: "
                f"{', '.join(bad) if bad else 'none'}")


@dataclass
class _Ctx:
    """What checks read."""

    candidate: Any
    source: Any
    points: list[Point]
    results: list[PointResult]
    measured_momentum: list[float] | None = None  # per BN module: what one train-mode step applies
    padding_numeric: dict | None = None
    train_skipped: str = ""


def resolve_source(candidate, source_arg: str | Path | None, trust_code: bool = False):
    from convert.runtime.files import sha256_file
    from convert.sources import load_source

    recorded = candidate.meta.get("source") or {}
    path = Path(source_arg) if source_arg else (Path(recorded["path"]) if recorded.get("path") else None)
    if path is None:
        raise fail(f"{candidate.path}: records no source; give --source SRC")
    if not path.exists():
        raise fail(f"{path}: source not found" + ("" if source_arg else f" (recorded in {candidate.path}); give --source SRC"))
    if recorded.get("sha256") and sha256_file(path) != recorded["sha256"]:
        raise fail(f"{path}: sha256 differs from the one recorded in {candidate.path.name}: not the model it was ported from")
    size = candidate.meta.get("input_size")
    return load_source(path, tuple(size) if size else None, trust_code)


NOTHING = np.empty((0,), np.float32)  # what a point never captured compares as: it fails (metrics.compare)


def _nchw(a: np.ndarray) -> np.ndarray:
    return a.transpose(0, 3, 1, 2) if a.ndim == 4 else a


def _tf_values(runner, x: np.ndarray, tensors: dict[str, str], points: list[Point]) -> dict[str, np.ndarray]:
    """TF's value of each named point in the candidate's layout: a block's feature maps NCHW (a 1x1 map
    late in a small input included); pooled features and logits flat (a pooling that kept its dims, a
    slim graph's 1x1-conv logits: N x 1 x 1 x C); the source's output as the runner gives it."""
    from convert.runners.tf import per_probe

    suffix = {p.name: p.suffix for p in points}
    names = list(tensors)
    vals = runner.run(x, [tensors[n] for n in names], maps=True)
    out = {}
    for n, v in zip(names, vals, strict=True):
        kind = suffix.get(n, "output")
        if kind in ("pool", ""):
            out[n] = v.reshape(len(v), -1)
        else:
            out[n] = _nchw(per_probe(v, len(v)) if kind == "output" else v)
    return out


def _capture_torch(model, points: list[Point], x_nchw: np.ndarray, batch: int,
                   stop_early: bool = False) -> dict[str, np.ndarray]:
    """Every point's value, concatenated over batches. `stop_early` (one batch): the forward pass
    ends once every point has its value."""
    import torch

    cap = Capture(model, points, stop_early=stop_early and len(x_nchw) <= batch)
    try:
        with torch.no_grad():
            for i in range(0, len(x_nchw), batch):
                model(torch.from_numpy(np.ascontiguousarray(x_nchw[i : i + batch])))
    except AllCaptured:
        pass
    finally:
        cap.close()
    return cap.result()


def _capture_generic(model, x: np.ndarray, batch: int) -> tuple[list[np.ndarray], np.ndarray]:
    """Modules not laid out like torchvision: BN outputs in call order, plus the final output."""
    import torch

    calls: list[list[np.ndarray]] = []
    outs = []
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for i in range(0, len(x), batch):
        seen: list[np.ndarray] = []
        hs = [m.register_forward_hook(lambda _m, _i, o, seen=seen: seen.append(o.detach().numpy().copy())) for m in bns]
        try:
            with torch.no_grad():
                out = model(torch.from_numpy(np.ascontiguousarray(x[i : i + batch])))
        finally:
            for h in hs:
                h.remove()
        calls.append(seen)
        outs.append(out.detach().numpy().reshape(len(out), -1))
    per_bn = [np.concatenate([c[k] for c in calls]) for k in range(min(len(c) for c in calls))] if calls else []
    return per_bn, np.concatenate(outs)


def _train_graph(gd):
    """The source graph with every fused BN in training mode: TF's own batch-statistics reference."""
    import tensorflow as tf

    g = tf.compat.v1.GraphDef()
    g.CopyFrom(gd)
    n = 0
    for node in g.node:
        if node.op.startswith("FusedBatchNorm"):
            node.attr["is_training"].b = True
            n += 1
    return g, n


def run(candidate, source, cfg: ParityConfig = ParityConfig(), progress: Callable[[str], None] = lambda s: None) -> ParityReport:
    import torch

    from convert.model.probe import probe_inputs
    from convert.port.canonical import slots_of, to_torchvision
    from convert.runners.tf import TFRunner

    torch.manual_seed(cfg.seed)
    src_can = to_torchvision(source.spec, str(source.path))
    alpha, k = src_can.meta["alpha"], src_can.meta["num_classes"]
    slots = slots_of(src_can.meta)
    # the whole function is compared where the candidate claims to be one (a tfport port); a plain
    # torchvision state dict returns logits whatever the source returns, and is compared up to them
    points = points_for(slots, source.spec.pool, output=candidate.kind == "ported")
    tensors = tf_tensors_for(points, source.spec.taps, source.info.pooled)
    if any(p.suffix == "output" for p in points):
        tensors["output"] = source.info.output
    hw = source.spec.input_shape[:2]
    x = probe_inputs(cfg.probes, hw, tuple(source.spec.input_range), cfg.seed)
    x_nchw = x.transpose(0, 3, 1, 2)
    tf_runner = source.runner()
    batch = tf_runner.batch or cfg.probes
    results: list[PointResult] = []
    notes: list[str] = []
    if source.spec.trusted_code:
        notes.append(f"code from the source ran (--trust-code): {', '.join(source.spec.trusted_code)}")

    cand = candidate.module
    cand_output = None
    if candidate.torchvision_layout:
        refs: dict[str, tuple] = {}
        if "torchvision" in cfg.against:
            refs, note = _torchvision_models(candidate, src_can.meta, points)
            if note:
                notes.append(note)
        by_ref, cand_output = _eval_stage(cand, refs, tf_runner, x, tensors, points, cfg, notes, progress)
        results.extend(by_ref.pop("tf"))
    else:
        progress("TF: capturing probe points (eval)")
        tf_vals = _tf_values(tf_runner, x, tensors, points)
        progress("candidate: BatchNorm outputs and output (eval)")
        xin = x if candidate.input_layout == "NHWC" else x_nchw
        per_bn, out = _capture_generic(cand, xin, batch)
        bn_points = [p for p in points if p.suffix == ":bn"]
        # layouts are declared, never fitted: TF's are NHWC (converted above); a BatchNorm's output is NCHW
        # by its own definition (it normalises dim 1), so it is compared as captured, never permuted to fit
        for k, p in enumerate(bn_points):
            if p.name in tf_vals:
                results.append(compare(p.name, "tf", "eval", per_bn[k] if k < len(per_bn) else NOTHING,
                                       tf_vals[p.name], cfg.tol))
        if len(per_bn) != len(bn_points):
            notes.append(f"candidate ran {len(per_bn)} BatchNorm modules, the source has {len(bn_points)}")
        if "output" not in tf_vals:
            (tf_vals["output"],) = tf_runner.run(x, [source.info.output])
        results.append(compare("output", "tf", "eval", out, tf_vals["output"], cfg.tol))
        del tf_vals
    tf_runner.close()
    if "onnx" in cfg.against:
        _onnx_reference(candidate, x, cand_output, cfg, results, notes, progress)
    if candidate.torchvision_layout:
        for ref_results in by_ref.values():  # torchvision, then torchvision+declared
            results.extend(ref_results)

    ctx = _Ctx(candidate, source, points, results)
    if candidate.torchvision_layout:
        ctx.padding_numeric = _padding_numeric(candidate, src_can, hw, cfg.tol)
    ctx.measured_momentum = _measure_momentum(cand)

    if "train" in cfg.modes and candidate.torchvision_layout:
        train_ref = None if candidate.meta.get("bn_folded") else _train_reference(source, points)
        if train_ref is None:
            ctx.train_skipped = ("BN folded into the convolutions at the source (its graph keeps no statistics): "
                                 "eval-mode BN only")
        else:
            progress("TF and candidate: probe points in train mode (batch statistics)")
            g_train, info_train, t_tensors = train_ref
            tr = TFRunner(g_train, info_train)
            try:
                results.extend(_train_stage(cand, tr, t_tensors, points, x, batch, cfg, results))
            finally:
                tr.close()
    elif "train" in cfg.modes:
        ctx.train_skipped = "candidate is not laid out like torchvision; repair it first"

    checks = []
    for fn in CHECKS.values():
        res = fn(ctx)
        if res is not None:
            checks.append(res)
    momenta = [m.momentum for m in cand.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    mom = min((m for m in momenta if m is not None), default=0.0)
    hl = half_life(mom)
    hazard = {"bn_momentum": mom, "half_life_steps": None if math.isinf(hl) else hl,
              "never_moves": mom == 0.0,
              "measured_one_step": min(ctx.measured_momentum) if ctx.measured_momentum else None}
    report = ParityReport(
        candidate={"path": str(candidate.path), "kind": candidate.kind, "sha256": candidate.sha256,
                   "bn_folded": bool(candidate.meta.get("bn_folded"))},
        source={"path": str(source.path), "form": source.form, "sha256": source.sha256, "alpha": alpha,
                "input_size": list(hw), "num_classes": k},
        config={"atol": cfg.tol.atol, "rtol": cfg.tol.rtol, "train_atol": cfg.train_tol.atol,
                "train_rtol": cfg.train_tol.rtol, "probes": cfg.probes, "seed": cfg.seed,
                "against": list(cfg.against), "modes": list(cfg.modes), "tool_version": TOOL_VERSION},
        results=results, checks=checks, hazard=hazard, modes_passed=[], notes=notes)
    train_res = [r for r in results if r.mode == "train"]
    if report.passed:  # the same verdict as the report's: never a pass over nothing compared
        report.modes_passed = ["eval"] + (["train"] if train_res and all(train_res) else [])
    return report


def _onnx_reference(candidate, x, cand_output, cfg, results, notes, progress) -> None:
    """ONNX Runtime on the export written beside the port: the source's whole function, as tf2onnx saw it."""
    from convert.runners.onnx import OrtRunner

    onnx_name = (candidate.meta.get("artifacts") or {}).get("onnx.onnx")
    if not onnx_name:
        notes.append("no ONNX export recorded beside the candidate: ONNX Runtime reference skipped")
        return
    path = Path(candidate.path).parent / onnx_name
    if not path.exists():
        notes.append(f"ONNX export {path} is missing: ONNX Runtime reference skipped")
        return
    if cand_output is None:
        return
    progress("ONNX Runtime: final output")
    ort = OrtRunner(path.read_bytes(), where=str(path), folder=path.parent)
    (out,) = ort.run(x, [ort.sess.get_outputs()[0].name])
    results.append(compare("output", "onnx", "eval", cand_output, _nchw(out), cfg.tol))


# TF's train-mode captures are fetched in parts of at most this many bytes (network order), each part
# compared with the candidate's and dropped before the next: batch statistics need every probe in one
# batch, so parts split the points, not the probes (224, 8 probes: 2 parts instead of ~0.6 GB at once)
TRAIN_PART_BYTES = 160 * 2**20


def _train_stage(cand, tr, t_tensors: dict[str, str], points: list[Point], x: np.ndarray, batch: int,
                 cfg: ParityConfig, eval_results: list[PointResult]) -> list[PointResult]:
    """TF's graph with every BN in training mode against a train-mode copy of the candidate (Dropout
    kept off), point by point. A part's TF run computes only the network up to its last point, and the
    candidate's forward stops there too; its sizes come from the eval stage's shapes."""
    import torch

    nbytes = {r.point: 4 * math.prod(r.shape) for r in eval_results if r.reference == "tf" and r.mode == "eval"}
    names = [p.name for p in points if p.name in t_tensors and p.suffix not in ("", "output")]
    parts: list[list[str]] = [[]]
    size = 0  # bytes in the last part
    for n in names:
        if parts[-1] and size + nbytes.get(n, 0) > TRAIN_PART_BYTES:
            parts.append([])
            size = 0
        parts[-1].append(n)
        size += nbytes.get(n, 0)
    model = copy.deepcopy(cand).train()  # its running statistics move; the candidate's never do
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.eval()
    got: dict[str, PointResult] = {}
    x_nchw = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    for part in parts:
        tf_part = _tf_values(tr, x, {n: t_tensors[n] for n in part}, points)
        vals = _capture_torch(model, [p for p in points if p.name in tf_part], x_nchw, batch, stop_early=True)
        for name in part:
            if name in vals:
                got[name] = compare(name, "tf", "train", vals.pop(name), tf_part.pop(name), cfg.train_tol)
        del tf_part, vals
    return [got[n] for n in names if n in got]


def _train_reference(source, points):
    """TF's own batch-statistics reference: the source graph with every fused BN in training mode (a Keras 3
    source's graph has its BN fused back from the model's statistics). None where the source keeps no BN
    statistics at all (BN folded: Keras 3 export, TFLite)."""
    if source.graph_def is None:
        return None
    g_train, n_fused = _train_graph(source.graph_def)
    if not n_fused or n_fused != len(source.spec.bns):
        return None
    return g_train, source.info, tf_tensors_for(points, source.spec.taps, source.info.pooled)


def _torchvision_models(candidate, source_meta, points: list[Point]) -> tuple[dict[str, tuple], str | None]:
    """The torchvision references, each as (model, its points, its input from the candidate's): plain
    torchvision with the candidate's weights (deviations shown), and torchvision with the candidate's
    weights and the *source's* semantics, built from the source's own description (padding per conv,
    BN eps, input affine, head), never from the candidate's metadata: it must equal the candidate, so a
    semantic the candidate gets wrong — declared or not — fails there."""
    from torchvision.models import mobilenet_v2

    from convert.port.build import build
    from convert.port.head import torchvision_keys

    sd = candidate.module.state_dict()
    meta = candidate.meta
    plain = mobilenet_v2(width_mult=float(meta.get("alpha", 1.0)), num_classes=int(sd["classifier.1.weight"].shape[0]))
    plain.load_state_dict(torchvision_keys(sd))
    # plain torchvision has no input affine and returns logits: it sees what the candidate's backbone sees
    refs = {"torchvision": (plain.eval(), [p for p in points if p.suffix != "output"],
                            lambda x_nchw: _backbone_input(candidate, x_nchw))}
    note = None
    declared = build(source_meta)
    try:
        declared.load_state_dict(sd)
        refs["torchvision+declared"] = (declared.eval(), points, lambda x_nchw: x_nchw)
    except RuntimeError as e:
        note = ("torchvision with the source's semantics: the candidate's weights do not fit the source's "
                f"structure ({str(e).splitlines()[-1].strip()[:120]})")
    return refs, note


# probes per eval step where the source takes any batch: each step's activations (TF's, the candidate's,
# each reference's point by point) are compared and dropped before the next, so parity holds ~1/4 of
# what 8 probes at once would (224: ~0.15 GB instead of ~0.6 GB per capture); eval mode is per probe,
# so the figures are those of one batch (parity.metrics.Comparison)
EVAL_STEP = 2


def _eval_stage(cand, refs: dict[str, tuple], tf_runner, x: np.ndarray, tensors: dict[str, str],
                points: list[Point], cfg: ParityConfig, notes: list[str],
                progress: Callable[[str], None]) -> tuple[dict[str, list[PointResult]], np.ndarray | None]:
    """Eval mode, a few probes at a time: TF's capture of every point, the candidate's, compared and
    TF's dropped, then each torchvision reference's, compared with the candidate's and dropped; each
    point's figures accumulate over the steps (parity.metrics.Comparison). Returns the results by
    reference, in network order, and the candidate's output on every probe (ONNX Runtime's reference)."""
    step = tf_runner.batch or EVAL_STEP
    acc: dict[str, dict[str, Comparison]] = {r: {} for r in ("tf", *refs)}

    def add(ref: str, name: str, cand_v: np.ndarray, ref_v: np.ndarray) -> None:
        if name not in acc[ref]:
            acc[ref][name] = Comparison(name, ref, "eval", cfg.tol)
        acc[ref][name].add(cand_v, ref_v)

    outputs: list[np.ndarray] = []
    twice: set[str] = set()
    for lo in range(0, len(x), step):
        xs = x[lo : lo + step]
        xs_nchw = np.ascontiguousarray(xs.transpose(0, 3, 1, 2))
        progress(f"TF, candidate{', torchvision' if refs else ''}: probe points (eval), probes "
                 f"{lo + 1}-{lo + len(xs)} of {len(x)}")
        tf_vals = _tf_values(tf_runner, xs, tensors, points)
        cand_vals = _capture_torch(cand, points, xs_nchw, step)
        # a module run twice in one forward: its point is two tensors, which fit no reference (they fail)
        twice.update(n for n, v in cand_vals.items() if len(v) != len(xs))
        for name, ref_v in tf_vals.items():  # every point TF has is compared: one never produced fails
            add("tf", name, cand_vals.get(name, NOTHING), ref_v)
        del tf_vals
        if "output" in cand_vals:
            outputs.append(cand_vals["output"])
        for ref_name, (model, ref_points, prep) in refs.items():
            for name, v in _capture_torch(model, ref_points, prep(xs_nchw), step).items():
                if name in cand_vals:
                    add(ref_name, name, cand_vals[name], v)
        del cand_vals
    for name in sorted(twice):
        notes.append(f"candidate computed {name} more than once per forward pass")
    by_ref = {r: [c.result() for p in points if (c := acc[r].get(p.name)) is not None] for r in acc}
    return by_ref, (np.concatenate(outputs) if len(outputs) > 1 else outputs[0] if outputs else None)


def _backbone_input(candidate, x_nchw: np.ndarray) -> np.ndarray:
    """What the candidate's backbone sees: its own input affine applied (plain torchvision has none)."""
    affine = getattr(candidate.module, "input_affine", None)
    if affine is None:
        return x_nchw
    return (x_nchw * affine.scale.numpy() + affine.offset.numpy()).astype(np.float32)


def _padding_numeric(candidate, src_can, hw, tol: Tolerance) -> dict:
    """Run candidate and the source-semantics model (same weights) at an even size, where TF SAME is
    asymmetric: equal outputs confirm the padding numerically."""
    import torch

    from convert.port.build import build
    from convert.port.head import torchvision_keys

    size = (hw[0] + hw[0] % 2, hw[1] + hw[1] % 2)
    ref = build(src_can.meta)
    ref.load_state_dict(torchvision_keys(candidate.module.state_dict()), strict=False)  # features compared only
    ref.eval()
    for m_ref, m_c in zip(ref.modules(), candidate.module.modules()):  # compare padding alone: same BN semantics
        if isinstance(m_ref, torch.nn.BatchNorm2d) and isinstance(m_c, torch.nn.BatchNorm2d):
            m_ref.eps = m_c.eps
    a = b = torch.from_numpy(np.random.default_rng(1).uniform(-1, 1, (2, 3, *size)).astype(np.float32))
    first = None  # the first unit whose output differs beyond the tolerance: where the padding differs
    with torch.no_grad():
        for i, (unit_c, unit_ref) in enumerate(zip(candidate.module.features, ref.features)):
            a, b = unit_c(a), unit_ref(b)
            if first is None and not float((a - b).abs().max()) <= tol.bound(b.numpy()):
                first = f"features.{i}"
    return {"size": f"{size[0]}x{size[1]}", "max_abs": float((a - b).abs().max()), "bound": tol.bound(b.numpy()),
            "first_unit": first}


def _measure_momentum(model) -> list[float]:
    """One train-mode step of each BN (copies) on a batch of mean 1 from zeroed running statistics:
    the running mean then holds exactly the update factor the module really applies. Per module, in
    module order (any candidate: a port, MMdnn's emitted model, onnx2torch's); empty without BN."""
    import torch

    factors = []
    for bn in (b for b in model.modules() if isinstance(b, torch.nn.modules.batchnorm._BatchNorm)):
        b = copy.deepcopy(bn).train()
        spatial = (() if isinstance(bn, torch.nn.BatchNorm1d) else (4, 4, 4) if isinstance(bn, torch.nn.BatchNorm3d)
                   else (4, 4))
        with torch.no_grad():
            b.running_mean.zero_()
            b(torch.ones(4, b.num_features, *spatial) + torch.linspace(-0.5, 0.5, 4).view(4, 1, *(1,) * len(spatial)))
        factors.append(float(b.running_mean.mean()))
    return factors
