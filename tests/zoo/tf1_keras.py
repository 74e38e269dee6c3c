"""Write a frozen MobileNetV2 GraphDef the way a TF1-era Keras user did (graph mode, learning-phase switch).

    python tests/zoo/tf1_keras.py OUT.pb --alpha 0.35 --size 96 [--v2-control-flow]

TF1 Keras builds every BatchNormalization behind `keras_learning_phase` (a bool PlaceholderWithDefault):
with v1 control flow that is `Switch`/`Merge` around a training and an inference FusedBatchNormV3; with v2
control flow (`--v2-control-flow`) it is `If` ops whose branches are library functions. Freezing keeps
both branches because both feed the output. Standalone on purpose: no tfport import, prints nothing on
success, so the file is what a user holds rather than what our own writer would make.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.modules.setdefault("triton", None)  # type: ignore[assignment]  (same guard as convert/runtime/guard.py)


def _calibrate_bn(sess, model, rng) -> None:
    """Give every BatchNormalization non-trivial gamma/beta and moving statistics near real ones.

    Moving statistics left at the init (mean 0, var 1) let activations fade to ~1e-10 over 52 layers, so
    every input would give the same output and a test could not tell branches apart. Like
    convert/sample.py: one training-mode pass reads the batch statistics each BN sees, then the moving
    statistics are set to them, perturbed so that inference still differs from training."""
    import numpy as np
    from tf_keras.api._v1.keras import backend as K

    # by what it holds: in v1 mode the layers are BatchNormalizationV1, not tf_keras.layers.BatchNormalization
    bns = [layer for layer in model.layers if hasattr(layer, "moving_variance")]
    if not bns:
        raise SystemExit("no BatchNormalization layers found; the model would be written uncalibrated")

    def assign(var, value):  # read_value=False: the op itself, not a read that graph mode may run without it
        return var.assign(value.astype(np.float32), read_value=False)

    sess.run([op for bn in bns for op in (assign(bn.gamma, rng.uniform(0.6, 1.4, bn.gamma.shape[0])),
                                          assign(bn.beta, rng.normal(0.1, 0.25, bn.beta.shape[0])))])
    x = rng.uniform(-1, 1, (16, *model.input_shape[1:])).astype(np.float32)
    seen = sess.run([bn.input for bn in bns], {model.inputs[0]: x, K.learning_phase(): True})
    sess.run([op for bn, t in zip(bns, seen, strict=True) for op in (
        assign(bn.moving_mean, t.mean((0, 1, 2)) + rng.normal(0, 0.05, t.shape[-1])),
        assign(bn.moving_variance, t.var((0, 1, 2)) * rng.uniform(0.8, 1.25, t.shape[-1])),
    )])


def write(out: Path, *, alpha: float, size: int, v2_control_flow: bool, seed: int = 0) -> None:
    import numpy as np
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
    if v2_control_flow:
        tf.compat.v1.disable_eager_execution()  # graph mode, but tf.cond still lowers to If/StatelessIf
    else:
        tf.compat.v1.disable_v2_behavior()  # graph mode and v1 control flow: Switch/Merge
    import tf_keras
    from tf_keras.api._v1.keras import backend as K  # tf.compat.v1.keras.backend in a TF1 install

    tf.compat.v1.set_random_seed(seed)
    model = tf_keras.applications.MobileNetV2(weights=None, alpha=alpha, input_shape=(size, size, 3))
    sess = K.get_session()
    _calibrate_bn(sess, model, np.random.default_rng(seed))
    output = model.outputs[0].op.name
    frozen = tf.compat.v1.graph_util.convert_variables_to_constants(sess, sess.graph.as_graph_def(), [output])
    out.write_bytes(frozen.SerializeToString())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path, help="where to write the frozen GraphDef (.pb)")
    p.add_argument("--alpha", type=float, default=0.35, help="MobileNetV2 width multiplier")
    p.add_argument("--size", type=int, default=96, help="input height and width")
    p.add_argument("--v2-control-flow", action="store_true", help="If ops instead of Switch/Merge")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    write(args.out, alpha=args.alpha, size=args.size, v2_control_flow=args.v2_control_flow, seed=args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
