"""The parity certificate: bound to the checkpoint's sha256, read by the trainer's gate.

Written beside the checkpoint as `<checkpoint>.parity.json` only when parity passes. It records the
tolerances and the references compared against, the modes that passed (a port whose BN statistics were
folded is certified for eval-mode BN only), the BN momentum and its half-life in steps, and the tool
version. The gate accepts only what the defaults certify: a pass at looser tolerances, or without the
TF source as a reference, is a pass of a weaker claim than "this port computes what TF computes".
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from convert.runtime.errors import TfportError
from convert.runtime.files import write_text

if TYPE_CHECKING:
    from parity.results import ParityReport

SUFFIX = ".parity.json"
VERSION = 2  # 2 records the references and the train-mode tolerances


class GateError(Exception):
    """The trainer must refuse this backbone (exit 1): no passing certificate for exactly these weights."""

    exit_code = 1


def path_for(ckpt: str | Path) -> Path:
    p = Path(ckpt)
    return p.with_name(p.name + SUFFIX)


def write(report: ParityReport, ckpt: str | Path) -> Path:
    """Write the certificate of a passing report beside the checkpoint it was run on."""
    cfg, hazard = report.config, report.hazard
    cert = {
        "format": "tfport.parity-certificate", "version": VERSION,
        "checkpoint": {"name": Path(ckpt).name, "sha256": report.candidate.sha256},
        "source": {"path": report.source.path, "sha256": report.source.sha256},
        "tolerances": {"atol": cfg.atol, "rtol": cfg.rtol, "train_atol": cfg.train_atol, "train_rtol": cfg.train_rtol},
        "references": list(cfg.against),
        "modes_passed": report.modes_passed,
        "bn": {"folded": report.candidate.bn_folded, "momentum": hazard.bn_momentum,
               "half_life_steps": hazard.half_life_steps},
        "tool_version": cfg.tool_version,
    }
    target = path_for(ckpt)
    write_text(target, json.dumps(cert, indent=2, sort_keys=True))
    return target


def read(ckpt: str | Path) -> dict[str, Any] | None:
    p = path_for(ckpt)
    if not p.exists():
        return None
    try:
        cert = json.loads(p.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise TfportError(f"{p}: unreadable parity certificate ({type(e).__name__})") from e
    if not isinstance(cert, dict) or cert.get("format") != "tfport.parity-certificate":
        raise TfportError(f"{p}: not a tfport parity certificate")
    return cert


def check_for_training(ckpt_path: str | Path, bn_mode: str) -> dict[str, Any]:
    """Raise GateError unless a passing certificate exists for exactly this checkpoint and BN mode."""
    from convert.runtime.files import sha256_file

    cert = read(ckpt_path)
    if cert is None:
        raise GateError(f"{ckpt_path}: no parity certificate; run `python -m parity check {ckpt_path}` first "
                        "(or --no-parity-gate)")
    sha = sha256_file(ckpt_path)
    if cert.get("checkpoint", {}).get("sha256") != sha:
        raise GateError(f"{ckpt_path}: the parity certificate is for other weights (sha256 differs); re-run parity")
    modes = cert.get("modes_passed") or []
    if "eval" not in modes:
        raise GateError(f"{ckpt_path}: parity did not pass")
    weaker = weaker_than_defaults(cert, bn_mode)
    if weaker:
        raise GateError(f"{ckpt_path}: the parity certificate does not certify what the trainer needs: {weaker}; "
                        f"re-run `python -m parity check {ckpt_path}` with the default tolerances and references")
    if bn_mode == "train" and "train" not in modes:
        raise GateError(f"{ckpt_path}: certified for eval-mode BatchNorm only (BN statistics folded or train mode "
                        "not verified); use --bn eval")
    return cert


def weaker_than_defaults(cert: dict[str, Any], bn_mode: str) -> str:
    """Why `cert` certifies less than a default `parity check` does ("" where it does not): tolerances
    looser than the defaults (in train mode too, where BN trains), or no comparison against the TF source."""
    from parity.metrics import EVAL_TOL, TRAIN_TOL

    refs = cert.get("references")
    if not isinstance(refs, list):
        return "it records no references (made by an older tfport)"
    if "tf" not in refs:
        return f"made without the TF source as a reference (--against {','.join(map(str, refs))})"
    tol = cert.get("tolerances") if isinstance(cert.get("tolerances"), dict) else {}
    limits = {"atol": EVAL_TOL.atol, "rtol": EVAL_TOL.rtol}
    if bn_mode == "train":
        limits |= {"train_atol": TRAIN_TOL.atol, "train_rtol": TRAIN_TOL.rtol}
    for key, limit in limits.items():
        value = tol.get(key)
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return f"it records no {key}"
        if not value <= limit:
            return f"made at {key} {value:g}, looser than the default {limit:g}"
    return ""
