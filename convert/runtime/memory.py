"""Handing freed heap memory back to the system between the stages of a long job.

glibc keeps what a process frees below its mmap threshold (which rises as large blocks are freed) for
reuse: parity's eval stage frees ~0.2 GB of captures and TF's session at 224 that the process would
otherwise carry, unused, into its train stage, and peak memory counts it (scripts/bench memory_parity).
`malloc_trim(0)` returns it; a few milliseconds, nothing where the C library is not glibc."""

from __future__ import annotations

import ctypes
import functools


@functools.cache
def _trim():
    """glibc's malloc_trim among the symbols the process already has (dlopen(NULL)): no library search,
    which (ctypes.util.find_library) would start `ldconfig` in a child of a process holding gigabytes."""
    try:
        return getattr(ctypes.CDLL(None), "malloc_trim", None)
    except OSError:
        return None


def release_free_memory() -> bool:
    """Return the heap's free pages to the system; whether the C library could (glibc's malloc_trim)."""
    trim = _trim()
    if trim is None:
        return False
    trim(0)
    return True
