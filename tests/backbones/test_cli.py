"""The CLI as a user runs it: bad input is one `error:` line and exit 2, never a traceback, nothing
half-written; `--help` does not load torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, assert_one_line_error

from .conftest import train_argv


def _bad_csv(tmp: Path, noses: Path, rows: str) -> Path:
    folder = tmp / "data"
    folder.mkdir()
    (folder / "images").symlink_to(noses / "images")
    good = "file,x,y,split\nnose_00000.png,0.5,0.5,train\nnose_00004.png,0.5,0.5,valid\n"
    (folder / "labels.csv").write_text(good + rows)
    return folder


def _garbage(tmp: Path) -> Path:
    (tmp / "corrupt.pth").write_bytes(b"PK\x03\x04 this is not a checkpoint")
    return tmp / "corrupt.pth"


# case -> (make the data folder, backbone, extra args, words the error line must contain)
CASES = {
    "missing-data-folder": (lambda t, n: t / "nowhere", "mobilenet_v2", (), "no such data folder"),
    "row-without-image": (lambda t, n: _bad_csv(t, n, "ghost.png,0.5,0.5,train\n"), "mobilenet_v2", (),
                          "ghost.png does not exist"),
    "point-outside-image": (lambda t, n: _bad_csv(t, n, "nose_00001.png,1.2,0.5,train\n"), "mobilenet_v2", (),
                            "outside the image"),
    "corrupt-checkpoint": (lambda t, n: n, _garbage, (), "corrupt.pth"),
    "unknown-backbone": (lambda t, n: n, "resnet18", (), "unknown backbone 'resnet18'"),
    "bad-number": (lambda t, n: n, "mobilenet_v2", ("--bs", "eight"), "invalid int value: 'eight'"),
}


@pytest.fixture(scope="module")
def bad_runs(noses, tmp_path_factory) -> dict[str, tuple[subprocess.CompletedProcess, Path, str]]:
    """All bad-input runs start at once (each pays a torch import; two cores overlap them)."""
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}
    procs = {}
    for case, (make_data, backbone, extra, mentions) in CASES.items():
        tmp = tmp_path_factory.mktemp(case)
        data = make_data(tmp, noses)
        backbone = str(backbone(tmp)) if callable(backbone) else backbone
        out = tmp / "out"
        args = train_argv(data, out, "--no-parity-gate", *extra, backbone=backbone)
        argv = [sys.executable, "-m", "backbones", *args]
        procs[case] = (subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True),
                       out, mentions, argv)
    done = {}
    for case, (p, out, mentions, argv) in procs.items():
        stdout, stderr = p.communicate(timeout=300)
        done[case] = (subprocess.CompletedProcess(argv, p.returncode, stdout, stderr), out, mentions)
    return done


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_bad_input_is_one_line_exit_2(bad_runs, case):
    proc, out, mentions = bad_runs[case]
    assert_one_line_error(proc, code=2, mentions=mentions)
    assert proc.stderr.strip().count("\n") == 0  # and nothing else on stderr
    assert not out.exists()  # nothing half-written


def _run(*args: str) -> subprocess.CompletedProcess:
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True, timeout=120)


def test_help_does_not_import_torch():
    proc = _run("-c", "import sys; from backbones.cli import main\ntry:\n main(['train', '--help'])\n"
                      "except SystemExit: pass\nprint('torch' in sys.modules)")
    assert proc.returncode == 0 and "examples:" in proc.stdout and proc.stdout.strip().endswith("False")


def test_make_data_defaults_to_1000_images():
    from backbones.cli import build_parser

    assert build_parser().parse_args(["make-data", "d"]).n == 1000


def test_make_data_and_list(tmp_path):
    proc = _run("-m", "backbones", "make-data", str(tmp_path / "d"), "--n", "10", "--size", "24")
    assert proc.returncode == 0 and proc.stdout.startswith("DONE: 10 images (8 train, 2 valid)")
    again = _run("-m", "backbones", "make-data", str(tmp_path / "d"), "--n", "10")
    assert_one_line_error(again, code=2, mentions="already holds a dataset")
    listing = _run("-m", "backbones", "list")
    assert listing.returncode == 0
    assert [line.split()[0] for line in listing.stdout.splitlines()[1:7]] == [
        "resnet34", "resnet50", "vgg16_bn", "mobilenet_v2", "mobilenet_v2:imagenet", "PATH.pth"]
    assert max(map(len, listing.stdout.splitlines())) <= 80  # read in CI logs, piped at 80 columns
