"""How a candidate's probe points are captured, whatever its layout: forward hooks on torchvision's module
paths (a tfport port, a plain state dict), or its traced fx graph (MMdnn's emitted model, onnx2torch's;
parity.traced). The stages ask a Prober and never look at which."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from parity.capture import Sink, capture_torch
from parity.points import Point
from parity.traced import Traced, capture_traced, trace


class Prober:
    def __init__(self, model: Any, points: list[Point], traced: Traced | None, channels_last: bool) -> None:
        self.model = model
        self.points = points  # the points this candidate has, in the architecture's order
        self.traced = traced
        self.channels_last = channels_last

    @classmethod
    def of(cls, candidate, points: list[Point], arch, source_bns: list[str] | None = None) -> Prober | None:
        """The candidate's prober; None where its points cannot be found (a candidate not laid out like
        torchvision whose forward does not trace). `source_bns`: the source's BN node names in torchvision's
        order, to match a traced candidate's BNs by name (parity.traced.trace)."""
        if candidate.torchvision_layout:
            return cls(channels_last(candidate.module), points, None, candidate.input_layout == "NHWC")
        traced = trace(candidate.module, points, bool(getattr(arch, "block_output_activated", False)), source_bns)
        if traced is None:
            return None
        return cls(traced.graph, traced.points(points), traced, candidate.input_layout == "NHWC")

    def __call__(self, x_nhwc: np.ndarray, points: list[Point], batch: int, stop_early: bool = False,
                 sink: Sink | None = None) -> dict[str, np.ndarray]:
        """Every point's value on probes given NHWC (TF's layout), fed in the candidate's own layout; `sink`:
        each value handed to it as it is produced instead (parity.capture.Capture)."""
        x = x_nhwc if self.channels_last else x_nhwc.transpose(0, 3, 1, 2)
        if self.traced is None:
            return capture_torch(self.model, points, np.ascontiguousarray(x), batch, stop_early=stop_early, sink=sink)
        return capture_traced(self.traced, self.model, points, x, batch, stop_early, self.channels_last, sink)

    def in_train_mode(self) -> Prober:
        """A copy whose BatchNorms normalise with batch statistics (Dropout kept off): its running
        statistics (buffers, copied) move, the candidate's never do; its weights are the candidate's own
        (parameters, shared: nothing writes them without gradients)."""
        import torch

        model = copy.deepcopy(self.model, memo={id(p): p for p in self.model.parameters()}).train()
        for m in model.modules():
            if isinstance(m, torch.nn.Dropout):
                m.eval()
        return Prober(model, self.points, self.traced, self.channels_last)


def channels_last(model: Any) -> Any:
    """`model` (parity's own copy of the candidate) with its 4-D weights in channels-last memory order, in
    place: every feature map it computes is then laid out as TF's (NHWC, seen as NCHW), so each point is
    compared with TF's value reading both straight through (parity.metrics._memory_order: ResNet50 at 224,
    ~270 M values a run, 4.2 -> 1.6 ns each), and torch's CPU convolutions run 12-16 % faster so (ResNet50,
    MobileNetV2/V3 Large on the bench machine). The function is the same: the references built from its
    state dict share these tensors and compute the very same values; only the order in which torch writes
    them in memory changes (`scripts/bench_forward.py` runs its torch forwards channels-last too)."""
    import torch

    return model.to(memory_format=torch.channels_last)
