"""What every conversion path is called with, and the registry that names the paths (`--via`).

A path takes the loaded source, the probe inputs, TF's outputs on them (a Mapping that waits for the
reference running beside it), a progress callback and the torch half (convert.paths.worker), and
returns a :class:`convert.paths.result.PathResult`: the same shape for every path.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

import numpy as np

from convert.runtime.errors import fail
from convert.runtime.registry import Registry

Progress = Callable[[str], None]


class ConversionPath(Protocol):
    def __call__(self, source: Any, x: np.ndarray, ref: Mapping[str, np.ndarray], progress: Progress,
                 torch_half: Any) -> Any: ...


PATHS: Registry[ConversionPath] = Registry("conversion path")


def via(name: str) -> Callable[[ConversionPath], ConversionPath]:
    """Register the conversion path `--via NAME` (duplicates raise)."""
    return PATHS.register(name)


def get(name: str) -> ConversionPath:
    try:
        return PATHS[name]
    except KeyError:
        raise fail(f"unknown --via {name!r}; choose {', '.join(PATHS)} or both") from None
