"""The trainer baseline: a minimal hand-written PyTorch loop on the same model and data.

torchvision's MobileNetV2 trunk (random init, frozen, BN on running statistics) -> global average
pool -> the same head shape (Linear-BN-ReLU-Dropout groups, Linear(2)); AdamW + OneCycleLR, MSE; each
epoch trains on the training split (last partial batch dropped) and then evaluates on the validation
split, as `python -m backbones train --no-feature-cache` does. The images are loaded with the
trainer's own reader before the clock starts. Prints {"epoch_s": [...]} as JSON.

    python scripts/bench_loop.py DATA_DIR --img-size 96 --bs 16 --epochs 3
"""

from __future__ import annotations

import argparse
import json
import time

from convert.runtime import guard as _guard  # noqa: F401  (before torch: hides triton)
from convert.runtime.entry import start
from convert.runtime.fast_exit import exit_now


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench_loop.py")
    ap.add_argument("data")
    ap.add_argument("--img-size", type=int, default=96)
    ap.add_argument("--bs", type=int, default=16)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--max-lr", type=float, default=1e-2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    import torch
    import torchvision
    from torch import nn

    from backbones.data import load

    data = load(args.data, args.img_size)
    torch.manual_seed(args.seed)
    body = torchvision.models.mobilenet_v2(weights=None).features
    trunk = nn.Sequential(body, nn.AdaptiveAvgPool2d(1), nn.Flatten(1))
    trunk.eval().requires_grad_(False)
    head = nn.Sequential(nn.Linear(1280, 512, bias=False), nn.BatchNorm1d(512), nn.ReLU(inplace=True), nn.Dropout(0.25),
                         nn.Linear(512, 256, bias=False), nn.BatchNorm1d(256), nn.ReLU(inplace=True), nn.Dropout(0.25),
                         nn.Linear(256, 2))
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    n_batches = len(data.train.images) // args.bs
    opt = torch.optim.AdamW(head.parameters(), lr=args.max_lr, weight_decay=1e-2)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.max_lr, total_steps=args.epochs * n_batches,
                                                pct_start=0.25, div_factor=25.0, final_div_factor=1e5)

    def inputs(images: torch.Tensor) -> torch.Tensor:
        return (images.float() / 255 - mean) / std

    epoch_s = []
    for _ in range(args.epochs):
        t0 = time.perf_counter()
        head.train()
        order = torch.randperm(len(data.train.images))
        for b in range(n_batches):
            idx = order[b * args.bs : (b + 1) * args.bs]
            with torch.no_grad():
                f = trunk(inputs(data.train.images[idx]))
            loss = nn.functional.mse_loss(head(f), data.train.targets[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            float(loss.detach())  # the trainer reads every loss (nan check, progress): same sync here
        head.eval()
        with torch.no_grad():
            for i in range(0, len(data.valid.images), args.bs):
                float(nn.functional.mse_loss(head(trunk(inputs(data.valid.images[i : i + args.bs]))),
                                             data.valid.targets[i : i + args.bs]))
        epoch_s.append(time.perf_counter() - t0)
    print(json.dumps({"epoch_s": epoch_s, "train": len(data.train.images), "valid": len(data.valid.images)}))
    return 0


if __name__ == "__main__":
    start(owned=False)  # starts as tfport's CLIs start (scripts/bench.py: fair baselines)
    exit_now(main())  # ends as tfport's CLIs end: no teardown (scripts/bench.py: fair baselines)
