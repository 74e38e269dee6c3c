"""The trainer's checkpoint: everything needed to continue a run exactly where it stopped.

Saved after every epoch, atomically, read back with ``torch.load(weights_only=True)``:
model tensors that can change (trainable parameters and all buffers; frozen weights are rebuilt from
the backbone source, which the plan pins by name/sha256 and seed), optimizer, scheduler, the
completed epochs and the plan. Random state is not stored: every epoch reseeds from
(seed, epoch, rank), so an epoch draws the same numbers whether or not the run was interrupted
before it, in one process or several.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from convert.port.torch_files import torch_load
from convert.runtime.errors import fail
from convert.runtime.files import atomic_path

FORMAT = "tfport.trainer"
VERSION = 1
NAME = "checkpoint.pt"


def save(path: Path, payload: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        torch.save({"format": FORMAT, "version": VERSION, **payload}, tmp)


def load(path: Path) -> dict[str, Any]:
    obj = torch_load(path, "trainer checkpoint")
    if not isinstance(obj, dict) or obj.get("format") != FORMAT or obj.get("version") != VERSION:
        raise fail(f"{path}: not a tfport trainer checkpoint (version {VERSION})")
    return obj


def check_plan(path: Path, saved: dict[str, Any], plan: dict[str, Any]) -> None:
    """--resume continues the same run: every setting that shapes the numbers must match."""
    for key in sorted(set(saved) | set(plan)):
        if saved.get(key) != plan.get(key):
            raise fail(f"--resume: {path} was trained with {key}={saved.get(key)!r}, this run has {plan.get(key)!r}")


def epoch_seed(seed: int, epoch: int, rank: int = 0) -> int:
    """Distinct, reproducible seed for each (run seed, epoch, process)."""
    return (seed * 1_000_003 + epoch) * 1009 + rank
