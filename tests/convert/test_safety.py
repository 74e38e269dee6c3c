"""A model's graph is code too: nothing in a file runs, reads or writes before it is checked (issue 21).

Hostile files are written here by the real tools (TF's tf.io.write_file in a frozen graph through a control
edge, in an If branch and in a SavedModel's serving function; TFLite's converter writing a Flex op; zip
archives with a bomb or a slipping member; h5py's external link; onnx's external data at ../../x), each
through every CLI that reads a source or candidate: exit 2, one line naming the op or member, no marker, no
output. With --trust-code the WriteFile graph converts, its marker appears, and the metadata says so.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.zoo import hostile

# source files: (writer, what the one error line must name)
SOURCES = {
    "write_file_pb": "model/telemetry: WriteFile writes files",
    "if_branch_pb": "WriteFile writes files",
    "write_file_savedmodel": "WriteFile writes files",
    "flex_tflite": "FlexCumprod",
    "zip_bomb_keras": "'config.json' inflates",
    "zip_slip_keras": "'../../tfport_slipped.txt'",
    "h5_external_link": "'model_weights/telemetry' is an external link",
}
# every CLI that reads a source: argv for (source, output, a candidate port)
SOURCE_CLIS = {
    "tf2torch-onnx": lambda src, out, port: ("convert", ["tf2torch", str(src), "-o", str(out), "--via", "onnx"]),
    "tf2torch-mmdnn": lambda src, out, port: ("convert", ["tf2torch", str(src), "-o", str(out), "--via", "mmdnn"]),
    "repair": lambda src, out, port: ("convert", ["repair", str(port), "--source", str(src), "-o", str(out)]),
    "parity": lambda src, out, port: ("parity", ["check", str(port), "--source", str(src), "--json", str(out)]),
}


def _main(cli: str):
    from backbones.cli import main as backbones_main
    from convert.cli import main as convert_main
    from parity.cli import main as parity_main

    return {"convert": convert_main, "parity": parity_main, "backbones": backbones_main}[cli]


def _one_error(capsys) -> str:
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    errors = [line for line in captured.err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, captured.err[-3000:]
    return errors[0]


@pytest.fixture(scope="session")
def hostile_files(samples, tmp_path_factory):
    """name -> (file, marker it would create), written once per session from the zoo's good files."""
    d = tmp_path_factory.mktemp("hostile")
    marker = d / "MARKER"  # every WriteFile writes here
    files = {
        "write_file_pb": hostile.write_file_pb(d / "telemetry.pb", marker, samples.get("keras2_pb", 0.35)),
        "if_branch_pb": hostile.if_branch_pb(d / "if_branch.pb", marker),
        "write_file_savedmodel": hostile.write_file_savedmodel(d / "telemetry_savedmodel", marker),
        "flex_tflite": hostile.flex_tflite(d / "flex.tflite"),
        "zip_bomb_keras": hostile.zip_bomb_keras(samples.get("keras3", 0.35), d / "bomb.keras"),
        "zip_slip_keras": hostile.zip_slip_keras(samples.get("keras3", 0.35), d / "slip.keras"),
        "h5_external_link": hostile.h5_external_link(samples.get("keras2_h5", 0.35), d / "linked.h5",
                                                     d / "other.h5"),
    }
    return files, marker


@pytest.fixture(scope="session")
def a_port(converted, tmp_path_factory):
    """A candidate recording no source of its own (a plain torchvision state dict), so that the hostile
    file is the only source; and the tfport port it came from (with its ONNX export beside it)."""
    import torch

    from convert.port import checkpoint
    from convert.port.head import torchvision_keys

    _, out, _ = converted(("keras2_h5", 0.35, (96, 96)))
    sd, _ = checkpoint.load(out)
    plain = tmp_path_factory.mktemp("plain") / "plain_state_dict.pth"
    torch.save(torchvision_keys(sd), plain)
    return plain, out


@pytest.mark.parametrize("cli", list(SOURCE_CLIS))
@pytest.mark.parametrize("name", list(SOURCES))
def test_hostile_source_is_refused_before_anything_runs(hostile_files, a_port, tmp_path, capsys, name, cli):
    files, marker = hostile_files
    src = files[name]
    if src is None:
        pytest.skip("this TFLite converter writes no Flex op")
    out = tmp_path / ("report.json" if cli == "parity" else "ported.pth")
    which, argv = SOURCE_CLIS[cli](src, out, a_port[0])
    assert _main(which)(argv) == 2
    line = _one_error(capsys)
    assert SOURCES[name] in line, line
    assert not marker.exists(), "the file's op ran"
    assert not out.exists() and not list(tmp_path.iterdir())
    slipped = [Path("/tmp") / "tfport_slipped.txt", src.parent.parent / "tfport_slipped.txt"]
    assert not any(p.exists() for p in slipped)


@pytest.fixture(scope="session")
def hostile_candidates(a_port, tmp_path_factory):
    """Candidates for parity (and, for the .pth ones, repair and the trainer): an ONNX export whose
    external data lies at ../../x, a port whose ONNX export beside it does, a zip-bomb and a zip-slip .pth."""
    import shutil

    plain, port = a_port
    d = tmp_path_factory.mktemp("deep") / "a" / "b"
    d.mkdir(parents=True)
    onnx_export = port.with_suffix(".onnx")
    assert onnx_export.is_file()
    twin = d / "ported.pth"
    shutil.copyfile(port, twin)  # a port whose artifact (the ONNX export parity runs) is hostile
    hostile.onnx_external_data(onnx_export, d / "ported.onnx")
    return {
        "onnx_candidate": hostile.onnx_external_data(onnx_export, d / "candidate.onnx"),
        "onnx_artifact": twin,
        "zip_bomb_pth": hostile.zip_bomb_pth(plain, d / "bomb.pth"),
        "zip_slip_pth": hostile.zip_slip_pth(plain, d / "slip.pth"),
    }


