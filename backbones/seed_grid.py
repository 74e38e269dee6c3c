"""The seed experiment's grid as data (BN settings, inputs, the user's runs; the heads are
backbones.head_kinds) and its runs: one quiet training run per job in a worker process, reduced to a Cell.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, replace
from pathlib import Path

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


@dataclass(frozen=True)
class Native:
    """torchvision's own MobileNetV2 beside the port: the backbone name (backbones.registry) and the BN
    settings it runs under, with ImageNet inputs."""

    name: str  # the tables' backbone column
    backbone: str
    settings: tuple[str, ...]
    what: str


NATIVES: tuple[Native, ...] = (
    # the user's "native pytorch mobilenetv2 from torchvision", pretrained like the port: its own momentum 0.1,
    # and BN eval (its ImageNet statistics kept, as a frozen Keras backbone keeps the port's)
    Native("native-imagenet", "mobilenet_v2:imagenet", ("pytorch", "frozen-eval"),
           "torchvision's ImageNet MobileNetV2 (mobilenet_v2:imagenet)"),
    # random init: BN eval would keep statistics of nothing, so PyTorch's momentum only
    Native("native-random", "mobilenet_v2", ("pytorch",), "torchvision's MobileNetV2 at random init"),
)
NATIVE = {n.name: n for n in NATIVES}
BACKBONE_ORDER = ("port", *NATIVE)  # the tables' row order


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
    epoch_seconds: tuple[float, ...] = ()  # wall time of each epoch (training + validation)
    steps: int = 0  # optimiser steps per epoch (training batches)

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
    from backbones.trainer import train

    torch.set_num_threads(1)
    s = job.setting
    cfg = TrainConfig(bs=job.bs, max_lr=job.max_lr, bn=s.bn, bn_momentum=s.momentum, head=job.head, seed=job.seed,
                      preprocess="imagenet" if job.norm == "imagenet" else None, **job.common)
    t0 = time.perf_counter()
    quiet = Console(quiet=True)
    r = train(cfg, console=quiet, err=quiet)
    return Cell(job.backbone, s.name, job.norm, job.head, job.run, job.bs, job.max_lr, job.seed, r.status,
                tuple(e.train_loss for e in r.epochs), tuple(e.valid_loss for e in r.epochs),
                tuple(e.bn_shift for e in r.epochs), time.perf_counter() - t0,
                tuple(e.seconds for e in r.epochs), len(r.epochs[0].batch_losses) if r.epochs else 0)


def calibrated_mobilenet(path: Path, seed: int, size: int) -> None:
    """torchvision MobileNetV2, seeded random init, BN running statistics of [-1, 1] smooth images."""
    import torch
    from torchvision.models import mobilenet_v2

    from backbones.calibrate import calibrate_bn
    from convert.runtime.files import atomic_path

    torch.manual_seed(seed)
    model = mobilenet_v2(weights=None)
    calibrate_bn(model, size=size, seed=seed)
    with atomic_path(path) as tmp:
        torch.save(model.state_dict(), tmp)


def num(v: float) -> str:
    """A ratio as the progress lines and the tables write it."""
    if not math.isfinite(v):
        return "inf"
    return f"{v:.2g}" if v < 10 else f"{v:.0f}" if v < 1e4 else f"{v:.0e}"


@contextlib.contextmanager
def _one_thread_children() -> Iterator[None]:
    """OMP_NUM_THREADS=1 for the workers spawned inside (they inherit the environment), the caller's own
    environment as it was afterwards: left set, every process this one starts later ran torch on one thread
    (a test process's fresh `parity check` rounded its convolutions unlike the test's own)."""
    before = os.environ.get("OMP_NUM_THREADS")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = before


def run_all(jobs: list[Job], out: Path, workers: int) -> list[Cell]:
    """Spawned workers, one thread each; a line per finished run."""
    import multiprocessing as mp

    # BN-train runs at bs 8 are the longest (backbone forward + backward every batch): start them first
    ordered = sorted(jobs, key=lambda j: (j.setting.bn != "train", j.bs))
    cells: list[Cell] = []
    t0 = time.perf_counter()
    with _one_thread_children(), ProcessPoolExecutor(max(1, workers), mp_context=mp.get_context("spawn")) as pool:
        futures = [pool.submit(_run_one, replace(j, common={**j.common, "out": str(out / "runs" / j.tag)}))
                   for j in ordered]
        for f in as_completed(futures):
            c = f.result()
            cells.append(c)
            print(f"[{len(cells)}/{len(jobs)} {time.perf_counter() - t0:5.0f} s] {'/'.join(c.group)} {c.run} "
                  f"seed {c.seed}: valid/train {num(c.ratio)}, bad {c.bad_epochs}/{len(c.train)}, "
                  f"{c.seconds:.0f} s", flush=True)
    return cells

