"""Backbones for the shared regression-head trainer, ported MobileNetV2s among them."""

from convert.runtime import guard as _guard  # noqa: F401


def load(path):
    """Load a ported checkpoint as torchvision's MobileNetV2 with TF semantics (eval mode)."""
    from backbones.ported import load as _load

    return _load(path)
