"""Give a Keras 3 graph back its BatchNorms: decomposed BN (Mul/AddV2 on constants) -> FusedBatchNormV3.

Keras 3 traces BatchNormalization as `x * a + b` with a, b computed from the statistics, so its frozen
graph has no statistics: tf2onnx and grappler then fold `a` into the convolution weights, MMdnn
mis-parses it, and no train-mode reference can be built. The Keras model still holds gamma, beta and
the moving statistics. Each decomposed BN whose (a, b) the Keras layer reproduces exactly is replaced
in the GraphDef by one FusedBatchNormV3 carrying them (is_training false), under the AddV2's own name
so its consumers are untouched; the rewritten graph is then checked against the original on probe
inputs before anything uses it. Every path then sees what a tf_keras graph looks like.

TF spec, side by side:
  decomposed   y = x * (gamma * rsqrt(var + eps)) + (beta - mean * gamma * rsqrt(var + eps))
  fused        FusedBatchNormV3(x, scale=gamma, offset=beta, mean, variance, epsilon, is_training=False)
"""

from __future__ import annotations

import numpy as np

from convert.model.spec import BNSpec, ModelSpec
from convert.runtime.errors import fail

# the rewritten graph must compute what the original computed (float32, different op order)
FUSE_TOL = 1e-5


def _const(name: str, value: np.ndarray):
    import tensorflow as tf

    node = tf.compat.v1.NodeDef(name=name, op="Const")
    node.attr["dtype"].type = tf.float32.as_datatype_enum
    node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(value.astype(np.float32)))
    return node


def fuse_decomposed_bn(gd, spec: ModelSpec, real: list[BNSpec], where: str):
    """A copy of `gd` where each folded BN of `spec` (named `<AddV2>#folded` by the graph reader) becomes a
    FusedBatchNormV3 with the statistics in `real` (same order). Dead Mul/Sub nodes are pruned."""
    import tensorflow as tf

    out = tf.compat.v1.GraphDef()
    out.CopyFrom(gd)
    nodes = {n.name: n for n in out.node}
    folded = [b for b in spec.bns if b.folded]
    if len(folded) != len(real):
        raise fail(f"{where}: {len(folded)} decomposed BatchNorms in the graph, {len(real)} with statistics")
    for bn, stats in zip(folded, real, strict=False):
        add = nodes.get(bn.name.split("#")[0])
        mul = next((nodes.get(i.split(":")[0]) for i in add.input if nodes.get(i.split(":")[0]) is not None
                    and nodes[i.split(":")[0]].op == "Mul"), None) if add is not None else None
        if add is None or mul is None:
            raise fail(f"{where}: cannot locate the decomposed BatchNorm '{bn.name}' in the graph")
        x = mul.input[0]
        base = add.name
        consts = [_const(f"{base}/tfport_fused/{k}", v) for k, v in
                  (("gamma", stats.gamma), ("beta", stats.beta), ("mean", stats.mean), ("variance", stats.var))]
        out.node.extend(consts)
        add.Clear()
        add.name, add.op = base, "FusedBatchNormV3"
        add.input.extend([x] + [c.name for c in consts])
        add.attr["T"].type = tf.float32.as_datatype_enum
        add.attr["U"].type = tf.float32.as_datatype_enum
        add.attr["epsilon"].f = float(stats.eps)
        add.attr["is_training"].b = False
        add.attr["data_format"].s = b"NHWC"
        add.attr["exponential_avg_factor"].f = 1.0
    consumed = {i.split(":")[0].lstrip("^") for m in out.node for i in m.input}
    outputs = [n.name for n in out.node if n.op not in ("NoOp", "Const") and n.name not in consumed]
    return tf.compat.v1.graph_util.extract_sub_graph(out, outputs)


def check_same_function(original, fused, info, where: str, x: np.ndarray) -> float:
    """Largest relative difference between the two graphs at the pooled features and logits (the output where
    the graph has neither); refuses the rewrite past FUSE_TOL. Not at a softmax: it turns the logits' float32
    rounding (1e-6) into a larger relative error of the probabilities, a difference of the head, not the fuse."""
    from convert.runners.tf import TFRunner

    names = [n for n in (info.pooled, info.logits) if n] or [info.output]
    outs = []
    for gd in (original, fused):
        runner = TFRunner(gd, info)
        try:
            outs.append([np.asarray(y, np.float64) for y in runner.run(x, names)])
        finally:
            runner.close()
    rel = max(float(np.abs(a - b).max() / max(np.abs(a).max(), 1e-30)) for a, b in zip(*outs, strict=True))
    if not rel <= FUSE_TOL:
        raise fail(f"{where}: the graph with fused BatchNorms differs from the traced one (relative {rel:.2e})")
    return rel
