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
(`save`, `load`) the two dicts are one: torchvision keys plus `head.*`, as `convert.portnet` names them.
"""

from __future__ import annotations

import hashlib
import json
import pickle
from pathlib import Path
from typing import Any

from convert.atomic import atomic_path
from convert.errors import fail

FORMAT = "tfport.ported"
VERSION = 1


def sha256_file(path: str | Path) -> str:
    """sha256 of a file; of a folder (SavedModel), over its files' relative names and hashes."""
    p = Path(path)
    h = hashlib.sha256()
    if p.is_dir():
        for f in sorted(x for x in p.rglob("*") if x.is_file()):
            h.update(str(f.relative_to(p)).encode())
            h.update(sha256_file(f).encode())
        return h.hexdigest()
    with open(p, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save(path: str | Path, state_dict: dict, metadata: dict[str, Any]) -> str:
    """Write atomically; returns the file's sha256 (what certificates bind to)."""
    import torch

    from convert.portnet import head_keys, torchvision_keys

    payload = {"format": FORMAT, "version": VERSION, "state_dict": torchvision_keys(state_dict),
               "head": head_keys(state_dict), "metadata": json.dumps(metadata, sort_keys=True)}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return sha256_file(path)


def _torch_load(path: Path):
    """torch.load restricted to tensors and plain containers; every failure is one TfportError."""
    import torch

    if not path.exists():
        raise fail(f"{path}: no such file")
    if path.is_dir():
        raise fail(f"{path}: is a folder, expected a checkpoint file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).splitlines()[0] if str(e) else ""
        raise fail(f"{path}: refused: the pickle would construct objects that are not tensors ({first[:160]})")
    except Exception as e:  # noqa: BLE001  corrupt bytes make torch.load raise anything (IndexError, ...)
        raise fail(f"{path}: not a readable PyTorch checkpoint ({type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''})")


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
    obj = _torch_load(p)
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise fail(f"{p}: not a tfport ported checkpoint (no '{FORMAT}' header)")
    if obj.get("version") != VERSION:
        raise fail(f"{p}: checkpoint version {obj.get('version')!r}; this tfport reads version {VERSION}")
    try:
        metadata = json.loads(obj.get("metadata"))
    except (TypeError, json.JSONDecodeError) as e:
        raise fail(f"{p}: checkpoint metadata is not JSON ({e})")
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
    obj = _torch_load(p)
    if isinstance(obj, dict) and obj.get("format") == FORMAT:
        return load(p)
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    return _require_tensors(p, obj), {}


def load_module(path: str | Path):
    """The canonical backbone as an nn.Module in eval mode, with `.tfport_meta` attached."""
    from convert.canonical import build

    from convert.errors import TfportError

    sd, meta = load(path)
    try:
        model = build(meta)
    except TfportError as e:
        raise fail(f"{path}: {e}") from None
    try:
        model.load_state_dict(sd, strict=True)
    except RuntimeError as e:
        raise fail(f"{path}: weights do not fit the MobileNetV2 the metadata describes ({str(e).splitlines()[0][:200]})")
    model.eval()
    model.tfport_meta = meta
    return model
