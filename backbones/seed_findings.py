"""The factorial's findings, computed from its cells: every aggregate the README quotes beside the seed table
(medians over runs, counts of exploded runs, shares) comes from here and is written with the table
(seed_findings.md / seed_table.json "findings"), never typed by hand.

Each finding selects runs by factor levels (a `Select`), reduces them to figures, and says them in one
sentence; a finding whose runs are not in the grid (a quick grid, a grid without a head) is left out.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from backbones.seed_grid import Cell, num

RUN1 = "run#1"  # bs 8, max_lr 0.1: the user's first run, where validation went to nan
SMALL_LR = 0.01
BIG_LR = 0.1
TRAIN_BN = ("mmdnn", "tf-faithful", "pytorch")  # the settings that keep BN in train mode (fastai's train_bn)
STALE = ("mmdnn", "tf-faithful")  # momenta whose running statistics cannot follow within the run


@dataclass(frozen=True)
class Select:
    """Runs by factor level; None: any."""

    backbone: str | tuple[str, ...] | None = "port"
    setting: str | tuple[str, ...] | None = None
    norm: str | tuple[str, ...] | None = None
    head: str | tuple[str, ...] | None = None
    run: str | tuple[str, ...] | None = None
    max_lr: float | None = None

    def __call__(self, cells: Sequence[Cell]) -> list[Cell]:
        def ok(want, have) -> bool:
            return want is None or have == want or (isinstance(want, tuple) and have in want)

        return [c for c in cells if ok(self.backbone, c.backbone) and ok(self.setting, c.setting)
                and ok(self.norm, c.norm) and ok(self.head, c.head) and ok(self.run, c.run)
                and (self.max_lr is None or c.max_lr == self.max_lr)]


@dataclass(frozen=True)
class Finding:
    key: str
    sentence: str
    figures: dict[str, float | int | str] = field(default_factory=dict)


def exploded(cells: Sequence[Cell]) -> tuple[int, int]:
    """(runs with an exploded epoch, runs)."""
    return sum(1 for c in cells if c.bad_epochs), len(cells)


def median_ratio(cells: Sequence[Cell]) -> float:
    """Median final valid/train ratio over the runs (an exploded-to-nan run counts as +inf)."""
    return statistics.median(c.ratio for c in cells) if cells else math.nan


def cell_medians(cells: Sequence[Cell]) -> list[float]:
    """Each table cell's median over its seeds (cells: the (group, run) pairs present)."""
    by: dict[tuple, list[Cell]] = {}
    for c in cells:
        by.setdefault((c.group, c.run), []).append(c)
    return sorted(statistics.median(x.ratio for x in cs) for cs in by.values())


def _range(xs: Sequence[float]) -> str:
    return f"{num(min(xs))}–{num(max(xs))}" if len(xs) > 1 else num(xs[0])


def _small_lr(cells: Sequence[Cell]) -> Finding | None:
    runs = Select(max_lr=SMALL_LR)(cells)
    if not runs:
        return None
    k, n = exploded(runs)
    return Finding("small_lr_never_explodes", f"at max_lr {SMALL_LR:g} (runs #3, #4) {k} of the {n} runs on the "
                   "port had an exploded epoch, whatever the BN setting, inputs or head", {"exploded": k, "runs": n})


def _linear_head(cells: Sequence[Cell]) -> Finding | None:
    """The head without BatchNorm of its own isolates the backbone's BN: per setting at max_lr 0.1."""
    parts, figures = [], {}
    for setting in ("mmdnn", "tf-faithful", "pytorch", "frozen-eval"):
        runs = Select(setting=setting, head="linear", max_lr=BIG_LR)(cells)
        if not runs:
            continue
        k, n = exploded(runs)
        med = median_ratio(runs)
        figures |= {f"{setting}_median": med, f"{setting}_exploded": k, f"{setting}_runs": n}
        parts.append(f"{setting} {num(med)}× ({k}/{n} exploded)")
    if not parts:
        return None
    return Finding("linear_head_by_bn", "with the `linear` head at max_lr 0.1, median final valid/train by BN "
                   "setting: " + ", ".join(parts), figures)


