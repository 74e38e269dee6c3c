"""Semantic checks: each one verdict, its evidence, the cause and the fix. A registry, one function each.

Why they exist: a port can match TF in eval mode and still ruin training (BN momentum 0 or TF's decay
copied, running statistics saved after train-mode passes), or match at one input size and not another
(TF's asymmetric SAME padding); README, `python -m parity check`. These look at what the candidate
*does* (its modules, its weights, one train-mode step), against what the source says. What they expect
of the network itself (its activation, its convolutions, where a finding localises) they ask the
architecture (parity.arch), through the CheckContext (parity.context).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from convert.model.spec import FLATTEN_ORDERS, TF_DEFAULT_BN_DECAY
from convert.runtime.registry import Registry
from parity.hypotheses import first_holding

if TYPE_CHECKING:
    from parity.context import CheckContext


@dataclass(frozen=True)
class CheckResult:
    name: str
    passed: bool
    evidence: str
    cause: str = ""
    fix: str = ""
    point: str | None = None  # probe point the finding localises to
    details: dict[str, Any] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return self.passed

    def to_json(self) -> dict:
        return asdict(self)


Check = Callable[["CheckContext"], "CheckResult | None"]  # None: the check does not apply to this candidate
CHECKS: Registry[Check] = Registry("check")
REPAIR = "run `python -m convert repair PORTED --source SRC -o fixed.pth`"


def check(name: str) -> Callable[[Check], Check]:
    return CHECKS.register(name)


def _bn_modules(ctx: CheckContext) -> list[tuple[str, Any]]:
    from convert.layers.batchnorm import batchnorms

    return batchnorms(ctx.candidate.module)


def _point_of_bn(ctx: CheckContext, index: int) -> str | None:
    bn_points = [p for p in ctx.points if p.suffix == ":bn"]
    return bn_points[index].name if index < len(bn_points) else None


def _no_bn(ctx: CheckContext) -> bool:
    """Neither the source nor the candidate has a BatchNorm (VGG16): the BN checks do not apply."""
    return not ctx.source.spec.bns and not _bn_modules(ctx)


@check("bn_eps")
def bn_eps(ctx: CheckContext) -> CheckResult | None:
    """BN eps per layer vs the source (TF's default convert.spec.TF_DEFAULT_BN_EPS, torchvision's 1e-5)."""
    if _no_bn(ctx):
        return None
    src = [b.eps for b in ctx.source.spec.bns]
    cand = [float(m.eps) for _, m in _bn_modules(ctx)]
    if len(src) != len(cand):
        return CheckResult("bn_eps", False, f"candidate has {len(cand)} BatchNorms, source {len(src)}")
    bad = [i for i, (a, b) in enumerate(zip(cand, src, strict=True)) if not math.isclose(a, b, rel_tol=1e-6)]
    if not bad:
        return CheckResult("bn_eps", True, f"all {len(src)} BN eps equal the source's ({_summary(src)})")
    i = bad[0]
    return CheckResult("bn_eps", False, f"{len(bad)} BN layer(s) use an eps other than the source's: first "
                       f"{_bn_modules(ctx)[i][0]} eps={cand[i]:g}, source {src[i]:g}",
                       cause="BatchNorm epsilon differs from the TF source (TF default 1e-3, torchvision 1e-5)",
                       fix=f"set eps={src[i]:g} on those BatchNorm2d modules; {REPAIR}",
                       point=_point_of_bn(ctx, i), details={"layers": [_bn_modules(ctx)[j][0] for j in bad]})


def _summary(values) -> str:
    u = sorted({float(f"{v:.4g}") for v in values})  # measured factors differ in float32 noise only
    return ", ".join(f"{v:g}" for v in u[:4])


def half_life(momentum: float) -> float:
    """Steps for the running statistics to move halfway to new data: ln 0.5 / ln(1 - m)."""
    if momentum <= 0:
        return math.inf
    if momentum >= 1:
        return 1.0
    return math.log(0.5) / math.log(1.0 - momentum)


@check("bn_momentum")
def bn_momentum(ctx: CheckContext) -> CheckResult | None:
    """Momentum semantics per BN layer: 0 = stats never move; >= 0.5 = TF decay copied; faithful = 1 - decay;
    and what one train-mode step of each layer really applies equals what it declares."""
    if _no_bn(ctx):
        return None
    expected = [1.0 - (b.decay if b.decay is not None else TF_DEFAULT_BN_DECAY) for b in ctx.source.spec.bns]
    mods = _bn_modules(ctx)
    cand = [m.momentum for _, m in mods]
    measured = ctx.measured_momentum or []  # per BN module, in module order
    hl = half_life(min((c for c in cand if c is not None), default=0.0))
    details = {"expected": _summary(expected), "declared": _summary([c for c in cand if c is not None]),
               "measured_one_step": _summary(measured) if measured else None, "half_life_steps": hl}
    if not mods or len(cand) != len(expected):
        return CheckResult("bn_momentum", False, f"candidate has {len(cand)} BatchNorm modules, the source "
                           f"{len(expected)}: momentum cannot be compared layer by layer" +
                           ("" if mods else ", nor measured"),
                           cause="BatchNorm missing or folded into the convolutions: in train mode nothing "
                                 "normalises with batch statistics as the source does",
                           fix=REPAIR, point=_point_of_bn(ctx, 0), details=details)
    if any(c is None for c in cand):
        return CheckResult("bn_momentum", False, "BN momentum None (cumulative average): not TF's exponential decay",
                           cause="momentum=None makes running stats a cumulative average",
                           fix=f"set momentum={expected[0]:g}; {REPAIR}", point=_point_of_bn(ctx, 0), details=details)
    zero = [i for i, c in enumerate(cand) if c == 0.0]
    if zero:
        moved = measured[zero[0]] if zero[0] < len(measured) else None
        return CheckResult("bn_momentum", False,
                           f"{len(zero)}/{len(cand)} BatchNorms have momentum=0.0"
                           + (f"; one train-mode step moved the running mean by {moved:g}×(batch − running)"
                              if moved is not None else ""),
                           cause="momentum 0: in train mode the running statistics never move, so a head trained on "
                                 "batch statistics is validated on stale ones (MMdnn emits this)",
                           fix=f"set momentum={expected[zero[0]]:g} (1 − TF decay) or keep BN in eval mode; {REPAIR}",
                           point=_point_of_bn(ctx, zero[0]), details=details)
    copied = [i for i, c in enumerate(cand) if c >= 0.5]
    if copied:
        return CheckResult("bn_momentum", False,
                           f"{len(copied)}/{len(cand)} BatchNorms have momentum={cand[copied[0]]:g}",
                           cause="TF's decay was copied into PyTorch: PyTorch momentum is 1 − decay, so running "
                                 "statistics follow the last batch",
                           fix=f"set momentum={expected[copied[0]]:g}; {REPAIR}", point=_point_of_bn(ctx, copied[0]),
                           details=details)
    off = [i for i, (c, e) in enumerate(zip(cand, expected, strict=True))
           if not math.isclose(c, e, rel_tol=1e-6, abs_tol=1e-9)]
    if off:
        i = off[0]
        return CheckResult("bn_momentum", False, f"{len(off)} BN layer(s) off: first {mods[i][0]} momentum="
                           f"{cand[i]:g}, faithful value 1 − decay = {expected[i]:g}",
                           cause="BN momentum is not 1 − the source's decay",
                           fix=f"set momentum={expected[i]:g}; {REPAIR}",
                           point=_point_of_bn(ctx, i), details={**details, "layers": [mods[j][0] for j in off]})
    unlike = [i for i, (m, c) in enumerate(zip(measured, cand, strict=True))
              if not math.isclose(m, c, rel_tol=0.05, abs_tol=1e-6)]
    if unlike:
        i = unlike[0]
        return CheckResult("bn_momentum", False, f"{len(unlike)} BN layer(s) update unlike they declare: first "
                           f"{mods[i][0]} declares momentum {cand[i]:g} but one train-mode step moved its running "
                           f"mean by {measured[i]:g}×", cause="running statistics do not update as declared",
                           fix=REPAIR, point=_point_of_bn(ctx, i),
                           details={**details, "layers": [mods[j][0] for j in unlike]})
    return CheckResult("bn_momentum", True, f"momentum {_summary(cand)} = 1 − decay in all {len(cand)} BN layers; "
                       f"one train-mode step of each measured {_summary(measured)}; running statistics move halfway "
                       f"to new data in {hl:.0f} steps", details=details)


@check("bn_statistics")
def bn_statistics(ctx: CheckContext) -> CheckResult | None:
    """Running statistics equal the source's: a checkpoint saved after train-mode passes fails here."""
    if not ctx.candidate.torchvision_layout or _no_bn(ctx):
        return None
    from convert.port.canonical import running_means

    mods = _bn_modules(ctx)
    means = running_means(ctx.source.spec)  # a conv bias before a BN is folded into its running mean
    for i, ((name, m), b, mean) in enumerate(zip(mods, ctx.source.spec.bns, means, strict=False)):
        if b.folded:
            continue
        rm, rv = m.running_mean.detach().numpy(), m.running_var.detach().numpy()
        if not (np.allclose(rm, mean, rtol=1e-6, atol=1e-6 * max(1.0, float(np.abs(mean).max())))
                and np.allclose(rv, b.var, rtol=1e-6, atol=1e-7)):
            same_affine = (np.allclose(m.weight.detach().numpy(), b.gamma)
                           and np.allclose(m.bias.detach().numpy(), b.beta))
            cause = ("running statistics were updated after conversion (the checkpoint was saved after train-mode "
                     "forward passes)" if same_affine else "BN parameters differ from the source")
            return CheckResult("bn_statistics", False, f"{name}: running mean/var differ from the source's "
                               f"(max |Δmean| {np.abs(rm - mean).max():.3g})", cause=cause,
                               fix=f"keep the model in eval mode before saving; {REPAIR}", point=_point_of_bn(ctx, i))
    n_folded = sum(b.folded for b in ctx.source.spec.bns)
    return CheckResult("bn_statistics", True,
                       f"running statistics of {len(mods) - n_folded} BN layers equal the source's")


