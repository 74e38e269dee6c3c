"""`python -m parity check` and `convert repair` end to end: MMdnn's real artifact, reports, certificate, bad input."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest
import torch

from convert.port import checkpoint
from tests.conftest import ROOT, assert_one_line_error, run_cli, run_main
from tests.zoo.payloads import Payload

CASE = ("keras2_h5", 1.0, (96, 96))


@pytest.fixture(scope="module")
def both(converted):
    """A conversion through both paths: ported.pth, ported.onnx, MMdnn's ported.mmdnn.{py,npy} (shared with
    tests/parity/test_faults.py's MMdnn faults)."""
    src, out, result = converted(CASE, via="both")
    assert result.ok
    # README "--via both": the two canonical backbones agree (relative error <= 1e-6); the first path in --via
    # order that keeps BN statistics is written; MMdnn's emitted model beside it as MMdnn emits it
    (cross,) = result.cross
    assert cross.rel <= 1e-6, cross
    d = out.parent
    _, meta = checkpoint.load(out)
    assert meta["path"] == "onnx" and meta["paths_checked"] == ["onnx", "mmdnn"] and not meta["bn_folded"]
    assert sorted(meta["artifacts"].values()) == ["ported.mmdnn.npy", "ported.mmdnn.py", "ported.onnx"]
    assert (d / "ported.mmdnn.py").read_text().count("momentum=0.0)") == 52
    return src, d


def test_canonical_port_passes_with_reports(both, tmp_path):
    src, d = both
    proc = run_main("parity", "check", str(d / "ported.pth"), "--json", str(tmp_path / "r.json"),
                    "--junit", str(tmp_path / "r.xml"), "--html", str(tmp_path / "html"), "--probes", "4")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1].startswith("PASSED")
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["schema"] == "tfport.parity-report/1" and report["passed"] is True
    assert report["modes_passed"] == ["eval", "train"]
    points = {p["point"] for p in report["points"] if p["reference"] == "tf"}
    assert {"features.0:bn", "features.0:act", "features.3:out", "features.18:act", "pool", "classifier.1"} <= points
    # per point: max abs, mean abs, relative L2, cosine, worst element; passes when max|Δ| <= atol + rtol·max|ref|
    for p in report["points"]:
        assert {"max_abs", "mean_abs", "rel_l2", "cosine", "worst_index", "bound"} <= set(p)
        assert p["passed"] == (p["max_abs"] <= p["bound"])
    _measured_within_the_readme_figures(report)
    # references: ONNX Runtime on the export; plain torchvision shown (it deviates: eps, padding) but not gating
    assert [p["passed"] for p in report["points"] if p["reference"] == "onnx"] == [True]
    plain = [p for p in report["points"] if p["reference"] == "torchvision"]
    assert plain and not all(p["passed"] for p in plain) and report["passed"]
    assert all(p["passed"] for p in report["points"] if p["reference"] == "torchvision+declared")
    suite = ET.parse(tmp_path / "r.xml").getroot()
    assert suite.get("failures") == "0" and int(suite.get("tests")) == len(suite.findall("testcase"))
    assert len(suite.findall("testcase")) == len(report["points"]) + len(report["checks"])  # per point, per check
    assert (tmp_path / "html" / "index.html").exists()
    assert (tmp_path / "html" / "per_layer_error.png").read_bytes()[:4] == b"\x89PNG"
    cert = json.loads((d / "ported.pth.parity.json").read_text())
    from convert.runtime.files import sha256_file

    assert cert["checkpoint"]["sha256"] == sha256_file(d / "ported.pth")
    assert cert["source"]["sha256"] == sha256_file(src)
    assert cert["tolerances"] == {"atol": 1e-5, "rtol": 1e-4, "train_atol": 1e-4, "train_rtol": 2e-3}
    # what was compared, on how many probes (not only what --against asked)
    assert cert["references"] == ["tf", "onnx", "torchvision", "torchvision+declared"] and cert["tool_version"]
    assert cert["references_asked"] == ["tf", "onnx", "torchvision"] and cert["probes"] == 4
    assert cert["modes_passed"] == ["eval", "train"]
    assert cert["bn"]["momentum"] == pytest.approx(0.001)
    assert cert["bn"]["half_life_steps"] == pytest.approx(692.8, abs=0.1)  # ln 0.5 / ln(1 - 0.001)


