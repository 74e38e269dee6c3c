"""End a CLI process without the interpreter's teardown.

With TensorFlow and torch imported, Python's finalisation (module teardown, freeing every object one by
one, the frameworks' own exit hooks) takes 1.5–2.5 s on the 2-core machine of the benchmarks, time the
operating system spends better by reclaiming the whole address space at once. Every file tfport writes
is complete before `main()` returns (atomic renames, closed handles); what is left to do is flushing the
standard streams and logging, done here, and then `os._exit`. Daemon child processes (convert's torch
worker) are terminated first, as the interpreter's exit handler does.

Only the `python -m ...` entry points call this, never `main()` itself: tests and library users that
call `main()` in-process keep a normal interpreter.
"""

from __future__ import annotations

import logging
import os
import sys

_OWNED = False  # may tfport end this process (a stage past its bound)? Only a `python -m` entry point says so


def own_process() -> None:
    """Called by the `python -m` entry points: this process is tfport's, so a stage stuck in native code past
    its bound may end it (convert/runtime/bounds.py). In a notebook or a test runner it never is."""
    global _OWNED
    _OWNED = True


def owns_process() -> bool:
    return _OWNED


def exit_now(code: int | None) -> None:
    """Flush what a person or a pipe is waiting for, end daemon children as the interpreter's own exit
    would (convert's torch worker may still be importing torch after an early error), then end the
    process with `code`. Under a profiler or a tracer (`python -m cProfile`, coverage, scripts/bench
    --profile) the interpreter exits normally, so that they write what they measured."""
    if sys.getprofile() is not None or sys.gettrace() is not None:
        sys.exit(code)
    if "multiprocessing" in sys.modules:
        import multiprocessing

        for child in multiprocessing.active_children():
            if child.daemon:
                child.terminate()
    try:
        logging.shutdown()
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                stream.flush()
    except (OSError, ValueError):  # a closed pipe (`| head`): nothing more can reach it
        code = code or 1
    os._exit(int(code or 0) & 0xFF)
