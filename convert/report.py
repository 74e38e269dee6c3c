"""The conversion summary table."""

from __future__ import annotations

from collections import Counter

from convert.model.tolerance import CROSS_PATH_TOL, REL_TOL
from convert.pipeline import ConversionResult


def _fmt_counts(values) -> str:
    values = [tuple(v) if isinstance(v, list) else v for v in values]  # a constant pad [t, b, l, r] counts as one mode
    return ", ".join(f"{v:g}×{n}" if isinstance(v, float) else f"{v}×{n}" for v, n in Counter(values).most_common())


def _width(meta: dict) -> str:
    """The width multiplier where the architecture has one (MobileNetV2's alpha), else its name."""
    return f"{meta['alpha']:g}" if "alpha" in meta else str(meta.get("arch", "–"))


def print_summary(console, result: ConversionResult) -> None:
    from rich.table import Table

    src = result.source
    table = Table(title=f"{src.path} ({src.form})", show_lines=False)
    table.add_column("", no_wrap=True)  # what is compared: never cut at 80 columns; the values wrap instead
    for p in result.paths:
        table.add_column(f"via {p.via}", overflow="fold")
    metas = [p.canonical.meta for p in result.paths]
    rows = [
        ("layers mapped", [f"{len(m['padding'])} conv, {len(m['bn'])} BN" for m in metas]),
        ("alpha / input", [f"{_width(m)} / {m['input_size'][0]}x{m['input_size'][1]}" for m in metas]),
        (
            "input range",
            [
                f"{m['input_range']}"
                + (
                    f", x·{m['preprocess']['scale'][0]:.4g}{m['preprocess']['offset'][0]:+g} inside"
                    if m.get("preprocess")
                    else ""
                )
                for m in metas
            ],
        ),
        ("dropped", [", ".join(m.get("dropped") or []) or "–" for m in metas]),
        ("head", [head_text(m) for m in metas]),
        ("BN eps", [_fmt_counts(b["eps"] for b in m["bn"].values()) or "– (no BatchNorm)" for m in metas]),
        (
            "BN momentum",
            [_fmt_counts(b["momentum"] for b in m["bn"].values()) + f" ({m['momentum_from']})" if m["bn"] else "–"
             for m in metas],
        ),
        ("BN statistics", ["folded (eval only)" if m["bn_folded"] else "kept" if m["bn"] else "–" for m in metas]),
        ("padding", [_fmt_counts(m["padding"].values()) for m in metas]),
        ("seconds", [f"{p.seconds:.1f}" for p in result.paths]),
    ]
    for name, vals in rows:
        table.add_row(name, *vals)
    for what in dict.fromkeys(a.what for p in result.paths for a in p.agreements):
        cells = []
        for p in result.paths:
            a = next((a for a in p.agreements if a.what == what), None)
            if a is None:
                cells.append("")
                continue
            mark = ("[green]ok[/]" if a.ok(REL_TOL) else "[red]FAIL[/]" if a.gating
                    else "[yellow]differs (not the port: see note)[/]")
            top1 = f", top-1 {a.top1_agree:.0%}" if a.top1_agree is not None else ""
            cells.append(f"rel {a.rel:.2e} (max |Δ| {a.max_abs:.2e}{top1}) {mark}")
        table.add_row(what, *cells)
    console.print(table)
    for a in result.cross:
        console.print(f"{a.what}: rel {a.rel:.2e} " + ("[green]ok[/]" if a.ok(CROSS_PATH_TOL) else "[red]FAIL[/]"))
    for note in src.notes:
        console.print(f"[yellow]note (source):[/] {note}")
    for p in result.paths:
        for note in p.notes:
            console.print(f"[yellow]note ({p.via}):[/] {note}")


def head_text(meta: dict) -> str:
    """What follows the backbone, as the port applies it."""
    head = meta["head"]
    flatten = meta.get("flatten") or {}
    pool = {"avg": "avg pool", "max": "max pool", None: "no pooling",
            "flatten": f"flatten {flatten.get('order')}"
                       + (f" (source {flatten['source_order']}: columns permuted)"
                          if flatten.get("source_order", flatten.get("order")) != flatten.get("order") else "")
            }[head["pool"]]
    if head["classifier"]:
        c = head["classifier"]
        return f"{pool} → classifier {c['classes']} ({c['activation']})"
    if head["layers"]:
        return f"{pool} → " + " → ".join(f"Dense {x['out']} ({x['activation']})" for x in head["layers"])
    return f"{pool} (features)"
