"""Results of a training run as data: per epoch, and for the whole run with its final line."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from backbones.bn import Forecast
from backbones.config import TrainConfig

# how a run ended -> (final-line word, exit code)
STATUS = {"done": ("DONE", 0), "stopped": ("STOPPED", 1), "failed": ("FAILED", 1), "paused": ("PAUSED", 0)}


@dataclass(frozen=True)
class EpochResult:
    epoch: int  # 0-based, as fastai prints it
    train_loss: float  # mean MSE over the epoch's training batches (train mode: dropout on)
    valid_loss: float  # mean MSE over the validation split (eval mode)
    seconds: float
    lr: float  # learning rate after the epoch's last step
    batch_losses: tuple[float, ...] = ()
    # --bn train: the BN monitor (backbones.bn_monitor) at the epoch's end; None where BN does not train
    bn_shift: float | None = None  # worst layer's running-vs-batch mean shift, in running sigmas
    bn_scale: float | None = None  # worst |log(batch var / running var)|
    bn_layer: str = ""  # the worst layer


@dataclass(frozen=True)
class TrainResult:
    config: TrainConfig
    epochs: tuple[EpochResult, ...]
    status: str  # a key of STATUS
    reason: str = ""
    cached: bool = False  # the head trained on precomputed backbone features
    world: int = 1
    forecasts: tuple[Forecast, ...] = ()
    source: dict[str, Any] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return self.status in ("done", "paused")

    @property
    def exit_code(self) -> int:
        return STATUS[self.status][1]

    @property
    def bad_valid_epochs(self) -> list[int]:
        return [e.epoch for e in self.epochs if not math.isfinite(e.valid_loss)]

    def final_line(self) -> str:
        word = STATUS[self.status][0]
        last = self.epochs[-1] if self.epochs else None
        losses = f"train {last.train_loss:.6f}, valid {last.valid_loss:.6f}" if last else "no epoch completed"
        done = f"{len(self.epochs)}/{self.config.epochs} epochs"
        return f"{word}: {self.config.backbone}: {done}, {losses}" + (f"; {self.reason}" if self.reason else "")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["passed"] = bool(self)
        return strict_json(d)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False)


def strict_json(obj: Any) -> Any:
    """nan/inf -> None, tuples -> lists: JSON that every parser reads (json.dumps would write NaN)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): strict_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [strict_json(v) for v in obj]
    return obj
