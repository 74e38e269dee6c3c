"""Ported checkpoints as backbones: the canonical builder with TF semantics, in eval mode."""

from __future__ import annotations

from pathlib import Path

from convert.port.checkpoint import load_module


def load(path: str | Path):
    """torchvision's MobileNetV2 with the port's TF semantics, eval mode, `.tfport_meta` attached."""
    return load_module(path)
