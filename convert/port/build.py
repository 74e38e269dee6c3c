"""A port rebuilt from its metadata: the stock torchvision model of its architecture with the source's
semantics set on it (TF SAME padding as Conv2dSame, BN eps and momentum), wrapped as the whole function.

TF semantics are parameter values on torchvision's own modules (state-dict keys unchanged):
  - padding: TF SAME on stride-2 convs pads (0 before, 1 after) on even sizes; torchvision pads 1 on
    both sides. Such convs become `Conv2dSame`, which pads like TF for any input size; a constant pad
    [top, bottom, left, right] (an explicit pad in a source whose input size is open) `Conv2dPadded`;
  - BN eps: the source's (TF 1e-3; torchvision 1e-5);
  - BN momentum: PyTorch momentum = 1 - TF decay (Keras momentum 0.999 -> 0.001);
  - strides: where the source strides another conv than torchvision does (ResNet v1's first 1x1 of a
    downsampling block, torchvision v1.5's 3x3), `meta["stride"]` sets each conv's stride;
  - flatten: a Flatten head (VGG16's) flattens in the order `meta["flatten"]["order"]` names, the order its
    first Dense's columns are laid out in (NCHW, torchvision's, in every port tfport writes).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from convert import arch as architectures
from convert.layers.conv_same import Conv2dPadded, Conv2dSame
from convert.port.module import PortedNet
from convert.runtime.errors import TfportError, fail

MAX_CLASSES = 100_000  # ImageNet-21k has 21,843; a 1280 x 100k head is already 512 MB

# torch.nn.init's in-place initialisers: what torchvision's constructors and every layer's
# reset_parameters call (by attribute, at call time)
_INITS = ("uniform_", "normal_", "trunc_normal_", "constant_", "ones_", "zeros_", "eye_", "dirac_",
          "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_", "orthogonal_", "sparse_")
_INIT_LOCK = threading.Lock()


@contextlib.contextmanager
def skeleton() -> Iterator[None]:
    """Modules built inside are shapes only: on the meta device (nothing allocated until `to_empty`) and
    not initialised (torch.nn.init's functions return their tensor untouched). For models whose every
    tensor a state dict overwrites next. On the meta device alone, initialisation still runs through
    torch's Python reference kernels: MobileNetV3 Large 0.12 s, more than building it on the CPU
    (0.075 s); skipped, 0.01 s."""
    with _INIT_LOCK:
        saved = {name: getattr(nn.init, name) for name in _INITS}
        try:
            for name in _INITS:
                setattr(nn.init, name, _untouched)
            with torch.device("meta"):
                yield
        finally:
            for name, fn in saved.items():
                setattr(nn.init, name, fn)


def _untouched(tensor, *args, **kwargs):
    return tensor


def build(meta: dict[str, Any]) -> nn.Module:
    """The port (convert.port.module): the torchvision model of `meta`'s architecture with the semantics in
    `meta` (padding, eps, momentum), the source's input affine and head around it.

    Its tensors are allocated, not initialised (every caller loads a state dict next): torchvision's
    random initialisation would cost ~0.15 s per model for values that are overwritten anyway."""

    arch = architectures.of(meta) if isinstance(meta, dict) else architectures.get(None)
    try:
        # metadata is input: a width or class count no such model has would allocate without bound
        # (MobileNetV2 alpha 40 is ~22 GB; the fuzzer's first such example had the OOM killer end the process)
        variant, classes = arch.variant_of(meta), int(meta["num_classes"])
        if not 0 <= classes <= MAX_CLASSES:
            raise fail(f"checkpoint metadata: num_classes {classes} is outside 0..{MAX_CLASSES}")
        with skeleton():
            model = arch.torchvision(variant, classes)
        modules = dict(model.named_modules())
        for key, stride in meta.get("stride", {}).items():  # ResNet v1: where the source strides, not v1.5
            if int(stride) not in (1, 2):
                raise fail(f"checkpoint metadata: stride {stride!r} for {key} is not 1 or 2")
            modules[key].stride = (int(stride), int(stride))
        for key, mode in meta["padding"].items():
            conv = modules[key]
            if mode == "tf_same":
                same = Conv2dSame(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride,
                                  padding=0, groups=conv.groups, bias=conv.bias is not None)
                parent, _, child = key.rpartition(".")
                setattr(modules[parent], child, same)
            elif isinstance(mode, list) and len(mode) == 4 and all(isinstance(p, int) and 0 <= p <= 8 for p in mode):
                padded = Conv2dPadded(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride,
                                      groups=conv.groups, bias=conv.bias is not None, pads=tuple(mode))
                parent, _, child = key.rpartition(".")
                setattr(modules[parent], child, padded)
            elif mode != "symmetric":
                raise fail(f"unknown padding mode {mode!r} for {key}")
        flatten, pool = meta.get("flatten"), (meta.get("head") or {}).get("pool")
        if flatten is not None and (flatten.get("order") not in ("NCHW", "NHWC") or pool != "flatten"):
            raise fail(f"checkpoint metadata: flatten {flatten!r} is not an order (NCHW, NHWC) before a flatten head")
        for key, bn in meta["bn"].items():
            modules[key].eps = float(bn["eps"])
            modules[key].momentum = float(bn["momentum"])
        with skeleton():
            net = PortedNet(model, meta, arch.body, arch.classifier)
    except TfportError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError) as e:
        raise fail(
            f"checkpoint metadata does not describe a {arch.title} ({type(e).__name__}: {str(e)[:120]})"
        ) from None
    net = net.to_empty(device="cpu")
    if net.input_affine is not None:  # buffers from metadata, not from the state dict: fill them here
        pre = meta["preprocess"]
        net.input_affine.scale.copy_(torch.tensor(pre["scale"], dtype=torch.float32).view(1, -1, 1, 1))
        net.input_affine.offset.copy_(torch.tensor(pre["offset"], dtype=torch.float32).view(1, -1, 1, 1))
    return net
