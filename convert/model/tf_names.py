"""TF's tensor and node names: `node:0` is output 0 of `node`, `^node` a control input on it."""

from __future__ import annotations


def node_name(inp: str) -> str:
    """The node a tensor name or input string refers to."""
    return inp.lstrip("^").split(":")[0]


def data_consumers(gd) -> dict[str, list]:
    """Node name -> the nodes that read one of its outputs (data inputs; a control input carries no value)."""
    out: dict[str, list] = {}
    for n in gd.node:
        for i in n.input:
            if not i.startswith("^"):
                out.setdefault(node_name(i), []).append(n)
    return out


def downstream(consumers: dict[str, list], start: str) -> set[str]:
    """The names of every node computed from `start`'s outputs, along data edges (`start` itself only on a
    cycle)."""
    seen: set[str] = set()
    stack = [start]
    while stack:
        for c in consumers.get(stack.pop(), ()):
            if c.name not in seen:
                seen.add(c.name)
                stack.append(c.name)
    return seen
