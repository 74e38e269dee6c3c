"""convert.runtime.memory: freed heap memory goes back to the system (parity calls it between stages)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent("""
    import numpy as np
    from convert.runtime.memory import release_free_memory

    def private():
        fields = dict(line.split(":", 1) for line in open("/proc/self/status"))
        return sum(int(fields[k].split()[0]) for k in ("RssAnon", "RssShmem")) * 1024

    blocks = [np.ones(100_000 // 8) for _ in range(2000)]  # 200 MB in 100 kB blocks: heap, not mmap
    kept = blocks[::10]  # every tenth stays: the heap cannot shrink from its top
    del blocks
    before = private()
    print(release_free_memory(), before, private())
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc and /proc")
def test_freed_heap_memory_is_returned():
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True).stdout.split()
    released, before, after = out[0] == "True", int(out[1]), int(out[2])
    assert released
    assert before - after > 120e6, (before, after)  # ~180 MB freed but held by malloc, handed back
