"""scripts/ci_parity_gate and the example workflow around it (docs/examples/port.yml): convert, check parity,
ask what the trainer's gate asks; the first failing step ends the script non-zero, before anything after it
(training, in the workflow) runs. The workflow is a file: parsed here, its `run` steps executed as CI runs
them, with a port that fails parity."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

GATE = ROOT / "scripts" / "ci_parity_gate"
WORKFLOW = ROOT / "docs" / "examples" / "port.yml"
IN_SCRIPTS_VENV = (Path(sys.prefix) / ".complete").exists()  # the scripts source _venv.sh: this venv, reused


def _scalar(text: str):
    text = text.strip()
    if text.startswith("{") and text.endswith("}"):
        return dict(_pair(item) for item in text[1:-1].split(",") if item.strip())
    if text.startswith("[") and text.endswith("]"):
        return [_scalar(item) for item in text[1:-1].split(",") if item.strip()]
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1]
    return text


def _pair(text: str) -> tuple[str, object]:
    key, sep, value = text.partition(":")
    if not sep:
        raise ValueError(f"not a 'key: value' pair: {text!r}")
    return key.strip(), _scalar(value)


def load_workflow(text: str) -> dict:
    """The block-style YAML subset a workflow is written in (mappings, `- ` sequences, flow {…} and […],
    quoted scalars, comments): enough to read docs/examples/port.yml; anything else raises, so a workflow
    this cannot read fails the test rather than being misread. (No YAML library is in the environment.)"""
    lines = []
    for raw in text.splitlines():
        line = re.sub(r"(^|\s)#.*$", "", raw).rstrip()  # a comment: '#' at the start or after a space
        if line.strip():
            lines.append((len(line) - len(line.lstrip(" ")), line.strip()))

    def block(i: int, indent: int):
        if lines[i][1].startswith("- "):
            seq = []
            while i < len(lines) and lines[i][0] == indent and lines[i][1].startswith("- "):
                item_indent = indent + 2
                lines[i] = (item_indent, lines[i][1][2:])
                value, i = block(i, item_indent)
                seq.append(value)
            return seq, i
        mapping: dict = {}
        while i < len(lines) and lines[i][0] == indent:
            key, value = _pair(lines[i][1])
            i += 1
            if value == "" and i < len(lines) and lines[i][0] > indent:
                value, i = block(i, lines[i][0])
            mapping[key] = value
        if i < len(lines) and lines[i][0] > indent:
            raise ValueError(f"unexpected indentation at {lines[i][1]!r}")
        return mapping, i

    parsed, end = block(0, lines[0][0])
    if end != len(lines):
        raise ValueError(f"unparsed from {lines[end][1]!r}")
    return parsed


def _job() -> dict:
    (job,) = load_workflow(WORKFLOW.read_text())["jobs"].values()
    return job


def test_the_readme_shows_the_workflow_file_as_it_is():
    readme = (ROOT / "README.md").read_text()
    assert f"```yaml\n{WORKFLOW.read_text()}```" in readme


def test_the_workflow_runs_the_gate_uploads_its_reports_always_then_trains():
    job = _job()
    steps = job["steps"]
    assert [("uses" in s, "run" in s) for s in steps] == [(True, False), (False, True), (True, False), (False, True)]
    assert steps[1]["run"].startswith("scripts/ci_parity_gate \"$SOURCE\" gate/")
    assert steps[2]["if"] == "always()" and steps[2]["with"]["path"] == "gate/parity/"
    assert "-m backbones train --backbone gate/ported.pth" in steps[3]["run"]
    assert set(job["env"]) == {"SOURCE", "PORTED"} and job["env"]["PORTED"] == ""


def test_the_gate_converts_then_checks_parity_into_out_parity_then_asks_the_trainer_s_question():
    steps = [line for line in GATE.read_text().replace("\\\n", " ").splitlines() if '"$PY" -m' in line]
    assert [re.search(r'-m (\w+ \w+)', s).group(1) for s in steps] == ["convert tf2torch", "parity check",
                                                                        "parity gate"]
    assert all(f'"$OUT/parity/{f}"' in steps[1] for f in ("report.json", "junit.xml", "html"))


def _run_steps(job: dict, env: dict[str, str], cwd: Path) -> list[tuple[str, int | None]]:
    """The job's `run` steps in order as CI runs them: after a failure only `if: always()` steps run (an
    upload: nothing to execute here). Returns (step, exit code or None where it did not run)."""
    done, failed = [], False
    for step in job["steps"]:
        if "run" not in step:
            continue
        if failed and step.get("if") != "always()":
            done.append((step["run"], None))
            continue
        proc = subprocess.run(["bash", "-c", step["run"]], cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=900)
        done.append((step["run"], proc.returncode))
        failed = failed or proc.returncode != 0
    return done


@pytest.mark.skipif(not IN_SCRIPTS_VENV, reason="not running in a scripts/_venv.sh venv")
def test_a_port_that_fails_parity_stops_the_workflow_before_training(samples, converted, tmp_path):
    """The workflow's commands as written, in a checkout whose model is the sample's frozen graph and whose
    PORTED is its plain torchvision state dict (torchvision's padding and BN eps: not the source's). The
    gate exits 1, the parity report is there to upload, training never starts."""
    import torch

    from convert.port import checkpoint

    work = tmp_path / "checkout"  # what actions/checkout leaves: the repository, plus the user's model
    (work / "models").mkdir(parents=True)
    for entry in ("scripts", "convert", "parity", "backbones", "requirements.txt", "requirements.lock"):
        (work / entry).symlink_to(ROOT / entry)
    (work / "models" / "mobilenet_v2.pb").write_bytes(samples.get("keras2_pb").read_bytes())
    _, ported, _ = converted(("keras2_h5", 1.0, (96, 96)))  # the same seeded network as the keras2_pb sample
    sd, _ = checkpoint.load(ported)
    torch.save(sd, tmp_path / "plain.pth")
    job = _job()
    env = {**os.environ, **job["env"], "PORTED": str(tmp_path / "plain.pth"), "TFPORT_VENV": sys.prefix}
    done = _run_steps(job, env, work)
    assert [code for _, code in done] == [1, None], done
    report = (work / "gate" / "parity" / "report.json")
    import json

    rep = json.loads(report.read_text())
    assert rep["passed"] is False and {"bn_eps", "padding"} <= {c["name"] for c in rep["checks"] if not c["passed"]}
    assert not (work / "runs").exists() and not (work / "gate" / "plain.pth.parity.json").exists()


@pytest.mark.skipif(not IN_SCRIPTS_VENV, reason="not running in a scripts/_venv.sh venv")
def test_a_failing_step_stops_the_gate(tmp_path):
    env = {**os.environ, "TFPORT_VENV": sys.prefix}
    proc = subprocess.run([str(GATE), str(tmp_path / "missing.pb"), str(tmp_path / "gate")], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "no such file" in proc.stderr and "parity gate passed" not in proc.stdout
    assert list((tmp_path / "gate").rglob("*.*")) == []  # parity never ran: no report, no certificate
