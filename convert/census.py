"""Is it a MobileNetV2 at all? An op census, shared by every reader (TF graphs, TFLite flatbuffers).

A MobileNetV2 has 17 depthwise convs, residual adds, no max-pooling and no concatenation of feature
maps; the census names the likeliest other family so the one-line refusal says what the file is.
"""

from __future__ import annotations

from dataclasses import dataclass

from convert.errors import fail

MOBILENET_V2_DEPTHWISE = 17


@dataclass(frozen=True)
class Census:
    convs: int
    depthwise: int
    adds: int
    max_pools: int
    concats: int
    names: tuple[str, str, str, str, str] = ("Conv2D", "depthwise", "MaxPool", "ConcatV2", "Add")  # as the format calls them


def refuse_other_architectures(c: Census, where: str) -> None:
    if c.depthwise == MOBILENET_V2_DEPTHWISE and not c.max_pools and not c.concats:
        return
    if c.concats:
        guess = "Inception-like (concatenated branches)"
    elif c.max_pools and not c.depthwise:
        guess = "ResNet/VGG-like (max-pooling, no depthwise convs)"
    elif c.depthwise and c.adds == 0:
        guess = "MobileNet v1-like (depthwise convs, no residual adds)"
    else:
        guess = "an unknown architecture"
    conv, dw, pool, concat, add = c.names
    raise fail(f"{where}: not a MobileNetV2: found {c.convs} {conv}, {c.depthwise} {dw}, {c.max_pools} {pool}, "
               f"{c.concats} {concat}, {c.adds} {add} ops — {guess}; a MobileNetV2 has {MOBILENET_V2_DEPTHWISE} "
               "depthwise convs, residual adds and no max-pooling")
