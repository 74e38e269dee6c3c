"""Layer-by-layer parity of a ported MobileNetV2 against its TF source and torchvision."""

from convert import _guard  # noqa: F401
