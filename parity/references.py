"""The references a candidate is compared with, besides TF in eval mode: the source file it came from,
TF's own graph in train mode, ONNX Runtime on the export beside the port, and torchvision."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from convert.runtime.errors import fail
from parity.capture import nchw
from parity.metrics import PointResult, Tolerance, compare
from parity.points import Point

if TYPE_CHECKING:
    from parity.arch import Architecture
    from parity.candidates import Candidate


def resolve_source(candidate: Candidate, source_arg: str | Path | None, trust_code: bool = False,
                   input_size: tuple[int, int] | None = None):
    """The TF source: given, or recorded in the candidate's metadata; refused where its sha256 differs
    from the recorded one (not the model the candidate was ported from). A source whose graph leaves its
    input size open is read at `input_size`, else at the one the candidate records."""
    from convert.runtime.files import sha256_file
    from convert.sources import load_source

    recorded = candidate.meta.get("source") or {}
    path = Path(source_arg) if source_arg else (Path(recorded["path"]) if recorded.get("path") else None)
    if path is None:
        raise fail(f"{candidate.path}: records no source; give --source SRC")
    if not path.exists():
        raise fail(f"{path}: source not found"
                   + ("" if source_arg else f" (recorded in {candidate.path}); give --source SRC"))
    if recorded.get("sha256") and sha256_file(path) != recorded["sha256"]:
        raise fail(f"{path}: sha256 differs from the one recorded in {candidate.path.name}: not the model it was "
                   "ported from")
    size = input_size or candidate.meta.get("input_size")
    return load_source(path, tuple(size) if size else None, trust_code)


@dataclass(frozen=True)
class TorchReference:
    """A torch model compared with the candidate point by point, on the input `prep` makes of the candidate's."""

    model: Any
    points: list[Point]
    prep: Callable[[np.ndarray], np.ndarray]


def torchvision_references(arch: Architecture, candidate: Candidate, source_meta: dict[str, Any],
                           points: list[Point]) -> tuple[dict[str, TorchReference], str | None]:
    """The torchvision references: plain torchvision with the candidate's weights (deviations shown), and
    torchvision with the candidate's weights and the *source's* semantics, built from the source's own
    description (padding per conv, BN eps, input affine, head), never from the candidate's metadata: it
    must equal the candidate, so a semantic the candidate gets wrong — declared or not — fails there."""
    sd = candidate.module.state_dict()
    plain = arch.torchvision(sd, candidate.meta)  # holding the candidate's tensors (parity.arch.layout.loaded)
    # plain torchvision has no input affine and returns logits: it sees what the candidate's backbone sees
    refs = {"torchvision": TorchReference(plain.eval(), [p for p in points if p.suffix != "output"],
                                          lambda x_nchw: backbone_input(candidate, x_nchw))}
    note = None
    declared = arch.with_source_semantics(source_meta)
    try:
        # the candidate's own tensors, not copies: a reference in eval mode never writes its weights
        declared.load_state_dict(sd, assign=True)
        refs["torchvision+declared"] = TorchReference(declared.eval(), points, lambda x_nchw: x_nchw)
    except RuntimeError as e:
        note = ("torchvision with the source's semantics: the candidate's weights do not fit the source's "
                f"structure ({str(e).splitlines()[-1].strip()[:120]})")
    return refs, note


def backbone_input(candidate: Candidate, x_nchw: np.ndarray) -> np.ndarray:
    """What the candidate's backbone sees: its own input affine applied (plain torchvision has none)."""
    affine = getattr(candidate.module, "input_affine", None)
    if affine is None:
        return x_nchw
    return (x_nchw * affine.scale.numpy() + affine.offset.numpy()).astype(np.float32)


def onnx_reference(candidate: Candidate, x: np.ndarray, cand_output: np.ndarray | None, tol: Tolerance,
                   notes: list[str], progress: Callable[[str], None]) -> PointResult | None:
    """ONNX Runtime on the export written beside the port: the source's whole function, as tf2onnx saw it.
    None (with a note where that says why) when there is nothing to compare."""
    from convert.runners.onnx import OrtRunner

    onnx_name = (candidate.meta.get("artifacts") or {}).get("onnx.onnx")
    if not onnx_name:
        notes.append("no ONNX export recorded beside the candidate: ONNX Runtime reference skipped")
        return None
    path = Path(candidate.path).parent / onnx_name
    if not path.exists():
        notes.append(f"ONNX export {path} is missing: ONNX Runtime reference skipped")
        return None
    if cand_output is None:
        notes.append("the candidate's output was not captured: ONNX Runtime reference skipped")
        return None
    progress("ONNX Runtime: final output")
    ort = OrtRunner(path.read_bytes(), where=str(path), folder=path.parent)
    (out,) = ort.run(x, [ort.sess.get_outputs()[0].name])
    return compare("output", "onnx", "eval", cand_output, nchw(out), tol)


def set_training(node) -> None:
    """A fused BN node put in training mode (batch statistics): TF's own batch-statistics reference."""
    if node.op.startswith("FusedBatchNorm"):
        node.attr["is_training"].b = True


@dataclass(frozen=True)
class TrainReference:
    graph_def: Any  # tf.compat.v1.GraphDef: the source's own, its fused BNs put in training mode on import
    info: Any  # the source's graph description (inputs, outputs)
    tensors: dict[str, str]  # probe point -> TF tensor

    def import_into(self, runner, prefix: str = "train") -> dict[str, str]:
        """The train-mode graph added to the source's eval runner (convert.runners.tf.TFRunner.import_variant:
        the weights shared, the BNs in training mode): probe point -> its train-mode tensor."""
        imported = runner.import_variant(self.graph_def, prefix, set_training)
        return {n: f"{prefix}/{t}" if t.split(":")[0] in imported else t for n, t in self.tensors.items()}


def train_reference(arch: Architecture, source, points: list[Point]) -> TrainReference | None:
    """TF's own batch-statistics reference: the source graph with every fused BN in training mode (a Keras 3
    source's graph has its BN fused back from the model's statistics). None where the source keeps no BN
    statistics at all (BN folded: Keras 3 export, TFLite)."""
    if source.graph_def is None:
        return None
    n_fused = sum(node.op.startswith("FusedBatchNorm") for node in source.graph_def.node)
    if not n_fused or n_fused != len(source.spec.bns):
        return None
    return TrainReference(source.graph_def, source.info, arch.tf_tensors(points, source.spec.taps, source.info.pooled))
