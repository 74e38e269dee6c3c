"""The one ``torch.load`` of the project (ported checkpoints, plain state dicts, the trainer's checkpoint).

``torch.load(weights_only=True)`` refuses any pickle that would construct objects other than tensors and
primitive containers; every failure (a truncated zip, a pickle that would run code) is one TfportError
naming the file.
"""

from __future__ import annotations

import pickle
import re
import warnings
from pathlib import Path

from convert.runtime.errors import fail
from convert.runtime.files import existing_file


def first_line(e: BaseException) -> str:
    return f"{type(e).__name__}: {str(e).splitlines()[0][:160] if str(e).strip() else ''}"


def _unpickling_refusal(path: Path, e: pickle.UnpicklingError, what: str):
    """torch's weights-only unpickler puts a page of advice around the one line that says what it met."""
    text = str(e)
    found = re.search(r"GLOBAL ([\w.]+)", text)
    if found:
        return fail(f"{path}: refused: the pickle would construct {found.group(1)}, not tensors (nothing was run)")
    operand = re.search(r"Unsupported operand (\d+)", text)
    reason = f"unsupported pickle opcode {operand.group(1)}" if operand else first_line(e)
    return fail(f"{path}: not a readable {what} ({reason})")


def torch_load(path: str | Path, what: str = "PyTorch checkpoint"):
    """torch.load restricted to tensors and plain containers (weights_only=True): a missing file, a
    folder, truncated or corrupt bytes, a foreign file, a pickle that would construct anything else —
    each is one TfportError naming the file, never a traceback."""
    import torch

    from convert.safety.archives import check_zip_file, is_zip

    p = existing_file(path)
    # member names, sizes, ratios: before torch inflates one. A zip cut short (no end record) has no
    # members to inflate: torch.load fails on it below, reported as truncated
    if is_zip(p) and not cut_zip(p):
        check_zip_file(p, what=f"{what} (zip archive)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's advice on pickle protocols: the outcome is what we report
            return torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise _unpickling_refusal(p, e, what) from None
    except Exception as e:  # noqa: BLE001  corrupt bytes make torch.load raise anything (KeyError, IndexError, ...)
        reason = "truncated: the zip archive torch.save writes has lost its end" if cut_zip(p) else first_line(e)
        raise fail(f"{p}: not a readable {what} ({reason})") from None


def cut_zip(path: Path) -> bool:
    """A zip's first bytes without its end record: a torch.save file cut short (a copy or a write interrupted)."""
    import zipfile

    try:
        with open(path, "rb") as f:
            return f.read(4) == b"PK\x03\x04" and not zipfile.is_zipfile(path)
    except OSError:
        return False