CANDIDATES = {"onnx_candidate": "'../../x'", "onnx_artifact": "'../../x'", "zip_bomb_pth": "/data/bomb'",
              "zip_slip_pth": "'/tmp/tfport_slipped.bin' is an absolute path"}


@pytest.mark.parametrize("name", list(CANDIDATES))
def test_hostile_candidate_is_refused_by_parity(hostile_candidates, samples, tmp_path, capsys, name):
    report = tmp_path / "report.json"
    src = samples.get("keras2_h5", 0.35)
    assert _main("parity")(["check", str(hostile_candidates[name]), "--source", str(src), "--json", str(report),
                            "--probes", "2"]) == 2
    line = _one_error(capsys)
    assert CANDIDATES[name] in line, line
    assert not report.exists()


@pytest.mark.parametrize("name", ["zip_bomb_pth", "zip_slip_pth"])
def test_hostile_checkpoint_is_refused_by_repair(hostile_candidates, samples, tmp_path, capsys, name):
    out = tmp_path / "fixed.pth"
    src = samples.get("keras2_h5", 0.35)
    assert _main("convert")(["repair", str(hostile_candidates[name]), "--source", str(src), "-o", str(out)]) == 2
    assert CANDIDATES[name] in _one_error(capsys)
    assert not out.exists()


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    from backbones.synth import write_dataset

    d = tmp_path_factory.mktemp("tiny_data")
    write_dataset(d, n=16, size=96, workers=1)
    return d


@pytest.mark.parametrize("name", ["zip_bomb_pth", "zip_slip_pth"])
def test_hostile_checkpoint_is_refused_as_a_backbone(hostile_candidates, tiny_data, tmp_path, capsys, name):
    out = tmp_path / "run"
    assert _main("backbones")(["train", "--backbone", str(hostile_candidates[name]), "--data", str(tiny_data),
                               "--out", str(out), "--epochs", "1", "--bs", "2", "--no-parity-gate"]) == 2
    assert CANDIDATES[name] in _one_error(capsys)
    assert not out.exists()


def test_zip_bomb_is_refused_in_bounded_memory(hostile_files, tmp_path):
    """As a user runs it, in a fresh process: the refusal comes before inflating, so the child's peak RSS
    (getrusage of the child, through a wrapper that runs nothing else) stays far below the 2 GiB inflated."""
    bomb = hostile_files[0]["zip_bomb_keras"]
    out = tmp_path / "p.pth"
    wrapper = ("import resource, subprocess, sys\n"
               f"p = subprocess.run([sys.executable, '-m', 'convert', 'tf2torch', {str(bomb)!r}, '-o', {str(out)!r}],"
               " capture_output=True, text=True)\n"
               "print(p.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
               "sys.stderr.write(p.stderr)\n")
    proc = subprocess.run([sys.executable, "-c", wrapper], capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3"))
    code, peak_kib = map(int, proc.stdout.split())
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert code == 2 and len(errors) == 1 and "'config.json' inflates" in errors[0], proc.stderr[-2000:]
    assert peak_kib * 1024 < 1.5e9, f"peak RSS {peak_kib / 1024:.0f} MiB"
    assert not out.exists()
    print(f"zip bomb refused: child peak RSS {peak_kib / 1024:.0f} MiB")


def test_trusted_write_file_graph_converts_and_says_so(hostile_files, tmp_path):
    """--trust-code: the user asked for the op to run. It runs in TF's reference (the marker appears), both
    paths convert, the metadata's trusted_code names the node, and parity's report records it; parity without
    --trust-code refuses the recorded source."""
    from convert.port import checkpoint

    src, marker = hostile_files[0]["write_file_pb"], hostile_files[1]
    marker.unlink(missing_ok=True)
    out = tmp_path / "ported.pth"
    assert _main("convert")(["tf2torch", str(src), "-o", str(out), "--trust-code", "--via", "both"]) == 0
    assert marker.exists()
    _, meta = checkpoint.load(out)
    assert meta["trusted_code"] == [f"{hostile.NODE} (WriteFile)"]
    marker.unlink()
    assert _main("parity")(["check", str(out), "--probes", "2", "--json", str(tmp_path / "refused.json")]) == 2
    assert not marker.exists() and not (tmp_path / "refused.json").exists()
    report = tmp_path / "report.json"
    assert _main("parity")(["check", str(out), "--trust-code", "--probes", "4", "--json", str(report)]) == 0
    assert any("--trust-code" in n and hostile.NODE in n for n in json.loads(report.read_text())["notes"])


def test_allowlists_hold_no_op_known_to_be_dangerous():
    from convert.safety import ops

    assert not (ops.TF_OPS | ops.ONNX_OPS) & set(ops.DANGEROUS)
    assert not ops.TF_OPS & (ops.TF_SAVE_OPS | ops.TF_RESTORE_OPS)
    assert ops.why_refused("TFRecordDataset").startswith("reads files")
