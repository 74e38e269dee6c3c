"""TF's tensor and node names: `node:0` is output 0 of `node`, `^node` a control input on it."""

from __future__ import annotations


def node_name(inp: str) -> str:
    """The node a tensor name or input string refers to."""
    return inp.lstrip("^").split(":")[0]
