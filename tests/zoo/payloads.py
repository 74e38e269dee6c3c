"""Files that carry code: a pickle whose loading creates a marker file (`Payload`), and Keras model files
written by both Keras versions — a `Lambda` whose function writes a marker file, and a custom layer
class whose `call` does. Loading any of them must never create the marker."""

from __future__ import annotations

from pathlib import Path

SIZE, ALPHA = 96, 0.35


class Payload:
    """Unpickling this opens (creates) a marker file: proof that code ran."""

    def __init__(self, marker: str | Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _base(K):
    return K.applications.MobileNetV2(input_shape=(SIZE, SIZE, 3), alpha=ALPHA, weights=None, include_top=False,
                                      pooling="avg")


def lambda_model(K, marker: Path):
    marker = str(marker)  # Keras serializes the closure with the bytecode: plain values only

    def preprocess(x):
        with open(marker, "w") as f:  # the payload: any side effect at all
            f.write("ran")
        return x / 127.5 - 1.0

    inp = K.Input((SIZE, SIZE, 3))
    x = K.layers.Lambda(preprocess, name="payload")(inp)
    return K.Model(inp, K.layers.Dense(2)(_base(K)(x)))


def class_model(K, marker: Path):
    marker = str(marker)
    register = K.saving.register_keras_serializable if hasattr(K, "saving") else K.utils.register_keras_serializable

    @register(package="tfport_test")
    class Payload(K.layers.Layer):
        def call(self, x):
            with open(marker, "w") as f:
                f.write("ran")
            return x

    inp = K.Input((SIZE, SIZE, 3))
    return K.Model(inp, K.layers.Dense(2)(_base(K)(Payload(name="payload")(inp))))


PAYLOADS = {"lambda": lambda_model, "custom_class": class_model}


def write(kind: str, version: str, fmt: str, path: Path, marker: Path) -> Path:
    """Write the payload model with its own Keras; the marker its construction created is removed."""
    from tests.zoo.keras_models import keras_module

    model = PAYLOADS[kind](keras_module(version), marker)
    target = path.with_suffix("." + fmt)
    model.save(str(target))  # "savedmodel" (tf_keras): no .h5/.keras suffix, so tf_keras writes a SavedModel
    marker.unlink(missing_ok=True)  # building the model ran the function; only what follows counts
    return target
