"""The seed experiment, rerun: the user's four fastai runs under four BatchNorm settings.

The user trained a head on a frozen, MMdnn-ported MobileNetV2 with fit_one_cycle at bs 8/32 and
max_lr 0.1/0.01, inputs ImageNet-normalised as fastai feeds every backbone; at max_lr 0.1 the
validation loss exploded while the training loss fell. Here the same four configurations run on the
same backbone weights under:

    mmdnn        BN train, momentum 0      what MMdnn emits: running statistics never move
    tf-faithful  BN train, momentum 0.001  the canonical port (1 - TF decay 0.999)
    pytorch      BN train, momentum 0.1    PyTorch's usual momentum (torchvision's own MobileNetV2)
    frozen-eval  BN eval                   Keras's behaviour for a frozen BatchNormalization

"BN train" is fastai's train_bn: batch statistics normalise in training, running statistics at
validation. Runs go to worker processes (one thread each: small batches scale poorly across threads,
and two single-thread runs use two cores fully). Without --backbone the weights are torchvision's
MobileNetV2 at seeded random init whose BN running statistics are then estimated on smooth random
images in [-1, 1] — like a TF source's, statistics of a different input distribution than the one
it will be fed — and saved once, so every run starts from the same file.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, replace
from pathlib import Path

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


@dataclass(frozen=True)
class Cell:
    """One run of the grid, reduced to what the table shows."""

    setting: str
    run: str
    bs: int
    max_lr: float
    status: str
    train: tuple[float, ...]
    valid: tuple[float, ...]
    remaining: float | None  # share of source BN statistics left at the end (BN train only)
    seconds: float

    @property
    def bad_epochs(self) -> int:
        return sum(1 for t, v in zip(self.train, self.valid, strict=True) if not math.isfinite(v) or v > EXPLODED * t)

    @property
    def ratio(self) -> float:
        """Final valid / train loss."""
        if not self.valid:
            return float("nan")
        return self.valid[-1] / self.train[-1] if self.train[-1] > 0 else float("inf")


@dataclass(frozen=True)
class Job:
    setting: BNSetting
    run: str
    bs: int
    max_lr: float
    common: dict  # TrainConfig fields shared by every run

    @property
    def tag(self) -> str:
        return f"{self.setting.name}_bs{self.bs}_lr{self.max_lr:g}"


def _run_one(job: Job) -> Cell:
    """In a worker process: one training run, quiet, reduced to a Cell."""
    import torch
    from rich.console import Console

    from backbones.config import TrainConfig
    from backbones.train import train

    torch.set_num_threads(1)
    s = job.setting
    cfg = TrainConfig(bs=job.bs, max_lr=job.max_lr, bn=s.bn, bn_momentum=s.momentum, **job.common)
    t0 = time.perf_counter()
    quiet = Console(quiet=True)
    r = train(cfg, console=quiet, err=quiet)
    remaining = r.forecasts[0].remaining if r.forecasts else None
    return Cell(s.name, job.run, job.bs, job.max_lr, r.status, tuple(e.train_loss for e in r.epochs),
                tuple(e.valid_loss for e in r.epochs), remaining, time.perf_counter() - t0)


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


def _plottable(v: float) -> float:
    return v if math.isfinite(v) else float("nan")


def _fmt(v: float) -> str:
    return f"{v:.6f}" if math.isfinite(v) else str(v)


def table(cell: Cell) -> str:
    lines = [f"{cell.setting} / {cell.run} (bs {cell.bs}, max_lr {cell.max_lr:g}): {cell.status}, {cell.seconds:.0f} s",
             f"  {'epoch':<6} {'train_loss':<11} {'valid_loss':<11}"]
    pairs = enumerate(zip(cell.train, cell.valid, strict=True))
    lines += [f"  {i:<6} {_fmt(t):<11} {_fmt(v):<11}" for i, (t, v) in pairs]
    return "\n".join(lines)


def summary(cells: Sequence[Cell]) -> str:
    head = (f"{'setting':<13}{'run':<7}{'bs':>4}{'max_lr':>8}{'final valid/train':>19}{'bad epochs':>12}"
            f"{'BN stats left':>15}")
    rows = [head]
    for c in cells:
        left = "-" if c.remaining is None else f"{c.remaining:.0%}"
        rows.append(f"{c.setting:<13}{c.run:<7}{c.bs:>4}{c.max_lr:>8g}{_fmt(c.ratio):>19}"
                    f"{f'{c.bad_epochs}/{len(c.train)}':>12}{left:>15}")
    return "\n".join(rows)


def plot(path: Path, cells: Sequence[Cell]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from convert.atomic import atomic_path

    fig, axes = plt.subplots(len(SETTINGS), len(CONFIGS), figsize=(14, 11), sharex=True)
    for i, s in enumerate(SETTINGS):
        for j, (bs, lr, run) in enumerate(CONFIGS):
            ax = axes[i][j]
            c = next(c for c in cells if c.setting == s.name and c.run == run)
            ep = range(len(c.train))
            ax.plot(ep, [_plottable(v) for v in c.train], "o-", label="train")
            ax.plot(ep, [_plottable(v) for v in c.valid], "s-", color="tab:red", label="valid")
            for k, v in enumerate(c.valid):
                if not math.isfinite(v):
                    ax.axvline(k, color="tab:red", ls=":")
            ax.set_yscale("log")
            ax.set_title(f"{s.name}: {run} bs {bs} lr {lr:g}", fontsize=8)
            if j == 0:
                ax.set_ylabel("MSE")
    axes[0][0].legend(fontsize=7)
    fig.suptitle("valid vs train loss per epoch (dotted: valid nan/inf)")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)


def _run_all(jobs: list[Job], out: Path, workers: int) -> list[Cell]:
    """Spawned workers, one thread each; each run's table is printed as it finishes."""
    import multiprocessing as mp

    os.environ.setdefault("OMP_NUM_THREADS", "1")  # inherited by the spawned workers
    # BN-train runs at bs 8 are the longest (backbone forward + backward every batch): start them first
    ordered = sorted(jobs, key=lambda j: (j.setting.bn != "train", j.bs))
    cells: list[Cell] = []
    with ProcessPoolExecutor(max(1, workers), mp_context=mp.get_context("spawn")) as pool:
        futures = [pool.submit(_run_one, replace(j, common={**j.common, "out": str(out / "runs" / j.tag)}))
                   for j in ordered]
        for f in as_completed(futures):
            cells.append(f.result())
            print(table(cells[-1]), flush=True)
    return cells


