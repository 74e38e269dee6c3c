"""Layer-by-layer parity of a ported MobileNetV2 against its TF source and torchvision."""

from convert.runtime import guard as _guard  # noqa: F401
