"""convert.runtime.guard: what must be set before numpy, torch or TF load, for every entry point."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import ROOT

THREADS = """
import convert, numpy as np, os
a = np.ones(1 << 22)
for _ in range(3):
    a @ a  # OpenBLAS starts its pool on the first large call
print(len(os.listdir("/proc/self/task")))
"""


def _threads(env: dict) -> int:
    proc = subprocess.run([sys.executable, "-c", THREADS], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return int(proc.stdout.split()[-1])


def test_numpy_runs_one_blas_thread_unless_the_caller_asks_for_more():
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    env["PYTHONPATH"] = str(ROOT)
    assert _threads(env) == 1  # only the main thread: no OpenBLAS workers spinning on TF's and torch's cores
    if (os.cpu_count() or 1) > 1:
        assert _threads({**env, "OPENBLAS_NUM_THREADS": "2"}) == 2  # a caller's own setting is kept


def test_triton_is_hidden():
    proc = subprocess.run([sys.executable, "-c", "import convert, sys; print(sys.modules['triton'])"],
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == "None"
