"""Weights-only Keras files (`~/.keras/models/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224.h5`,
`save_weights`): rebuilt from Keras's own definition, then converted as a Keras model file is.

The file holds arrays by layer name and no model config. Its layer names and weight shapes say which
registered architecture it is, which variant, with or without the classifier and how many classes
(`convert.arch`: never the file name). The reference TF model is Keras Applications' own definition of
that (weights=None, the input size from `--input-size`, 224 by default: these weights do not depend on
it) with the file's arrays set layer by layer, each shape checked; from there it is an ordinary Keras
model: frozen, BN statistics kept (Keras's BatchNormalization layers hold them), certified eval + train.

It is rebuilt with tf_keras for both layouts: the arrays are the same whichever Keras wrote them, and
tf_keras traces BatchNorm fused (Keras 3 would trace it decomposed, to be fused back), which MMdnn reads.
"""

from __future__ import annotations

from pathlib import Path

from convert.runtime.errors import fail
from convert.sources.base import LoadOptions, Source, register
from convert.sources.keras_config import ConfigScan
from convert.sources.weights_h5 import KERAS3, LEGACY, WeightsFile, layout_of, read_weights

DEFAULT_INPUT_SIZE = (224, 224)  # Keras Applications' own default; the weights fit any size >= 32
# the Source's form (metadata `source.form`, the report's title) per layout
FORMS = {LEGACY: "keras_weights_h5", KERAS3: "keras3_weights_h5"}
LAYOUTS = {LEGACY: "legacy Keras HDF5 weights (layer_names / weight_names: Keras Applications' download, "
                   "tf_keras save_weights)",
           KERAS3: "Keras 3 save_weights (.weights.h5)"}


def set_file_weights(model, weights: WeightsFile, classifier: dict[str, str], where: str) -> None:
    """Each of the model's weighted layers takes the file's layer of the same name, as both Kerases spell it
    (`layer_key`: Keras 3's `conv_bn` is tf_keras's `Conv/BatchNorm`; `classifier` maps the model's
    classifier to the file's name for it), every shape checked first."""
    from convert.model.weights import layer_key

    wanted = {layer_key(file_name): layer_key(model_name) for model_name, file_name in classifier.items()}
    by_name = {wanted.get(layer_key(name), layer_key(name)): layer for name, layer in weights.by_name().items()}
    if len(by_name) != len(weights.layers):
        raise fail(f"{where}: layer names that differ only in case or '/' vs '_' ({len(weights.layers)} layers, "
                   f"{len(by_name)} distinct names)")
    for layer in model.layers:
        current = layer.get_weights()
        if not current:
            continue
        held = by_name.pop(layer_key(layer.name), None)
        if held is None:
            raise fail(f"{where}: the file holds no weights for layer '{layer.name}'")
        want = [tuple(w.shape) for w in current]
        got = [tuple(a.shape) for a in held.arrays]
        if want != got:
            raise fail(f"{where}: layer '{held.name}' holds weights of shapes {got}; Keras's layer "
                       f"'{layer.name}' takes {want}")
        layer.set_weights(list(held.arrays))
    if by_name:
        raise fail(f"{where}: the file holds weights for layers the model does not have: "
                   f"{', '.join(layer.name for layer in by_name.values())}")


def _classifier_names(model, file_names: tuple[str, ...]) -> dict[str, str]:
    """The model's classifier (its last weighted layer) -> the file's name for it, where the two differ."""
    from convert.model.weights import layer_key

    if not file_names:
        return {}
    last = next(layer for layer in reversed(model.layers) if layer.get_weights())
    return {} if layer_key(last.name) == layer_key(file_names[-1]) else {last.name: file_names[-1]}


@register("keras_weights", lambda p: layout_of(p) is not None)
def load_weights_file(path: Path, opts: LoadOptions) -> Source:
    from convert.arch import recognise_weights
    from convert.sources.keras_files import keras_source  # here: importing it registers keras_h5, detected after us

    where = str(path)
    weights = read_weights(path)
    arch, match = recognise_weights(weights.shapes, where)
    size = tuple(opts.input_size or DEFAULT_INPUT_SIZE)

    def rebuild(_path: Path, _trust_code: bool, _form: str):
        import tf_keras

        model = arch.keras_application(tf_keras, match.variant, input_shape=(*size, 3), **match.application_kwargs())
        set_file_weights(model, weights, _classifier_names(model, match.classifier_layers), where)
        return model

    source = keras_source(path, FORMS[weights.layout], rebuild, ConfigScan(), opts)
    version = f", keras_version {weights.keras_version}" if weights.keras_version else ""
    source.notes.insert(0, f"weights only ({LAYOUTS[weights.layout]}{version}): {arch.title} {match.describe()}, "
                           f"identified from its {len(weights.layers)} layers' names and weight shapes; the TF "
                           f"reference is Keras Applications' {arch.title} rebuilt with tf_keras at "
                           f"{size[0]}x{size[1]} (--input-size; default 224) with the file's weights")
    return source
