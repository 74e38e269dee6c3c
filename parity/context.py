"""What a semantic check reads: one typed object, built by parity.run once the comparisons are done."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from parity.metrics import PointResult
from parity.points import Point

if TYPE_CHECKING:
    from parity.arch import Architecture
    from parity.candidates import Candidate


@dataclass(frozen=True)
class PaddingEvidence:
    """Candidate vs the source-semantics reference (same weights) at an even size, where TF SAME is asymmetric."""

    size: str  # "HxW"
    max_abs: float  # max |Δ| of the backbone's output
    bound: float  # the tolerance it is held to
    first_unit: str | None  # the first unit whose output differs beyond it: where the padding differs

    def to_json(self) -> dict[str, Any]:  # as a check's details carry it
        return {"size": self.size, "max_abs": self.max_abs, "bound": self.bound, "first_unit": self.first_unit}


@dataclass(frozen=True)
class CheckContext:
    candidate: Candidate
    source: Any  # convert.sources' loaded source: spec, path, info, graph_def
    arch: Architecture
    points: list[Point]
    results: list[PointResult]
    measured_momentum: list[float]  # per BN module, in module order: what one train-mode step applies
    padding_numeric: PaddingEvidence | None = None  # torchvision-laid-out candidates only
    train_skipped: str = ""  # why train mode was not compared ("" where it was, or was not asked)
