"""How closely a conversion must reproduce TF, per kind of output, and why each kind differs."""

from __future__ import annotations

# float32 through ~50 layers: measured ports agree to ~2e-6; 1e-5 leaves headroom, catches any real fault
REL_TOL = 1e-5
# two paths' canonical ports (--via both) are the same torchvision model with the same weights: they agree
# to float32 rounding of the weights' own conversions
CROSS_PATH_TOL = 1e-6


def pools_single_elements(spec) -> bool:
    """The pooled features are single elements of the last feature map, carrying each element's float32
    error rather than an average's: global max pooling, a flatten (VGG16's), or any pooling of a 1x1 map
    (inputs up to 32 px; MobileNetV2's stride is 32): at 32 px such pooled features land just over REL_TOL
    where averages of 3x3 maps (96 px) are an order of magnitude inside it (tests/convert/test_path_result.py)."""
    h, w = (int(d) for d in spec.input_shape[:2])
    return spec.pool in ("max", "flatten") or (spec.pool is not None and -(-h // 32) * -(-w // 32) == 1)


def class_scores(spec) -> bool:
    """The output is a Dense head's (class scores; a regression's values), whose top-1 agreement is reported;
    pooled features and feature maps have no classes to rank (convert.model.agreement)."""
    return bool(spec.head)


def loose_output(spec) -> bool:
    """Where the output's error relative to its own maximum is not the backbone's: a head of the source's own
    (several Dense layers) sums with cancellation, so the error grows by the head's gain; a softmax/sigmoid
    turns a logit error δ into a probability error up to δ in absolute terms; global max pooling keeps single
    elements (tests/convert/test_zoo.py measures each kind); so does a feature extractor's unpooled output,
    the map itself (a 4-D one gets FEATURE_MAP_TOL from `agreement` by its shape, but the runners flatten a
    1x1 map, 32 px inputs: measured 1.3e-5 ONNX Runtime vs TF on a correct port). The pooled features and the
    logits are still held to REL_TOL; these outputs to FEATURE_MAP_TOL."""
    feature_map = spec.pool is None and not spec.head
    return len(spec.head) > 1 or pools_single_elements(spec) or feature_map or bool(
        spec.head and spec.head[-1].activation in ("softmax", "sigmoid"))


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
