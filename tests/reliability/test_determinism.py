"""Same inputs and seed give a byte-identical parity report (the report carries no timestamps), in this
process and in a fresh one: nothing a process carries (import order, what ran before in it, the hash seed,
TF's and ONNX Runtime's pools) reaches the figures. torch's thread count does: its convolutions round
differently on one thread than on two (1e-7), so this process runs at torch's default count, as a fresh one."""

from __future__ import annotations

from parity.cli import main
from tests.conftest import run_cli


def test_parity_json_is_byte_identical_across_processes(converted, tmp_path):
    import subprocess
    import sys

    import torch

    fresh = subprocess.run([sys.executable, "-c", "import torch; print(torch.get_num_threads())"], capture_output=True,
                           text=True, timeout=120, check=True)
    assert torch.get_num_threads() == int(fresh.stdout.split()[-1]), "a test before this one left torch's threads set"
    _, ported, _ = converted(("keras2_h5", 1.0, (96, 96)))
    args = ["check", str(ported), "--probes", "4", "--seed", "3", "--json"]
    assert main([*args, str(tmp_path / "here.json")]) == 0  # the test's process: TF and torch long loaded
    proc = run_cli("parity", *args, str(tmp_path / "fresh.json"))  # a new process, another PYTHONHASHSEED
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "here.json").read_bytes() == (tmp_path / "fresh.json").read_bytes()
