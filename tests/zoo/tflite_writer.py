"""TFLite MobileNetV2 files written the way users get them: the real TFLiteConverter over a seeded Keras model.

BN is given statistics away from the identity (gamma, beta, moving mean and variance all seeded and
non-trivial) so that the converter's folding of BN into conv weights and bias does real work, and a
reader that drops or mis-applies the folded bias shows up numerically.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

# the ranges every BatchNormalization's parameters are drawn from (uniform low/high, normal mean/std)
BN_GAMMA = (0.6, 1.4)
BN_BETA = (0.1, 0.25)
BN_MEAN = (0.0, 0.3)
BN_VAR = (0.5, 2.0)


@dataclass(frozen=True)
class WrittenTFLite:
    path: Path
    model: object  # the tf_keras model the file was converted from
    outputs: np.ndarray | None  # the Keras model's outputs on the given inputs, None without inputs


def keras_mobilenet_v2(*, alpha: float = 0.35, size: int = 96, classes: int = 1000, seed: int = 0):
    """tf_keras.applications.MobileNetV2 with seeded weights and non-trivial BN parameters and statistics."""
    import tf_keras

    tf_keras.utils.set_random_seed(seed)
    model = tf_keras.applications.MobileNetV2(input_shape=(size, size, 3), alpha=alpha, weights=None, classes=classes)
    rng = np.random.default_rng(seed + 1)
    for layer in model.layers:
        if isinstance(layer, tf_keras.layers.BatchNormalization):
            c = layer.gamma.shape[0]
            layer.gamma.assign(rng.uniform(*BN_GAMMA, c).astype(np.float32))
            layer.beta.assign(rng.normal(*BN_BETA, c).astype(np.float32))
            layer.moving_mean.assign(rng.normal(*BN_MEAN, c).astype(np.float32))
            layer.moving_variance.assign(rng.uniform(*BN_VAR, c).astype(np.float32))
        elif isinstance(layer, tf_keras.layers.Dense):
            layer.bias.assign(rng.normal(0, 0.1, layer.bias.shape[0]).astype(np.float32))  # not Keras's zeros
    return model


def sample_images(n: int, size: int, seed: int = 0) -> np.ndarray:
    """NHWC float32 images in [-1, 1] (MobileNetV2's input range) with spatial structure."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(-1, 1, (n, max(size // 8, 2), max(size // 8, 2), 3)).astype(np.float32)
    idx = np.linspace(0, coarse.shape[1] - 1, size).round().astype(int)
    img = coarse[:, idx][:, :, idx] + rng.normal(0, 0.1, (n, size, size, 3)).astype(np.float32)
    return np.clip(img, -1, 1).astype(np.float32)


def tflite_bytes(model, *, quantize: bool = False, seed: int = 0, keras_route: bool = False) -> bytes:
    """The converter users run; quantize=True is full-integer int8 (int8 input and output too).

    The converter is given the model's inference forward as a concrete function whose variables a plain
    tf.Module holds (tests/zoo/keras_models.variables_module): the bytes `from_keras_model` writes
    (tests/convert/test_tflite_source.py, --exhaustive, compares them), without its first step, saving the whole
    Keras model as a SavedModel (MobileNetV2 0.35 at 96 px: 7 s against 29 s). keras_route=True takes
    `from_keras_model` itself."""
    import tensorflow as tf

    if keras_route:
        converter = tf.lite.TFLiteConverter.from_keras_model(model)
    else:
        from tests.zoo.keras_models import variables_module

        (inp,) = model.inputs
        spec = tf.TensorSpec((None, *model.input_shape[1:]), tf.float32, name=inp.name.split(":")[0])
        (name,) = model.output_names  # the signature's output key, as from_keras_model names it

        def run(x):
            return {name: model(x, training=False)}

        forward = tf.function(run, autograph=False).get_concrete_function(spec)
        converter = tf.lite.TFLiteConverter.from_concrete_functions([forward], variables_module(model))
    if quantize:
        size = model.input_shape[1]

        def representative():
            for img in sample_images(4, size, seed + 2):
                yield [img[None]]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    return converter.convert()


def write_tflite(path: str | Path, alpha: float = 0.35, size: int = 96, quantize: bool = False, seed: int = 0, *,
                 classes: int = 1000, model=None, inputs: np.ndarray | None = None) -> WrittenTFLite:
    """Write a seeded MobileNetV2 as a .tflite (float32, or int8 with quantize=True).

    `model` reuses an already built Keras model (one build serves the float and the quantized file);
    with `inputs`, the result carries the Keras model's outputs on them (inference mode)."""
    if model is None:
        model = keras_mobilenet_v2(alpha=alpha, size=size, classes=classes, seed=seed)
    path = Path(path)
    path.write_bytes(tflite_bytes(model, quantize=quantize, seed=seed))
    outputs = None if inputs is None else np.asarray(model(inputs, training=False))
    return WrittenTFLite(path, model, outputs)
