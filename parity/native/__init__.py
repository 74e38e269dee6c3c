"""parity's one native kernel (fused_sums.c), built once with the system's C compiler and loaded with ctypes.

Comparing a port with its references point by point is most of what `parity check` does beyond running the
models (MobileNetV2 at 224: ~470 M values, ~1.2 s of its ~5 s after imports in numpy, which takes a
pass per figure). The kernel reads each pair of values once: 6-7x faster on one probe's feature map
(in cache), 3x on eight probes' (scripts/bench: parity_overhead). Built on first use into
~/.cache/tfport/native (keyed by the source's and the flags' sha256; written to a temporary name and
renamed, so concurrent builds cannot load a half-written library), or by `python -m parity.native`
(scripts/_venv.sh runs it). Without a compiler, where the build fails, or with TFPORT_NATIVE=0, parity
compares in numpy (parity.metrics), the figures equal to float32 rounding.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import hashlib
import os
import platform
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # numpy only where the kernel runs: `python -m parity.native` (scripts/_venv.sh) stays light
    import numpy as np

SOURCE = Path(__file__).with_name("fused_sums.c")
FLAGS = ("-O3", "-fopenmp-simd", "-fno-math-errno", "-fPIC", "-shared")  # no -ffast-math: NaN must stay NaN
BUILD_TIMEOUT_S = 60
ENV = "TFPORT_NATIVE"


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tfport" / "native"


def library_path() -> Path:
    key = hashlib.sha256(SOURCE.read_bytes() + " ".join(FLAGS).encode() + platform.machine().encode())
    return cache_dir() / f"fused_sums-{key.hexdigest()[:16]}.so"


def build(target: Path | None = None) -> Path:
    """Compile the kernel to `target` (default: the cache) unless it is there; its path. Raises OSError or
    subprocess.SubprocessError where it cannot (no compiler, a failed or overlong build)."""
    target = target or library_path()
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=target.stem + "-", suffix=".so.tmp", dir=target.parent)
    os.close(fd)
    try:
        subprocess.run([os.environ.get("CC", "cc"), *FLAGS, "-o", tmp, str(SOURCE)], check=True,
                       capture_output=True, timeout=BUILD_TIMEOUT_S)
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    return target


# what one pass gives (fused_sums.c's out[]): max|c - r|, Σ|c - r|, Σ(c - r)², Σc², Σr², min c, max c, min r,
# max r; and the first index of the largest |c - r|
Figures = tuple[list[float], int]


@functools.cache
def kernel() -> Callable[[np.ndarray, np.ndarray], Figures] | None:
    """The kernel on two contiguous float32 arrays of one size, or None (numpy's path): disabled, no compiler,
    a failed build."""
    if os.environ.get(ENV, "1") == "0":
        return None
    try:
        fn = ctypes.CDLL(str(build())).fused_sums
    except (OSError, subprocess.SubprocessError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p]
    fn.restype = None

    import numpy as np

    def fused(c: np.ndarray, r: np.ndarray) -> Figures:
        out, at = np.empty(9), np.empty(1, np.int64)
        fn(c.ctypes.data, r.ctypes.data, c.size, out.ctypes.data, at.ctypes.data)
        return out.tolist(), int(at[0])

    return fused


def main() -> int:
    """Build the kernel now (scripts/_venv.sh), so that no timed or first run of parity pays for it; the build
    alone, without loading it (or numpy)."""
    try:
        built = "disabled (TFPORT_NATIVE=0)" if os.environ.get(ENV, "1") == "0" else str(build())
    except (OSError, subprocess.SubprocessError):
        built = "not built (numpy path)"
    print(f"parity.native: {built}")
    return 0
