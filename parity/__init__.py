"""Layer-by-layer parity of a ported MobileNetV2 against its TF source and torchvision.

Python API (parity.api, loaded on first use): `parity.check(candidate, source=None, ...) -> parity.ParityReport`.
"""

from convert.runtime import guard as _guard  # noqa: F401
from convert.runtime.lazy import lazy_exports

LAZY = {"check": "parity.api", "ParityReport": "parity.api"}  # name -> its module


__getattr__, __dir__ = lazy_exports(__name__, LAZY, globals())  # the API's names, imported where first read
