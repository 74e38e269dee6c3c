"""convert.paths.worker: the worker process gives exactly what the in-process side gives, errors included."""

from __future__ import annotations

import numpy as np
import pytest

from convert.paths.worker import canonical_outputs, save
from convert.runtime.errors import TfportError


@pytest.fixture(scope="module")
def source(samples):
    from convert.sources import load_source

    return load_source(samples.get("keras2_pb"))


@pytest.fixture(scope="module")
def worker():
    from convert.paths.worker import TorchWorker

    side = TorchWorker()
    yield side
    side.close()


@pytest.fixture(scope="module")
def probes(source):
    from convert.model.probe import probe_inputs

    return probe_inputs(3, source.spec.input_shape[:2], source.spec.input_range, seed=5)


def test_worker_outputs_equal_in_process_outputs(source, worker, probes):
    """Same mapping, same weights, same forward; the two processes may run oneDNN with different thread
    counts (this one's is set by earlier tests), so sums can differ in the last bits (seen: 1.7e-7 rel)."""
    from convert.paths.worker import InProcessTorch, canonical_outputs

    meta_w, out_w = worker.call(canonical_outputs, "a", source.spec, "src", probes)
    meta_l, out_l = InProcessTorch().call(canonical_outputs, "a", source.spec, "src", probes)
    assert meta_w == meta_l and set(out_w) == set(out_l) == {"output", "pooled", "logits"}
    (pooled_w, logits_w), (pooled_l, logits_l) = (out_w["pooled"], out_w["logits"]), (out_l["pooled"], out_l["logits"])
    assert pooled_w.shape == (3, 1280) and logits_w.shape == (3, 1000)
    np.testing.assert_allclose(pooled_w, pooled_l, rtol=1e-5, atol=1e-6 * np.abs(pooled_l).max())
    np.testing.assert_allclose(logits_w, logits_l, rtol=1e-5, atol=1e-6 * np.abs(logits_l).max())


def test_requests_answered_in_order_when_several_are_pending(source, worker, probes):
    first = worker.submit(canonical_outputs, "b", source.spec, "src", probes[:1])
    second = worker.submit(canonical_outputs, "c", source.spec, "src", probes)
    logits_all = second()[1]["logits"]  # waited for out of order
    logits_one = first()[1]["logits"]
    assert logits_one.shape == (1, 1000) and logits_all.shape == (3, 1000)
    np.testing.assert_allclose(logits_one[0], logits_all[0], rtol=1e-5, atol=1e-5)


def test_worker_saves_a_checkpoint_that_loads(source, worker, probes, tmp_path):
    from convert.port import checkpoint

    meta, _ = worker.call(canonical_outputs, "d", source.spec, "src", probes)
    worker.call(save, "d", str(tmp_path / "p.pth"), {**meta, "note": "from the worker"})
    model = checkpoint.load_module(tmp_path / "p.pth")
    assert model.tfport_meta["note"] == "from the worker"


def test_bad_input_in_the_worker_is_a_tfport_error_with_the_same_message(source, worker, probes):
    """Not a MobileNetV2 (half its layers): the one-line error crosses the process boundary unchanged."""
    import dataclasses

    from convert.paths.worker import InProcessTorch, canonical, canonical_outputs

    half = dataclasses.replace(source.spec, layers=source.spec.layers[:40])
    with pytest.raises(TfportError) as local:
        InProcessTorch().call(canonical, "x", half, "half.pb")
    with pytest.raises(TfportError) as remote:
        worker.call(canonical_outputs, "x", half, "half.pb", probes)
    assert str(remote.value) == str(local.value) and "not a MobileNetV2" in str(remote.value)
    # and the worker still serves
    assert worker.call(canonical_outputs, "e", source.spec, "src", probes[:1])[1]["pooled"].shape == (1, 1280)


def test_a_worker_that_dies_is_reported_not_waited_for(source, probes):
    from convert.paths.worker import TorchWorker

    side = TorchWorker()
    side.proc.kill()
    side.proc.join(10)
    with pytest.raises(RuntimeError, match="torch worker (stopped|is gone)"):
        side.call(canonical_outputs, "a", source.spec, "src", probes)
    side.close()


def test_in_process_where_torch_is_loaded_or_asked(monkeypatch):
    import torch  # noqa: F401  (loaded: nothing to overlap)

    from convert.paths.worker import InProcessTorch, open_torch

    assert isinstance(open_torch(), InProcessTorch)


@pytest.mark.parametrize("env,side", [({}, "TorchWorker"), ({"TFPORT_TORCH_WORKER": "0"}, "InProcessTorch")],
                         ids=["worker", "one-process"])
def test_a_fresh_process_starts_a_worker_unless_told_not_to(env, side):
    """What `convert tf2torch` gets in a fresh process (torch not yet imported): a worker process, started
    first; `TFPORT_TORCH_WORKER=0` keeps everything in one process."""
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT

    code = ("import sys\nfrom convert.paths.worker import open_torch\nside = open_torch()\n"
            "print(type(side).__name__, 'torch' in sys.modules)\nside.close()\n")
    base = {k: v for k, v in os.environ.items() if k != "TFPORT_TORCH_WORKER"}
    proc = subprocess.run([sys.executable, "-c", code], env={**base, "PYTHONPATH": str(ROOT), **env},
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == [side, "False"]  # and this process has not imported torch itself
