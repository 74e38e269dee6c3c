"""A small input, where the last blocks' feature maps are 1x1: `convert` and `parity` must still agree.

At 32x32 features.14 onwards compute 1x1 maps. TF's runner used to flatten every 1x1 tensor (meant for
pooled outputs that kept their dims), so parity compared an N x C array with the candidate's
N x C x 1 x 1 map and reported every point from features.14 on as infinitely divergent, for a port
`convert` had just verified."""

from __future__ import annotations

import json

from tests.conftest import run_main


def test_port_of_a_32px_model_passes_parity_at_every_point(samples, tmp_path):
    src = samples.get("keras2_pb", 0.35, (32, 32))
    out = tmp_path / "p32.pth"
    conv = run_main("convert", "tf2torch", str(src), "-o", str(out), "--probes", "4")
    assert conv.returncode == 0, conv.stdout[-2000:] + conv.stderr[-2000:]
    proc = run_main("parity", "check", str(out), "--probes", "4", "--json", str(tmp_path / "r.json"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    report = json.loads((tmp_path / "r.json").read_text())
    tf_eval = {p["point"]: p for p in report["points"] if p["reference"] == "tf" and p["mode"] == "eval"}
    late = tf_eval["features.14.conv.1:bn"]  # the first 1x1 map
    assert len(late["shape"]) == 4 and late["shape"][0] == 4 and late["shape"][2:] == [1, 1]  # NCHW, kept a map
    assert late["passed"] and late["max_abs"] <= late["bound"]
    assert all(p["passed"] for p in tf_eval.values()), [n for n, p in tf_eval.items() if not p["passed"]]
    train = [p for p in report["points"] if p["mode"] == "train"]
    assert train and all(p["passed"] for p in train)
