"""Which modules of a network are BatchNorms, through torch's public classes only.

torch's own common base (`torch.nn.modules.batchnorm._BatchNorm`) is private; every BatchNorm a
torchvision model, an MMdnn-emitted model, onnx2torch or the trainer builds is one of these (lazy
BatchNorms become `BatchNorm*d` once materialised; tfport's cross-rank BatchNorms subclass them).
"""

from __future__ import annotations

from torch import nn

BATCHNORM_TYPES: tuple[type[nn.Module], ...] = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


def is_batchnorm(module: nn.Module) -> bool:
    return isinstance(module, BATCHNORM_TYPES)


def batchnorms(module: nn.Module) -> list[tuple[str, nn.Module]]:
    """(module path, module) of every BatchNorm inside `module`, in registration (execution) order."""
    return [(name, m) for name, m in module.named_modules() if is_batchnorm(m)]
