"""Terminal tables read in a CI log (piped, 80 columns): no probe-point, check or row name is ever cut."""

from __future__ import annotations

import copy
import dataclasses
import io
import json
import re

import pytest

from tests.conftest import run_cli

CASE = ("keras2_h5", 0.35, (96, 96))
WIDTH = 80


def whole(name: str, text: str) -> bool:
    """`name` stands on one line, between spaces or box rules, not cut or folded."""
    return re.search(rf"(^|[\s│┃]){re.escape(name)}($|[\s│┃])", text, re.MULTILINE) is not None


def narrow_console():
    from rich.console import Console

    return Console(file=io.StringIO(), width=WIDTH, highlight=False)


@pytest.fixture(scope="module")
def port(samples, tmp_path_factory):
    from convert import pipeline

    out = tmp_path_factory.mktemp("table") / "ported.pth"
    result = pipeline.convert(samples.get(*CASE), out, via="both", probes=4)
    assert result.ok
    return out, result


def test_piped_parity_at_80_columns_names_every_point_whole(port, tmp_path, monkeypatch):
    out, _ = port
    monkeypatch.setenv("COLUMNS", str(WIDTH))
    proc = run_cli("parity", "check", str(out), "--probes", "2", "--json", str(tmp_path / "r.json"))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    report = json.loads((tmp_path / "r.json").read_text())
    names = {p["point"] for p in report["points"] if p["reference"] == "tf"} | {c["name"] for c in report["checks"]}
    assert len(names) > 100
    assert [n for n in sorted(names) if not whole(n, proc.stdout)] == []
    assert max(len(line) for line in proc.stdout.splitlines()) <= WIDTH


def test_first_divergent_row_keeps_its_name(port):
    """A failing port's table: the marked row keeps the name whole; the verdict wraps instead."""
    from parity import report
    from parity.candidates import load_candidate
    from parity.run import ParityConfig, resolve_source, run

    cand = load_candidate(port[0])
    bad = dataclasses.replace(cand, module=copy.deepcopy(cand.module))
    bad.module.features[5].conv[1][1].eps = 0.1
    rep = run(bad, resolve_source(cand, None), ParityConfig(probes=2, against=("tf",), modes=("eval",)))
    console = narrow_console()
    report.print_table(console, rep)
    text = console.file.getvalue()
    (row,) = [line for line in text.splitlines() if "←" in line]
    assert whole(rep.first_divergent.point, row) and rep.first_divergent.point == "features.5.conv.1:bn"
    assert all(whole(r.point, text) for r in rep.results)
    assert max(map(len, text.splitlines())) <= WIDTH


def test_conversion_table_keeps_row_names_at_80_columns(port):
    from convert.report import print_summary

    _, result = port
    console = narrow_console()
    print_summary(console, result)
    text = console.file.getvalue()
    labels = {a.what for p in result.paths for a in p.agreements} | {"layers mapped", "BN momentum", "BN statistics"}
    assert len(result.paths) == 2
    assert [label for label in sorted(labels) if not re.search(rf"[│┃] {re.escape(label)} +[│┃]", text)] == []
    assert max(map(len, text.splitlines())) <= WIDTH
