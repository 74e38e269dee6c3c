"""Sample TF models in every form users bring, generated offline from Keras's own definitions.

Weights are seeded; BN statistics are made realistic rather than left at (0, 1): gamma and beta are
drawn away from 1 and 0, and the moving mean/variance are the per-channel statistics a train-mode
pass over seeded inputs actually produces (with a little noise), so every BN layer does real work
and a port that drops or mis-applies one shows up numerically.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from convert import arch as architectures
from convert.arch.mobilenet_v2 import ALPHAS
from convert.model.options import FORMS, MOBILENET_V2_ONLY_FORMS, SAMPLE_ARCHS
from convert.model.probe import probe_inputs
from convert.runtime.errors import fail
from convert.sources.keras_files import flat_layers


@dataclass(frozen=True)
class SampleSpec:
    alpha: float = 1.0
    size: tuple[int, int] = (224, 224)  # H, W
    classes: int = 1000
    seed: int = 0
    transfer_classes: int = 5
    arch: str = "mobilenet_v2"  # convert.arch; the slim and TF1 forms are MobileNetV2's own

    def __post_init__(self) -> None:
        if self.arch not in SAMPLE_ARCHS:
            raise fail(f"no sample for architecture {self.arch!r}; known: {', '.join(SAMPLE_ARCHS)}")
        if self.arch != "mobilenet_v2" and self.alpha != 1.0:
            raise fail(f"--alpha is MobileNetV2's width; {self.arch} has none")
        if self.alpha not in ALPHAS:
            raise fail(f"alpha {self.alpha} is not one of {ALPHAS}")
        if min(self.size) < 32:
            raise fail(f"input size {self.size[0]}x{self.size[1]} is below Keras Applications' minimum of 32")

    @property
    def variant(self) -> dict:
        return {"alpha": self.alpha} if self.arch == "mobilenet_v2" else {}

    @property
    def tag(self) -> str:
        h, w = self.size
        width = f"a{self.alpha:g}_" if self.arch == "mobilenet_v2" else ""
        return f"{width}{h}" + ("" if h == w else f"x{w}")


def _realistic_bn(model, seed: int, value_range: tuple[float, float] = (-1.0, 1.0)) -> None:
    """Give every BatchNormalization non-trivial gamma/beta and the moving statistics of real data (inputs
    in `value_range`: what the model is fed; MobileNetV3 rescales 0..255 pixels itself)."""
    import tf_keras

    rng = np.random.default_rng(seed + 1)
    bias_rng = np.random.default_rng(seed + 2)  # its own stream: MobileNetV2's samples (no conv bias) unchanged
    for conv in (layer for layer in flat_layers(model) if isinstance(layer, tf_keras.layers.Conv2D)
                 and getattr(layer, "use_bias", False)):
        # ResNet50's convs carry a bias before each BN (Keras's zeros would hide a port that drops it)
        conv.bias.assign(bias_rng.normal(0, 0.2, conv.bias.shape[0]).astype(np.float32))
    for dense in (layer for layer in flat_layers(model) if isinstance(layer, tf_keras.layers.Dense)):
        dense.bias.assign(rng.normal(0, 0.1, dense.bias.shape[0]).astype(np.float32))  # not Keras's zeros
    bns = [layer for layer in flat_layers(model) if isinstance(layer, tf_keras.layers.BatchNormalization)]
    for bn in bns:
        c = bn.gamma.shape[0]
        bn.gamma.assign(rng.uniform(0.6, 1.4, c).astype(np.float32))
        bn.beta.assign(rng.normal(0.1, 0.25, c).astype(np.float32))
    # One train-mode pass with momentum 0 sets each moving stat to the batch statistic it would see.
    saved = [bn.momentum for bn in bns]
    for bn in bns:
        bn.momentum = 0.0
    h, w, _ = model.input_shape[1:]
    x = probe_inputs(16, (h, w), value_range, seed=rng)
    model(x, training=True)
    for bn, m in zip(bns, saved, strict=False):
        bn.momentum = m
        c = bn.gamma.shape[0]
        bn.moving_mean.assign(bn.moving_mean.numpy() + rng.normal(0, 0.05, c).astype(np.float32))
        bn.moving_variance.assign(bn.moving_variance.numpy() * rng.uniform(0.8, 1.25, c).astype(np.float32))


def keras2_model(spec: SampleSpec):
    """The canonical sample: tf_keras.applications.MobileNetV2 with seeded, calibrated weights."""
    import tf_keras

    tf_keras.utils.set_random_seed(spec.seed)
    h, w = spec.size
    family = architectures.get(spec.arch)
    model = family.keras_application(tf_keras, spec.variant, input_shape=(h, w, 3), classes=spec.classes)
    # the range it is fed: its Keras application's own input where that preprocesses (MobileNetV3: 0..255)
    _realistic_bn(model, spec.seed, architectures.structure(family).keras_input_range)
    return model


def transfer_model(spec: SampleSpec):
    """How people save a fine-tuned model: the base nested inside, then the architecture's usual head
    (`transfer_head`: GAP, or VGG16's Flatten -> Dense(units, relu)), Dropout, Dense(softmax)."""
    import tf_keras

    tf_keras.utils.set_random_seed(spec.seed + 7)
    h, w = spec.size
    family = architectures.get(spec.arch)
    shape = architectures.structure(family)
    pooling, units = shape.transfer_head
    base = family.keras_application(tf_keras, spec.variant, input_shape=(h, w, 3), include_top=False)
    _realistic_bn(base, spec.seed, shape.keras_input_range)
    base.trainable = False
    inp = tf_keras.Input((h, w, 3), name="image")
    x = base(inp, training=False)
    if pooling == "flatten":
        x = tf_keras.layers.Flatten(name="flatten")(x)
    else:
        x = tf_keras.layers.GlobalAveragePooling2D(name="gap")(x)
    if units:
        x = tf_keras.layers.Dense(units, activation="relu", name="fc")(x)
    x = tf_keras.layers.Dropout(0.3, name="dropout")(x)
    out = tf_keras.layers.Dense(spec.transfer_classes, activation="softmax", name="head")(x)
    model = tf_keras.Model(inp, out, name="transfer")
    rng = np.random.default_rng(spec.seed + 3)
    head = model.get_layer("head")
    head.bias.assign(rng.normal(0, 0.1, spec.transfer_classes).astype(np.float32))
    if units:  # after the classifier's draw: the GAP samples' heads stay as they were
        model.get_layer("fc").bias.assign(rng.normal(0, 0.1, units).astype(np.float32))
    return model


def keras3_model(k2, arch: str = "mobilenet_v2"):
    """The same network in Keras 3 (keras.applications), weights copied layer by layer."""
    import keras

    h, w, _ = k2.input_shape[1:]
    family = architectures.get(arch)
    variant = family.keras_variant(flat_layers(k2))
    m = family.keras_application(keras, variant, input_shape=(h, w, 3), classes=k2.output_shape[-1])
    m.set_weights(k2.get_weights())
    return m


def slim_graph_def(k2):
    """A TF-slim-style frozen GraphDef (like mobilenet_v2_1.0_224_frozen.pb) with k2's weights.

    Built from raw TF ops under slim's scope names: Conv2D/DepthwiseConv2dNative with SAME padding,
    FusedBatchNormV3, Relu6, AvgPool + 1x1 conv logits, Squeeze, Softmax.
    """
    import tensorflow as tf
    layers = [layer for layer in flat_layers(k2)]
    # read every weight eagerly: inside the graph context variables cannot be read
    weights = {layer.name: layer.get_weights() for layer in layers}
    eps = {layer.name: getattr(layer, "epsilon", None) for layer in layers}
    strides = {layer.name: getattr(layer, "strides", (1, 1))[0] for layer in layers}
    h, w, _ = k2.input_shape[1:]
    g = tf.Graph()
    with g.as_default():
        x = tf.compat.v1.placeholder(tf.float32, (1, h, w, 3), name="input")

        def bn(x, name, scope):
            gamma, beta, mean, var = weights[name]
            with tf.name_scope(scope):
                y, *_ = tf.compat.v1.nn.fused_batch_norm(
                    x, tf.constant(gamma, name="gamma"), tf.constant(beta, name="beta"),
                    mean=tf.constant(mean, name="moving_mean"), variance=tf.constant(var, name="moving_variance"),
                    epsilon=eps[name], is_training=False, name="FusedBatchNormV3",
                )
            return y

        def conv(x, name, stride=1, depthwise=False):
            kernel = weights[name][0]
            # slim names: .../Conv2D + .../weights, or .../depthwise + .../depthwise_weights
            if depthwise:
                k = tf.constant(kernel, name="depthwise_weights")
                return tf.compat.v1.nn.depthwise_conv2d_native(x, k, [1, stride, stride, 1], "SAME", name="depthwise")
            k = tf.constant(kernel, name="weights")
            return tf.nn.conv2d(x, k, [1, stride, stride, 1], "SAME", name="Conv2D")

        with tf.name_scope("MobilenetV2"):
            with tf.name_scope("Conv"):
                y = conv(x, "Conv1", 2)
                y = tf.nn.relu6(bn(y, "bn_Conv1", "BatchNorm"), name="Relu6")
            block_names = [layer.name[: -len("_project")] for layer in layers if layer.name.endswith("_project")]
            for i, prefix in enumerate(block_names):
                scope = "expanded_conv" if i == 0 else f"expanded_conv_{i}"
                stride = strides[prefix + "_depthwise"]
                inp = y
                with tf.name_scope(scope):
                    if i > 0:
                        with tf.name_scope("expand"):
                            y = conv(y, prefix + "_expand")
                            y = tf.nn.relu6(bn(y, prefix + "_expand_BN", "BatchNorm"), name="Relu6")
                    with tf.name_scope("depthwise"):
                        y = conv(y, prefix + "_depthwise", stride, depthwise=True)
                        y = tf.nn.relu6(bn(y, prefix + "_depthwise_BN", "BatchNorm"), name="Relu6")
                    with tf.name_scope("project"):
                        y = conv(y, prefix + "_project")
                        y = bn(y, prefix + "_project_BN", "BatchNorm")
                    if stride == 1 and inp.shape[-1] == y.shape[-1]:
                        y = tf.add(y, inp, name="add")
            with tf.name_scope("Conv_1"):
                y = conv(y, "Conv_1")
                y = tf.nn.relu6(bn(y, "Conv_1_bn", "BatchNorm"), name="Relu6")
            with tf.name_scope("Logits"):
                y = tf.nn.avg_pool2d(y, [1, y.shape[1], y.shape[2], 1], [1, 1, 1, 1], "VALID", name="AvgPool")
                kernel, bias = weights["predictions"]
                with tf.name_scope("Conv2d_1c_1x1"):
                    y = tf.nn.conv2d(
                        y, tf.constant(kernel[None, None], name="weights"), [1, 1, 1, 1], "SAME", name="Conv2D"
                    )
                    y = tf.nn.bias_add(y, tf.constant(bias, name="biases"), name="BiasAdd")
                y = tf.squeeze(y, [1, 2], name="SpatialSqueeze")
        with tf.name_scope("MobilenetV2/Predictions"):
            y = tf.nn.softmax(y, name="Reshape_1")
    return g.as_graph_def()


def frozen_graph_def(model):
    """Freeze a Keras model (see convert.sources.keras_files.frozen_graph_def)."""
    from convert.sources.keras_files import frozen_graph_def as freeze

    return freeze(model)


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _atomic_save(path: Path, save: Callable[[Path], None]) -> None:
    """Save through a temporary name beside the target, then rename: whole or absent."""
    import shutil

    tmp = path.with_name(f".tmp{os.getpid()}_{path.name}")
    try:
        save(tmp)
        if path.is_dir():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()


def write_samples(out_dir: str | Path, spec: SampleSpec, forms: tuple[str, ...] = FORMS,
                  progress: Callable[[str], None] = lambda s: None, k2=None) -> dict[str, Path]:
    """Write each requested form into out_dir; returns form -> path. `k2` reuses a built keras2_model(spec)."""
    unknown = set(forms) - set(FORMS)
    if unknown:
        raise fail(f"unknown sample form(s) {sorted(unknown)}; known: {', '.join(FORMS)}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise fail(f"{out}: exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    only = [f for f in forms if f in MOBILENET_V2_ONLY_FORMS] if spec.arch != "mobilenet_v2" else []
    if only:
        raise fail(f"sample form(s) {', '.join(only)} exist for MobileNetV2 only, not {spec.arch}")
    k2 = keras2_model(spec) if k2 is None else k2
    stem = f"{spec.arch}_{spec.tag}"
    for form in forms:
        progress(form)
        if form == "slim_pb":
            p = out / f"{stem}_slim_frozen.pb"
            _atomic_write_bytes(p, slim_graph_def(k2).SerializeToString())
        elif form == "keras2_h5":
            p = out / f"{stem}_keras2.h5"
            _atomic_save(p, lambda t: k2.save(str(t) + ".h5") or os.replace(str(t) + ".h5", t))
        elif form == "keras2_pb":
            p = out / f"{stem}_keras2_frozen.pb"
            _atomic_write_bytes(p, frozen_graph_def(k2).SerializeToString())
        elif form == "keras3":
            p = out / f"{stem}_keras3.keras"
            m3 = keras3_model(k2, spec.arch)
            _atomic_save(p, lambda t, m3=m3: m3.save(str(t) + ".keras") or os.replace(str(t) + ".keras", t))
        elif form == "savedmodel":
            p = out / f"{stem}_savedmodel"
            _atomic_save(p, lambda t: k2.save(str(t), save_format="tf"))
        elif form == "transfer_h5":
            p = out / f"{stem}_transfer.h5"
            tm = transfer_model(spec)
            _atomic_save(p, lambda t, tm=tm: tm.save(str(t) + ".h5") or os.replace(str(t) + ".h5", t))
        paths[form] = p
    return paths
