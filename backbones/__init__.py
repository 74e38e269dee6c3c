"""Backbones for the shared regression-head trainer, ported MobileNetV2s among them.

Python API: `load(path)` (a ported checkpoint as its module) and `train(backbone, data, ...)` (backbones.api:
what `python -m backbones train` runs, settings by keyword).
"""

from __future__ import annotations

from convert.runtime import guard as _guard  # noqa: F401

LAZY = {"train": "backbones.api"}  # name -> its module, imported where first read


def load(path):
    """Load a ported checkpoint as torchvision's MobileNetV2 with TF semantics (eval mode)."""
    from backbones.ported import load as _load

    return _load(path)


def __getattr__(name: str):
    """The API's names, imported where first read (PEP 562)."""
    if name not in LAZY:
        raise AttributeError(f"module 'backbones' has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(LAZY[name]), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *LAZY])
