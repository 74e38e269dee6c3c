"""malloc on transparent huge pages (convert/runtime/hugepages.py): when the CLIs re-execute themselves with
glibc's tunable, that they do it once, that a user's own setting wins, that the kernel then really backs
malloc's blocks with huge pages, and that every entry point and every bench baseline starts that way."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from convert.runtime import hugepages
from tests.conftest import ROOT


@pytest.mark.parametrize("environ,mode,libc,expected", [
    ({}, "madvise", (2, 36), True),
    ({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"}, "madvise", (2, 35), True),  # another tunable: added to it
    ({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"}, "madvise", (2, 36), False),  # the user's own choice wins
    ({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"}, "madvise", (2, 36), False),  # already re-executed
    ({}, "always", (2, 36), False),  # the kernel backs every heap with huge pages already
    ({}, "never", (2, 36), False),
    ({}, None, (2, 36), False),  # no THP (another OS, a kernel without it)
    ({}, "madvise", (2, 34), False),  # glibc does not know the tunable
    ({}, "madvise", None, False),  # musl, macOS
])
def test_when_a_process_gains_from_the_tunable(environ, mode, libc, expected):
    assert hugepages.wanted(environ, mode, libc) is expected


def test_the_tunable_is_added_to_the_users_own():
    assert hugepages.with_tunable({"A": "1"}) == {"A": "1", "GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"}
    env = hugepages.with_tunable({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"})
    assert env["GLIBC_TUNABLES"] == "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1"


@pytest.mark.parametrize("text,mode", [("always [madvise] never\n", "madvise"), ("[always] madvise never", "always"),
                                       ("always madvise [never]", "never"), ("garbage", None)])
def test_the_kernels_mode_is_read_from_sysfs(tmp_path, text, mode):
    (tmp_path / "enabled").write_text(text)
    assert hugepages.thp_mode(str(tmp_path / "enabled")) == mode
    assert hugepages.thp_mode(str(tmp_path / "missing")) is None


# a child that reports its tunables before and after on_huge_pages, then how much of a touched 64 MiB malloc
# block the kernel backs with huge pages (AnonHugePages of the whole process, in kB)
CHILD = """
import ctypes, os, sys
from convert.runtime.hugepages import on_huge_pages
print("start", os.environ.get("GLIBC_TUNABLES"), flush=True)
on_huge_pages(sys.argv[1:])
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
block = libc.malloc(64 << 20)
ctypes.memset(block, 1, 64 << 20)
huge = [int(line.split()[1]) for line in open("/proc/self/smaps_rollup") if line.startswith("AnonHugePages:")]
print("after", os.environ.get("GLIBC_TUNABLES"), huge[0] if huge else 0)
"""


def _child(*args: str, tunables: str | None = None) -> list[list[str]]:
    env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"} | {"PYTHONPATH": str(ROOT)}
    if tunables is not None:
        env["GLIBC_TUNABLES"] = tunables
    proc = subprocess.run([sys.executable, "-c", CHILD, *args], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return [line.split() for line in proc.stdout.splitlines()]


needs_madvise = pytest.mark.skipif(
    not hugepages.wanted({}, hugepages.thp_mode(), hugepages.glibc_version()),
    reason="THP is not in madvise mode here, or glibc < 2.35: nothing to re-execute for")


@needs_madvise
def test_the_process_reexecutes_once_and_malloc_gets_huge_pages():
    plain = _child("--help")  # a quick answer: no second start, 4 KiB pages
    assert plain[0] == ["start", "None"] and plain[1][:2] == ["after", "None"]
    lines = _child("check", "x.pth")
    assert [line[:2] for line in lines] == [["start", "None"], ["start", "glibc.malloc.hugetlb=1"],
                                            ["after", "glibc.malloc.hugetlb=1"]]  # one re-exec, then on
    assert int(lines[-1][2]) >= 32 * 1024 > int(plain[1][2])  # most of the 64 MiB on 2 MiB pages; none without


@needs_madvise
def test_a_users_own_setting_is_kept():
    lines = _child("check", "x.pth", tunables="glibc.malloc.hugetlb=0")
    assert [line[:2] for line in lines] == [["start", "glibc.malloc.hugetlb=0"], ["after", "glibc.malloc.hugetlb=0"]]


PROBE = """
import os, runpy, sys
import convert.runtime.hugepages as hugepages
import convert.runtime.fast_exit as fast_exit
calls = []
hugepages.on_huge_pages = lambda *a: calls.append(("huge pages", "torch" in sys.modules))
fast_exit.exit_now = lambda code: print(calls, os.environ.get("OMP_WAIT_POLICY"))
sys.argv = [{name!r}, "--help"]
try:
    {run}
except BaseException:  # argparse's --help, or a baseline that takes no flags failing on it
    print(calls, os.environ.get("OMP_WAIT_POLICY"))
"""


@pytest.mark.parametrize("name", ["convert", "parity", "backbones", "scripts/bench_forward.py",
                                  "scripts/bench_tf2onnx.py", "scripts/bench_mmdnn.py", "scripts/bench_loop.py"])
def test_every_entry_point_and_baseline_starts_on_huge_pages(name):
    """Both sides of every bench ratio start the same way (scripts/bench.py: fair baselines): huge pages,
    passive OpenMP waits (convert/runtime/threads.py)."""
    run = (f"runpy.run_path({str(ROOT / name)!r}, run_name='__main__')" if name.endswith(".py")
           else f"runpy.run_module({name!r}, run_name='__main__')")
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"} | {"PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", PROBE.format(name=name, run=run)], env=env, capture_output=True,
                          text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.splitlines()[-1] == "[('huge pages', False)] PASSIVE", proc.stdout[-500:]  # once, before torch
