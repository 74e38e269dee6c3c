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
    t0 = time.monotonic()
    proc = run_cli("convert", "tf2torch", str(src), "-o", str(out), "--timeout", "1")
    line = assert_one_line_error(proc, 2, "exceeded its bound of 1 s")
    assert "stage 'load'" in line and str(src) in line
    assert time.monotonic() - t0 < 60  # ended by the bound, not by finishing the conversion
    assert not list(tmp_path.iterdir())


def test_a_python_loop_is_interrupted_and_named():
    """The hang once seen (tf_keras rebuilding a config forever) is Python code: interrupted at the bound."""
    from convert import bounds
    from convert.errors import TfportError

    with pytest.raises(TfportError, match=r"model\.keras: stage 'rebuild' exceeded its bound of 0\.3 s"):
        with bounds.bounded(0.3, "model.keras"), bounds.stage("rebuild"):
            while True:
                pass


def test_nested_stages_keep_the_outer_deadline_and_a_finished_run_never_fires():
    from convert import bounds

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