def _train_loss_identical(cells: Sequence[Cell]) -> Finding | None:
    """Momentum changes only what validation normalises with: the train losses of the train_bn settings."""
    by: dict[tuple, dict[str, Cell]] = {}
    for c in Select(setting=TRAIN_BN)(cells):
        by.setdefault((c.norm, c.head, c.run, c.seed), {})[c.setting] = c
    worst, compared = 0.0, 0
    for group in by.values():
        if len(group) < 2:
            continue
        first, *others = group.values()
        ref = first.train
        for c in others:
            if len(c.train) != len(ref):
                continue
            compared += 1
            for a, b in zip(c.train, ref, strict=True):
                if math.isfinite(a) and math.isfinite(b) and b:
                    worst = max(worst, abs(a - b) / abs(b))
    if not compared:
        return None
    return Finding("train_loss_same_under_train_bn", f"the train losses under the three train_bn momenta differ by "
                   f"at most {worst:.2g} relative over {compared} pairs of runs: momentum changes only what validation "
                   "normalises with", {"max_rel_diff": worst, "runs": compared})


def _fastai_run1(cells: Sequence[Cell]) -> Finding | None:
    parts, figures = [], {}
    for label, setting in (("BN eval", "frozen-eval"), ("momentum 0 or 0.001", STALE), ("momentum 0.1", "pytorch")):
        runs = Select(setting=setting, head="fastai", run=RUN1)(cells)
        if not runs:
            continue
        k, n = exploded(runs)
        meds = cell_medians(runs)
        worst = max(c.ratio for c in runs)
        key = label.replace(" ", "_")
        figures |= {f"{key}_cells": _range(meds), f"{key}_exploded": k, f"{key}_runs": n, f"{key}_worst": worst}
        parts.append(f"{label} {_range(meds)}× ({k}/{n} exploded, worst run {num(worst)}×)")
    if not parts:
        return None
    return Finding("fastai_head_run1", "with fastai's head, run #1 (bs 8, max_lr 0.1), cell medians by BN setting: "
                   + ", ".join(parts), figures)


def _inputs(cells: Sequence[Cell]) -> Finding | None:
    parts, figures = [], {}
    for norm in ("imagenet", "source"):
        runs = Select(norm=norm)(cells)
        if not runs:
            continue
        k, n = exploded(runs)
        figures |= {f"{norm}_exploded": k, f"{norm}_runs": n, f"{norm}_share": k / n}
        parts.append(f"{norm} inputs {100 * k / n:.0f} % ({k}/{n})")
    if len(parts) < 2:
        return None
    return Finding("inputs_exploded_share", "runs on the port with an exploded epoch, by input normalisation: "
                   + ", ".join(parts), figures)


def _native_random(cells: Sequence[Cell]) -> Finding | None:
    runs = Select(backbone="native-random")(cells)
    port = Select(setting="mmdnn", head="fastai", run=RUN1, norm="imagenet")(cells)
    native = Select(backbone="native-random", head="fastai", run=RUN1)(cells)
    if not runs:
        return None
    k, n = exploded(runs)
    figures: dict[str, float | int | str] = {"exploded": k, "runs": n}
    text = f"torchvision's MobileNetV2 at random init (momentum 0.1) had an exploded epoch in {k} of {n} runs"
    if port and native:
        figures |= {"fastai_run1": median_ratio(native), "port_mmdnn_fastai_run1": median_ratio(port)}
        text += (f"; its fastai-head run #1 ends at {num(median_ratio(native))}× where the MMdnn-momentum port's ends "
                 f"at {num(median_ratio(port))}×")
    return Finding("native_random", text, figures)


FINDINGS: tuple[Callable[[Sequence[Cell]], Finding | None], ...] = (
    _small_lr, _linear_head, _train_loss_identical, _fastai_run1, _inputs, _native_random)


def findings(cells: Sequence[Cell]) -> list[Finding]:
    """Every finding the grid's cells support, in the README's order."""
    return [f for f in (make(cells) for make in FINDINGS) if f is not None]


def render(found: Sequence[Finding]) -> str:
    lines = ["# Findings, computed from the grid's cells (backbones/seed_findings.py)", ""]
    lines += [f"- **{f.key}**: {f.sentence}." for f in found]
    return "\n".join(lines) + "\n"


def as_json(found: Sequence[Finding]) -> list[dict]:
    return [{"key": f.key, "sentence": f.sentence, "figures": f.figures} for f in found]
