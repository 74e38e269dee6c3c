"""TF MobileNetV2 -> PyTorch conversion: sources, the ONNX and MMdnn paths, the canonical backbone.

Python API (convert.api, loaded on first use: `import convert` stays as light as `--help` needs):
`convert.tf2torch(source, ...) -> convert.Port`.
"""

from convert.runtime import guard as _guard  # noqa: F401  (must run before torch or TF load)

TOOL_VERSION = "0.1.0"  # = pyproject.toml's version; recorded in checkpoints and certificates

LAZY = {"tf2torch": "convert.api", "Port": "convert.api", "PortFailed": "convert.api"}  # name -> its module


def __getattr__(name: str):
    """The API's names, imported where first read (PEP 562)."""
    if name not in LAZY:
        raise AttributeError(f"module 'convert' has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(LAZY[name]), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *LAZY])
