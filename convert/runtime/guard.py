"""Import-order guard shared by every package: settings that must be in place before numpy, torch or TF load.

torch imports `triton` (a CUDA-only kernel compiler) while importing torchvision; when TensorFlow was
imported first, loading triton's native module segfaults the process (seen with TF 2.21 + torch
2.14.1). tfport runs on the CPU and never compiles kernels, so it hides triton before either
framework loads; torch then reports "no triton" and works normally.

numpy's OpenBLAS runs one thread: tfport's numpy work is memory-bound (parity's chunked float64 sums,
probe generation), and OpenBLAS's threads spin-wait after every call on the cores TF's and torch's own
pools need next (the README's benchmark section has the measured saving). A caller's own setting
(OPENBLAS_NUM_THREADS in the environment) is kept.
"""

import os
import sys

sys.modules.setdefault("triton", None)  # type: ignore[assignment]
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
