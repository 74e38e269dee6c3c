"""scripts/ci_parity_gate: convert, then check parity, reports in OUT/parity/; the first failing step ends the
script non-zero, before anything after it (training, in the README's workflow) runs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

GATE = ROOT / "scripts" / "ci_parity_gate"


def test_the_gate_converts_then_checks_parity_into_out_parity():
    steps = [line for line in GATE.read_text().replace("\\\n", " ").splitlines() if '"$PY" -m' in line]
    assert [re.search(r'-m (\w+ \w+)', s).group(1) for s in steps] == ["convert tf2torch", "parity check"]
    assert all(f'"$OUT/parity/{f}"' in steps[1] for f in ("report.json", "junit.xml", "html"))
    assert "path: gate/parity/" in (ROOT / "README.md").read_text()  # the workflow uploads what the gate writes


@pytest.mark.skipif(not (Path(sys.prefix) / ".complete").exists(), reason="not running in a scripts/_venv.sh venv")
def test_a_failing_step_stops_the_gate(tmp_path):
    env = {**os.environ, "TFPORT_VENV": sys.prefix}
    proc = subprocess.run([str(GATE), str(tmp_path / "missing.pb"), str(tmp_path / "gate")], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "no such file" in proc.stderr and "parity gate passed" not in proc.stdout
    assert list((tmp_path / "gate").rglob("*.*")) == []  # parity never ran: no report, no certificate
