"""TFLite float32 flatbuffers (`.tflite`): the most widely distributed MobileNetV2 file.

Recognised by the flatbuffer's own file identifier (`TFL3`), read by `convert.readers.tflite` (its BN
folded into the convolutions and ReLU6 fused: an eval-mode-only source), run by the TFLite
interpreter as the reference, and converted by tf2onnx's TFLite front end. A quantized file is one
clear error: its weights are not the float model's.
"""

from __future__ import annotations

from pathlib import Path

from convert.sources.base import LoadOptions, Source, register, trust


def _is_tflite(path: Path) -> bool:
    from convert.readers.tflite import detect

    return path.is_file() and detect(path)


@register("tflite", _is_tflite)
def load(path: Path, opts: LoadOptions) -> Source:
    import dataclasses

    from convert.readers.tflite import flatbuffer, read_bytes, read_tflite
    from convert.runtime.files import sha256_file
    from convert.safety.tflite import check_tflite

    # operator codes as data, before the interpreter is built (custom and Flex ops refused)
    trusted = check_tflite(flatbuffer(read_bytes(path, str(path)), str(path)), str(path), opts.trust_code)
    spec, info = read_tflite(path, str(path))
    trust(spec, trusted)
    if spec.head and info.logits and info.logits != info.output:  # the reader saw SOFTMAX after the dense layer
        spec.layers[-1] = dataclasses.replace(spec.layers[-1], activation="softmax")
    source = Source(path, "tflite", sha256_file(path), None, info, spec)
    source.notes.extend(spec.notes)
    return source
