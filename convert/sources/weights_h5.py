"""Weights-only Keras HDF5 files read as data (h5py; nothing deserialised, nothing run).

Two layouts, both without a model config:
  - legacy (what `keras.applications` downloads into ~/.keras/models, and tf_keras `save_weights("x.h5")`
    writes): root attribute `layer_names`; each layer's group has the attribute `weight_names` naming its
    datasets in `get_weights()` order (`Conv1/kernel:0`). Keras splits an attribute over 64 KB into
    `layer_names0`, `layer_names1`, ...; old Keras wrote the names as bytes, tf_keras as str.
  - Keras 3 (`save_weights("x.weights.h5")`): `layers/<key>/vars/0, 1, ...` where the key is the class in
    snake case numbered per class (`conv2d_3`) and the `vars` group's attribute `name` is the layer's own
    name (Keras 3 writes it beside the variables; a nested model's layers sit under `layers/<key>/layers/`).
Only the layers that hold weights are kept, in file order.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from convert.runtime.errors import fail
from convert.sources.base import is_hdf5

LEGACY, KERAS3 = "legacy", "keras3"
# bounds on untrusted files: VGG16, the largest registered architecture, holds ~530 MB in 32 layers
MAX_LAYERS = 10_000
MAX_BYTES = 2048 << 20
FLOATS = "f"  # numpy dtype kinds a weight may have


@dataclass(frozen=True)
class LayerWeights:
    name: str  # the layer's own name (Conv1, block_3_expand_BN, predictions)
    arrays: tuple[np.ndarray, ...]  # float32, in get_weights() order


@dataclass(frozen=True)
class WeightsFile:
    layout: str  # LEGACY or KERAS3
    keras_version: str  # what the file says ("" where it says nothing: Keras 3 writes no version)
    layers: tuple[LayerWeights, ...]

    @property
    def shapes(self) -> dict[str, tuple[tuple[int, ...], ...]]:
        return {layer.name: tuple(a.shape for a in layer.arrays) for layer in self.layers}

    def by_name(self) -> dict[str, LayerWeights]:
        return {layer.name: layer for layer in self.layers}


def layout_of(path: Path) -> str | None:
    """LEGACY, KERAS3 or None (not a weights-only HDF5 file); cheap, reads root attributes only, never raises."""
    if not is_hdf5(path):
        return None
    import h5py

    try:
        with h5py.File(path, "r") as f:
            if "model_config" in f.attrs:
                return None  # a whole model: keras_files reads it
            if "layer_names" in f.attrs or "layer_names0" in f.attrs:
                return LEGACY
            if isinstance(f.get("layers", getlink=True), h5py.HardLink) and "model_weights" not in f:
                return KERAS3
    except Exception:  # a foreign or corrupt file: the next form's detector (keras_h5) says what is wrong
        return None
    return None


def read_weights(path: Path) -> WeightsFile:
    """Every weighted layer of a weights-only file, after the HDF5 safety checks, within bounds."""
    import h5py

    from convert.safety.archives import HDF5_ERRORS, check_hdf5

    where = str(path)
    check_hdf5(path, where)  # external links / storage / virtual datasets: before any dataset is read
    layout = layout_of(path)
    try:
        with h5py.File(path, "r") as f:
            version = _text(f.attrs.get("keras_version", ""))
            named = _legacy(f, where) if layout == LEGACY else _keras3(f, where)
            layers = _read(named, where)
    except HDF5_ERRORS as e:
        if isinstance(e, type(fail(""))):
            raise
        detail = str(e).splitlines()[0][:120] if str(e) else ""
        raise fail(f"{where}: corrupt Keras weights file ({type(e).__name__}: {detail})") from None
    if not layers:
        raise fail(f"{where}: a Keras weights file with no weights in it")
    return WeightsFile(layout or "", version, layers)


def _text(value) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _names_attr(attrs, key: str) -> list[str]:
    """A list-of-names attribute, whole or in Keras's numbered chunks (key0, key1, ...)."""
    if key in attrs:
        values = list(np.atleast_1d(attrs[key]))
    else:
        values, i = [], 0
        while f"{key}{i}" in attrs:
            values += list(np.atleast_1d(attrs[f"{key}{i}"]))
            i += 1
    return [_text(v) for v in values]


def _legacy(f, where: str) -> list[tuple[str, list]]:
    """(layer name, datasets) for each layer the root's `layer_names` lists, with its `weight_names`."""
    out = []
    for name in _names_attr(f.attrs, "layer_names"):
        if name not in f:
            raise fail(f"{where}: layer_names lists '{name}' but the file has no group of that name")
        group = f[name]
        out.append((name, [_dataset(group, w, where) for w in _names_attr(group.attrs, "weight_names")]))
    return out


def _keras3(f, where: str) -> list[tuple[str, list]]:
    """(layer name, datasets) for each `layers/<key>/vars` group, depth first through nested models."""
    import h5py

    out: list[tuple[str, list]] = []

    def walk(group) -> None:
        for key in group:
            layer = group[key]
            if not isinstance(layer, h5py.Group):
                continue
            variables = layer.get("vars")
            if isinstance(variables, h5py.Group) and len(variables):
                if "name" not in variables.attrs:
                    raise fail(f"{where}: Keras 3 weights without layer names (layers/{key}/vars has no 'name'); "
                               "re-save them with a current Keras 3 or save the whole model as .keras")
                keys = sorted(variables, key=lambda k: int(k) if k.isdigit() else -1)
                if any(not k.isdigit() for k in keys):
                    raise fail(f"{where}: layers/{key}/vars holds '{keys[0]}', not numbered variables")
                out.append((_text(variables.attrs["name"]), [_dataset(variables, k, where) for k in keys]))
            if isinstance(layer.get("layers"), h5py.Group):
                walk(layer["layers"])

    walk(f["layers"])
    return out


def _dataset(group, name: str, where: str):
    import h5py

    obj = group.get(name)
    if not isinstance(obj, h5py.Dataset):
        raise fail(f"{where}: weight '{name}' is named in the file but is not a dataset in it")
    if obj.dtype.kind != FLOATS:
        raise fail(f"{where}: weight '{obj.name}' is {obj.dtype}, not floating point")
    return obj


def _read(named: list[tuple[str, list]], where: str) -> tuple[LayerWeights, ...]:
    """The weighted layers' arrays as float32, after bounding their count and declared size."""
    weighted = [(name, datasets) for name, datasets in named if datasets]
    if len(weighted) > MAX_LAYERS:
        raise fail(f"{where}: {len(weighted)} layers with weights (at most {MAX_LAYERS}); refused")
    total = sum(d.size * 4 for _, datasets in weighted for d in datasets)
    if total > MAX_BYTES:
        raise fail(f"{where}: weights of {total >> 20:,} MiB as float32 (at most {MAX_BYTES >> 20:,} MiB); refused")
    seen: set[str] = set()
    layers = []
    for name, datasets in weighted:
        if name in seen:
            raise fail(f"{where}: layer '{name}' appears twice in the file")
        seen.add(name)
        layers.append(LayerWeights(name, tuple(np.asarray(d[()], np.float32) for d in datasets)))
    return tuple(layers)