def build_parser() -> argparse.ArgumentParser:
    from backbones.cli import Parser

    p = Parser(prog="scripts/reproduce_seed_table", description=__doc__.split("\n\n")[0],
               formatter_class=argparse.RawDescriptionHelpFormatter,
               epilog="example:\n  scripts/reproduce_seed_table --out runs/seed --n 400 --img-size 48 --epochs 5\n"
                      "  scripts/reproduce_seed_table --backbone out/ported.pth --no-parity-gate")
    p.add_argument("--backbone", help="ported checkpoint PATH.pth (default: calibrated random-init MobileNetV2)")
    p.add_argument("--data", help="keypoint folder (default: generate --n synthetic faces in OUT/data)")
    p.add_argument("--out", default="runs/seed_table")
    p.add_argument("--n", type=int, default=400, help="synthetic images when --data is not given (default 400)")
    p.add_argument("--img-size", type=int, default=48, help="default 48: bounded CPU time")
    p.add_argument("--epochs", type=int, default=5, help="as the user's runs #1-#3 (default 5)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=min(os.cpu_count() or 1, 4))
    p.add_argument("--no-parity-gate", action="store_true", help="passed to every run with a ported backbone")
    return p


def run(args: argparse.Namespace) -> list[Cell]:
    import json

    from backbones import gate
    from backbones.data import read_labels
    from backbones.results import strict_json
    from backbones.synth import write_dataset
    from convert.atomic import write_text

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
    common = dict(backbone=backbone, weights=weights, data=data, epochs=args.epochs, img_size=args.img_size,
                  seed=args.seed, preprocess="imagenet", parity_gate=not args.no_parity_gate)
    jobs = [Job(s, run, bs, lr, common) for s in SETTINGS for bs, lr, run in CONFIGS]
    cells = _run_all(jobs, out, args.workers)
    order = {(j.setting.name, j.run): k for k, j in enumerate(jobs)}
    cells.sort(key=lambda c: order[(c.setting, c.run)])
    print("\nsummary: final valid/train loss ratio; bad epochs = valid nan/inf or > "
          f"{EXPLODED:g}x train; BN stats left = share of the source running statistics at the end\n")
    print(summary(cells))
    plot(out / "seed_table.png", cells)
    doc = {"backbone": backbone, "weights": weights, "data": data, "epochs": args.epochs, "img_size": args.img_size,
           "settings": [asdict(s) for s in SETTINGS],
           "cells": [{**asdict(c), "ratio": c.ratio, "bad_epochs": c.bad_epochs} for c in cells]}
    write_text(out / "seed_table.json", json.dumps(strict_json(doc), indent=2))
    return cells


def main(argv: Sequence[str] | None = None) -> int:
    from parity.certificate import GateError

    try:
        args = build_parser().parse_args(argv)
        t0 = time.perf_counter()
        cells = run(args)
    except (TfportError, GateError) as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    exploded = sorted({f"{c.setting}/{c.run}" for c in cells if c.bad_epochs})
    print(f"DONE: {len(cells)} runs in {time.perf_counter() - t0:.0f} s; bad validation epochs in "
          f"{', '.join(exploded) if exploded else 'none'}; "
          f"table {args.out}/seed_table.json, plot {args.out}/seed_table.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
