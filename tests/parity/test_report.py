"""Reports a person reads: terminal tables in a CI log (piped, 80 columns) never cut a probe-point, check or
row name; the per-layer plot draws every point in network order and marks the first divergence."""

from __future__ import annotations

import copy
import dataclasses
import io
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import NamedTuple

import pytest

from tests.conftest import run_cli

CASE = ("keras2_h5", 0.35, (96, 96))
WIDTH = 80


def whole(name: str, text: str) -> bool:
    """`name` stands on one line, between spaces or box rules, not cut or folded."""
    return re.search(rf"(^|[\s│┃]){re.escape(name)}($|[\s│┃])", text, re.MULTILINE) is not None


GREEN, RED = (26, 127, 55), (207, 34, 46)  # the banner colours, parity.html_report.CSS


class Rendered(NamedTuple):
    dom: str  # the DOM as Chromium built it
    verdict: str  # the banner's first word
    banner: tuple[int, int, int]  # the screenshot's colour inside the banner
    colours: int  # distinct colours in the screenshot: a blank page has one


def render_in_browser(page: Path, tmp: Path) -> Rendered:
    """Headless Chromium (Debian's package) renders the page: its DOM and a 1280x1600 screenshot."""
    from PIL import Image

    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip("no Chromium to render the HTML report: apt-get install -y chromium")
    flags = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1280,1600"]
    shot = tmp / "shot.png"
    subprocess.run(flags + [f"--screenshot={shot}", page.as_uri()], capture_output=True, timeout=120, check=True)
    dom = subprocess.run(flags + ["--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120,
                         check=True).stdout
    img = Image.open(shot).convert("RGB")
    header = re.search(r'<header class="verdict (pass|fail)" id="verdict">\s*(\w+)', dom)
    assert header is not None, dom[:2000]
    return Rendered(dom, header.group(2), img.getpixel((8, 8)), len(img.getcolors(1 << 20) or range(1 << 20)))


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
    proc = run_cli("parity", "check", str(out), "--probes", "2", "--json", str(tmp_path / "r.json"),
                   "--html", str(tmp_path / "html"))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    report = json.loads((tmp_path / "r.json").read_text())
    names = {p["point"] for p in report["points"] if p["reference"] == "tf"} | {c["name"] for c in report["checks"]}
    assert len(names) > 100
    assert [n for n in sorted(names) if not whole(n, proc.stdout)] == []
    assert max(len(line) for line in proc.stdout.splitlines()) <= WIDTH
    page = render_in_browser(tmp_path / "html" / "index.html", tmp_path)  # the passing page, in a browser
    assert page.banner == GREEN and page.verdict == "PASSED"
    assert 'id="first-divergent"' not in page.dom


@pytest.mark.parametrize("sequences, expected", [
    ((["a", "b", "c"], ["a", "b", "b:out", "c"]), ["a", "b", "b:out", "c"]),
    ((["b", "c"], ["a", "b"]), ["a", "b", "c"]),
    ((["a", "output"], ["a", "x"]), ["a", "x", "output"]),
], ids=["point-only-in-second", "second-starts-earlier", "new-after-its-predecessor"])
def test_network_order_merges_sequences(sequences, expected):
    from parity.plot import network_order

    assert network_order(sequences) == expected


@pytest.fixture(scope="module")
def failing(port):
    """A real report on a port with one wrong BN eps (features.5.conv.1): divergent from there on."""
    from parity.candidates import load_candidate
    from parity.run import ParityConfig, resolve_source, run

    cand = load_candidate(port[0])
    bad = dataclasses.replace(cand, module=copy.deepcopy(cand.module))
    bad.module.features[5].conv[1][1].eps = 0.1
    rep = run(bad, resolve_source(cand, None), ParityConfig(probes=2, against=("tf", "torchvision")))
    assert rep.first_divergent is not None and rep.first_divergent.point == "features.5.conv.1:bn"
    return rep


def test_first_divergent_row_keeps_its_name(failing):
    """A failing port's table: the marked row keeps the name whole; the verdict wraps instead."""
    from parity import report

    console = narrow_console()
    report.print_table(console, failing)
    text = console.file.getvalue()
    (row,) = [line for line in text.splitlines() if "←" in line]
    assert whole("features.5.conv.1:bn", row)
    assert all(whole(r.point, text) for r in failing.results if r.reference == "tf")  # the table is vs TF
    assert max(map(len, text.splitlines())) <= WIDTH
    # README: a row per point (the first divergent one highlighted), then the checks and the train-mode hazard
    assert text.index("←") < text.index("semantic checks") < text.index("train-mode hazard: BN momentum 0.001")
    assert all(whole(c.name, text) for c in failing.checks)


def test_plot_x_axis_is_network_order(failing):
    """TF has `features.N:out` only where a block adds a residual, torchvision for every block: each one sits
    beside its block (it was drawn after classifier.1), and no series steps back along the x axis."""
    from parity.plot import plot_data

    data = plot_data(failing.results, failing.first_divergent)
    order = list(data.order)
    assert len(order) == len({r.point for r in failing.results})
    assert order[-3:] == ["pool", "classifier.1", "output"]
    for block in range(1, 18):
        inside = [i for i, p in enumerate(order) if p.startswith(f"features.{block}.")]
        assert order.index(f"features.{block}:out") == max(inside) + 1, block
        nxt = (f"features.{block + 1}.", f"features.{block + 1}:")
        assert max(inside) + 2 == min(i for i, p in enumerate(order) if p.startswith(nxt))
    assert {s.label for s in data.series} == {"tf (eval)", "tf (train)", "torchvision (eval)",
                                               "torchvision+declared (eval)"}
    assert all(list(s.x) == sorted(s.x) for s in data.series + data.tolerance)
    assert data.first[:2] == (order.index("features.5.conv.1:bn"), "features.5.conv.1:bn")


def test_plot_writes_png(failing, tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    from parity import report

    scales = []
    savefig = Figure.savefig

    def noting_scale(fig, *a, **k):  # the real savefig, noting the y scale it draws
        scales.extend(ax.get_yscale() for ax in fig.axes)
        return savefig(fig, *a, **k)

    monkeypatch.setattr(Figure, "savefig", noting_scale)
    report.plot(failing, tmp_path / "per_layer_error.png")
    assert (tmp_path / "per_layer_error.png").read_bytes()[:4] == b"\x89PNG"
    assert scales and set(scales) == {"log"}  # README: per_layer_error.png, log scale


def test_html_report_of_a_failing_port_in_a_browser(failing, tmp_path):
    """Red banner, the summary names the first divergent point and links to its row, which is highlighted
    inside its block's section, open; the plot is inside the page (one file to share)."""
    from parity import report

    index = report.write_html(failing, tmp_path / "html")
    page = render_in_browser(index, tmp_path)
    assert page.verdict == "FAILED" and page.banner == RED and page.colours > 100
    row = re.search(r'<tr class="bad" id="first-divergent"><td>([^<]+)</td><td>tf</td><td>eval</td>', page.dom)
    assert row is not None and row.group(1) == "features.5.conv.1:bn"
    section = page.dom[:row.start()].rsplit("<details", 1)[1]
    assert section.startswith(' id="block-features.5" class="bad" open=""'), section[:200]
    assert '<a class="fail-text" href="#first-divergent">features.5.conv.1:bn</a>' in page.dom
    assert 'src="data:image/png;base64,' in page.dom
    for name in ("bn_eps", "mode"):  # failed checks in the summary, with cause -> fix
        assert re.search(rf"<li><b>{name}</b>: [^<]+<br>[^<]+ → [^<]+</li>", page.dom), name


def test_conversion_table_keeps_row_names_at_80_columns(port):
    from convert.report import print_summary

    _, result = port
    console = narrow_console()
    print_summary(console, result)
    text = console.file.getvalue()
    # README: layers mapped, alpha/input, BN eps and momentum, BN statistics kept, padding, errors against TF
    rows = {"layers mapped", "alpha / input", "input range", "dropped", "head", "BN eps", "BN momentum",
            "BN statistics", "padding", "seconds"}
    labels = {a.what for p in result.paths for a in p.agreements} | rows
    assert len(result.paths) == 2
    assert [label for label in sorted(labels) if not re.search(rf"[│┃] {re.escape(label)} +[│┃]", text)] == []
    assert max(map(len, text.splitlines())) <= WIDTH
    lines = text.splitlines()
    at = next(i for i, line in enumerate(lines) if re.search(r"[│┃] padding +[│┃]", line))
    padding = " ".join(lines[at : at + 2])  # the cell wraps at 80 columns
    assert "tf_same×" in padding and "symmetric×" in padding  # convs per padding mode
    assert re.search(r"[│┃] BN statistics +[│┃] kept", text)
