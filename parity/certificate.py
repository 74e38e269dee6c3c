"""The parity certificate: bound to the checkpoint's sha256, read by the trainer's gate.

Written beside the checkpoint as `<checkpoint>.parity.json` only when parity passes. It records the
tolerances, the references really compared against and the probes they were compared on (not what was
asked: a reference skipped because it could not run is not claimed), the modes that passed (a port
whose BN statistics were folded is certified for eval-mode BN only), the BN momentum and its half-life
in steps, and the tool version. The gate accepts only what a default check certifies: TF, torchvision
with the source's semantics, ONNX Runtime where the checkpoint records an export, at the default
tolerances and at least the default probes; anything less is a pass of a weaker claim than "this port
computes what TF computes", and is refused naming what is missing.
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
VERSION = 3  # 2 records the references and the train-mode tolerances; 3 the references and probes compared


class GateError(Exception):
    """The trainer must refuse this backbone (exit 1): no passing certificate for exactly these weights."""

    exit_code = 1


def path_for(ckpt: str | Path) -> Path:
    p = Path(ckpt)
    return p.with_name(p.name + SUFFIX)


def write(report: ParityReport, ckpt: str | Path) -> Path:
    """Write the certificate of a passing report beside the checkpoint it was run on."""
    from parity.results import compared

    cfg, hazard = report.config, report.hazard
    references, probes = compared(report.results)
    cert = {
        "format": "tfport.parity-certificate", "version": VERSION,
        "checkpoint": {"name": Path(ckpt).name, "sha256": report.candidate.sha256},
        "source": {"path": report.source.path, "sha256": report.source.sha256},
        "tolerances": {"atol": cfg.atol, "rtol": cfg.rtol, "train_atol": cfg.train_atol, "train_rtol": cfg.train_rtol},
        "references": references, "references_asked": list(cfg.against), "probes": probes,
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
    weaker = weaker_than_defaults(cert, bn_mode, onnx_export=_records_onnx_export(ckpt_path))
    if weaker:
        raise GateError(f"{ckpt_path}: the parity certificate does not certify what the trainer needs: {weaker}; "
                        f"re-run `python -m parity check {ckpt_path}` with the default tolerances and references")
    if bn_mode == "train" and "train" not in modes:
        raise GateError(f"{ckpt_path}: certified for eval-mode BatchNorm only (BN statistics folded or train mode "
                        "not verified); use --bn eval")
    return cert


def _records_onnx_export(ckpt_path: str | Path) -> bool:
    """Whether the checkpoint's metadata records an ONNX export beside it (the ONNX path writes one)."""
    from convert.port import checkpoint

    _, meta = checkpoint.load(ckpt_path)
    return bool((meta.get("artifacts") or {}).get("onnx.onnx"))


def weaker_than_defaults(cert: dict[str, Any], bn_mode: str, onnx_export: bool = False) -> str:
    """Why `cert` certifies less than a default `parity check` does ("" where it does not), naming what is
    missing: a default reference not compared (TF; torchvision with the source's semantics; ONNX Runtime
    where an export exists), fewer probes than the default, tolerances looser than the defaults (in train
    mode too, where BN trains)."""
    from parity.metrics import EVAL_TOL, TRAIN_TOL
    from parity.results import ParityConfig

    refs, probes = cert.get("references"), cert.get("probes")
    if not isinstance(refs, list) or not isinstance(probes, int) or isinstance(probes, bool):
        return "it records no references or probes compared (made by an older tfport)"
    missing = [name for ref, name in (("tf", "the TF source"),
                                      ("torchvision+declared", "torchvision with the source's semantics"),
                                      ("onnx", "ONNX Runtime on the export beside it"))
               if ref not in refs and (ref != "onnx" or onnx_export)]
    why = []  # every way it falls short, so one re-run fixes them all
    if missing:
        asked = ",".join(map(str, cert.get("references_asked") or []))
        why.append(f"made without {' and '.join(missing)} as a reference (compared: "
                   f"{', '.join(map(str, refs)) or 'none'}; asked: {asked})")
    if probes < ParityConfig().probes:
        why.append(f"made on {probes} probe(s), fewer than the default {ParityConfig().probes}")
    tol = cert.get("tolerances") if isinstance(cert.get("tolerances"), dict) else {}
    limits = {"atol": EVAL_TOL.atol, "rtol": EVAL_TOL.rtol}
    if bn_mode == "train":
        limits |= {"train_atol": TRAIN_TOL.atol, "train_rtol": TRAIN_TOL.rtol}
    for key, limit in limits.items():
        value = tol.get(key)
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            why.append(f"it records no {key}")
        elif not value <= limit:
            why.append(f"made at {key} {value:g}, looser than the default {limit:g}")
    return "; ".join(why)
