"""Evidence the checks read beyond the point comparisons: what the candidate's BNs really do in one
train-mode step, its padding measured at an even size, and the train-mode hazard that follows."""

from __future__ import annotations

import copy
import math
from typing import TYPE_CHECKING, Any

import numpy as np

from parity.checks import half_life
from parity.context import PaddingEvidence
from parity.metrics import Tolerance
from parity.results import Hazard

if TYPE_CHECKING:
    from parity.arch import Architecture


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


def padding_numeric(arch: Architecture, candidate, source_meta: dict[str, Any], hw: tuple[int, int],
                    tol: Tolerance) -> PaddingEvidence:
    """Run candidate and the source-semantics model (same weights) at an even size, where TF SAME is
    asymmetric: equal outputs confirm the padding numerically."""
    import torch

    size = (hw[0] + hw[0] % 2, hw[1] + hw[1] % 2)
    ref = arch.with_source_semantics(source_meta)
    ref.load_state_dict(arch.backbone_state(candidate.module.state_dict()), strict=False)  # features compared only
    ref.eval()
    # compare padding alone: the reference takes the candidate's BN eps
    for m_ref, m_c in zip(ref.modules(), candidate.module.modules(), strict=False):
        if isinstance(m_ref, torch.nn.BatchNorm2d) and isinstance(m_c, torch.nn.BatchNorm2d):
            m_ref.eps = m_c.eps
    a = b = torch.from_numpy(np.random.default_rng(1).uniform(-1, 1, (2, 3, *size)).astype(np.float32))
    first = None  # the first unit whose output differs beyond the tolerance: where the padding differs
    with torch.no_grad():
        for (name, unit_c), (_, unit_ref) in zip(arch.units(candidate.module), arch.units(ref), strict=False):
            a, b = unit_c(a), unit_ref(b)
            if first is None and not float((a - b).abs().max()) <= tol.bound(b.numpy()):
                first = name
    return PaddingEvidence(f"{size[0]}x{size[1]}", float((a - b).abs().max()), tol.bound(b.numpy()), first)


def hazard(model: Any, measured: list[float]) -> Hazard:
    """The smallest BN momentum the candidate declares, its half-life in steps, and the smallest update
    one train-mode step really applied (`measured`, from measure_momentum)."""
    from convert.layers.batchnorm import batchnorms

    momenta = [m.momentum for _, m in batchnorms(model)]
    mom = min((m for m in momenta if m is not None), default=0.0)
    hl = half_life(mom)
    return Hazard(bn_momentum=mom, half_life_steps=None if math.isinf(hl) else hl, never_moves=mom == 0.0,
                  measured_one_step=min(measured) if measured else None)
