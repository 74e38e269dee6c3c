"""``python -m backbones``: train the shared head on any backbone, list backbones, make a dataset.

Handlers are thin over the library (backbones.trainer, backbones.synth). Exit codes, as in every tfport
CLI: 0 ok; 1 the run failed (parity gate refused, non-finite loss, non-finite validation loss);
2 bad input or usage — one ``error:`` line on stderr, no traceback. torch is imported only by the handlers that
need it, so ``--help`` and bad-usage errors are instant.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from convert.runtime.args import Parser, run_main

if TYPE_CHECKING:
    from backbones.config import TrainConfig

EPILOG = """examples:
  python -m backbones make-data data/noses --n 1000
  python -m backbones list
  python -m backbones train --backbone resnet34 --data data/noses --bs 8 \\
      --max-lr 0.01 --epochs 5
  python -m backbones train --backbone mobilenet_v2 \\
      --weights mobilenet_v2.pth --data data/noses
  python -m backbones train --backbone out/ported.pth --data data/noses \\
      --bn train --bn-momentum 0.1
  torchrun --nproc_per_node 2 -m backbones train --backbone resnet34 \\
      --data data/noses --bs 32

exit codes: 0 ok; 1 run failed (parity gate refused, nan/inf loss);
2 bad input or usage
"""


def _main_rank() -> bool:
    return os.environ.get("RANK", "0") == "0"


def _say(line: str, *, err: bool = False) -> None:
    if _main_rank():
        print(line, file=sys.stderr if err else sys.stdout, flush=True)


def cmd_train(args: argparse.Namespace) -> int:
    from backbones import data, registry
    from backbones.config import TrainConfig

    cfg = TrainConfig(
        backbone=args.backbone, data=args.data,
        out=args.out or str(Path("runs") / Path(args.backbone).stem.replace(":", "-")),
        weights=args.weights, bs=args.bs, max_lr=args.max_lr, epochs=args.epochs, freeze=args.freeze,
        bn=args.bn, bn_momentum=args.bn_momentum, img_size=args.img_size, seed=args.seed,
        head=args.head, hidden=tuple(args.head_hidden), dropout=args.dropout, weight_decay=args.wd,
        augment=args.augment,
        preprocess=args.preprocess, feature_cache=not args.no_feature_cache,
        parity_gate=not args.no_parity_gate, resume=args.resume, stop_after=args.stop_after,
    ).validate()
    # the checks that need no torch run before torch loads (seconds), so a typo fails at once;
    # the trainer checks the same again for library callers
    data.read_labels(cfg.data)
    registry.check_name(cfg.backbone)
    return _train(cfg)


def _train(cfg: TrainConfig) -> int:
    """The run itself, once the torch-free checks have passed: torch loads here."""
    from backbones import dist
    from backbones.trainer import train

    ctx = dist.init()
    try:
        result = train(cfg, ctx=ctx)
    finally:
        dist.shutdown(ctx)
    _say(result.final_line())
    return result.exit_code


def cmd_list(args: argparse.Namespace) -> int:
    from backbones.preprocess import PREPROCESS
    from backbones.registry import PORTED_SUFFIXES, REGISTRY

    print(f"{'backbone':<22}{'features':<10}{'inputs':<10}weights")
    for e in REGISTRY.values():
        weights = ("ImageNet (pip-fetched, sha256 pinned)" if e.weights is not None
                   else "random init, or --weights FILE")
        print(f"{e.name:<22}{e.dim:<10}{e.preprocess:<10}{weights}")
    ported = "a port; needs a parity certificate"
    for suffix in PORTED_SUFFIXES:
        print(f"{'PATH' + suffix:<22}{'1280*a':<10}{'metadata':<10}{ported}")
    print("preprocessing (--preprocess):")
    for p in PREPROCESS.values():
        print(f"  {p.describe()}")
    return 0


def cmd_make_data(args: argparse.Namespace) -> int:
    from backbones.synth import write_dataset

    g = write_dataset(args.folder, n=args.n, size=args.size, seed=args.seed, workers=args.workers)
    print(f"DONE: {g.summary()}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from backbones.bn import BN_POLICIES, FREEZE_POLICIES
    from backbones.head_kinds import HEAD_KINDS
    from backbones.preprocess import PREPROCESS

    p = Parser(prog="python -m backbones", description="Shared regression-head trainer for any backbone.",
               epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train the head (and optionally the backbone) with one-cycle",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    t.add_argument("--backbone", required=True,
                   help="a name from `list`, or PATH.pth / PATH.safetensors (a ported checkpoint)")
    t.add_argument("--data", required=True, help="folder with images/ and labels.csv (see make-data)")
    t.add_argument("--weights", help="local torchvision state dict for a named backbone (default: random init)")
    t.add_argument("--out", help="run folder: checkpoint.pt, log.csv, loss.png, result.json (default runs/NAME)")
    t.add_argument("--bs", type=int, default=8, help="global batch size (default 8)")
    t.add_argument("--max-lr", type=float, default=1e-2, help="one-cycle peak learning rate (default 0.01)")
    t.add_argument("--epochs", type=int, default=5)
    t.add_argument("--freeze", choices=FREEZE_POLICIES, default="backbone",
                   help="backbone: train the head only (default); none: fine-tune everything")
    t.add_argument("--bn", choices=list(BN_POLICIES), default="eval",
                   help="backbone BatchNorm while training: eval = running statistics, frozen (Keras/TF, default); "
                        "train = batch statistics, affine trains, running statistics move (fastai train_bn)")
    t.add_argument("--bn-momentum", type=float, help="override every backbone BN momentum (PyTorch: 1 - TF decay)")
    t.add_argument("--img-size", type=int, default=96, help="square input size in pixels (default 96)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--head", choices=HEAD_KINDS, default="default",
                   help="default: avg pool -> Linear-BN-ReLU-Dropout groups -> Linear(2); linear: avg pool -> "
                        "Linear(2); fastai: fastai's create_head (concat avg+max pool, BN, Dropout, Linear 512, "
                        "ReLU, BN, Dropout, Linear)")
    t.add_argument("--head-hidden", type=int, nargs="+", default=[512, 256], metavar="N",
                   help="widths of the default head's Linear-BN-ReLU-Dropout groups (default 512 256)")
    t.add_argument("--dropout", type=float, default=0.25)
    t.add_argument("--wd", type=float, default=1e-2, help="AdamW weight decay (default 0.01)")
    t.add_argument("--augment", action="store_true", help="random flip/shift/scale, keypoint moved along")
    t.add_argument("--preprocess", choices=list(PREPROCESS),
                   help="override the backbone's input preprocessing (e.g. imagenet, as fastai feeds every model)")
    t.add_argument("--no-feature-cache", action="store_true",
                   help="run the frozen backbone every batch even where its features could be cached")
    t.add_argument("--no-parity-gate", action="store_true", help="train a ported backbone without a certificate (loud)")
    t.add_argument("--resume", action="store_true", help="continue the run in --out from its last epoch")
    t.add_argument("--stop-after", type=int, metavar="N", help="run N epochs now; the schedule still spans --epochs")
    t.set_defaults(func=cmd_train)

    ls = sub.add_parser("list", help="registered backbones, their feature size and input preprocessing")
    ls.set_defaults(func=cmd_list)

    m = sub.add_parser("make-data", help="write a synthetic nose dataset (procedural faces)")
    m.add_argument("folder")
    m.add_argument("--n", type=int, default=1000, help="number of images (default 1000; every 5th is valid)")
    m.add_argument("--size", type=int, default=96, help="image size in pixels (default 96)")
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--workers", type=int, help="processes (default: CPU count for n >= 200)")
    m.set_defaults(func=cmd_make_data)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from convert.runtime.quiet import quiet_tensorflow_import
    from parity.certificate import GateError

    quiet_tensorflow_import()  # TF's C++ start-up lines, should anything here import it

    # bad input: 2; refused by the parity gate: 1
    return run_main(build_parser(), argv, errors=(GateError,), say=lambda line: _say(line, err=True),
                    interrupted="interrupted; completed epochs are in the run's checkpoint.pt (continue with --resume)")
