"""No stage may hang: every long step runs under a time bound, and past it the run ends in one line.

A watchdog thread holds the current stage's deadline. When it passes, the main thread gets a real
SIGINT (so a blocking wait on the torch worker or a Python loop — tf_keras rebuilding a config
forever — is interrupted at once) and the CLI turns it into `error: SRC: stage 'tf2onnx' exceeded its
bound of 600 s (--timeout)`, exit 2, outputs removed as on any failure. Native code that never
returns to Python (a TF kernel, protobuf parsing) cannot be interrupted: after a grace period the
watchdog prints the same line itself and ends the process with exit 2 (`os._exit`, no output file
has been renamed into place yet: every output is written to a temporary name first) — only in a
process tfport owns (the `python -m` entry points call `convert.runtime.fast_exit.own_process()`).
In someone else's process (the Python API in a notebook, a test runner) the watchdog never ends the
process: the interrupt is all it sends, and a call stuck in native code runs on.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from convert.runtime import fast_exit

# generous: the slowest stage seen here (MMdnn at alpha 1.4, 224 px, a loaded 2-core machine) takes ~60 s
BASE_SECONDS = 300.0
SECONDS_PER_MB = 10.0  # larger files (width, input size, heads) take proportionally longer to read and convert
GRACE_SECONDS = 15.0  # after the interrupt, time for native code to return to Python


def default_bound(src: str | Path) -> float:
    """The bound for each stage when the user gives none: scaled to the size of the model's files."""
    p = Path(src)
    try:
        size = sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) if p.is_dir() else p.stat().st_size
    except OSError:
        size = 0
    return BASE_SECONDS + SECONDS_PER_MB * size / 1e6


class Watchdog:
    """One per run: `with watchdog.stage("tf2onnx"):` bounds that stage; `expired` names what ran over."""

    def __init__(self, seconds: float, where: str) -> None:
        if not seconds > 0:
            raise ValueError(f"a time bound must be positive, got {seconds}")
        self.seconds, self.where = float(seconds), where
        self.expired: str | None = None
        self._stages: list[tuple[str, float]] = []  # nested stages; the innermost is watched
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="tfport-watchdog", daemon=True)
        self._thread.start()

    def message(self) -> str:
        return f"{self.where}: stage '{self.expired}' exceeded its bound of {self.seconds:g} s (--timeout)"

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        with self._lock:
            self._stages.append((name, time.monotonic() + self.seconds))
        try:
            yield
        finally:
            with self._lock:
                self._stages.pop()

    def close(self) -> None:
        self._stop.set()

    def _watch(self) -> None:
        while not self._stop.wait(0.05):
            with self._lock:
                current = self._stages[-1] if self._stages else None
            if current is None or time.monotonic() < current[1]:
                continue
            self.expired = current[0]
            signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
            if self._stop.wait(GRACE_SECONDS) or not fast_exit.owns_process():
                return
            print(f"error: {self.message()}", file=sys.stderr, flush=True)  # native code never returned
            os._exit(2)


_CURRENT: Watchdog | None = None


@contextlib.contextmanager
def watching(seconds: float | None, src: str | Path) -> Iterator[Watchdog]:
    """Install the run's watchdog (seconds None: default_bound(src)); stages below find it with `stage`."""
    global _CURRENT
    dog = Watchdog(seconds if seconds is not None else default_bound(src), str(src))
    _CURRENT = dog
    try:
        yield dog
    finally:
        _CURRENT = None
        dog.close()


@contextlib.contextmanager
def stage(name: str) -> Iterator[None]:
    """Bound a stage by the current run's watchdog; unbounded where no run installed one (library use)."""
    dog = _CURRENT
    if dog is None:
        yield
        return
    with dog.stage(name):
        yield


@contextlib.contextmanager
def _interruptible() -> Iterator[None]:
    """SIGINT raising KeyboardInterrupt in the main thread for the run: a process started in the background
    (`nohup python -m convert … &`, a non-interactive shell's `&`) inherits SIGINT ignored, and the bound's
    interrupt would never arrive. The handler before is restored after."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGINT) != signal.SIG_IGN:
        yield
        return
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)


@contextlib.contextmanager
def bounded(seconds: float | None, src: str | Path) -> Iterator[Watchdog]:
    """A CLI run under a watchdog: the interrupt a bound sends becomes one TfportError naming the stage."""
    from convert.runtime.errors import fail

    with _interruptible(), watching(seconds, src) as dog:
        try:
            yield dog
        except KeyboardInterrupt:
            if dog.expired:
                raise fail(dog.message()) from None
            raise
