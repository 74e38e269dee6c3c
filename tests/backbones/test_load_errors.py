"""Every file the trainer reads with torch.load goes through convert.port.torch_files.torch_load: a truncated
file, a pickle whose GLOBAL would run code, a file that is no checkpoint at all — handed to
`--backbone`, `--weights` or `--resume` — is one `error:` line naming the file, exit 2, no traceback,
nothing run. Before the one wrapper, `--weights` and `--resume` let a text file's KeyError out as a
traceback and called a code-carrying pickle merely "not readable (UnpicklingError)"."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import ROOT, assert_one_line_error
from tests.zoo.payloads import Payload

from .conftest import train_argv


def _truncated(path: Path, marker: Path) -> None:
    torch.save({"format": "tfport.trainer", "version": 1, "model": {"w": torch.randn(64, 64)}}, path)
    path.write_bytes(path.read_bytes()[:2000])


def _code_pickle(path: Path, marker: Path) -> None:
    """What torch.save writes (protocol 2) with an object whose unpickling opens `marker`."""
    torch.save({"format": "tfport.trainer", "version": 1, "model": Payload(str(marker))}, path)


def _not_a_checkpoint(path: Path, marker: Path) -> None:
    path.write_text("epoch,loss\n1,0.5\n")  # a CSV handed over by mistake: torch.load raises KeyError


def _cut_safetensors(path: Path, marker: Path) -> None:
    from convert.port import checkpoint

    checkpoint.save(path, {"features.0.0.weight": torch.randn(64, 64)}, {"alpha": 0.35})
    path.write_bytes(path.read_bytes()[:2000])


KINDS = {"truncated": (_truncated, "truncated"), "code-pickle": (_code_pickle, "refused: the pickle would construct"),
         "not-a-checkpoint": (_not_a_checkpoint, "not a readable"),
         "cut-safetensors": (_cut_safetensors, "not a readable safetensors file")}
WHERE = ("backbone", "weights", "resume")
CASES = [(k, w) for k in KINDS for w in WHERE if not (k == "cut-safetensors" and w == "resume")]  # resume: .pt only


def test_the_code_pickle_would_run_code(tmp_path):
    """The payload is real: an unrestricted unpickler creates the marker."""
    marker = tmp_path / "RAN"
    pickle.loads(pickle.dumps(Payload(str(marker)), protocol=2)).close()
    assert marker.exists()


@pytest.fixture(scope="module")
def runs(noses, tmp_path_factory):
    """All the runs start at once (each pays a torch import; the two cores overlap them)."""
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}
    procs = {}
    for kind, where in CASES:
        tmp = tmp_path_factory.mktemp(f"{kind}-{where}")
        marker, out = tmp / "PWNED", tmp / "out"
        bad = tmp / ("bad.safetensors" if kind == "cut-safetensors" else "bad.pth")
        extra: tuple[str, ...] = ()
        backbone = "mobilenet_v2"
        if where == "backbone":
            backbone = str(bad)
        elif where == "weights":
            extra = ("--weights", str(bad))
        else:
            out.mkdir()
            bad, extra = out / "checkpoint.pt", ("--resume",)
        KINDS[kind][0](bad, marker)
        args = train_argv(noses, out, "--no-parity-gate", *extra, backbone=backbone)
        argv = [sys.executable, "-m", "backbones", *args]
        procs[kind, where] = (subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                               text=True), argv, bad, marker)
    done = {}
    for key, (p, argv, bad, marker) in procs.items():
        stdout, stderr = p.communicate(timeout=300)
        done[key] = (subprocess.CompletedProcess(argv, p.returncode, stdout, stderr), bad, marker)
    return done


@pytest.mark.parametrize("kind,where", CASES, ids=[f"{k}-{w}" for k, w in CASES])
def test_bad_file_is_one_line_exit_2(runs, kind, where):
    proc, bad, marker = runs[kind, where]
    line = assert_one_line_error(proc, code=2, mentions=str(bad))
    assert KINDS[kind][1] in line.split(str(bad), 1)[1], line  # said after the name (tmp folders carry the kind)
    assert proc.stderr.strip().count("\n") == 0, proc.stderr  # nothing else on stderr (no torch warnings)
    assert not marker.exists()  # nothing ran
