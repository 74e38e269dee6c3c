"""No stage hangs: a bound fires in one line, exit 2, nothing written; the watchdog is exact about stages."""

from __future__ import annotations

import time

import pytest

from tests.conftest import assert_one_line_error, run_cli


def test_a_stage_past_its_bound_ends_the_run_in_one_line(samples, tmp_path):
    """A real conversion given a 1 s bound: loading TF and the model alone takes longer, so the bound fires
    in the first stage — as a user would see it (a fresh process), exit 2, one line, no output."""
    src = samples.get("keras2_h5", 0.35, (96, 96))
    out = tmp_path / "p.pth"
    proc = run_cli("convert", "tf2torch", str(src), "-o", str(out), "--timeout", "1")
    line = assert_one_line_error(proc, 2, "exceeded its bound of 1 s")
    assert "stage 'load'" in line and str(src) in line  # ended by the bound in its first stage, not by finishing
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("sigint", ["default", "ignored"])
def test_a_python_loop_is_interrupted_and_named(sigint):
    """The hang once seen (tf_keras rebuilding a config forever) is Python code: interrupted at the bound.
    In-process (the API's case): the loop is itself bounded, so a missing interrupt fails this test and
    says what the main thread's signal state was, rather than hanging or ending pytest. `ignored`: a process
    started in the background (`nohup … &`) inherits SIGINT ignored; the bound still interrupts, and the
    handler is ignored again after."""
    import signal
    import threading

    from convert.runtime import bounds, fast_exit
    from convert.runtime.errors import TfportError

    assert not fast_exit.owns_process()  # pytest's process: no watchdog may end it
    handler = signal.SIG_IGN if sigint == "ignored" else signal.default_int_handler
    before = signal.signal(signal.SIGINT, handler)
    try:
        with pytest.raises(TfportError, match=r"model\.keras: stage 'rebuild' exceeded its bound of 0\.3 s"):
            with bounds.bounded(0.3, "model.keras"), bounds.stage("rebuild"):
                t0 = time.monotonic()
                while time.monotonic() - t0 < 30:
                    pass
                blocked = sorted(int(s) for s in signal.pthread_sigmask(signal.SIG_BLOCK, []))
                pytest.fail(f"not interrupted in 30 s: SIGINT handler {signal.getsignal(signal.SIGINT)}, blocked "
                            f"signals {blocked}, threads {[t.name for t in threading.enumerate()]}")
        assert signal.getsignal(signal.SIGINT) == handler
    finally:
        signal.signal(signal.SIGINT, before)


def test_a_watchdog_never_ends_a_process_tfport_does_not_own():
    """Native code past its bound, in a library user's process (no `python -m` entry point): the interrupt
    is sent, the process lives on (before, `os._exit(2)` ended a notebook kernel or the test runner)."""
    import subprocess
    import sys

    from tests.conftest import ROOT

    code = ("import signal, time\nfrom convert.runtime import bounds\nbounds.GRACE_SECONDS = 0.5\n"
            "signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})\n"
            "with bounds.watching(0.3, 'model.pb'), bounds.stage('tf2onnx'):\n    time.sleep(2.5)\n"
            "print('alive')\n")
    proc = subprocess.run([sys.executable, "-c", code], env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=120)
    assert (proc.returncode, proc.stdout.strip(), proc.stderr) == (0, "alive", "")


def test_nested_stages_keep_the_outer_deadline_and_a_finished_run_never_fires():
    from convert.runtime import bounds

    with bounds.bounded(0.5, "m.pb") as dog:
        with bounds.stage("outer"):
            with bounds.stage("inner"):
                time.sleep(0.1)
            time.sleep(0.1)
    time.sleep(0.6)  # past the bound, after the run: nothing fires
    assert dog.expired is None


