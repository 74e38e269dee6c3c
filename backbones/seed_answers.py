"""The user's three questions, answered from the grid's cells (not by hand): each answer is a set of figures
computed here and the cells they rest on, written beside the table (seed_answers.md/.json).

1. Does a small learning rate regularise?  On torchvision's own pretrained MobileNetV2, where the port's BN
   cannot be blamed: each max_lr 0.01 run against the max_lr 0.1 run of the same head, batch size and seed,
   at matched train loss (the epoch of the 0.1 run whose train loss is closest to the 0.01 run's final one).
2. Why only the MMdnn port?  The like-for-like contrast: the same head on the port with MMdnn's momentum 0,
   on the port with TF-faithful momentum, and on torchvision's pretrained model under its own momentum 0.1.
3. Is a bigger batch always better, a smaller one faster?  Steps and wall time per epoch, the best valid
   loss and the wall time to reach it, bs 8 against bs 32 at both learning rates.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

from backbones.seed_grid import CONFIGS, Cell, num

# the rows question 2 contrasts, in the user's words: their port as MMdnn emits it, the port as TF runs it,
# torchvision's own pretrained model, and (labelled) the random-init one the first answer used
CONTRAST: tuple[tuple[str, str, str], ...] = (
    ("port", "mmdnn", "TF port, MMdnn's momentum 0"),
    ("port", "tf-faithful", "TF port, TF-faithful momentum 0.001"),
    ("native-imagenet", "pytorch", "torchvision pretrained, momentum 0.1"),
    ("native-imagenet", "frozen-eval", "torchvision pretrained, BN eval"),
    ("native-random", "pytorch", "torchvision random init, momentum 0.1"),
)
NATIVE_PRETRAINED = "native-imagenet"
# train losses within this factor count as matched; a pair further apart says nothing about regularisation
MATCH_FACTOR = 1.5
# question 3's rows: the contrast's
BATCH_GROUPS: tuple[tuple[str, str], ...] = tuple((b, s) for b, s, _ in CONTRAST)


def _median(xs: Iterable[float]) -> float:
    xs = [x for x in xs if math.isfinite(x)]
    return statistics.median(xs) if xs else math.nan


@dataclass(frozen=True)
class LrPair:
    """One max_lr 0.01 run and its max_lr 0.1 twin (same backbone, BN, head, bs, seed) at matched train loss."""

    setting: str
    head: str
    bs: int
    seed: int
    train_small: float  # the 0.01 run's final train loss
    valid_small: float
    train_big: float  # the 0.1 run's train loss at the matched epoch
    valid_big: float
    epoch_big: int

    @property
    def gap_ratio(self) -> float:
        """(valid/train at lr 0.01) / (valid/train at lr 0.1), at matched train loss: < 1 = the small lr
        generalises better at the same fit."""
        if not all(map(math.isfinite, (self.valid_small, self.valid_big))) or min(self.train_small,
                                                                                  self.train_big) <= 0:
            return math.inf if not math.isfinite(self.valid_small) else 0.0
        return (self.valid_small / self.train_small) / (self.valid_big / self.train_big)

    @property
    def mismatch(self) -> float:
        """|log10(train at 0.1 / train at 0.01)|: how well the train losses were matched."""
        return abs(math.log10(self.train_big / self.train_small)) if min(self.train_big, self.train_small) > 0 \
            else math.inf


def lr_pairs(cells: Sequence[Cell], backbone: str = NATIVE_PRETRAINED) -> list[LrPair]:
    by = {(c.setting, c.head, c.bs, c.seed, c.max_lr): c for c in cells if c.backbone == backbone}
    out = []
    for (setting, head, bs, seed, lr), small in sorted(by.items()):
        big = by.get((setting, head, bs, seed, 0.1))
        if lr != 0.01 or big is None or not small.train or not big.train:
            continue
        target = small.train[-1]
        e = min(range(len(big.train)), key=lambda k: abs(math.log(max(big.train[k], 1e-30) / max(target, 1e-30))))
        out.append(LrPair(setting, head, bs, seed, target, small.valid[-1], big.train[e], big.valid[e], e))
    return out


@dataclass(frozen=True)
class LrAnswer:
    pairs: int
    matched: int  # pairs whose train losses are within MATCH_FACTOR: the only ones that speak to the question
    median_gap_ratio: float  # over matched pairs; < 1: the small lr has the smaller gap at the same train loss
    smaller_gap: int  # matched pairs where the small lr's gap is smaller
    median_mismatch: float  # over all pairs, log10 factor between the matched train losses
    train_small: float  # median final train loss at lr 0.01
    train_big: float  # median lowest train loss of any epoch at lr 0.1
    valid_small: float  # median final valid loss at lr 0.01
    valid_big: float  # median final valid loss at lr 0.1

    def sentence(self) -> str:
        if self.pairs == 0:
            return "no native pretrained runs at both learning rates: not answered"
        if self.matched == 0:
            fits = "fits worse" if self.train_big > self.train_small else "fits as well"
            return (f"not as regularisation: at max_lr 0.1 the train loss never came within {MATCH_FACTOR:g}x of the "
                    f"max_lr 0.01 runs' (median lowest {self.train_big:.3g} vs final {self.train_small:.3g}, "
                    f"closest epochs a median {10 ** self.median_mismatch:.1f}x apart): the large learning rate "
                    f"{fits} — validation {self.valid_big:.3g} vs {self.valid_small:.3g} — so the small one wins by "
                    "optimising, not by closing a generalisation gap")
        verdict = ("yes: at the same train loss the small learning rate validates better" if
                   self.median_gap_ratio < 0.9 and self.smaller_gap * 3 >= self.matched * 2 else
                   "no clear regularisation: at the same train loss both learning rates validate alike" if
                   self.median_gap_ratio < 1.1 else
                   "no: at the same train loss the large learning rate validates better")
        return (f"{verdict} — median (valid/train at 0.01) / (valid/train at 0.1) = {self.median_gap_ratio:.2f} "
                f"over {self.matched} of {self.pairs} pairs matched within {MATCH_FACTOR:g}x, smaller gap in "
                f"{self.smaller_gap}/{self.matched}")


def answer_lr(cells: Sequence[Cell]) -> LrAnswer:
    pairs = lr_pairs(cells)
    matched = [p for p in pairs if p.mismatch <= math.log10(MATCH_FACTOR)]
    native = [c for c in cells if c.backbone == NATIVE_PRETRAINED and c.train]
    return LrAnswer(len(pairs), len(matched), _median(p.gap_ratio for p in matched),
                    sum(p.gap_ratio < 1 for p in matched), _median(p.mismatch for p in pairs),
                    _median(c.train[-1] for c in native if c.max_lr == 0.01),
                    _median(min(c.train) for c in native if c.max_lr == 0.1),
                    _median(c.valid[-1] for c in native if c.max_lr == 0.01),
                    _median(c.valid[-1] for c in native if c.max_lr == 0.1))


@dataclass(frozen=True)
class ContrastRow:
    backbone: str
    setting: str
    what: str
    per_run: dict[str, tuple[float, int, int]]  # run -> (median valid/train, exploded seeds, seeds)

    @property
    def exploded(self) -> tuple[int, int]:
        return sum(v[1] for v in self.per_run.values()), sum(v[2] for v in self.per_run.values())


def answer_contrast(cells: Sequence[Cell], head: str | None = "fastai", norm: str = "imagenet") -> list[ContrastRow]:
    """The like-for-like rows (the user's set-up: fastai head, ImageNet inputs; head None: every head)."""
    rows = []
    for backbone, setting, what in CONTRAST:
        sel = [c for c in cells if (c.backbone, c.setting, c.norm) == (backbone, setting, norm)
               and (head is None or c.head == head)]
        if not sel:
            continue
        per_run = {}
        for _, _, run in CONFIGS:
            rc = [c for c in sel if c.run == run]
            if rc:
                per_run[run] = (statistics.median(c.ratio for c in rc), sum(1 for c in rc if c.bad_epochs), len(rc))
        rows.append(ContrastRow(backbone, setting, what, per_run))
    return rows


@dataclass(frozen=True)
class BatchRow:
    """One (backbone, BN, max_lr, bs) over its heads and seeds."""

    backbone: str
    setting: str
    max_lr: float
    bs: int
    runs: int
    steps: int  # optimiser steps per epoch
    epoch_seconds: float  # median wall time per epoch
    best_valid: float  # median over runs of the lowest valid loss of any epoch
    seconds_to_best: float  # median wall time until that epoch ended
    final_ratio: float  # median final valid/train


def _to_best(c: Cell) -> tuple[float, float]:
    finite = [(v, k) for k, v in enumerate(c.valid) if math.isfinite(v)]
    if not finite or not c.epoch_seconds:
        return math.inf, math.inf
    v, k = min(finite)
    return v, sum(c.epoch_seconds[: k + 1])


def answer_batch(cells: Sequence[Cell]) -> list[BatchRow]:
    rows = []
    order = {g: i for i, g in enumerate(BATCH_GROUPS)}
    keys = sorted({(c.backbone, c.setting, c.max_lr, c.bs) for c in cells if (c.backbone, c.setting) in order},
                  key=lambda k: (order[k[:2]], -k[2], k[3]))
    for backbone, setting, lr, bs in keys:
        sel = [c for c in cells if (c.backbone, c.setting, c.max_lr, c.bs) == (backbone, setting, lr, bs)]
        best = [_to_best(c) for c in sel]
        rows.append(BatchRow(backbone, setting, lr, bs, len(sel), max((c.steps for c in sel), default=0),
                             _median(s for c in sel for s in c.epoch_seconds), _median(b for b, _ in best),
                             _median(t for _, t in best), _median(c.ratio for c in sel)))
    return rows


def batch_sentence(rows: Sequence[BatchRow]) -> str:
    """Bigger batch better? Smaller faster? From the rows, per (backbone, BN, lr) pair of batch sizes."""
    by = {(r.backbone, r.setting, r.max_lr, r.bs): r for r in rows}
    pairs = [(by[k], by[(*k[:3], 32)]) for k in by if k[3] == 8 and (*k[:3], 32) in by]
    if not pairs:
        return "no runs at both batch sizes: not answered"
    big_better = sum(b.best_valid < s.best_valid for s, b in pairs)
    faster_epoch = sum(s.epoch_seconds > b.epoch_seconds for s, b in pairs)
    sooner = sum(s.seconds_to_best < b.seconds_to_best for s, b in pairs)
    steps = pairs[0][0].steps, pairs[0][1].steps
    return (f"bs 32 reached the lower best valid loss in {big_better}/{len(pairs)} (backbone, BN, lr) pairs — "
            f"{'not always better' if big_better < len(pairs) else 'better in every pair measured'}; bs 8 takes "
            f"{steps[0]} steps per epoch against {steps[1]}, and its epochs took longer in {faster_epoch}/"
            f"{len(pairs)} pairs (more, smaller steps), but it reached its best valid loss sooner in wall time in "
            f"{sooner}/{len(pairs)}")


def render(cells: Sequence[Cell]) -> str:
    """The three answers as markdown, each with the cells it rests on."""
    lr, batch = answer_lr(cells), answer_batch(cells)
    out = ["## Does a small learning rate regularise?", "",
           f"On torchvision's pretrained MobileNetV2 (`{NATIVE_PRETRAINED}`, BN cannot be blamed), each max_lr 0.01 "
           "run against the max_lr 0.1 run of the same BN setting, head, bs and seed, at matched train loss:", "",
           f"**{lr.sentence()}.**", "",
           "| BN | head | bs | seed | train 0.01 | valid 0.01 | train 0.1 (epoch) | valid 0.1 | gap ratio |",
           "|---|---|---|---|---|---|---|---|---|"]
    out += [f"| {p.setting} | {p.head} | {p.bs} | {p.seed} | {p.train_small:.3g} | {p.valid_small:.3g} | "
            f"{p.train_big:.3g} ({p.epoch_big}) | {p.valid_big:.3g} | {num(p.gap_ratio)} |" for p in lr_pairs(cells)]
    out += ["", "## Why only the MMdnn port?", "",
            "The same fastai head, ImageNet inputs (the user's set-up): median final valid/train loss ratio over "
            "seeds, exploded seeds / seeds.", "",
            "| backbone | " + " | ".join(f"{r} bs {b}, lr {lr_:g}" for b, lr_, r in CONFIGS) + " | exploded |",
            "|---|" + "---|" * (len(CONFIGS) + 1)]
    for row in answer_contrast(cells):
        cols = [f"{num(m)} {e}/{n}" for m, e, n in (row.per_run.get(r, (math.nan, 0, 0)) for _, _, r in CONFIGS)]
        e, n = row.exploded
        out.append(f"| {row.what} | " + " | ".join(cols) + f" | {e}/{n} |")
    every = answer_contrast(cells, head=None)
    out += ["", "Over every head: " + "; ".join(f"{r.what}: {r.exploded[0]}/{r.exploded[1]} seeds exploded"
                                               for r in every) + ".", "",
            "## Is a bigger batch always better; is a smaller one faster?", "",
            f"**{batch_sentence(batch)}.**", "",
            "| backbone | BN | max_lr | bs | runs | steps/epoch | s/epoch | best valid | s to best | valid/train |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    out += [f"| {r.backbone} | {r.setting} | {r.max_lr:g} | {r.bs} | {r.runs} | {r.steps} | {r.epoch_seconds:.2f} | "
            f"{r.best_valid:.3g} | {r.seconds_to_best:.1f} | {num(r.final_ratio)} |" for r in batch]
    return "\n".join(out) + "\n"


def as_json(cells: Sequence[Cell]) -> dict:
    lr, batch = answer_lr(cells), answer_batch(cells)
    return {"small_lr": {**asdict(lr), "sentence": lr.sentence()},
            "contrast": [{**asdict(r), "exploded": r.exploded} for r in answer_contrast(cells)],
            "batch": [asdict(r) for r in batch], "batch_sentence": batch_sentence(batch)}
