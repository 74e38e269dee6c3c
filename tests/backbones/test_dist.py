"""`torchrun --nproc_per_node 2` runs the same command data-parallel and gets what one process gets.

The global batch is split across the two ranks (gloo on CPU), gradients are averaged, and every
BatchNorm in train mode takes its statistics over both ranks. What is left is float summation
order; AdamW amplifies it once training has run for a while (one process with 2 threads drifts
from 1 thread as much), so the BN-train case compares the steps before that drift sets in.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from backbones.cli import main
from tests.conftest import ROOT

# case -> (extra args, training batches compared, their tolerance, tolerance of the epoch losses or None)
CASES = {
    # frozen backbone, BN eval, cached features: every batch (measured up to 1.0e-5 apart, relative)
    # and every epoch's losses (7e-5 apart)
    "head-only": ((), None, 1e-4, 1e-3),
    # backbone BN in train mode (cross-rank statistics), augmentation: the first step, a forward pass
    # before any update (1.3e-5 apart). From the second step on, AdamW's first update (~lr * sign(g))
    # turns summation-order noise in near-zero gradients into 1e-4-sized differences (measured 1.2e-4
    # on a loaded machine), as one process with 2 threads drifts from 1 thread
    "bn-train-augment": (("--bn", "train", "--bn-momentum", "0.1", "--augment", "--no-feature-cache"),
                         1, 1e-4, None),
}


def _result(out) -> tuple[list[float], list[float]]:
    epochs = json.loads((out / "result.json").read_text())["epochs"]
    batches = [b for e in epochs for b in e["batch_losses"]]
    return batches, [v for e in epochs for v in (e["train_loss"], e["valid_loss"])]


@pytest.mark.parametrize("extra,batches,batch_tol,epoch_tol", list(CASES.values()), ids=list(CASES))
def test_two_processes_equal_one(argv, tmp_path, extra, batches, batch_tol, epoch_tol):
    two = argv(tmp_path / "two", "--dropout", "0", *extra)
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           "-m", "backbones", *two], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2 processes" in proc.stdout and proc.stdout.strip().splitlines()[-1].startswith("DONE:")
    assert main(argv(tmp_path / "one", "--dropout", "0", *extra)) == 0
    (one_b, one_e), (two_b, two_e) = _result(tmp_path / "one"), _result(tmp_path / "two")
    assert two_b[:batches] == pytest.approx(one_b[:batches], rel=batch_tol)
    if epoch_tol is not None:
        assert two_e == pytest.approx(one_e, rel=epoch_tol)
