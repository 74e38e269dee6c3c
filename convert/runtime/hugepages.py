"""glibc's malloc on transparent huge pages for the CLIs' processes: one re-execution at start.

TF's and torch's CPU buffers come from glibc's malloc. Where the kernel's THP mode is `madvise` (Debian's and
Ubuntu's default), malloc's memory is backed by 4 KiB pages unless it asks otherwise, and every fresh buffer
(a feature map, a fetched value, an unpacked constant) is faulted in a page at a time: `parity check` of
ResNet50 at 224 took ~1.0 M page faults on the bench machine, its bare forwards ~0.8 M. glibc >= 2.35
madvises its heaps for huge pages under `GLIBC_TUNABLES=glibc.malloc.hugetlb=1`: 0.22-0.29 M and 0.18-0.20 M
faults, 0.7-1.2 s less kernel time for parity there (numpy madvises its own large arrays already).

The tunable is read once, when the process starts, so a `python -m` entry point re-executes itself with it,
once, before anything heavy is imported (~40 ms). Nothing to gain where THP is `always` (the kernel does it
already) or `never`, on another C library, or for `--help`. A user's own `glibc.malloc.hugetlb` (0 included)
wins. The bench's baselines start the same way (scripts/bench.py: fair baselines).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence

TUNABLE = "glibc.malloc.hugetlb"
THP_ENABLED = "/sys/kernel/mm/transparent_hugepage/enabled"
MIN_GLIBC = (2, 35)  # the first glibc that knows the tunable
QUICK = frozenset({"-h", "--help", "--version"})  # answers that import nothing heavy: not worth a second start


def thp_mode(path: str = THP_ENABLED) -> str | None:
    """The kernel's THP mode (`always`, `madvise`, `never`), None where it has none (another OS, no THP)."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return None
    start, end = text.find("["), text.find("]")
    return text[start + 1 : end] if 0 <= start < end else None


def glibc_version() -> tuple[int, ...] | None:
    """glibc's version as (major, minor), None on another C library."""
    try:
        name, _, version = os.confstr("CS_GNU_LIBC_VERSION").partition(" ")
    except (AttributeError, ValueError, OSError):
        return None
    if name != "glibc":
        return None
    try:
        return tuple(int(p) for p in version.split(".")[:2])
    except ValueError:
        return None


def wanted(environ: Mapping[str, str], mode: str | None, libc: tuple[int, ...] | None) -> bool:
    """Does a process started with `environ` gain from the tunable? Only where THP waits for malloc's madvise,
    glibc knows the tunable and nobody set it yet."""
    return mode == "madvise" and libc is not None and libc >= MIN_GLIBC and TUNABLE not in environ.get(
        "GLIBC_TUNABLES", "")


def with_tunable(environ: Mapping[str, str]) -> dict[str, str]:
    """`environ` with the tunable added to any GLIBC_TUNABLES already there (colon-separated)."""
    env = dict(environ)
    given = env.get("GLIBC_TUNABLES", "")
    env["GLIBC_TUNABLES"] = f"{given}:{TUNABLE}=1" if given else f"{TUNABLE}=1"
    return env


def on_huge_pages(args: Sequence[str] | None = None) -> None:
    """Called first by the `python -m` entry points (and the bench's baselines): where the tunable would help
    and is not set, replace this process by the same command line with it (same pid, so whoever waits for
    it, and its exit code, are unchanged). Returns where there is nothing to do, or exec fails."""
    args = sys.argv[1:] if args is None else args
    if not args or QUICK.intersection(args):
        return
    if sys.getprofile() is not None or sys.gettrace() is not None:  # a profiler or coverage would lose its run
        return
    orig = getattr(sys, "orig_argv", None)
    if not orig or not sys.executable or not wanted(os.environ, thp_mode(), glibc_version()):
        return
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
    try:
        os.execve(sys.executable, [sys.executable, *orig[1:]], with_tunable(os.environ))
    except OSError:
        return