def _sci(x: float) -> str:
    """3 significant digits as the README writes them: 1.26e-5, 1.24e-3."""
    mantissa, exponent = f"{x:.2e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def _measured_within_the_readme_figures(report: dict) -> None:
    """README: correct ports measure max|Δ| ≤ E·max|ref| in eval mode and up to T·max|ref| in train mode. E and T
    are what scripts/parity_figures.py measured on the sample models (docs/parity_figures.json); the README must
    quote them, and this port — the 1.0/96 sample, on 4 probes — must stay within them (max|ref| recovered
    from each point's bound = atol + rtol·max|ref|)."""
    from tests.conftest import ROOT

    figures = json.loads((ROOT / "docs" / "parity_figures.json").read_text())
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert f"correct ports measure ≤ {_sci(figures['eval_max'])}·max|ref|" in readme
    assert f"correct ports measure up to {_sci(figures['train_max'])}:" in readme
    cfg = report["config"]
    for mode, (atol, rtol), figure in (("eval", (cfg["atol"], cfg["rtol"]), figures["eval_max"]),
                                       ("train", (cfg["train_atol"], cfg["train_rtol"]), figures["train_max"])):
        ratios = [p["max_abs"] / ((p["bound"] - atol) / rtol) for p in report["points"]
                  if p["reference"] == "tf" and p["mode"] == mode]
        assert ratios and max(ratios) <= figure, (mode, max(ratios))


def test_mmdnn_emitted_passes_numerics_fails_momentum(both, tmp_path):
    src, d = both
    proc = run_main("parity", "check", str(d / "ported.mmdnn.py"), "--source", str(src), "--json",
                   str(tmp_path / "m.json"), "--probes", "4")
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-2000:]
    report = json.loads((tmp_path / "m.json").read_text())
    tf_eval = [p for p in report["points"] if p["reference"] == "tf" and p["mode"] == "eval"]
    # its traced graph's points: 52 BN outputs, 35 activations, 10 residual block outputs, the final output
    assert len(tf_eval) == 98 and all(p["passed"] for p in tf_eval)
    assert [p["point"] for p in tf_eval][:3] == ["features.0:bn", "features.0:act", "features.1.conv.0:bn"]
    train = [p for p in report["points"] if p["mode"] == "train"]
    assert len(train) == 97 and all(p["passed"] for p in train)  # batch statistics as TF's: momentum is not used
    (mom,) = [c for c in report["checks"] if c["name"] == "bn_momentum"]
    assert not mom["passed"] and "never move" in mom["cause"] and "momentum=0.001" in mom["fix"]
    assert report["hazard"]["never_moves"] is True


@pytest.mark.exhaustive  # ~17 s; repair of MMdnn's emitted model: test_resnet50, test_vgg16
def test_repair_mmdnn_output_passes_eval_and_train(both, tmp_path):
    src, d = both
    fixed = tmp_path / "fixed.pth"
    proc = run_cli("convert", "repair", str(d / "ported.mmdnn.py"), "--source", str(src), "-o", str(fixed))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    proc = run_cli("parity", "check", str(fixed), "--probes", "4", "--json", str(tmp_path / "f.json"))
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert json.loads((tmp_path / "f.json").read_text())["modes_passed"] == ["eval", "train"]
    _, meta = checkpoint.load(fixed)
    assert meta["path"] == "repair of ported.mmdnn.py"
    assert all(b["momentum"] == pytest.approx(0.001) for b in meta["bn"].values())  # MMdnn's 0.0 rebuilt


def test_repair_cannot_fix_wrong_weights(both, tmp_path):
    """Repair changes semantics, never weights: a transposed kernel stays a failure and nothing is written."""
    src, d = both
    sd, meta = checkpoint.load(d / "ported.pth")
    sd["features.2.conv.1.0.weight"] = sd["features.2.conv.1.0.weight"].transpose(2, 3).contiguous()
    bad = tmp_path / "bad.pth"
    checkpoint.save(bad, sd, meta)
    proc = run_main("convert", "repair", str(bad), "-o", str(tmp_path / "fixed.pth"))
    assert proc.returncode == 1 and not (tmp_path / "fixed.pth").exists()


