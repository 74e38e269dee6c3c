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
plus torchvision's own MobileNetV2 as the "native" comparison with ImageNet inputs: its ImageNet weights
(`native-imagenet`, backbones.pretrained: PyTorch's momentum 0.1, and BN eval) and random init
(`native-random`, momentum 0.1). "BN train" is fastai's
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

from backbones import seed_answers, seed_findings
from backbones.head_kinds import HEAD_KINDS
from backbones.seed_grid import (
    CONFIGS,
    EXPLODED,
    NATIVE,
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
    p.add_argument("--natives", nargs="+", choices=list(NATIVE), default=list(NATIVE),
                   help="torchvision's own MobileNetV2 rows (default: both: " + "; ".join(
                       f"{n.name}: {n.what}" for n in NATIVE.values()) + ")")
    p.add_argument("--no-native", action="store_true", help="leave out torchvision's own MobileNetV2")
    p.add_argument("--no-port", action="store_true", help="the native rows only (adds them to a table cheaply)")
    p.add_argument("--workers", type=int, default=min(os.cpu_count() or 1, 4))
    p.add_argument("--no-parity-gate", action="store_true", help="passed to every run with a ported backbone")
    p.add_argument("--from-json", nargs="+", metavar="JSON",
                   help="train nothing: the tables and answers of earlier runs' seed_table.json files, together")
    return p


def plan(args: argparse.Namespace, common: dict, shared: dict | None) -> list[Job]:
    """The runs: the port's grid (unless --no-port) and, with `shared` (TrainConfig fields common to every
    backbone), each requested native backbone under its own BN settings with ImageNet inputs."""
    seeds = [args.seed + k for k in range(1 if args.quick else args.seeds)]
    heads = args.heads or (("fastai",) if args.quick else HEAD_KINDS)
    norms = args.norms or (("imagenet",) if args.quick else NORMS)
    settings = [SETTING[n] for n in (args.settings or SETTING)]
    jobs = [] if args.no_port else [Job("port", s, n, h, r, bs, lr, seed, common) for s in settings for n in norms
                                    for h in heads for bs, lr, r in CONFIGS for seed in seeds]
    if shared is not None and not args.no_native:
        for native in (NATIVE[n] for n in args.natives):
            config = dict(backbone=native.backbone, weights=None, **shared)
            jobs += [Job(native.name, SETTING[s], "imagenet", h, r, bs, lr, seed, config)
                     for s in native.settings for h in heads for bs, lr, r in CONFIGS for seed in seeds]
    if not jobs:
        raise fail("no runs: --no-port with --no-native leaves nothing to train")
    return jobs


def run(args: argparse.Namespace) -> tuple[list[Cell], list[Summary]]:
    from backbones import gate
    from backbones.data import read_labels
    from backbones.synth import write_dataset

    if args.from_json:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        cells, metas = read_cells(args.from_json)
        return cells, write_results(out, cells, {"from": list(args.from_json), "grids": metas})

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
    jobs = plan(args, common, shared)
    from backbones.registry import REGISTRY

    for name in dict.fromkeys(j.common["backbone"] for j in jobs):  # fetched once here, not by every worker
        if name in REGISTRY and REGISTRY[name].weights is not None:
            REGISTRY[name].weights()
    print(f"{len(jobs)} runs on {args.workers} workers", flush=True)
    cells = run_all(jobs, out, args.workers)
    meta = {"backbone": backbone, "weights": weights, "data": data, "epochs": args.epochs, "img_size": args.img_size}
    return cells, write_results(out, cells, meta)


def write_results(out: Path, cells: list[Cell], meta: dict) -> list[Summary]:
    """The tables, the answers, the plot and the data, printed and written into `out`."""
    import json

    from backbones.results import strict_json
    from convert.runtime.files import write_text

    summaries = summarise(cells)
    print(f"\nfinal valid/train loss ratio over {len({c.seed for c in cells})} seed(s): median, range; exploded = "
          f"seeds with an epoch of valid nan/inf or > {EXPLODED:g}x train\n")
    print(text_table(summaries))
    plot(out / "seed_table.png", summaries)
    write_text(out / "seed_table.md", markdown(summaries))
    write_text(out / "seed_answers.md", seed_answers.render(cells))
    found = seed_findings.findings(cells)
    write_text(out / "seed_findings.md", seed_findings.render(found))
    answers = seed_answers.as_json(cells)
    print(f"\nsmall lr: {answers['small_lr']['sentence']}\nbatch size: {answers['batch_sentence']}")
    doc = {**meta, "settings": [asdict(s) for s in SETTINGS], "effects": effects(summaries), "answers": answers,
           "findings": seed_findings.as_json(found),
           "summaries": [{**asdict(s), "median": s.median, "exploded": s.exploded} for s in summaries],
           "cells": [{**asdict(c), "ratio": c.ratio, "bad_epochs": c.bad_epochs} for c in cells]}
    write_text(out / "seed_table.json", json.dumps(strict_json(doc), indent=2))
    return summaries


def read_cells(paths: Sequence[str]) -> tuple[list[Cell], list[dict]]:
    """The cells of earlier runs' seed_table.json files (one grid's rows added to another's), each run once."""
    import json
    from dataclasses import fields

    names = [f.name for f in fields(Cell)]
    cells: dict[tuple, Cell] = {}
    metas = []
    for path in paths:
        try:
            doc = json.loads(Path(path).read_text())
            rows = doc["cells"]
            got = [Cell(**{k: tuple(v) if isinstance(v, list) else v for k, v in row.items() if k in names})
                   for row in rows]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise fail(f"--from-json {path}: not a seed_table.json ({type(e).__name__}: {str(e)[:120]})") from None
        for c in got:
            key = (c.group, c.run, c.seed)
            if key in cells:
                raise fail(f"--from-json {path}: {'/'.join(c.group)} {c.run} seed {c.seed} is in two files")
            cells[key] = c
        metas.append({k: v for k, v in doc.items() if k in ("backbone", "weights", "data", "epochs", "img_size")})
    return list(cells.values()), metas


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
    how = (f"read from {len(args.from_json)} file(s)" if args.from_json
           else f"in {time.perf_counter() - t0:.0f} s")
    print(f"DONE: {len(cells)} runs {how}; {exploded} with an exploded validation "
          f"epoch; table {args.out}/seed_table.md, answers {args.out}/seed_answers.md, plot {args.out}/seed_table.png, "
          f"data {args.out}/seed_table.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
