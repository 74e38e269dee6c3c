"""The HTML parity report: one self-contained page (the plot inlined) that a person can share.

Top to bottom: a verdict banner (green PASSED, red FAILED), the summary (first divergent point, failed
checks with cause → fix, the train-mode hazard), the per-layer plot, the checks, then one section per
block (`features.N`, `pool`, `classifier.1`, `output`) with its probe rows against every reference. The first
divergent row carries id="first-divergent"; blocks with a divergence are open, the others folded.
"""

from __future__ import annotations

import base64
from html import escape
from pathlib import Path

from parity.metrics import PointResult
from parity.plot import block_of, plot_data
from parity.results import GATING, ParityReport

CSS = """
body{font-family:system-ui,sans-serif;margin:0;color:#222}
main{padding:0 24px 24px}
.verdict{padding:18px 24px;color:#fff;font-size:22px;font-weight:600}
.verdict.pass{background:#1a7f37} .verdict.fail{background:#cf222e}
.verdict small{display:block;font-size:14px;font-weight:400;opacity:.95}
dl{display:grid;grid-template-columns:max-content auto;gap:4px 16px} dt{font-weight:600}
table{border-collapse:collapse;margin:6px 0} td,th{padding:2px 8px;font-size:12px;text-align:left}
th{border-bottom:1px solid #999} td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.bad td{background:#ffebe9} tr.info td{color:#777}
tr#first-divergent td{background:#cf222e;color:#fff;font-weight:600}
.fail-text{color:#cf222e;font-weight:600} .pass-text{color:#1a7f37}
details{border:1px solid #ddd;border-radius:4px;margin:6px 0;padding:2px 10px}
details.bad{border-color:#cf222e} summary{cursor:pointer;font-weight:600}
img{max-width:100%}
"""


def _verdict(r: PointResult) -> str:
    if r.reference not in GATING:
        return "info"
    return "ok" if r.passed else "DIFF"


def _row(r: PointResult, first: PointResult | None) -> str:
    cls = "info" if r.reference not in GATING else ("" if r.passed else "bad")
    ident = " id='first-divergent'" if first is not None and r is first else ""
    return (f"<tr class='{cls}'{ident}><td>{escape(r.point)}</td><td>{r.reference}</td><td>{r.mode}</td>"
            f"<td class='num'>{r.max_abs:.3g}</td><td class='num'>{r.bound:.3g}</td><td class='num'>{r.rel_l2:.3g}</td>"
            f"<td class='num'>{r.cosine:.6f}</td><td>{list(r.worst_index)}</td><td>{_verdict(r)}"
            f"{' ← first divergent' if ident else ''}</td></tr>")


POINT_HEAD = ("<tr><th>point</th><th>reference</th><th>mode</th><th>max |Δ|</th><th>bound</th><th>rel L2</th>"
              "<th>cosine</th><th>worst at</th><th></th></tr>")


def _blocks(report: ParityReport) -> str:
    first = report.first_divergent
    order = plot_data(report.results, first).order
    at = {p: i for i, p in enumerate(order)}
    sections: dict[str, list[PointResult]] = {}
    for r in sorted(report.results, key=lambda r: (at[r.point], r.mode != "eval", r.reference not in GATING)):
        sections.setdefault(block_of(r.point), []).append(r)
    out = []
    for block, rs in sections.items():
        bad = [r for r in rs if r.reference in GATING and not r.passed]
        head = f"{escape(block)} — " + (
            f"<span class='fail-text'>{len(bad)} of {len(rs)} rows divergent</span>" if bad
            else f"<span class='pass-text'>{len(rs)} rows ok</span>")
        out.append(f"<details id='block-{escape(block)}' class='{'bad' if bad else ''}'{' open' if bad else ''}>"
                   f"<summary>{head}</summary><table>{POINT_HEAD}{''.join(_row(r, first) for r in rs)}"
                   "</table></details>")
    return "".join(out)


def _summary(report: ParityReport) -> str:
    first = report.first_divergent
    failed = [c for c in report.checks if not c.passed]
    h = report.hazard
    items = [
        ("candidate", f"{escape(report.candidate.path)} ({report.candidate.kind}, "
                      f"sha256 {report.candidate.sha256[:12]}…)"),
        ("source", escape(str(report.source.path))),
        ("tolerance", f"atol {report.config.atol:g} + rtol {report.config.rtol:g}·max|ref|"),
        ("modes passed", escape(", ".join(report.modes_passed)) or "none"),
        ("first divergent", "none" if first is None else
         f"<a class='fail-text' href='#first-divergent'>{escape(first.point)}</a> ({first.mode}: max |Δ| "
         f"{first.max_abs:.3g} &gt; {first.bound:.3g})"),
        ("failed checks", "none" if not failed else "<ul>" + "".join(
            f"<li><b>{escape(c.name)}</b>: {escape(c.evidence)}<br>{escape(c.cause)} → {escape(c.fix)}</li>"
            for c in failed) + "</ul>"),
        ("train-mode hazard", escape(h.describe())),
    ] + [("note", escape(n)) for n in report.notes]
    return "<dl>" + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in items) + "</dl>"


def render(report: ParityReport, plot_png: Path) -> str:
    png = base64.b64encode(plot_png.read_bytes()).decode("ascii")
    checks = "".join(
        f"<tr class='{'' if c.passed else 'bad'}'><td>{escape(c.name)}</td><td>{'pass' if c.passed else 'FAIL'}</td>"
        f"<td>{escape(c.evidence)}</td><td>{escape(c.cause)}{' → ' + escape(c.fix) if c.fix else ''}</td></tr>"
        for c in report.checks)
    verdict = "pass" if report.passed else "fail"
    title = f"tfport parity: {verdict.upper()}"
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>{CSS}</style></head><body>
<header class="verdict {verdict}" id="verdict">{'PASSED' if report.passed else 'FAILED'}
<small>{escape(report.summary())}</small></header><main>
<h2>Summary</h2>{_summary(report)}
<h2>Per-layer error</h2><img alt="per-layer max |Δ| in network order" src="data:image/png;base64,{png}">
<h2>Checks</h2><table><tr><th>check</th><th>verdict</th><th>evidence</th><th>cause → fix</th></tr>{checks}</table>
<h2>Probe points by block</h2>{_blocks(report)}
</main></body></html>"""