@check("padding")
def padding(ctx: CheckContext) -> CheckResult | None:
    """Per conv: TF SAME pads (0, 1) on stride-2 at even sizes; torchvision pads (1, 1). Static where the
    candidate's convolutions can be read; numerically, the candidate as loaded against TF at a second
    input size of the other parity where the source's size is open (pads written for one size differ)."""
    from convert.port.canonical import padding_mode

    numeric = ctx.padding
    details = {"numeric": numeric.to_json()} if numeric is not None else {}
    bad = []
    if ctx.candidate.torchvision_layout:
        spec = ctx.source.spec
        hw = spec.input_shape[:2]
        for (name, m), c in zip(ctx.arch.convs(ctx.candidate.module), spec.convs, strict=False):
            want = padding_mode(c, hw, str(ctx.source.path), getattr(spec, "size_open", False))
            have = _padding_of(m)
            if _pads_unlike(want, have, m, hw):
                bad.append((name, want, have))
            hw = (math.ceil(hw[0] / c.stride), math.ceil(hw[1] / c.stride))
    fix = f"pad like TF (Conv2dSame / F.pad(x, (0, 1, 0, 1)) before a padding-0 conv); {REPAIR}"
    if bad:
        name = bad[0][0]
        return CheckResult("padding", False, f"{len(bad)} conv(s) pad unlike the source: first {name} pads "
                           f"{bad[0][2]}, the source pads {bad[0][1]}",
                           cause="TF SAME padding on stride-2 convs is asymmetric (0 before, 1 after on even sizes); "
                                 "PyTorch's padding=1 is symmetric, shifting every later feature by half a pixel",
                           fix=fix, point=ctx.arch.point_of_conv(name),
                           details={"convs": [b[0] for b in bad], **details})
    if numeric is None:
        return None  # a candidate whose convolutions cannot be read and whose points cannot be found
    if numeric.first is not None:
        first = numeric.first
        return CheckResult("padding", False, f"at {numeric.size}, a size of the other parity the source also takes, "
                           f"{first.point} differs from TF (max |Δ| {first.max_abs:.3g}, tolerance {first.bound:.2g}"
                           + (f"; shape {list(first.shape)}" if first.max_abs == float("inf") else "")
                           + ")",
                           cause="padding fits one input size only: pads written as constants for the converted "
                                 "size (MMdnn emits F.pad with fixed pads), where TF SAME pads by the size that "
                                 "arrives (0 before and 1 after a stride-2 conv at even sizes, 1 and 1 at odd ones)",
                           fix=fix, point=first.point, details=details)
    static = "every conv pads as the source does" if ctx.candidate.torchvision_layout else "padding"
    if numeric.size is None:
        if not ctx.candidate.torchvision_layout:
            return None  # nothing read statically, nothing run at another size: the points at the source's size say
        return CheckResult("padding", True, f"{static}; {numeric.why_not}", details=details)
    return CheckResult("padding", True, f"{static}; confirmed against TF at a second input size, {numeric.size}: "
                       f"all {numeric.compared} backbone points equal", details=details)


