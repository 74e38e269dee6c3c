"""Keras model files: `.h5` (tf_keras, or Keras 3's legacy writer) and `.keras` zips (Keras 3 or tf_keras).

Which Keras wrote a file is read from the file itself (the HDF5 `keras_version` attribute, the zip's
`metadata.json`), never guessed from the extension: tf_keras cannot read what Keras 3 writes.

A model file is untrusted input. Before any Keras loader touches it, its config is read as data
(`convert.sources.keras_config`) and a layer that carries code refuses the file unless the user
passes `--trust-code`. Keras knows what a graph loses: each BatchNormalization's `momentum` (TF's
decay: PyTorch momentum = 1 - decay) and, for Keras 3 whose traced BN is decomposed into Mul/Add,
the BN statistics themselves — read here and verified against the graph.
"""

from __future__ import annotations

import dataclasses
import json
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from convert.model.semantics import same_affine
from convert.model.spec import BNSpec, ModelSpec
from convert.runtime.errors import OWN, fail
from convert.sources.base import LoadOptions, Source, graph_source, is_hdf5, read_head, register, trust
from convert.sources.keras_config import ConfigScan, scan_config


def _is_zip(path: Path) -> bool:
    return path.is_file() and read_head(path, 2) == b"PK"


def h5_config(path: Path) -> tuple[str, dict]:
    """(keras_version, model config) of an .h5 model file, read as data with h5py (nothing deserialised)."""
    import h5py

    from convert.safety.archives import HDF5_ERRORS, check_hdf5

    check_hdf5(path, str(path))  # external links / storage / virtual datasets: before any reader follows them
    try:
        with h5py.File(path, "r") as f:
            version = f.attrs.get("keras_version", b"")
            raw = f.attrs.get("model_config")
    except HDF5_ERRORS as e:
        detail = str(e).splitlines()[0][:120] if str(e) else ""
        raise fail(f"{path}: not a readable Keras model: corrupt HDF5 file ({type(e).__name__}: {detail})") from None
    version = version.decode() if isinstance(version, bytes) else str(version)
    if raw is None:
        raise fail(f"{path}: an HDF5 file with neither a model config nor Keras weights (no layer_names, no "
                   "layers/*/vars); save the whole model with model.save(...)")
    try:
        config = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise fail(f"{path}: the HDF5 file's model_config is not JSON ({type(e).__name__})") from None
    return version, config


def zip_config(path: Path) -> tuple[str, dict]:
    """(keras_version, model config) of a .keras archive (config.json, metadata.json), read as data."""
    from convert.safety.archives import check_zip_file, read_member

    check_zip_file(path, what=".keras archive")  # names, sizes, ratios, the weights' HDF5: before a byte is inflated
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
            if "config.json" not in names:
                raise fail(f"{path}: a zip archive that is not a .keras model (no config.json)")
            meta = json.loads(read_member(z, "metadata.json", str(path))) if "metadata.json" in names else {}
            config = json.loads(read_member(z, "config.json", str(path)))
    except (zipfile.BadZipFile, json.JSONDecodeError, UnicodeDecodeError, OSError, EOFError) as e:
        raise fail(f"{path}: corrupt .keras archive ({type(e).__name__})") from None
    if not isinstance(config, dict) or not isinstance(meta, dict):
        raise fail(f"{path}: corrupt .keras archive (config is not a JSON object)")
    return str(meta.get("keras_version", "3")), config


def keras_loads(path: Path, form: str, load: Callable[[], Any]):
    """Keras's own load_model, and only it: what it raises on the user's file is one line, exit 2. tfport's
    part of loading (names, custom objects, the checks after) runs outside, so that its bugs stay bugs."""
    try:
        return load()
    except OWN:
        raise
    except Exception as e:  # noqa: BLE001  Keras raises anything from ValueError to OSError on bad files
        msg = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
        hint = ("; Keras 3 cannot rebuild some of its own layers from a legacy .h5 (op layers such as "
                "preprocess_input's): save the model as .keras" if form == "keras3_h5" else "")
        raise fail(f"{path}: cannot load as a Keras model ({type(e).__name__}: {msg}){hint}") from None


