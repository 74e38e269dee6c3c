"""What a conversion path yields, and what every path takes from the source rather than from its graph.

Below both the paths (`onnx_path`, `mmdnn_path`) and the pipeline, so that neither imports the other.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

# float32 through ~50 layers: measured ports agree to ~2e-6; 1e-5 leaves headroom, catches any real fault
REL_TOL = 1e-5


@dataclass
class PathResult:
    """One conversion path's canonical port, its outputs on the probes, and how well it reproduces TF."""

    via: str
    canonical: Any  # convert.torch_side.CanonicalRef
    agreements: list = field(default_factory=list)  # list[probe.Agreement]
    artifacts: dict[str, bytes] = field(default_factory=dict)  # extra files to write (name suffix -> bytes)
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)  # the canonical port's outputs (torch_side.torch_outputs)

    @property
    def ok(self) -> bool:
        return bool(self.agreements) and all(a.ok(REL_TOL) for a in self.agreements)


def with_source_semantics(path_spec, source_spec):
    """Carry what only the source knows onto a path's reading of the model: BN decay (Keras config), BN
    statistics a path's graph folded away (Keras 3; taken only where the path computes exactly what
    they compute), the input affine, the pooling, the head's activations, what was dropped.

    A conversion path sees weights; these live in Keras's layer config or around the backbone."""
    from convert.sources.keras_files import same_affine
    from convert.spec import BNSpec, DenseSpec

    src_bns = source_spec.bns
    path_bn_idx = [i for i, x in enumerate(path_spec.layers) if isinstance(x, BNSpec)]
    if len(src_bns) == len(path_bn_idx):
        for i, src in zip(path_bn_idx, src_bns):
            bn = path_spec.layers[i]
            if bn.folded and not src.folded and same_affine(bn, src):
                path_spec.layers[i] = dataclasses.replace(src, name=bn.name)
            else:
                path_spec.layers[i] = dataclasses.replace(bn, decay=src.decay)
    src_dense, path_dense = source_spec.head, [i for i, x in enumerate(path_spec.layers) if isinstance(x, DenseSpec)]
    if len(src_dense) == len(path_dense):
        for i, src in zip(path_dense, src_dense):
            path_spec.layers[i] = dataclasses.replace(path_spec.layers[i], activation=src.activation)
    path_spec.input_range = source_spec.input_range
    path_spec.preprocess = source_spec.preprocess
    path_spec.pool = source_spec.pool
    path_spec.dropped = list(source_spec.dropped)
    path_spec.trusted_code = list(source_spec.trusted_code)
    return path_spec


def pools_single_elements(spec) -> bool:
    """The pooled features are single elements of the last feature map, carrying each element's float32
    error rather than an average's: global max pooling, or any pooling of a 1x1 map (inputs up to 32 px;
    MobileNetV2's stride is 32). Measured at 32 px, alpha 0.35: pooled features agree to 1.03e-5 of their
    maximum, over REL_TOL, where at 96 px (3x3 maps averaged) they agree to ~1e-6."""
    h, w = (int(d) for d in spec.input_shape[:2])
    return spec.pool == "max" or (spec.pool is not None and -(-h // 32) * -(-w // 32) == 1)


def loose_output(spec) -> bool:
    """Where the output's error relative to its own maximum is not the backbone's: a head of the source's own
    (several Dense layers) sums with cancellation, so the error grows by the head's gain (measured 1.4e-5 for
    Dense(32, relu) -> Dense(2) on pooled features agreeing to 3e-6); a softmax/sigmoid turns a logit error δ
    into a probability error up to δ in absolute terms (measured 1.1e-5 on 1001 slim probabilities whose
    logits agree to 2e-6); global max pooling keeps single elements. The pooled features and the logits
    are still held to REL_TOL; these outputs to FEATURE_MAP_TOL."""
    return len(spec.head) > 1 or pools_single_elements(spec) or bool(spec.head and spec.head[-1].activation in
                                                                      ("softmax", "sigmoid"))


def dense_scale(spec, pooled, output: bool = False) -> float | None:
    """The size of what a single Dense head sums: max over probes of sum |W| |x| + |b| on the pooled features.

    A Dense output is a sum of terms that may cancel (a regression output dominated by its bias, a small
    logit); float32 errors scale with the terms, not with the sum. None where the head is not one Dense
    on the pooled features (there `loose_output` applies), and for the `output` where an activation follows
    the sum (a probability is not a sum of terms)."""
    import numpy as np

    if pooled is None or len(spec.head) != 1 or (output and spec.head[0].activation != "linear"):
        return None
    dense = spec.head[0]
    x = np.abs(np.asarray(pooled, np.float64).reshape(len(pooled), -1))
    if x.shape[1] != dense.weight.shape[1]:
        return None
    return float((x @ np.abs(dense.weight.astype(np.float64)).T + np.abs(dense.bias.astype(np.float64))).max())
