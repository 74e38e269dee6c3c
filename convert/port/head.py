"""The source's own head as checkpoint metadata describes it, and the split of a port's state dict into
torchvision's keys and the head's (`head.N.*`).
"""

from __future__ import annotations

from typing import Any


def head_plan(meta: dict[str, Any]) -> dict[str, Any]:
    """The head description of a checkpoint's metadata; version-1 metadata (classifier or nothing) too."""
    head = meta.get("head")
    if isinstance(head, dict) and "pool" in head:
        return head
    classes = int(meta.get("num_classes", 0))
    if head:  # version 1: a torchvision classifier, logits out
        return {"pool": "avg", "classifier": {"classes": classes, "activation": "linear",
                                              "source_layer": head.get("source_layer")},
                "layers": [], "output": "classifier"}
    return {"pool": "avg", "classifier": None, "layers": [], "output": "pooled"}


def torchvision_keys(state_dict: dict[str, Any]) -> dict[str, Any]:
    """Everything but the source's own head: for a port, torchvision's features.* and classifier.*."""
    return {k: v for k, v in state_dict.items() if not k.startswith("head.")}


def head_keys(state_dict: dict[str, Any]) -> dict[str, Any]:
    """The source's own head beyond torchvision's classifier (head.N.weight / head.N.bias)."""
    return {k: v for k, v in state_dict.items() if k.startswith("head.")}
