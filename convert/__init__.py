"""TF MobileNetV2 -> PyTorch conversion: sources, the ONNX and MMdnn paths, the canonical backbone."""

from convert.runtime import guard as _guard  # noqa: F401  (must run before torch or TF load)

TOOL_VERSION = "0.1.0"  # = pyproject.toml's version; recorded in checkpoints and certificates
