"""What a run shows and leaves behind: the fastai-style epoch table, loud warnings, the CSV log and
the loss-curve PNG. Files are written atomically (temporary file beside the target, then rename)."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.panel import Panel

from convert.runtime.files import atomic_path, write_text

if TYPE_CHECKING:
    from backbones.results import EpochResult

COLUMNS = ("epoch", "train_loss", "valid_loss", "time", "bn_drift")


def clock(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    return f"{m:02d}:{s:02d}"


def header(monitor: bool = False) -> str:
    base = f"{COLUMNS[0]:<6} {COLUMNS[1]:<11} {COLUMNS[2]:<11} {COLUMNS[3]}"
    return f"{base:<36} {COLUMNS[4]}" if monitor else base


def drift(e: EpochResult) -> str:
    """The BN monitor's figures: the worst layer's mean shift (running sigmas) and variance factor, and
    the layer, e.g. `0.41σ ×7.0 features.1.conv.0.1`"""
    if e.bn_shift is None:
        return "-"
    return f"{e.bn_shift:.2f}σ ×{math.exp(e.bn_scale or 0.0):.2g} {e.bn_layer}"


def row(e: EpochResult, monitor: bool = False) -> str:
    """fastai's layout: 0-based epoch, six decimals, nan printed as nan; wide values push, never merge."""
    base = f"{e.epoch:<6} {e.train_loss:<11.6f} {e.valid_loss:<11.6f} {clock(e.seconds)}"
    return f"{base:<36} {drift(e)}" if monitor else base


def warn(console: Console, title: str, line: str, text: str) -> None:
    """Loud: a plain one-line WARNING (for logs and grep) and a red panel with the explanation."""
    console.print(f"WARNING: {title}: {line}", style="bold red", highlight=False, soft_wrap=True)
    console.print(Panel(text, title=title, border_style="bold red"), highlight=False)


def write_csv(path: Path, epochs: Sequence[EpochResult]) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["epoch", "train_loss", "valid_loss", "seconds", "lr", "bn_shift_sigma", "bn_log_var_ratio",
                "bn_worst_layer"])
    for e in epochs:
        w.writerow([e.epoch, repr(e.train_loss), repr(e.valid_loss), f"{e.seconds:.3f}", repr(e.lr),
                    "" if e.bn_shift is None else f"{e.bn_shift:.4g}",
                    "" if e.bn_scale is None else f"{e.bn_scale:.4g}", e.bn_layer])
    write_text(path, buf.getvalue())


def _plottable(v: float) -> float:
    """matplotlib draws nan as a gap; inf would stretch the axis."""
    return v if math.isfinite(v) else float("nan")


def plot(path: Path, epochs: Sequence[EpochResult], title: str) -> None:
    """Per-batch train loss, per-epoch train/valid loss, log scale (explosions span decades)."""
    import matplotlib
    import matplotlib.pyplot as plt

    matplotlib.use("Agg")  # files only, no display (switches pyplot too, before its first figure)
    fig, ax = plt.subplots(figsize=(7, 4))
    per_epoch = max((len(e.batch_losses) for e in epochs), default=1) or 1
    xs, ys = [], []
    for e in epochs:
        for b, loss in enumerate(e.batch_losses):
            xs.append(e.epoch + (b + 1) / per_epoch)
            ys.append(_plottable(loss))
    ax.plot(xs, ys, color="tab:blue", alpha=0.35, lw=0.8, label="train (batch)")
    ends = [e.epoch + 1 for e in epochs]
    ax.plot(ends, [_plottable(e.train_loss) for e in epochs], "o-", color="tab:blue", label="train")
    ax.plot(ends, [_plottable(e.valid_loss) for e in epochs], "s-", color="tab:red", label="valid")
    bad = [e.epoch + 1 for e in epochs if not math.isfinite(e.valid_loss)]
    for x in bad:
        ax.axvline(x, color="tab:red", ls=":", lw=1)
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("MSE loss (normalised coordinates)")
    ax.set_title(title + ("  (dotted: valid loss nan/inf)" if bad else ""), fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
