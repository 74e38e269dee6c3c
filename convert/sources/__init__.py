"""TF sources: detect the form of a file from its own content, load it, freeze it, describe it.

Every form ends as a :class:`Source`: a frozen GraphDef (what TF runs as the reference and what
tf2onnx and MMdnn read) and a :class:`ModelSpec` (what the canonical mapping reads). One module per
form family, each registering its detector; detection runs in registration order: the first detector
that recognises the file's bytes loads it. The extension alone is
never trusted.
"""

from __future__ import annotations

# registration order is detection order: folders, then magic bytes (a weights-only HDF5 before a model's),
# then the GraphDef fallback
# isort: off
from convert.sources import savedmodel  # noqa: F401  (SavedModel folders)
from convert.sources import keras_weights  # noqa: F401  (weights-only HDF5: Keras Applications, save_weights)
from convert.sources import keras_files  # noqa: F401  (HDF5 and .keras zip archives)
from convert.sources import tflite  # noqa: F401  (TFLite flatbuffers)
from convert.sources import graph_pb  # noqa: F401  (frozen GraphDef: the fallback)
# isort: on
from convert.sources.base import FORMS, LoadOptions, Source, detect_form, load_source, register  # noqa: F401
