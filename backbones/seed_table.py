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

The grid and its runs are backbones.seed_grid, the reductions over seeds backbones.seed_stats, the tables
and the heat map backbones.seed_render; this module is the command line (scripts/reproduce_seed_table).
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from backbones.head_kinds import HEAD_KINDS
from backbones.seed_grid import (
    CONFIGS,
    EXPLODED,
    NATIVE_SETTINGS,
    NORMS,
    SETTING,
    SETTINGS,
    Cell,
    Job,
    calibrated_mobilenet,
    run_all,
)
from backbones.seed_render import markdown, plot, text_table
from backbones.seed_stats import Summary, effects, summarise
from convert.runtime.errors import fail


def build_parser() -> argparse.ArgumentParser:
    from convert.runtime.args import Parser

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
    from convert.runtime.files import write_text

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
    cells = run_all(jobs, out, args.workers)
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
    """Exit codes as every CLI's (convert.runtime.args.run_main): 2 bad input, 1 the gate refused, 3 a bug."""
    from convert.runtime.args import run_main
    from parity.certificate import GateError

    p = build_parser()
    p.set_defaults(func=_reproduce)
    return run_main(p, argv, errors=(GateError,))


def _reproduce(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    cells, summaries = run(args)
    exploded = sum(1 for c in cells if c.bad_epochs)
    print(f"DONE: {len(cells)} runs in {time.perf_counter() - t0:.0f} s; {exploded} with an exploded validation "
          f"epoch; table {args.out}/seed_table.md, plot {args.out}/seed_table.png, data {args.out}/seed_table.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
