"""`--help` loads no heavy module: what keeps start-up near `python -c pass` (timed in scripts/bench)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("numpy", "torch", "tensorflow", "onnx", "rich", "pathlib", "shutil")


@pytest.mark.parametrize("cli", ["convert", "parity"])
def test_help_imports_nothing_heavy(cli):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "100"}
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", cli, "--help"], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=60)
    assert proc.returncode == 0 and "usage: python -m " + cli in proc.stdout
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert not {m for m in imported if m.split(".")[0] in HEAVY}, sorted(
        m for m in imported if m.split(".")[0] in HEAVY
    )
    wrapped = proc.stdout.split("examples:")[0]  # the epilog is raw text, never wrapped
    assert max(len(line) for line in wrapped.splitlines()) <= 98  # the width argparse was given: $COLUMNS - 2


@pytest.mark.parametrize("argv", [["convert"], ["convert", "sample"], ["convert", "tf2torch"], ["convert", "repair"],
                                  ["parity"], ["parity", "check"], ["parity", "gate"], ["backbones"],
                                  ["backbones", "train"]], ids=" ".join)
def test_help_fits_80_columns(argv):
    """Help is read in CI logs (piped, 80 columns): usage, options, examples and exit codes all fit."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "80"}
    proc = subprocess.run([sys.executable, "-m", *argv, "--help"], capture_output=True, text=True, env=env, cwd=ROOT,
                          timeout=60)
    assert proc.returncode == 0 and proc.stdout.startswith("usage: python -m " + argv[0]), proc.stderr[-500:]
    wide = [line for line in proc.stdout.splitlines() if len(line) > 80]
    assert not wide, wide
