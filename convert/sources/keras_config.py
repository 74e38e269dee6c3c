"""A Keras model config, read as data before any loader runs: which layers carry code, which are dropped.

Keras stores a `Lambda` layer's Python function in the file (marshalled bytecode in `.h5`, a serialized
function in `.keras`), and a custom layer class is code the loader would import or look up. Loading
such a file runs that code; `torch.load(weights_only=True)` is the bar, so by default such a file is
refused here, before any loader touches it, naming the layer. `TFOpLambda` (tf_keras) and Keras 3's op
layers (`TrueDivide`, `Subtract`, ...) name a TF/Keras op and carry no code: they are fine.

Augmentation layers are identity at inference: they are listed as dropped (the conversion verifies
numerically that nothing between the input and the first convolution is anything but an affine).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from convert.runtime.errors import fail

# identity at inference in both Keras versions (their call returns the input when training is False)
_AUGMENTATION_EXTRA = frozenset({"GaussianNoise", "GaussianDropout", "AlphaDropout"})
# containers whose config nests more layers
_CONTAINERS = frozenset({"Functional", "Sequential", "Model"})
# config classes that are not layers of a Keras module but are Keras's own
_KERAS_OWN = frozenset({"TFOpLambda", "SlicingOpLambda", "InputLayer", "Functional", "Sequential", "Model"})


@dataclass
class ConfigScan:
    code: list[tuple[str, str, str]] = field(default_factory=list)  # (layer name, class, why it is code)
    dropped: list[str] = field(default_factory=list)  # augmentation layers (identity at inference)
    classes: list[str] = field(default_factory=list)  # every layer class, in config order

    @property
    def code_layers(self) -> list[str]:
        return [f"{name} ({cls})" for name, cls, _ in self.code]

    def refuse_unless_trusted(self, path: Path, trust_code: bool) -> None:
        if not self.code or trust_code:
            return
        name, cls, why = self.code[0]
        more = f" (and {len(self.code) - 1} more)" if len(self.code) > 1 else ""
        hint = (" If it only rescales the input (x / 127.5 - 1), re-save the model with "
                "keras.layers.Rescaling(1 / 127.5, offset=-1) in its place." if cls == "Lambda" else "")
        raise fail(f"{path}: layer '{name}' ({cls}) {why}{more}; tfport runs no code from a model file unless you "
                   f"pass --trust-code.{hint}")


@functools.lru_cache(maxsize=1)
def keras3_ops() -> dict[str, type]:
    """Keras 3's op classes (TrueDivide, Subtract, ...): what `preprocess_input` on a Keras tensor leaves in a
    config. Keras's own code; its legacy .h5 reader does not look them up by itself."""
    import keras
    from keras.src import ops
    from keras.src.ops.operation import Operation

    layers = set(dir(keras.layers))  # a layer of the same name (Add, Maximum, ...) wins, as in Keras's own lookup
    found: dict[str, type] = {}
    for sub in (ops.numpy, ops.nn, ops.math, ops.core, ops.image):
        found.update({n: c for n, c in vars(sub).items() if isinstance(c, type) and issubclass(c, Operation)
                      and c is not Operation and n not in layers})
    return found


@functools.lru_cache(maxsize=1)
def known_classes() -> frozenset[str]:
    """Class names Keras itself provides (tf_keras and Keras 3 layers, Keras 3 ops): safe to deserialize."""
    import keras
    import tf_keras

    names = set(_KERAS_OWN)

    for mod in (keras.layers, tf_keras.layers):
        names.update(n for n in dir(mod) if n[:1].isupper())
    names.update(keras3_ops())
    return frozenset(names)


def _layers(config: dict) -> Iterator[dict]:
    """Every layer config, nested models expanded (a base inside a transfer model, a Sequential block)."""
    inner = config.get("config", {}) if isinstance(config.get("config"), dict) else {}
    for layer in inner.get("layers", []) or []:
        if not isinstance(layer, dict):
            continue
        yield layer
        if layer.get("class_name") in _CONTAINERS or isinstance((layer.get("config") or {}).get("layers"), list):
            yield from _layers(layer)


def is_augmentation(cls: str) -> bool:
    return cls.startswith("Random") or cls in _AUGMENTATION_EXTRA


def scan_config(config: dict, where: str) -> ConfigScan:
    if not isinstance(config, dict) or "class_name" not in config:
        raise fail(f"{where}: the model config is not a Keras model config")
    known = known_classes()
    scan = ConfigScan()
    for layer in _layers(config):
        cls = str(layer.get("class_name", ""))
        cfg = layer.get("config") if isinstance(layer.get("config"), dict) else {}
        name = str(cfg.get("name") or layer.get("name") or cls)
        scan.classes.append(cls)
        registered = str(layer.get("registered_name") or "")
        module = str(layer.get("module") or "keras").replace("tf_keras", "keras")
        if cls == "Lambda":
            scan.code.append((name, cls, "carries a Python function (Lambda bytecode)"))
        elif (cls not in known or (registered and registered != cls and not registered.startswith("keras"))
              or not module.startswith("keras")):
            scan.code.append((name, cls, f"is a custom class ({registered or cls}) whose code is not Keras's"))
        elif is_augmentation(cls):
            scan.dropped.append(name)
    return scan
