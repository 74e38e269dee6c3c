"""The ported checkpoint: a torchvision-keyed state dict plus metadata, loadable without running code.

File layout (``torch.save`` of a plain dict, read back with ``torch.load(weights_only=True)``, which
refuses any pickle that would construct objects other than tensors and primitive containers):

    {"format": "tfport.ported", "version": 1,
     "state_dict": {torchvision key: tensor},
     "head": {"head.N.weight" | "head.N.bias": tensor},   # the source's own head, where it is not
                                                           # torchvision's classifier (may be empty)
     "metadata": JSON string (see README "Checkpoint format")}

The state dict alone loads into ``torchvision.models.mobilenet_v2(width_mult=alpha,
num_classes=k)`` with ``strict=True`` (k = 0 for a feature extractor or a head of its own). In memory
(`save`, `load`) the two dicts are one: torchvision keys plus `head.*`, as convert.port.module names them.

A path ending in ``.safetensors`` holds the same content in safetensors: the tensors under the same keys
(torchvision's and `head.*` side by side), and the header's string metadata
``{"format": "tfport.ported", "version": "1", "metadata": JSON string}``.

Every ``torch.load`` goes through convert.port.torch_files.torch_load.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from convert.port.torch_files import first_line, torch_load
from convert.runtime.errors import TfportError, fail
from convert.runtime.files import atomic_path, existing_file, sha256_file
from convert.safety.archives import check_zip

FORMAT = "tfport.ported"


VERSION = 1


SAFETENSORS = ".safetensors"


SUFFIXES = (".pth", SAFETENSORS)  # what `-o` and every reader take as a ported checkpoint


def is_safetensors(path: str | Path) -> bool:
    return Path(path).suffix == SAFETENSORS


def save(path: str | Path, state_dict: dict, metadata: dict[str, Any]) -> str:
    """Write atomically (safetensors where the path ends in .safetensors); returns the file's sha256
    (what certificates bind to)."""
    import torch

    from convert.port.head import head_keys, torchvision_keys

    text = json.dumps(metadata, sort_keys=True)
    with atomic_path(path) as tmp:
        if is_safetensors(path):
            from safetensors.torch import save_file

            # each tensor contiguous in storage of its own: safetensors refuses views and shared storage
            tensors = {k: v.detach().clone(memory_format=torch.contiguous_format) for k, v in state_dict.items()}
            save_file(tensors, str(tmp), metadata={"format": FORMAT, "version": str(VERSION), "metadata": text})
        else:
            torch.save({"format": FORMAT, "version": VERSION, "state_dict": torchvision_keys(state_dict),
                        "head": head_keys(state_dict), "metadata": text}, tmp)
    return sha256_file(path)


def _safetensors_load(path: str | Path):
    """A safetensors file as torch_load would return its .pth twin: a tfport payload, or a plain state dict."""
    from safetensors import safe_open

    from convert.port.head import head_keys, torchvision_keys

    p = existing_file(path)

    try:
        with safe_open(str(p), "pt", device="cpu") as f:
            header = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # noqa: BLE001  SafetensorError for bad headers, truncated data, wrong dtypes
        raise fail(f"{p}: not a readable safetensors file ({first_line(e)})") from None
    if header.get("format") != FORMAT:
        return tensors

    version = header.get("version")  # a string in the header; anything but ours is reported as found
    return {"format": FORMAT, "version": VERSION if version == str(VERSION) else version,
            "state_dict": torchvision_keys(tensors), "head": head_keys(tensors), "metadata": header.get("metadata")}


def _read(path: Path):
    return _safetensors_load(path) if is_safetensors(path) else torch_load(path)


def declares_ported(path: str | Path) -> bool:
    """Whether the file's header names it a tfport checkpoint, read without its tensors: a damaged one
    is then reported with its real problem rather than as some other kind of file."""
    import struct
    import zipfile

    p = Path(path)
    try:
        if is_safetensors(p):
            with open(p, "rb") as f:
                (size,) = struct.unpack("<Q", f.read(8))
                header = json.loads(f.read(min(size, 100_000_000)))
            return (header.get("__metadata__") or {}).get("format") == FORMAT
        with zipfile.ZipFile(p) as z:
            check_zip(z, str(p))  # bounds before inflating data.pkl
            return any(name.endswith("data.pkl") and FORMAT.encode() in z.read(name) for name in z.namelist())
    # JSONDecodeError is a ValueError; TfportError: an archive out of bounds (torch_load says so)
    except (OSError, ValueError, AttributeError, struct.error, zipfile.BadZipFile, TfportError):
        return False


def _require_tensors(path: Path, sd) -> dict:
    import torch

    if not isinstance(sd, dict) or not sd or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise fail(f"{path}: checkpoint state_dict is not a mapping of tensors")
    for key, value in sd.items():
        if value.is_floating_point() and not torch.isfinite(value).all():
            raise fail(f"{path}: {key} contains NaN or Inf")
    return sd


def load(path: str | Path) -> tuple[dict, dict[str, Any]]:
    """(state_dict, metadata) of a tfport checkpoint; any unreadable, unsafe or foreign file is one TfportError."""
    p = Path(path)
    return _ported(p, _read(p))


def _ported(p: Path, obj) -> tuple[dict, dict[str, Any]]:
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise fail(f"{p}: not a tfport ported checkpoint (no '{FORMAT}' header)")
    if obj.get("version") != VERSION:
        raise fail(f"{p}: checkpoint version {obj.get('version')!r}; this tfport reads version {VERSION}")
    try:
        metadata = json.loads(obj.get("metadata"))
    except (TypeError, json.JSONDecodeError) as e:
        raise fail(f"{p}: checkpoint metadata is not JSON ({e})") from None
    if not isinstance(metadata, dict):
        raise fail(f"{p}: checkpoint metadata is not a JSON object")
    sd = _require_tensors(p, obj.get("state_dict"))
    head = obj.get("head") or {}
    if head:
        head = _require_tensors(p, head)
        if not all(k.startswith("head.") for k in head):
            raise fail(f"{p}: checkpoint head holds keys other than head.*")
    return {**sd, **head}, metadata


def load_any(path: str | Path) -> tuple[dict, dict[str, Any]]:
    """A tfport checkpoint, or a plain state dict (bare or under "state_dict") with empty metadata."""
    p = Path(path)
    obj = _read(p)
    if isinstance(obj, dict) and obj.get("format") == FORMAT:
        return _ported(p, obj)
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    return _require_tensors(p, obj), {}


def load_module(path: str | Path):
    """The canonical backbone as an nn.Module in eval mode, with `.tfport_meta` attached."""
    from convert.port.build import build
    from convert.runtime.errors import TfportError

    sd, meta = load(path)
    try:
        model = build(meta)
    except TfportError as e:
        raise fail(f"{path}: {e}") from None
    try:
        model.load_state_dict(sd, strict=True)
    except RuntimeError as e:
        raise fail(f"{path}: weights do not fit the MobileNetV2 the metadata describes "
                   f"({str(e).splitlines()[0][:200]})") from None
    model.eval()
    model.tfport_meta = meta
    return model
