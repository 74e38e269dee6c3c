"""TF sources: detect the form of a file, load it, freeze it, describe it.

Every form ends as a :class:`Source`: a frozen GraphDef (what TF runs as the reference and what
tf2onnx and MMdnn read) and a :class:`ModelSpec` (what the canonical mapping reads). Keras forms are
described from their layers, which keep BN decay; graph forms from the graph, which does not.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from convert.checkpoint import sha256_file
from convert.errors import fail
from convert.spec import ModelSpec
from convert.tfgraph import GraphInfo, parse_graph_def, read_graph

_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


@dataclass
class Source:
    path: Path
    form: str  # graph_pb | savedmodel | keras2_h5 | keras3 | keras2_keras
    sha256: str
    graph_def: object  # tf GraphDef, frozen
    info: GraphInfo
    spec: ModelSpec
    keras_model: object | None = None

    @property
    def describe(self) -> str:
        return f"{self.form}, input {self.spec.input_shape}, {len(self.spec.layers)} layers"


def detect_form(path: Path) -> str:
    if not path.exists():
        raise fail(f"{path}: no such file or folder")
    if path.is_dir():
        if (path / "saved_model.pb").exists() or (path / "saved_model.pbtxt").exists():
            return "savedmodel"
        raise fail(f"{path}: a folder that is not a SavedModel (no saved_model.pb)")
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError as e:
        raise fail(f"{path}: cannot read ({e.strerror})")
    if not head:
        raise fail(f"{path}: empty file")
    if head == _HDF5_MAGIC:
        return "keras2_h5"
    if head.startswith(b"PK"):
        return _keras_zip_form(path)
    if path.suffix in (".pb", ".graphdef", ""):
        return "graph_pb"
    raise fail(f"{path}: unknown model format (expected .pb, SavedModel folder, .h5 or .keras)")


def _keras_zip_form(path: Path) -> str:
    try:
        with zipfile.ZipFile(path) as z:
            meta = json.loads(z.read("metadata.json")) if "metadata.json" in z.namelist() else {}
            if "config.json" not in z.namelist():
                raise fail(f"{path}: a zip archive that is not a .keras model (no config.json)")
    except (zipfile.BadZipFile, json.JSONDecodeError, OSError) as e:
        raise fail(f"{path}: corrupt .keras archive ({e})")
    version = str(meta.get("keras_version", "3"))
    return "keras3" if version.startswith("3") else "keras2_keras"


def _load_keras2(path: Path):
    import tf_keras

    return tf_keras.models.load_model(str(path), compile=False, safe_mode=True)


def _load_keras3(path: Path):
    import keras

    return keras.models.load_model(str(path), compile=False, safe_mode=True)


def _keras_source(path: Path, form: str, loader: Callable, input_size) -> Source:
    from convert.keras_reader import read_keras
    from convert.sample import frozen_graph_def

    try:
        model = loader(path)
    except Exception as e:  # Keras raises anything from ValueError to OSError on bad files
        msg = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
        raise fail(f"{path}: cannot load as a Keras model ({type(e).__name__}: {msg})")
    spec = read_keras(model, str(path))
    gd = frozen_graph_def(model)
    graph_spec, info = read_graph(gd, str(path), spec.input_shape[:2])
    if len(graph_spec.layers) == len(spec.layers):  # probe points live in the frozen graph
        spec.taps = graph_spec.taps
    spec.origin = form
    return Source(path, form, sha256_file(path), gd, info, spec, model)


def _graph_source(path: Path, input_size) -> Source:
    gd = parse_graph_def(path.read_bytes(), str(path))
    spec, info = read_graph(gd, str(path), input_size)
    return Source(path, "graph_pb", sha256_file(path), gd, info, spec)


def _savedmodel_source(path: Path, input_size) -> Source:
    if (path / "keras_metadata.pb").exists():
        return _keras_source(path, "savedmodel", _load_keras2, input_size)
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    try:
        loaded = tf.saved_model.load(str(path))
        fn = loaded.signatures["serving_default"]
    except Exception as e:
        raise fail(f"{path}: cannot load the SavedModel's serving_default signature ({type(e).__name__})")
    gd = convert_variables_to_constants_v2(fn).graph.as_graph_def()
    spec, info = read_graph(gd, str(path), input_size)
    return Source(path, "savedmodel", sha256_file(path), gd, info, spec)


LOADERS: dict[str, Callable[[Path, object], Source]] = {
    "graph_pb": _graph_source,
    "savedmodel": _savedmodel_source,
    "keras2_h5": lambda p, s: _keras_source(p, "keras2_h5", _load_keras2, s),
    "keras2_keras": lambda p, s: _keras_source(p, "keras2_keras", _load_keras2, s),
    "keras3": lambda p, s: _keras_source(p, "keras3", _load_keras3, s),
}


def load_source(path: str | Path, input_size: tuple[int, int] | None = None) -> Source:
    p = Path(path)
    source = LOADERS[detect_form(p)](p, input_size)
    _require_finite(source)
    return source


def _require_finite(source: Source) -> None:
    """NaN/Inf weights make every comparison meaningless: refuse them up front, naming the layer."""
    import numpy as np

    for layer in source.spec.layers:
        for name, value in vars(layer).items():
            if isinstance(value, np.ndarray) and value.dtype.kind == "f" and not np.isfinite(value).all():
                raise fail(f"{source.path}: layer '{layer.name}' has NaN or Inf in its {name}")
