"""Thread pools that yield their cores when idle, so that a busy machine does not cost tfport twice.

TF, torch and ONNX Runtime each size a pool to the machine's cores, and torch's OpenMP workers (and ONNX
Runtime's) spin-wait between parallel regions by default. tfport runs the three side by side (convert's
torch worker beside TF; parity's TF, torch and ORT references in turn), so on a machine whose cores are
taken by other work the spinning workers of one pool steal the slices another needs: with two busy
processes on 2 cores, `parity check` at 224 took 30.0 and 32.8 s with spinning OpenMP workers and 19.3 and
17.7 s with passive ones; idle, 11.5/10.7 s against 11.2/10.3 s (scripts/bench --load 2, issue 27).
"""

from __future__ import annotations

import os

# OpenMP (libgomp under torch) reads it once, when the runtime starts: set before torch is imported
WAIT_POLICY = "PASSIVE"


def passive_waits() -> None:
    """Called by the `python -m` entry points before anything imports torch; a value the user set wins.
    Inherited by every child tfport starts (convert's torch worker); the bench's baselines call it too, so
    that both sides of a ratio run one wait policy (scripts/bench.py: fair baselines)."""
    os.environ.setdefault("OMP_WAIT_POLICY", WAIT_POLICY)
