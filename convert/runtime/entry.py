"""How a tfport process starts: every `python -m` entry point, and the bench's baselines with it.

One call, so that both sides of a bench ratio start alike and cannot drift apart (scripts/bench.py: fair
baselines; the baselines spun in OpenMP for four stops after the CLIs' workers went passive).
"""

from __future__ import annotations

from convert.runtime import fast_exit, hugepages, threads


def start(*, owned: bool = True) -> None:
    """Before anything heavy is imported: malloc on transparent huge pages (a re-exec, once, so first:
    convert/runtime/hugepages.py), then, where `owned`, this process is tfport's to end when a stage runs past
    its bound (convert/runtime/bounds.py; a baseline runs no bounded stage), then passive OpenMP waits
    (convert/runtime/threads.py)."""
    hugepages.on_huge_pages()
    if owned:
        fast_exit.own_process()
    threads.passive_waits()
