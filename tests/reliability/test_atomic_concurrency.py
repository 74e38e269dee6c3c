"""Outputs appear whole or not at all: a full disk mid-write, and concurrent writers of one output."""

from __future__ import annotations

import errno
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from convert.port import checkpoint
from convert.runtime.errors import TfportError
from convert.runtime.files import atomic_path
from tests.conftest import ROOT


def _ported(path: Path, value: float) -> None:
    checkpoint.save(path, {"w": torch.full((1000,), value)}, {})


def _trainer(path: Path, value: float) -> None:
    from backbones import state

    state.save(path, {"epoch": int(value), "model": {"w": torch.full((1000,), value)}})


@pytest.mark.parametrize("write", [_ported, _trainer], ids=["ported-checkpoint", "trainer-checkpoint.pt"])
@pytest.mark.parametrize("earlier", [False, True], ids=["new", "over-an-earlier-one"])
def test_full_disk_leaves_nothing(tmp_path, monkeypatch, write, earlier):
    """torch.save writes half the file, then the disk is full: no temp file, and the target as it was
    (absent, or the earlier file whole)."""
    target = tmp_path / "p.pth"
    if earlier:
        write(target, 1.0)
    before = target.read_bytes() if earlier else None
    real_save = torch.save

    def half_then_enospc(obj, f, *a, **k):
        real_save(obj, f, *a, **k)
        Path(f).write_bytes(Path(f).read_bytes()[:100])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", half_then_enospc)
    with pytest.raises(TfportError, match="No space left"):
        write(target, 2.0)
    assert [p.name for p in tmp_path.iterdir()] == (["p.pth"] if earlier else [])
    assert (target.read_bytes() if earlier else None) == before


def test_exception_inside_atomic_block_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "r.json") as tmp:
            tmp.write_text('{"half": ')
            raise RuntimeError("crash mid-write")
    assert list(tmp_path.iterdir()) == []


def test_existing_output_survives_a_failed_rewrite(tmp_path):
    target = tmp_path / "r.json"
    target.write_text('{"old": true}')
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("partial")
            raise RuntimeError
    assert json.loads(target.read_text()) == {"old": True}


_WRITER = """
import sys, torch
sys.path.insert(0, {root!r})
import convert
from convert.port import checkpoint
tag = int(sys.argv[1])
for i in range(20):
    checkpoint.save(sys.argv[2], {{"w": torch.full((200_000,), float(tag))}}, {{"writer": tag}})
"""


def test_two_writers_same_output_leave_one_complete_result(tmp_path):
    target = tmp_path / "p.pth"
    script = _WRITER.format(root=str(ROOT))
    procs = [subprocess.Popen([sys.executable, "-c", script, str(tag), str(target)]) for tag in (1, 2)]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    sd, meta = checkpoint.load(target)  # whole, readable
    assert meta["writer"] in (1, 2)
    assert torch.all(sd["w"] == float(meta["writer"]))  # never a mix of the two
    assert [p.name for p in tmp_path.iterdir()] == ["p.pth"]  # no temp files left


def test_two_conversions_in_parallel_do_not_interfere(samples, tmp_path):
    """Different outputs, same source, at the same time: both succeed and both ports are identical."""
    import os

    src = samples.get("slim_pb")
    env_cmd = lambda out: [sys.executable, "-m", "convert", "tf2torch", str(src), "-o", str(out), "--probes", "8"]  # noqa: E731
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3")
    outs = [tmp_path / "a" / "p.pth", tmp_path / "b" / "p.pth"]
    for o in outs:
        o.parent.mkdir()
    procs = [subprocess.Popen(env_cmd(o), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for o in outs]
    assert [p.wait(timeout=600) for p in procs] == [0, 0]
    (sa, ma), (sb, mb) = (checkpoint.load(o) for o in outs)
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    assert ma == mb