@pytest.mark.parametrize("value", ["0", "-3", "inf", "nan", "soon"])
def test_timeout_must_be_a_positive_number(value, capsys):
    from convert.cli import main

    assert main(["tf2torch", "m.pb", "--timeout", value]) == 2
    assert "--timeout" in capsys.readouterr().err


def test_the_default_bound_scales_with_the_model_s_files(tmp_path):
    """README: by default 300 s plus 10 s per MB of the model's files (a SavedModel folder: all its files)."""
    from convert.runtime.bounds import default_bound

    (tmp_path / "m.pb").write_bytes(b"\0" * 2_000_000)
    assert default_bound(tmp_path / "m.pb") == pytest.approx(320.0)
    folder = tmp_path / "saved"
    (folder / "variables").mkdir(parents=True)
    (folder / "saved_model.pb").write_bytes(b"\0" * 500_000)
    (folder / "variables" / "v.data").write_bytes(b"\0" * 1_500_000)
    assert default_bound(folder) == pytest.approx(320.0)


def test_native_code_that_never_returns_ends_the_process_with_the_same_line():
    """The interrupt cannot stop native code that never returns to Python. Modelled by a main thread that
    blocks SIGINT and waits in C with the GIL released, as TF's kernels run: after the grace period (15 s;
    1 s here) the watchdog prints the line itself and exits 2. (A C loop that holds the GIL would stop the
    watchdog thread too: nothing inside the process can end that.)"""
    import subprocess
    import sys

    from convert.runtime import bounds
    from tests.conftest import ROOT

    assert bounds.GRACE_SECONDS == 15.0
    code = ("import signal, time\nfrom convert.runtime import bounds\nbounds.GRACE_SECONDS = 1.0\n"
            "from convert.runtime.fast_exit import own_process\nown_process()\n"
            "with bounds.bounded(0.5, 'model.pb'), bounds.stage('tf2onnx'):\n"
            "    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})\n    time.sleep(60)\n")
    # the code sleeps 60 s: only the watchdog ends it within the 30 s the run is given (TimeoutExpired otherwise)
    proc = subprocess.run([sys.executable, "-c", code], env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=30)
    line = assert_one_line_error(proc, 2, "model.pb: stage 'tf2onnx' exceeded its bound of 0.5 s (--timeout)")
    assert proc.stderr.strip() == line and proc.stdout == ""


def test_parity_check_runs_under_the_bound_too(converted, tmp_path):
    """`parity check`'s stages (load, parity) are bounded like convert's: past it, exit 2, one line, no report."""
    _, ported, _ = converted(("keras2_h5", 1.0, (96, 96)))
    report = tmp_path / "r.json"
    proc = run_cli("parity", "check", str(ported), "--timeout", "0.3", "--json", str(report))
    line = assert_one_line_error(proc, 2, "exceeded its bound of 0.3 s (--timeout)")
    assert "stage 'load'" in line and not report.exists()


@pytest.mark.exhaustive
def test_a_candidate_that_never_finishes_loading_is_bounded(converted, tmp_path):
    """Loading MMdnn's emitted `.py` runs its code: code that never returns meets the 'load' bound.
    Exhaustive (a `--via both` conversion, ~20 s): parity's 'load' bound is in the default suite
    (test_parity_check_runs_under_the_bound_too), and a Python loop past its bound (test_a_python_loop_...)."""
    import shutil

    src, ported, _ = converted(("keras2_h5", 1.0, (96, 96)), via="both")
    code = tmp_path / "hangs.py"
    code.write_text("import time\nwhile True:\n    time.sleep(0.05)\n")
    shutil.copy(ported.parent / "ported.mmdnn.npy", tmp_path / "hangs.npy")  # real weights: the code is what hangs
    # the code never returns: only the bound ends the run (the run is given 120 s, TimeoutExpired otherwise)
    proc = run_cli("parity", "check", str(code), "--source", str(src), "--timeout", "3", timeout=120)
    assert_one_line_error(proc, 2, "stage 'load' exceeded its bound of 3 s (--timeout)")
