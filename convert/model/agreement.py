"""The error measure every conversion summary reports: how closely a port reproduces its reference."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Agreement:
    """How closely `port` reproduces `ref` on the probe inputs."""

    what: str
    max_abs: float
    rel: float  # max |port - ref| / max |ref|
    top1_agree: float | None = None  # fraction of probes with the same argmax (class scores only): reported
    tol: float | None = None  # its own tolerance where the caller's does not fit (feature maps)
    # False: measured and reported, but the port does not stand or fall by it (MMdnn's own emitted model where
    # its known flatten bug applies; the canonical port from its IR is held to the tolerance regardless)
    gating: bool = True

    def ok(self, tol: float) -> bool:
        """Within the tolerance. Top-1 is reported, not gated: where the port's argmax differs from the
        reference's, the reference's lead over the port's choice is at most 2 max |Δ| (ref[a] - ref[b] =
        (ref[a] - port[a]) + (port[a] - port[b]) + (port[b] - ref[b]), the middle term <= 0), so within the
        tolerance a changed top-1 is a tie the tolerance cannot decide. Gating on it refused a correct port
        by chance (stop 39's CI: a feature extractor's pooled features at rel 3.05e-6, whose argmax, over
        features rather than classes, had changed)."""
        return self.rel <= (self.tol or tol)


# An unpooled feature map — or its maximum (global max pooling) — keeps every element's float32 error,
# which average pooling averages away: against the map's maximum, correct ports measure up to ~1.5e-5
# (ONNX Runtime) after 52 layers
FEATURE_MAP_TOL = 1e-4


def agreement(what: str, port: np.ndarray, ref: np.ndarray, logits: bool = False, elementwise: bool = False,
              scale: float | None = None) -> Agreement:
    """`elementwise`: the tensor carries single elements of a feature map (max pooling) rather than averages,
    or a head of the source's own has summed them with cancellation: FEATURE_MAP_TOL applies. `scale`: the
    size of what was summed into `ref` (a Dense layer's sum of |w·x| + |b|), where that exceeds |ref|."""
    feature_map = np.ndim(ref) == 4
    tol = FEATURE_MAP_TOL if feature_map or elementwise else None
    if not np.size(ref):  # nothing compared is no agreement
        return Agreement(what, float("inf"), float("inf"), 0.0 if logits else None, tol)
    port = np.asarray(port, np.float64).reshape(len(port), -1)
    ref = np.asarray(ref, np.float64).reshape(len(ref), -1)
    if port.shape != ref.shape:
        return Agreement(what, float("inf"), float("inf"), 0.0 if logits else None, tol)
    diff = np.abs(port - ref)
    max_abs = float(diff.max()) if diff.size else 0.0
    scale = max(float(np.abs(ref).max()) if ref.size else 0.0, scale or 0.0) or 1.0
    top1 = float(np.mean(port.argmax(1) == ref.argmax(1))) if logits and not feature_map else None
    return Agreement(what, max_abs, max_abs / scale, top1, tol)
