"""One process or several under ``torchrun`` (gloo on CPU): who we are and how to combine numbers.

Data parallelism here is "one global batch, split across ranks": every rank draws the same
permutation, DistributedSampler hands rank r every world-th index of it, so the union of the ranks'
local batches is exactly the batch a single process would take. DDP averages the gradients of the
per-rank mean losses, which equals the gradient of the global mean because local batches are equal
in size. Every BatchNorm in train mode takes its batch statistics over all ranks (the head's
CrossRankBatchNorm1d always; the backbone's BatchNorm2d are swapped by `to_cross_rank` under torchrun),
because torch's SyncBatchNorm runs on GPUs only. What remains different from one process is float
summation order.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class Context:
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        """Only rank 0 prints and writes files."""
        return self.rank == 0

    def sum(self, t: torch.Tensor) -> torch.Tensor:
        """Sum a tensor over ranks (a copy; unchanged in a single process)."""
        t = t.detach().clone()
        if self.world > 1:
            dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t


def init() -> Context:
    """Join the process group when started by torchrun (WORLD_SIZE > 1); otherwise a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Context()
    if not dist.is_initialized():
        dist.init_process_group(backend="gloo")
    return Context(dist.get_rank(), dist.get_world_size())


def shutdown(ctx: Context) -> None:
    if ctx.world > 1 and dist.is_initialized():
        dist.destroy_process_group()


def _cross_rank() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


class _SumOverRanks(torch.autograd.Function):
    """all_reduce(SUM) with its gradient: every rank's output depends on every rank's input, so the
    gradient of a rank's input is the sum of the output gradients of all ranks."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        x = x.clone()
        dist.all_reduce(x, op=dist.ReduceOp.SUM)
        return x

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        grad = grad.clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad


class _CrossRank:
    """BatchNorm whose training statistics span the global batch across ranks (CPU-capable).

    In one process (or in eval mode) it is the torch module exactly. Across ranks the mean and the
    biased variance come from differentiable all-reduces, so gradients flow as if one process held
    the whole batch; running statistics use the unbiased variance, as torch's BatchNorm does."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and _cross_rank()):
            return super().forward(x)  # type: ignore[misc]
        dims = [0, *range(2, x.dim())]  # every axis but the channels
        shape = [1, -1] + [1] * (x.dim() - 2)
        n = torch.tensor(float(x.numel() // x.shape[1]), dtype=x.dtype)
        dist.all_reduce(n)
        mean = _SumOverRanks.apply(x.sum(dims)) / n
        centred = x - mean.view(shape)
        var = _SumOverRanks.apply((centred**2).sum(dims)) / n
        y = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked += 1
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.lerp_(mean, m)
                self.running_var.lerp_(var * n / (n - 1), m)
        return y


class CrossRankBatchNorm1d(_CrossRank, nn.BatchNorm1d):
    pass


class CrossRankBatchNorm2d(_CrossRank, nn.BatchNorm2d):
    pass


def to_cross_rank(module: nn.Module) -> nn.Module:
    """Replace every nn.BatchNorm2d inside `module` by CrossRankBatchNorm2d with the same settings,
    tensors, requires_grad and mode (state-dict keys do not change): torch's convert_sync_batchnorm
    for CPU. Used only under torchrun, where a backbone BN in train mode would otherwise normalise
    each rank's share of the batch on its own."""
    if type(module) is nn.BatchNorm2d:
        new = CrossRankBatchNorm2d(module.num_features, module.eps, module.momentum, module.affine,
                                   module.track_running_stats)
        new.load_state_dict(module.state_dict())
        for p, q in zip(module.parameters(), new.parameters(), strict=True):
            q.requires_grad_(p.requires_grad)
        return new.train(module.training)
    for name, child in module.named_children():
        setattr(module, name, to_cross_rank(child))
    return module
