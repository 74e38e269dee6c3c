"""Layer-by-layer parity of a ported MobileNetV2 against its TF source and torchvision.

Python API (parity.api, loaded on first use): `parity.check(candidate, source=None, ...) -> parity.ParityReport`.
"""

from convert.runtime import guard as _guard  # noqa: F401

LAZY = {"check": "parity.api", "ParityReport": "parity.api"}  # name -> its module


def __getattr__(name: str):
    """The API's names, imported where first read (PEP 562)."""
    if name not in LAZY:
        raise AttributeError(f"module 'parity' has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(LAZY[name]), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *LAZY])
