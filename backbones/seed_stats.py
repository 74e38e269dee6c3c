"""The seed experiment's reductions: each cell's seeds to a median and range, and each factor's main effect."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from backbones.head_kinds import HEAD_KINDS
from backbones.seed_grid import BACKBONE_ORDER, NORMS, SETTINGS, Cell, num


@dataclass(frozen=True)
class Summary:
    """The seeds of one (backbone, setting, inputs, head, run): median and range."""

    group: tuple[str, str, str, str]
    run: str
    ratios: tuple[float, ...]
    bad: tuple[int, ...]
    epochs: int

    @property
    def median(self) -> float:
        return statistics.median(self.ratios)

    @property
    def exploded(self) -> int:
        """Seeds with at least one bad epoch."""
        return sum(1 for b in self.bad if b)

    def cell(self) -> str:
        lo, hi = min(self.ratios), max(self.ratios)
        return f"{num(self.median)} [{num(lo)}–{num(hi)}] {self.exploded}/{len(self.bad)}"


def summarise(cells: Sequence[Cell]) -> list[Summary]:
    keys: dict[tuple, list[Cell]] = {}
    for c in cells:
        keys.setdefault((c.group, c.run), []).append(c)
    out = []
    for (group, run), cs in keys.items():
        cs = sorted(cs, key=lambda c: c.seed)
        out.append(Summary(group, run, tuple(c.ratio for c in cs), tuple(c.bad_epochs for c in cs),
                           max(len(c.train) for c in cs)))
    return out


def groups(summaries: Sequence[Summary]) -> list[tuple[str, str, str, str]]:
    """Every (backbone, BN setting, inputs, head) present, in the tables' order."""
    order = {name: i for i, name in enumerate(BACKBONE_ORDER)}
    seen = {s.group for s in summaries}
    return sorted(seen, key=lambda g: (order.get(g[0], len(order)), [s.name for s in SETTINGS].index(g[1]),
                                       NORMS.index(g[2]), HEAD_KINDS.index(g[3])))


FACTORS = {"backbone": lambda s: s.group[0], "BN": lambda s: s.group[1], "inputs": lambda s: s.group[2],
           "head": lambda s: s.group[3], "run": lambda s: s.run}


def effects(summaries: Sequence[Summary]) -> dict[str, dict[str, dict[str, float]]]:
    """Main effects: for each level of each factor, the median over its cells of log10(median ratio), and
    the share of seeds that exploded — how much each factor moves the outcome. Over the port's cells,
    except the backbone factor (port vs native)."""
    port = [s for s in summaries if s.group[0] == "port"]
    out = {}
    for name, level_of in FACTORS.items():
        levels: dict[str, list[Summary]] = {}
        for s in summaries if name == "backbone" else port:
            levels.setdefault(level_of(s), []).append(s)
        out[name] = {level: _effect(sel) for level, sel in sorted(levels.items())}
    return out


def _effect(cells: Sequence[Summary]) -> dict[str, float]:
    logs = [math.log10(s.median) if math.isfinite(s.median) and s.median > 0 else 99.0 for s in cells]
    return {"median_log10_ratio": statistics.median(logs),
            "exploded_share": sum(s.exploded for s in cells) / sum(len(s.bad) for s in cells)}