def _padding_of(m) -> str | list[int]:
    """How a torch conv pads, in the metadata's words (convert.port.canonical.padding_mode)."""
    from convert.layers.conv_same import Conv2dPadded, Conv2dSame

    if isinstance(m, Conv2dSame):
        return "tf_same"
    if isinstance(m, Conv2dPadded):
        return list(m.pads)
    return "symmetric" if m.padding == (m.kernel_size[0] // 2,) * 2 else f"{m.padding}"


def _pads_unlike(want: str | list[int], have: str | list[int], m, hw: tuple[int, int]) -> bool:
    """Whether a conv padding `have` computes otherwise than the source's `want` (at a stride of 1, TF SAME
    is symmetric; constant pads equal to TF SAME's at the source's fixed size are TF SAME there)."""
    from convert.model.spec import tf_same_pads

    if want == have:
        return False
    k, s = m.kernel_size[0], m.stride[0]
    if want == "tf_same":
        same_here = tf_same_pads(hw[0], k, s) + tf_same_pads(hw[1], k, s)
        return not ((have == "symmetric" and s == 1) or (isinstance(have, list) and tuple(have) == same_here))
    return True


@check("stride")
def stride(ctx: CheckContext) -> CheckResult | None:
    """Per conv, the stride the candidate applies vs the source's: ResNet v1 strides a downsampling block's
    first 1x1 where torchvision's v1.5 strides its 3x3 — same weight shapes, so the weights load either way."""
    if not ctx.candidate.torchvision_layout:
        return None
    convs = ctx.arch.convs(ctx.candidate.module)
    src = ctx.source.spec.convs
    bad = [(name, int(m.stride[0]), c.stride) for (name, m), c in zip(convs, src, strict=False)
           if int(m.stride[0]) != c.stride]
    if len(convs) != len(src):
        return CheckResult("stride", False, f"candidate has {len(convs)} convs, the source {len(src)}: strides "
                           "cannot be compared conv by conv")
    if not bad:
        n2 = sum(c.stride == 2 for c in src)
        return CheckResult("stride", True, f"every conv strides as the source does ({n2} with stride 2)")
    name, have, want = bad[0]
    where = ", ".join(f"{n} {h} (source {w})" for n, h, w in bad[:4])
    return CheckResult("stride", False, f"{len(bad)} conv(s) stride unlike the source: {where}",
                       cause=ctx.arch.stride_fault,
                       fix=f"set each conv's stride to the source's (convert.port.build does from the metadata's "
                           f"`stride`); {REPAIR}", point=ctx.arch.point_of_conv(name),
                       details={"convs": [{"conv": n, "candidate": h, "source": w} for n, h, w in bad]})


@check("flatten_order")
def flatten_order(ctx: CheckContext) -> CheckResult | None:
    """The first Dense after a Flatten reads the map in the order the candidate flattens it: TF flattens
    NHWC, torchvision NCHW, so its columns must be the source's permuted (VGG16's fc1, a fine-tuned base's
    own first Dense). Same shape either way: a port that copies them as they are (MMdnn's VGG bug) loads
    strict=True and computes another function. Compared from the numbers, never fitted."""
    from torch import nn

    from convert.layers.pool import Flatten
    from convert.model.layouts import flatten_columns

    spec = ctx.source.spec
    if spec.pool != "flatten" or spec.flatten is None or not spec.head:
        return None
    model = ctx.candidate.module
    # how the candidate flattens: its own Flatten module's order (a port's), torch's flatten (NCHW) in plain
    # torchvision, and MMdnn's emitter's `torch.reshape` of its NCHW map; nothing known of others (onnx2torch)
    own = next((m.order for m in model.modules() if isinstance(m, Flatten)), None)
    if ctx.candidate.torchvision_layout:
        order, who = own or "NCHW", "the port" if own else "torchvision"
    elif ctx.candidate.kind == "mmdnn":
        order, who = "NCHW", "MMdnn's emitted model"
    else:
        return None
    dense = next(((n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)), None)
    src, shape, src_order = spec.head[0].weight, spec.flatten.shape, spec.flatten.order
    if dense is None:
        return CheckResult("flatten_order", False, "the candidate has no Dense after the flatten, the source "
                           f"'{spec.head[0].name}'", cause="the source's head is missing from the candidate",
                           fix=REPAIR_FLATTEN)
    name, linear = dense
    w = linear.weight.detach().numpy()
    dims = "x".join(map(str, shape))
    if w.shape != src.shape:
        return CheckResult("flatten_order", False, f"{name} is {tuple(w.shape)}, the source's first Dense "
                           f"'{spec.head[0].name}' {tuple(src.shape)}", cause="the first Dense differs in shape "
                           "from the source's", fix=REPAIR_FLATTEN, point=name)
    want = flatten_columns(src, shape, src_order, order)
    if np.array_equal(w, want):
        permuted = f"the source's {src_order} columns permuted" if src_order != order else "the source's columns"
        return CheckResult("flatten_order", True, f"{name} reads the flattened {dims} map (C x H x W) in {who}'s "
                           f"{order} order: its columns are {permuted}")
    other = next((o for o in FLATTEN_ORDERS if o != order), order)
    if src_order != order and np.array_equal(w, flatten_columns(src, shape, src_order, other)):
        return CheckResult("flatten_order", False, f"{name} holds the source's columns in {src_order} order as "
                           f"they are, where {who} flattens the {dims} map {order}: every input reaches the wrong "
                           "weight", cause=f"flatten order: {src_order} columns where {who} flattens {order}",
                           fix=REPAIR_FLATTEN, point=name,
                           details={"dense": name, "source_order": src_order, "candidate_order": order,
                                    "shape": list(shape)})
    return CheckResult("flatten_order", False, f"{name} differs from the source's first Dense "
                       f"'{spec.head[0].name}' in either flatten order (max |Δ| {np.abs(w - want).max():.3g})",
                       cause="the first Dense's weights differ from the source's", fix=REPAIR_FLATTEN, point=name)


REPAIR_FLATTEN = ("permute the first Dense's columns from (h, w, c) to (c, h, w) order: W.reshape(out, H, W, C)"
                  ".permute(0, 3, 1, 2).reshape(out, -1) — `python -m convert tf2torch` does")


def _batch_dependence(ctx: CheckContext) -> tuple[float, float]:
    """max |Δ| of the first probe's output run alone and in a batch with others, and the tolerance it must meet.

    At inference each input's output is its own. A module left in train mode, or a forward that forces
    `training=True` into a batch norm (which no loader's `.eval()` undoes), normalises with the batch's
    statistics; train-mode dropout draws new masks: either makes the two differ. The batched output is the
    eval stage's where it ran several probes at once (ctx.first_in_batch: one forward of one probe here, not
    three), else a batch of two run here. Measured on a copy (a train-mode forward would move the
    candidate's running statistics)."""
    import torch

    from convert.model.probe import probe_inputs
    from parity.metrics import EVAL_TOL

    spec = ctx.source.spec
    if ctx.first_in_batch is not None:
        x, batched = ctx.first_in_batch
    else:
        x, batched = probe_inputs(2, tuple(spec.input_shape[:2]), tuple(spec.input_range), seed=1), None
    if ctx.candidate.input_layout == "NCHW":
        x = x.transpose(0, 3, 1, 2)
    # its buffers copied (a train-mode forward moves the running statistics), its parameters shared: a
    # no-grad forward never writes them (ResNet50: 100 MB not copied)
    module = ctx.candidate.module
    model = copy.deepcopy(module, memo={id(p): p for p in module.parameters()})

    def first_output(xs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            out = model(torch.from_numpy(np.ascontiguousarray(xs)))
        out = out[0] if isinstance(out, (tuple, list)) else out
        return out[:1].detach().numpy()

    batched = np.asarray(batched if batched is not None else first_output(x[:2]), np.float64).reshape(1, -1)
    alone = first_output(x[:1]).astype(np.float64).reshape(1, -1)
    if batched.shape != alone.shape:  # the eval stage's output is not this forward's return value
        raise AssertionError(f"batched output {batched.shape} against {alone.shape} alone")
    scale = float(np.abs(alone).max(initial=0.0))
    return float(np.abs(batched - alone).max(initial=0.0)), max(EVAL_TOL.bound(alone), BATCH_RTOL * scale)


# Batch statistics at inference move an output by a sizeable part of its scale; float32 arithmetic that
# differs between a batch of one and of two (other kernels, other summation orders) moves it by far less,
# but more than parity's per-point rtol where a network amplifies: a naive MobileNetV3 Small port (plain
# torchvision fed 0..255) returns logits ~8600 that differ by 1.1 (1.3e-4 of them; 5e-12 in float64).
BATCH_RTOL = 1e-3


@check("mode")
def mode(ctx: CheckContext) -> CheckResult:
    """Inference treats each input on its own (eval-mode BN, no dropout); and parity also holds in train mode."""
    diff, bound = _batch_dependence(ctx)
    if not diff <= bound:
        return CheckResult("mode", False, f"the first probe's output differs by max |Δ| {diff:.3g} (tolerance "
                           f"{bound:.2g}) run alone and in a batch of two: at inference an input's output depends on "
                           "the rest of its batch",
                           cause="batch statistics at inference: a model left in train mode (or a forward that forces "
                                 "training=True) normalises with the batch's statistics and applies dropout",
                           fix="call model.eval() after loading (backbones.load does) and let BatchNorm use its "
                               "running statistics at inference (training=False)")
    own = "each input's output is its own at inference (alone = in a batch)"
    train = [r for r in ctx.results if r.mode == "train"]
    if ctx.train_skipped or not train:
        why = ctx.train_skipped or "not among the modes run"
        return CheckResult("mode", True, f"{own}; train mode not compared: {why}",
                           details={"train_mode": "not compared"})
    failed = [r for r in train if not r.passed]
    if failed:
        return CheckResult("mode", False, f"{own}, but in train mode {len(failed)}/{len(train)} points "
                           f"differ from TF; first {failed[0].point} (max |Δ| {failed[0].max_abs:.3g})",
                           cause="train-mode BatchNorm does not reproduce TF's batch-statistics normalisation",
                           fix=REPAIR, point=failed[0].point)
    return CheckResult("mode", True, f"{own}; train mode (batch statistics) matches TF at all {len(train)} points")


@check("preprocessing")
def preprocessing(ctx: CheckContext) -> CheckResult:
    """The input contract: the range the source is fed in, and the affine it applies inside the model
    (preprocess_input, Rescaling, Normalization — measured in TF), carried by the port and equal to it."""
    want = list(ctx.source.spec.input_range)
    have = ctx.candidate.meta.get("input_range")
    src = ctx.source.spec.preprocess
    module = getattr(ctx.candidate.module, "input_affine", None)
    if have is None:
        return CheckResult("preprocessing", False, "the candidate records no input preprocessing",
                           cause="without the input range, users feed ImageNet mean/std normalised images "
                                 f"(torchvision's convention) to a network fed {want} ({ctx.arch.input_convention})",
                           fix=f"record input_range {want}; {REPAIR}",
                           point=ctx.arch.input_point)
    if src is not None and module is None:
        return CheckResult("preprocessing", False, f"the source applies x * {_affine(src.scale)} + "
                           f"{_affine(src.offset)} inside the model ({', '.join(src.ops[:3])}); the candidate "
                           "applies nothing",
                           cause="the source's own preprocessing layers were left out of the port",
                           fix=f"convert the source with `python -m convert tf2torch`; {REPAIR}",
                           point=ctx.arch.input_point)
    if src is None and module is not None:
        return CheckResult("preprocessing", False, "the candidate applies an input affine the source does not have",
                           cause="preprocessing added by the port", fix=REPAIR, point=ctx.arch.input_point)
    if src is not None:
        scale, offset = module.scale.flatten().numpy(), module.offset.flatten().numpy()
        if not (np.allclose(scale, src.scale, rtol=1e-6, atol=0)
                and np.allclose(offset, src.offset, rtol=1e-6, atol=1e-7)):
            return CheckResult("preprocessing", False, f"the candidate applies x * {_affine(scale)} + "
                               f"{_affine(offset)}, the source x * {_affine(src.scale)} + {_affine(src.offset)}",
                               cause="input preprocessing differs from the source's", fix=REPAIR,
                               point=ctx.arch.input_point)
    if list(have) != want:
        return CheckResult("preprocessing", False, f"the candidate declares input {have}, the source expects {want}",
                           cause=f"input normalisation differs from the source's ({ctx.arch.input_convention})",
                           fix=f"feed inputs in {want}; {REPAIR}", point=ctx.arch.input_point)
    inside = (f"; inside the model x * {_affine(src.scale)} + {_affine(src.offset)} ({', '.join(src.ops[:3])}), "
              "carried into the port and equal to the source's" if src is not None else "")
    return CheckResult("preprocessing", True, f"input range {have} recorded, as the source expects{inside}")


def _affine(values) -> str:
    u = sorted({round(float(v), 6) for v in values})
    return f"{u[0]:g}" if len(u) == 1 else "[" + ", ".join(f"{float(v):.4g}" for v in values) + "]"


@check("layout")
def layout(ctx: CheckContext) -> CheckResult | None:
    """Weights in the right layout: OIHW convs, (C, 1, kH, kW) depthwise, RGB colour order — compared,
    never permuted to fit."""
    if not ctx.candidate.torchvision_layout:
        return None
    convs = ctx.arch.convs(ctx.candidate.module)
    bns = [m for _, m in _bn_modules(ctx)]
    src_bns = ctx.source.spec.bns
    folded = 0
    for i, ((name, m), c) in enumerate(zip(convs, ctx.source.spec.convs, strict=False)):
        w = m.weight.detach().numpy()
        if w.shape == c.weight.shape and np.array_equal(w, c.weight):
            continue
        if i < len(src_bns) and i < len(bns) and src_bns[i].folded and _same_folded(w, bns[i], c.weight, src_bns[i]):
            folded += 1  # BN folded into the conv at the source: only conv x BN is defined, and it is equal
            continue
        point = ctx.arch.point_of_conv(name)
        for hypothesis, transform in LAYOUT_FAULTS.items():
            t = transform(c.weight)
            if t is not None and t.shape == w.shape and np.array_equal(w, t):
                cause, fix = hypothesis
                return CheckResult("layout", False, f"{name}: weight equals the source's {cause}", cause=cause,
                                   fix=fix, point=point)
        return CheckResult("layout", False, f"{name}: weight differs from the source's (max |Δ| "
                           f"{np.abs(w - c.weight).max() if w.shape == c.weight.shape else 'shape ' + str(w.shape)})",
                           cause="weights differ from the source", fix=REPAIR, point=point)
    return CheckResult("layout", True, "NCHW input; every conv weight equals the source's in OIHW / (C, 1, kH, kW); "
                       "RGB order" + (f"; {folded} conv(s) compared as conv x BN, the BN folded into them at the "
                                      "source" if folded else ""))


def _same_folded(w: np.ndarray, bn, src_w: np.ndarray, src_bn) -> bool:
    """Equal as folded convolutions: w * gamma / sqrt(var + eps) per output channel, and the same offset."""
    def fold(weight, gamma, beta, mean, var, eps):
        a = np.asarray(gamma, np.float64) / np.sqrt(np.asarray(var, np.float64) + eps)
        return weight.astype(np.float64) * a.reshape(-1, 1, 1, 1), np.asarray(beta, np.float64) - np.asarray(mean) * a

    if w.shape != src_w.shape:
        return False
    cw, cb = fold(w, *(t.detach().numpy() for t in (bn.weight, bn.bias, bn.running_mean, bn.running_var)), bn.eps)
    sw, sb = fold(src_w, src_bn.gamma, src_bn.beta, src_bn.mean, src_bn.var, src_bn.eps)
    return bool(np.allclose(cw, sw, rtol=1e-5, atol=1e-6 * np.abs(sw).max()) and
                np.allclose(cb, sb, rtol=1e-5, atol=1e-6 * max(np.abs(sb).max(), 1e-12)))


LAYOUT_FAULTS: dict[tuple[str, str], Callable[[np.ndarray], np.ndarray | None]] = {
    ("kernel transposed spatially (H and W swapped)",
     "transpose kernels as HWIO -> OIHW (3, 2, 0, 1), depthwise HWC1 -> (2, 3, 0, 1)"):
        lambda w: w.transpose(0, 1, 3, 2),
    ("with input colour channels reversed (BGR instead of RGB)", "feed RGB, or flip the first conv's input channels"):
        lambda w: w[:, ::-1] if w.shape[1] == 3 else None,
}


@check("activation")
def activation(ctx: CheckContext) -> CheckResult | None:
    """The architecture's activation where TF has it (MobileNetV2: ReLU6 for Relu6; a plain ReLU passes
    every value above 6 through): read from the modules of a torchvision-layout port, and from the
    numbers at every `:act` point of any candidate (parity.hypotheses)."""
    arch = ctx.arch
    if ctx.candidate.torchvision_layout:
        wrong = arch.wrong_activations(ctx.candidate.module)
        if wrong:
            unit = wrong[0][0].rsplit(".", 1)[0]
            # architectures whose activation differs per layer (MobileNetV3: hard-swish, ReLU) name it per path
            want, tf_name, fault = (arch.expected_activation(wrong[0][0]) if hasattr(arch, "expected_activation")
                                    else (arch.activation, arch.tf_activation, arch.activation_fault))
            return CheckResult("activation", False, f"{len(wrong)} activation(s) are {wrong[0][1]}, TF uses "
                               f"{tf_name}: first {wrong[0][0]}", cause=fault, fix=f"use nn.{want}",
                               point=f"{unit}:act")
    acts = [t for t in ctx.tested if t.point.endswith(":act")]
    failed = {r.point for r in ctx.results if r.reference == "tf" and r.mode == "eval" and not r.passed}
    holding = first_holding(acts, failed)
    if holding is not None:
        h = holding.hypothesis
        return CheckResult("activation", False, f"{h.fault} at {holding.point}: the candidate's values reach "
                           f"{holding.cand_max:.4g} (the source's {holding.ref_max:.4g}); with that undone they "
                           f"equal TF's (max |Δ| {holding.result.max_abs:.3g})", cause=h.cause, fix=h.fix,
                           point=holding.point, details={"hypothesis": h.fault})
    if ctx.candidate.torchvision_layout:
        return CheckResult("activation", True,
                           getattr(arch, "activation_summary", f"all activations are {arch.activation}") + ", as in TF")
    if not acts:
        return None  # no activation point found in the candidate's graph: nothing to read the numbers at
    return CheckResult("activation", True, f"{arch.tf_activation} as in TF at all {len(acts)} activation points, by "
                       f"the numbers (largest value {max(t.cand_max for t in acts):.4g}, TF's "
                       f"{max(t.ref_max for t in acts):.4g})")


@check("head_activation")
def head_activation(ctx: CheckContext) -> CheckResult | None:
    """The head's final activation: where the output differs from the source's but softmax or sigmoid of
    one of them makes it equal, the candidate returns logits for probabilities (or the reverse)."""
    tested = [t for t in ctx.tested if t.point == "output"]
    out = next((r for r in ctx.results if r.point == "output" and r.reference == "tf" and r.mode == "eval"), None)
    if out is None or not tested:
        return None
    if out.passed:
        return CheckResult("head_activation", True, "the output equals the source's, final activation included")
    holding = first_holding(tested, {"output"})
    if holding is None:
        return None  # the output differs for another reason: the points before it say where
    h = holding.hypothesis
    return CheckResult("head_activation", False, f"{h.fault}: the output differs from the source's (max |Δ| "
                       f"{out.max_abs:.3g}), but with it undone they are equal (max |Δ| {holding.result.max_abs:.3g})",
                       cause=h.cause, fix=h.fix, point="output", details={"hypothesis": h.fault})
