"""`exit_now`: the CLIs end without interpreter teardown, and nothing a pipe waits for is lost."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import ROOT

CODE = """
import logging, sys
from convert.runtime.fast_exit import exit_now
logging.basicConfig(stream=sys.stderr)
sys.stdout.write("x" * 200000)   # more than one pipe buffer, still in Python's buffer when exit_now runs
logging.getLogger("t").warning("logged")
exit_now({code})
print("never")
"""


def _run(code: int) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-c", CODE.format(code=code)], env=env, capture_output=True, text=True,
                          timeout=60)


def test_everything_written_reaches_the_pipe_and_the_exit_code_is_kept():
    for code in (0, 1, 2):
        proc = _run(code)
        assert proc.returncode == code
        assert proc.stdout == "x" * 200000  # flushed, and nothing after exit_now ran
        assert "logged" in proc.stderr


def test_none_is_success_like_sys_exit():
    assert _run(None).returncode == 0  # type: ignore[arg-type]


DAEMON = """
import multiprocessing, time
from convert.runtime.fast_exit import exit_now

def sleep_forever():
    while True:
        time.sleep(0.1)

if __name__ == "__main__":
    p = multiprocessing.get_context("spawn").Process(target=sleep_forever, daemon=True)
    p.start()
    print(p.pid, flush=True)
    exit_now(0)
"""


def test_daemon_children_end_with_the_process(tmp_path):
    """As at a normal exit: convert's torch worker must not outlive (and write tracebacks after) its parent."""
    import time

    script = tmp_path / "daemon.py"
    script.write_text(DAEMON)
    proc = subprocess.run([sys.executable, str(script)], env=dict(os.environ, PYTHONPATH=str(ROOT)),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    pid = int(proc.stdout.split()[0])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.05)
    assert not _alive(pid)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as f:
            return "zombie" not in f.read().lower()
    except OSError:
        return False


def test_a_profiler_still_gets_to_write_its_output(tmp_path):
    """scripts/bench --profile runs a CLI under `python -m cProfile -o F`: F must be written."""
    script = tmp_path / "prog.py"
    script.write_text("from convert.runtime.fast_exit import exit_now\nexit_now(3)\n")
    prof = tmp_path / "out.prof"
    proc = subprocess.run([sys.executable, "-m", "cProfile", "-o", str(prof), str(script)],
                          env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True, text=True, timeout=60)
    assert prof.is_file() and prof.stat().st_size > 0, proc.stderr  # (cProfile itself reports exit 0)
