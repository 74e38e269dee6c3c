"""Route a Keras 3 model to MMdnn through tf_keras, so that the graph MMdnn sees has fused BatchNorm.

Keras 3 freezes BatchNormalization into Mul/Rsqrt/AddV2 on constants; MMdnn 0.3.1's TF parser takes
that for an SSD-style "transformed" BN and silently emits a broken model. tf_keras (Keras 2) freezes
the same layer into one FusedBatchNormV3, which MMdnn reads correctly. So the Keras 3 model is rebuilt
in tf_keras from its own config (translated below), its weights copied in order, and the rebuild is
checked against the Keras 3 model on probe inputs before MMdnn ever sees it.

Keras 3 config vs tf_keras config, side by side (only what differs for the layers of a CNN):
  InputLayer `batch_shape`                         -> `batch_input_shape`
  dtype: {"class_name": "DTypePolicy", ...}        -> the policy name ("float32")
  inbound_nodes: [{"args": [keras tensors], ...}]  -> [[[layer, node_index, tensor_index, {}], ...]]
  input_layers / output_layers: one [name, 0, 0]   -> a list of them
  "module" / "registered_name" name Keras 3 paths  -> dropped (tf_keras finds classes by class_name)
  initializers, quantization and LoRA options      -> dropped (weights are copied, never initialised)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from convert.errors import fail

# Keys tf_keras does not know; none of them changes what a trained layer computes.
_DROP = frozenset({
    "module", "registered_name", "build_config", "shared_object_id",  # Keras 3 serialization bookkeeping
    "optional",  # InputLayer
    "quantization_config", "lora_rank", "lora_alpha",  # Dense / Conv options, unset in a float model
})
_DROP_SUFFIXES = ("_initializer",)  # initialisers only matter before weights are set
_RENAME = {"batch_shape": "batch_input_shape"}
_DTYPE_POLICIES = {"DTypePolicy", "FloatDTypePolicy"}
# relative agreement required between the Keras 3 model and its tf_keras rebuild (same float32 math,
# different BN formulation: measured ~2e-6 on softmax outputs)
REBUILD_TOL = 1e-5


def _tensor_refs(args: Any) -> Iterator[list]:
    """Keras 3 node arguments -> tf_keras inbound references, in argument order."""
    if isinstance(args, dict) and args.get("class_name") == "__keras_tensor__":
        yield [*args["config"]["keras_history"], {}]
    elif isinstance(args, (list, tuple)):
        for a in args:
            yield from _tensor_refs(a)
    elif isinstance(args, dict):
        for a in args.values():
            yield from _tensor_refs(a)


def tf_keras_config(obj: Any) -> Any:
    """Translate a Keras 3 model config into the tf_keras dialect (see the table in the docstring)."""
    if isinstance(obj, list):
        return [tf_keras_config(x) for x in obj]
    if not isinstance(obj, dict):
        return obj
    if obj.get("class_name") in _DTYPE_POLICIES:
        return obj["config"]["name"]
    out: dict[str, Any] = {}
    for key, value in obj.items():
        if key in _DROP or key.endswith(_DROP_SUFFIXES):
            continue
        if key == "inbound_nodes":
            out[key] = [list(_tensor_refs(node.get("args", []))) for node in value]
        elif key in ("input_layers", "output_layers") and value and isinstance(value[0], str):
            out[key] = [value]
        else:
            out[_RENAME.get(key, key)] = tf_keras_config(value)
    return out


def rebuild_in_tf_keras(model, where: str, probes: np.ndarray | None = None):
    """The Keras 3 `model` as a tf_keras model with the same weights, verified on probe inputs."""
    import tf_keras

    from convert.probe import agreement, probe_inputs

    try:
        rebuilt = tf_keras.Model.from_config(tf_keras_config(model.get_config()))
        rebuilt.set_weights(model.get_weights())
    except Exception as e:  # tf_keras raises TypeError/ValueError/KeyError on configs it cannot take
        msg = str(e).splitlines()[0][:160] if str(e) else type(e).__name__
        raise fail(f"{where}: Keras 3 model cannot be rebuilt in tf_keras for MMdnn ({type(e).__name__}: {msg}); "
                   "save it with tf_keras, or use --via onnx") from e
    x = probes if probes is not None else probe_inputs(8, tuple(model.input_shape[1:3]))
    a = agreement("tf_keras rebuild vs Keras 3", rebuilt(x, training=False).numpy(),
                  np.asarray(model(x, training=False)))
    if not a.rel <= REBUILD_TOL:
        raise fail(f"{where}: the tf_keras rebuild of this Keras 3 model differs from it (relative error {a.rel:.2e}); "
                   "use --via onnx")
    return rebuilt
