"""An op census of a graph: what every reader (TF graphs, TFLite flatbuffers) counts before reading layers.

The architecture registry (convert.arch) decides from it which registered architecture the file is, and
`likeliest_family` names what else it looks like, so a refusal says what the file is.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Census:
    convs: int
    depthwise: int
    adds: int
    max_pools: int
    concats: int
    names: tuple[str, str, str, str, str] = (
        "Conv2D",
        "depthwise",
        "MaxPool",
        "ConcatV2",
        "Add",
    )  # as the format calls them

    def describe(self) -> str:
        conv, dw, pool, concat, add = self.names
        return (f"{self.convs} {conv}, {self.depthwise} {dw}, {self.max_pools} {pool}, {self.concats} {concat}, "
                f"{self.adds} {add} ops")


def likeliest_family(c: Census) -> str:
    """The architecture family a census looks most like, by the ops that set families apart."""
    if c.concats:
        return "Inception-like (concatenated branches)"
    if c.max_pools and not c.depthwise:
        return "ResNet/VGG-like (max-pooling, no depthwise convs)"
    if c.depthwise and c.adds == 0:
        return "MobileNet v1-like (depthwise convs, no residual adds)"
    return "an unknown architecture"
