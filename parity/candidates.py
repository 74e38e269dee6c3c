"""What `parity check` can be pointed at, each loaded without running code from the file.

A registry: the first loader whose `accepts` says yes loads the candidate. Every candidate is a
torch module plus the semantics it declares (eps, momentum, padding, input range), read from the
module itself where it can be — a check must look at what the port does, not at what it claims.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from convert.paths.mmdnn.emitted import load_emitted
from convert.paths.onnx.to_torch import onnx_to_torch_module
from convert.runtime.errors import TfportError, fail
from convert.runtime.files import sha256_file


@dataclass
class Candidate:
    kind: str  # ported | state_dict | mmdnn | onnx2torch
    path: Path
    sha256: str
    module: Any  # torch.nn.Module
    meta: dict[str, Any] = field(default_factory=dict)  # declared semantics / provenance
    torchvision_layout: bool = True  # module paths are torchvision's (full probe points)
    input_layout: str = "NCHW"


@dataclass(frozen=True)
class _Loader:
    name: str
    accepts: Callable[[Path], bool]
    load: Callable[[Path], Candidate]


LOADERS: list[_Loader] = []


def register(name: str, accepts: Callable[[Path], bool]):
    def deco(fn: Callable[[Path], Candidate]):
        if any(entry.name == name for entry in LOADERS):
            raise ValueError(f"candidate loader {name!r} registered twice")
        LOADERS.append(_Loader(name, accepts, fn))
        return fn
    return deco


def _is_tfport(path: Path) -> bool:
    from convert.port import checkpoint

    if path.suffix not in checkpoint.SUFFIXES or not path.is_file():
        return False
    if checkpoint.declares_ported(path):  # its header, without its tensors: the loader reads them once
        return True
    try:
        checkpoint.load(path)
    except TfportError:  # a damaged one is still ours when its header says so: its loader then names the fault
        return checkpoint.declares_ported(path)
    return True


@register("ported", _is_tfport)
def _load_ported(path: Path) -> Candidate:
    from convert.port import checkpoint

    model = checkpoint.load_module(path)
    return Candidate("ported", path, sha256_file(path), model, dict(model.tfport_meta))


@register("state_dict", lambda p: p.suffix in (".pth", ".pt", ".bin", ".safetensors") and p.is_file())
def _load_state_dict(path: Path) -> Candidate:
    """A plain torchvision-keyed state dict: plain torchvision semantics, nothing declared; the architecture
    whose stock torchvision model its keys fit (parity.arch `plain`)."""
    from convert.port import checkpoint
    from convert.runtime.errors import TfportError
    from parity import arch as architectures

    sd, _ = checkpoint.load_any(path)
    for name, arch in architectures.ARCHITECTURES.items():
        try:
            found = arch.plain(sd)
        except TfportError as e:
            raise fail(f"{path}: {e}") from None
        if found is not None:
            model, meta = found
            meta = {"arch": name, **meta, "input_range": None, "input_size": None, "bn_folded": False,
                    "declared": False}
            return Candidate("state_dict", path, sha256_file(path), model.eval(), meta)
    raise fail(f"{path}: not a torchvision state dict of a known architecture "
               f"({', '.join(architectures.ARCHITECTURES)}: e.g. no features.0.0.weight / classifier.1.weight, "
               "no conv1.weight / fc.weight)")


@register("mmdnn", lambda p: p.suffix == ".py" and p.is_file())
def _load_mmdnn(path: Path) -> Candidate:
    """MMdnn's emitted PyTorch code + its weights .npy beside it (same stem)."""

    beside = (path.with_suffix(".npy"), path.parent / (path.stem + "_weights.npy"))
    weights = next((w for w in beside if w.exists()), None)
    if weights is None:
        raise fail(f"{path}: MMdnn emitted code needs its weights file beside it ({path.with_suffix('.npy').name})")
    model = load_emitted(path, weights)
    model.eval()
    sha = sha256_file(path)
    return Candidate("mmdnn", path, sha, model, {"declared": False, "weights": str(weights)},
                     torchvision_layout=False)


@register("onnx2torch", lambda p: p.suffix == ".onnx" and p.is_file())
def _load_onnx(path: Path) -> Candidate:
    """The PyTorch module onnx2torch builds from the ONNX export (NHWC input, as tf2onnx left it)."""
    from convert.safety.onnx import load_onnx

    model = load_onnx(path, str(path))  # op types and external-data locations checked before anything reads them
    try:
        module = onnx_to_torch_module(model).eval()
    except NotImplementedError as e:  # onnx2torch's word for an op or attribute it has no converter for
        raise fail(f"{path}: onnx2torch cannot build a PyTorch module from it ({str(e).splitlines()[0][:160]})"
                   ) from None
    return Candidate("onnx2torch", path, sha256_file(path), module, {"declared": False},
                     torchvision_layout=False, input_layout="NHWC")


def load_candidate(path: str | Path) -> Candidate:
    from convert.runtime.files import existing_file

    p = existing_file(path, "ported.pth or .safetensors, a state dict, MMdnn's emitted .py or an .onnx")
    for loader in LOADERS:
        if loader.accepts(p):
            return loader.load(p)
    raise fail(f"{p}: unknown candidate type; expected one of: {', '.join(entry.name for entry in LOADERS)}")
