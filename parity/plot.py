"""The per-layer error plot: where, along the network, the candidate leaves each reference.

x: every probe point once, in network order (each block's `features.N:out` beside the block); y: max |Δ| on a
log scale, one series per reference and mode, TF's tolerance as a dashed line, the first divergent point
marked and named. What is drawn is computed apart from the drawing (`plot_data`), so it can be tested.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from parity.metrics import PointResult

FLOOR = 1e-12  # an exact match (max |Δ| 0) still gets a place on the log scale


def network_order(sequences: Iterable[Sequence[str]]) -> list[str]:
    """One order holding every sequence's points in their own order (each reference's points come in
    execution order, but not every reference has every point: TF has `features.N:out` only where a block adds
    a residual, torchvision has it for every block). A point new to the order goes right after its
    predecessor in its own sequence."""
    order: list[str] = []
    for seq in sequences:
        prev = None
        for p in seq:
            if p not in order:
                order.insert(order.index(prev) + 1 if prev is not None else 0, p)
            prev = p
    return order


@dataclass(frozen=True)
class Series:
    label: str
    x: tuple[int, ...]
    y: tuple[float, ...]


@dataclass(frozen=True)
class PlotData:
    order: tuple[str, ...]  # the x axis: probe-point names in network order
    series: tuple[Series, ...]  # one per (reference, mode)
    tolerance: tuple[Series, ...]  # TF's bound per point, one per mode
    first: tuple[int, str, float] | None  # (x, name, max |Δ|) of the first divergent point vs TF (eval)


def plot_data(results: Sequence[PointResult], first: PointResult | None) -> PlotData:
    by_series: dict[tuple[str, str], list[PointResult]] = {}
    for r in results:
        by_series.setdefault((r.reference, r.mode), []).append(r)
    tf_first = sorted(by_series, key=lambda k: k[0] != "tf")  # TF's sequence decides where a tie goes
    order = network_order([r.point for r in by_series[k]] for k in tf_first)
    at = {p: i for i, p in enumerate(order)}

    def series(label: str, rs: list[PointResult], value) -> Series:
        rs = sorted(rs, key=lambda r: at[r.point])
        return Series(label, tuple(at[r.point] for r in rs), tuple(max(value(r), FLOOR) for r in rs))

    return PlotData(
        order=tuple(order),
        series=tuple(series(f"{ref} ({mode})", rs, lambda r: r.max_abs) for (ref, mode), rs in by_series.items()),
        tolerance=tuple(series(f"tolerance ({mode})", rs, lambda r: r.bound)
                        for (ref, mode), rs in by_series.items() if ref == "tf"),
        first=(at[first.point], first.point, max(first.max_abs, FLOOR)) if first is not None else None,
    )


def block_of(point: str) -> str:
    """`features.3` for every point of block 3; `pool`, `classifier.1`, `output` are their own."""
    return ".".join(point.split(":")[0].split(".")[:2])


def plot(data: PlotData, path: str | Path, title: str) -> None:
    import matplotlib

    from convert.runtime.files import atomic_path

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # after choosing the backend: pyplot picks one on import

    fig, ax = plt.subplots(figsize=(15, 5.5))
    blocks = list(dict.fromkeys(block_of(p) for p in data.order))
    for b in blocks[::2]:  # every other block shaded, so each :out reads as its block's
        xs = [x for x, p in enumerate(data.order) if block_of(p) == b]
        ax.axvspan(xs[0] - 0.5, xs[-1] + 0.5, color="0.93", lw=0, zorder=0)
    for s in data.series:  # a one-point series (ONNX Runtime: the output only) gets a marker one can see
        ax.semilogy(s.x, s.y, marker="." if len(s.x) > 1 else "D", ms=4 if len(s.x) > 1 else 7, lw=1, label=s.label,
                    zorder=2)
    if any(y == FLOOR for s in data.series for y in s.y):
        ax.annotate("exact (|Δ| = 0)", (0, FLOOR), xytext=(2, 4), textcoords="offset points", fontsize=7, color="0.4")
    for s, style in zip(data.tolerance, ("--", ":", "-."), strict=False):
        ax.semilogy(s.x, s.y, "k" + style, lw=0.9, label=s.label, zorder=3)
    if data.first is not None:
        x, name, y = data.first
        ax.axvline(x, color="red", lw=1, zorder=1)
        ax.plot([x], [y], "o", ms=12, mfc="none", mec="red", mew=2, zorder=4, label="first divergent")
        ax.annotate(f"first divergent: {name}", (x, y), xytext=(12, 18), textcoords="offset points", color="red",
                    fontsize=9, fontweight="bold", arrowprops={"arrowstyle": "->", "color": "red"}, zorder=5)
    ax.set_xlim(-0.5, len(data.order) - 0.5)
    ax.set_xticks(range(len(data.order)))
    ax.set_xticklabels(data.order, rotation=90, fontsize=5)
    if data.first is not None:
        ax.get_xticklabels()[data.first[0]].set(color="red", fontweight="bold")
    ax.set_xlabel("probe point, in network order")
    ax.set_ylabel("max |candidate − reference|")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
