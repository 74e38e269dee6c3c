"""Freeze and BatchNorm policies for the backbone, and the forecast of where its running stats end up.

Two conventions for a frozen backbone's BatchNorm, side by side:
  - Keras/TF (``--bn eval``, default): a non-trainable BatchNormalization runs in inference mode:
    the moving statistics normalise both in training and at validation, and never change;
  - fastai ``train_bn=True`` (``--bn train``): BN affine parameters train, batch statistics normalise
    during training, running statistics (moved by ``momentum`` each batch) normalise at validation.
Under ``--bn train`` the running statistics after ``k`` training batches still hold ``(1 - m)^k`` of
the source's: momentum 0 (what MMdnn emits) never moves them, TF's decay 0.999 (PyTorch 0.001)
barely does in a short fine-tune, PyTorch's 0.1 follows in tens of batches. When they cannot
follow, validation normalises with statistics the head never trained on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch loads lazily: the CLI's --help and usage errors stay instant
    from torch import nn

FOLLOW_THRESHOLD = 0.5  # warn when more than this share of the source statistics survives the run


@dataclass(frozen=True)
class BNPolicy:
    name: str
    batch_stats: bool  # BN layers in train mode while training
    affine_trains_when_frozen: bool  # fastai's train_bn: BN weight/bias train even in a frozen backbone


BN_POLICIES = {
    "eval": BNPolicy("eval", batch_stats=False, affine_trains_when_frozen=False),
    "train": BNPolicy("train", batch_stats=True, affine_trains_when_frozen=True),
}
FREEZE_POLICIES = ("backbone", "none")


def bn_layers(module: nn.Module) -> list[nn.Module]:
    """Every BatchNorm inside `module`, in module order (the cross-rank ones of backbones.dist too)."""
    from convert.layers.batchnorm import batchnorms

    return [m for _, m in batchnorms(module)]


def set_momentum(backbone: nn.Module, momentum: float) -> None:
    for m in bn_layers(backbone):
        m.momentum = momentum


def set_trainable(backbone: nn.Module, *, freeze: str, policy: BNPolicy) -> None:
    """requires_grad for every backbone parameter under the freeze policy."""
    frozen = freeze == "backbone"
    for p in backbone.parameters():
        p.requires_grad_(not frozen)
    if frozen and policy.affine_trains_when_frozen:
        for m in bn_layers(backbone):
            for p in m.parameters():
                p.requires_grad_(True)


def apply_mode(backbone: nn.Module, policy: BNPolicy) -> None:
    """Call after model.train(): BN layers follow the policy, not the model's mode."""
    if not policy.batch_stats:
        for m in bn_layers(backbone):
            m.eval()


@dataclass(frozen=True)
class Forecast:
    """What share of the source statistics the running statistics still hold after `steps` batches."""

    momentum: float | None  # None: cumulative average (PyTorch's momentum=None)
    layers: int
    steps: int
    remaining: float

    @property
    def follows(self) -> bool:
        return self.remaining <= FOLLOW_THRESHOLD

    def describe(self) -> str:
        m = "None (cumulative average)" if self.momentum is None else f"{self.momentum:g}"
        never = " (they never move)" if self.momentum == 0 else ""
        return (f"BN momentum {m} on {self.layers} layers over {self.steps} training batches: the running "
                f"statistics still hold {self.remaining:.0%} of the source's at the end{never}")


def forecast(backbone: nn.Module, steps: int) -> list[Forecast]:
    """One forecast per distinct momentum among the backbone's BN layers, worst first."""
    groups: dict[float | None, list[nn.Module]] = {}
    for m in bn_layers(backbone):
        groups.setdefault(m.momentum, []).append(m)
    out = []
    for momentum, layers in groups.items():
        if momentum is None:  # factor 1 / (t + 1): after k more batches the first t weigh t / (t + k)
            t = max(int(m.num_batches_tracked) for m in layers) if all(m.track_running_stats for m in layers) else 0
            remaining = t / (t + steps) if t + steps else 1.0
        else:
            remaining = (1.0 - momentum) ** steps
        out.append(Forecast(momentum, len(layers), steps, remaining))
    return sorted(out, key=lambda f: -f.remaining)
