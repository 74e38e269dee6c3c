"""The seed experiment's summaries as the README's markdown table, a terminal table and a heat map."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from backbones.head_kinds import HEAD_KINDS
from backbones.seed_grid import CONFIGS, EXPLODED, num
from backbones.seed_stats import Summary, groups


def markdown(summaries: Sequence[Summary]) -> str:
    """One row per (backbone, BN setting, inputs, head), one column per run: the README's table."""
    by = {(s.group, s.run): s for s in summaries}
    lines = ["| backbone | BN | inputs | head | " + " | ".join(f"{r} bs {b}, lr {lr:g}" for b, lr, r in CONFIGS) + " |",
             "|---|---|---|---|" + "---|" * len(CONFIGS)]
    for g in groups(summaries):
        cells = [by[(g, r)].cell() if (g, r) in by else "–" for _, _, r in CONFIGS]
        lines.append(f"| {g[0]} | {g[1]} | {g[2]} | {g[3]} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def text_table(summaries: Sequence[Summary]) -> str:
    """The same for a terminal or CI log: one line per group and run, fits 80 columns."""
    width = max([len("backbone/BN/inputs/head")] + [len("/".join(g)) for g in groups(summaries)]) + 1
    rows = [f"{'backbone/BN/inputs/head':<{width}}{'run':<6}{'median':>7}{'range':>13}{'exploded':>9}"]
    by = {(s.group, s.run): s for s in summaries}
    for g in groups(summaries):
        for _, _, r in CONFIGS:
            s = by.get((g, r))
            if s is None:
                continue
            rng = f"{num(min(s.ratios))}–{num(max(s.ratios))}"
            rows.append(f"{'/'.join(g):<{width}}{r:<6}{num(s.median):>7}{rng:>13}{f'{s.exploded}/{len(s.bad)}':>9}")
    return "\n".join(rows)


def plot(path: Path, summaries: Sequence[Summary]) -> None:
    """Heat map per head: rows (backbone, BN, inputs), columns the four runs; colour log10 of the median
    final valid/train ratio, text the median and how many seeds had an exploded epoch."""
    import matplotlib
    import matplotlib.pyplot as plt
    import numpy as np

    from convert.runtime.files import atomic_path

    matplotlib.use("Agg")  # files only, no display (switches pyplot too, before its first figure)
    by = {(s.group, s.run): s for s in summaries}
    heads = [h for h in HEAD_KINDS if any(s.group[3] == h for s in summaries)]
    rows = list(dict.fromkeys(g[:3] for g in groups(summaries)))  # (backbone, BN, inputs), in table order
    fig, axes = plt.subplots(1, len(heads), figsize=(4.2 * len(heads) + 1.5, 0.45 * len(rows) + 2.2), squeeze=False)
    image = None
    for ax, h in zip(axes[0], heads, strict=True):
        grid = np.full((len(rows), len(CONFIGS)), np.nan)
        for i, g in enumerate(rows):
            for j, (_, _, r) in enumerate(CONFIGS):
                s = by.get(((*g, h), r))
                if s is None:
                    continue
                grid[i, j] = min(math.log10(s.median), 6.0) if math.isfinite(s.median) and s.median > 0 else 6.0
                ax.text(j, i, f"{num(s.median)}\n{s.exploded}/{len(s.bad)}", ha="center", va="center", fontsize=7)
        image = ax.imshow(grid, cmap="RdYlGn_r", vmin=-0.5, vmax=4.0, aspect="auto")
        ax.set_xticks(range(len(CONFIGS)), [f"{r}\nbs {b} lr {lr:g}" for b, lr, r in CONFIGS], fontsize=7)
        ax.set_yticks(range(len(rows)), ["/".join(g) for g in rows] if h == heads[0] else [], fontsize=7)
        ax.set_title(f"head: {h}", fontsize=9)
    fig.colorbar(image, ax=axes[0].tolist(), label="log10 median final valid/train", shrink=0.8)
    fig.suptitle("final valid/train loss ratio: median over seeds (text: median; seeds with an epoch "
                 f"> {EXPLODED:g}x train or NaN)", fontsize=9, y=1.04)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
