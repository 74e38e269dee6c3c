"""Every file the trainer reads with torch.load goes through convert.checkpoint.torch_load: a truncated
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
from tests.reliability.corpus import Payload

from .conftest import train_argv


def _truncated(path: Path, marker: Path) -> None:
    torch.save({"format": "tfport.trainer", "version": 1, "model": {"w": torch.randn(64, 64)}}, path)
    path.write_bytes(path.read_bytes()[:2000])


def _code_pickle(path: Path, marker: Path) -> None:
    """What torch.save writes (protocol 2) with an object whose unpickling opens `marker`."""
    torch.save({"format": "tfport.trainer", "version": 1, "model": Payload(str(marker))}, path)


def _not_a_checkpoint(path: Path, marker: Path) -> None:
    path.write_text("epoch,loss\n1,0.5\n")  # a CSV handed over by mistake: torch.load raises KeyError


KINDS = {"truncated": (_truncated, "truncated"), "code-pickle": (_code_pickle, "refused: the pickle would construct"),
         "not-a-checkpoint": (_not_a_checkpoint, "not a readable")}
WHERE = ("backbone", "weights", "resume")


def test_the_code_pickle_would_run_code(tmp_path):
    """The payload is real: an unrestricted unpickler creates the marker."""
    marker = tmp_path / "RAN"
    pickle.loads(pickle.dumps(Payload(str(marker)), protocol=2)).close()
    assert marker.exists()


@pytest.fixture(scope="module")
def runs(noses, tmp_path_factory):
    """All nine runs start at once (each pays a torch import; the two cores overlap them)."""
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}
    procs = {}
    for kind, (write, _) in KINDS.items():
        for where in WHERE:
            tmp = tmp_path_factory.mktemp(f"{kind}-{where}")
            marker, out = tmp / "PWNED", tmp / "out"
            extra: tuple[str, ...] = ()
            if where == "backbone":
                bad, backbone = tmp / "bad.pth", str(tmp / "bad.pth")
            elif where == "weights":
                bad, backbone, extra = tmp / "bad.pth", "mobilenet_v2", ("--weights", str(tmp / "bad.pth"))
            else:
                out.mkdir()
                bad, backbone, extra = out / "checkpoint.pt", "mobilenet_v2", ("--resume",)
            write(bad, marker)
            argv = [sys.executable, "-m", "backbones",
                    *train_argv(noses, out, "--no-parity-gate", *extra, backbone=backbone)]
            procs[kind, where] = (subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                                   text=True), argv, bad, marker)
    done = {}
    for key, (p, argv, bad, marker) in procs.items():
        stdout, stderr = p.communicate(timeout=300)
        done[key] = (subprocess.CompletedProcess(argv, p.returncode, stdout, stderr), bad, marker)
    return done


@pytest.mark.parametrize("where", WHERE)
@pytest.mark.parametrize("kind", list(KINDS))
def test_bad_file_is_one_line_exit_2(runs, kind, where):
    proc, bad, marker = runs[kind, where]
    line = assert_one_line_error(proc, code=2, mentions=str(bad))
    assert KINDS[kind][1] in line.split(str(bad), 1)[1], line  # said after the name (tmp folders carry the kind)
    assert proc.stderr.strip().count("\n") == 0, proc.stderr  # nothing else on stderr (no torch warnings)
    assert not marker.exists()  # nothing ran
