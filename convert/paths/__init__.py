"""The conversion paths, each registered with `@via(NAME)` and returning the same typed result:

  onnx   real tf2onnx -> ONNX (onnx.checker, ONNX Runtime) -> the canonical backbone (convert.paths.onnx)
  mmdnn  real MMdnn 0.3.1 -> IR -> MMdnn's PyTorch emitter, kept as emitted (convert.paths.mmdnn)

`--via both` runs them in registration order (onnx first). Importing this package registers both (TF,
tf2onnx and MMdnn themselves are imported only when a path runs).
"""

# isort: off
from convert.paths import onnx  # noqa: F401  (registers first: --via both's order)
from convert.paths import mmdnn  # noqa: F401
# isort: on
from convert.paths.base import PATHS, get, via  # noqa: F401
