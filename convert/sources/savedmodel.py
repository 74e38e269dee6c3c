"""SavedModel folders: tf_keras `model.save(dir)`, Keras 3 `model.export(dir)`, any `tf.Module` with a
serving signature (TF-Hub style).

A SavedModel is graphs and variables, no Python: its serving signature is loaded with
`tf.saved_model.load` and frozen. Only a tf_keras SavedModel (with `keras_metadata.pb`) is revived as a
Keras model, for what Keras knows and the graph does not (BN decay) — and only when its config, read
as data first, carries no code; otherwise its graph alone is used.
"""

from __future__ import annotations

import json
from pathlib import Path

from convert.runtime.errors import OWN, fail
from convert.sources.base import LoadOptions, Source, graph_source, register, trust


def _is_savedmodel(path: Path) -> bool:
    return path.is_dir() and ((path / "saved_model.pb").exists() or (path / "saved_model.pbtxt").exists())


def _keras_metadata_configs(path: Path) -> list[dict]:
    """The layer configs tf_keras stored in keras_metadata.pb (a SavedMetadata proto of JSON strings)."""
    from tf_keras.protobuf import saved_metadata_pb2 as meta_pb2

    meta = meta_pb2.SavedMetadata()
    try:
        meta.ParseFromString((path / "keras_metadata.pb").read_bytes())
        return [json.loads(n.metadata) for n in meta.nodes if n.metadata]
    except Exception as e:  # noqa: BLE001  (protobuf / JSON errors on a corrupt file)
        raise fail(f"{path}: corrupt keras_metadata.pb ({type(e).__name__})") from None


@register("savedmodel", _is_savedmodel)
def load(path: Path, opts: LoadOptions) -> Source:
    from convert.safety.graph import check_saved_model

    trusted = check_saved_model(path, opts.trust_code)  # before TF loads it (a TF1 loader runs restore/init ops)
    source = _load(path, opts)
    trust(source.spec, trusted)
    return source


def _load(path: Path, opts: LoadOptions) -> Source:
    if (path / "keras_metadata.pb").exists():
        from convert.sources.keras_config import ConfigScan
        from convert.sources.keras_files import keras_source

        configs = _keras_metadata_configs(path)
        scan = ConfigScan()
        for c in configs:
            cls = str(c.get("class_name", ""))
            if cls == "Lambda" or (cls and "/" not in cls and _custom(cls)):
                scan.code.append((str(c.get("name", cls)), cls, "carries Python code in its Keras metadata"))
        if not scan.code or opts.trust_code:
            from convert.sources.keras_config import is_augmentation

            scan.dropped = [str(c.get("name")) for c in configs if is_augmentation(str(c.get("class_name", "")))]
            return keras_source(path, "keras2_savedmodel", _load_tf_keras_savedmodel, scan, opts)
        source = _signature_source(path, opts)
        source.notes.append(f"Keras metadata not revived ({scan.code_layers[0]} carries code; pass --trust-code "
                            "to revive it): BN decay defaults to 0.999")
        return source
    return _signature_source(path, opts)


def _custom(cls: str) -> bool:
    from convert.sources.keras_config import known_classes

    return cls not in known_classes()


def _load_tf_keras_savedmodel(path: Path, trust_code: bool, form: str):
    import tf_keras

    from convert.sources.keras_files import keras_loads

    return keras_loads(path, form, lambda: tf_keras.models.load_model(str(path), compile=False))


def _signature_source(path: Path, opts: LoadOptions) -> Source:
    import tensorflow as tf

    try:
        loaded = tf.saved_model.load(str(path))
    except Exception as e:  # noqa: BLE001  (TF raises many types on a corrupt SavedModel)
        raise fail(f"{path}: cannot load the SavedModel ({type(e).__name__})") from None
    sigs = dict(loaded.signatures)
    name = "serving_default" if "serving_default" in sigs else ("serve" if "serve" in sigs else None)
    if name is None:
        if len(sigs) != 1:
            raise fail(f"{path}: the SavedModel has signatures {sorted(sigs)}; expected serving_default")
        name = next(iter(sigs))
    fn = sigs[name]
    if len(fn.structured_input_signature[1]) + len(fn.structured_input_signature[0]) != 1:
        raise fail(f"{path}: signature '{name}' takes {len(fn.inputs)} inputs; expected one image input")
    gd = _drop_state_updates(_freeze(fn, path, name), [t.name.split(":")[0] for t in fn.outputs])
    source = graph_source(path, "savedmodel", gd, opts)
    rel = _check_frozen(fn, source)
    source.notes.append(f"SavedModel signature '{name}' frozen (graph only: no Python is run); frozen graph "
                        f"equals the signature to {rel:.1e}")
    return source


def _freeze(fn, path: Path, name: str):
    """Variables -> constants, by TF's freezer alone (what it raises on a graph it cannot take is the
    file's). Keras 3's `export()` keeps its random layers' seed-state updates in the serving graph; TF's
    public freezer then fails re-importing them (a resource fed an int64 constant), so such a graph is
    frozen one level down, and the caller drops the updates (no output reads them — and `_check_frozen`
    proves the frozen graph computes what the signature computes)."""
    from tensorflow.python.framework import convert_to_constants as c2c

    from convert.compat.tensorflow import freeze_without_reimport

    try:
        try:
            return c2c.convert_variables_to_constants_v2(fn).graph.as_graph_def()
        except ValueError:
            return freeze_without_reimport(fn)  # TF's own two steps (tfport names them, TF runs them)
    except OWN:
        raise
    except Exception as e:  # noqa: BLE001  (freezing raises many types on graphs it cannot take)
        raise fail(
            f"{path}: cannot freeze signature '{name}' ({type(e).__name__}: {str(e).splitlines()[0][:120]})"
        ) from None


# Keras 3's exported random layers update their seed state even at inference; the output never reads it
_STATE_UPDATES = {"AssignVariableOp", "AssignAddVariableOp", "AssignSubVariableOp"}


def _drop_state_updates(gd, outputs: list[str]):
    """Remove variable assignments (and control edges to them), then keep only what `outputs` need."""
    import tensorflow as tf

    out = tf.compat.v1.GraphDef()
    out.CopyFrom(gd)
    dropped = {n.name for n in out.node if n.op in _STATE_UPDATES}
    keep = [n for n in out.node if n.name not in dropped]
    del out.node[:]
    out.node.extend(keep)
    for n in out.node:
        inputs = [i for i in n.input if i.lstrip("^").split(":")[0] not in dropped]
        del n.input[:]
        n.input.extend(inputs)
    return tf.compat.v1.graph_util.extract_sub_graph(out, outputs)


def _check_frozen(fn, source) -> float:
    """The frozen graph must compute what the SavedModel's own signature computes."""
    import numpy as np
    import tensorflow as tf

    from convert.model.probe import probe_inputs

    x = probe_inputs(2, source.spec.input_shape[:2], source.spec.input_range)
    want = fn(tf.constant(x))
    want = np.asarray(next(iter(want.values())) if isinstance(want, dict) else want, np.float64)
    runner = source.runner()
    try:
        (got,) = runner.run(x, [source.info.output])
    finally:
        runner.close()
    got = np.asarray(got, np.float64).reshape(want.shape)
    rel = float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-30))
    if not rel <= 1e-4:  # float32 reordering only (TF optimises the two graphs differently); a wrong freeze is O(1)
        raise fail(
            f"{source.path}: the frozen serving signature differs from the SavedModel's own (relative {rel:.2e})"
        )
    return rel
