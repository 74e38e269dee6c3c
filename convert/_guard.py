"""Import-order guard shared by every package.

torch imports `triton` (a CUDA-only kernel compiler) while importing torchvision; when TensorFlow was
imported first, loading triton's native module segfaults the process (seen with TF 2.21 + torch
2.14.1). tfport runs on the CPU and never compiles kernels, so it hides triton before either
framework loads; torch then reports "no triton" and works normally.
"""

import sys

sys.modules.setdefault("triton", None)  # type: ignore[assignment]
