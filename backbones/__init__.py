"""Backbones for the shared regression-head trainer, ported MobileNetV2s among them.

Python API: `load(path)` (a ported checkpoint as its module) and `train(backbone, data, ...)` (backbones.api:
what `python -m backbones train` runs, settings by keyword).
"""

from __future__ import annotations

from convert.runtime import guard as _guard  # noqa: F401
from convert.runtime.lazy import lazy_exports

LAZY = {"train": "backbones.api"}  # name -> its module, imported where first read


def load(path):
    """Load a ported checkpoint as torchvision's MobileNetV2 with TF semantics (eval mode)."""
    from backbones.ported import load as _load

    return _load(path)


__getattr__, __dir__ = lazy_exports(__name__, LAZY, globals())  # the API's names, imported where first read
