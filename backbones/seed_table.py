"""The seed experiment as a factorial: which factor makes validation explode while training falls?

The user trained a head on a frozen, MMdnn-ported MobileNetV2 with fit_one_cycle at bs 8/32 and
max_lr 0.1/0.01 (fastai: ImageNet-normalised inputs, `create_head`, train_bn); at max_lr 0.1 the
validation loss exploded while the training loss fell. Here every combination of

    BN setting     mmdnn        BN train, momentum 0      what MMdnn emits: running statistics never move
                   tf-faithful  BN train, momentum 0.001  the canonical port (1 - TF decay 0.999)
                   pytorch      BN train, momentum 0.1    PyTorch's usual (torchvision's own MobileNetV2)
                   frozen-eval  BN eval                   Keras's behaviour for a frozen BatchNormalization
    inputs         imagenet (ImageNet mean/std, as fastai feeds every backbone) | source (the port's own range)
    head           default | fastai (create_head) | linear
    run            the user's four (bs, max_lr)

runs with several seeds on the same backbone weights (a real pretrained port: scripts/fetch_pretrained),
plus torchvision's own MobileNetV2 as the "native" comparison (random init: no pretrained torchvision
weights can be had here) under PyTorch's momentum 0.1 with ImageNet inputs. "BN train" is fastai's
train_bn: batch statistics normalise in training, running statistics at validation. Runs go to worker
processes, one thread each (small batches scale poorly across threads; two single-thread runs use two
cores fully). Under BN eval the trainer caches the backbone's features within each run.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from backbones.head_kinds import HEAD_KINDS
from convert.errors import TfportError, fail

EXPLODED = 100.0  # an epoch is "bad" when valid loss is nan/inf or above 100x the train loss

CONFIGS: tuple[tuple[int, float, str], ...] = (  # the user's runs, in their order
    (8, 0.1, "run#1"), (32, 0.1, "run#2"), (8, 0.01, "run#3"), (32, 0.01, "run#4"),
)


@dataclass(frozen=True)
class BNSetting:
    name: str
    bn: str
    momentum: float | None
    what: str


SETTINGS: tuple[BNSetting, ...] = (
    BNSetting("mmdnn", "train", 0.0, "BN train, momentum 0 (MMdnn's emitted model)"),
    BNSetting("tf-faithful", "train", 0.001, "BN train, momentum 0.001 (1 - TF decay 0.999)"),
    BNSetting("pytorch", "train", 0.1, "BN train, momentum 0.1 (PyTorch's usual)"),
    BNSetting("frozen-eval", "eval", None, "BN eval (Keras's frozen BatchNormalization)"),
)
SETTING = {s.name: s for s in SETTINGS}
NORMS = ("imagenet", "source")  # "source": the backbone's own preprocessing (a port's input range)
NATIVE_SETTINGS = ("pytorch",)  # torchvision's own semantics; at random init BN eval has nothing to keep


@dataclass(frozen=True)
class Cell:
    """One run of the grid, reduced to what the tables show."""

    backbone: str  # "port" or "native"
    setting: str
    norm: str
    head: str
    run: str
    bs: int
    max_lr: float
    seed: int
    status: str
    train: tuple[float, ...]
    valid: tuple[float, ...]
    drift: tuple[float | None, ...]  # the BN monitor's worst shift per epoch (sigmas); None under BN eval
    seconds: float

    @property
    def bad_epochs(self) -> int:
        return sum(1 for t, v in zip(self.train, self.valid, strict=True) if not math.isfinite(v) or v > EXPLODED * t)

    @property
    def ratio(self) -> float:
        """Final valid / train loss (inf when validation is not finite or training stopped at NaN)."""
        if not self.valid or not math.isfinite(self.valid[-1]):
            return math.inf
        return self.valid[-1] / self.train[-1] if self.train[-1] > 0 else math.inf

    @property
    def group(self) -> tuple[str, str, str, str]:
        return self.backbone, self.setting, self.norm, self.head


@dataclass(frozen=True)
class Job:
    backbone: str
    setting: BNSetting
    norm: str
    head: str
    run: str
    bs: int
    max_lr: float
    seed: int
    common: dict  # TrainConfig fields shared by every run of this backbone

    @property
    def tag(self) -> str:
        return (f"{self.backbone}_{self.setting.name}_{self.norm}_{self.head}_bs{self.bs}_lr{self.max_lr:g}"
                f"_s{self.seed}")


def _run_one(job: Job) -> Cell:
    """In a worker process: one training run, quiet, reduced to a Cell."""
    import torch
    from rich.console import Console

    from backbones.config import TrainConfig
    from backbones.train import train

    torch.set_num_threads(1)
    s = job.setting
    cfg = TrainConfig(bs=job.bs, max_lr=job.max_lr, bn=s.bn, bn_momentum=s.momentum, head=job.head, seed=job.seed,
                      preprocess="imagenet" if job.norm == "imagenet" else None, **job.common)
    t0 = time.perf_counter()
    quiet = Console(quiet=True)
    r = train(cfg, console=quiet, err=quiet)
    return Cell(job.backbone, s.name, job.norm, job.head, job.run, job.bs, job.max_lr, job.seed, r.status,
                tuple(e.train_loss for e in r.epochs), tuple(e.valid_loss for e in r.epochs),
                tuple(e.bn_shift for e in r.epochs), time.perf_counter() - t0)


def calibrated_mobilenet(path: Path, seed: int, size: int) -> None:
    """torchvision MobileNetV2, seeded random init, BN running statistics of [-1, 1] smooth images."""
    import torch
    from torchvision.models import mobilenet_v2

    from backbones.calibrate import calibrate_bn
    from convert.atomic import atomic_path

    torch.manual_seed(seed)
    model = mobilenet_v2(weights=None)
    calibrate_bn(model, size=size, seed=seed)
    with atomic_path(path) as tmp:
        torch.save(model.state_dict(), tmp)


# ------------------------------------------------------------------------------------------- summaries


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
        return f"{_num(self.median)} [{_num(lo)}–{_num(hi)}] {self.exploded}/{len(self.bad)}"


def _num(v: float) -> str:
    if not math.isfinite(v):
        return "inf"
    return f"{v:.2g}" if v < 10 else f"{v:.0f}" if v < 1e4 else f"{v:.0e}"


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


def _groups(summaries: Sequence[Summary]) -> list[tuple[str, str, str, str]]:
    order = {"port": 0, "native": 1}
    seen = {s.group for s in summaries}
    return sorted(seen, key=lambda g: (order.get(g[0], 2), [s.name for s in SETTINGS].index(g[1]),
                                       NORMS.index(g[2]), HEAD_KINDS.index(g[3])))


def markdown(summaries: Sequence[Summary]) -> str:
    """One row per (backbone, BN setting, inputs, head), one column per run: the README's table."""
    by = {(s.group, s.run): s for s in summaries}
    lines = ["| backbone | BN | inputs | head | " + " | ".join(f"{r} bs {b}, lr {lr:g}" for b, lr, r in CONFIGS) + " |",
             "|---|---|---|---|" + "---|" * len(CONFIGS)]
    for g in _groups(summaries):
        cells = [by[(g, r)].cell() if (g, r) in by else "–" for _, _, r in CONFIGS]
        lines.append(f"| {g[0]} | {g[1]} | {g[2]} | {g[3]} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def text_table(summaries: Sequence[Summary]) -> str:
    """The same for a terminal or CI log: one line per group and run, fits 80 columns."""
    head = f"{'backbone/BN/inputs/head':<36}{'run':<7}{'median':>8}{'range':>17}{'exploded':>10}"
    rows = [head]
    by = {(s.group, s.run): s for s in summaries}
    for g in _groups(summaries):
        for _, _, r in CONFIGS:
            s = by.get((g, r))
            if s is None:
                continue
            rng = f"{_num(min(s.ratios))}–{_num(max(s.ratios))}"
            rows.append(f"{'/'.join(g):<36}{r:<7}{_num(s.median):>8}{rng:>17}{f'{s.exploded}/{len(s.bad)}':>10}")
    return "\n".join(rows)


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


def plot(path: Path, summaries: Sequence[Summary]) -> None:
    """Heat map per head: rows (backbone, BN, inputs), columns the four runs; colour log10 of the median
    final valid/train ratio, text the median and how many seeds had an exploded epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from convert.atomic import atomic_path

    by = {(s.group, s.run): s for s in summaries}
    heads = [h for h in HEAD_KINDS if any(s.group[3] == h for s in summaries)]
    rows = list(dict.fromkeys(g[:3] for g in _groups(summaries)))  # (backbone, BN, inputs), in table order
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
                ax.text(j, i, f"{_num(s.median)}\n{s.exploded}/{len(s.bad)}", ha="center", va="center", fontsize=7)
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


# ------------------------------------------------------------------------------------------- running


def _run_all(jobs: list[Job], out: Path, workers: int) -> list[Cell]:
    """Spawned workers, one thread each; a line per finished run."""
    import multiprocessing as mp

    os.environ.setdefault("OMP_NUM_THREADS", "1")  # inherited by the spawned workers
    # BN-train runs at bs 8 are the longest (backbone forward + backward every batch): start them first
    ordered = sorted(jobs, key=lambda j: (j.setting.bn != "train", j.bs))
    cells: list[Cell] = []
    t0 = time.perf_counter()
    with ProcessPoolExecutor(max(1, workers), mp_context=mp.get_context("spawn")) as pool:
        futures = [pool.submit(_run_one, replace(j, common={**j.common, "out": str(out / "runs" / j.tag)}))
                   for j in ordered]
        for f in as_completed(futures):
            c = f.result()
            cells.append(c)
            print(f"[{len(cells)}/{len(jobs)} {time.perf_counter() - t0:5.0f} s] {'/'.join(c.group)} {c.run} "
                  f"seed {c.seed}: valid/train {_num(c.ratio)}, bad {c.bad_epochs}/{len(c.train)}, "
                  f"{c.seconds:.0f} s", flush=True)
    return cells


def build_parser() -> argparse.ArgumentParser:
    from convert.argtypes import Parser

    p = Parser(prog="scripts/reproduce_seed_table", description=__doc__.split("\n\n")[0],
               formatter_class=argparse.RawDescriptionHelpFormatter,
               epilog="example:\n"
                      "  scripts/fetch_pretrained   # a real pretrained MobileNetV2, converted and certified\n"
                      "  scripts/reproduce_seed_table --backbone ~/.cache/tfport/pretrained/face_mask_mobilenet_v2.pth"
                      "\n  scripts/reproduce_seed_table --quick --backbone ported.pth")
    p.add_argument("--backbone", help="ported checkpoint PATH.pth (default: calibrated random-init MobileNetV2)")
    p.add_argument("--data", help="keypoint folder (default: generate --n synthetic faces in OUT/data)")
    p.add_argument("--out", default="runs/seed_table")
    p.add_argument("--n", type=int, default=256,
                   help="synthetic images when --data is not given (default 256: 205 train, 51 valid)")
    p.add_argument("--img-size", type=int, default=64,
                   help="default 64: the full grid (324 runs) in 24 minutes on 2 cores (96 px: about twice that)")
    p.add_argument("--epochs", type=int, default=5, help="as the user's runs #1-#3 (default 5)")
    p.add_argument("--seeds", type=int, default=3, help="seeds per cell (default 3)")
    p.add_argument("--seed", type=int, default=0, help="first seed (data and calibration use it too)")
    p.add_argument("--quick", action="store_true",
                   help="a subset: one seed, fastai head, ImageNet inputs (the user's fastai set-up), every BN "
                        "setting and run, plus native")
    p.add_argument("--heads", nargs="+", choices=HEAD_KINDS, help=f"default: all ({', '.join(HEAD_KINDS)})")
    p.add_argument("--norms", nargs="+", choices=NORMS, help=f"default: both ({', '.join(NORMS)})")
    p.add_argument("--settings", nargs="+", choices=list(SETTING), help="BN settings (default: all four)")
    p.add_argument("--no-native", action="store_true", help="leave out torchvision's own MobileNetV2")
    p.add_argument("--workers", type=int, default=min(os.cpu_count() or 1, 4))
    p.add_argument("--no-parity-gate", action="store_true", help="passed to every run with a ported backbone")
    return p


def plan(args: argparse.Namespace, common: dict, native: dict | None) -> list[Job]:
    seeds = [args.seed + k for k in range(1 if args.quick else args.seeds)]
    heads = args.heads or (("fastai",) if args.quick else HEAD_KINDS)
    norms = args.norms or (("imagenet",) if args.quick else NORMS)
    settings = [SETTING[n] for n in (args.settings or SETTING)]
    jobs = [Job("port", s, n, h, r, bs, lr, seed, common)
            for s in settings for n in norms for h in heads for bs, lr, r in CONFIGS for seed in seeds]
    if native is not None:
        jobs += [Job("native", SETTING[s], "imagenet", h, r, bs, lr, seed, native)
                 for s in NATIVE_SETTINGS for h in heads for bs, lr, r in CONFIGS for seed in seeds]
    return jobs


def run(args: argparse.Namespace) -> tuple[list[Cell], list[Summary]]:
    import json

    from backbones import gate
    from backbones.data import read_labels
    from backbones.results import strict_json
    from backbones.synth import write_dataset
    from convert.atomic import write_text

    if args.seeds < 1:
        raise fail(f"--seeds {args.seeds}: need at least 1")
    out = Path(args.out)
    if (out / "runs").exists():
        raise fail(f"{out}/runs exists from an earlier run; remove it or choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    data = args.data
    if data is None:
        data = str(out / "data")
        if not (Path(data) / "labels.csv").exists():
            print(write_dataset(data, n=args.n, size=args.img_size, seed=args.seed).summary(), flush=True)
    read_labels(data)  # bad data: one error here, not one per worker
    backbone, weights = args.backbone, None
    if backbone is not None and not args.no_parity_gate:
        gate.check(backbone, "train")  # the three BN-train settings need a train-mode certificate
    if backbone is None:
        backbone, weights = "mobilenet_v2", str(out / "mobilenet_v2_calibrated.pth")
        calibrated_mobilenet(Path(weights), args.seed, args.img_size)
    shared = dict(data=data, epochs=args.epochs, img_size=args.img_size)
    common = dict(backbone=backbone, weights=weights, parity_gate=not args.no_parity_gate, **shared)
    native = None if args.no_native else dict(backbone="mobilenet_v2", weights=None, **shared)
    jobs = plan(args, common, native)
    print(f"{len(jobs)} runs on {args.workers} workers", flush=True)
    cells = _run_all(jobs, out, args.workers)
    summaries = summarise(cells)
    print(f"\nfinal valid/train loss ratio over {len({c.seed for c in cells})} seed(s): median, range; exploded = "
          f"seeds with an epoch of valid nan/inf or > {EXPLODED:g}x train\n")
    print(text_table(summaries))
    plot(out / "seed_table.png", summaries)
    write_text(out / "seed_table.md", markdown(summaries))
    doc = {"backbone": backbone, "weights": weights, "data": data, "epochs": args.epochs, "img_size": args.img_size,
           "settings": [asdict(s) for s in SETTINGS], "effects": effects(summaries),
           "summaries": [{**asdict(s), "median": s.median, "exploded": s.exploded} for s in summaries],
           "cells": [{**asdict(c), "ratio": c.ratio, "bad_epochs": c.bad_epochs} for c in cells]}
    write_text(out / "seed_table.json", json.dumps(strict_json(doc), indent=2))
    return cells, summaries


def main(argv: Sequence[str] | None = None) -> int:
    from parity.certificate import GateError

    try:
        args = build_parser().parse_args(argv)
        t0 = time.perf_counter()
        cells, summaries = run(args)
    except (TfportError, GateError) as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    exploded = sum(1 for c in cells if c.bad_epochs)
    print(f"DONE: {len(cells)} runs in {time.perf_counter() - t0:.0f} s; {exploded} with an exploded validation "
          f"epoch; table {args.out}/seed_table.md, plot {args.out}/seed_table.png, data {args.out}/seed_table.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
