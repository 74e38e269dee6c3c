"""Every CLI keeps TensorFlow's C++ start-up lines off stdout and stderr; `--verbose` leaves them on."""

from __future__ import annotations

import pytest

from tests.conftest import assert_one_line_error, run_cli

NOISE = ("I0000", "oneDNN", "cudart", "absl::InitializeLog")  # absl's lines from TF's shared libraries
CASE = ("keras2_h5", 0.35, (96, 96))


def noise_in(proc) -> list[str]:
    return [line for line in (proc.stdout + proc.stderr).splitlines() if any(n in line for n in NOISE)]


@pytest.fixture(scope="module")
def ported(samples, tmp_path_factory):
    """A real `convert tf2torch` run through both paths (tf2onnx, MMdnn, the torch worker): its output and port."""
    out = tmp_path_factory.mktemp("quiet") / "ported.pth"
    proc = run_cli("convert", "tf2torch", str(samples.get(*CASE)), "-o", str(out), "--via", "both", "--probes", "4")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return proc, out


def test_convert_prints_no_framework_chatter(ported):
    proc, _ = ported
    assert noise_in(proc) == []
    assert proc.stderr == ""  # the torch worker and MMdnn print nothing either
    assert proc.stdout.strip().splitlines()[-1].startswith("PASSED")
    # README: "It prints progress, then a table" (rows: tests/parity/test_report.py)
    progress = ("loading ", "TF reference on 4 probe inputs", "tf2onnx: converting the frozen graph", "onnx.checker",
                "MMdnn 0.3.1: TF frozen graph -> IR")
    assert all(p in proc.stdout for p in progress), proc.stdout[:3000]
    assert proc.stdout.index("onnx.checker") < proc.stdout.index("layers mapped")


def test_parity_prints_no_framework_chatter(ported):
    _, out = ported
    proc = run_cli("parity", "check", str(out), "--probes", "2", "--against", "tf")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert noise_in(proc) == []
    assert proc.stderr == ""


def test_sample_prints_no_framework_chatter(tmp_path):
    proc = run_cli("convert", "sample", str(tmp_path), "--alpha", "0.35", "--size", "96", "--forms", "keras2_h5")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert noise_in(proc) == [] and proc.stderr == ""


def test_errors_still_reach_stderr_after_tf_loaded(tmp_path):
    """fd 2 is back once TF is in: a corrupt GraphDef, found by TF's own parser, still gets its one line."""
    junk = tmp_path / "junk.pb"
    junk.write_bytes(bytes(range(256)) * 2)
    proc = run_cli("convert", "tf2torch", str(junk), "-o", str(tmp_path / "x.pth"))
    assert noise_in(proc) == []
    assert_one_line_error(proc, mentions="not a TensorFlow GraphDef")


@pytest.mark.parametrize("cli", ["convert", "parity"])
def test_verbose_shows_the_chatter(cli, ported, samples, tmp_path):
    """The same check fails when the chatter is let through: the assertion above can see it."""
    _, out = ported
    args = {"convert": ("convert", "sample", str(tmp_path), "--alpha", "0.35", "--size", "96", "--forms", "keras2_h5"),
            "parity": ("parity", "check", str(out), "--probes", "1", "--against", "tf")}[cli]
    proc = run_cli(*args, "--verbose")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    # which lines TF prints depends on the CPU ("oneDNN custom operations are on" only where oneDNN is used):
    # any of absl's start-up lines shows the filter is off
    assert noise_in(proc), proc.stderr[-2000:]


def test_framework_warnings_are_filtered_and_ours_are_not():
    """quiet_frameworks() ignores warnings raised in the frameworks' modules only, not process-wide."""
    import warnings

    from convert.runtime.quiet import quiet_frameworks

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        quiet_frameworks()
        for module in ("tensorflow.python.framework.ops", "torch.nn.modules.module", "tf2onnx.tfonnx",
                       "convert.pipeline", "parity.run"):
            warnings.warn_explicit(f"from {module}", UserWarning, f"{module}.py", 1, module=module)
    assert sorted(str(w.message) for w in seen) == ["from convert.pipeline", "from parity.run"]
