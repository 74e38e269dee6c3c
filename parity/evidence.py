"""Evidence the checks read beyond the point comparisons: what the candidate's BNs really do in one
train-mode step, the candidate against TF at a second input size, and the train-mode hazard that follows."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any

from parity.checks import half_life
from parity.context import PaddingEvidence
from parity.metrics import Tolerance
from parity.prober import Prober
from parity.results import Hazard
from parity.stages import second_size_stage


def measure_momentum(model: Any) -> list[float]:
    """One train-mode step of each BN (copies) on a batch of mean 1 from zeroed running statistics:
    the running mean then holds exactly the update factor the module really applies. Per module, in
    module order (any candidate: a port, MMdnn's emitted model, onnx2torch's); empty without BN."""
    import torch

    from convert.layers.batchnorm import batchnorms

    factors = []
    for _, bn in batchnorms(model):
        b = copy.deepcopy(bn).train()
        spatial = (() if isinstance(bn, torch.nn.BatchNorm1d) else (4, 4, 4) if isinstance(bn, torch.nn.BatchNorm3d)
                   else (4, 4))
        with torch.no_grad():
            b.running_mean.zero_()
            b(torch.ones(4, b.num_features, *spatial) + torch.linspace(-0.5, 0.5, 4).view(4, 1, *(1,) * len(spatial)))
        factors.append(float(b.running_mean.mean()))
    return factors


def padding_at_second_size(prober: Prober, source, tensors: dict[str, str], seed: int, tol: Tolerance,
                           progress: Callable[[str], None]) -> PaddingEvidence:
    """The candidate as loaded against TF at (H + 1) x (W + 1), on two probes, at every backbone point it
    has, where the source's input size is open (its graph leaves H and W to the caller); a source that
    fixes its size is compared at that size only, by the probe points. Only backbone points: a head may
    fix the size it takes (a pooling window), padding acts before it."""
    from convert.model.probe import probe_inputs
    from convert.runners.tf import TFRunner

    h, w = source.spec.input_shape[:2]
    dims = tuple(getattr(source.info, "input_shape", ()))[1:3]
    if source.graph_def is None or len(dims) != 2 or any(d is not None for d in dims):
        return PaddingEvidence(None, 0, why_not=f"the source fixes its input at {h}x{w}: compared at that size only")
    size = (h + 1, w + 1)
    x = probe_inputs(2, size, tuple(source.spec.input_range), seed)
    backbone = {n: t for n, t in tensors.items() if n.endswith((":bn", ":act", ":out"))}
    progress(f"TF and candidate: backbone points at a second input size, {size[0]}x{size[1]}")
    import tensorflow as tf

    runner = TFRunner(source.graph_def, source.info)
    try:
        results = second_size_stage(prober, runner, backbone, x, runner.batch or len(x), tol)
    except tf.errors.OpError as e:  # the source's own graph refusing that size (a reshape fixed to one)
        return PaddingEvidence(None, 0, why_not=f"TF cannot run the source at {size[0]}x{size[1]} "
                                                f"({type(e).__name__}): compared at {h}x{w} only")
    finally:
        runner.close()
    return PaddingEvidence(f"{size[0]}x{size[1]}", len(results), next((r for r in results if not r.passed), None))


def hazard(model: Any, measured: list[float]) -> Hazard:
    """The smallest BN momentum the candidate declares, its half-life in steps, and the smallest update
    one train-mode step really applied (`measured`, from measure_momentum)."""
    from convert.layers.batchnorm import batchnorms

    momenta = [m.momentum for _, m in batchnorms(model)]
    mom = min((m for m in momenta if m is not None), default=0.0)
    hl = half_life(mom)
    return Hazard(bn_momentum=mom, half_life_steps=None if math.isinf(hl) else hl, never_moves=mom == 0.0,
                  measured_one_step=min(measured) if measured else None)
