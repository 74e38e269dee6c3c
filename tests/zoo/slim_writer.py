"""Write a TF-slim MobileNetV2 frozen graph the way the slim model zoo's files were made (run as a script:
graph mode is process-global).

    python tests/zoo/slim_writer.py OUT.pb [--alpha 0.35] [--size 96] [--bn-v1]

Built with tf_slim's own layers (`slim.conv2d`, `slim.separable_conv2d(num_outputs=None)` for the
depthwise convs, `slim.batch_norm` in inference mode, ReLU6, SAME padding) under slim's scope names
(`MobilenetV2/expanded_conv_N/...`), a batch-1 input placeholder, 1001 classes (slim's background class
first) through AvgPool + a 1x1 conv, then `tf.compat.v1.graph_util.convert_variables_to_constants`.
Weights and BN statistics are seeded and non-trivial. `--bn-v1` writes the BN nodes as the original
`FusedBatchNorm` (v1) op, as files frozen with TF 1.x are (TF 2 emits FusedBatchNormV3).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# inverted residual table (t, c, n, s), as in the MobileNetV2 paper and slim's mobilenet_v2.V2_DEF
BLOCKS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]


def _divisible(v: float, d: int = 8) -> int:
    new_v = max(d, int(v + d / 2) // d * d)
    return new_v + d if new_v < 0.9 * v else new_v


def _tf_slim():
    """tf_slim 1.1.0 (its last release, 2020) on TF 2.21: it still names `ops.Tensor`, which TF moved to
    `tf.Tensor`. One alias, nothing else changed."""
    import tensorflow as tf
    from tensorflow.python.framework import ops

    if not hasattr(ops, "Tensor"):
        ops.Tensor = tf.Tensor
    import tf_slim

    return tf_slim


def build(alpha: float, size: int):
    import tensorflow as tf

    slim = _tf_slim()

    x = tf.compat.v1.placeholder(tf.float32, (1, size, size, 3), name="input")
    # updates_collections=None: slim's own fused path (nn.fused_batch_norm), as its inference graphs have it
    bn = {"is_training": False, "fused": True, "decay": 0.997, "epsilon": 0.001, "center": True, "scale": True,
          "updates_collections": None}
    with tf.compat.v1.variable_scope("MobilenetV2"), \
            slim.arg_scope([slim.conv2d, slim.separable_conv2d], normalizer_fn=slim.batch_norm, normalizer_params=bn,
                           activation_fn=tf.nn.relu6, padding="SAME"):
        net = slim.conv2d(x, _divisible(32 * alpha), 3, stride=2, scope="Conv")
        i = 0
        for t, c, n, s in BLOCKS:
            for j in range(n):
                scope = "expanded_conv" if i == 0 else f"expanded_conv_{i}"
                with tf.compat.v1.variable_scope(scope):
                    inp = net
                    if t != 1:
                        net = slim.conv2d(net, int(inp.shape[-1]) * t, 1, scope="expand")
                    net = slim.separable_conv2d(net, None, 3, depth_multiplier=1, stride=s if j == 0 else 1,
                                                scope="depthwise")
                    net = slim.conv2d(net, _divisible(c * alpha), 1, activation_fn=None, scope="project")
                    if (s if j == 0 else 1) == 1 and inp.shape[-1] == net.shape[-1]:
                        net = tf.add(net, inp, name="add")
                i += 1
        net = slim.conv2d(net, _divisible(1280 * max(alpha, 1.0)), 1, scope="Conv_1")
        with tf.compat.v1.variable_scope("Logits"):
            net = slim.avg_pool2d(net, net.shape[1:3], padding="VALID", scope="AvgPool")
            net = slim.conv2d(net, 1001, 1, activation_fn=None, normalizer_fn=None, scope="Conv2d_1c_1x1")
            logits = tf.squeeze(net, [1, 2], name="SpatialSqueeze")
        with tf.compat.v1.name_scope("Predictions"):
            probs = tf.nn.softmax(logits, name="Reshape_1")
    return x, probs


def _seed_statistics(sess, seed: int) -> None:
    """Seeded weights, BN gamma/beta away from 1/0 and moving statistics away from 0/1."""
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    for v in tf.compat.v1.global_variables():
        shape = v.shape.as_list()
        name = v.op.name
        if name.endswith("moving_mean"):
            value = rng.normal(0, 0.3, shape)
        elif name.endswith("moving_variance"):
            value = rng.uniform(0.5, 2.0, shape)
        elif name.endswith("gamma"):
            value = rng.uniform(0.6, 1.4, shape)
        elif name.endswith(("beta", "biases")):
            value = rng.normal(0.1, 0.25, shape)
        else:  # conv kernels: He-scaled, so activations neither vanish nor explode through 52 layers
            fan_in = int(np.prod(shape[:-1])) if len(shape) == 4 and shape[-1] != 1 else int(np.prod(shape[:2]))
            value = rng.normal(0, np.sqrt(2.0 / max(fan_in, 1)), shape)
        v.load(value.astype(np.float32), sess)


def _as_v1(gd):
    """FusedBatchNormV3 -> FusedBatchNorm: what TF 1.x froze (same inputs; no U or exponential_avg_factor)."""
    for n in gd.node:
        if n.op == "FusedBatchNormV3":
            n.op = "FusedBatchNorm"
            for attr in ("U", "exponential_avg_factor"):
                if attr in n.attr:
                    del n.attr[attr]
    return gd


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--alpha", type=float, default=0.35)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--bn-v1", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    import tensorflow as tf

    tf.compat.v1.disable_eager_execution()
    graph = tf.Graph()
    with graph.as_default():
        _, probs = build(args.alpha, args.size)
        with tf.compat.v1.Session(graph=graph) as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            _seed_statistics(sess, args.seed)
            gd = tf.compat.v1.graph_util.convert_variables_to_constants(sess, graph.as_graph_def(), [probs.op.name])
    if args.bn_v1:
        gd = _as_v1(gd)
    args.out.write_bytes(gd.SerializeToString())
    return 0


if __name__ == "__main__":
    sys.exit(main())
