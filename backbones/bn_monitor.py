"""Under --bn train: how far validation's BatchNorm statistics are from what training normalised with.

In train mode every backbone BN layer normalises a batch with that batch's own mean and variance; the
head learns on features normalised that way. Validation (eval mode) normalises with the running
statistics instead, which follow the batches only as fast as the momentum lets them (momentum 0:
never — what MMdnn emits). The monitor hooks each BN layer during an epoch's training passes,
averages the batch means and variances it normalised with, and at the end of the epoch compares them
with the running statistics, per channel:

    shift  = (mean of batch means - running mean) / sqrt(running var + eps)       (in running sigmas)
    scale  = log(mean of batch vars / running var)                               (0 when equal)

A layer's figure is the root mean square over its channels (one dead channel's noise does not decide
it); the epoch's is the worst layer's, named. With momentum 0 the running statistics never move, so on
data unlike the source's the first epoch already shows the drift; with momentum m each batch closes the
gap by the factor 1 - m, so at 0.1 a few dozen batches bring it close to zero.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from backbones.bn import bn_layers

# The thresholds sit between the two cases the monitor must tell apart: running statistics that cannot
# follow (momentum 0 or 0.001 on data unlike the source's) and ones that do (momentum 0.1 after a few dozen
# batches). tests/backbones/test_bn_monitor.py measures both on the calibrated random-init MobileNetV2
# (momentum 0 past them, 0.1 under half of them); README "BN monitor" gives the real pretrained port's figures.
SHIFT_WARN = 0.3  # RMS over a layer's channels of the mean shift, in running sigmas
SCALE_WARN = math.log(3.0)  # RMS over a layer's channels of log(batch var / running var): variances 3x apart


@dataclass(frozen=True)
class BNDrift:
    shift: float  # worst layer's RMS mean shift over its channels, in running sigmas
    scale: float  # worst layer's RMS of log(batch var / running var)
    layer: str  # the layer with the worst shift (or scale, when it is that which is out of bounds)

    @property
    def alarming(self) -> bool:
        return self.shift > SHIFT_WARN or self.scale > SCALE_WARN

    def describe(self) -> str:
        return (f"{self.layer}: validation normalises with statistics {self.shift:.2f}σ (RMS over channels) from "
                f"what the head trained on; variances {math.exp(self.scale):.2g}x apart")


def _names(root: nn.Module) -> dict[nn.Module, str]:
    """BN layer -> a readable name: relative to the backbone's main stack (torchvision's `features`)."""
    stack = next((m for m in root.modules() if isinstance(m, nn.Sequential) and len(m) >= 8), None)
    prefix = "features." if stack is not None else ""
    base = stack if stack is not None else root
    names = {m: prefix + n for n, m in base.named_modules() if n}
    return {m: names.get(m, n) for n, m in root.named_modules()}


class BNMonitor:
    """Hooks on every BN layer of `backbone`, collecting only while the layers are in train mode."""

    def __init__(self, backbone: nn.Module) -> None:
        self.layers = bn_layers(backbone)
        names = _names(backbone)
        self.names = [names[m] for m in self.layers]
        self._sums: list[list] = [[None, None, 0] for _ in self.layers]
        self._hooks = [m.register_forward_pre_hook(self._collector(i)) for i, m in enumerate(self.layers)]

    def _collector(self, i: int):
        acc = self._sums[i]

        def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
            if not module.training:
                return
            with torch.no_grad():
                x = inputs[0].detach()
                dims = [d for d in range(x.ndim) if d != 1]
                mean = x.mean(dim=dims, dtype=torch.float64)
                var = x.double().var(dim=dims, unbiased=False)
            acc[0] = mean if acc[0] is None else acc[0] + mean
            acc[1] = var if acc[1] is None else acc[1] + var
            acc[2] += 1

        return hook

    def reset(self) -> None:
        for acc in self._sums:
            acc[:] = [None, None, 0]

    def drift(self) -> BNDrift | None:
        """The epoch's figures against the running statistics as they are now; None if nothing ran."""
        worst_shift, worst_scale, layer_shift, layer_scale = 0.0, 0.0, "", ""
        seen = False
        for name, m, (s_mean, s_var, n) in zip(self.names, self.layers, self._sums, strict=True):
            if not n or m.running_mean is None:
                continue
            seen = True
            rv = m.running_var.double() + m.eps
            shift = float(((s_mean / n - m.running_mean.double()) / rv.sqrt()).square().mean().sqrt())
            scale = float(((s_var / n + m.eps) / rv).log().square().mean().sqrt())
            if shift > worst_shift or not layer_shift:
                worst_shift, layer_shift = shift, name
            if scale > worst_scale or not layer_scale:
                worst_scale, layer_scale = scale, name
        if not seen:
            return None
        layer = layer_scale if worst_shift <= SHIFT_WARN and worst_scale > SCALE_WARN else layer_shift
        return BNDrift(worst_shift, worst_scale, layer)

    def close(self) -> None:
        for h in self._hooks:
            h.remove()
        self._hooks.clear()
