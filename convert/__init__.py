"""TF MobileNetV2 -> PyTorch conversion: sources, the ONNX and MMdnn paths, the canonical backbone.

Python API (convert.api, loaded on first use: `import convert` stays as light as `--help` needs):
`convert.tf2torch(source, ...) -> convert.Port`.
"""

from convert.runtime import guard as _guard  # noqa: F401  (must run before torch or TF load)
from convert.runtime.lazy import lazy_exports

TOOL_VERSION = "0.1.0"  # = pyproject.toml's version; recorded in checkpoints and certificates

LAZY = {"tf2torch": "convert.api", "Port": "convert.api", "PortFailed": "convert.api"}  # name -> its module


__getattr__, __dir__ = lazy_exports(__name__, LAZY, globals())  # the API's names, imported where first read
