"""Code inside a model file never runs unless the user says so (`--trust-code`).

Payload models are written in the test by both Keras versions, in .h5 and .keras: a `Lambda` whose
function writes a marker file, and a custom layer class whose `call` does. Every CLI that reads a
source (`convert tf2torch`, `convert repair --source`, `parity check --source`) must refuse them before
loading: exit 2, one line naming the layer, no marker, no output. The payload class is registered in
this very process, so a loader that got past the guard would find it and run it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import assert_one_line_error, run_cli
from tests.zoo.payloads import PAYLOADS, write

CASES = [(v, kind, fmt) for v in ("k2", "k3") for kind in PAYLOADS for fmt in ("h5", "keras")]


@pytest.fixture(scope="session")
def payloads(tmp_path_factory):
    """(keras version, payload kind, format) -> (model file, marker path), written once per session."""
    root = tmp_path_factory.mktemp("payloads")
    cache: dict = {}

    def get(version: str, kind: str, fmt: str) -> tuple[Path, Path]:
        key = (version, kind, fmt)
        if key not in cache:
            marker = root / f"marker_{version}_{kind}_{fmt}"
            cache[key] = (write(kind, version, fmt, root / f"{version}_{kind}", marker), marker)
        return cache[key]

    return get


@pytest.fixture(scope="session")
def a_port(converted, tmp_path_factory):
    """A candidate for `repair` and `parity` while the payload is the --source: a plain torchvision state
    dict (it records no source of its own, so nothing stops before the source is read)."""
    import torch

    from convert.port import checkpoint
    from convert.port.head import torchvision_keys

    _, out, _ = converted(("keras2_h5", 0.35, (96, 96)))
    sd, _ = checkpoint.load(out)
    plain = tmp_path_factory.mktemp("plain") / "plain_state_dict.pth"
    torch.save(torchvision_keys(sd), plain)
    return plain


def _argv(cli: str, src: Path, out: Path, port: Path) -> list[str]:
    return {"tf2torch": ["tf2torch", str(src), "-o", str(out)],
            "repair": ["repair", str(port), "--source", str(src), "-o", str(out)],
            "parity": ["check", str(port), "--source", str(src), "--json", str(out)]}[cli]


@pytest.mark.parametrize("cli", ["tf2torch", "repair", "parity"])
@pytest.mark.parametrize("version,kind,fmt", CASES, ids=["-".join(c) for c in CASES])
def test_payload_is_refused_before_loading(payloads, a_port, tmp_path, capsys, cli, version, kind, fmt):
    from convert.cli import main as convert_main
    from parity.cli import main as parity_main

    src, marker = payloads(version, kind, fmt)
    out = tmp_path / ("report.json" if cli == "parity" else "ported.pth")
    main = parity_main if cli == "parity" else convert_main
    assert main(_argv(cli, src, out, a_port)) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "'payload'" in errors[0] and "--trust-code" in errors[0], errors
    assert not marker.exists(), "the model file's code ran"
    assert not out.exists()


def test_lambda_refusal_says_how_to_resave(payloads, tmp_path):
    """As a user would run it, in a fresh process: one line, and the way out (Rescaling)."""
    src, marker = payloads("k2", "lambda", "h5")
    proc = run_cli("convert", "tf2torch", str(src), "-o", str(tmp_path / "p.pth"))
    line = assert_one_line_error(proc, 2, "Lambda")
    assert "Rescaling" in line and not marker.exists()


def test_trusted_affine_lambda_is_carried_into_the_port(payloads, tmp_path):
    """With --trust-code the affine Lambda runs (the user said so), is found numerically to be x / 127.5 - 1,
    and the port carries it like Rescaling; parity then passes, and both record that code ran."""
    import json

    from convert.cli import main as convert_main
    from convert.port import checkpoint
    from parity.cli import main as parity_main

    src, marker = payloads("k2", "lambda", "h5")
    out = tmp_path / "ported.pth"
    assert convert_main(["tf2torch", str(src), "-o", str(out), "--trust-code"]) == 0
    assert marker.exists()  # it did run: that is what --trust-code means
    _, meta = checkpoint.load(out)
    assert meta["trusted_code"] == ["payload (Lambda)"]
    assert meta["input_range"] == [0.0, 255.0]
    assert meta["preprocess"]["scale"] == pytest.approx([1 / 127.5] * 3) and meta["preprocess"]["offset"] == [-1.0] * 3
    report = tmp_path / "report.json"
    assert parity_main(["check", str(out), "--trust-code", "--probes", "4", "--json", str(report)]) == 0
    assert any("--trust-code" in n for n in json.loads(report.read_text())["notes"])


def test_tf_keras_savedmodel_carrying_code_is_read_as_a_graph_only(payloads):
    """README: a tf_keras SavedModel whose Keras metadata carries code (here the Lambda) is read as its serving
    graph alone: no Keras revival, so the Lambda's Python never runs; the port still converts from the graph."""
    from convert.sources import load_source

    src, marker = payloads("k2", "lambda", "savedmodel")
    assert (src / "keras_metadata.pb").is_file()
    source = load_source(src)
    assert source.form == "savedmodel" and source.keras_model is None
    assert any("Keras metadata not revived" in n and "carries code" in n for n in source.notes), source.notes
    assert not marker.exists()