def _load_tf_keras(path: Path, trust_code: bool, form: str):
    import tf_keras

    kw = {} if path.suffix == ".h5" or is_hdf5(path) else {"safe_mode": not trust_code}  # .h5: the scan guards
    return keras_loads(path, form, lambda: tf_keras.models.load_model(str(path), compile=False, **kw))


def _load_keras3(path: Path, trust_code: bool, form: str):
    import keras

    from convert.sources.keras_config import keras3_ops

    if is_hdf5(path) and path.suffix != ".h5":  # Keras 3 picks the legacy reader by extension
        raise fail(f"{path}: an HDF5 model written by Keras 3 must be named *.h5 for Keras 3 to read it")
    if _is_zip(path) and path.suffix != ".keras":
        raise fail(f"{path}: a .keras archive must be named *.keras for Keras 3 to read it")

    ops = keras3_ops()
    return keras_loads(path, form, lambda: keras.models.load_model(str(path), compile=False, safe_mode=not trust_code,
                                                                   custom_objects=ops))


def frozen_graph_def(model):
    """Freeze a Keras model (tf_keras or Keras 3) into a GraphDef with constants, batch dim free."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    spec = tf.TensorSpec((None, *model.input_shape[1:]), tf.float32, name="input")
    fn = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec)
    return convert_variables_to_constants_v2(fn).graph.as_graph_def()


def flat_layers(model):
    """Layers in execution order, nested models (a base inside a transfer model) expanded in place."""
    for layer in model.layers:
        if getattr(layer, "layers", None):
            yield from flat_layers(layer)
        else:
            yield layer


def keras_bn_layers(model) -> list:
    return [x for x in flat_layers(model) if x.__class__.__name__ == "BatchNormalization"]


def keras_bn_decay(spec: ModelSpec, model) -> list[str]:
    """Carry each BatchNormalization's decay (Keras `momentum`), which no graph keeps, onto the graph's BNs."""
    layers = keras_bn_layers(model)
    graph_bns = [i for i, x in enumerate(spec.layers) if isinstance(x, BNSpec)]
    if len(layers) != len(graph_bns):
        return [f"Keras holds {len(layers)} BatchNormalization layers, the graph {len(graph_bns)}: "
                "BN decay not carried (default 0.999)"]
    for i, layer in zip(graph_bns, _by_gamma([spec.layers[i] for i in graph_bns], layers), strict=True):
        spec.layers[i] = dataclasses.replace(spec.layers[i], decay=float(layer.momentum))
    return []


def _by_gamma(graph_bns: list[BNSpec], layers: list) -> list:
    """The Keras BN layers in the graph's BN order, each the one whose gamma the graph's BN holds (Keras's
    layer order is not a traced graph's where branches run side by side: ResNet50's shortcuts); by position
    where gammas do not tell them apart (a folded BN holds no gamma of its own)."""
    gammas = [np.asarray(layer.gamma if getattr(layer, "scale", True) else [], np.float32) for layer in layers]
    left, out = list(range(len(layers))), []
    for bn in graph_bns:
        k = next((k for k in left if gammas[k].shape == bn.gamma.shape and np.array_equal(gammas[k], bn.gamma)), None)
        if k is None:
            return layers
        left.remove(k)
        out.append(layers[k])
    return out


def fuse_bn(source: Source, model, opts: LoadOptions) -> Source:
    """Keras 3's traced graph decomposes BN: fuse it back with the statistics the model holds, each
    verified against what the graph computes, and the rewritten graph against the traced one."""
    from convert.model.probe import probe_inputs
    from convert.sources.bn_fuse import check_same_function, fuse_decomposed_bn

    spec, where = source.spec, str(source.path)
    layers = keras_bn_layers(model)
    if not any(b.folded for b in spec.bns) or len(layers) != len(spec.bns):
        return source
    real = _in_graph_order(spec.bns, [_keras_bn(layer, where) for layer in layers], where)
    fused = fuse_decomposed_bn(source.graph_def, spec, real, where)
    x = probe_inputs(4, spec.input_shape[:2], spec.input_range)
    rel = check_same_function(source.graph_def, fused, source.info, where, x)
    fused_source = graph_source(source.path, source.form, fused, opts, keras_model=model)
    fused_source.notes.append(f"Keras traced its {len(real)} BatchNorms decomposed (x * a + b); their statistics were "
                         f"read from the model, checked against the graph, and fused back (output equal to {rel:.1e})")
    return fused_source


def _in_graph_order(graph_bns: list[BNSpec], real: list[BNSpec], where: str) -> list[BNSpec]:
    """The Keras BNs paired with the graph's decomposed ones by what each computes, in the graph's order.
    Keras's layer order and a traced graph's order differ where branches run side by side (Keras 3 lists
    ResNet50's shortcut BN after the main branch's first two; the graph may run it first), so pairing by
    position would put one BN's statistics in another's place; a BN no layer reproduces refuses the file."""
    left = list(range(len(real)))
    out = []
    for bn in graph_bns:
        k = next((k for k in left if same_affine(bn, real[k])), None)
        if k is None:
            nearest = next((real[k].name for k in left if real[k].gamma.shape == bn.gamma.shape), "none left")
            raise fail(f"{where}: BatchNormalization '{nearest}' holds statistics that do not match what the "
                       "graph computes; the file is inconsistent")
        left.remove(k)
        out.append(real[k])
    return out


def _keras_bn(layer, where: str) -> BNSpec:
    cfg = layer.get_config()
    if not (cfg.get("center", True) and cfg.get("scale", True)):
        raise fail(f"{where}: BatchNormalization '{layer.name}' has center/scale off; MobileNetV2's BN has both")
    g, b, m, v = (np.asarray(w, np.float32) for w in layer.get_weights())
    return BNSpec(layer.name, g, b, m, v, float(layer.epsilon), float(layer.momentum))


def keras_source(path: Path, form: str, loader: Callable, scan: ConfigScan, opts: LoadOptions) -> Source:
    """Load (the config scan has already passed), freeze, read the graph, add what Keras knows."""
    scan.refuse_unless_trusted(path, opts.trust_code)
    model = loader(path, opts.trust_code, form)  # each loader wraps Keras's load_model alone (keras_loads)
    shape = tuple(model.inputs[0].shape) if getattr(model, "inputs", None) else ()
    if len(model.inputs) != 1 or len(shape) != 4 or shape[3] != 3:
        raise fail(f"{path}: the model takes {len(model.inputs)} input(s) of shape {shape[1:]}; expected one "
                   "(H, W, 3) NHWC image input")
    gd = frozen_graph_def(model)
    source = fuse_bn(graph_source(path, form, gd, opts, keras_model=model), model, opts)
    source.notes.extend(keras_bn_decay(source.spec, model))
    source.spec.dropped = list(scan.dropped)
    trust(source.spec, list(scan.code_layers) if opts.trust_code else [])
    return source


def _load(path: Path, opts: LoadOptions, read_config: Callable[[Path], tuple[str, dict]], ext: str) -> Source:
    """Read the config as data, scan it, then load with the Keras the file names (3.x, else tf_keras)."""
    version, config = read_config(path)
    scan = scan_config(config, str(path))
    if version.startswith("3"):
        return keras_source(path, f"keras3_{ext}", _load_keras3, scan, opts)
    return keras_source(path, f"keras2_{ext}", _load_tf_keras, scan, opts)


@register("keras_h5", is_hdf5)
def load_h5(path: Path, opts: LoadOptions) -> Source:
    return _load(path, opts, h5_config, "h5")


@register("keras_zip", _is_zip)
def load_keras_zip(path: Path, opts: LoadOptions) -> Source:
    return _load(path, opts, zip_config, "keras")
