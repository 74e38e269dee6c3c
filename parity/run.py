"""Run parity: capture every probe point of the candidate and its references, compare, check, decide."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from convert import TOOL_VERSION
from convert.errors import fail
from parity.checks import CHECKS, CheckResult, half_life
from parity.metrics import EVAL_TOL, TRAIN_TOL, PointResult, Tolerance, compare
from parity.points import Capture, Point, points_for, tf_tensors_for

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
    from convert.checkpoint import sha256_file
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
    """TF's value of each named point in the candidate's layout: feature maps NCHW (a 1x1 map late in a
    small input included), pooled features flat (a pooling that kept its dims gives N x 1 x 1 x C)."""
    suffix = {p.name: p.suffix for p in points}
    names = list(tensors)
    vals = runner.run(x, [tensors[n] for n in names], maps=True)
    return {n: v.reshape(len(v), -1) if suffix.get(n) == "pool" else _nchw(v) for n, v in zip(names, vals)}


def _capture_torch(model, points: list[Point], x_nchw: np.ndarray, batch: int,
                   on_point: Callable[[str, np.ndarray], None] | None = None) -> dict[str, np.ndarray]:
    """Every point's value (concatenated over batches); or, with `on_point`, each handed over once
    complete and not kept (an empty dict is returned)."""
    import torch

    cap = Capture(model, points, on_point, batches=-(-len(x_nchw) // batch))
    try:
        with torch.no_grad():
            for i in range(0, len(x_nchw), batch):
                model(torch.from_numpy(np.ascontiguousarray(x_nchw[i : i + batch])))
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

    from convert.canonical import to_torchvision, torchvision_slots
    from convert.probe import probe_inputs
    from convert.tfgraph import TFRunner

    torch.manual_seed(cfg.seed)
    src_can = to_torchvision(source.spec, str(source.path))
    alpha, k = src_can.meta["alpha"], src_can.meta["num_classes"]
    slots = torchvision_slots(alpha, k)
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

    progress("TF: capturing probe points (eval)")
    tf_vals = _tf_values(tf_runner, x, tensors, points)
    progress("candidate: capturing probe points (eval)")
    cand = candidate.module
    if candidate.torchvision_layout:
        # compared as each point completes, TF's value dropped at once: TF's and the candidate's captures
        # are never both held whole (the candidate's are kept for the torchvision references)
        cand_vals: dict[str, np.ndarray] = {}
        vs_tf: dict[str, PointResult] = {}

        def against_tf(name: str, v: np.ndarray) -> None:
            if name in cand_vals:  # a module run twice in one forward: its point is not one tensor
                if name in vs_tf:
                    vs_tf[name] = replace(vs_tf[name], passed=False)
                notes.append(f"candidate computed {name} more than once per forward pass")
                return
            cand_vals[name] = v
            if name in tf_vals:
                vs_tf[name] = compare(name, "tf", "eval", v, tf_vals.pop(name), cfg.tol)

        _capture_torch(cand, points, x_nchw, batch, against_tf)
        for p in points:  # every point TF has is compared: one the candidate never produced fails
            if p.name in vs_tf:
                results.append(vs_tf[p.name])
            elif p.name in tf_vals:
                results.append(compare(p.name, "tf", "eval", NOTHING, tf_vals[p.name], cfg.tol))
        cand_output = cand_vals.get("output")
    else:
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
        cand_output = None
        if "output" not in tf_vals:
            (tf_vals["output"],) = tf_runner.run(x, [source.info.output])
        results.append(compare("output", "tf", "eval", out, tf_vals["output"], cfg.tol))

    del tf_vals  # peak memory: every capture is compared, then dropped (scripts/bench: memory_parity)
    tf_runner.close()
    if "onnx" in cfg.against:
        _onnx_reference(candidate, x, cand_output, cfg, results, notes, progress)

    ctx = _Ctx(candidate, source, points, results)
    if candidate.torchvision_layout and "torchvision" in cfg.against:
        progress("torchvision: plain and with the declared semantics")
        note = _torchvision_references(candidate, src_can.meta, points, x_nchw, batch, cand_vals, cfg, results)
        if note:
            notes.append(note)
    if candidate.torchvision_layout:
        del cand_vals
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
            t_names = [n for n in t_tensors if n != "output"]
            tr = TFRunner(g_train, info_train)
            tf_train = _tf_values(tr, x, {n: t_tensors[n] for n in t_names}, points)
            tr.close()
            model = copy.deepcopy(cand).train()
            for m in model.modules():
                if isinstance(m, torch.nn.Dropout):
                    m.eval()
            compared = [p.name for p in points if p.name in tf_train and p.suffix not in ("", "output")]
            vs_train: dict[str, PointResult] = {}

            def against_tf_train(name: str, v: np.ndarray) -> None:
                if name in compared and name in tf_train:
                    vs_train[name] = compare(name, "tf", "train", v, tf_train.pop(name), cfg.train_tol)

            _capture_torch(model, [p for p in points if p.name in compared], x_nchw, batch, against_tf_train)
            results.extend(vs_train[n] for n in compared if n in vs_train)
            del tf_train
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
    from convert.onnx_path import OrtRunner

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
    ort = OrtRunner(path.read_bytes())
    (out,) = ort.run(x, [ort.sess.get_outputs()[0].name])
    results.append(compare("output", "onnx", "eval", cand_output, _nchw(out), cfg.tol))


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


def _torchvision_references(candidate, source_meta, points, x_nchw, batch, cand_vals, cfg, results) -> str | None:
    """Plain torchvision with the candidate's weights (deviations shown), and torchvision with the
    candidate's weights and the *source's* semantics, built from the source's own description (padding
    per conv, BN eps, input affine, head), never from the candidate's metadata: it must equal the
    candidate, so a semantic the candidate gets wrong — declared or not — fails here."""
    from torchvision.models import mobilenet_v2

    from convert.canonical import build

    from convert.portnet import torchvision_keys

    sd = candidate.module.state_dict()
    meta = candidate.meta
    plain = mobilenet_v2(width_mult=float(meta.get("alpha", 1.0)), num_classes=int(sd["classifier.1.weight"].shape[0]))
    plain.load_state_dict(torchvision_keys(sd))
    refs = {"torchvision": plain.eval()}
    note = None
    declared = build(source_meta)
    try:
        declared.load_state_dict(sd)
        refs["torchvision+declared"] = declared.eval()
    except RuntimeError as e:
        note = ("torchvision with the source's semantics: the candidate's weights do not fit the source's "
                f"structure ({str(e).splitlines()[-1].strip()[:120]})")
    for ref_name, model in refs.items():
        got: dict[str, PointResult] = {}

        def against_candidate(name: str, v: np.ndarray, ref_name=ref_name, got=got) -> None:
            if name in cand_vals:
                got[name] = compare(name, ref_name, "eval", cand_vals[name], v, cfg.tol)

        _capture_torch(model, [p for p in points if p.suffix != "output" or ref_name != "torchvision"],
                       _backbone_input(candidate, x_nchw) if ref_name == "torchvision" else x_nchw, batch,
                       against_candidate)
        results.extend(got[p.name] for p in points if p.name in got)
    return note


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

    from convert.canonical import build

    from convert.portnet import torchvision_keys

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