def test_plain_state_dict_fails_on_semantics(both, tmp_path):
    """The state dict alone, in plain torchvision: symmetric padding and eps 1e-5 are caught and named."""
    src, d = both
    sd, _ = checkpoint.load(d / "ported.pth")
    torch.save(sd, tmp_path / "plain.pth")
    stale = tmp_path / "plain.pth.parity.json"
    stale.write_text("{}")  # a certificate left from an earlier run
    proc = run_main("parity", "check", str(tmp_path / "plain.pth"), "--source", str(src), "--probes", "4",
                    "--json", str(tmp_path / "p.json"))
    assert proc.returncode == 1
    assert not stale.exists()  # README: a failing run removes a stale certificate
    report = json.loads((tmp_path / "p.json").read_text())
    failed = {c["name"] for c in report["checks"] if not c["passed"]}
    assert {"bn_eps", "padding", "bn_momentum", "preprocessing"} <= failed
    assert report["first_divergent"]["point"] == "features.0:bn"
    # README "convert repair": a plain torchvision state dict becomes the canonical backbone with the source's
    # semantics, weights unchanged, verified against TF before it is written
    from convert.repair import repair

    agreements, fixed = repair(tmp_path / "plain.pth", tmp_path / "fixed.pth", src, probes=4)
    assert fixed is not None and all(a.ok(1e-5) for a in agreements), agreements
    fixed_sd, meta = checkpoint.load(fixed)
    assert meta["path"] == "repair of plain.pth" and "tf_same" in meta["padding"].values()
    assert all(b["eps"] == pytest.approx(1e-3) for b in meta["bn"].values())
    assert all(torch.equal(fixed_sd[k], sd[k]) for k in sd)


def _one_error_in_process(capsys, argv, mentions):
    """In-process `python -m parity` (TF loads once); the subprocess path is covered above and in the corpus."""
    from parity.cli import main

    code = main(argv)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(lines) == 1 and mentions in lines[0], err


def test_bad_inputs(both, tmp_path, capsys):
    src, d = both
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes((d / "ported.pth").read_bytes()[:1000])
    assert_one_line_error(run_cli("parity", "check", str(corrupt), "--source", str(src)), 2, "corrupt.pth")

    _one_error_in_process(capsys, ["check", str(tmp_path / "nope.pth")], "no such file")

    moved = tmp_path / "moved"
    moved.mkdir()
    shutil.copy(d / "ported.pth", moved / "ported.pth")
    other = tmp_path / "other.h5"
    other.write_bytes(src.read_bytes() + b"\0")  # same model, different bytes: sha256 differs
    _one_error_in_process(capsys, ["check", str(moved / "ported.pth"), "--source", str(other)], "sha256")

    sd, _ = checkpoint.load(d / "ported.pth")
    torch.save(sd, tmp_path / "plain.pth")  # a state dict records no source
    _one_error_in_process(capsys, ["check", str(tmp_path / "plain.pth")], "--source")
    _one_error_in_process(capsys, ["check", str(d / "ported.pth"), "--source", str(tmp_path / "gone.pb")], "not found")

    marker = tmp_path / "PWNED"
    evil = tmp_path / "evil.pth"
    torch.save({"features.0.0.weight": Payload(str(marker))}, evil)
    _one_error_in_process(capsys, ["check", str(evil), "--source", str(src)], "refused")
    assert not marker.exists()


@pytest.mark.parametrize("argv,line", [
    (["check", "/nonexistent/nope.pth"], "error: /nonexistent/nope.pth: no such file"),
    (["check", "README.md", "--source", "/nonexistent/model.pb"],
     "error: /nonexistent/model.pb: source not found"),
])
def test_a_missing_file_is_refused_before_torch_and_tf_load(argv, line):
    """A typo in a path costs a fraction of a second, not the frameworks' imports (3-4 s)."""
    probe = ("import sys; from parity.cli import main; code = main(sys.argv[1:]); "
             "print(code, 'torch' in sys.modules, 'tensorflow' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", probe, *argv], capture_output=True, text=True, cwd=ROOT, timeout=120,
                          env=os.environ | {"PYTHONPATH": str(ROOT)})
    assert proc.stdout.split() == ["2", "False", "False"], proc.stdout + proc.stderr[-1000:]
    assert [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")] == [line]
