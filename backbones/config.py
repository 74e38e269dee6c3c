"""A training run's settings, validated before anything is loaded or written."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from backbones import preprocess
from backbones.bn import BN_POLICIES, FREEZE_POLICIES
from backbones.head_kinds import HEAD_KINDS
from convert.runtime.errors import fail

# one-cycle as fastai's fit_one_cycle runs it: warm up over 25 % of the steps from max_lr / 25,
# anneal (cosine) to max_lr / 25 / 1e5; Adam's beta1 cycles 0.95 -> 0.85 -> 0.95
PCT_START = 0.25
DIV_FACTOR = 25.0
FINAL_DIV_FACTOR = 1e5


@dataclass(frozen=True)
class TrainConfig:
    backbone: str
    data: str
    out: str
    weights: str | None = None
    bs: int = 8  # global batch size: split evenly across processes under torchrun
    max_lr: float = 1e-2
    epochs: int = 5
    freeze: str = "backbone"
    bn: str = "eval"
    bn_momentum: float | None = None  # override every backbone BN layer's momentum
    img_size: int = 96
    seed: int = 0
    head: str = "default"
    hidden: tuple[int, ...] = (512, 256)  # the default head's groups
    dropout: float = 0.25
    weight_decay: float = 1e-2
    augment: bool = False
    preprocess: str | None = None  # None: the backbone's own
    feature_cache: bool = True  # used only where it cannot change the result (see feature_cache.cacheable)
    parity_gate: bool = True
    resume: bool = False
    stop_after: int | None = None  # epochs to run in this invocation; the schedule still spans `epochs`

    # settings that do not change the numbers a run produces; everything else must match on --resume
    NOT_PLAN = ("out", "parity_gate", "resume", "stop_after", "feature_cache")

    def plan(self) -> dict[str, Any]:
        d = asdict(self)
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items() if k not in self.NOT_PLAN}

    def validate(self) -> TrainConfig:
        def need(ok: bool, msg: str) -> None:
            if not ok:
                raise fail(msg)

        need(self.bs >= 2, f"--bs {self.bs}: need at least 2 (the head's BatchNorm needs a batch)")
        need(self.epochs >= 1, f"--epochs {self.epochs}: need at least 1")
        need(self.max_lr > 0, f"--max-lr {self.max_lr}: must be positive")
        need(self.freeze in FREEZE_POLICIES, f"--freeze {self.freeze!r}: expected one of {', '.join(FREEZE_POLICIES)}")
        need(self.bn in BN_POLICIES, f"--bn {self.bn!r}: expected one of {', '.join(BN_POLICIES)}")
        need(self.bn_momentum is None or 0.0 <= self.bn_momentum <= 1.0,
             f"--bn-momentum {self.bn_momentum}: must be in [0, 1] (PyTorch momentum = 1 - TF decay)")
        need(self.img_size >= 16, f"--img-size {self.img_size}: need at least 16")
        need(self.head in HEAD_KINDS, f"--head {self.head!r}: expected one of {', '.join(HEAD_KINDS)}")
        need(bool(self.hidden) and all(h >= 1 for h in self.hidden),
             f"--head-hidden {list(self.hidden)}: need positive sizes")
        need(0.0 <= self.dropout < 1.0, f"--dropout {self.dropout}: must be in [0, 1)")
        need(self.weight_decay >= 0, f"--wd {self.weight_decay}: must be >= 0")
        need(self.stop_after is None or self.stop_after >= 1, f"--stop-after {self.stop_after}: need at least 1")
        if self.preprocess is not None:
            preprocess.get(self.preprocess)
        return self
