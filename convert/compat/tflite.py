"""TFLite's interpreter as tfport uses it (tensorflow 2.21.0): its op list, and its notices kept quiet."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

from convert.compat.pinned import Private

# the interpreter's op list with each op's inputs and outputs: the public API exposes tensors only
OPS_DETAILS = Private("tensorflow", "2.21.0", "tensorflow.lite.python.interpreter", "Interpreter._get_ops_details")


def ops_details(interp) -> list[dict]:
    """Every op of the interpreter's graph: {"op_name", "index", "inputs", "outputs"}, in execution order."""
    OPS_DETAILS.get()  # the class attribute exists: one clear line where an upgrade removed it
    return interp._get_ops_details()


@contextlib.contextmanager
def quiet_tflite() -> Iterator[None]:
    """Silence the interpreter's per-construction notices (deprecation in favour of LiteRT, and the
    debugging notice of preserve_all_tensors, which tfport needs to read intermediate tensors)."""
    with warnings.catch_warnings():
        notices = r"\s*Warning: (tf\.lite\.Interpreter is deprecated|Enabling `experimental_preserve)"
        warnings.filterwarnings("ignore", notices, UserWarning)
        yield
