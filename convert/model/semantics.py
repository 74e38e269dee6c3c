"""What every path takes from the source rather than from its own graph: BN decay, folded statistics,
how each conv pads (TF SAME or a constant pad) and whether the input size is open, the input affine,
the pooling, the head's activations.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from convert.model.spec import BNSpec, ConvSpec, DenseSpec

# relative agreement between a Keras BN layer's statistics and the scale/offset the graph folded them into
BN_MATCH_TOL = 1e-5


def with_source_semantics(path_spec, source_spec):
    """Carry what only the source knows onto a path's reading of the model: BN decay (Keras config), BN
    statistics a path's graph folded away (Keras 3; taken only where the path computes exactly what
    they compute), the input affine, the pooling, the head's activations, what was dropped.

    A conversion path sees weights; these live in Keras's layer config or around the backbone."""
    src_bns = source_spec.bns
    path_bn_idx = [i for i, x in enumerate(path_spec.layers) if isinstance(x, BNSpec)]
    if len(src_bns) == len(path_bn_idx):
        for i, src in zip(path_bn_idx, src_bns, strict=False):
            bn = path_spec.layers[i]
            if bn.folded and not src.folded and same_affine(bn, src):
                path_spec.layers[i] = dataclasses.replace(src, name=bn.name)
            else:
                path_spec.layers[i] = dataclasses.replace(bn, decay=src.decay)
    # how each conv pads is the source's: a path's graph may write TF SAME and an explicit constant pad
    # alike at the converted size (ONNX pads), which differ at every size of the other parity
    src_convs, path_conv_idx = source_spec.convs, [i for i, x in enumerate(path_spec.layers) if isinstance(x, ConvSpec)]
    if len(src_convs) == len(path_conv_idx):
        for i, src in zip(path_conv_idx, src_convs, strict=True):
            path_spec.layers[i] = dataclasses.replace(path_spec.layers[i], same=src.same)
    src_dense, path_dense = source_spec.head, [i for i, x in enumerate(path_spec.layers) if isinstance(x, DenseSpec)]
    if len(src_dense) == len(path_dense):
        for i, src in zip(path_dense, src_dense, strict=False):
            path_spec.layers[i] = dataclasses.replace(path_spec.layers[i], activation=src.activation)
    path_spec.arch = source_spec.arch
    path_spec.input_range = source_spec.input_range
    path_spec.preprocess = source_spec.preprocess
    path_spec.pool = source_spec.pool
    path_spec.dropped = list(source_spec.dropped)
    path_spec.trusted_code = list(source_spec.trusted_code)
    path_spec.size_open = source_spec.size_open
    return path_spec


def same_affine(folded: BNSpec, real: BNSpec) -> bool:
    """Does `real` (gamma, beta, mean, var, eps) compute what the graph's folded y = x * a + b computes?"""
    a = real.gamma.astype(np.float64) / np.sqrt(real.var.astype(np.float64) + real.eps)
    b = real.beta - real.mean * a
    fa = folded.gamma.astype(np.float64) / np.sqrt(folded.var.astype(np.float64) + folded.eps)
    fb = folded.beta.astype(np.float64)
    if a.shape != fa.shape:
        return False
    return bool(np.abs(a - fa).max() <= BN_MATCH_TOL * max(np.abs(a).max(), 1e-12)
                and np.abs(b - fb).max() <= BN_MATCH_TOL * max(np.abs(b).max(), 1e-12) + 1e-6)
