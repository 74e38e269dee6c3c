"""Idle workers yield their cores (convert/runtime/threads.py): OpenMP's wait policy set by every `python -m`
entry point before torch can be imported, a user's own value kept, ONNX Runtime's workers not spinning."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import ROOT

PROBE = """
import os, runpy, sys
import convert.runtime.fast_exit as fast_exit
fast_exit.exit_now = lambda code: print(os.environ.get("OMP_WAIT_POLICY"), "torch" in sys.modules)
sys.argv = [{pkg!r}, "--help"]
try:
    runpy.run_module({pkg!r}, run_name="__main__")
except SystemExit:  # argparse's --help
    print(os.environ.get("OMP_WAIT_POLICY"), "torch" in sys.modules)
"""


@pytest.mark.parametrize("pkg", ["convert", "parity", "backbones"])
@pytest.mark.parametrize("given", [None, "ACTIVE"], ids=["unset", "user-set"])
def test_every_entry_point_sets_passive_waits_before_torch(pkg, given):
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"} | {"PYTHONPATH": str(ROOT)}
    if given:
        env["OMP_WAIT_POLICY"] = given
    proc = subprocess.run([sys.executable, "-c", PROBE.format(pkg=pkg)], env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split()[-2:] == [given or "PASSIVE", "False"], proc.stdout[-500:]


def test_onnx_runtime_workers_do_not_spin():
    from onnx import TensorProto, helper

    from convert.runners.onnx import OrtRunner

    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)  # ORT reads <= 13
    runner = OrtRunner(model.SerializeToString())
    assert runner.sess.get_session_options().get_session_config_entry("session.intra_op.allow_spinning") == "0"
    (y,) = runner.run(np.array([[-1.0, 0.0, 2.0]], np.float32), ["y"])
    assert y.tolist() == [[0.0, 0.0, 2.0]]
